//! Movement primitives: expand (broadcast), reshape, permute, narrow, pad. None of them does
//! arithmetic; their values are views where the tensor crate allows it (expand, permute,
//! narrow, reshape of contiguous data).
//!
//! `expand_backward` is the one place where a gradient is summed back over broadcast axes.

use std::ops::Range;

use tensor::{Dims, Float, Shape, Tensor, TensorError};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::{AxisPad, AxisRange, Primitive, present};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Records an `expand` to `out` unless `current` (this Var's shape) already equals it.
    #[track_caller]
    pub(crate) fn try_expand(self, out: &Shape, current: &Shape) -> Result<Var<'t, T>> {
        if out == current {
            return Ok(self);
        }
        check_expandable::<T>("expand", out)?;
        let op = Primitive::Expand {
            shape: Box::new(out.clone()),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// Broadcasts to `shape` by NumPy rules (a view: no copy). The gradient is summed back.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl Into<Shape>) -> Var<'t, T> {
        or_panic(self.try_broadcast_to(shape))
    }

    /// Fallible [`broadcast_to`](Var::broadcast_to).
    #[track_caller]
    pub fn try_broadcast_to(self, shape: impl Into<Shape>) -> Result<Var<'t, T>> {
        let shape = shape.into();
        let current = self.shape();
        if shape == current {
            return Ok(self);
        }
        check_expandable::<T>("broadcast_to", &shape)?;
        self.try_expand(&shape, &current)
    }

    /// Sums over the axes that broadcasting `shape` to this Var's shape would repeat (the
    /// reverse of [`broadcast_to`](Var::broadcast_to)), composed of `sum` and `reshape`.
    #[track_caller]
    pub fn sum_to(self, shape: &Shape) -> Var<'t, T> {
        or_panic(self.try_sum_to(shape))
    }

    /// Fallible [`sum_to`](Var::sum_to).
    #[track_caller]
    pub fn try_sum_to(self, shape: &Shape) -> Result<Var<'t, T>> {
        let current = self.shape();
        if &current == shape {
            return Ok(self);
        }
        // Tensor::sum_to's axes.
        let axes = current.sum_to_axes("sum_to", shape)?;
        let guard = self.tape.rollback_guard();
        let result = self.try_sum(&axes, true)?.try_reshape(shape)?;
        Ok(guard.commit(result))
    }

    /// The same elements under a new shape of equal element count (a view when contiguous).
    #[track_caller]
    pub fn reshape(self, shape: impl Into<Shape>) -> Var<'t, T> {
        or_panic(self.try_reshape(shape))
    }

    /// Fallible [`reshape`](Var::reshape).
    #[track_caller]
    pub fn try_reshape(self, shape: impl Into<Shape>) -> Result<Var<'t, T>> {
        let op = Primitive::Reshape {
            shape: Box::new(shape.into()),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// Reorders the axes: axis `i` of the result is axis `permutation[i]`.
    #[track_caller]
    pub fn permute(self, permutation: &[usize]) -> Var<'t, T> {
        or_panic(self.try_permute(permutation))
    }

    /// Fallible [`permute`](Var::permute).
    #[track_caller]
    pub fn try_permute(self, permutation: &[usize]) -> Result<Var<'t, T>> {
        let op = Primitive::Permute {
            order: Box::new(Dims::from_slice(permutation)),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// Swaps two axes.
    #[track_caller]
    pub fn transpose(self, axis_a: usize, axis_b: usize) -> Var<'t, T> {
        or_panic(self.try_transpose(axis_a, axis_b))
    }

    /// Fallible [`transpose`](Var::transpose).
    #[track_caller]
    pub fn try_transpose(self, axis_a: usize, axis_b: usize) -> Result<Var<'t, T>> {
        let shape = self.shape();
        shape.check_axis("transpose", axis_a)?;
        shape.check_axis("transpose", axis_b)?;
        let mut order: Vec<usize> = (0..shape.rank()).collect();
        order.swap(axis_a, axis_b);
        self.try_permute(&order)
    }

    /// Swaps the last two axes (matrix transpose). Panics below rank 2.
    #[track_caller]
    pub fn t(self) -> Var<'t, T> {
        or_panic(self.try_t())
    }

    /// Fallible [`t`](Var::t).
    #[track_caller]
    pub fn try_t(self) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let rank = shape.rank();
        if rank < 2 {
            return Err(TensorError::InvalidArgument {
                op: "t",
                message: format!("needs rank >= 2, got shape {shape}"),
            }
            .into());
        }
        self.try_transpose(rank - 2, rank - 1)
    }

    /// The elements `start..start + len` along `axis`.
    #[track_caller]
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Var<'t, T> {
        or_panic(self.try_narrow(axis, start, len))
    }

    /// Fallible [`narrow`](Var::narrow).
    #[track_caller]
    pub fn try_narrow(self, axis: usize, start: usize, len: usize) -> Result<Var<'t, T>> {
        let op = Primitive::Narrow {
            range: Box::new(AxisRange { axis, start, len }),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// The elements in `range` along `axis`.
    #[track_caller]
    pub fn slice(self, axis: usize, range: Range<usize>) -> Var<'t, T> {
        or_panic(self.try_slice(axis, range))
    }

    /// Fallible [`slice`](Var::slice); a reversed range is an error.
    #[track_caller]
    pub fn try_slice(self, axis: usize, range: Range<usize>) -> Result<Var<'t, T>> {
        let len =
            range
                .end
                .checked_sub(range.start)
                .ok_or_else(|| TensorError::InvalidArgument {
                    op: "slice",
                    message: format!("range {}..{} is reversed", range.start, range.end),
                })?;
        self.try_narrow(axis, range.start, len)
    }

    /// Zero padding along `axis`: `before` zeros, the elements, `after` zeros.
    #[track_caller]
    pub fn pad(self, axis: usize, before: usize, after: usize) -> Var<'t, T> {
        or_panic(self.try_pad(axis, before, after))
    }

    /// Fallible [`pad`](Var::pad).
    #[track_caller]
    pub fn try_pad(self, axis: usize, before: usize, after: usize) -> Result<Var<'t, T>> {
        let op = Primitive::Pad {
            padding: Box::new(AxisPad {
                axis,
                before,
                after,
            }),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// Removes `axis`, which must have size 1 (a reshape).
    #[track_caller]
    pub fn squeeze(self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_squeeze(axis))
    }

    /// Fallible [`squeeze`](Var::squeeze).
    #[track_caller]
    pub fn try_squeeze(self, axis: usize) -> Result<Var<'t, T>> {
        let shape = self.value().try_squeeze(axis)?.shape().clone();
        self.try_reshape(shape)
    }

    /// Inserts a size-1 axis before `axis` (a reshape).
    #[track_caller]
    pub fn unsqueeze(self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_unsqueeze(axis))
    }

    /// Fallible [`unsqueeze`](Var::unsqueeze).
    #[track_caller]
    pub fn try_unsqueeze(self, axis: usize) -> Result<Var<'t, T>> {
        let shape = self.value().try_unsqueeze(axis)?.shape().clone();
        self.try_reshape(shape)
    }

    /// All elements as a rank-1 Var.
    #[track_caller]
    pub fn flatten(self) -> Var<'t, T> {
        or_panic(self.try_flatten())
    }

    /// Fallible [`flatten`](Var::flatten) (fails only in anomaly mode).
    #[track_caller]
    pub fn try_flatten(self) -> Result<Var<'t, T>> {
        let numel = self.shape().numel();
        self.try_reshape([numel])
    }
}

