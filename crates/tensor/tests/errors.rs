//! Every constructor's and op's bad input gives its error, with a message that names the op and
//! the shapes or values involved; the panicking forms panic with the same message; and a failed
//! `try_` call leaves its input exactly as it was.
//!
//! Expected messages are written out here from the shapes and values of each case.

mod common;

use common::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Float, Indices, Tensor, TensorError};

fn zeros(dims: &[usize]) -> Tensor<f64> {
    Tensor::zeros(dims)
}

fn message<T>(result: tensor::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(error) => error.to_string(),
    }
}

// ----- constructors ----------------------------------------------------------------------

#[test]
fn from_vec_and_from_slice_check_the_length() {
    assert_eq!(
        message(Tensor::from_vec(vec![1.0_f64; 5], [2, 3])),
        "from_vec: shape [2, 3] needs 6 values but 5 were given"
    );
    assert_eq!(
        message(Tensor::from_slice(&[1.0_f32; 2], [])),
        "from_slice: shape [] needs 1 values but 2 were given"
    );
    assert_eq!(
        message(Tensor::<f64>::from_vec(vec![0.0], [0])),
        "from_vec: shape [0] needs 0 values but 1 were given"
    );
    assert_eq!(
        Tensor::<f64>::from_vec(vec![], [2, 0, 1, 3])
            .unwrap()
            .dims(),
        &[2, 0, 1, 3]
    );
    assert_eq!(
        message(Indices::new(vec![0, 1], [3])),
        "Indices::new: shape [3] needs 3 values but 2 were given"
    );
    let huge = [usize::MAX, 2];
    assert_eq!(
        message(Tensor::<f32>::from_vec(vec![], huge)),
        format!(
            "from_vec: shape [{}, 2] has more elements than fit in memory",
            usize::MAX
        )
    );
}

#[test]
fn arange_rejects_bad_steps_and_bounds() {
    let expect = |start: f64, end: f64, step: f64| {
        assert_eq!(
            message(Tensor::arange(start, end, step)),
            format!(
                "arange: needs finite start, end and a non-zero finite step, got {start}, {end}, {step}"
            )
        );
    };
    expect(0.0, 1.0, 0.0);
    expect(0.0, 1.0, -0.0);
    expect(0.0, 1.0, f64::NAN);
    expect(0.0, 1.0, f64::INFINITY);
    expect(f64::NEG_INFINITY, 1.0, 1.0);
    expect(0.0, f64::NAN, 1.0);
    assert_eq!(
        message(Tensor::<f32>::arange(0.0, 1.0, 0.0)),
        "arange: needs finite start, end and a non-zero finite step, got 0, 1, 0"
    );
    // A step away from `end` is not an error: the range is empty.
    assert_eq!(Tensor::<f64>::arange(0.0, 1.0, -1.0).unwrap().numel(), 0);
}

#[test]
fn random_constructors_reject_bad_parameters() {
    let mut rng = StdRng::seed_from_u64(1);
    for (mean, std) in [
        (0.0, -1.0),
        (0.0, f64::NAN),
        (0.0, f64::INFINITY),
        (f64::NAN, 1.0),
    ] {
        assert_eq!(
            message(Tensor::random_normal([2, 2], mean, std, &mut rng)),
            format!(
                "random_normal: needs a finite mean and a finite std >= 0, got mean {mean}, std {std}"
            )
        );
    }
    assert_eq!(
        message(Tensor::<f32>::random_normal([3], 0.5, -0.25, &mut rng)),
        "random_normal: needs a finite mean and a finite std >= 0, got mean 0.5, std -0.25"
    );
    for (low, high) in [
        (1.0, 1.0),
        (2.0, 1.0),
        (f64::NEG_INFINITY, 0.0),
        (0.0, f64::NAN),
    ] {
        assert_eq!(
            message(Tensor::random_uniform([2], low, high, &mut rng)),
            format!("random_uniform: needs finite low < high, got low {low}, high {high}")
        );
    }
    // std = 0 is allowed: every draw is the mean.
    let constant = Tensor::<f64>::random_normal([4], 1.5, 0.0, &mut rng).unwrap();
    assert_eq!(constant.to_vec(), vec![1.5; 4]);
    let huge = [usize::MAX, 3];
    assert!(
        message(Tensor::<f64>::random_uniform(huge, 0.0, 1.0, &mut rng))
            .starts_with("random_uniform: shape")
    );
}

