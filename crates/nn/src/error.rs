//! The error type of the nn crate.

use std::fmt;
use std::path::PathBuf;

use autograd::AutogradError;
use tensor::{Shape, TensorError};

use crate::params::StoreId;

/// What went wrong in a layer, loss, optimizer, data loader or parameter file. Messages name
/// the layer, op, file or tensor involved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NnError {
    /// A tensor-level check failed.
    Tensor(TensorError),
    /// A tape-level check failed.
    Autograd(AutogradError),
    /// An input of the wrong shape reached a layer or loss.
    Shape {
        /// The layer or function.
        op: String,
        /// What was expected and what arrived.
        message: String,
    },
    /// A class label is not below the number of classes.
    Label {
        /// The function.
        op: &'static str,
        /// The label's position in the batch.
        position: usize,
        /// The label.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Two parameters were given the same name.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A malformed line of a CSV file.
    Csv {
        /// The file (or source name).
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// A gzip-compressed file (see [`load_csv`](crate::load_csv)) is not a valid gzip stream:
    /// corrupt, truncated, or not gzip at all although its name ends in `.gz`.
    Gzip {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A parameter file does not match the model.
    ParameterFile {
        /// The file.
        path: PathBuf,
        /// The tensor concerned, if any.
        tensor: Option<String>,
        /// What was wrong.
        message: String,
    },
    /// A parameter file does not match the model or breaks the format: every problem found,
    /// as (tensor, what is wrong); the tensor is `None` for the file as a whole.
    ParameterFileProblems {
        /// The file.
        path: PathBuf,
        /// Each problem, sorted by tensor name.
        problems: Vec<(Option<String>, String)>,
    },
    /// Gradients of one store were given for another.
    ForeignGradients {
        /// The operation.
        op: &'static str,
        /// The store the gradients were computed for.
        gradients: StoreId,
        /// The store they were applied to.
        store: StoreId,
    },
    /// An optimizer holding state for one store was asked to step another.
    ForeignOptimizerState {
        /// The operation.
        op: &'static str,
        /// The store the optimizer's state belongs to.
        optimizer: StoreId,
        /// The store it was asked to update.
        store: StoreId,
    },
    /// A gradient's shape differs from its parameter's.
    GradientShape {
        /// The operation.
        op: &'static str,
        /// The parameter's name.
        parameter: String,
        /// The parameter's shape.
        parameter_shape: Shape,
        /// The gradient's shape.
        gradient_shape: Shape,
    },
    /// A gradient was given for an entry that is not trainable (a buffer).
    NotTrainable {
        /// The operation.
        op: &'static str,
        /// The entry's name.
        parameter: String,
    },
}

/// Result alias for fallible nn operations.
pub type Result<T> = std::result::Result<T, NnError>;

impl fmt::Display for NnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NnError::Tensor(error) => write!(f, "{error}"),
            NnError::Autograd(error) => write!(f, "{error}"),
            NnError::Shape { op, message } => write!(f, "{op}: {message}"),
            NnError::Label {
                op,
                position,
                label,
                classes,
            } => write!(
                f,
                "{op}: label {label} at position {position} is out of range for {classes} classes (0..{classes})"
            ),
            NnError::DuplicateName { name } => {
                write!(f, "parameter name '{name}' is already taken")
            }
            NnError::Csv {
                file,
                line,
                column,
                message,
            } => {
                write!(f, "{file}: line {line}, column {column}: {message}")
            }
            NnError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            NnError::Gzip { path, message } => {
                write!(f, "{}: not a valid gzip file: {message}", path.display())
            }
            NnError::ParameterFile {
                path,
                tensor: Some(tensor),
                message,
            } => {
                write!(f, "{}: tensor '{tensor}': {message}", path.display())
            }
            NnError::ParameterFile {
                path,
                tensor: None,
                message,
            } => write!(f, "{}: {message}", path.display()),
            NnError::ParameterFileProblems { path, problems } => {
                let count = problems.len();
                let plural = if count == 1 { "" } else { "s" };
                write!(f, "{}: {count} problem{plural}", path.display())?;
                for (tensor, message) in problems {
                    match tensor {
                        Some(tensor) => write!(f, "\n  tensor '{tensor}': {message}")?,
                        None => write!(f, "\n  {message}")?,
                    }
                }
                Ok(())
            }
            NnError::ForeignGradients {
                op,
                gradients,
                store,
            } => write!(
                f,
                "{op}: the gradients were computed for {gradients}, not for this {store} (another model's parameters)"
            ),
            NnError::ForeignOptimizerState {
                op,
                optimizer,
                store,
            } => write!(
                f,
                "{op}: this optimizer holds state for {optimizer} and cannot update {store}; make one optimizer per model"
            ),
            NnError::GradientShape {
                op,
                parameter,
                parameter_shape,
                gradient_shape,
            } => write!(
                f,
                "{op}: the gradient of '{parameter}' has shape {gradient_shape}, the parameter {parameter_shape}"
            ),
            NnError::NotTrainable { op, parameter } => write!(
                f,
                "{op}: '{parameter}' is not trainable (a buffer, or a frozen parameter) and takes no gradient"
            ),
        }
    }
}

impl std::error::Error for NnError {}

impl From<TensorError> for NnError {
    fn from(error: TensorError) -> Self {
        NnError::Tensor(error)
    }
}

impl From<AutogradError> for NnError {
    fn from(error: AutogradError) -> Self {
        match error {
            AutogradError::Tensor(error) => NnError::Tensor(error),
            other => NnError::Autograd(other),
        }
    }
}

pub(crate) use tensor::or_panic;
