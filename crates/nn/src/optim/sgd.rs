//! Stochastic gradient descent with momentum, Nesterov momentum, dampening and coupled weight
//! decay, as `torch.optim.SGD`.

use tensor::{Float, Tensor, TensorError};

use super::{
    Optimizer, ParamGroup, ParamGroups, ParamStates, check_learning_rate, contiguous_values,
    non_negative,
};
use crate::error::{NnError, Result};
use crate::params::{ParamGradients, ParamStore};

/// Settings of [`Sgd`]; the defaults are PyTorch's (no momentum, no dampening, no decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Step size.
    pub learning_rate: f64,
    /// Momentum factor mu (0: plain SGD).
    pub momentum: f64,
    /// Dampening of the new gradient in the momentum buffer, in [0, 1] (PyTorch default 0).
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// Coupled weight decay lambda: `lambda * w` is added to the gradient.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            learning_rate: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD. Per parameter w with gradient g, exactly as PyTorch:
///
/// ```text
/// g = g + weight_decay * w
/// if momentum > 0:
///     b = g                                        (first step)
///     b = momentum * b + (1 - dampening) * g       (later steps)
///     g = g + momentum * b   if nesterov   else   b
/// w = w - learning_rate * g
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<T: Float = f32> {
    config: SgdConfig,
    groups: ParamGroups,
    momentum_buffers: ParamStates<Tensor<T>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD with step size `learning_rate`. Panics if it is negative or not finite.
    #[track_caller]
    pub fn new(learning_rate: f64) -> Self {
        match Sgd::with_config(SgdConfig {
            learning_rate,
            ..SgdConfig::default()
        }) {
            Ok(sgd) => sgd,
            Err(error) => panic!("{error}"),
        }
    }

    /// SGD with every setting; errors name an invalid one.
    ///
    /// ```
    /// use nn::optim::{Sgd, SgdConfig};
    /// let sgd = Sgd::<f32>::with_config(SgdConfig { learning_rate: 0.1, momentum: 0.9, nesterov: true, ..SgdConfig::default() });
    /// assert!(sgd.is_ok());
    /// let bad = Sgd::<f32>::with_config(SgdConfig { nesterov: true, ..SgdConfig::default() });
    /// assert_eq!(bad.unwrap_err().to_string(), "Sgd: Nesterov momentum needs momentum > 0 and dampening 0, got momentum 0, dampening 0");
    /// ```
    pub fn with_config(config: SgdConfig) -> Result<Self> {
        let invalid = |message: String| {
            Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Sgd",
                message,
            }))
        };
        let SgdConfig {
            learning_rate,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = config;
        check_learning_rate("Sgd", learning_rate)?;
        if !(0.0..=1.0).contains(&dampening) {
            return invalid(format!("dampening must be in [0, 1], got {dampening}"));
        }
        if !non_negative(momentum) || !non_negative(weight_decay) {
            return invalid(format!(
                "momentum and weight decay must be finite and >= 0, got {momentum} and {weight_decay}"
            ));
        }
        if nesterov && (momentum <= 0.0 || dampening != 0.0) {
            return invalid(format!(
                "Nesterov momentum needs momentum > 0 and dampening 0, got momentum {momentum}, dampening {dampening}"
            ));
        }
        Ok(Sgd {
            config,
            groups: ParamGroups::default(),
            momentum_buffers: ParamStates::default(),
        })
    }

    /// Adds a parameter group with its own learning-rate factor and weight decay (see
    /// [`ParamGroup`]). Errors for an invalid setting or a parameter already in a group.
    pub fn with_group(mut self, group: ParamGroup) -> Result<Self> {
        self.groups.add("Sgd::with_group", group)?;
        Ok(self)
    }

    /// The settings.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, store: &mut ParamStore<T>, gradients: &ParamGradients<T>) -> Result<()> {
        self.momentum_buffers
            .check("Sgd::step", store, gradients, &self.groups)?;
        self.momentum_buffers.bind(store.id());
        let c = self.config;
        let momentum = T::from_f64(c.momentum);
        let keep_new = T::ONE - T::from_f64(c.dampening);
        for (id, gradient) in gradients.iter() {
            let (lr, decay) = self.groups.settings(id, c.learning_rate, c.weight_decay);
            let (lr, decay) = (T::from_f64(lr), T::from_f64(decay));
            let values = contiguous_values(gradient);
            let weights = store.value_mut(id);
            if c.momentum == 0.0 {
                for (w, &g) in weights.iter_mut().zip(values.iter()) {
                    *w -= lr * (g + decay * *w);
                }
                continue;
            }
            let mut first = false;
            let buffer = self
                .momentum_buffers
                .get_or_init(id.index(), gradient.shape(), || {
                    first = true;
                    Tensor::zeros(gradient.shape())
                });
            for ((w, &g), b) in weights
                .iter_mut()
                .zip(values.iter())
                .zip(buffer.make_mut().iter_mut())
            {
                let g = g + decay * *w;
                *b = if first {
                    g
                } else {
                    momentum * *b + keep_new * g
                };
                let step = if c.nesterov { g + momentum * *b } else { *b };
                *w -= lr * step;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) -> Result<()> {
        check_learning_rate("Sgd::set_learning_rate", learning_rate)?;
        self.config.learning_rate = learning_rate;
        Ok(())
    }
}