// ----- views -----------------------------------------------------------------------------

#[test]
fn view_errors_name_the_op_and_shape() {
    let t = zeros(&[2, 3, 4]);
    for bad in [&[0, 1][..], &[0, 1, 1], &[0, 1, 3], &[2, 1, 0, 3]] {
        assert_eq!(
            message(t.try_permute(bad)),
            format!("permute: {bad:?} is not a permutation of the axes of shape [2, 3, 4]")
        );
    }
    assert_eq!(
        message(t.try_transpose(0, 3)),
        "transpose: axis 3 is out of range for shape [2, 3, 4] (rank 3)"
    );
    assert_eq!(
        panic_message(|| zeros(&[3]).t()),
        "t: needs rank >= 2, got shape [3]"
    );
    assert_eq!(
        message(t.try_narrow(1, 2, 2)),
        "narrow: range 2..4 along axis 1 exceeds shape [2, 3, 4]"
    );
    assert_eq!(
        message(t.try_narrow(2, 5, 0)),
        "narrow: range 5..5 along axis 2 exceeds shape [2, 3, 4]"
    );
    assert_eq!(
        message(t.try_narrow(3, 0, 1)),
        "narrow: axis 3 is out of range for shape [2, 3, 4] (rank 3)"
    );
    assert_eq!(
        message(t.try_narrow(0, usize::MAX, 2)),
        format!(
            "narrow: range {}..{} along axis 0 exceeds shape [2, 3, 4]",
            usize::MAX,
            usize::MAX
        )
    );
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 3..1;
    assert_eq!(
        message(t.try_slice(1, reversed)),
        "slice: range 3..1 is reversed"
    );
    assert_eq!(
        message(t.try_slice(1, 1..4)),
        "slice: range 1..4 along axis 1 exceeds shape [2, 3, 4]"
    );
    assert_eq!(
        message(t.try_reshape([5, 5])),
        "reshape: cannot reshape [2, 3, 4] (24 elements) to [5, 5] (25 elements)"
    );
    assert_eq!(
        message(t.t().try_reshape([23])),
        "reshape: cannot reshape [2, 4, 3] (24 elements) to [23] (23 elements)"
    );
    assert_eq!(
        message(t.try_broadcast_to([2, 3])),
        "broadcast_to: cannot broadcast [2, 3, 4] to [2, 3]"
    );
    assert_eq!(
        message(t.try_broadcast_to([2, 2, 4])),
        "broadcast_to: cannot broadcast [2, 3, 4] to [2, 2, 4]"
    );
    assert_eq!(
        message(t.try_squeeze(1)),
        "squeeze: axis 1 of shape [2, 3, 4] has size 3, not 1"
    );
    assert_eq!(
        message(zeros(&[1, 0]).try_squeeze(1)),
        "squeeze: axis 1 of shape [1, 0] has size 0, not 1"
    );
    assert_eq!(
        message(t.try_squeeze(3)),
        "squeeze: axis 3 is out of range for shape [2, 3, 4] (rank 3)"
    );
    assert_eq!(
        message(t.try_unsqueeze(4)),
        "unsqueeze: axis 4 is out of range for shape [2, 3, 4] (rank 3)"
    );
    assert_eq!(
        message(Tensor::scalar(1.0_f32).try_unsqueeze(1)),
        "unsqueeze: axis 1 is out of range for shape [] (rank 0)"
    );
}

