//! Every layer, loss and penalty gradchecked in f64 on random small shapes, in training and
//! in evaluation mode, with respect to its input and every trainable parameter.

use autograd::Var;
use autograd::gradcheck::{GradcheckOptions, gradcheck};
use autograd::testing::{Domain, tensor_strategy};
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, Mode, ParamStore, Sequential,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Shape, Tensor};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Gradchecks `layer` at `x` with respect to `x` and the store's trainable parameters, at the
/// given training step.
fn check_layer(
    layer: &dyn Layer<f64>,
    store: &ParamStore<f64>,
    x: Tensor<f64>,
    (mode, step): (Mode, u64),
) -> Result<(), TestCaseError> {
    let mut store = store.clone();
    store.set_training_step(step);
    let options = GradcheckOptions::strict(format!("{} in {mode:?}", layer.name()));
    nn::gradcheck_layer(layer, &store, x, mode, &options)
        .map(|_| ())
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

fn batch_and_features() -> impl Strategy<Value = (usize, usize)> {
    (2..=5usize, 1..=4usize)
}

fn input(batch: usize, features: usize, domain: Domain) -> BoxedStrategy<Tensor<f64>> {
    tensor_strategy(Shape::from([batch, features]), domain)
}

/// Training (at a random step of the store's count, which sets the dropout masks) or
/// evaluation.
fn mode() -> impl Strategy<Value = (Mode, u64)> {
    prop_oneof![
        (0..100u64).prop_map(|step| (Mode::Train, step)),
        Just((Mode::Eval, 0))
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dense_passes_gradcheck(
        ((batch, inputs), outputs, seed, mode) in (batch_and_features(), 1..=4usize, any::<u64>(), mode())
    ) {
        let mut store = ParamStore::new();
        let mut rng = StdRng::seed_from_u64(seed);
        let layer = Dense::new(&mut store, "dense", inputs, outputs, Init::XavierUniform, &mut rng).unwrap();
        store.set_value(layer.bias(), Tensor::random_uniform([outputs], -1.0, 1.0, &mut rng).unwrap());
        let x = Tensor::random_uniform([batch, inputs], -2.0, 2.0, &mut rng).unwrap();
        check_layer(&layer, &store, x, mode)?;
    }

    #[test]
    fn batch_norm_passes_gradcheck(
        (x, seed, mode) in batch_and_features().prop_flat_map(|(b, f)| (input(b, f, Domain::Distinct), any::<u64>(), mode()))
    ) {
        let features = x.dims()[1];
        let mut store = ParamStore::new();
        let layer = BatchNorm1d::new(&mut store, "bn", features).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        store.set_value(layer.scale(), Tensor::random_uniform([features], 0.5, 2.0, &mut rng).unwrap());
        store.set_value(layer.shift(), Tensor::random_uniform([features], -1.0, 1.0, &mut rng).unwrap());
        store.set_value(layer.running_mean(), Tensor::random_uniform([features], -1.0, 1.0, &mut rng).unwrap());
        store.set_value(layer.running_var(), Tensor::random_uniform([features], 0.5, 2.0, &mut rng).unwrap());
        check_layer(&layer, &store, x, mode)?;
    }

    #[test]
    fn dropout_passes_gradcheck(
        (x, keep, seed, mode) in batch_and_features()
            .prop_flat_map(|(b, f)| (input(b, f, Domain::Any), 0.2..=1.0f64, any::<u64>(), mode()))
    ) {
        let layer = Dropout::with_keep_probability(keep, &mut StdRng::seed_from_u64(seed)).unwrap();
        check_layer(&layer, &ParamStore::new(), x, mode)?;
    }

    #[test]
    fn activations_pass_gradcheck(
        (x, which, mode) in batch_and_features().prop_flat_map(|(b, f)| (input(b, f, Domain::AwayFromZero), 0..7usize, mode()))
    ) {
        let activation = [
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.05 },
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softmax,
            Activation::LogSoftmax,
            Activation::Identity,
        ][which];
        check_layer(&activation, &ParamStore::new(), x, mode)?;
    }

    #[test]
    fn a_whole_model_passes_gradcheck(
        ((batch, inputs), seed, mode) in (batch_and_features(), any::<u64>(), mode())
    ) {
        let mut store = ParamStore::new();
        let mut rng = StdRng::seed_from_u64(seed);
        let model = Sequential::new()
            .with(Dense::new(&mut store, "hidden", inputs, 3, Init::HeNormal, &mut rng).unwrap())
            .with(BatchNorm1d::new(&mut store, "bn", 3).unwrap())
            .with(Activation::Tanh)
            .with(Dropout::with_keep_probability(0.7, &mut rng).unwrap())
            .with(Dense::new(&mut store, "output", 3, 2, Init::XavierNormal, &mut rng).unwrap());
        let x = Tensor::random_uniform([batch, inputs], -2.0, 2.0, &mut rng).unwrap();
        check_layer(&model, &store, x, mode)?;
    }

    #[test]
    fn losses_pass_gradcheck(
        ((batch, classes), seed) in ((1..=5usize, 2..=5usize), any::<u64>())
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let logits = Tensor::random_uniform([batch, classes], -3.0, 3.0, &mut rng).unwrap();
        let labels: Vec<usize> = (0..batch).map(|i| (i * 7 + seed as usize) % classes).collect();
        let targets = Tensor::random_uniform([batch, classes], 0.0, 1.0, &mut rng).unwrap().map(f64::round);
        let fail = |e: autograd::gradcheck::GradcheckError| TestCaseError::fail(e.to_string());
        let strict = |name: &str| GradcheckOptions::strict(name);
        gradcheck(|v| nn::cross_entropy(v[0], &labels), std::slice::from_ref(&logits), &strict("cross_entropy")).map_err(fail)?;
        gradcheck(|v| nn::mse(v[0], v[1]), &[logits.clone(), targets.clone()], &strict("mse")).map_err(fail)?;
        gradcheck(
            |v| nn::binary_cross_entropy_with_logits(v[0], v[0].tape().constant(targets.clone())),
            std::slice::from_ref(&logits),
            &strict("binary_cross_entropy_with_logits"),
        )
        .map_err(fail)?;
    }

    #[test]
    fn penalties_pass_gradcheck(
        (sizes, lambda, seed) in (proptest::collection::vec(1..=4usize, 2..=4), 0.01..2.0f64, any::<u64>())
    ) {
        let mut store = ParamStore::new();
        let mut rng = StdRng::seed_from_u64(seed);
        for (i, pair) in sizes.windows(2).enumerate() {
            Dense::new(&mut store, &format!("d{i}"), pair[0], pair[1], Init::Uniform { limit: 1.5 }, &mut rng).unwrap();
        }
        BatchNorm1d::new(&mut store, "bn", sizes[0]).unwrap();
        let params: Vec<Tensor<f64>> = store.trainable().map(|id| store.value(id).clone()).collect();
        // Keep |w| away from the kink of L1 at 0.
        let params: Vec<Tensor<f64>> = params.into_iter().map(|p| p.map(|w| if w.abs() < 0.1 { w + 0.2 } else { w })).collect();
        for l1 in [false, true] {
            let name = if l1 { "l1_penalty" } else { "l2_penalty" };
            gradcheck(
                |v: &[Var<'_, f64>]| {
                    let mut store = store.clone();
                    let context = Context::with_vars(v[0].tape(), &mut store, v, Mode::Train).unwrap();
                    if l1 { nn::l1_penalty(&context, lambda) } else { nn::l2_penalty(&context, lambda) }
                },
                &params,
                &GradcheckOptions::strict(name),
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}
