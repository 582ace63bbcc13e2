//! Composites written in both crates agree to the bit: `Var`'s mean, variance, logsumexp,
//! sum_to, min, maximum and minimum compute what `Tensor`'s do, with the same formula, on
//! random shapes, axes and memory layouts (one implementation of each formula).

use autograd::Tape;
use autograd::testing::{Domain, Sizes, shape_strategy, tensor_strategy};
use proptest::prelude::*;
use proptest::sample::subsequence;
use tensor::Tensor;

fn bits(t: &Tensor<f64>) -> Vec<u64> {
    t.to_vec().iter().map(|x| x.to_bits()).collect()
}

/// A tensor and a subset of its axes.
fn with_axes() -> impl Strategy<Value = (Tensor<f64>, Vec<usize>)> {
    shape_strategy(1..=3, Sizes::NON_EMPTY).prop_flat_map(|shape| {
        let rank = shape.rank();
        (
            tensor_strategy(shape, Domain::Any),
            subsequence((0..rank).collect::<Vec<_>>(), 1..=rank),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reductions_agree_to_the_bit(((x, axes), keepdim, unbiased) in (with_axes(), any::<bool>(), any::<bool>())) {
        let tape = Tape::<f64>::new();
        let v = tape.leaf(x.clone());
        prop_assert_eq!(bits(&v.mean(&axes, keepdim).value()), bits(&x.mean(&axes, keepdim)));
        prop_assert_eq!(
            bits(&v.variance(&axes, keepdim, unbiased).value()),
            bits(&x.variance(&axes, keepdim, unbiased))
        );
        prop_assert_eq!(bits(&v.logsumexp(&axes, keepdim).value()), bits(&x.logsumexp(&axes, keepdim)));
        prop_assert_eq!(bits(&v.min(&axes, keepdim).value()), bits(&x.min(&axes, keepdim)));
        prop_assert_eq!(bits(&v.max(&axes, keepdim).value()), bits(&x.max(&axes, keepdim)));
        let reduced = x.shape().reduced(x.shape().axis_mask("t", &axes).unwrap(), true);
        prop_assert_eq!(bits(&v.sum_to(&reduced).value()), bits(&x.sum_to(&reduced)));
    }

    #[test]
    fn element_wise_extrema_agree_to_the_bit(
        (a, b) in shape_strategy(0..=3, Sizes::NON_EMPTY).prop_flat_map(|s| {
            (tensor_strategy(s.clone(), Domain::Any), tensor_strategy(s, Domain::Any))
        }),
        tie in any::<bool>(),
    ) {
        // Ties (b = a) are where the two used to differ.
        let b = if tie { a.clone() } else { b };
        let tape = Tape::<f64>::new();
        let (va, vb) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
        prop_assert_eq!(bits(&va.maximum(vb).value()), bits(&a.maximum(&b)));
        prop_assert_eq!(bits(&va.minimum(vb).value()), bits(&a.minimum(&b)));
    }
}

#[test]
fn extreme_ties_are_exact() {
    // Equal values above half the type's maximum used to overflow to inf ((a + b) * 0.5), and the
    // smallest subnormal to round to 0 (a * 0.5 + b * 0.5).
    let tape = Tape::<f64>::new();
    for value in [f64::MAX, -f64::MAX, 5e-324, -0.0, 0.0] {
        let a = tape.leaf(Tensor::from_vec(vec![value], [1]).unwrap());
        let b = tape.leaf(Tensor::from_vec(vec![value], [1]).unwrap());
        assert_eq!(
            a.maximum(b).value().item().to_bits(),
            value.to_bits(),
            "{value:e}"
        );
        assert_eq!(
            a.minimum(b).value().item().to_bits(),
            value.to_bits(),
            "{value:e}"
        );
        let grads = a.maximum(b).sum_all().backward();
        assert_eq!((grads.wrt(a).item(), grads.wrt(b).item()), (0.5, 0.5));
    }
}