#[test]
fn element_access_errors() {
    let t = zeros(&[2, 3]);
    for bad in [&[2, 0][..], &[0, 3], &[0], &[0, 0, 0], &[]] {
        assert_eq!(
            message(t.try_get(bad)),
            format!("get: index {bad:?} is out of bounds for shape [2, 3]")
        );
    }
    assert_eq!(
        message(t.try_item()),
        "item: needs exactly one element, shape [2, 3] has 6"
    );
    assert_eq!(
        message(zeros(&[0]).try_item()),
        "item: needs exactly one element, shape [0] has 0"
    );
    assert_eq!(zeros(&[1, 1]).item(), 0.0);
    assert_eq!(
        panic_message(|| t.get(&[1, 7])),
        "get: index [1, 7] is out of bounds for shape [2, 3]"
    );
    assert_eq!(
        panic_message(|| t.item()),
        "item: needs exactly one element, shape [2, 3] has 6"
    );
}

// ----- matmul ----------------------------------------------------------------------------

#[test]
fn matmul_errors_name_both_shapes() {
    let a = zeros(&[3, 4]);
    let b = zeros(&[5, 2]);
    assert_eq!(
        message(a.try_matmul(&b)),
        "matmul: inner dimensions differ: [3, 4] x [5, 2]"
    );
    assert_eq!(
        panic_message(|| a.matmul(&b)),
        "matmul: inner dimensions differ: [3, 4] x [5, 2]"
    );
    assert_eq!(
        message(zeros(&[2, 3, 4]).try_matmul(&zeros(&[2, 3, 4]))),
        "matmul: inner dimensions differ: [2, 3, 4] x [2, 3, 4]"
    );
    let unsupported = |l: &[usize], r: &[usize]| {
        assert_eq!(
            message(zeros(l).try_matmul(&zeros(r))),
            format!(
                "matmul: unsupported operands {} x {} (need rank 2 or 3 with matching or broadcastable batch)",
                fmt_dims(l),
                fmt_dims(r)
            )
        );
    };
    unsupported(&[3], &[3, 3]);
    unsupported(&[3, 3], &[3]);
    unsupported(&[], &[]);
    unsupported(&[1, 2, 3, 3], &[3, 3]);
    unsupported(&[3, 3], &[2, 1, 3, 3]);
    unsupported(&[2, 3, 4], &[3, 4, 5]);
    unsupported(&[0, 3, 4], &[2, 4, 5]);
}

// ----- reductions ------------------------------------------------------------------------

type Reduction = fn(&Tensor<f64>, &[usize], bool) -> tensor::Result<Tensor<f64>>;

fn reductions() -> Vec<(&'static str, Reduction)> {
    vec![
        ("sum", Tensor::try_sum),
        ("mean", Tensor::try_mean),
        ("max", Tensor::try_max),
        ("min", Tensor::try_min),
        ("variance", |t, axes, keepdim| {
            t.try_variance(axes, keepdim, false)
        }),
        ("logsumexp", Tensor::try_logsumexp),
    ]
}

#[test]
fn reduction_axis_errors_name_the_op() {
    let t = zeros(&[2, 3]);
    for (op, reduce) in reductions() {
        assert_eq!(
            message(reduce(&t, &[2], false)),
            format!("{op}: axis 2 is out of range for shape [2, 3] (rank 2)")
        );
        assert_eq!(
            message(reduce(&t, &[1, 0, 1], true)),
            format!("{op}: axis 1 is given twice for shape [2, 3]")
        );
        assert_eq!(
            message(reduce(&Tensor::scalar(1.0), &[0], false)),
            format!("{op}: axis 0 is out of range for shape [] (rank 0)")
        );
    }
    assert_eq!(
        message(t.try_argmax(2)),
        "argmax: axis 2 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        message(t.try_argmin(5)),
        "argmin: axis 5 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        panic_message(|| t.sum(&[0, 0], false)),
        "sum: axis 0 is given twice for shape [2, 3]"
    );
    assert_eq!(
        panic_message(|| t.mean(&[3], false)),
        "mean: axis 3 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        panic_message(|| t.variance(&[1, 1], false, true)),
        "variance: axis 1 is given twice for shape [2, 3]"
    );
}

