//! Per-sample gradients against loops of single-example backward passes, in f64.

use autograd::Tape;
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, Mode, ParamId, ParamStore,
    Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

const BATCH: usize = 6;
const LABELS: [usize; BATCH] = [0, 2, 1, 1, 0, 2];

fn model(store: &mut ParamStore<f64>, dropout: bool, batch_norm: bool) -> Sequential<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = Sequential::new();
    model.push(Dense::new(store, "hidden1", 4, 5, Init::HeNormal, &mut rng).unwrap());
    if batch_norm {
        model.push(BatchNorm1d::new(store, "bn1", 5).unwrap());
    }
    model.push(Activation::Tanh);
    if dropout {
        model.push(Dropout::with_drop_probability(0.4, &mut rng).unwrap());
    }
    model.push(Dense::new(store, "hidden2", 5, 5, Init::HeNormal, &mut rng).unwrap());
    model.push(Activation::Relu);
    model.push(Dense::new(store, "output", 5, 3, Init::HeNormal, &mut rng).unwrap());
    model
}

fn inputs() -> Tensor<f64> {
    Tensor::random_normal([BATCH, 4], 0.0, 1.0, &mut StdRng::seed_from_u64(3)).unwrap()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "{what}, element {i}: {g} vs {w}"
        );
    }
}

fn trainable(store: &ParamStore<f64>) -> Vec<ParamId> {
    store.trainable().collect()
}

#[test]
fn per_sample_gradients_equal_one_backward_pass_per_example_on_its_own() {
    let mut store = ParamStore::new();
    let model = model(&mut store, false, false);
    let x = inputs();
    let per_sample = {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let logits = model.forward(&mut context, tape.constant(x.clone()));
        let losses = nn::cross_entropy_per_example(logits, &LABELS);
        context.try_per_sample_gradients(losses).unwrap()
    };
    assert_eq!(per_sample.batch(), BATCH);
    for b in 0..BATCH {
        // Example b alone, on a tape of its own: an independent reference.
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let row = tape.constant(x.narrow(0, b, 1).contiguous());
        let loss = nn::cross_entropy(model.forward(&mut context, row), &LABELS[b..=b]);
        let gradients = context.gradients(&loss.backward());
        for id in trainable(context.store()) {
            let stack = per_sample.get(id).unwrap();
            let mine = stack.narrow(0, b, 1).to_vec();
            let want = gradients.get(id).unwrap().to_vec();
            assert_close(
                &mine,
                &want,
                &format!("example {b}, parameter #{}", id.index()),
            );
        }
    }
}

#[test]
fn with_dropout_they_equal_a_backward_pass_per_example_through_the_same_masks() {
    let mut store = ParamStore::new();
    let model = model(&mut store, true, false);
    let x = inputs();
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let logits = model.forward(&mut context, tape.constant(x));
    let losses = nn::cross_entropy_per_example(logits, &LABELS);
    let per_sample = context.try_per_sample_gradients(losses).unwrap();
    let mut norms = [0.0; BATCH];
    for (b, norm) in norms.iter_mut().enumerate() {
        let seed = Tensor::from_fn([BATCH], |i| if i == b { 1.0 } else { 0.0 });
        let gradients = context.gradients(&losses.backward_with(seed));
        for id in trainable(context.store()) {
            let want = gradients.get(id).unwrap().to_vec();
            *norm += want.iter().map(|g| g * g).sum::<f64>();
            let mine = per_sample.get(id).unwrap().narrow(0, b, 1).to_vec();
            assert_close(
                &mine,
                &want,
                &format!("example {b}, parameter #{}", id.index()),
            );
        }
    }
    let norms: Vec<f64> = norms.iter().map(|n| n.sqrt()).collect();
    assert_close(&per_sample.norms().to_vec(), &norms, "norms");
    // The clipped sum of DP-SGD against clipping each example's materialised gradient.
    let max_norm = 0.5 * norms.iter().cloned().fold(0.0, f64::max);
    let clipped = per_sample.clipped_sum(max_norm);
    for id in trainable(context.store()) {
        let stack = per_sample.get(id).unwrap();
        let size = stack.numel() / BATCH;
        let rows = stack.to_vec();
        let mut want = vec![0.0; size];
        for b in 0..BATCH {
            let factor = (max_norm / (norms[b] + 1e-6)).min(1.0);
            for k in 0..size {
                want[k] += factor * rows[b * size + k];
            }
        }
        assert_close(&clipped.get(id).unwrap().to_vec(), &want, "clipped sum");
    }
    assert!(
        norms.iter().any(|&n| n > max_norm),
        "some example is clipped"
    );
}

#[test]
fn batch_norm_in_training_mode_is_refused_and_in_evaluation_mode_works() {
    let mut store = ParamStore::new();
    let model = model(&mut store, false, true);
    let x = inputs();
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let logits = model.forward(&mut context, tape.constant(x.clone()));
    let losses = nn::cross_entropy_per_example(logits, &LABELS);
    let error = context.try_per_sample_gradients(losses).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("per_sample_gradients: 'sum'"),
        "{message}"
    );
    assert!(message.contains("reduces over the batch axis"), "{message}");
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Eval);
    let logits = model.forward(&mut context, tape.constant(x));
    let losses = nn::cross_entropy_per_example(logits, &LABELS);
    let per_sample = context.try_per_sample_gradients(losses).unwrap();
    assert_eq!(per_sample.norms().dims(), &[BATCH]);
}

#[test]
fn losses_that_are_not_per_example_and_parameters_used_other_ways_are_named_errors() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(Tensor::ones([3, 2]));
    let w = tape.leaf(Tensor::ones([2, 2]));
    let mean = nn::cross_entropy(x.matmul(w), &[0, 1, 1]);
    let error = mean.try_per_sample_gradients(&[w]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "per_sample_gradients: the losses must have shape [batch], one per example, got []"
    );
    // Through a transpose: w^T is not one of the supported uses.
    let losses = x.matmul(w.t()).sum(&[1], false);
    let error = losses.try_per_sample_gradients(&[w]).unwrap_err();
    assert!(error.to_string().contains("through 'permute'"), "{error}");
    // Examples multiplied together: x x^T mixes rows.
    let h = x.matmul(w);
    let losses = h.matmul(h.t()).sum(&[1], false);
    let error = losses.try_per_sample_gradients(&[w]).unwrap_err();
    assert!(
        error.to_string().contains("'permute'") || error.to_string().contains("'matmul'"),
        "{error}"
    );
}
