//! Whole-model behaviour: shape checks before any state changes, reproducibility from one
//! seed, and training that actually learns.

use autograd::Tape;
use nn::optim::{Adam, Optimizer, Sgd};
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, Mode, ParamStore, Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

fn build(seed: u64, store: &mut ParamStore<f32>, hidden_in: usize) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .with(Dense::new(store, "hidden1", 4, 8, Init::HeNormal, &mut rng).unwrap())
        .with(BatchNorm1d::new(store, "bn1", 8).unwrap())
        .with(Activation::Relu)
        .with(Dropout::with_keep_probability(0.7, &mut rng).unwrap())
        .with(Dense::new(store, "output", hidden_in, 3, Init::XavierNormal, &mut rng).unwrap())
}

/// Three classes, separable by the sign pattern of the first two features.
fn data(rng: &mut StdRng) -> (Tensor<f32>, Vec<usize>) {
    let x = Tensor::<f32>::random_normal([64, 4], 0.0, 1.0, rng).unwrap();
    let labels = (0..64)
        .map(|i| usize::from(x.get(&[i, 0]) > 0.0) + usize::from(x.get(&[i, 1]) > 0.0))
        .collect();
    (x, labels)
}

/// A trained model: its store, its layers (whose handles belong to that store) and the losses.
type Trained = (ParamStore<f32>, Sequential<f32>, Vec<f32>);

fn train(seed: u64, steps: u64, optimizer: &mut dyn Optimizer<f32>) -> Trained {
    let mut store = ParamStore::new();
    let model = build(seed, &mut store, 8);
    let (x, labels) = data(&mut StdRng::seed_from_u64(seed + 100));
    let mut losses = Vec::new();
    for _ in 0..steps {
        let gradients = {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Train);
            let logits = model.forward(&mut context, tape.constant(x.clone()));
            let loss = nn::cross_entropy(logits, &labels) + nn::l2_penalty(&context, 1e-4);
            losses.push(loss.value().item());
            context.gradients(&loss.backward())
        };
        optimizer.step(&mut store, &gradients).unwrap();
    }
    (store, model, losses)
}

#[test]
fn one_seed_reproduces_a_run_bit_for_bit() {
    let (first, _, first_losses) = train(7, 5, &mut Adam::new(0.01));
    let (second, _, second_losses) = train(7, 5, &mut Adam::new(0.01));
    assert_eq!(first_losses, second_losses);
    for ((_, name, _, a), (_, _, _, b)) in first.iter().zip(second.iter()) {
        let same = a
            .to_vec()
            .iter()
            .zip(b.to_vec())
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs");
    }
    let (other, _, _) = train(8, 5, &mut Adam::new(0.01));
    assert_ne!(
        first.value(first.find("hidden1.weight").unwrap()),
        other.value(other.find("hidden1.weight").unwrap())
    );
}

#[test]
fn training_lowers_the_loss() {
    let (store, _, losses) = train(1, 60, &mut Sgd::new(0.2));
    let (start, end) = (losses[0], *losses.last().unwrap());
    assert!(end < 0.5 * start, "loss went from {start} to {end}");
    // Running statistics moved away from their initial 0 and 1.
    let running_mean = store.value(store.find("bn1.running_mean").unwrap());
    assert!(running_mean.to_vec().iter().any(|&m| m.abs() > 1e-3));
    assert_eq!(
        store
            .value(store.find("bn1.num_batches_tracked").unwrap())
            .item(),
        60.0
    );
}

#[test]
fn a_shape_error_deep_in_the_stack_changes_nothing() {
    let mut store = ParamStore::<f32>::new();
    let model = build(3, &mut store, 5); // the output layer expects 5 features, bn1 gives 8
    let before = store.clone();
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let x = tape.constant(Tensor::ones([16, 4]));
    let nodes = tape.len();
    let error = model.try_forward(&mut context, x).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Dense 'output': expected input [..., 5] (features on the last axis), got [16, 8]"
    );
    assert_eq!(tape.len(), nodes, "nothing recorded");
    for ((_, name, _, a), (_, _, _, b)) in before.iter().zip(store.iter()) {
        assert_eq!(a, b, "{name} changed");
    }
}