#[test]
fn reductions_without_identity_reject_empty_axes() {
    let t = zeros(&[3, 0, 2]);
    for op in ["max", "min", "logsumexp"] {
        let reduce = reductions()
            .into_iter()
            .find(|(name, _)| *name == op)
            .unwrap()
            .1;
        assert_eq!(
            message(reduce(&t, &[1], false)),
            format!("{op}: cannot reduce over an empty axis of shape [3, 0, 2]")
        );
        assert_eq!(
            message(reduce(&t, &[0, 1], true)),
            format!("{op}: cannot reduce over an empty axis of shape [3, 0, 2]")
        );
    }
    assert_eq!(
        message(t.try_argmax(1)),
        "argmax: cannot reduce over an empty axis of shape [3, 0, 2]"
    );
    assert_eq!(
        message(t.try_argmin(1)),
        "argmin: cannot reduce over an empty axis of shape [3, 0, 2]"
    );
    assert_eq!(
        panic_message(|| zeros(&[0]).max_all()),
        "max: cannot reduce over an empty axis of shape [0]"
    );
    assert_eq!(
        panic_message(|| zeros(&[2, 0]).min_all()),
        "min: cannot reduce over an empty axis of shape [2, 0]"
    );
    // Reducing a non-empty axis of an empty tensor has no outputs and is fine.
    assert_eq!(t.max(&[0], false).dims(), &[0, 2]);
    // sum and mean have identities.
    assert_eq!(t.sum(&[1], false).to_vec(), vec![0.0; 6]);
}

#[test]
fn sum_to_rejects_shapes_that_do_not_broadcast_back() {
    let g = zeros(&[2, 3, 4]);
    for bad in [&[5][..], &[3, 1, 4, 1], &[2, 1, 3], &[1, 2, 4]] {
        assert_eq!(
            message(g.try_sum_to(bad)),
            format!("sum_to: cannot broadcast {} to [2, 3, 4]", fmt_dims(bad))
        );
    }
}

// ----- indexing --------------------------------------------------------------------------

#[test]
fn gather_and_scatter_add_check_indices() {
    let x = zeros(&[2, 3]);
    let index = |v: Vec<usize>, dims: &[usize]| Indices::new(v, dims).unwrap();
    assert_eq!(
        message(x.try_gather(1, &index(vec![0, 3], &[2, 1]))),
        "gather: index 3 is out of range 0..3"
    );
    assert_eq!(
        message(x.try_gather(0, &index(vec![2, 0, 1], &[1, 3]))),
        "gather: index 2 is out of range 0..2"
    );
    assert_eq!(
        message(x.try_gather(1, &index(vec![0, 0, 0], &[3, 1]))),
        "gather: index shape [3, 1] must equal tensor shape [2, 3] on every axis but 1"
    );
    assert_eq!(
        message(x.try_gather(1, &index(vec![0, 0], &[2]))),
        "gather: index shape [2] must equal tensor shape [2, 3] on every axis but 1"
    );
    assert_eq!(
        message(x.try_gather(2, &index(vec![0, 0], &[2, 1]))),
        "gather: axis 2 is out of range for shape [2, 3] (rank 2)"
    );
    let source = zeros(&[2, 1]);
    assert_eq!(
        message(x.try_scatter_add(1, &index(vec![0, 4], &[2, 1]), &source)),
        "scatter_add: index 4 is out of range 0..3"
    );
    assert_eq!(
        message(x.try_scatter_add(1, &index(vec![0, 0, 0, 0], &[2, 2]), &source)),
        "scatter_add: shapes differ: [2, 2] vs [2, 1]"
    );
    assert_eq!(
        message(x.try_scatter_add(0, &index(vec![0, 0], &[2, 1]), &source)),
        "scatter_add: index shape [2, 1] must equal tensor shape [2, 3] on every axis but 0"
    );
    assert_eq!(
        panic_message(|| x.gather(1, &index(vec![9, 0], &[2, 1]))),
        "gather: index 9 is out of range 0..3"
    );
}

