//! Adam (with coupled weight decay) and AdamW (decoupled weight decay), as `torch.optim`.

use tensor::{Float, Tensor, TensorError};

use super::{
    Optimizer, ParamGroup, ParamGroups, ParamStates, check_learning_rate, contiguous_values,
    non_negative,
};
use crate::error::{NnError, Result};
use crate::params::{ParamGradients, ParamStore};

/// Settings of [`Adam`] and [`AdamW`]; defaults are PyTorch's (betas 0.9 and 0.999, eps 1e-8;
/// weight decay 0 for Adam, 0.01 for AdamW).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub learning_rate: f64,
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Weight decay lambda: coupled in [`Adam`], decoupled in [`AdamW`].
    pub weight_decay: f64,
}

impl AdamConfig {
    /// PyTorch's Adam defaults with a learning rate.
    pub fn adam(learning_rate: f64) -> Self {
        AdamConfig {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// PyTorch's AdamW defaults with a learning rate.
    pub fn adamw(learning_rate: f64) -> Self {
        AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::adam(learning_rate)
        }
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        let AdamConfig {
            learning_rate,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = *self;
        check_learning_rate(op, learning_rate)?;
        let message = if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
            format!("betas must be in [0, 1), got {beta1} and {beta2}")
        } else if !non_negative(eps) || !non_negative(weight_decay) {
            format!("eps and weight decay must be finite and >= 0, got {eps} and {weight_decay}")
        } else {
            return Ok(());
        };
        Err(NnError::Tensor(TensorError::InvalidArgument {
            op,
            message,
        }))
    }
}

/// One parameter's Adam state: its own step count (as PyTorch keeps one per parameter, so a
/// parameter added late gets its bias correction from its own first step) and its moments.
#[derive(Clone, Debug)]
struct Moment<T: Float> {
    steps: u64,
    first: Tensor<T>,
    second: Tensor<T>,
}

/// The per-parameter state shared by Adam and AdamW.
#[derive(Clone, Debug)]
struct Moments<T: Float> {
    states: ParamStates<Moment<T>>,
}

impl<T: Float> Moments<T> {
    fn new() -> Self {
        Moments {
            states: ParamStates::default(),
        }
    }

