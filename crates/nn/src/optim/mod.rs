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

use tensor::Float;

use crate::params::{ParamGradients, ParamStore};

/// Updates parameters from their gradients.
pub trait Optimizer<T: Float = f32> {
    /// One update of every trainable parameter that has a gradient.
    fn step(&mut self, store: &mut ParamStore<T>, gradients: &ParamGradients<T>);

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (for schedules).
    fn set_learning_rate(&mut self, learning_rate: f64);
}

/// Per-parameter state vectors, indexed by [`ParamId`](crate::ParamId).
#[derive(Clone, Debug, Default)]
pub(crate) struct StateSlots<T> {
    slots: Vec<Option<Vec<T>>>,
}

impl<T: Float> StateSlots<T> {
    /// The state of parameter `index` with `len` elements, zero-initialised on first use.
    pub(crate) fn get(&mut self, index: usize, len: usize) -> (&mut Vec<T>, bool) {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        let fresh = self.slots[index].is_none();
        let slot = self.slots[index].get_or_insert_with(|| vec![T::ZERO; len]);
        (slot, fresh)
    }
}

/// True for a finite value >= 0 (a valid rate, momentum or decay).
pub(crate) fn non_negative(value: f64) -> bool {
    value >= 0.0 && value.is_finite()
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
