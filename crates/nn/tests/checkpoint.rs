//! Gradient checkpointing: a checkpointed model's gradients equal the plain model's bit for bit
//! (dropout and batch norm included), batch norm's running statistics are updated once, and the
//! tape keeps only the blocks' inputs and outputs.

use autograd::Tape;
use nn::{
    Activation, BatchNorm1d, Checkpoint, Context, Dense, Dropout, Init, Layer, Mode, ParamStore,
    Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

const LABELS: [usize; 8] = [0, 1, 2, 1, 0, 2, 2, 1];

/// W2's shape at toy size: [Dense, BatchNorm1d, ReLU, Dropout] twice, then Dense; each hidden
/// block checkpointed or not.
fn model(store: &mut ParamStore<f64>, checkpointed: bool) -> Sequential<f64> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut model = Sequential::new();
    for (i, (from, to)) in [(4, 6), (6, 6)].into_iter().enumerate() {
        let block = Sequential::new()
            .with(
                Dense::new(
                    store,
                    &format!("hidden{i}"),
                    from,
                    to,
                    Init::HeNormal,
                    &mut rng,
                )
                .unwrap(),
            )
            .with(BatchNorm1d::new(store, &format!("bn{i}"), to).unwrap())
            .with(Activation::Relu)
            .with(Dropout::with_drop_probability(0.3, &mut rng).unwrap());
        if checkpointed {
            model.push(Checkpoint::new(block));
        } else {
            model.push(block);
        }
    }
    model.push(Dense::new(store, "output", 6, 3, Init::HeNormal, &mut rng).unwrap());
    model
}

fn bits(t: &Tensor<f64>) -> Vec<u64> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// What three training steps produced, as bits.
struct Run {
    /// Per step, the gradient of every trainable parameter (in the store's order).
    gradients: Vec<Vec<Vec<u64>>>,
    /// Per step, the nodes on the tape.
    nodes: Vec<usize>,
    /// At the end, every entry's value (parameters and buffers).
    values: Vec<Vec<u64>>,
}

fn train(checkpointed: bool, mode: Mode) -> Run {
    let mut store = ParamStore::new();
    let model = model(&mut store, checkpointed);
    let x = Tensor::random_normal([8, 4], 0.0, 1.0, &mut StdRng::seed_from_u64(5)).unwrap();
    let mut steps = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, mode);
        let logits = model.forward(&mut context, tape.constant(x.clone()));
        let loss = nn::cross_entropy(logits, &LABELS);
        nodes.push(tape.len());
        let gradients = context.gradients(&loss.backward());
        let ids: Vec<_> = context.store().trainable().collect();
        steps.push(
            ids.iter()
                .map(|&id| bits(gradients.get(id).unwrap()))
                .collect(),
        );
        // A plain SGD step, so that the next step starts from new parameters.
        for id in ids {
            let updated = store
                .value(id)
                .zip_map(gradients.get(id).unwrap(), "sgd", |p, g| p - 0.1 * g);
            store.set_value(id, updated);
        }
    }
    let values = store.iter().map(|(_, _, _, value)| bits(value)).collect();
    Run {
        gradients: steps,
        nodes,
        values,
    }
}

#[test]
fn checkpointed_gradients_and_running_statistics_equal_the_plain_models_bit_for_bit() {
    for mode in [Mode::Train, Mode::Eval] {
        let (plain, checkpointed) = (train(false, mode), train(true, mode));
        assert_eq!(
            plain.gradients, checkpointed.gradients,
            "{mode:?}: gradients differ"
        );
        // Parameters and buffers (running mean, variance, batches tracked) after three steps:
        // batch norm's statistics were updated once per step, not twice.
        assert_eq!(plain.values, checkpointed.values, "{mode:?}: store differs");
        for (p, c) in plain.nodes.iter().zip(&checkpointed.nodes) {
            assert!(
                c < p,
                "{mode:?}: the checkpointed tape holds {c} nodes, the plain one {p}"
            );
        }
    }
}

#[test]
fn batch_norm_counts_each_training_step_once() {
    let mut store = ParamStore::new();
    let model = model(&mut store, true);
    let x = Tensor::random_normal([8, 4], 0.0, 1.0, &mut StdRng::seed_from_u64(5)).unwrap();
    for _ in 0..2 {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let loss = nn::cross_entropy(
            model.forward(&mut context, tape.constant(x.clone())),
            &LABELS,
        );
        let _ = loss.backward();
    }
    let tracked = store.find("bn0.num_batches_tracked").unwrap();
    assert_eq!(store.value(tracked).to_vec(), vec![2.0]);
}

#[test]
fn a_layer_error_inside_a_checkpoint_is_the_layers_and_records_nothing() {
    let mut store = ParamStore::new();
    let model = model(&mut store, true);
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let wrong = tape.constant(Tensor::ones([8, 5]));
    let before = tape.len();
    let error = model.try_forward(&mut context, wrong).unwrap_err();
    assert!(error.to_string().contains("hidden0"), "{error}");
    assert_eq!(tape.len(), before);
}
