//! Indexing: [`Indices`], gather and its transpose scatter-add, index-select, one-hot, and the
//! shape-changing copies pad (the transpose of narrow), concat and stack.

use std::sync::Arc;

use crate::error::{Result, TensorError, or_panic};
use crate::float::Float;
use crate::shape::{Dims, Shape};
use crate::tensor::Tensor;

/// An n-dimensional array of `usize` indices (labels, gather positions). Cheap to clone.
///
/// ```
/// use tensor::Indices;
/// let labels = Indices::new(vec![2, 0, 1], [3, 1]).unwrap();
/// assert_eq!(labels.dims(), &[3, 1]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indices {
    values: Arc<[usize]>,
    shape: Shape,
}

impl Indices {
    /// Indices from row-major values and a shape. Errors if the lengths disagree.
    pub fn new(values: Vec<usize>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if values.len() != shape.checked_numel("Indices::new")? {
            return Err(TensorError::DataLength {
                op: "Indices::new",
                shape,
                len: values.len(),
            });
        }
        Ok(Indices {
            values: Arc::from(values),
            shape,
        })
    }

    /// A rank-1 index array.
    pub fn from_slice(values: &[usize]) -> Self {
        Indices {
            values: Arc::from(values),
            shape: Shape::from([values.len()]),
        }
    }

    /// The same indices under a new shape of equal element count.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.values.len() {
            return Err(TensorError::ReshapeElementCount {
                from: self.shape.clone(),
                to: shape,
            });
        }
        Ok(Indices {
            values: self.values.clone(),
            shape,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Axis sizes.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The indices in row-major order.
    pub fn values(&self) -> &[usize] {
        &self.values
    }
}

/// Sizes of the axes before `axis`, of `axis`, and after it. Saturating: an empty tensor may
/// have other axes whose product overflows (callers return early for empty results, so the
/// saturated values are never looped over).
fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    let product = |dims: &[usize]| dims.iter().fold(1usize, |n, &d| n.saturating_mul(d));
    (
        product(&dims[..axis]),
        dims[axis],
        product(&dims[axis + 1..]),
    )
}

/// Checks that `index` can address `shape` along `axis` (same rank, equal sizes on the other
/// axes, every value below `shape[axis]`).
fn check_gather_index(op: &'static str, shape: &Shape, axis: usize, index: &Indices) -> Result<()> {
    shape.check_axis(op, axis)?;
    let other_axes_match = index.shape.rank() == shape.rank()
        && (0..shape.rank()).all(|d| d == axis || index.dims()[d] == shape.dims()[d]);
    if !other_axes_match {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!(
                "index shape {} must equal tensor shape {} on every axis but {axis}",
                index.shape, shape
            ),
        });
    }
    let bound = shape.dims()[axis];
    if let Some(&bad) = index.values.iter().find(|&&i| i >= bound) {
        return Err(TensorError::IndexOutOfBounds {
            op,
            index: bad,
            bound,
        });
    }
    Ok(())
}

impl<T: Float> Tensor<T> {
    /// Picks one element along `axis` per index: `out[.., j, ..] = self[.., index[.., j, ..], ..]`
    /// (PyTorch's `gather`). `index` has the rank of `self` and its sizes on every other axis.
    ///
    /// ```
    /// use tensor::{Indices, Tensor};
    /// let logits = Tensor::from_vec(vec![0.1_f32, 0.2, 0.3, 0.4, 0.5, 0.6], [2, 3]).unwrap();
    /// let labels = Indices::new(vec![2, 0], [2, 1]).unwrap();
    /// assert_eq!(logits.gather(1, &labels).to_vec(), vec![0.3, 0.4]);
    /// ```
    #[track_caller]
    pub fn gather(&self, axis: usize, index: &Indices) -> Tensor<T> {
        or_panic(self.try_gather(axis, index))
    }

