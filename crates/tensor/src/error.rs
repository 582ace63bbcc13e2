//! The error type of the tensor crate: every message names the operation and the shapes or
//! values involved.

use std::fmt;

use crate::shape::Shape;

/// What went wrong in a tensor operation. `Display` gives a one-line message that starts with
/// the operation's name, for example `matmul: inner dimensions differ: [3, 4] x [5, 2]`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TensorError {
    /// The number of values does not match the product of the shape.
    DataLength {
        /// The operation.
        op: &'static str,
        /// The requested shape.
        shape: Shape,
        /// The number of values supplied.
        len: usize,
    },
    /// Two shapes cannot be broadcast together (NumPy rules).
    Broadcast {
        /// The operation.
        op: &'static str,
        /// Left operand's shape.
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
    },
    /// A tensor cannot be broadcast to a target shape.
    BroadcastTo {
        /// The operation.
        op: &'static str,
        /// The tensor's shape.
        from: Shape,
        /// The requested shape.
        to: Shape,
    },
    /// Two shapes must be equal but are not.
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Left operand's shape.
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
    },
    /// An axis does not exist for a tensor of this rank.
    AxisOutOfRange {
        /// The operation.
        op: &'static str,
        /// The requested axis.
        axis: usize,
        /// The tensor's shape.
        shape: Shape,
    },
    /// The same axis was named twice.
    DuplicateAxis {
        /// The operation.
        op: &'static str,
        /// The repeated axis.
        axis: usize,
        /// The tensor's shape.
        shape: Shape,
    },
    /// A permutation is not a permutation of `0..rank`.
    InvalidPermutation {
        /// The operation.
        op: &'static str,
        /// The requested order.
        permutation: Vec<usize>,
        /// The tensor's shape.
        shape: Shape,
    },
    /// A reshape changes the number of elements.
    ReshapeElementCount {
        /// The tensor's shape.
        from: Shape,
        /// The requested shape.
        to: Shape,
    },
    /// A range along an axis extends past its end.
    RangeOutOfBounds {
        /// The operation.
        op: &'static str,
        /// The axis.
        axis: usize,
        /// First index of the range.
        start: usize,
        /// Length of the range.
        len: usize,
        /// The tensor's shape.
        shape: Shape,
    },
    /// An index is out of range.
    IndexOutOfBounds {
        /// The operation.
        op: &'static str,
        /// The offending index.
        index: usize,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// A multi-dimensional index has the wrong length or a coordinate out of range.
    ElementIndex {
        /// The operation.
        op: &'static str,
        /// The index requested.
        index: Vec<usize>,
        /// The tensor's shape.
        shape: Shape,
    },
    /// matmul's inner dimensions disagree.
    MatmulInner {
        /// Left operand's shape.
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
    },
    /// matmul got operands of unsupported rank, or batch sizes that do not broadcast.
    MatmulOperands {
        /// Left operand's shape.
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
    },
    /// A reduction with no identity (max, min, argmax) over an empty axis.
    EmptyReduction {
        /// The operation.
        op: &'static str,
        /// The tensor's shape.
        shape: Shape,
    },
    /// A scalar argument is outside its domain.
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong, with the value.
        message: String,
    },
}

/// Result alias for fallible tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TensorError::*;
        match self {
            DataLength { op, shape, len } => write!(
                f,
                "{op}: shape {shape} needs {} values but {len} were given",
                shape.numel()
            ),
            Broadcast { op, lhs, rhs } => write!(f, "{op}: cannot broadcast {lhs} with {rhs}"),
            BroadcastTo { op, from, to } => write!(f, "{op}: cannot broadcast {from} to {to}"),
            ShapeMismatch { op, lhs, rhs } => write!(f, "{op}: shapes differ: {lhs} vs {rhs}"),
            AxisOutOfRange { op, axis, shape } => write!(
                f,
                "{op}: axis {axis} is out of range for shape {shape} (rank {})",
                shape.rank()
            ),
            DuplicateAxis { op, axis, shape } => {
                write!(f, "{op}: axis {axis} is given twice for shape {shape}")
            }
            InvalidPermutation {
                op,
                permutation,
                shape,
            } => write!(
                f,
                "{op}: {permutation:?} is not a permutation of the axes of shape {shape}"
            ),
            ReshapeElementCount { from, to } => write!(
                f,
                "reshape: cannot reshape {from} ({} elements) to {to} ({} elements)",
                from.numel(),
                to.numel()
            ),
            RangeOutOfBounds {
                op,
                axis,
                start,
                len,
                shape,
            } => write!(
                f,
                "{op}: range {start}..{} along axis {axis} exceeds shape {shape}",
                start.saturating_add(*len)
            ),
            IndexOutOfBounds { op, index, bound } => {
                write!(f, "{op}: index {index} is out of range 0..{bound}")
            }
            ElementIndex { op, index, shape } => {
                write!(
                    f,
                    "{op}: index {index:?} is out of bounds for shape {shape}"
                )
            }
            MatmulInner { lhs, rhs } => {
                write!(f, "matmul: inner dimensions differ: {lhs} x {rhs}")
            }
            MatmulOperands { lhs, rhs } => write!(
                f,
                "matmul: unsupported operands {lhs} x {rhs} (need rank 2 or 3 with matching or broadcastable batch)"
            ),
            EmptyReduction { op, shape } => {
                write!(f, "{op}: cannot reduce over an empty axis of shape {shape}")
            }
            InvalidArgument { op, message } => write!(f, "{op}: {message}"),
        }
    }
}

impl std::error::Error for TensorError {}

/// Unwraps a result, panicking with the error's message: the panicking face of every `try_`
/// method, in this crate and in `autograd` and `nn` (one helper for all three).
#[doc(hidden)]
#[track_caller]
#[inline]
pub fn or_panic<T, E: fmt::Display>(result: std::result::Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}
