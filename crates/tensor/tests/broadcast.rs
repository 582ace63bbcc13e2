//! Broadcasting: output shapes follow NumPy's rules (computed here independently), a
//! broadcasting op equals the same op on explicitly expanded operands, expanded operands hold
//! the right elements, and incompatible shapes are rejected with a message naming the op and
//! both shapes.

mod common;

use common::*;
use proptest::prelude::*;
use tensor::{Float, Result, Shape, Tensor};

type Binary<T> = fn(&Tensor<T>, &Tensor<T>) -> Tensor<T>;
type TryBinary<T> = fn(&Tensor<T>, &Tensor<T>) -> Result<Tensor<T>>;

/// Every broadcasting binary op: name, panicking form, fallible form, and the scalar rule the
/// op must apply to each pair, written out here.
#[allow(clippy::type_complexity)]
fn binary_ops<T: Float>() -> Vec<(&'static str, Binary<T>, TryBinary<T>, fn(T, T) -> T)> {
    fn mask<T: Float>(b: bool) -> T {
        if b { T::ONE } else { T::ZERO }
    }
    vec![
        ("add", Tensor::add, Tensor::try_add, |x, y| x + y),
        ("sub", Tensor::sub, Tensor::try_sub, |x, y| x - y),
        ("mul", Tensor::mul, Tensor::try_mul, |x, y| x * y),
        ("div", Tensor::div, Tensor::try_div, |x, y| x / y),
        ("maximum", Tensor::maximum, Tensor::try_maximum, |x, y| {
            if x.is_nan() || y.is_nan() {
                T::NAN
            } else if x >= y {
                x
            } else {
                y
            }
        }),
        ("minimum", Tensor::minimum, Tensor::try_minimum, |x, y| {
            if x.is_nan() || y.is_nan() {
                T::NAN
            } else if x <= y {
                x
            } else {
                y
            }
        }),
        ("equal", Tensor::equal, Tensor::try_equal, |x, y| {
            mask(x == y)
        }),
        (
            "not_equal",
            Tensor::not_equal,
            Tensor::try_not_equal,
            |x, y| mask(x != y),
        ),
        ("less", Tensor::less, Tensor::try_less, |x, y| mask(x < y)),
        (
            "less_equal",
            Tensor::less_equal,
            Tensor::try_less_equal,
            |x, y| mask(x <= y),
        ),
        ("greater", Tensor::greater, Tensor::try_greater, |x, y| {
            mask(x > y)
        }),
        (
            "greater_equal",
            Tensor::greater_equal,
            Tensor::try_greater_equal,
            |x, y| mask(x >= y),
        ),
    ]
}

/// The elements of `source` (row-major, shape `from`) broadcast to `to`, by index arithmetic:
/// missing leading axes and size-1 axes read index 0.
fn expand<T: Copy>(source: &[T], from: &[usize], to: &[usize]) -> Vec<T> {
    let lead = to.len() - from.len();
    multi_indices(to)
        .into_iter()
        .map(|index| {
            let source_index: Vec<usize> = from
                .iter()
                .enumerate()
                .map(|(axis, &size)| if size == 1 { 0 } else { index[lead + axis] })
                .collect();
            source[flat(from, &source_index)]
        })
        .collect()
}