    /// Fallible [`gather`](Tensor::gather).
    pub fn try_gather(&self, axis: usize, index: &Indices) -> Result<Tensor<T>> {
        check_gather_index("gather", self.shape(), axis, index)?;
        if index.shape.numel() == 0 {
            return Ok(Tensor::zeros(index.shape.clone()));
        }
        let source = self.contiguous();
        let values = source.as_contiguous_slice().expect("contiguous");
        let (outer, length, inner) = split_at_axis(self.dims(), axis);
        let picked = index.dims()[axis];
        Ok(Tensor::from_overwrite(index.shape.clone(), |out| {
            for o in 0..outer {
                for j in 0..picked {
                    for i in 0..inner {
                        let k = (o * picked + j) * inner + i;
                        out[k] = values[(o * length + index.values[k]) * inner + i];
                    }
                }
            }
        }))
    }

    /// `self` plus `source` scattered along `axis` by `index`: for every position of `index`,
    /// `out[.., index[.., j, ..], ..] += source[.., j, ..]` (PyTorch's `scatter_add`). Repeated
    /// indices add up. The transpose of [`gather`](Tensor::gather).
    #[track_caller]
    pub fn scatter_add(&self, axis: usize, index: &Indices, source: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_scatter_add(axis, index, source))
    }

    /// Fallible [`scatter_add`](Tensor::scatter_add).
    pub fn try_scatter_add(
        &self,
        axis: usize,
        index: &Indices,
        source: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        check_gather_index("scatter_add", self.shape(), axis, index)?;
        if source.shape() != index.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "scatter_add",
                lhs: index.shape.clone(),
                rhs: source.shape().clone(),
            });
        }
        if source.numel() == 0 {
            return Ok(self.contiguous_copy());
        }
        let (outer, length, inner) = split_at_axis(self.dims(), axis);
        let picked = index.dims()[axis];
        let additions = source.contiguous();
        let additions = additions.as_contiguous_slice().expect("contiguous");
        let mut out = self.contiguous_copy();
        let buffer = out.make_mut();
        for o in 0..outer {
            for j in 0..picked {
                for i in 0..inner {
                    let k = (o * picked + j) * inner + i;
                    buffer[(o * length + index.values[k]) * inner + i] += additions[k];
                }
            }
        }
        Ok(out)
    }

    /// The slices at `indices` along `axis`, in that order (repeats allowed): PyTorch's
    /// `index_select`, used to assemble mini-batches.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let rows = Tensor::<f32>::arange(0.0, 6.0, 1.0).unwrap().reshape([3, 2]);
    /// assert_eq!(rows.index_select(0, &[2, 0]).to_vec(), vec![4.0, 5.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Tensor<T> {
        or_panic(self.try_index_select(axis, indices))
    }

    /// Fallible [`index_select`](Tensor::index_select).
    pub fn try_index_select(&self, axis: usize, indices: &[usize]) -> Result<Tensor<T>> {
        self.shape().check_axis("index_select", axis)?;
        let (outer, length, inner) = split_at_axis(self.dims(), axis);
        if let Some(&bad) = indices.iter().find(|&&i| i >= length) {
            return Err(TensorError::IndexOutOfBounds {
                op: "index_select",
                index: bad,
                bound: length,
            });
        }
        let mut dims = Dims::from_slice(self.dims());
        dims[axis] = indices.len();
        let shape = Shape::from(dims);
        let numel = shape.checked_numel("index_select")?;
        if numel == 0 {
            return Ok(Tensor::zeros(shape));
        }
        crate::storage::check_allocation::<T>("index_select", numel)?;
        let source = self.contiguous();
        let values = source.as_contiguous_slice().expect("contiguous");
        Ok(Tensor::from_overwrite(shape, |out| {
            let mut chunks = out.chunks_mut(inner.max(1));
            for o in 0..outer {
                for &index in indices {
                    let start = (o * length + index) * inner;
                    if let Some(chunk) = chunks.next() {
                        chunk.copy_from_slice(&values[start..start + inner]);
                    }
                }
            }
        }))
    }

    /// Rows of `classes` zeros with a one at each label: shape `[labels.len(), classes]`.
    /// Errors if a label is not below `classes`.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let encoded = Tensor::<f32>::one_hot(&[1, 0], 3).unwrap();
    /// assert_eq!(encoded.to_vec(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    /// ```
    pub fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor<T>> {
        if let Some(&bad) = labels.iter().find(|&&label| label >= classes) {
            return Err(TensorError::IndexOutOfBounds {
                op: "one_hot",
                index: bad,
                bound: classes,
            });
        }
        let shape = Shape::from([labels.len(), classes]);
        crate::storage::check_allocation::<T>("one_hot", shape.checked_numel("one_hot")?)?;
        Ok(Tensor::from_fill(shape, |out| {
            for (row, &label) in labels.iter().enumerate() {
                out[row * classes + label] = T::ONE;
            }
        }))
    }

    /// Zero padding along `axis`: `before` zeros, the elements, then `after` zeros. The
    /// transpose of [`narrow`](Tensor::narrow).
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0_f64, 2.0], [2]).unwrap();
    /// assert_eq!(t.pad(0, 1, 2).to_vec(), vec![0.0, 1.0, 2.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn pad(&self, axis: usize, before: usize, after: usize) -> Tensor<T> {
        or_panic(self.try_pad(axis, before, after))
    }

    /// Fallible [`pad`](Tensor::pad).
    pub fn try_pad(&self, axis: usize, before: usize, after: usize) -> Result<Tensor<T>> {
        self.shape().check_axis("pad", axis)?;
        let (outer, length, inner) = split_at_axis(self.dims(), axis);
        let padded = length
            .checked_add(before)
            .and_then(|n| n.checked_add(after))
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "pad",
                message: format!("padding {before} + {after} overflows"),
            })?;
        let mut dims = Dims::from_slice(self.dims());
        dims[axis] = padded;
        let dims = Shape::from(dims);
        let numel = dims.checked_numel("pad")?;
        crate::storage::check_allocation::<T>("pad", numel)?;
        if numel == 0 || self.numel() == 0 {
            return Ok(Tensor::zeros(dims));
        }
        let source = self.contiguous();
        let values = source.as_contiguous_slice().expect("contiguous");
        let block = length * inner;
        Ok(Tensor::from_fill(dims, |out| {
            for o in 0..outer {
                let start = (o * padded + before) * inner;
                out[start..start + block].copy_from_slice(&values[o * block..(o + 1) * block]);
            }
        }))
    }

    /// Joins tensors along an existing `axis`; all other axes must agree.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::<f32>::zeros([2, 1]);
    /// let b = Tensor::<f32>::ones([2, 2]);
    /// assert_eq!(Tensor::concat(&[&a, &b], 1).unwrap().to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// ```
    pub fn concat(tensors: &[&Tensor<T>], axis: usize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "concat",
                message: "needs at least one tensor".to_string(),
            })?;
        first.shape().check_axis("concat", axis)?;
        for t in tensors {
            let compatible = t.rank() == first.rank()
                && (0..first.rank()).all(|d| d == axis || t.dims()[d] == first.dims()[d]);
            if !compatible {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape().clone(),
                    rhs: t.shape().clone(),
                });
            }
        }
        let total = tensors
            .iter()
            .try_fold(0usize, |sum, t| sum.checked_add(t.dims()[axis]))
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "concat",
                message: format!("the sizes along axis {axis} overflow"),
            })?;
        let mut dims = Dims::from_slice(first.dims());
        dims[axis] = total;
        crate::storage::check_allocation::<T>(
            "concat",
            Shape::from(&dims[..]).checked_numel("concat")?,
        )?;
        let (outer, _, inner) = split_at_axis(first.dims(), axis);
        let sources: Vec<Tensor<T>> = tensors.iter().map(|t| t.contiguous()).collect();
        Ok(Tensor::from_overwrite(Shape::from(dims), |out| {
            let mut next = 0;
            for o in 0..outer {
                for source in &sources {
                    let block = source.dims()[axis] * inner;
                    let values = source.as_contiguous_slice().expect("contiguous");
                    out[next..next + block].copy_from_slice(&values[o * block..(o + 1) * block]);
                    next += block;
                }
            }
        }))
    }

    /// Joins tensors of equal shape along a new `axis`.
    pub fn stack(tensors: &[&Tensor<T>], axis: usize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "stack",
                message: "needs at least one tensor".to_string(),
            })?;
        if let Some(bad) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(TensorError::ShapeMismatch {
                op: "stack",
                lhs: first.shape().clone(),
                rhs: bad.shape().clone(),
            });
        }
        let expanded = tensors
            .iter()
            .map(|t| Ok(t.with_layout(t.layout().unsqueeze("stack", axis)?)))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor<T>> = expanded.iter().collect();
        Tensor::concat(&refs, axis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_add_is_the_transpose_of_gather() {
        // <gather(x), g> == <x, scatter_add(0, g)> for every x and g.
        let x = Tensor::from_vec((0..12).map(|v| v as f64 * 0.3 - 1.0).collect(), [3, 4]).unwrap();
        let index = Indices::new(vec![0, 3, 3, 1, 2, 2], [3, 2]).unwrap();
        let g = Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, -1.5, 2.5], [3, 2]).unwrap();
        let lhs = (&x.gather(1, &index) * &g).sum_all().item();
        let rhs = (&x * &Tensor::zeros([3, 4]).scatter_add(1, &index, &g))
            .sum_all()
            .item();
        assert!((lhs - rhs).abs() < 1e-12);
    }

    #[test]
    fn gather_errors_name_the_op_and_values() {
        let x = Tensor::<f32>::zeros([2, 3]);
        let too_big = Indices::new(vec![3, 0], [2, 1]).unwrap();
        assert_eq!(
            x.try_gather(1, &too_big).unwrap_err().to_string(),
            "gather: index 3 is out of range 0..3"
        );
        let wrong_rows = Indices::new(vec![0, 0, 0], [3, 1]).unwrap();
        assert_eq!(
            x.try_gather(1, &wrong_rows).unwrap_err().to_string(),
            "gather: index shape [3, 1] must equal tensor shape [2, 3] on every axis but 1"
        );
        assert_eq!(
            Tensor::<f32>::one_hot(&[0, 5], 3).unwrap_err().to_string(),
            "one_hot: index 5 is out of range 0..3"
        );
        assert_eq!(
            x.try_index_select(0, &[2]).unwrap_err().to_string(),
            "index_select: index 2 is out of range 0..2"
        );
    }

    #[test]
    fn pad_then_narrow_is_identity() {
        let x = Tensor::from_vec((0..6).map(f64::from).collect(), [2, 3]).unwrap();
        let padded = x.t().pad(0, 2, 1);
        assert_eq!(padded.dims(), &[6, 2]);
        assert_eq!(padded.narrow(0, 2, 3), x.t().contiguous());
        assert_eq!(padded.narrow(0, 0, 2).sum_all().item(), 0.0);
    }

    #[test]
    fn concat_and_stack_shapes() {
        let a = Tensor::<f64>::ones([2, 3]);
        let b = Tensor::<f64>::zeros([2, 3]);
        assert_eq!(Tensor::stack(&[&a, &b], 0).unwrap().dims(), &[2, 2, 3]);
        assert_eq!(Tensor::stack(&[&a, &b], 2).unwrap().get(&[1, 2, 0]), 1.0);
        assert_eq!(
            Tensor::concat(&[&a, &Tensor::zeros([3, 3])], 1)
                .unwrap_err()
                .to_string(),
            "concat: shapes differ: [2, 3] vs [3, 3]"
        );
    }
}
