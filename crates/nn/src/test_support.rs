//! Helpers shared by the unit tests.

use autograd::gradcheck::GradcheckOptions;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Shape, Tensor};

use crate::layer::Layer;
use crate::params::{Mode, ParamStore};

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Deterministic values in [-1.5, 1.5] of `dims`.
pub(crate) fn sample(dims: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(Shape::from(dims), -1.5, 1.5, &mut rng(seed)).unwrap()
}

/// Deterministic values with 0.2 <= |x| <= 1.5 (away from the kinks at 0).
pub(crate) fn away_from_zero(dims: &[usize], seed: u64) -> Tensor<f64> {
    sample(dims, seed).map(|x| {
        if x >= 0.0 {
            0.2 + x * 0.85
        } else {
            -0.2 + x * 0.85
        }
    })
}

/// [`gradcheck_layer`](crate::gradcheck_layer) with strict tolerances, panicking on failure.
pub(crate) fn gradcheck_layer(
    layer: &dyn Layer<f64>,
    store: &ParamStore<f64>,
    x: Tensor<f64>,
    mode: Mode,
) {
    let options = GradcheckOptions::strict(format!("{} in {mode:?}", layer.name()));
    if let Err(error) = crate::gradcheck_layer(layer, store, x, mode, &options) {
        panic!("{error}");
    }
}