/// An expanded Var is a view, but every op after it (and its gradient) materialises its
/// logical size: refuse one that cannot be allocated, here, with the op's name, rather than
/// fail inside a later op.
fn check_expandable<T: Float>(op: &'static str, shape: &Shape) -> Result<()> {
    let numel = shape
        .dims()
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    let bytes = numel.and_then(|n| n.checked_mul(std::mem::size_of::<T>()));
    let possible = bytes.is_some_and(|b| {
        b < 64 << 20
            || Vec::<T>::new()
                .try_reserve_exact(numel.unwrap_or(0))
                .is_ok()
    });
    if possible {
        Ok(())
    } else {
        Err(TensorError::InvalidArgument {
            op,
            message: format!("shape {shape} has more elements than can be allocated"),
        }
        .into())
    }
}

/// x viewed as `shape` by broadcasting.
pub(crate) fn expand_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    shape: &Shape,
) -> tensor::Result<Tensor<T>> {
    x.try_broadcast_to(shape)
}

/// x under a new shape.
pub(crate) fn reshape_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    shape: &Shape,
) -> tensor::Result<Tensor<T>> {
    x.try_reshape(shape)
}

/// x with its axes reordered.
pub(crate) fn permute_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    order: &Dims,
) -> tensor::Result<Tensor<T>> {
    x.try_permute(order)
}

/// A range of x along an axis.
pub(crate) fn narrow_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    range: &AxisRange,
) -> tensor::Result<Tensor<T>> {
    x.try_narrow(range.axis, range.start, range.len)
}

/// x with zeros around it along an axis.
pub(crate) fn pad_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    padding: &AxisPad,
) -> tensor::Result<Tensor<T>> {
    x.try_pad(padding.axis, padding.before, padding.after)
}

