//! [`Shape`]: the extent of each axis, inline for up to four axes, and NumPy broadcasting.

use std::fmt;

use smallvec::SmallVec;

use crate::error::{Result, TensorError};

/// Per-axis sizes or strides, stored inline for rank <= 4 (no heap allocation).
pub type Dims = SmallVec<[usize; 4]>;

/// The extent of each axis of a tensor, outermost first. A rank-0 shape is a scalar with one
/// element.
///
/// ```
/// use tensor::Shape;
/// let s = Shape::from([2, 3]);
/// assert_eq!(s.numel(), 6);
/// assert_eq!(s.to_string(), "[2, 3]");
/// ```
#[derive(PartialEq, Eq, Hash, Default)]
pub struct Shape(Dims);

impl Clone for Shape {
    /// A plain copy of the axis sizes (SmallVec's generic `clone` goes element by element).
    #[inline]
    fn clone(&self) -> Self {
        Shape(Dims::from_slice(&self.0))
    }
}

impl Shape {
    /// A shape from its axis sizes.
    pub fn new(dims: &[usize]) -> Self {
        Shape(Dims::from_slice(dims))
    }

    /// The rank-0 shape of a scalar.
    pub fn scalar() -> Self {
        Shape(Dims::new())
    }

    /// Axis sizes, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar). Saturates instead of overflowing; constructors
    /// reject shapes whose element count does not fit in memory.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// Row-major (C order) strides for this shape, in elements.
    #[inline]
    pub fn contiguous_strides(&self) -> Dims {
        let mut strides = Dims::from_slice(&self.0);
        let mut step = 1usize;
        for (stride, &size) in strides.iter_mut().zip(&self.0).rev() {
            *stride = step;
            step = step.saturating_mul(size);
        }
        strides
    }

    /// The NumPy broadcast of two shapes: align trailing axes; each pair must be equal or
    /// contain a 1.
    ///
    /// ```
    /// use tensor::Shape;
    /// let s = Shape::from([4, 1, 3]).broadcast_with("add", &Shape::from([5, 1])).unwrap();
    /// assert_eq!(s, Shape::from([4, 5, 3]));
    /// ```
    pub fn broadcast_with(&self, op: &'static str, other: &Shape) -> Result<Shape> {
        if self == other {
            return Ok(self.clone());
        }
        let rank = self.rank().max(other.rank());
        let mut dims = Dims::from_elem(0, rank);
        for i in 0..rank {
            let a = self.dim_from_end(rank - 1 - i);
            let b = other.dim_from_end(rank - 1 - i);
            dims[i] = match (a, b) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(TensorError::Broadcast {
                        op,
                        lhs: self.clone(),
                        rhs: other.clone(),
                    });
                }
            };
        }
        Ok(Shape(dims))
    }

    /// Size of the axis `from_end` places before the last (1 beyond the rank, as broadcasting
    /// treats missing leading axes).
    fn dim_from_end(&self, from_end: usize) -> usize {
        if from_end < self.rank() {
            self.0[self.rank() - 1 - from_end]
        } else {
            1
        }
    }

    /// Checks that `axis` exists, naming `op` in the error.
    pub fn check_axis(&self, op: &'static str, axis: usize) -> Result<usize> {
        if axis < self.rank() {
            Ok(axis)
        } else {
            Err(TensorError::AxisOutOfRange {
                op,
                axis,
                shape: self.clone(),
            })
        }
    }

    /// Checks a set of axes (each in range, none repeated) and returns them as a bit mask
    /// (bit `i` set for axis `i`; axes up to 63).
    pub fn axis_mask(&self, op: &'static str, axes: &[usize]) -> Result<u64> {
        let mut mask = 0u64;
        for &axis in axes {
            self.check_axis(op, axis)?;
            if axis >= 64 {
                return Err(TensorError::InvalidArgument {
                    op,
                    message: format!("axis {axis}: reductions support ranks up to 64"),
                });
            }
            if mask & (1 << axis) != 0 {
                return Err(TensorError::DuplicateAxis {
                    op,
                    axis,
                    shape: self.clone(),
                });
            }
            mask |= 1 << axis;
        }
        Ok(mask)
    }

    /// The shape after reducing the axes in `mask` (from [`axis_mask`](Shape::axis_mask)): kept
    /// as size 1 with `keepdim`, dropped otherwise.
    pub fn reduced(&self, mask: u64, keepdim: bool) -> Shape {
        let mut dims = Dims::new();
        for (axis, &d) in self.0.iter().enumerate() {
            if mask & (1 << axis) == 0 {
                dims.push(d);
            } else if keepdim {
                dims.push(1);
            }
        }
        Shape(dims)
    }

    /// How many elements a reduction over `axes` combines into each output (1 for no axes;
    /// saturating, since an empty tensor's other axes may multiply past `usize::MAX`). Mean and
    /// variance, in this crate and in `autograd`, divide by it.
    pub fn reduced_count(&self, axes: &[usize]) -> usize {
        axes.iter().fold(1usize, |n, &a| {
            n.saturating_mul(self.0.get(a).copied().unwrap_or(1))
        })
    }

    /// The axes to sum over (keeping them) so that this shape becomes `target`: the reverse of
    /// broadcasting `target` to this shape. Errors unless `target` broadcasts to this shape.
    /// Used by [`Tensor::sum_to`](crate::Tensor::sum_to) and by `autograd`'s `sum_to`.
    ///
    /// ```
    /// use tensor::Shape;
    /// let axes = Shape::from([4, 3, 2]).sum_to_axes("sum_to", &Shape::from([3, 1])).unwrap();
    /// assert_eq!(axes.as_slice(), &[0, 2]);
    /// ```
    pub fn sum_to_axes(&self, op: &'static str, target: &Shape) -> Result<Dims> {
        let error = || TensorError::BroadcastTo {
            op,
            from: target.clone(),
            to: self.clone(),
        };
        let lead = self.rank().checked_sub(target.rank()).ok_or_else(error)?;
        let mut axes = Dims::new();
        for axis in 0..self.rank() {
            if axis < lead {
                axes.push(axis);
                continue;
            }
            match (target.0[axis - lead], self.0[axis]) {
                (t, s) if t == s => {}
                (1, _) => axes.push(axis),
                _ => return Err(error()),
            }
        }
        Ok(axes)
    }

    /// Number of elements, or an error if the product overflows `usize`.
    pub(crate) fn checked_numel(&self, op: &'static str) -> Result<usize> {
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| TensorError::InvalidArgument {
                op,
                message: format!("shape {self} has more elements than fit in memory"),
            })
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape::new(&dims)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape::new(dims)
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(dims: &[usize; N]) -> Self {
        Shape::new(dims)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape::new(&dims)
    }
}

