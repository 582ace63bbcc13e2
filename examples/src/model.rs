//! A multilayer perceptron builder: the one network shape every training example uses.

use autograd::Tape;
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, Mode, ParamStore, Role,
    Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

use crate::Result;

/// The shape of an MLP: `inputs -> hidden[0] -> ... -> hidden[k-1] -> outputs`, each hidden
/// layer `Dense`, then optionally `BatchNorm1d` (on z, before the activation, as the chapter
/// places it), then the activation, then optionally `Dropout`.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    /// Number of input features.
    pub inputs: usize,
    /// Units of each hidden layer.
    pub hidden: Vec<usize>,
    /// Number of outputs (classes, or 1 for a binary logit).
    pub outputs: usize,
    /// The hidden layers' activation.
    pub activation: Activation,
    /// How every dense layer's weights are drawn (biases start at zero).
    pub init: Init,
    /// Keep probability of a dropout layer after each hidden activation; `None` for no dropout.
    pub keep_probability: Option<f64>,
    /// Keep probabilities per hidden layer, in place of `keep_probability` when not empty
    /// (the chapter: larger layers usually get a higher drop probability).
    pub layer_keep_probabilities: Vec<f64>,
    /// Batch normalization between each hidden dense layer and its activation.
    pub batch_norm: bool,
}

impl MlpSpec {
    /// `depth` hidden layers of `width` units each, no dropout, no batch norm.
    pub fn uniform(
        inputs: usize,
        width: usize,
        depth: usize,
        outputs: usize,
        activation: Activation,
        init: Init,
    ) -> Self {
        MlpSpec {
            inputs,
            hidden: vec![width; depth],
            outputs,
            activation,
            init,
            keep_probability: None,
            layer_keep_probabilities: Vec::new(),
            batch_norm: false,
        }
    }

    /// Builds the network with weights drawn from a generator seeded by `seed` (the same seed
    /// gives the same weights, and dropout masks).
    pub fn build(&self, seed: u64) -> Result<Mlp> {
        let mut rng = StdRng::seed_from_u64(seed);
        // Dropout layers draw their mask seeds from their own generator, so that adding
        // dropout leaves the dense layers' initial weights as they are.
        let mut mask_rng = StdRng::seed_from_u64(seed ^ 0x6d61_736b_7321);
        let mut store = ParamStore::new();
        let mut network = Sequential::new();
        let mut dense_layers = Vec::new();
        let mut fan_in = self.inputs;
        for (i, &width) in self.hidden.iter().enumerate() {
            let layer = i + 1;
            let dense = Dense::new(
                &mut store,
                &format!("hidden{layer}"),
                fan_in,
                width,
                self.init,
                &mut rng,
            )?;
            dense_layers.push(dense.clone());
            network.push(dense);
            if self.batch_norm {
                network.push(BatchNorm1d::new(&mut store, &format!("bn{layer}"), width)?);
            }
            network.push(self.activation);
            let keep = match self.layer_keep_probabilities.get(i) {
                Some(&keep) => Some(keep),
                None if self.layer_keep_probabilities.is_empty() => self.keep_probability,
                None => {
                    return Err(format!(
                        "MlpSpec: {} keep probabilities for {} hidden layers",
                        self.layer_keep_probabilities.len(),
                        self.hidden.len()
                    )
                    .into());
                }
            };
            if let Some(keep) = keep {
                let dropout = Dropout::with_keep_probability(keep, &mut mask_rng)?;
                network.push(dropout.named(format!("dropout{layer}")));
            }
            fan_in = width;
        }
        let output = Dense::new(
            &mut store,
            "output",
            fan_in,
            self.outputs,
            self.init,
            &mut rng,
        )?;
        dense_layers.push(output.clone());
        network.push(output);
        Ok(Mlp {
            store,
            network,
            dense_layers,
        })
    }
}

/// A built network: its layers, its parameters, and handles to its dense layers.
#[derive(Debug)]
pub struct Mlp {
    /// Parameters and batch-norm statistics.
    pub store: ParamStore<f32>,
    /// The layers in order.
    pub network: Sequential<f32>,
    /// The dense layers in order (the last is the output layer), for per-layer statistics.
    pub dense_layers: Vec<Dense>,
}

impl Mlp {
    /// sqrt of the sum over dense layers of ||W||^2: the size L2 regularization penalises.
    pub fn weight_norm(&self) -> f64 {
        self.store
            .iter()
            .filter(|(_, _, role, _)| *role == Role::Weight)
            .map(|(_, _, _, w)| squared_norm(&w.to_vec()))
            .sum::<f64>()
            .sqrt()
    }
}

impl Mlp {
    /// One forward pass on `features` in `mode` without recording gradients: every dense
    /// layer's input (`a[l-1]`) and output (`z[l]`), in order, with the layer's name.
    pub fn dense_inputs_and_outputs(
        &mut self,
        features: &Tensor<f32>,
        mode: Mode,
    ) -> Result<Vec<DenseSignals>> {
        let tape = Tape::new();
        tape.no_grad(|| {
            let mut context = Context::new(&tape, &mut self.store, mode);
            let x = tape.constant(features.clone());
            let mut previous = features.clone();
            let mut signals = Vec::new();
            self.network
                .try_forward_observed(&mut context, x, |layer, output| {
                    let value = output.value();
                    if self
                        .dense_layers
                        .iter()
                        .any(|d| Layer::<f32>::name(d) == layer.name())
                    {
                        signals.push(DenseSignals {
                            layer: layer.name().to_string(),
                            input: previous.clone(),
                            output: value.clone(),
                        });
                    }
                    previous = value;
                })?;
            Ok(signals)
        })
    }
}

/// What one dense layer saw and produced in a forward pass.
#[derive(Clone, Debug)]
pub struct DenseSignals {
    /// The layer's name (`hidden1`, ..., `output`).
    pub layer: String,
    /// Its input `a[l-1]`, `[samples, inputs]`.
    pub input: Tensor<f32>,
    /// Its output `z[l]`, `[samples, outputs]`.
    pub output: Tensor<f32>,
}

/// Sum of squares, accumulated in f64.
pub fn squared_norm(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}