#[test]
fn index_select_one_hot_pad_concat_stack_errors() {
    let x = zeros(&[2, 3]);
    assert_eq!(
        message(x.try_index_select(1, &[0, 2, 3])),
        "index_select: index 3 is out of range 0..3"
    );
    assert_eq!(
        message(x.try_index_select(2, &[0])),
        "index_select: axis 2 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        message(Tensor::<f64>::one_hot(&[0, 4, 1], 4)),
        "one_hot: index 4 is out of range 0..4"
    );
    assert_eq!(
        message(Tensor::<f64>::one_hot(&[0], 0)),
        "one_hot: index 0 is out of range 0..0"
    );
    assert_eq!(
        message(x.try_pad(2, 1, 1)),
        "pad: axis 2 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        message(x.try_pad(0, usize::MAX, 1)),
        format!("pad: padding {} + 1 overflows", usize::MAX)
    );
    let y = zeros(&[3, 3]);
    assert_eq!(
        message(Tensor::concat(&[&x, &y], 1)),
        "concat: shapes differ: [2, 3] vs [3, 3]"
    );
    assert_eq!(
        message(Tensor::concat(&[&x, &zeros(&[2, 3, 1])], 0)),
        "concat: shapes differ: [2, 3] vs [2, 3, 1]"
    );
    assert_eq!(
        message(Tensor::concat(&[&x, &x], 2)),
        "concat: axis 2 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        message(Tensor::<f64>::concat(&[], 0)),
        "concat: needs at least one tensor"
    );
    // concat along axis 0 of [2, 3] and [3, 3] is fine.
    assert_eq!(Tensor::concat(&[&x, &y], 0).unwrap().dims(), &[5, 3]);
    assert_eq!(
        message(Tensor::stack(&[&x, &y], 0)),
        "stack: shapes differ: [2, 3] vs [3, 3]"
    );
    assert_eq!(
        message(Tensor::stack(&[&x, &x], 3)),
        "stack: axis 3 is out of range for shape [2, 3] (rank 2)"
    );
    assert_eq!(
        message(Tensor::<f64>::stack(&[], 0)),
        "stack: needs at least one tensor"
    );
    assert_eq!(
        message(Indices::from_slice(&[1, 2, 3]).reshape([2, 2])),
        "reshape: cannot reshape [3] (3 elements) to [2, 2] (4 elements)"
    );
}

#[test]
fn errors_are_values_of_the_right_variant() {
    let x = zeros(&[2, 3]);
    assert!(matches!(
        x.try_matmul(&zeros(&[4, 2])),
        Err(TensorError::MatmulInner { .. })
    ));
    assert!(matches!(
        x.try_add(&zeros(&[4])),
        Err(TensorError::Broadcast { op: "add", .. })
    ));
    assert!(matches!(
        x.try_max(&[0, 0], false),
        Err(TensorError::DuplicateAxis {
            op: "max",
            axis: 0,
            ..
        })
    ));
    assert!(matches!(
        x.try_mean(&[2], false),
        Err(TensorError::AxisOutOfRange {
            op: "mean",
            axis: 2,
            ..
        })
    ));
}

// ----- random bad inputs, and inputs left unchanged ----------------------------------------

/// Everything observable about a tensor, to check that a failed call changed nothing.
#[derive(Debug, PartialEq)]
struct Snapshot {
    dims: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    bits: Vec<u64>,
}

