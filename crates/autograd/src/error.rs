//! The error type of the autograd crate.

use std::fmt;

use tensor::{Shape, TensorError};

/// What went wrong while recording an op or running backward. Messages name the op and the
/// shapes or values involved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AutogradError {
    /// A tensor-level check failed (shape mismatch, bad axis, ...); the message names the op.
    Tensor(TensorError),
    /// A `Var` recorded on one tape was combined with a `Var` or `Gradients` of another.
    ForeignVar {
        /// The operation.
        op: &'static str,
    },
    /// `backward()` was called on an output with more than one element.
    NonScalarOutput {
        /// The output's shape.
        shape: Shape,
    },
    /// The seed given to `backward_with` does not have the output's shape.
    SeedShape {
        /// The output's shape.
        output: Shape,
        /// The seed's shape.
        seed: Shape,
    },
    /// The output of `backward` does not depend on any leaf that requires a gradient.
    NoGradientPath,
    /// A custom op's forward failed or its backward broke its contract.
    CustomOp {
        /// The op's name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// Higher-order gradients were requested through an op that cannot provide them.
    HigherOrderUnsupported {
        /// The op's name.
        op: String,
    },
    /// Forward mode (a tangent, [`jvp`](crate::jvp)) was asked of an op without a tangent rule:
    /// a custom op that does not implement [`CustomOp::tangent`](crate::CustomOp::tangent).
    TangentUnsupported {
        /// The op's name.
        op: String,
    },
    /// A forward-mode or functional-transform argument does not fit (a tangent of the wrong
    /// shape, a Var outside the level, an input index out of range).
    Transform {
        /// The transform (`jvp`, `jacobian`, `dual`, ...).
        op: &'static str,
        /// What does not fit, with the shapes or values.
        message: String,
    },
    /// Anomaly mode found a NaN or an infinity (see [`AnomalyMode`](crate::AnomalyMode)).
    Anomaly(Box<crate::diagnostics::AnomalyReport>),
    /// The tape already holds the most nodes a node index can name (2^32).
    TapeFull {
        /// The op that could not be recorded.
        op: String,
    },
}

/// Result alias for fallible autograd operations.
pub type Result<T> = std::result::Result<T, AutogradError>;

impl fmt::Display for AutogradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutogradError::Tensor(error) => write!(f, "{error}"),
            AutogradError::ForeignVar { op } => write!(
                f,
                "{op}: a Var from another tape was used; every Var of an expression must come from the same tape"
            ),
            AutogradError::NonScalarOutput { shape } => write!(
                f,
                "backward: the output has shape {shape} ({} elements); call backward_with(seed) for a non-scalar output",
                shape.numel()
            ),
            AutogradError::SeedShape { output, seed } => {
                write!(
                    f,
                    "backward_with: seed shape {seed} differs from output shape {output}"
                )
            }
            AutogradError::NoGradientPath => write!(
                f,
                "backward: the output does not depend on any leaf that requires a gradient"
            ),
            AutogradError::CustomOp { name, message } => write!(f, "custom op '{name}': {message}"),
            AutogradError::HigherOrderUnsupported { op } => write!(
                f,
                "{op}: higher-order gradients are not supported through this op"
            ),
            AutogradError::TangentUnsupported { op } => write!(
                f,
                "{op}: forward mode (tangents, jvp) is not supported through this op; give it a tangent rule (CustomOp::tangent)"
            ),
            AutogradError::Transform { op, message } => write!(f, "{op}: {message}"),
            AutogradError::Anomaly(report) => write!(f, "{report}"),
            AutogradError::TapeFull { op } => write!(
                f,
                "{op}: the tape already holds 2^32 nodes, the most it can index; clear it or record on a new tape"
            ),
        }
    }
}

impl std::error::Error for AutogradError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AutogradError::Tensor(error) => Some(error),
            _ => None,
        }
    }
}

impl From<TensorError> for AutogradError {
    fn from(error: TensorError) -> Self {
        AutogradError::Tensor(error)
    }
}

pub(crate) use tensor::or_panic;
