//! Checking a layer's gradients the way the library checks its own.

use autograd::gradcheck::{GradcheckError, GradcheckOptions, Report, gradcheck};
use tensor::Tensor;

use crate::layer::Layer;
use crate::params::{Context, Mode, ParamStore};

/// Gradchecks `layer` at input `x` with respect to `x` and every trainable parameter of
/// `store` (in the store's order), in `mode`, with [`autograd::gradcheck`]. Each evaluation
/// runs on its own copy of the store, so training-mode updates (batch norm's running
/// statistics) do not leak between evaluations, and all of them run the store's current
/// training step, so dropout masks stay fixed.
///
/// ```
/// use autograd::gradcheck::GradcheckOptions;
/// use nn::{Dense, Init, Mode, ParamStore, gradcheck_layer};
/// use rand::SeedableRng;
/// use tensor::Tensor;
///
/// let mut store = ParamStore::<f64>::new();
/// let layer = Dense::new(&mut store, "dense", 3, 2, Init::XavierNormal, &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap();
/// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.1, 0.3, -0.7], [2, 3]).unwrap();
/// let report = gradcheck_layer(&layer, &store, x, Mode::Train, &GradcheckOptions::strict("dense")).unwrap();
/// assert_eq!(report.inputs, 3); // the input, the weight and the bias
/// ```
pub fn gradcheck_layer<L: Layer<f64> + ?Sized>(
    layer: &L,
    store: &ParamStore<f64>,
    x: Tensor<f64>,
    mode: Mode,
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError> {
    let mut inputs = vec![x];
    inputs.extend(store.trainable().map(|id| store.value(id).clone()));
    gradcheck(
        |v| {
            let mut store = store.clone();
            let mut context = Context::with_vars(v[0].tape(), &mut store, &v[1..], mode)
                .expect("one Var per trainable parameter, of its shape");
            layer.forward(&mut context, v[0])
        },
        &inputs,
        options,
    )
}
