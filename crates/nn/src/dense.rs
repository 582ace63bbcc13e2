//! The fully connected layer.

use autograd::Var;
use rand::Rng;
use tensor::{Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};
use crate::init::Init;
use crate::layer::Layer;
use crate::params::{Context, ParamId, ParamStore, Role};

/// z = x W + b on a batch of row vectors: x is `[batch, inputs]`, W is `[inputs, outputs]`,
/// b is `[outputs]` (broadcast over the batch), z is `[batch, outputs]`.
///
/// The chapter writes samples as columns: for layer l, W\[l\] is n\[l\] x n\[l-1\] and
/// z\[l\] = W\[l\] a\[l-1\] + b\[l\] with a\[l-1\] of shape n\[l-1\] x b. Transposing that equation
/// gives ours: z\[l\]ᵀ = a\[l-1\]ᵀ W\[l\]ᵀ + b\[l\]ᵀ, so our `x` is a\[l-1\]ᵀ (one sample per row), our
/// `W` is W\[l\]ᵀ (`inputs` = n\[l-1\] rows, `outputs` = n\[l\] columns), and `z` is z\[l\]ᵀ. The
/// same numbers, read along rows instead of columns; fan_in = `inputs`, fan_out = `outputs`.
///
/// Parameter files store `W` as `[outputs, inputs]`, PyTorch's `nn.Linear` layout (see
/// [`save_safetensors`](crate::save_safetensors)).
#[derive(Clone, Debug)]
pub struct Dense {
    name: String,
    weight: ParamId,
    bias: ParamId,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    /// A layer named `name` (its parameters are `{name}.weight` and `{name}.bias`), with
    /// weights drawn by `init` from `rng` and a zero bias. Errors, adding nothing to the store,
    /// if a name is taken, `inputs` or `outputs` is 0, or `init` is invalid for the layer.
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        inputs: usize,
        outputs: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let (weight_name, bias_name) = (format!("{name}.weight"), format!("{name}.bias"));
        for taken in [&weight_name, &bias_name] {
            if store.find(taken).is_some() {
                return Err(NnError::DuplicateName {
                    name: taken.clone(),
                });
            }
        }
        if inputs == 0 || outputs == 0 {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Dense::new",
                message: format!(
                    "'{name}' needs at least one input and one output, got {inputs} inputs and {outputs} outputs"
                ),
            }));
        }
        let initial = init.sample([inputs, outputs], inputs, outputs, rng)?;
        let weight = store.add(weight_name, Role::Weight, initial)?;
        let bias = store.add(bias_name, Role::Bias, Tensor::zeros([outputs]))?;
        Ok(Dense {
            name: name.to_string(),
            weight,
            bias,
            inputs,
            outputs,
        })
    }

    /// The weight's id.
    pub fn weight(&self) -> ParamId {
        self.weight
    }

    /// The bias's id.
    pub fn bias(&self) -> ParamId {
        self.bias
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of units.
    pub fn outputs(&self) -> usize {
        self.outputs
    }
}

impl<T: Float> Layer<T> for Dense {
    fn name(&self) -> &str {
        &self.name
    }

    /// `[..., inputs] -> [..., outputs]`: the last axis holds the features, any leading axes
    /// are batch axes (as `nn.Linear`), and a vector `[inputs]` gives `[outputs]`.
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        match input.dims() {
            [leading @ .., features] if *features == self.inputs => {
                let mut dims = leading.to_vec();
                dims.push(self.outputs);
                Ok(Shape::from(dims))
            }
            _ => Err(NnError::Shape {
                op: format!("Dense '{}'", self.name),
                message: format!(
                    "expected input [..., {}] (features on the last axis), got {input}",
                    self.inputs
                ),
            }),
        }
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let output_shape = Layer::<T>::output_shape(self, &x.shape())?;
        let (weight, bias) = (context.param(self.weight), context.param(self.bias));
        if x.shape().rank() == 2 {
            return Ok(x.try_matmul(weight)?.try_add(bias)?);
        }
        // Every leading axis folded into one batch axis: one matrix product, then the
        // leading axes back.
        let rows = x.shape().numel() / self.inputs;
        let flat = x.try_reshape([rows, self.inputs])?;
        Ok(flat
            .try_matmul(weight)?
            .try_add(bias)?
            .try_reshape(output_shape)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Mode;
    use crate::test_support::{gradcheck_layer, rng, sample};
    use autograd::Tape;

    #[test]
    fn dense_gradients_in_both_modes() {
        let mut store = ParamStore::<f64>::new();
        let layer = Dense::new(&mut store, "dense", 3, 4, Init::XavierNormal, &mut rng(1)).unwrap();
        store.set_value(layer.bias, sample(&[4], 2));
        for mode in [Mode::Train, Mode::Eval] {
            gradcheck_layer(&layer, &store, sample(&[5, 3], 3), mode);
        }
    }

    #[test]
    fn dense_is_x_w_plus_b() {
        let mut store = ParamStore::<f64>::new();
        let layer =
            Dense::new(&mut store, "dense", 2, 2, Init::Constant(0.0), &mut rng(0)).unwrap();
        store.set_value(
            layer.weight,
            Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap(),
        );
        store.set_value(layer.bias, Tensor::from_vec(vec![10.0, 20.0], [2]).unwrap());
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let x = tape.constant(Tensor::from_vec(vec![1.0, 1.0, 0.0, 2.0], [2, 2]).unwrap());
        // [1, 1] W = [4, 6]; [0, 2] W = [6, 8]
        assert_eq!(
            layer.forward(&mut context, x).value().to_vec(),
            vec![14.0, 26.0, 16.0, 28.0]
        );
    }

    #[test]
    fn wrong_feature_count_is_named_and_changes_nothing() {
        let mut store = ParamStore::<f32>::new();
        let layer = Dense::new(&mut store, "hidden1", 784, 8, Init::HeNormal, &mut rng(0)).unwrap();
        let before = store.clone();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let x = tape.constant(Tensor::zeros([128, 100]));
        let nodes = tape.len();
        let error = layer.try_forward(&mut context, x).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Dense 'hidden1': expected input [..., 784] (features on the last axis), got [128, 100]"
        );
        assert_eq!(tape.len(), nodes);
        for (id, ..) in before.iter() {
            assert_eq!(before.value(id), store.value(id));
        }
    }

    #[test]
    fn degenerate_sizes_and_bad_inits_are_errors_that_add_nothing() {
        let mut store = ParamStore::<f32>::new();
        // Zero inputs used to panic (He's variance 2 / 0) inside a function returning Result.
        let error = Dense::new(&mut store, "d", 0, 3, Init::HeNormal, &mut rng(0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Dense::new: 'd' needs at least one input and one output, got 0 inputs and 3 outputs"
        );
        let error = Dense::new(
            &mut store,
            "d",
            3,
            2,
            Init::Normal { std: -1.0 },
            &mut rng(0),
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("Init::Normal"), "{error}");
        assert!(store.is_empty());
    }

    #[test]
    fn duplicate_names_are_refused_before_anything_is_added() {
        let mut store = ParamStore::<f32>::new();
        Dense::new(&mut store, "a", 2, 2, Init::HeNormal, &mut rng(0)).unwrap();
        let error = Dense::new(&mut store, "a", 2, 2, Init::HeNormal, &mut rng(0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter name 'a.weight' is already taken"
        );
        assert_eq!(store.len(), 2);
    }
}
