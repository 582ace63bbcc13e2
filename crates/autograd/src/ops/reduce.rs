//! Reduction primitives: sum and max over a set of axes.
//!
//! Kink convention for max: when several elements tie for the maximum, the gradient is split
//! equally among them (as `torch.amax`), which keeps it a valid subgradient and symmetric.

use tensor::{Float, Tensor};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::{Primitive, axes_of, present};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Sum over `axes`; `keepdim` keeps them as size-1 axes.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::ones([2, 3]));
    /// let row_sums = x.sum(&[1], false);
    /// assert_eq!(row_sums.value().to_vec(), vec![3.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn sum(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_sum(axes, keepdim))
    }

    /// Fallible [`sum`](Var::sum).
    #[track_caller]
    pub fn try_sum(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = self.shape().axis_mask("sum", axes)?;
        self.tape
            .apply_primitive(Primitive::Sum { axes, keepdim }, [self])
    }

    /// Sum of all elements (a rank-0 result).
    #[track_caller]
    pub fn sum_all(self) -> Var<'t, T> {
        or_panic(self.try_sum_all())
    }

    /// Fallible [`sum_all`](Var::sum_all) (fails only in anomaly mode).
    #[track_caller]
    pub fn try_sum_all(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_sum(&axes, false)
    }

    /// Maximum over `axes`. Ties share the gradient equally.
    #[track_caller]
    pub fn max(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_max(axes, keepdim))
    }

    /// Fallible [`max`](Var::max).
    #[track_caller]
    pub fn try_max(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = self.shape().axis_mask("max", axes)?;
        self.tape
            .apply_primitive(Primitive::Max { axes, keepdim }, [self])
    }

    /// Maximum of all elements (a rank-0 result).
    #[track_caller]
    pub fn max_all(self) -> Var<'t, T> {
        or_panic(self.try_max_all())
    }

    /// Fallible [`max_all`](Var::max_all).
    #[track_caller]
    pub fn try_max_all(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_max(&axes, false)
    }
}

/// sum over the axes in `mask`.
pub(crate) fn sum_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    mask: &u64,
    keepdim: &bool,
) -> tensor::Result<Tensor<T>> {
    x.try_sum(&axes_of(*mask), *keepdim)
}

/// max over the axes in `mask`.
pub(crate) fn max_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    mask: &u64,
    keepdim: &bool,
) -> tensor::Result<Tensor<T>> {
    x.try_max(&axes_of(*mask), *keepdim)
}

/// d sum(x) = g broadcast back over the reduced axes.
pub(crate) fn sum_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    mask: &u64,
    _: &bool,
) -> [Option<O>; 1] {
    let shape = x.shape();
    [Some(
        grad.reshape(&shape.reduced(*mask, true))
            .broadcast_to(&shape),
    )]
}

/// d max(x) = g broadcast back, divided among the positions that attain the maximum.
pub(crate) fn max_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    y: &O,
    _: [bool; 1],
    mask: &u64,
    _: &bool,
) -> [Option<O>; 1] {
    let shape = x.shape();
    let kept = shape.reduced(*mask, true);
    let at_max = x.value().equal(&y.value().reshape(&kept));
    let share = grad.constant(at_max.sum(&axes_of(*mask), true).recip());
    [Some(
        grad.reshape(&kept)
            .mul(&share)
            .broadcast_to(&shape)
            .where_or_zero(&at_max),
    )]
}

/// t sum(x) = sum(t) over the same axes.
pub(crate) fn sum_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    [x]: [&O; 1],
    y: &O,
    mask: &u64,
    _: &bool,
) -> O {
    present(t)
        .sum_to(&x.shape().reduced(*mask, true))
        .reshape(&y.shape())
}

/// t max(x) = the mean of t over the positions attaining the maximum (ties share equally, so
/// this is the transpose of the backward rule).
pub(crate) fn max_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    [x]: [&O; 1],
    y: &O,
    mask: &u64,
    _: &bool,
) -> O {
    let t = present(t);
    let kept = x.shape().reduced(*mask, true);
    let at_max = x.value().equal(&y.value().reshape(&kept));
    let share = t.constant(at_max.sum(&axes_of(*mask), true).recip());
    t.where_or_zero(&at_max)
        .sum_to(&kept)
        .mul(&share)
        .reshape(&y.shape())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;

    fn grid() -> Tensor<f64> {
        Tensor::from_vec(
            (0..24)
                .map(|v| ((v * 7) % 24) as f64 * 0.37 - 3.0)
                .collect(),
            [2, 3, 4],
        )
        .unwrap()
    }

    #[test]
    fn sum_gradients_over_axis_subsets() {
        for (axes, keepdim) in [
            (vec![0], false),
            (vec![1, 2], true),
            (vec![2, 0], false),
            (vec![], false),
        ] {
            assert_gradcheck(move |x| x[0].sum(&axes, keepdim).square(), &[grid()]);
        }
        assert_gradcheck(|x| x[0].sum_all(), &[grid()]);
    }

    #[test]
    fn max_gradients_without_ties() {
        for (axes, keepdim) in [(vec![0], true), (vec![1], false), (vec![0, 2], false)] {
            assert_gradcheck(move |x| x[0].max(&axes, keepdim), &[grid()]);
        }
    }

    #[test]
    fn max_ties_split_the_gradient_equally() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![2.0, 5.0, 5.0, 1.0, 5.0, 0.0], [2, 3]).unwrap());
        let grads = x.max_all().backward();
        assert_eq!(
            grads.wrt(x).to_vec(),
            vec![0.0, 1.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0, 0.0]
        );
        let per_row = x.max(&[1], false).sum_all().backward();
        assert_eq!(per_row.wrt(x).to_vec(), vec![0.0, 0.5, 0.5, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn bad_axes_are_refused_before_recording() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::zeros([2, 3]));
        let before = tape.len();
        assert_eq!(
            x.try_sum(&[2], false).unwrap_err().to_string(),
            "sum: axis 2 is out of range for shape [2, 3] (rank 2)"
        );
        assert_eq!(
            x.try_max(&[1, 1], false).unwrap_err().to_string(),
            "max: axis 1 is given twice for shape [2, 3]"
        );
        let empty = tape.leaf(Tensor::zeros([0, 3]));
        assert_eq!(
            empty.try_max(&[0], false).unwrap_err().to_string(),
            "max: cannot reduce over an empty axis of shape [0, 3]"
        );
        assert_eq!(tape.len(), before + 1);
    }
}
