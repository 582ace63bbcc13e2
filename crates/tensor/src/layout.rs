//! [`Layout`]; the docs are on the struct.

use std::ops::Range;

use smallvec::SmallVec;

use crate::error::{Result, TensorError};
use crate::shape::{Dims, Shape};

/// Shape, strides (in elements) and offset of a tensor inside its storage.
///
/// Every view (permute, broadcast, narrow, reshape of contiguous data, squeeze, unsqueeze) is
/// arithmetic on layouts; storage is never touched. Kernels ask a layout either for one
/// contiguous range or for a strided walk in row-major logical order.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Dims,
    offset: usize,
}

impl Clone for Layout {
    #[inline]
    fn clone(&self) -> Self {
        Layout {
            shape: self.shape.clone(),
            strides: Dims::from_slice(&self.strides),
            offset: self.offset,
        }
    }
}

impl Layout {
    /// The row-major layout of a fresh buffer of `shape`.
    pub fn contiguous(shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    /// A layout with explicit strides and offset, checked to address only positions below
    /// `storage_len` (with checked arithmetic throughout).
    pub(crate) fn strided(
        op: &'static str,
        shape: Shape,
        strides: &[usize],
        offset: usize,
        storage_len: usize,
    ) -> Result<Layout> {
        let invalid = |message: String| TensorError::InvalidArgument { op, message };
        if strides.len() != shape.rank() {
            return Err(invalid(format!(
                "{} strides {strides:?} for shape {shape} of rank {}",
                strides.len(),
                shape.rank()
            )));
        }
        let numel = shape.checked_numel(op)?;
        let last = if numel == 0 {
            Some(offset)
        } else {
            shape
                .dims()
                .iter()
                .zip(strides)
                .try_fold(offset, |acc, (&d, &s)| {
                    (d - 1)
                        .checked_mul(s)
                        .and_then(|step| acc.checked_add(step))
                })
        };
        let in_bounds = match last {
            Some(last) if numel == 0 => last <= storage_len,
            Some(last) => last < storage_len,
            None => false,
        };
        if !in_bounds {
            return Err(invalid(format!(
                "shape {shape} with strides {strides:?} at offset {offset} reaches past a buffer of {storage_len} elements"
            )));
        }
        Ok(Layout {
            shape,
            strides: Dims::from_slice(strides),
            offset,
        })
    }

    /// The logical shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Strides in elements, one per axis; 0 on a broadcast axis.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Position of the first logical element in storage.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when the logical elements sit in storage in row-major order with no gaps
    /// (axes of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&d, &s) in self.shape.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            // Saturating: an empty tensor's other axes may multiply past usize::MAX.
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// The storage range holding the elements in row-major order, if the layout is contiguous.
    pub fn contiguous_range(&self) -> Option<Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.shape.numel())
    }

    /// The same shape and strides starting at `offset` (for a contiguous layout, the layout of
    /// a fresh buffer holding its elements when `offset` is 0).
    pub(crate) fn at_offset(&self, offset: usize) -> Layout {
        Layout {
            shape: self.shape.clone(),
            strides: Dims::from_slice(&self.strides),
            offset,
        }
    }

    /// One past the largest storage position this layout can address (`offset` when empty).
    pub(crate) fn storage_extent(&self) -> usize {
        if self.shape.numel() == 0 {
            return self.offset;
        }
        self.offset
            + 1
            + self
                .shape
                .dims()
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
    }

    /// Storage position of a logical multi-index (checked by the caller).
    pub(crate) fn position(&self, index: &[usize]) -> usize {
        self.offset
            + index
                .iter()
                .zip(&self.strides)
                .map(|(&i, &s)| i * s)
                .sum::<usize>()
    }

    /// Reorders the axes: axis `i` of the result is axis `permutation[i]` of `self`.
    pub(crate) fn permute(&self, op: &'static str, permutation: &[usize]) -> Result<Layout> {
        let rank = self.shape.rank();
        let mut seen: SmallVec<[bool; 8]> = SmallVec::from_elem(false, rank);
        let valid = permutation.len() == rank
            && permutation
                .iter()
                .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(TensorError::InvalidPermutation {
                op,
                permutation: permutation.to_vec(),
                shape: self.shape.clone(),
            });
        }
        let dims: Dims = permutation.iter().map(|&p| self.shape.dims()[p]).collect();
        let strides: Dims = permutation.iter().map(|&p| self.strides[p]).collect();
        Ok(Layout {
            shape: Shape::from(dims),
            strides,
            offset: self.offset,
        })
    }

    /// Views the tensor as `target` by NumPy broadcasting: new leading axes and size-1 axes
    /// get stride 0.
    pub(crate) fn broadcast_to(&self, op: &'static str, target: &Shape) -> Result<Layout> {
        let error = || TensorError::BroadcastTo {
            op,
            from: self.shape.clone(),
            to: target.clone(),
        };
        let rank = target.rank();
        if self.shape.rank() > rank {
            return Err(error());
        }
        let lead = rank - self.shape.rank();
        let mut strides = Dims::from_elem(0, rank);
        for axis in 0..self.shape.rank() {
            let (from, to) = (self.shape.dims()[axis], target.dims()[lead + axis]);
            strides[lead + axis] = if from == to {
                self.strides[axis]
            } else if from == 1 {
                0
            } else {
                return Err(error());
            };
        }
        Ok(Layout {
            shape: target.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// The elements `start..start + len` along `axis`.
    pub(crate) fn narrow(
        &self,
        op: &'static str,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<Layout> {
        self.shape.check_axis(op, axis)?;
        let size = self.shape.dims()[axis];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(TensorError::RangeOutOfBounds {
                op,
                axis,
                start,
                len,
                shape: self.shape.clone(),
            });
        }
        let mut dims = Dims::from_slice(self.shape.dims());
        dims[axis] = len;
        // An empty view (an empty range, or another axis of size 0) keeps the old offset so no
        // position past the storage is ever formed.
        let offset = if dims.contains(&0) {
            self.offset
        } else {
            self.offset + start * self.strides[axis]
        };
        Ok(Layout {
            shape: Shape::from(dims),
            strides: Dims::from_slice(&self.strides),
            offset,
        })
    }

    /// A contiguous layout with the same offset and a new shape of equal element count.
    /// Only valid for contiguous layouts (checked by the caller).
    pub(crate) fn reshaped_contiguous(&self, shape: Shape) -> Layout {
        debug_assert!(self.is_contiguous());
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: self.offset,
        }
    }

    /// Inserts an axis of size 1 before `axis` (`axis == rank` appends).
    pub(crate) fn unsqueeze(&self, op: &'static str, axis: usize) -> Result<Layout> {
        if axis > self.shape.rank() {
            return Err(TensorError::AxisOutOfRange {
                op,
                axis,
                shape: self.shape.clone(),
            });
        }
        let mut dims = Dims::from_slice(self.shape.dims());
        let mut strides = Dims::from_slice(&self.strides);
        // Any stride is valid for a size-1 axis; this one keeps a contiguous layout contiguous.
        let stride = if axis < self.shape.rank() {
            self.strides[axis].saturating_mul(dims[axis])
        } else {
            1
        };
        dims.insert(axis, 1);
        strides.insert(axis, stride);
        Ok(Layout {
            shape: Shape::from(dims),
            strides,
            offset: self.offset,
        })
    }

    /// Removes `axis`, which must have size 1.
    pub(crate) fn squeeze(&self, op: &'static str, axis: usize) -> Result<Layout> {
        self.shape.check_axis(op, axis)?;
        if self.shape.dims()[axis] != 1 {
            return Err(TensorError::InvalidArgument {
                op,
                message: format!(
                    "axis {axis} of shape {} has size {}, not 1",
                    self.shape,
                    self.shape.dims()[axis]
                ),
            });
        }
        let mut dims = Dims::from_slice(self.shape.dims());
        let mut strides = Dims::from_slice(&self.strides);
        dims.remove(axis);
        strides.remove(axis);
        Ok(Layout {
            shape: Shape::from(dims),
            strides,
            offset: self.offset,
        })
    }
}

