//! Strided views (permuted, narrowed, broadcast, and chains of these) against contiguous
//! copies: every kernel must give bit-identical results on a view and on a row-major copy of
//! the same logical elements.
//!
//! The "copy" is built from the elements the view recipe selects, computed in the test
//! ([`ViewSpec::expected`]), so a kernel and `contiguous()` cannot agree on a wrong answer.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use tensor::{Float, Indices, Result, Tensor};

/// A view and the contiguous tensor holding the elements the recipe says it shows.
fn view_and_copy<T: Float>(spec: &ViewSpec) -> (Tensor<T>, Tensor<T>) {
    let view = spec.build::<T>();
    let copy = Tensor::from_vec(spec.expected::<T>(), spec.dims()).unwrap();
    (view, copy)
}

/// Both `Ok` with bit-identical tensors, or both `Err` with the same message.
fn same_result<T: Float>(
    what: &str,
    actual: Result<Tensor<T>>,
    expected: Result<Tensor<T>>,
) -> std::result::Result<(), TestCaseError> {
    match (actual, expected) {
        (Ok(a), Ok(e)) => assert_same_bits(what, &a, &e),
        (Err(a), Err(e)) => {
            prop_assert_eq!(a.to_string(), e.to_string(), "{}: errors differ", what);
            Ok(())
        }
        (a, e) => Err(TestCaseError::fail(format!(
            "{what}: one side failed: {:?} vs {:?}",
            a.map(|t| t.to_vec()),
            e.map(|t| t.to_vec())
        ))),
    }
}

type Unary<T> = Box<dyn Fn(&Tensor<T>) -> Tensor<T>>;

fn unary<T: Float>(f: impl Fn(&Tensor<T>) -> Tensor<T> + 'static) -> Unary<T> {
    Box::new(f)
}

/// Every unary kernel (and the scalar forms of the binary ops), by name.
fn unary_ops<T: Float>() -> Vec<(&'static str, Unary<T>)> {
    let c = T::from_f64;
    vec![
        ("neg", unary(|t| t.neg())),
        ("-t", unary(|t| -t)),
        ("exp", unary(|t| t.exp())),
        ("log", unary(|t| t.log())),
        ("sqrt", unary(|t| t.sqrt())),
        ("tanh", unary(|t| t.tanh())),
        ("sigmoid", unary(|t| t.sigmoid())),
        ("relu", unary(|t| t.relu())),
        ("abs", unary(|t| t.abs())),
        ("sign", unary(|t| t.sign())),
        ("square", unary(|t| t.square())),
        ("recip", unary(|t| t.recip())),
        ("powf(2)", unary(move |t| t.powf(c(2.0)))),
        ("powf(0.5)", unary(move |t| t.powf(c(0.5)))),
        ("powf(-1.5)", unary(move |t| t.powf(c(-1.5)))),
        ("powf(3)", unary(move |t| t.powf(c(3.0)))),
        ("add_scalar", unary(move |t| t.add_scalar(c(1.25)))),
        ("sub_scalar", unary(move |t| t.sub_scalar(c(-0.75)))),
        ("mul_scalar", unary(move |t| t.mul_scalar(c(-3.0)))),
        ("div_scalar", unary(move |t| t.div_scalar(c(7.0)))),
        ("t + s", unary(move |t| t + c(0.1))),
        ("t - s", unary(move |t| t - c(0.1))),
        ("t * s", unary(move |t| t * c(0.1))),
        ("t / s", unary(move |t| t / c(0.1))),
        ("clamp", unary(move |t| t.clamp(c(-1.0), c(2.5)))),
        ("map", unary(move |t| t.map(|x| x * x - c(3.0) * x))),
        ("cast round trip", unary(|t| t.cast::<f64>().cast::<T>())),
    ]
}