fn check_expansion<T: Float>(
    a_dims: &[usize],
    b_dims: &[usize],
    seed: u64,
) -> std::result::Result<(), TestCaseError> {
    let out = numpy_broadcast(a_dims, b_dims).expect("the strategy makes compatible pairs");
    let a_values = values(seed, numel(a_dims), Values::WithSpecials);
    let b_values = values(seed.wrapping_add(1), numel(b_dims), Values::WithSpecials);
    let a = tensor::<T>(&a_values, a_dims);
    let b = tensor::<T>(&b_values, b_dims);
    let a_wide = a.broadcast_to(out.as_slice());
    let b_wide = b.broadcast_to(out.as_slice());
    // The expanded views hold what index arithmetic says they hold.
    let a_expected = expand(&cast_values::<T>(&a_values), a_dims, &out);
    let b_expected = expand(&cast_values::<T>(&b_values), b_dims, &out);
    assert_identical_vec("a.broadcast_to", &a_wide.to_vec(), &a_expected)?;
    assert_identical_vec("b.broadcast_to", &b_wide.to_vec(), &b_expected)?;
    let (a_full, b_full) = (a_wide.contiguous(), b_wide.contiguous());
    for (name, op, try_op, rule) in binary_ops::<T>() {
        let result = op(&a, &b);
        prop_assert_eq!(result.dims(), out.as_slice(), "{}: output shape", name);
        assert_same_bits(name, &result, &op(&a_full, &b_full))?;
        assert_same_bits(name, &try_op(&a, &b).unwrap(), &result)?;
        let by_rule = result.to_vec();
        for (i, (&x, &y)) in a_expected.iter().zip(&b_expected).enumerate() {
            prop_assert!(
                same_value(by_rule[i].to_f64(), rule(x, y).to_f64()),
                "{}({:?}, {:?}) gave {:?} at {}",
                name,
                x,
                y,
                by_rule[i],
                i
            );
        }
    }
    // accumulate is add, whether or not `a` already has the output shape.
    assert_same_bits(
        "accumulate",
        &a.clone().accumulate(&b),
        &a_full.add(&b_full),
    )?;
    Ok(())
}

fn check_rejection<T: Float>(
    a_dims: &[usize],
    b_dims: &[usize],
) -> std::result::Result<(), TestCaseError> {
    let a = Tensor::<T>::zeros(a_dims);
    let b = Tensor::<T>::ones(b_dims);
    let shapes = format!("{} with {}", fmt_dims(a_dims), fmt_dims(b_dims));
    for (name, op, try_op, _) in binary_ops::<T>() {
        let expected = format!("{name}: cannot broadcast {shapes}");
        prop_assert_eq!(try_op(&a, &b).unwrap_err().to_string(), expected.clone());
        let message = panic_message(|| op(&a, &b));
        prop_assert_eq!(message, expected);
    }
    let operators: [(&str, Binary<T>); 4] = [
        ("add", |a, b| a + b),
        ("sub", |a, b| a - b),
        ("mul", |a, b| a * b),
        ("div", |a, b| a / b),
    ];
    for (name, op) in operators {
        let message = panic_message(|| op(&a, &b));
        prop_assert_eq!(message, format!("{name}: cannot broadcast {shapes}"));
    }
    prop_assert_eq!(
        a.try_zip_map(&b, "hypot", |x, _| x)
            .unwrap_err()
            .to_string(),
        format!("hypot: cannot broadcast {shapes}")
    );
    prop_assert_eq!(
        Tensor::try_select(&a, &b, &a).unwrap_err().to_string(),
        format!("select: cannot broadcast {shapes}")
    );
    let message = panic_message(|| a.clone().accumulate(&b));
    prop_assert_eq!(message, format!("accumulate: cannot broadcast {shapes}"));
    prop_assert_eq!(
        Shape::from(a_dims)
            .broadcast_with("op", &Shape::from(b_dims))
            .unwrap_err()
            .to_string(),
        format!("op: cannot broadcast {shapes}")
    );
    Ok(())
}