/// Merges axes that can be walked as one (in every layout at once) and drops size-1 axes, so
/// the walk below has as few, and as long, inner rows as possible.
fn merge_axes<const N: usize>(shape: &[usize], strides: [&[usize]; N]) -> (Dims, [Dims; N]) {
    let mut dims = Dims::new();
    let mut merged: [Dims; N] = std::array::from_fn(|_| Dims::new());
    // Built innermost-first, reversed at the end.
    for axis in (0..shape.len()).rev() {
        let size = shape[axis];
        if size == 1 {
            continue;
        }
        let last = dims.len().wrapping_sub(1);
        // Checked: the strides of an empty tensor's other axes may be anything (found by
        // fuzzing: a reduction over its empty axis walks the kept ones).
        let fuses = !dims.is_empty()
            && (0..N).all(|k| Some(strides[k][axis]) == merged[k][last].checked_mul(dims[last]));
        if fuses {
            dims[last] *= size;
        } else {
            dims.push(size);
            for k in 0..N {
                merged[k].push(strides[k][axis]);
            }
        }
    }
    dims.reverse();
    for m in &mut merged {
        m.reverse();
    }
    (dims, merged)
}

/// Walks `N` layouts of the same `shape` jointly in row-major logical order, calling
/// `row(start_positions, len, inner_strides)` once per innermost row. Element `i` of a row sits
/// at `start_positions[k] + i * inner_strides[k]` in storage `k`.
///
/// This is the strided path of every kernel; rows are as long as the layouts allow, so a
/// contiguous or row-broadcast operand yields long unit-stride rows the inner loops vectorise.
///
/// Positions are advanced with wrapping arithmetic: for a layout that addresses only its
/// buffer nothing wraps, and the kept axes of an empty tensor that a reduction walks (whose
/// positions are never read, since it reduces over nothing) may have any strides.
pub(crate) fn for_each_row<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    offsets: [usize; N],
    mut row: impl FnMut([usize; N], usize, [usize; N]),
) {
    if shape.contains(&0) {
        return;
    }
    let (dims, merged) = merge_axes(shape, strides);
    let Some(&inner_len) = dims.last() else {
        row(offsets, 1, [0; N]);
        return;
    };
    let inner = dims.len() - 1;
    let inner_strides: [usize; N] = std::array::from_fn(|k| merged[k][inner]);
    let mut index = Dims::from_elem(0, inner);
    let mut current = offsets;
    loop {
        row(current, inner_len, inner_strides);
        // Advance the odometer over the outer axes.
        let mut axis = inner;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            for k in 0..N {
                current[k] = current[k].wrapping_add(merged[k][axis]);
            }
            if index[axis] < dims[axis] {
                break;
            }
            for k in 0..N {
                current[k] = current[k].wrapping_sub(merged[k][axis].wrapping_mul(dims[axis]));
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(layout: &Layout) -> Vec<usize> {
        let mut out = Vec::new();
        for_each_row(
            layout.shape().dims(),
            [layout.strides()],
            [layout.offset()],
            |[start], len, [stride]| {
                out.extend((0..len).map(|i| start + i * stride));
            },
        );
        out
    }

    #[test]
    fn contiguous_walk_is_one_row() {
        let layout = Layout::contiguous(Shape::from([2, 3, 4]));
        let mut rows = 0;
        for_each_row(
            layout.shape().dims(),
            [layout.strides()],
            [0],
            |_, len, _| {
                rows += 1;
                assert_eq!(len, 24);
            },
        );
        assert_eq!(rows, 1);
    }

    #[test]
    fn transposed_walk_visits_logical_order() {
        let layout = Layout::contiguous(Shape::from([2, 3]))
            .permute("t", &[1, 0])
            .unwrap();
        assert_eq!(positions(&layout), vec![0, 3, 1, 4, 2, 5]);
        assert!(!layout.is_contiguous());
    }

    #[test]
    fn broadcast_and_narrow_positions() {
        let base = Layout::contiguous(Shape::from([3]));
        let wide = base.broadcast_to("b", &Shape::from([2, 3])).unwrap();
        assert_eq!(positions(&wide), vec![0, 1, 2, 0, 1, 2]);
        let grid = Layout::contiguous(Shape::from([3, 4]));
        let middle = grid.narrow("n", 1, 1, 2).unwrap();
        assert_eq!(positions(&middle), vec![1, 2, 5, 6, 9, 10]);
        assert_eq!(middle.storage_extent(), 11);
    }

    #[test]
    fn permutations_are_checked_at_any_rank() {
        let wide = Layout::contiguous(Shape::from(vec![1; 130]));
        let mut order: Vec<usize> = (0..130).rev().collect();
        assert_eq!(wide.permute("p", &order).unwrap().shape().rank(), 130);
        order[0] = 1;
        assert!(wide.permute("p", &order).is_err(), "a repeated axis");
        order[0] = 130;
        assert!(wide.permute("p", &order).is_err(), "an axis past the rank");
    }

    #[test]
    fn size_one_axes_do_not_break_contiguity() {
        let layout = Layout::contiguous(Shape::from([4]))
            .unsqueeze("u", 0)
            .unwrap();
        assert!(layout.is_contiguous());
        let layout = layout.unsqueeze("u", 2).unwrap();
        assert_eq!(layout.shape(), &Shape::from([1, 4, 1]));
        // The inserted axis gets PyTorch's stride: that of the axis it precedes times its size.
        let grid = Layout::contiguous(Shape::from([2, 3]));
        assert_eq!(grid.unsqueeze("u", 1).unwrap().strides(), &[3, 3, 1]);
        assert_eq!(grid.unsqueeze("u", 2).unwrap().strides(), &[3, 1, 1]);
        assert!(layout.is_contiguous());
        assert_eq!(
            layout.squeeze("s", 0).unwrap().shape(),
            &Shape::from([4, 1])
        );
    }
}
