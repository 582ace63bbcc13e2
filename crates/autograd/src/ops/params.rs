//! The parameter types of primitives whose parameters are too large to sit in a node inline
//! (they are boxed, so a node stays 128 bytes).

use tensor::{Dims, Indices, Shape};

/// The axis and indices of a gather.
#[derive(Clone, Debug)]
pub struct AxisIndex {
    pub(crate) axis: usize,
    pub(crate) index: Indices,
}

/// The axis, indices and output shape of a scatter-add into zeros.
#[derive(Clone, Debug)]
pub struct AxisScatter {
    pub(crate) axis: usize,
    pub(crate) index: Indices,
    pub(crate) shape: Shape,
}

/// `len` elements from `start` along `axis`.
#[derive(Clone, Copy, Debug)]
pub struct AxisRange {
    pub(crate) axis: usize,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// `before` zeros, the elements, `after` zeros along `axis`.
#[derive(Clone, Copy, Debug)]
pub struct AxisPad {
    pub(crate) axis: usize,
    pub(crate) before: usize,
    pub(crate) after: usize,
}

/// The axes of a reduction's bit mask, in order.
pub(crate) fn axes_of(mask: u64) -> Dims {
    (0..64).filter(|&axis| mask & (1 << axis) != 0).collect()
}