#[test]
fn evaluation_is_deterministic_and_uses_running_statistics() {
    // (The model must be the one built on this store: a model built on another store with the
    // same shapes is refused by the handles' store identity.)
    let (mut store, model, _) = train(2, 10, &mut Sgd::new(0.1));
    let x = Tensor::<f32>::random_normal([5, 4], 0.0, 1.0, &mut StdRng::seed_from_u64(9)).unwrap();
    let evaluate = |store: &mut ParamStore<f32>| {
        let tape = Tape::new();
        let mut context = Context::new(&tape, store, Mode::Eval);
        model
            .forward(&mut context, tape.constant(x.clone()))
            .value()
    };
    let before = store.clone();
    let first = evaluate(&mut store);
    assert_eq!(first, evaluate(&mut store));
    // Evaluation does not touch the running statistics; a single sample works.
    for ((_, name, _, a), (_, _, _, b)) in before.iter().zip(store.iter()) {
        assert_eq!(a, b, "{name} changed in evaluation");
    }
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Eval);
    assert_eq!(
        model
            .forward(&mut context, tape.constant(x.narrow(0, 0, 1)))
            .value()
            .dims(),
        &[1, 3]
    );
}

#[test]
fn anomaly_reports_name_the_layer_of_the_offending_op() {
    use autograd::{AnomalyMode, AutogradError};
    let mut store = ParamStore::<f32>::new();
    let mut rng = StdRng::seed_from_u64(0);
    let model = Sequential::new()
        .with(Dense::new(&mut store, "hidden1", 2, 2, Init::Constant(1e30), &mut rng).unwrap())
        .with(Activation::Tanh);
    let tape = Tape::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let mut context = Context::new(&tape, &mut store, Mode::Eval);
    let x = tape.constant(Tensor::full([1, 2], 1e30));
    let error = model.try_forward(&mut context, x).unwrap_err();
    let nn::NnError::Autograd(AutogradError::Anomaly(report)) = error else {
        panic!("expected an anomaly, got {error}")
    };
    assert_eq!(report.op, "matmul");
    assert_eq!(report.layer.as_deref(), Some("hidden1"));
    assert!(
        report
            .location
            .as_deref()
            .unwrap()
            .contains("crates/nn/src/dense.rs"),
        "{report}"
    );
}

#[test]
fn a_forward_pass_that_fails_later_leaves_batch_norm_statistics_untouched() {
    // The reproduction: [BatchNorm1d, Dense] whose Dense holds an inf weight, in anomaly mode.
    // The forward pass returned the error but had already updated running_mean, running_var
    // and num_batches_tracked.
    use autograd::{AnomalyMode, AutogradError};
    let mut store = ParamStore::<f32>::new();
    let mut rng = StdRng::seed_from_u64(4);
    let dense = Dense::new(&mut store, "output", 3, 2, Init::HeNormal, &mut rng).unwrap();
    let model = Sequential::new()
        .with(BatchNorm1d::new(&mut store, "bn", 3).unwrap())
        .with(dense.clone());
    let mut weight = store.value(dense.weight()).to_vec();
    weight[0] = f32::INFINITY;
    store.set_value(dense.weight(), Tensor::from_vec(weight, [3, 2]).unwrap());
    let before = store.clone();
    let tape = Tape::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let x = tape.constant(Tensor::<f32>::random_normal([8, 3], 1.0, 2.0, &mut rng).unwrap());
    let error = model.try_forward(&mut context, x).unwrap_err();
    assert!(
        matches!(error, nn::NnError::Autograd(AutogradError::Anomaly(_))),
        "{error}"
    );
    drop(context);
    for name in [
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ] {
        let id = store.find(name).unwrap();
        assert_eq!(store.value(id), before.value(id), "{name} changed");
    }
    // The same pass with a finite weight updates them.
    let mut store = before.clone();
    let mut weight = store.value(dense.weight()).to_vec();
    weight[0] = 0.5;
    store.set_value(dense.weight(), Tensor::from_vec(weight, [3, 2]).unwrap());
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let x = tape.constant(Tensor::<f32>::random_normal([8, 3], 1.0, 2.0, &mut rng).unwrap());
    model.try_forward(&mut context, x).unwrap();
    drop(context);
    let counter = store.find("bn.num_batches_tracked").unwrap();
    assert_eq!(store.value(counter).item(), 1.0);
}