type Binary<T> = fn(&Tensor<T>, &Tensor<T>) -> Tensor<T>;
type TryBinary<T> = fn(&Tensor<T>, &Tensor<T>) -> Result<Tensor<T>>;

/// Every broadcasting binary kernel: name, panicking form, fallible form.
fn binary_ops<T: Float>() -> Vec<(&'static str, Binary<T>, TryBinary<T>)> {
    vec![
        ("add", Tensor::add, Tensor::try_add),
        ("sub", Tensor::sub, Tensor::try_sub),
        ("mul", Tensor::mul, Tensor::try_mul),
        ("div", Tensor::div, Tensor::try_div),
        ("maximum", Tensor::maximum, Tensor::try_maximum),
        ("minimum", Tensor::minimum, Tensor::try_minimum),
        ("equal", Tensor::equal, Tensor::try_equal),
        ("not_equal", Tensor::not_equal, Tensor::try_not_equal),
        ("less", Tensor::less, Tensor::try_less),
        ("less_equal", Tensor::less_equal, Tensor::try_less_equal),
        ("greater", Tensor::greater, Tensor::try_greater),
        (
            "greater_equal",
            Tensor::greater_equal,
            Tensor::try_greater_equal,
        ),
    ]
}

fn check_view_elements<T: Float>(spec: &ViewSpec) -> std::result::Result<(), TestCaseError> {
    let (view, copy) = view_and_copy::<T>(spec);
    let expected = copy.to_vec();
    assert_identical_vec("to_vec", &view.to_vec(), &expected)?;
    for (position, index) in multi_indices(spec.dims()).iter().enumerate() {
        prop_assert_eq!(
            bits(view.get(index)),
            bits(expected[position]),
            "get({:?})",
            index
        );
    }
    // contiguous(): row-major, same elements; a view that already is contiguous is shared.
    let contiguous = view.contiguous();
    prop_assert!(contiguous.is_contiguous());
    prop_assert_eq!(
        contiguous.as_contiguous_slice().map(<[T]>::len),
        Some(expected.len())
    );
    assert_identical_vec(
        "contiguous",
        contiguous.as_contiguous_slice().unwrap(),
        &expected,
    )?;
    if view.is_contiguous() {
        prop_assert!(contiguous.shares_storage_with(&view));
        assert_identical_vec(
            "as_contiguous_slice",
            view.as_contiguous_slice().unwrap(),
            &expected,
        )?;
    } else {
        prop_assert!(view.as_contiguous_slice().is_none());
    }
    // The same through a fresh buffer.
    let rebuilt = Tensor::from_vec(view.to_vec(), view.shape()).unwrap();
    assert_identical("from_vec(to_vec)", &rebuilt, &copy)?;
    // reshape: to the reversed shape, flat, and back.
    let reversed: Vec<usize> = spec.dims().iter().rev().copied().collect();
    assert_identical(
        "reshape(reversed)",
        &view.reshape(reversed.as_slice()),
        &Tensor::from_vec(expected.clone(), reversed.as_slice()).unwrap(),
    )?;
    let flat = view.flatten();
    prop_assert_eq!(flat.dims(), &[expected.len()][..]);
    assert_identical_vec("flatten", &flat.to_vec(), &expected)?;
    assert_identical("reshape back", &flat.reshape(view.shape()), &copy)?;
    // unsqueeze / squeeze are views of the same elements.
    let unsqueezed = view.unsqueeze(view.rank());
    assert_identical_vec("unsqueeze", &unsqueezed.to_vec(), &expected)?;
    assert_identical("squeeze", &unsqueezed.squeeze(view.rank()), &copy)?;
    // make_mut copies a strided or shared view and leaves the view alone.
    let mut owned = view.clone();
    let slice = owned.make_mut();
    assert_identical_vec("make_mut", slice, &expected)?;
    if let Some(first) = slice.first_mut() {
        *first = T::from_f64(12345.0);
        assert_identical_vec("view after make_mut", &view.to_vec(), &expected)?;
    }
    Ok(())
}

