//! Optimizers and learning-rate schedules.
//!
//! An optimizer's update is not a gradient, so it lives outside the tape: it reads the
//! gradients of a step ([`ParamGradients`]) and rewrites the parameters in the
//! [`ParamStore`] in place. Every formula and default follows PyTorch's `torch.optim`.
//!
//! ## Weight decay, the L2 penalty, and why AdamW exists
//! `weight_decay` in [`Sgd`] and [`Adam`] is *coupled*: `lambda * w` is added to the gradient
//! before the update, which is exactly the gradient of the penalty `(lambda / 2) ||w||^2`. For
//! SGD this is also the same as *decaying* the weights (`w -= lr * lambda * w` each step), so
//! "L2 regularization" and "weight decay" coincide. For Adam they do not: the penalty's
//! gradient is divided by Adam's running RMS of the gradient, so a weight whose data gradient
//! is small is pulled to zero by a full step of size `lr`, and one with large gradients is barely
//! decayed. [`AdamW`] *decouples* the decay — `w *= 1 - lr * lambda`, outside the adaptive step —
//! which restores the meaning of weight decay (Loshchilov & Hutter). The tests in this module
//! show all three facts on numbers.

mod adam;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW};
pub use schedule::{CosineAnnealing, ExponentialDecay, LearningRateSchedule, StepDecay};
pub use sgd::{Sgd, SgdConfig};

use tensor::{Float, Shape, TensorError};

use crate::error::{NnError, Result};
use crate::params::{ParamGradients, ParamStore, StoreId};

/// Updates parameters from their gradients.
///
/// An optimizer belongs to the store it first steps: its state (momentum buffers, moment
/// estimates, step counts) is kept per parameter of that store, with the parameter's shape.
/// [`step`](Optimizer::step) checks everything before it writes anything and returns a named
/// error, leaving the parameters and the optimizer's state untouched, when the gradients belong
/// to another store, a gradient's shape differs from its parameter's, or the optimizer belongs
/// to another store.
pub trait Optimizer<T: Float = f32> {
    /// One update of every trainable parameter that has a gradient.
    fn step(&mut self, store: &mut ParamStore<T>, gradients: &ParamGradients<T>) -> Result<()>;

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (for schedules); errors, changing nothing, unless it is finite
    /// and >= 0, the rule the constructors apply.
    fn set_learning_rate(&mut self, learning_rate: f64) -> Result<()>;
}

/// Per-parameter optimizer state, keyed like the gradients: the store's identity and the
/// parameter's position, with the parameter's shape.
#[derive(Clone, Debug)]
pub(crate) struct ParamStates<S> {
    store: Option<StoreId>,
    slots: Vec<Option<(Shape, S)>>,
}

impl<S> Default for ParamStates<S> {
    fn default() -> Self {
        ParamStates {
            store: None,
            slots: Vec::new(),
        }
    }
}

impl<S> ParamStates<S> {
    /// Checks, before anything is written, that `gradients` may update `store` with this
    /// state: the same store for all three, and every existing state of its parameter's shape.
    pub(crate) fn check<T: Float>(
        &self,
        op: &'static str,
        store: &ParamStore<T>,
        gradients: &ParamGradients<T>,
    ) -> Result<()> {
        gradients.check_against(op, store)?;
        if let Some(bound) = self.store.filter(|&bound| bound != store.id()) {
            return Err(NnError::ForeignOptimizerState {
                op,
                optimizer: bound,
                store: store.id(),
            });
        }
        for (id, gradient) in gradients.iter() {
            if let Some(Some((shape, _))) = self.slots.get(id.index()) {
                if shape != gradient.shape() {
                    return Err(NnError::GradientShape {
                        op,
                        parameter: store.name(id).to_string(),
                        parameter_shape: shape.clone(),
                        gradient_shape: gradient.shape().clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Binds the state to `store` (after [`check`](ParamStates::check) passed).
    pub(crate) fn bind(&mut self, store: StoreId) {
        self.store = Some(store);
    }

    /// The state of parameter `index` of `shape`, made by `init` on first use.
    pub(crate) fn get_or_init(
        &mut self,
        index: usize,
        shape: &Shape,
        init: impl FnOnce() -> S,
    ) -> &mut S {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        &mut self.slots[index]
            .get_or_insert_with(|| (shape.clone(), init()))
            .1
    }
}

/// True for a finite value >= 0 (a valid rate, momentum or decay).
pub(crate) fn non_negative(value: f64) -> bool {
    value >= 0.0 && value.is_finite()
}

/// Checks a learning rate as every constructor and setter does.
pub(crate) fn check_learning_rate(op: &'static str, learning_rate: f64) -> Result<()> {
    if non_negative(learning_rate) {
        Ok(())
    } else {
        Err(NnError::Tensor(TensorError::InvalidArgument {
            op,
            message: format!("the learning rate must be finite and >= 0, got {learning_rate}"),
        }))
    }
}

/// The gradient as a contiguous slice (copied only if it is a strided view).
pub(crate) fn contiguous_values<T: Float>(
    gradient: &tensor::Tensor<T>,
) -> std::borrow::Cow<'_, [T]> {
    match gradient.as_contiguous_slice() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(gradient.to_vec()),
    }
}

#[cfg(test)]
mod tests;
