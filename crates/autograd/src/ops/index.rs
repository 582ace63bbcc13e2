//! Indexing primitives: gather and its transpose, scatter-add. Indices are data: no gradient
//! flows into them.

use tensor::{Float, Indices, Shape, Tensor, TensorError};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::{AxisIndex, AxisScatter, Primitive, present};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// One element along `axis` per index: `out[.., j, ..] = x[.., index[.., j, ..], ..]`.
    /// `index` has this Var's rank and its sizes on every other axis.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::{Indices, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.leaf(Tensor::zeros([2, 3]));
    /// let picked = logits.gather(1, &Indices::new(vec![2, 0], [2, 1]).unwrap());
    /// let grads = picked.sum_all().backward();
    /// assert_eq!(grads.wrt(logits).to_vec(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn gather(self, axis: usize, index: &Indices) -> Var<'t, T> {
        or_panic(self.try_gather(axis, index))
    }

    /// Fallible [`gather`](Var::gather).
    #[track_caller]
    pub fn try_gather(self, axis: usize, index: &Indices) -> Result<Var<'t, T>> {
        let op = Primitive::Gather {
            arg: Box::new(AxisIndex {
                axis,
                index: index.clone(),
            }),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// `zeros(shape)` with this Var's elements added at `index` along `axis` (repeated indices
    /// add up): the transpose of [`gather`](Var::gather).
    #[track_caller]
    pub fn scatter_add_into(self, shape: &Shape, axis: usize, index: &Indices) -> Var<'t, T> {
        or_panic(self.try_scatter_add_into(shape, axis, index))
    }

    /// Fallible [`scatter_add_into`](Var::scatter_add_into).
    #[track_caller]
    pub fn try_scatter_add_into(
        self,
        shape: &Shape,
        axis: usize,
        index: &Indices,
    ) -> Result<Var<'t, T>> {
        let op = Primitive::ScatterAdd {
            arg: Box::new(AxisScatter {
                axis,
                index: index.clone(),
                shape: shape.clone(),
            }),
        };
        self.tape.apply_primitive(op, [self])
    }

    /// The slices at `indices` along `axis`, in order (repeats allowed), composed from
    /// [`gather`](Var::gather).
    #[track_caller]
    pub fn index_select(self, axis: usize, indices: &[usize]) -> Var<'t, T> {
        or_panic(self.try_index_select(axis, indices))
    }

    /// Fallible [`index_select`](Var::index_select).
    #[track_caller]
    pub fn try_index_select(self, axis: usize, indices: &[usize]) -> Result<Var<'t, T>> {
        let shape = self.shape();
        shape.check_axis("index_select", axis)?;
        let dims = shape.dims();
        if let Some(&bad) = indices.iter().find(|&&i| i >= dims[axis]) {
            return Err(TensorError::IndexOutOfBounds {
                op: "index_select",
                index: bad,
                bound: dims[axis],
            }
            .into());
        }
        let mut index_dims = dims.to_vec();
        index_dims[axis] = indices.len();
        let index_shape = Shape::from(index_dims);
        let count = index_shape.numel();
        let mut values = Vec::new();
        // An empty result needs no index values (and its other axes may multiply past usize).
        if count > 0 {
            let (outer, inner): (usize, usize) = (
                dims[..axis].iter().product(),
                dims[axis + 1..].iter().product(),
            );
            values
                .try_reserve_exact(count)
                .map_err(|_| TensorError::InvalidArgument {
                    op: "index_select",
                    message: format!("an index of shape {index_shape} cannot be allocated"),
                })?;
            for _ in 0..outer {
                for &i in indices {
                    values.extend(std::iter::repeat_n(i, inner));
                }
            }
        }
        let index = Indices::new(values, index_shape)?;
        self.try_gather(axis, &index)
    }
}

/// One element of x along an axis per index.
pub(crate) fn gather_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    arg: &AxisIndex,
) -> tensor::Result<Tensor<T>> {
    x.try_gather(arg.axis, &arg.index)
}

/// x added into zeros of the target shape at the indices.
pub(crate) fn scatter_add_forward<T: Float>(
    [x]: [&Tensor<T>; 1],
    arg: &AxisScatter,
) -> tensor::Result<Tensor<T>> {
    Tensor::try_full(&arg.shape, T::ZERO)?.try_scatter_add(arg.axis, &arg.index, x)
}

/// d gather(x) = g scattered back (added) to the gathered positions.
pub(crate) fn gather_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    arg: &AxisIndex,
) -> [Option<O>; 1] {
    [Some(grad.scatter_add_into(
        &x.shape(),
        arg.axis,
        &arg.index,
    ))]
}

/// d scatter_add(x) = g gathered from the scattered positions.
pub(crate) fn scatter_add_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    _: &O,
    _: [bool; 1],
    arg: &AxisScatter,
) -> [Option<O>; 1] {
    [Some(grad.gather(arg.axis, &arg.index))]
}

/// t gather(x) = gather(t).
pub(crate) fn gather_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    arg: &AxisIndex,
) -> O {
    present(t).gather(arg.axis, &arg.index)
}

/// t scatter_add(x) = scatter_add(t).
pub(crate) fn scatter_add_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    arg: &AxisScatter,
) -> O {
    present(t).scatter_add_into(&arg.shape, arg.axis, &arg.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;

    fn grid() -> Tensor<f64> {
        Tensor::from_vec((0..12).map(|v| (v as f64 * 0.9).cos()).collect(), [3, 4]).unwrap()
    }

    #[test]
    fn gather_scatter_and_index_select_gradients() {
        let index = Indices::new(vec![3, 0, 0, 1, 2, 2], [3, 2]).unwrap();
        let weights = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]).unwrap();
        let gathered_weights = weights.clone();
        let gather_index = index.clone();
        assert_gradcheck(
            move |x| {
                (x[0].gather(1, &gather_index) * x[0].tape().constant(gathered_weights.clone()))
                    .sum_all()
            },
            &[grid()],
        );
        let shape = Shape::from([3, 4]);
        assert_gradcheck(
            move |x| x[0].scatter_add_into(&shape, 1, &index).square(),
            &[weights],
        );
        assert_gradcheck(|x| x[0].index_select(0, &[2, 0, 2]).square(), &[grid()]);
        assert_gradcheck(|x| x[0].index_select(1, &[1, 1]).square(), &[grid()]);
    }

    #[test]
    fn repeated_gather_indices_accumulate() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [1, 2]).unwrap());
        let picked = x.gather(1, &Indices::new(vec![1, 1, 1], [1, 3]).unwrap());
        assert_eq!(picked.sum_all().backward().wrt(x).to_vec(), vec![0.0, 3.0]);
    }

    #[test]
    fn bad_index_is_named_and_recorded_nowhere() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid());
        let before = tape.len();
        let out_of_range = Indices::new(vec![4, 0, 0], [3, 1]).unwrap();
        assert_eq!(
            x.try_gather(1, &out_of_range).unwrap_err().to_string(),
            "gather: index 4 is out of range 0..4"
        );
        assert_eq!(
            x.try_index_select(0, &[3]).unwrap_err().to_string(),
            "index_select: index 3 is out of range 0..3"
        );
        assert_eq!(tape.len(), before);
    }
}