fn check_unary<T: Float>(spec: &ViewSpec) -> std::result::Result<(), TestCaseError> {
    let (view, copy) = view_and_copy::<T>(spec);
    for (name, op) in unary_ops::<T>() {
        let on_view = op(&view);
        prop_assert!(
            on_view.is_contiguous(),
            "{}: result is not contiguous",
            name
        );
        assert_same_bits(name, &on_view, &op(&copy))?;
        assert_same_bits(name, &on_view, &op(&view.contiguous()))?;
    }
    Ok(())
}

fn check_binary<T: Float>(a: &ViewSpec, b: &ViewSpec) -> std::result::Result<(), TestCaseError> {
    let (va, ca) = view_and_copy::<T>(a);
    let (vb, cb) = view_and_copy::<T>(b);
    for (name, op, try_op) in binary_ops::<T>() {
        let expected = op(&ca, &cb);
        assert_same_bits(name, &op(&va, &vb), &expected)?;
        assert_same_bits(name, &op(&va, &cb), &expected)?;
        assert_same_bits(name, &op(&ca, &vb), &expected)?;
        assert_same_bits(name, &try_op(&va, &vb).unwrap(), &expected)?;
    }
    let sum = &ca + &cb;
    assert_same_bits("&a + &b", &(&va + &vb), &sum)?;
    assert_same_bits("a + b", &(va.clone() + vb.clone()), &sum)?;
    assert_same_bits("a - &b", &(va.clone() - &vb), &(&ca - &cb))?;
    assert_same_bits("&a * b", &(&va * vb.clone()), &(&ca * &cb))?;
    assert_same_bits("a / b", &(va.clone() / vb.clone()), &(&ca / &cb))?;
    let hypot = |x: T, y: T| (x * x + y * y).sqrt();
    assert_same_bits(
        "zip_map",
        &va.zip_map(&vb, "hypot", hypot),
        &ca.zip_map(&cb, "hypot", hypot),
    )?;
    // accumulate: whichever path it takes, it is `a + b`.
    assert_same_bits("accumulate(view)", &va.clone().accumulate(&vb), &sum)?;
    let unique = Tensor::from_vec(ca.to_vec(), ca.shape()).unwrap();
    assert_same_bits("accumulate(unique)", &unique.accumulate(&vb), &sum)?;
    let shared = Tensor::from_vec(ca.to_vec(), ca.shape()).unwrap();
    let keep = shared.clone();
    assert_same_bits("accumulate(shared)", &shared.accumulate(&vb), &sum)?;
    assert_same_bits("accumulate leaves a shared buffer alone", &keep, &ca)?;
    Ok(())
}

fn check_select<T: Float>(
    c: &ViewSpec,
    a: &ViewSpec,
    b: &ViewSpec,
) -> std::result::Result<(), TestCaseError> {
    let (vc, cc) = view_and_copy::<T>(c);
    let (va, ca) = view_and_copy::<T>(a);
    let (vb, cb) = view_and_copy::<T>(b);
    same_result(
        "select",
        Tensor::try_select(&vc, &va, &vb),
        Tensor::try_select(&cc, &ca, &cb),
    )
}

