//! [`LayerNorm`]: normalization of each example over its features.

use autograd::Var;
use tensor::{Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::{Context, ParamId, ParamStore, Role};

/// Layer normalization over the last axis, as PyTorch's `nn.LayerNorm(features)`: each row
/// `x` (the last axis, for any leading axes) becomes `(x - mean(x)) / sqrt(var(x) + eps) *
/// gamma + beta`, with the biased variance (divide by the number of features) and `eps` 1e-5.
/// It is the chapter's "normalize the activations" applied per example instead of per batch: no
/// batch statistics, no running statistics, the same in training and evaluation, and a batch of
/// one is fine. Parameters `{name}.weight` (gamma, ones) and `{name}.bias` (beta, zeros), as
/// PyTorch names them. Composed of autograd ops: its gradient is derived.
///
/// ```
/// use autograd::Tape;
/// use nn::{Context, LayerNorm, Layer, ParamStore};
/// use tensor::Tensor;
/// let mut store = ParamStore::<f64>::new();
/// let norm = LayerNorm::new(&mut store, "norm", 4).unwrap();
/// let tape = Tape::new();
/// let mut context = Context::eval(&tape, &store);
/// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0], [2, 4]).unwrap());
/// let y = norm.forward(&mut context, x).value().to_vec();
/// let row_mean: f64 = y[..4].iter().sum::<f64>() / 4.0;
/// let row_var: f64 = y[..4].iter().map(|v| v * v).sum::<f64>() / 4.0;
/// assert!(row_mean.abs() < 1e-15 && (row_var - 1.0).abs() < 1e-4); // 1 - eps / (var + eps)
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    name: String,
    features: usize,
    eps: f64,
    gamma: ParamId,
    beta: ParamId,
}

impl LayerNorm {
    /// A layer norm over `features`, with eps 1e-5. Errors, adding nothing, if a name is taken
    /// or `features` is 0.
    pub fn new<T: Float>(store: &mut ParamStore<T>, name: &str, features: usize) -> Result<Self> {
        LayerNorm::with_eps(store, name, features, 1e-5)
    }

    /// A layer norm with its own `eps` (> 0 and finite).
    pub fn with_eps<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        features: usize,
        eps: f64,
    ) -> Result<Self> {
        let (weight, bias) = (format!("{name}.weight"), format!("{name}.bias"));
        for taken in [&weight, &bias] {
            if store.find(taken).is_some() {
                return Err(NnError::DuplicateName {
                    name: taken.clone(),
                });
            }
        }
        if features == 0 || !(eps > 0.0 && eps.is_finite()) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "LayerNorm::new",
                message: format!(
                    "'{name}' needs at least one feature and a finite eps > 0, got {features} features and eps {eps}"
                ),
            }));
        }
        Ok(LayerNorm {
            name: name.to_string(),
            features,
            eps,
            gamma: store.add(weight, Role::Scale, Tensor::ones([features]))?,
            beta: store.add(bias, Role::Shift, Tensor::zeros([features]))?,
        })
    }

    /// The scale gamma's id (`{name}.weight`).
    pub fn gamma(&self) -> ParamId {
        self.gamma
    }

    /// The shift beta's id (`{name}.bias`).
    pub fn beta(&self) -> ParamId {
        self.beta
    }
}

impl<T: Float> Layer<T> for LayerNorm {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        match input.dims().last() {
            Some(&features) if features == self.features => Ok(input.clone()),
            _ => Err(NnError::Shape {
                op: format!("LayerNorm '{}'", self.name),
                message: format!(
                    "expected input [..., {}] (features on the last axis), got {input}",
                    self.features
                ),
            }),
        }
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        Layer::<T>::output_shape(self, &x.shape())?;
        let last = x.shape().rank() - 1;
        // Biased variance (divide by the number of features), as PyTorch.
        let (_, centered, variance) = x.try_moments(&[last], false)?;
        let normalized =
            centered.try_div(variance.try_add_scalar(T::from_f64(self.eps))?.try_sqrt()?)?;
        Ok(normalized
            .try_mul(context.param(self.gamma))?
            .try_add(context.param(self.beta))?)
    }
}
