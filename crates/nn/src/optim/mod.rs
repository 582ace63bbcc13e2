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

//!
//! ## Parameter groups, frozen parameters, clipping, accumulation, skipped steps
//! PyTorch's `param_groups`, `requires_grad_(False)`, `clip_grad_norm_`, repeated `backward`
//! calls and `GradScaler`'s skipped steps, here:
//!
//! ```
//! use autograd::Tape;
//! use nn::optim::{AdamW, Optimizer, ParamGroup, StepOutcome};
//! use nn::{BatchNorm1d, Context, Dense, Init, Layer, Mode, ParamStore, Sequential};
//! use nn::rand::SeedableRng;
//! use tensor::Tensor;
//!
//! let mut rng = nn::rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::<f32>::new();
//! let model = Sequential::new()
//!     .with(Dense::new(&mut store, "hidden1", 4, 8, Init::HeNormal, &mut rng).unwrap())
//!     .with(BatchNorm1d::new(&mut store, "bn1", 8).unwrap())
//!     .with(Dense::new(&mut store, "output", 8, 3, Init::XavierNormal, &mut rng).unwrap());
//! // No weight decay on biases and batch norm's gamma and beta; the first layer frozen.
//! let mut optimizer = AdamW::new(1e-3)
//!     .with_group(ParamGroup::new(store.unpenalized()).weight_decay(0.0))
//!     .unwrap();
//! for id in store.matching("hidden1.") {
//!     store.set_trainable(id, false).unwrap();
//! }
//! let x = Tensor::<f32>::random_normal([8, 4], 0.0, 1.0, &mut rng).unwrap();
//! let labels = [0, 1, 2, 0, 1, 2, 0, 1];
//!
//! // Two micro-batches of 4, accumulated, then one clipped step.
//! let mut total: Option<nn::ParamGradients<f32>> = None;
//! for half in 0..2 {
//!     let tape = Tape::new();
//!     let mut context = Context::new(&tape, &mut store, Mode::Train);
//!     let logits = model.forward(&mut context, tape.constant(x.narrow(0, 4 * half, 4)));
//!     let loss = nn::cross_entropy(logits, &labels[4 * half..4 * half + 4]);
//!     let gradients = context.gradients(&loss.backward());
//!     match &mut total {
//!         None => total = Some(gradients),
//!         Some(total) => total.accumulate(&gradients).unwrap(),
//!     }
//! }
//! let mut gradients = total.unwrap();
//! gradients.scale(0.5);
//! let norm = gradients.clip_norm(1.0).unwrap();
//! assert!(norm.is_finite());
//! let outcome = optimizer.step_if_finite(&mut store, &gradients).unwrap();
//! assert_eq!(outcome, StepOutcome::Applied);
//! ```

mod adam;
mod groups;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW};
pub use groups::ParamGroup;
pub(crate) use groups::ParamGroups;
pub use schedule::{
    CosineAnnealing, ExponentialDecay, LearningRateSchedule, LinearWarmup, ReduceOnPlateau,
    StepDecay,
};
pub use sgd::{Sgd, SgdConfig};

use std::fmt;

use tensor::{Float, Shape, TensorError};

use crate::error::{NnError, Result};
use crate::params::{ParamGradients, ParamStore, StoreId};

/// What [`Optimizer::step_if_finite`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// Every gradient was finite and the step was taken.
    Applied,
    /// A gradient was NaN or infinite: nothing was updated (parameters and optimizer state as
    /// they were).
    Skipped {
        /// The parameter whose gradient is not finite (the first one, in store order).
        parameter: String,
        /// The element's flat (row-major) index in that gradient.
        element: usize,
        /// The value found there.
        value: f64,
    },
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepOutcome::Applied => write!(f, "step applied"),
            StepOutcome::Skipped {
                parameter,
                element,
                value,
            } => write!(
                f,
                "step skipped: the gradient of '{parameter}' is {value} at element {element}; nothing was updated"
            ),
        }
    }
}

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

    /// [`step`](Optimizer::step) if every gradient is finite; otherwise nothing is updated and
    /// the outcome names the first gradient element that is not (PyTorch's `GradScaler`
    /// skips such steps silently; this says so). Gradients that do not fit the store are still
    /// an error, as for `step`.
    ///
    /// ```
    /// use nn::optim::{Optimizer, Sgd, StepOutcome};
    /// use nn::{ParamGradients, ParamStore, Role};
    /// use tensor::Tensor;
    /// let mut store = ParamStore::<f64>::new();
    /// let b = store.add("b", Role::Bias, Tensor::zeros([2])).unwrap();
    /// let gradient = Tensor::from_vec(vec![1.0, f64::NAN], [2]).unwrap();
    /// let gradients = ParamGradients::from_values(&store, vec![Some(gradient)]).unwrap();
    /// let outcome = Sgd::new(0.1).step_if_finite(&mut store, &gradients).unwrap();
    /// assert_eq!(outcome.to_string(), "step skipped: the gradient of 'b' is NaN at element 1; nothing was updated");
    /// assert_eq!(store.value(b).to_vec(), vec![0.0, 0.0]);
    /// ```
    fn step_if_finite(
        &mut self,
        store: &mut ParamStore<T>,
        gradients: &ParamGradients<T>,
    ) -> Result<StepOutcome> {
        gradients.check_against("Optimizer::step_if_finite", store)?;
        if let Some((id, element, value)) = gradients.first_non_finite() {
            return Ok(StepOutcome::Skipped {
                parameter: store.name(id).to_string(),
                element,
                value,
            });
        }
        self.step(store, gradients)?;
        Ok(StepOutcome::Applied)
    }
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
        groups: &ParamGroups,
    ) -> Result<()> {
        gradients.check_against(op, store)?;
        groups.check(op, store)?;
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
