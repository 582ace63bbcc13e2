//! Activation functions as layers, and leaky ReLU.

use autograd::Var;
use tensor::{Float, Shape, Tensor};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::Context;

/// x where x > 0, slope * x elsewhere (derivative `slope` at exactly 0, as PyTorch), composed
/// of `select`.
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![-2.0, 3.0], [2]).unwrap());
/// assert_eq!(nn::leaky_relu(x, 0.1).value().to_vec(), vec![-0.2, 3.0]);
/// ```
#[track_caller]
pub fn leaky_relu<'t, T: Float>(x: Var<'t, T>, slope: f64) -> Var<'t, T> {
    crate::error::or_panic(try_leaky_relu(x, slope))
}

/// Fallible [`leaky_relu`] (fails only in anomaly mode).
#[track_caller]
pub fn try_leaky_relu<'t, T: Float>(x: Var<'t, T>, slope: f64) -> Result<Var<'t, T>> {
    let positive = x.value().greater(&Tensor::scalar(T::ZERO));
    Ok(Var::try_select(
        &positive,
        x,
        x.try_mul_scalar(T::from_f64(slope))?,
    )?)
}

/// An element-wise (or, for the softmaxes, last-axis) activation as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// x for x > 0, slope * x otherwise.
    LeakyRelu {
        /// Slope for negative inputs (PyTorch's default is 0.01).
        slope: f64,
    },
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// x.
    Identity,
}

impl Activation {
    /// The activation applied to `x`.
    #[track_caller]
    pub fn apply<'t, T: Float>(self, x: Var<'t, T>) -> Var<'t, T> {
        crate::error::or_panic(self.try_apply(x))
    }

    /// Fallible [`apply`](Activation::apply) (fails only in anomaly mode).
    #[track_caller]
    pub fn try_apply<'t, T: Float>(self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let last = x.shape().rank().saturating_sub(1);
        Ok(match self {
            Activation::Relu => x.try_relu()?,
            Activation::LeakyRelu { slope } => try_leaky_relu(x, slope)?,
            Activation::Tanh => x.try_tanh()?,
            Activation::Sigmoid => x.try_sigmoid()?,
            Activation::Softmax => x.try_softmax(last)?,
            Activation::LogSoftmax => x.try_log_softmax(last)?,
            Activation::Identity => x,
        })
    }
}

impl<T: Float> Layer<T> for Activation {
    fn name(&self) -> &str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
            Activation::LogSoftmax => "log_softmax",
            Activation::Identity => "identity",
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        if matches!(self, Activation::Softmax | Activation::LogSoftmax) && input.rank() == 0 {
            return Err(NnError::Shape {
                op: Layer::<T>::name(self).to_string(),
                message: "needs at least one axis, got a scalar".to_string(),
            });
        }
        Ok(input.clone())
    }

    fn try_forward<'t>(
        &self,
        _context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        Layer::<T>::output_shape(self, &x.shape())?;
        self.try_apply(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Mode, ParamStore};
    use crate::test_support::{away_from_zero, gradcheck_layer};

    #[test]
    fn activation_gradients() {
        let store = ParamStore::<f64>::new();
        for activation in [
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.1 },
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softmax,
            Activation::LogSoftmax,
            Activation::Identity,
        ] {
            gradcheck_layer(&activation, &store, away_from_zero(&[3, 4], 5), Mode::Train);
        }
    }

    #[test]
    fn leaky_relu_slope_at_zero_matches_pytorch() {
        let tape = autograd::Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![0.0, -1.0, 1.0], [3]).unwrap());
        let grad = leaky_relu(x, 0.25).sum_all().backward().wrt(x).to_vec();
        assert_eq!(grad, vec![0.25, 0.25, 1.0]);
    }
}