    /// One Adam update; `coupled` adds `lambda * w` to the gradient, otherwise w shrinks by
    /// `lr * lambda` before the adaptive step (AdamW).
    fn update(
        &mut self,
        op: &'static str,
        config: &AdamConfig,
        store: &mut ParamStore<T>,
        gradients: &ParamGradients<T>,
        groups: &ParamGroups,
        coupled: bool,
    ) -> Result<()> {
        self.states.check(op, store, gradients, groups)?;
        self.states.bind(store.id());
        let (beta1, beta2) = (T::from_f64(config.beta1), T::from_f64(config.beta2));
        let eps = T::from_f64(config.eps);
        for (id, gradient) in gradients.iter() {
            let (lr, decay) = groups.settings(id, config.learning_rate, config.weight_decay);
            let (lr, decay) = (T::from_f64(lr), T::from_f64(decay));
            let shrink = T::ONE - lr * decay;
            let values = contiguous_values(gradient);
            let weights = store.value_mut(id);
            let state = self
                .states
                .get_or_init(id.index(), gradient.shape(), || Moment {
                    steps: 0,
                    // Tensors, so the state takes buffers the first step's tape left in the
                    // cache instead of growing the process's memory by two copies of the model.
                    first: Tensor::zeros(gradient.shape()),
                    second: Tensor::zeros(gradient.shape()),
                });
            state.steps += 1;
            let t = i32::try_from(state.steps).unwrap_or(i32::MAX);
            let correction1 = T::from_f64(1.0 - config.beta1.powi(t));
            let correction2 = T::from_f64(1.0 - config.beta2.powi(t));
            for (((w, &g), m), v) in weights
                .iter_mut()
                .zip(values.iter())
                .zip(state.first.make_mut().iter_mut())
                .zip(state.second.make_mut().iter_mut())
            {
                let g = if coupled { g + decay * *w } else { g };
                if !coupled {
                    *w *= shrink;
                }
                *m = beta1 * *m + (T::ONE - beta1) * g;
                *v = beta2 * *v + (T::ONE - beta2) * g * g;
                let m_hat = *m / correction1;
                let v_hat = *v / correction2;
                *w -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        Ok(())
    }
}

/// Adam with coupled weight decay (`lambda * w` added to the gradient), as `torch.optim.Adam`:
///
/// ```text
/// g = g + weight_decay * w
/// m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
/// m_hat = m / (1 - beta1^t)            v_hat = v / (1 - beta2^t)   (t counted per parameter)
/// w = w - lr * m_hat / (sqrt(v_hat) + eps)
/// ```
#[derive(Clone, Debug)]
pub struct Adam<T: Float = f32> {
    config: AdamConfig,
    groups: ParamGroups,
    moments: Moments<T>,
}

impl<T: Float> Adam<T> {
    /// Adam with PyTorch's defaults. Panics if the learning rate is negative or not finite.
    #[track_caller]
    pub fn new(learning_rate: f64) -> Self {
        match Adam::with_config(AdamConfig::adam(learning_rate)) {
            Ok(adam) => adam,
            Err(error) => panic!("{error}"),
        }
    }

    /// Adam with every setting; errors name an invalid one.
    pub fn with_config(config: AdamConfig) -> Result<Self> {
        config.validate("Adam")?;
        Ok(Adam {
            config,
            groups: ParamGroups::default(),
            moments: Moments::new(),
        })
    }

    /// Adds a parameter group with its own learning-rate factor and weight decay (see
    /// [`ParamGroup`]). Errors for an invalid setting or a parameter already in a group.
    pub fn with_group(mut self, group: ParamGroup) -> Result<Self> {
        self.groups.add("Adam::with_group", group)?;
        Ok(self)
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, store: &mut ParamStore<T>, gradients: &ParamGradients<T>) -> Result<()> {
        self.moments.update(
            "Adam::step",
            &self.config,
            store,
            gradients,
            &self.groups,
            true,
        )
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) -> Result<()> {
        check_learning_rate("Adam::set_learning_rate", learning_rate)?;
        self.config.learning_rate = learning_rate;
        Ok(())
    }
}

/// AdamW: Adam with decoupled weight decay, as `torch.optim.AdamW`: first
/// `w = w * (1 - lr * weight_decay)`, then the Adam step on the raw gradient.
#[derive(Clone, Debug)]
pub struct AdamW<T: Float = f32> {
    config: AdamConfig,
    groups: ParamGroups,
    moments: Moments<T>,
}

impl<T: Float> AdamW<T> {
    /// AdamW with PyTorch's defaults (weight decay 0.01). Panics if the learning rate is
    /// negative or not finite.
    #[track_caller]
    pub fn new(learning_rate: f64) -> Self {
        match AdamW::with_config(AdamConfig::adamw(learning_rate)) {
            Ok(adamw) => adamw,
            Err(error) => panic!("{error}"),
        }
    }

    /// AdamW with every setting; errors name an invalid one.
    pub fn with_config(config: AdamConfig) -> Result<Self> {
        config.validate("AdamW")?;
        Ok(AdamW {
            config,
            groups: ParamGroups::default(),
            moments: Moments::new(),
        })
    }

    /// Adds a parameter group with its own learning-rate factor and weight decay (see
    /// [`ParamGroup`]). Errors for an invalid setting or a parameter already in a group.
    pub fn with_group(mut self, group: ParamGroup) -> Result<Self> {
        self.groups.add("AdamW::with_group", group)?;
        Ok(self)
    }
}

impl<T: Float> Optimizer<T> for AdamW<T> {
    fn step(&mut self, store: &mut ParamStore<T>, gradients: &ParamGradients<T>) -> Result<()> {
        self.moments.update(
            "AdamW::step",
            &self.config,
            store,
            gradients,
            &self.groups,
            false,
        )
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) -> Result<()> {
        check_learning_rate("AdamW::set_learning_rate", learning_rate)?;
        self.config.learning_rate = learning_rate;
        Ok(())
    }
}