fn snapshot<T: Float>(t: &Tensor<T>) -> Snapshot {
    Snapshot {
        dims: t.dims().to_vec(),
        strides: t.strides().to_vec(),
        offset: t.layout().offset(),
        bits: t.to_vec().into_iter().map(bits).collect(),
    }
}

/// Runs a battery of calls that must fail on `t`, checking each message and that `t` (and a
/// clone sharing its buffer) are unchanged afterwards.
fn check_failures<T: Float>(spec: &ViewSpec) -> Result<(), TestCaseError> {
    let t = spec.build::<T>();
    let keep = t.clone();
    let before = snapshot(&t);
    let dims = t.dims().to_vec();
    let rank = dims.len();
    let shape = fmt_dims(&dims);
    let mut cases: Vec<(tensor::Result<()>, String)> = Vec::new();
    let mut push = |result: tensor::Result<()>, expected: String| cases.push((result, expected));
    fn unit<X>(r: tensor::Result<X>) -> tensor::Result<()> {
        r.map(|_| ())
    }

    push(
        unit(t.try_permute(&vec![0; rank + 1])),
        format!(
            "permute: {:?} is not a permutation of the axes of shape {shape}",
            vec![0; rank + 1]
        ),
    );
    push(
        unit(t.try_reshape([numel(&dims) + 1])),
        format!(
            "reshape: cannot reshape {shape} ({} elements) to [{}] ({} elements)",
            numel(&dims),
            numel(&dims) + 1,
            numel(&dims) + 1
        ),
    );
    push(
        unit(t.try_unsqueeze(rank + 1)),
        format!(
            "unsqueeze: axis {} is out of range for shape {shape} (rank {rank})",
            rank + 1
        ),
    );
    let mut out_of_bounds = vec![0; rank];
    if let Some(last) = out_of_bounds.last_mut() {
        *last = dims[rank - 1];
    } else {
        out_of_bounds.push(0);
    }
    push(
        unit(t.try_get(&out_of_bounds)),
        format!("get: index {out_of_bounds:?} is out of bounds for shape {shape}"),
    );
    if numel(&dims) != 1 {
        push(
            unit(t.try_item()),
            format!(
                "item: needs exactly one element, shape {shape} has {}",
                numel(&dims)
            ),
        );
    }
    for (op, result) in [
        ("sum", unit(t.try_sum(&[rank], false))),
        ("mean", unit(t.try_mean(&[rank], true))),
        ("max", unit(t.try_max(&[rank], false))),
        ("min", unit(t.try_min(&[rank], true))),
        ("variance", unit(t.try_variance(&[rank], false, true))),
        ("logsumexp", unit(t.try_logsumexp(&[rank], false))),
        ("argmax", unit(t.try_argmax(rank))),
        ("pad", unit(t.try_pad(rank, 1, 1))),
        ("index_select", unit(t.try_index_select(rank, &[0]))),
        ("narrow", unit(t.try_narrow(rank, 0, 0))),
        ("squeeze", unit(t.try_squeeze(rank))),
        ("transpose", unit(t.try_transpose(0, rank))),
    ] {
        push(
            result,
            format!("{op}: axis {rank} is out of range for shape {shape} (rank {rank})"),
        );
    }
    if rank > 0 {
        let axis = rank - 1;
        let size = dims[axis];
        push(
            unit(t.try_narrow(axis, size, 1)),
            format!(
                "narrow: range {size}..{} along axis {axis} exceeds shape {shape}",
                size + 1
            ),
        );
        push(
            unit(t.try_sum(&[axis, axis], true)),
            format!("sum: axis {axis} is given twice for shape {shape}"),
        );
        push(
            unit(t.try_index_select(axis, &[size])),
            format!("index_select: index {size} is out of range 0..{size}"),
        );
        if size != 1 {
            push(
                unit(t.try_squeeze(axis)),
                format!("squeeze: axis {axis} of shape {shape} has size {size}, not 1"),
            );
        }
        let mut index_dims = dims.clone();
        index_dims[axis] = 1;
        let index = Indices::new(vec![size; numel(&index_dims)], index_dims.as_slice()).unwrap();
        if numel(&index_dims) > 0 {
            push(
                unit(t.try_gather(axis, &index)),
                format!("gather: index {size} is out of range 0..{size}"),
            );
        }
        let mut other = dims.clone();
        other[0] += 1;
        if rank > 1 {
            let wide = Tensor::<T>::zeros(other.as_slice());
            push(
                unit(Tensor::concat(&[&t, &wide], rank - 1)),
                format!("concat: shapes differ: {shape} vs {}", fmt_dims(&other)),
            );
        }
        let bad_inner = Tensor::<T>::zeros([size + 1, 2]);
        if rank == 2 || rank == 3 {
            push(
                unit(t.try_matmul(&bad_inner)),
                format!(
                    "matmul: inner dimensions differ: {shape} x [{}, 2]",
                    size + 1
                ),
            );
        }
        if size != 1 {
            let incompatible = Tensor::<T>::zeros([size + 2]);
            push(
                unit(t.try_mul(&incompatible)),
                format!("mul: cannot broadcast {shape} with [{}]", size + 2),
            );
        }
        if rank > 1 || size != 1 {
            push(
                unit(t.try_broadcast_to(&[size + 2][..])),
                format!("broadcast_to: cannot broadcast {shape} to [{}]", size + 2),
            );
        }
    }
    for (i, (result, expected)) in cases.into_iter().enumerate() {
        match result {
            Ok(()) => prop_assert!(false, "case {} succeeded, expected {:?}", i, expected),
            Err(e) => prop_assert_eq!(e.to_string(), expected),
        }
        prop_assert_eq!(&snapshot(&t), &before, "case {} changed the tensor", i);
    }
    prop_assert!(keep.shares_storage_with(&t));
    prop_assert_eq!(snapshot(&keep), before);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn failed_calls_report_and_leave_their_input_unchanged(spec in any_view(Values::WithSpecials)) {
        check_failures::<f64>(&spec)?;
        check_failures::<f32>(&spec)?;
    }

    #[test]
    fn from_vec_length_mismatch(dims in shape(), len in 0..700usize) {
        let n = numel(&dims);
        prop_assume!(len != n);
        prop_assert_eq!(
            message(Tensor::<f64>::from_vec(vec![0.5; len], dims.as_slice())),
            format!("from_vec: shape {} needs {} values but {} were given", fmt_dims(&dims), n, len)
        );
    }

    #[test]
    fn matmul_inner_mismatch((m, k, k2, n) in (0..6usize, 0..6usize, 0..6usize, 0..6usize), batch in 0..3usize) {
        prop_assume!(k != k2);
        let mut a = vec![m, k];
        let mut b = vec![k2, n];
        if batch > 0 {
            a.insert(0, batch);
        }
        if batch > 1 {
            b.insert(0, batch);
        }
        let expected = format!("matmul: inner dimensions differ: {} x {}", fmt_dims(&a), fmt_dims(&b));
        prop_assert_eq!(message(zeros(&a).try_matmul(&zeros(&b))), expected.clone());
        prop_assert_eq!(panic_message(|| zeros(&a).matmul(&zeros(&b))), expected);
    }

    #[test]
    fn narrow_out_of_range(dims in shape_rank_at_least_one(), axis in 0..4usize, start in 0..8usize, len in 0..8usize) {
        let axis = axis % dims.len();
        let t = zeros(&dims);
        let result = t.try_narrow(axis, start, len);
        if start + len <= dims[axis] {
            prop_assert_eq!(result.unwrap().dims()[axis], len);
        } else {
            prop_assert_eq!(
                message(result),
                format!("narrow: range {}..{} along axis {} exceeds shape {}", start, start + len, axis, fmt_dims(&dims))
            );
        }
    }
}