fn check_reductions<T: Float>(
    spec: &ViewSpec,
    axes: &[usize],
    keepdim: bool,
    target: &[usize],
) -> std::result::Result<(), TestCaseError> {
    let (view, copy) = view_and_copy::<T>(spec);
    let same = |what: &str, f: &dyn Fn(&Tensor<T>) -> Result<Tensor<T>>| {
        same_result(what, f(&view), f(&copy))
    };
    same("sum", &|t| t.try_sum(axes, keepdim))?;
    same("mean", &|t| t.try_mean(axes, keepdim))?;
    same("max", &|t| t.try_max(axes, keepdim))?;
    same("min", &|t| t.try_min(axes, keepdim))?;
    same("variance", &|t| t.try_variance(axes, keepdim, false))?;
    same("variance unbiased", &|t| {
        t.try_variance(axes, keepdim, true)
    })?;
    same("logsumexp", &|t| t.try_logsumexp(axes, keepdim))?;
    same("sum_to", &|t| t.try_sum_to(target))?;
    same("sum_all", &|t| Ok(t.sum_all()))?;
    same("mean_all", &|t| Ok(t.mean_all()))?;
    if view.numel() > 0 {
        same("max_all", &|t| Ok(t.max_all()))?;
        same("min_all", &|t| Ok(t.min_all()))?;
    }
    for axis in 0..view.rank() {
        prop_assert_eq!(
            view.try_argmax(axis),
            copy.try_argmax(axis),
            "argmax({})",
            axis
        );
        prop_assert_eq!(
            view.try_argmin(axis),
            copy.try_argmin(axis),
            "argmin({})",
            axis
        );
    }
    Ok(())
}

fn check_matmul<T: Float>(a: &ViewSpec, b: &ViewSpec) -> std::result::Result<(), TestCaseError> {
    let (va, ca) = view_and_copy::<T>(a);
    let (vb, cb) = view_and_copy::<T>(b);
    let expected = ca.try_matmul(&cb);
    same_result("matmul(view, view)", va.try_matmul(&vb), expected.clone())?;
    same_result("matmul(view, copy)", va.try_matmul(&cb), expected.clone())?;
    same_result("matmul(copy, view)", ca.try_matmul(&vb), expected)
}