/// Two independent random shapes that do not broadcast together.
fn incompatible_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape_rank_at_least_one(), shape_rank_at_least_one())
        .prop_filter("compatible", |(a, b)| numpy_broadcast(a, b).is_none())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn broadcast_shape_follows_numpy_rules(a in shape(), b in shape()) {
        let expected = numpy_broadcast(&a, &b);
        let actual = Shape::from(&a).broadcast_with("add", &Shape::from(&b));
        match (&expected, &actual) {
            (Some(dims), Ok(shape)) => prop_assert_eq!(shape.dims(), dims.as_slice()),
            (None, Err(_)) => {}
            _ => prop_assert!(false, "{:?} with {:?}: NumPy says {:?}, crate says {:?}", a, b, expected, actual),
        }
        let sum = Tensor::<f32>::zeros(a.as_slice()).try_add(&Tensor::zeros(b.as_slice()));
        prop_assert_eq!(sum.ok().map(|t| t.dims().to_vec()), expected);
    }

    #[test]
    fn binary_ops_equal_explicit_expansion((a, b) in broadcast_pair(), seed in any::<u64>()) {
        check_expansion::<f64>(&a, &b, seed)?;
        check_expansion::<f32>(&a, &b, seed)?;
    }

    #[test]
    fn incompatible_shapes_are_rejected_by_name((a, b) in incompatible_pair()) {
        check_rejection::<f64>(&a, &b)?;
        check_rejection::<f32>(&a, &b)?;
    }

    #[test]
    fn broadcast_to_reads_the_source_with_stride_zero(
        (to, from) in broadcast_target_and_source(),
        seed in any::<u64>(),
    ) {
        let source_values = values(seed, numel(&from), Values::WithSpecials);
        let source = tensor::<f64>(&source_values, &from);
        let wide = source.broadcast_to(to.as_slice());
        prop_assert_eq!(wide.dims(), to.as_slice());
        prop_assert!(wide.shares_storage_with(&source));
        assert_identical_vec("broadcast_to", &wide.to_vec(), &expand(&source_values, &from, &to))?;
        // Stretched and new axes step 0 through storage; the rest keep the source's strides.
        let lead = to.len() - from.len();
        for axis in 0..to.len() {
            if axis < lead || (from[axis - lead] == 1 && to[axis] != 1) {
                prop_assert_eq!(wide.strides()[axis], 0, "axis {}", axis);
            } else {
                prop_assert_eq!(wide.strides()[axis], source.strides()[axis - lead]);
            }
        }
    }

    #[test]
    fn broadcast_to_rejects_incompatible_targets(from in shape(), to in shape()) {
        let reachable = from.len() <= to.len()
            && numpy_broadcast(&from, &to).as_deref() == Some(to.as_slice());
        let result = Tensor::<f32>::zeros(from.as_slice()).try_broadcast_to(to.as_slice());
        match result {
            Ok(t) => {
                prop_assert!(reachable, "{:?} -> {:?} accepted", from, to);
                prop_assert_eq!(t.dims(), to.as_slice());
            }
            Err(e) => {
                prop_assert!(!reachable, "{:?} -> {:?} rejected", from, to);
                prop_assert_eq!(
                    e.to_string(),
                    format!("broadcast_to: cannot broadcast {} to {}", fmt_dims(&from), fmt_dims(&to))
                );
            }
        }
    }

    #[test]
    fn select_broadcasts_all_three_operands(
        (c, a, b) in shape().prop_flat_map(|out| {
            (broadcast_source(out.clone()), broadcast_source(out.clone()), broadcast_source(out))
        }),
        seed in any::<u64>(),
    ) {
        let out = numpy_broadcast(&numpy_broadcast(&c, &a).unwrap(), &b).unwrap();
        let (cv, av, bv) = (
            values(seed, numel(&c), Values::WithSpecials),
            values(seed ^ 1, numel(&a), Values::WithSpecials),
            values(seed ^ 2, numel(&b), Values::WithSpecials),
        );
        let chosen = Tensor::select(&tensor::<f64>(&cv, &c), &tensor(&av, &a), &tensor(&bv, &b));
        prop_assert_eq!(chosen.dims(), out.as_slice());
        let (ce, ae, be) = (expand(&cv, &c, &out), expand(&av, &a, &out), expand(&bv, &b, &out));
        let expected: Vec<f64> = (0..ce.len())
            .map(|i| if ce[i] != 0.0 { ae[i] } else { be[i] })
            .collect();
        assert_identical_vec("select", &chosen.to_vec(), &expected)?;
    }
}
