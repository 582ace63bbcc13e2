//! A multilayer perceptron builder: the one network shape every training example uses.

use nn::{Activation, BatchNorm1d, Dense, Dropout, Init, ParamStore, Role, Sequential};
use rand::SeedableRng;
use rand::rngs::StdRng;

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
            batch_norm: false,
        }
    }

    /// Builds the network with weights drawn from a generator seeded by `seed` (the same seed
    /// gives the same weights, and dropout masks).
    pub fn build(&self, seed: u64) -> Result<Mlp> {
        let mut rng = StdRng::seed_from_u64(seed);
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
            if let Some(keep) = self.keep_probability {
                let dropout = Dropout::with_keep_probability(keep, &mut rng)?;
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

/// Sum of squares, accumulated in f64.
pub fn squared_norm(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}