/// `count` indices below `bound` drawn from `seed` (none if `bound` is 0).
fn index_values(seed: u64, count: usize, bound: usize) -> Vec<usize> {
    values(seed, count, Values::Finite)
        .into_iter()
        .map(|x| (x.abs() * 1000.0) as usize % bound.max(1))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check_indexing<T: Float>(
    spec: &ViewSpec,
    axis: usize,
    picks: usize,
    seed: u64,
    source: &ViewSpec,
    others: &[ViewSpec],
    before: usize,
    after: usize,
) -> std::result::Result<(), TestCaseError> {
    let (view, copy) = view_and_copy::<T>(spec);
    let dims = spec.dims();
    let length = dims[axis];
    // gather / scatter_add with an index of the view's shape except `picks` along `axis`.
    let mut index_dims = dims.to_vec();
    index_dims[axis] = picks;
    let count = if length == 0 { 0 } else { numel(&index_dims) };
    if count == numel(&index_dims) {
        let index = Indices::new(index_values(seed, count, length), index_dims.as_slice()).unwrap();
        same_result(
            "gather",
            view.try_gather(axis, &index),
            copy.try_gather(axis, &index),
        )?;
        let (vs, cs) = view_and_copy::<T>(source);
        prop_assert_eq!(vs.dims(), index.dims());
        let expected = copy.try_scatter_add(axis, &index, &cs);
        same_result(
            "scatter_add(view, view)",
            view.try_scatter_add(axis, &index, &vs),
            expected.clone(),
        )?;
        same_result(
            "scatter_add(copy, view)",
            copy.try_scatter_add(axis, &index, &vs),
            expected,
        )?;
        assert_same_bits("scatter_add leaves self alone", &view, &copy)?;
    }
    let picked = index_values(seed ^ 1, if length == 0 { 0 } else { picks }, length);
    same_result(
        "index_select",
        view.try_index_select(axis, &picked),
        copy.try_index_select(axis, &picked),
    )?;
    same_result(
        "pad",
        view.try_pad(axis, before, after),
        copy.try_pad(axis, before, after),
    )?;
    let (other_views, other_copies): (Vec<_>, Vec<_>) =
        others.iter().map(view_and_copy::<T>).unzip();
    let views: Vec<&Tensor<T>> = std::iter::once(&view).chain(&other_views).collect();
    let copies: Vec<&Tensor<T>> = std::iter::once(&copy).chain(&other_copies).collect();
    same_result(
        "concat",
        Tensor::concat(&views, axis),
        Tensor::concat(&copies, axis),
    )?;
    Ok(())
}

/// A view's spec plus reduction arguments: an axis subset, keepdim, and a `sum_to` target that
/// broadcasts to the view's shape.
fn reduction_case() -> impl Strategy<Value = (ViewSpec, Vec<usize>, bool, Vec<usize>)> {
    shape().prop_flat_map(|dims| {
        let rank = dims.len();
        (
            view_of(dims.clone(), Values::WithSpecials),
            axes_subset(rank),
            any::<bool>(),
            broadcast_source(dims),
        )
    })
}

/// Matmul operands: `[m, k]` or `[batch, m, k]` (batch possibly 1) times `[k, n]` or
/// `[batch, k, n]`, each any view.
fn matmul_case() -> impl Strategy<Value = (ViewSpec, ViewSpec)> {
    let small = || prop_oneof![1 => Just(0usize), 2 => Just(1usize), 6 => 2..=6usize];
    (small(), small(), small(), 1..=3usize, 0..4u8).prop_flat_map(
        move |(m, k, n, batch, layout)| {
            let (lhs, rhs) = match layout {
                0 => (vec![m, k], vec![k, n]),
                1 => (vec![batch, m, k], vec![batch, k, n]),
                2 => (vec![batch, m, k], vec![k, n]),
                _ => (vec![1, m, k], vec![batch, k, n]),
            };
            (
                view_of(lhs, Values::WithSpecials),
                view_of(rhs, Values::WithSpecials),
            )
        },
    )
}

/// An indexing case: a view of rank >= 1, an axis, a pick count and seed for the index, a
/// `scatter_add` source view of the index's shape, views to concatenate along the axis, and
/// padding.
#[allow(clippy::type_complexity)]
fn indexing_case() -> impl Strategy<
    Value = (
        ViewSpec,
        usize,
        usize,
        u64,
        ViewSpec,
        Vec<ViewSpec>,
        usize,
        usize,
    ),
> {
    shape_rank_at_least_one().prop_flat_map(|dims| {
        let rank = dims.len();
        (Just(dims), 0..rank, 0..=4usize).prop_flat_map(|(dims, axis, picks)| {
            let mut index_dims = dims.clone();
            index_dims[axis] = picks;
            let other = {
                let dims = dims.clone();
                dim().prop_flat_map(move |size| {
                    let mut d = dims.clone();
                    d[axis] = size;
                    view_of(d, Values::WithSpecials)
                })
            };
            (
                view_of(dims, Values::WithSpecials),
                Just(axis),
                Just(picks),
                any::<u64>(),
                view_of(index_dims, Values::WithSpecials),
                vec(other, 0..=2),
                0..=2usize,
                0..=2usize,
            )
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn views_show_the_elements_their_recipe_selects(spec in any_view(Values::WithSpecials)) {
        check_view_elements::<f64>(&spec)?;
        check_view_elements::<f32>(&spec)?;
    }

    #[test]
    fn unary_kernels_on_views_match_contiguous(spec in any_view(Values::WithSpecials)) {
        check_unary::<f64>(&spec)?;
        check_unary::<f32>(&spec)?;
    }

    #[test]
    fn binary_kernels_on_two_views_match_contiguous(
        (a, b) in broadcast_pair().prop_flat_map(|(a, b)| {
            (view_of(a, Values::WithSpecials), view_of(b, Values::WithSpecials))
        })
    ) {
        check_binary::<f64>(&a, &b)?;
        check_binary::<f32>(&a, &b)?;
    }

    #[test]
    fn select_on_views_matches_contiguous(
        (c, a, b) in shape().prop_flat_map(|out| {
            (broadcast_source(out.clone()), broadcast_source(out.clone()), broadcast_source(out))
        }).prop_flat_map(|(c, a, b)| {
            (
                view_of(c, Values::WithSpecials),
                view_of(a, Values::WithSpecials),
                view_of(b, Values::WithSpecials),
            )
        })
    ) {
        check_select::<f64>(&c, &a, &b)?;
        check_select::<f32>(&c, &a, &b)?;
    }

    #[test]
    fn reductions_on_views_match_contiguous(
        (spec, axes, keepdim, target) in reduction_case()
    ) {
        check_reductions::<f64>(&spec, &axes, keepdim, &target)?;
        check_reductions::<f32>(&spec, &axes, keepdim, &target)?;
    }

    #[test]
    fn matmul_on_views_matches_contiguous((a, b) in matmul_case()) {
        check_matmul::<f64>(&a, &b)?;
        check_matmul::<f32>(&a, &b)?;
    }

    #[test]
    fn indexing_on_views_matches_contiguous(
        (spec, axis, picks, seed, source, others, before, after) in indexing_case()
    ) {
        check_indexing::<f64>(&spec, axis, picks, seed, &source, &others, before, after)?;
        check_indexing::<f32>(&spec, axis, picks, seed, &source, &others, before, after)?;
    }
}

/// The strategies really produce the layouts they claim: transposed, offset, and stride-0 views.
#[test]
fn recipes_produce_non_contiguous_layouts() {
    let base = |dims: Vec<usize>| ViewSpec {
        base_dims: dims,
        steps: Vec::new(),
        seed: 3,
        kind: Values::Finite,
    };
    let mut transposed = base(vec![3, 2]);
    transposed
        .steps
        .push((Step::Permute(vec![1, 0]), vec![2, 3]));
    let t = transposed.build::<f64>();
    assert_eq!(t.strides(), &[1, 2]);
    assert!(!t.is_contiguous());
    assert_eq!(t.to_vec(), transposed.expected::<f64>());

    let mut narrowed = base(vec![4, 5]);
    narrowed.steps.push((
        Step::Narrow {
            before: vec![1, 2],
            after: vec![1, 0],
        },
        vec![2, 3],
    ));
    let n = narrowed.build::<f64>();
    assert_eq!(n.layout().offset(), 5 + 2);
    assert!(!n.is_contiguous());
    let values = narrowed.base_values();
    assert_eq!(
        n.to_vec(),
        vec![
            values[7], values[8], values[9], values[12], values[13], values[14]
        ]
    );

    let mut broadcast = base(vec![3, 1]);
    broadcast.steps.push((
        Step::Broadcast {
            lead: 1,
            ones: vec![false, true],
        },
        vec![2, 3, 4],
    ));
    let b = broadcast.build::<f64>();
    assert_eq!(b.strides(), &[0, 1, 0]);
    assert_eq!(b.to_vec(), broadcast.expected::<f64>());
}

/// Narrowing any axis of an empty tensor gives an empty view that stays inside the (empty)
/// storage (regression: only an empty range along the narrowed axis kept the offset, so
/// `to_vec` sliced past the end of the buffer).
#[test]
fn narrowing_an_empty_tensor_stays_in_bounds() {
    let empty = Tensor::<f64>::zeros([0, 8]);
    let view = empty.narrow(1, 3, 4);
    assert_eq!(view.dims(), &[0, 4]);
    assert_eq!(view.to_vec(), Vec::<f64>::new());
    assert_eq!(view.contiguous().numel(), 0);
    assert_eq!(view.exp().dims(), &[0, 4]);
    let grid = Tensor::<f32>::zeros([3, 0, 5])
        .narrow(2, 4, 1)
        .narrow(0, 2, 1);
    assert_eq!(grid.dims(), &[1, 0, 1]);
    assert!(grid.to_vec().is_empty());
    assert_eq!(grid.sum(&[1], false).to_vec(), vec![0.0]);
}