impl From<&Vec<usize>> for Shape {
    fn from(dims: &Vec<usize>) -> Self {
        Shape::new(dims)
    }
}

impl From<&Shape> for Shape {
    fn from(shape: &Shape) -> Self {
        shape.clone()
    }
}

impl From<Dims> for Shape {
    fn from(dims: Dims) -> Self {
        Shape(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let b = |x: &[usize], y: &[usize]| Shape::new(x).broadcast_with("op", &Shape::new(y));
        assert_eq!(b(&[3, 1], &[1, 4]).unwrap(), Shape::from([3, 4]));
        assert_eq!(b(&[], &[2, 3]).unwrap(), Shape::from([2, 3]));
        assert_eq!(b(&[2, 1, 5], &[4, 1]).unwrap(), Shape::from([2, 4, 5]));
        assert_eq!(b(&[0, 1], &[1, 7]).unwrap(), Shape::from([0, 7]));
        let err = b(&[3, 4], &[5]).unwrap_err();
        assert_eq!(err.to_string(), "op: cannot broadcast [3, 4] with [5]");
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(
            Shape::from([2, 3, 4]).contiguous_strides().as_slice(),
            &[12, 4, 1]
        );
        assert!(Shape::scalar().contiguous_strides().is_empty());
    }

    #[test]
    fn axis_mask_rejects_repeats_and_out_of_range() {
        let s = Shape::from([2, 3]);
        assert_eq!(s.axis_mask("sum", &[1, 0]).unwrap(), 0b11);
        assert_eq!(
            s.axis_mask("sum", &[0, 0]).unwrap_err().to_string(),
            "sum: axis 0 is given twice for shape [2, 3]"
        );
        assert_eq!(
            s.axis_mask("sum", &[2]).unwrap_err().to_string(),
            "sum: axis 2 is out of range for shape [2, 3] (rank 2)"
        );
    }
}