/// d expand(x) = g summed over the broadcast axes, back to x's shape.
pub(crate) fn expand_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    _: &Shape,
) -> [Option<O>; 1] {
    [Some(grad.sum_to(&x.shape()))]
}

/// d reshape(x) = g reshaped to x's shape.
pub(crate) fn reshape_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    _: &Shape,
) -> [Option<O>; 1] {
    [Some(grad.reshape(&x.shape()))]
}

/// d permute(x, p) = g permuted by the inverse of p.
pub(crate) fn permute_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    _: &O,
    _: [bool; 1],
    order: &Dims,
) -> [Option<O>; 1] {
    let mut inverse = vec![0; order.len()];
    for (position, &axis) in order.iter().enumerate() {
        inverse[axis] = position;
    }
    [Some(grad.permute(&inverse))]
}

/// d narrow(x, axis, start, len) = g padded with zeros back to x's extent along `axis`.
pub(crate) fn narrow_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    range: &AxisRange,
) -> [Option<O>; 1] {
    let full = x.shape().dims()[range.axis];
    let after = full - range.start - range.len;
    [Some(grad.pad(range.axis, range.start, after))]
}

/// d pad(x, axis, before, after) = the middle of g along `axis`.
pub(crate) fn pad_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    padding: &AxisPad,
) -> [Option<O>; 1] {
    let len = x.shape().dims()[padding.axis];
    [Some(grad.narrow(padding.axis, padding.before, len))]
}

/// t expand(x) = expand(t): broadcasting is linear.
pub(crate) fn expand_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    shape: &Shape,
) -> O {
    present(t).broadcast_to(shape)
}

/// t reshape(x) = reshape(t).
pub(crate) fn reshape_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    shape: &Shape,
) -> O {
    present(t).reshape(shape)
}

/// t permute(x, p) = permute(t, p).
pub(crate) fn permute_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    order: &Dims,
) -> O {
    present(t).permute(order)
}

/// t narrow(x) = narrow(t).
pub(crate) fn narrow_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    range: &AxisRange,
) -> O {
    present(t).narrow(range.axis, range.start, range.len)
}

/// t pad(x) = pad(t).
pub(crate) fn pad_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    padding: &AxisPad,
) -> O {
    present(t).pad(padding.axis, padding.before, padding.after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;
    use tensor::Tensor;

    fn grid() -> Tensor<f64> {
        Tensor::from_vec((0..24).map(|v| v as f64 * 0.21 - 2.0).collect(), [2, 3, 4]).unwrap()
    }

    /// A weighting that makes every output element's gradient distinct.
    fn weighted<'t>(y: Var<'t, f64>) -> Var<'t, f64> {
        let n = y.shape().numel();
        let weights = Tensor::arange(1.0, n as f64 + 1.0, 1.0).unwrap();
        let weights = Tensor::reshape(&weights, y.shape());
        (y * y.tape().constant(weights)).sum_all()
    }

    #[test]
    fn movement_gradients() {
        assert_gradcheck(|x| weighted(x[0].reshape([6, 4])), &[grid()]);
        assert_gradcheck(|x| weighted(x[0].permute(&[2, 0, 1])), &[grid()]);
        assert_gradcheck(|x| weighted(x[0].t()), &[grid()]);
        assert_gradcheck(|x| weighted(x[0].narrow(2, 1, 2)), &[grid()]);
        assert_gradcheck(|x| weighted(x[0].pad(1, 2, 1)), &[grid()]);
        assert_gradcheck(
            |x| weighted(x[0].narrow(0, 1, 1).squeeze(0).unsqueeze(2)),
            &[grid()],
        );
        let column = Tensor::from_vec(vec![0.5, -1.0, 2.0], [3, 1]).unwrap();
        assert_gradcheck(|x| weighted(x[0].broadcast_to([2, 3, 4])), &[column]);
    }

    #[test]
    fn sum_to_reverses_broadcast_on_vars() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid());
        let summed = x.sum_to(&Shape::from([3, 1]));
        assert_eq!(summed.value(), Tensor::sum_to(&grid(), [3, 1]));
        assert!(x.try_sum_to(&Shape::from([5])).is_err());
    }

    #[test]
    fn failed_movement_leaves_the_tape_unchanged() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid());
        let before = tape.len();
        assert_eq!(
            x.try_reshape([5]).unwrap_err().to_string(),
            "reshape: cannot reshape [2, 3, 4] (24 elements) to [5] (5 elements)"
        );
        assert!(x.try_permute(&[0, 1]).is_err());
        assert!(x.try_narrow(2, 3, 2).is_err());
        assert!(x.try_pad(3, 1, 1).is_err());
        assert!(x.try_broadcast_to([4]).is_err());
        assert_eq!(tape.len(), before);
    }
}
