//! Layers and losses beyond rank 2 (Dense and cross-entropy on the last axis of any rank,
//! LayerNorm, Embedding), cross-entropy's PyTorch options, and the file layout of parameters:
//! each against an independent computation, and gradchecked.

use autograd::Tape;
use autograd::gradcheck::{GradcheckOptions, assert_gradcheck_strict, gradcheck};
use autograd::testing::{Domain, tensor_strategy};
use nn::testing::{CheckLayerOptions, LayerUnderTest, check_layer};
use nn::{
    Context, CrossEntropy, Dense, Embedding, FileLayout, Init, Layer, LayerNorm, Mode,
    ParamOptions, ParamStore, Reduction, Role,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Float, Shape, Tensor};

fn sample(dims: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(
        Shape::from(dims),
        -1.5,
        1.5,
        &mut StdRng::seed_from_u64(seed),
    )
    .unwrap()
}

#[test]
fn dense_on_rank_three_is_dense_on_each_slice() {
    let mut store = ParamStore::<f64>::new();
    let mut rng = StdRng::seed_from_u64(4);
    let layer = Dense::new(&mut store, "d", 3, 2, Init::XavierNormal, &mut rng).unwrap();
    store.set_value(layer.bias(), sample(&[2], 9));
    let x = sample(&[2, 4, 3], 1);
    let (w, b) = (
        store.value(layer.weight()).to_vec(),
        store.value(layer.bias()).to_vec(),
    );
    let tape = Tape::new();
    let mut context = Context::eval(&tape, &store);
    let y = layer.forward(&mut context, tape.constant(x.clone()));
    assert_eq!(y.shape().dims(), &[2, 4, 2]);
    // y[i, j, o] = sum_k x[i, j, k] w[k, o] + b[o], in explicit loops.
    let (xv, yv) = (x.to_vec(), y.value().to_vec());
    for row in 0..8 {
        for o in 0..2 {
            let expected: f64 = (0..3).map(|k| xv[row * 3 + k] * w[k * 2 + o]).sum::<f64>() + b[o];
            assert!(
                (yv[row * 2 + o] - expected).abs() < 1e-15,
                "row {row}, unit {o}"
            );
        }
    }
    // A vector [inputs] gives [outputs].
    let v = layer.forward(&mut context, tape.constant(sample(&[3], 2)));
    assert_eq!(v.shape().dims(), &[2]);
    // The wrong feature count on the last axis is named.
    let error = layer
        .try_forward(&mut context, tape.constant(Tensor::zeros([2, 4, 5])))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Dense 'd': expected input [..., 3] (features on the last axis), got [2, 4, 5]"
    );
    nn::gradcheck_layer(
        &layer,
        &store,
        x,
        Mode::Train,
        &GradcheckOptions::strict("dense rank 3"),
    )
    .unwrap();
}

/// log_softmax of one row, in f64 loops.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = row.iter().map(|z| (z - max).exp()).sum();
    row.iter().map(|z| z - max - total.ln()).collect()
}

/// PyTorch's formula for F.cross_entropy(weight, ignore_index, label_smoothing, reduction),
/// written from its definition (not from the library's code).
fn reference_cross_entropy(
    logits: &[f64],
    classes: usize,
    labels: &[usize],
    weights: &[f64],
    ignore: Option<usize>,
    smoothing: f64,
) -> (Vec<f64>, f64, f64) {
    let mut per_row = Vec::new();
    let mut divisor = 0.0;
    for (i, &label) in labels.iter().enumerate() {
        if Some(label) == ignore {
            per_row.push(0.0);
            continue;
        }
        let l = log_softmax(&logits[i * classes..(i + 1) * classes]);
        // The smoothed target: (1 - e) onehot + e / C, each class weighted.
        let mut loss = 0.0;
        for c in 0..classes {
            let target =
                (1.0 - smoothing) * f64::from(u8::from(c == label)) + smoothing / classes as f64;
            // The nll part carries w[y], the smoothing part w[c]: both are w[c] at c = y.
            loss -= target * weights[c] * l[c];
        }
        divisor += weights[label];
        per_row.push(loss);
    }
    let sum: f64 = per_row.iter().sum();
    (per_row, sum, sum / divisor)
}

#[test]
fn cross_entropy_options_follow_pytorch_s_definition() {
    let (rows, classes) = (6, 4);
    let logits = sample(&[2, 3, classes], 5);
    let labels = [0, 3, 9, 1, 1, 2]; // 9 is the ignored label (padding)
    let weights = vec![0.5, 2.0, 1.0, 3.0];
    let loss = CrossEntropy::new()
        .label_smoothing(0.2)
        .unwrap()
        .class_weights(weights.clone())
        .unwrap()
        .ignore_index(9);
    let (per_row, sum, mean) =
        reference_cross_entropy(&logits.to_vec(), classes, &labels, &weights, Some(9), 0.2);
    let tape = Tape::<f64>::new();
    let z = tape.leaf(logits.clone());
    let got_mean = loss.loss(z, &labels).value().item();
    assert!((got_mean - mean).abs() < 1e-14, "{got_mean} vs {mean}");
    // The weighted mean divides by the weights of the labels present (0.5 + 3 + 2 + 2 + 1),
    // not by the 5 rows present: a check that would fail for a plain mean.
    assert!((mean - sum / 8.5).abs() < 1e-15 && (sum / 5.0 - mean).abs() > 1e-3);
    let got_sum = loss
        .clone()
        .reduction(Reduction::Sum)
        .loss(z, &labels)
        .value()
        .item();
    assert!((got_sum - sum).abs() < 1e-14);
    let got_rows = loss.clone().reduction(Reduction::None).loss(z, &labels);
    assert_eq!(got_rows.shape().dims(), &[2, 3]);
    for (got, want) in got_rows.value().to_vec().iter().zip(&per_row) {
        assert!((got - want).abs() < 1e-14);
    }
    assert_eq!(got_rows.value().to_vec()[2], 0.0);
    assert_eq!(rows, labels.len());

    // Gradients of every reduction, through the tape.
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = loss.clone().reduction(reduction);
        assert_gradcheck_strict(|v| loss.loss(v[0], &labels), std::slice::from_ref(&logits));
    }
    // The gradient of the plain mean is (softmax - onehot) / rows; with smoothing 1 and
    // uniform weights the target is uniform: gradient (softmax - 1/C) / rows.
    let uniform = CrossEntropy::new().label_smoothing(1.0).unwrap();
    let flat = logits.reshape([rows, classes]);
    let tape = Tape::<f64>::new();
    let z = tape.leaf(flat.clone());
    let gradient = uniform
        .loss(z, &labels.map(|l| l % classes))
        .backward()
        .wrt(z)
        .to_vec();
    for i in 0..rows {
        let l = log_softmax(&flat.to_vec()[i * classes..(i + 1) * classes]);
        for c in 0..classes {
            let expected = (l[c].exp() - 0.25) / rows as f64;
            assert!((gradient[i * classes + c] - expected).abs() < 1e-16);
        }
    }
}

#[test]
fn cross_entropy_without_options_is_the_plain_loss_bit_for_bit() {
    let logits = sample(&[5, 3], 8);
    let labels = [0, 2, 1, 1, 0];
    let tape = Tape::<f64>::new();
    let z = tape.leaf(logits.clone());
    let plain = nn::cross_entropy(z, &labels).value().item();
    assert_eq!(CrossEntropy::new().loss(z, &labels).value().item(), plain);
    // An ignore index no label uses changes nothing either.
    assert_eq!(
        CrossEntropy::new()
            .ignore_index(7)
            .loss(z, &labels)
            .value()
            .item(),
        plain
    );
    // Rank 3 is rank 2 on the rows.
    let cube = tape.leaf(Tensor::from_vec(logits.to_vec()[..12].to_vec(), [2, 2, 3]).unwrap());
    let square = tape.leaf(Tensor::from_vec(logits.to_vec()[..12].to_vec(), [4, 3]).unwrap());
    assert_eq!(
        nn::cross_entropy(cube, &labels[..4]).value().item(),
        nn::cross_entropy(square, &labels[..4]).value().item()
    );
    assert_eq!(
        nn::cross_entropy_per_example(cube, &labels[..4])
            .shape()
            .dims(),
        &[2, 2]
    );
}

#[test]
fn cross_entropy_errors_are_named_and_record_nothing() {
    let tape = Tape::<f64>::new();
    let z = tape.leaf(Tensor::zeros([2, 3]));
    let before = tape.len();
    let error =
        |ce: CrossEntropy, labels: &[usize]| ce.try_loss(z, labels).unwrap_err().to_string();
    assert_eq!(
        error(CrossEntropy::new().ignore_index(5), &[5, 5]),
        "cross_entropy: the weighted mean divides by the sum of the weights of the labels present, which is 0 (every row ignored, or of weight 0)"
    );
    assert_eq!(
        error(
            CrossEntropy::new().class_weights(vec![1.0, 2.0]).unwrap(),
            &[0, 1]
        ),
        "cross_entropy: 2 class weights for logits [2, 3] (3 classes)"
    );
    assert_eq!(
        error(CrossEntropy::new().ignore_index(5), &[0, 4]),
        "cross_entropy: label 4 at position 1 is out of range for 3 classes (0..3)"
    );
    assert_eq!(tape.len(), before);
    // The sum of nothing is 0, not an error.
    let sum = CrossEntropy::new()
        .ignore_index(5)
        .reduction(Reduction::Sum);
    assert_eq!(sum.loss(z, &[5, 5]).value().item(), 0.0);
    assert!(CrossEntropy::new().label_smoothing(1.5).is_err());
    assert!(
        CrossEntropy::new()
            .class_weights(vec![1.0, f64::NAN])
            .is_err()
    );
    assert!(CrossEntropy::new().class_weights(vec![-1.0]).is_err());
    let vector = tape.leaf(Tensor::zeros([3]));
    assert_eq!(
        nn::try_cross_entropy(vector, &[0]).unwrap_err().to_string(),
        "cross_entropy: expected logits [..., classes] of rank 2 or more, got [3]"
    );
}

#[test]
fn layer_norm_normalizes_each_row_as_pytorch() {
    let mut store = ParamStore::<f64>::new();
    let norm = LayerNorm::new(&mut store, "ln", 4).unwrap();
    store.set_value(
        norm.gamma(),
        Tensor::from_vec(vec![1.0, 2.0, -0.5, 0.3], [4]).unwrap(),
    );
    store.set_value(
        norm.beta(),
        Tensor::from_vec(vec![0.0, 0.1, 0.2, -0.3], [4]).unwrap(),
    );
    let x = sample(&[2, 3, 4], 3);
    let tape = Tape::new();
    let mut context = Context::eval(&tape, &store);
    let y = norm
        .forward(&mut context, tape.constant(x.clone()))
        .value()
        .to_vec();
    let (gamma, beta) = ([1.0, 2.0, -0.5, 0.3], [0.0, 0.1, 0.2, -0.3]);
    for (row, values) in x.to_vec().chunks(4).enumerate() {
        let mean = values.iter().sum::<f64>() / 4.0;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        for f in 0..4 {
            let expected = (values[f] - mean) / (var + 1e-5).sqrt() * gamma[f] + beta[f];
            assert!((y[row * 4 + f] - expected).abs() < 1e-14, "row {row}");
        }
    }
    // Training and evaluation agree (no batch statistics), and a batch of one works.
    let mut train = Context::new(&tape, &mut store, Mode::Train);
    let one = tape.constant(x.narrow(0, 0, 1));
    let trained = norm.forward(&mut train, one).value().to_vec();
    assert_eq!(&trained[..], &y[..12]);
    let names: Vec<_> = store.iter().map(|(_, name, ..)| name.to_string()).collect();
    assert_eq!(names, ["ln.weight", "ln.bias"]);
    assert_eq!(Layer::<f64>::name(&norm), "ln");
    assert!(LayerNorm::new(&mut store, "ln", 4).is_err());
    assert!(LayerNorm::with_eps(&mut store, "other", 4, 0.0).is_err());
}

#[test]
fn embedding_rows_and_their_gradients() {
    let mut store = ParamStore::<f64>::new();
    let mut rng = StdRng::seed_from_u64(2);
    let embedding = Embedding::new(&mut store, "words", 5, 3, &mut rng).unwrap();
    let table = store.value(embedding.weight()).to_vec();
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let rows = embedding.lookup(&mut context, &[3, 0, 3], [3]).unwrap();
    assert_eq!(
        rows.value().to_vec(),
        [&table[9..12], &table[0..3], &table[9..12]].concat()
    );
    // As a layer, from whole numbers; anything else is refused by name.
    let as_layer = embedding.forward(
        &mut context,
        tape.constant(Tensor::from_vec(vec![3.0, 0.0], [1, 2]).unwrap()),
    );
    assert_eq!(as_layer.shape().dims(), &[1, 2, 3]);
    let error = embedding
        .try_forward(
            &mut context,
            tape.constant(Tensor::from_vec(vec![1.5], [1]).unwrap()),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Embedding 'words': the input holds indices, whole numbers in 0..5; position 0 has 1.5"
    );
    // The vocabulary's size itself is out of range, through the layer too.
    let error = embedding
        .try_forward(
            &mut context,
            tape.constant(Tensor::from_vec(vec![5.0], [1]).unwrap()),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Embedding 'words': the input holds indices, whole numbers in 0..5; position 0 has 5"
    );
    let error = embedding.lookup(&mut context, &[5], [1]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Embedding 'words': index 5 at position 0 is outside the vocabulary 0..5"
    );
    drop(context);
    // Gradcheck with respect to the table.
    let result = gradcheck(
        |v| {
            let tape = v[0].tape();
            let mut store = store.clone();
            let mut context = Context::with_vars(tape, &mut store, &v[..1], Mode::Eval).unwrap();
            embedding
                .lookup(&mut context, &[1, 4, 1, 2], [2, 2])
                .unwrap()
                .square()
                .sum_all()
        },
        &[Tensor::from_vec(table.clone(), [5, 3]).unwrap()],
        &GradcheckOptions::strict("embedding"),
    );
    result.unwrap();
    assert_eq!((embedding.vocabulary(), embedding.dim()), (5, 3));
    assert_eq!(Layer::<f64>::name(&embedding), "words");
    assert_eq!(
        Layer::<f64>::output_shape(&embedding, &Shape::from([2, 7])).unwrap(),
        Shape::from([2, 7, 3])
    );
    // Either size 0 is refused, adding nothing.
    for (vocabulary, dim) in [(0, 3), (5, 0)] {
        let error = Embedding::new(&mut store, "empty", vocabulary, dim, &mut rng).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("needs a vocabulary and a dimension of at least 1")
        );
    }
    assert!(store.find("empty.weight").is_none());
    // Saved as [vocabulary, dim], not transposed like a dense weight; not penalized.
    let options = store.options(embedding.weight());
    assert_eq!(
        (options.layout, options.penalized),
        (FileLayout::AsIs, false)
    );
}

/// The shape each tensor has in a safetensors file, from its header.
fn file_shapes(store: &ParamStore<f32>) -> serde_json::Value {
    let bytes = nn::safetensors_bytes(store).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + length]).unwrap()
}

#[test]
fn penalized_trainable_and_file_layout_are_independent() {
    let mut store = ParamStore::<f32>::new();
    let mut rng = StdRng::seed_from_u64(0);
    let dense = Dense::new(&mut store, "dense", 3, 2, Init::HeNormal, &mut rng).unwrap();
    // A custom [vocabulary, dim] weight under the L2 penalty, saved as it is.
    let options = ParamOptions {
        penalized: true,
        ..Role::Parameter.default_options()
    };
    let table = store
        .add_with("table", Role::Parameter, options, Tensor::ones([4, 2]))
        .unwrap();
    let header = file_shapes(&store);
    assert_eq!(header["dense.weight"]["shape"], serde_json::json!([2, 3]));
    assert_eq!(header["table"]["shape"], serde_json::json!([4, 2]));
    // The penalty sees both, 0.5 * (||W||^2 + 8).
    let weight_norm: f32 = store
        .value(dense.weight())
        .to_vec()
        .iter()
        .map(|w| w * w)
        .sum();
    let tape = Tape::new();
    let context = Context::new(&tape, &mut store, Mode::Train);
    let penalty = nn::l2_penalty(&context, 0.5).value().item();
    assert!((penalty - 0.5 * (weight_norm + 8.0)).abs() < 1e-5);
    drop(context);
    // Not penalized any more: only the dense weight remains.
    store.set_penalized(table, false).unwrap();
    let context = Context::new(&tape, &mut store, Mode::Train);
    assert!((nn::l2_penalty(&context, 0.5).value().item() - 0.5 * weight_norm).abs() < 1e-5);
    drop(context);
    // And penalized again, a bias too: both terms come back.
    store.set_penalized(table, true).unwrap();
    store.set_penalized(dense.bias(), true).unwrap();
    let bias_norm: f32 = store
        .value(dense.bias())
        .to_vec()
        .iter()
        .map(|b| b * b)
        .sum();
    let context = Context::new(&tape, &mut store, Mode::Train);
    let penalty = nn::l2_penalty(&context, 0.5).value().item();
    assert!((penalty - 0.5 * (weight_norm + 8.0 + bias_norm)).abs() < 1e-5);
    drop(context);
    // The no-decay group: the parameters left out of the penalties, never buffers.
    store.set_penalized(dense.bias(), false).unwrap();
    let running_mean = store
        .add(
            "bn.running_mean",
            Role::RunningStatistic,
            Tensor::zeros([2]),
        )
        .unwrap();
    assert_eq!(store.unpenalized(), vec![dense.bias()]);
    store.set_penalized(table, false).unwrap();
    assert_eq!(store.unpenalized(), vec![dense.bias(), table]);
    assert!(!store.unpenalized().contains(&running_mean));
    // Buffers cannot be made trainable or penalized; transposing needs a matrix.
    let running = store
        .add("running", Role::RunningStatistic, Tensor::zeros([2]))
        .unwrap();
    assert!(store.set_trainable(running, true).is_err());
    assert!(store.set_penalized(running, true).is_err());
    let transposed = ParamOptions {
        layout: FileLayout::Transposed,
        ..Role::Parameter.default_options()
    };
    let error = store
        .add_with("vector", Role::Parameter, transposed, Tensor::zeros([3]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "ParamStore::add_with: 'vector' has shape [3]: only a matrix can be saved transposed"
    );
    let trainable_buffer = ParamOptions {
        trainable: true,
        ..Role::Counter.default_options()
    };
    assert!(
        store
            .add_with("count", Role::Counter, trainable_buffer, Tensor::zeros([]))
            .is_err()
    );
    assert!(store.find("vector").is_none() && store.find("count").is_none());
}

/// The new layers through `check_layer`'s conformance stages.
#[derive(Clone, Copy, Debug)]
enum NewLayer {
    DenseRank3,
    LayerNorm,
}

impl LayerUnderTest for NewLayer {
    fn name(&self) -> String {
        format!("{self:?}")
    }
    fn build<T: Float>(&self, store: &mut ParamStore<T>) -> nn::Result<Box<dyn Layer<T>>> {
        let mut rng = StdRng::seed_from_u64(1);
        Ok(match self {
            NewLayer::DenseRank3 => {
                Box::new(Dense::new(store, "d", 3, 2, Init::XavierNormal, &mut rng)?)
            }
            NewLayer::LayerNorm => {
                let norm = LayerNorm::new(store, "ln", 3)?;
                store.set_value(
                    norm.gamma(),
                    Tensor::from_vec(
                        vec![T::from_f64(0.7), T::from_f64(-1.1), T::from_f64(1.6)],
                        [3],
                    )
                    .unwrap(),
                );
                Box::new(norm)
            }
        })
    }
    fn inputs(&self) -> BoxedStrategy<Tensor<f64>> {
        // Distinct values: on a constant row layer norm divides f32's rounding of the mean
        // (~1e-8) by sqrt(eps), so f32 and f64 differ by ~1e-5 at an output of 0 (as PyTorch's).
        (1..=3usize, 1..=3usize)
            .prop_flat_map(|(a, b)| tensor_strategy(Shape::from([a, b, 3]), Domain::Distinct))
            .boxed()
    }
}

#[test]
fn new_layers_pass_check_layer() {
    for layer in [NewLayer::DenseRank3, NewLayer::LayerNorm] {
        let options = CheckLayerOptions {
            cases: 10,
            ..CheckLayerOptions::default()
        };
        if let Err(failure) = check_layer(&layer, &options) {
            panic!("{failure}");
        }
    }
}

#[test]
fn accuracy_and_the_loss_value_of_predictions() {
    // Rows 0 and 2 right, row 1 wrong (a tie takes the first class, as argmax).
    let logits = Tensor::<f64>::from_vec(vec![0.9, 0.1, 0.5, 0.5, 0.2, 0.8], [3, 2]).unwrap();
    assert_eq!(nn::accuracy(&logits, &[0, 1, 1]).unwrap(), 2.0 / 3.0);
    assert_eq!(nn::accuracy(&logits, &[0, 0, 1]).unwrap(), 1.0);
    let cube = logits.reshape([1, 3, 2]);
    assert_eq!(nn::accuracy(&cube, &[1, 1, 0]).unwrap(), 0.0);
    for (bad, labels) in [
        (Tensor::<f64>::zeros([3]), vec![0, 0, 0]),
        (Tensor::zeros([3]), vec![0]), // a vector is not one row of logits
        (Tensor::zeros([0, 2]), vec![]),
        (Tensor::zeros([2, 0]), vec![0, 0]),
        (logits.clone(), vec![0, 1]),
    ] {
        let error = nn::accuracy(&bad, &labels).unwrap_err().to_string();
        assert!(
            error.starts_with("accuracy: expected logits [..., classes]"),
            "{error}"
        );
    }
    // The value is the tape's loss, exactly.
    let tape = Tape::<f64>::new();
    let on_tape = nn::cross_entropy(tape.constant(logits.clone()), &[0, 1, 1])
        .value()
        .item();
    assert_eq!(
        nn::cross_entropy_value(&logits, &[0, 1, 1]).unwrap(),
        on_tape
    );
    let expected: f64 = [(0, 0.9, 0.1), (1, 0.5, 0.5), (1, 0.2, 0.8)]
        .iter()
        .map(|&(label, a, b): &(usize, f64, f64)| {
            let l = log_softmax(&[a, b]);
            -l[label]
        })
        .sum::<f64>()
        / 3.0;
    assert!((on_tape - expected).abs() < 1e-15);
    assert!(nn::cross_entropy_value(&logits, &[0, 5, 1]).is_err());
}

#[test]
fn class_weights_without_smoothing_ignore_an_impossible_class() {
    // A class with logit -inf has log-probability -inf; without smoothing it takes no part,
    // so the loss stays finite (a smoothing term multiplied by 0 would make it NaN).
    let tape = Tape::<f64>::new();
    let z = tape.leaf(Tensor::from_vec(vec![0.0, f64::NEG_INFINITY], [1, 2]).unwrap());
    let loss = CrossEntropy::new()
        .class_weights(vec![2.0, 1.0])
        .unwrap()
        .loss(z, &[0]);
    assert_eq!(loss.value().item(), 0.0);
}

#[test]
fn cross_entropy_options_match_numbers_computed_by_pytorch() {
    // torch.nn.functional.cross_entropy in float64 (torch 2.15) on these logits, with
    // weight [0.5, 2, 1, 3], ignore_index -100 (9 here), label_smoothing 0.2, each reduction;
    // then smoothing 0.3 alone, weights alone, and the gradient of the first loss (rows 0 and
    // the ignored row 2). PyTorch's numbers, not this library's:
    //   logits = torch.tensor([[(i * 7 % 11) * 0.3 - 1.4 for i in range(4 * r, 4 * r + 4)]
    //                          for r in range(6)], dtype=torch.float64)
    let values: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64 * 0.3 - 1.4).collect();
    let logits = Tensor::from_vec(values, [6, 4]).unwrap();
    let labels = [0, 3, 9, 1, 1, 2];
    let full = CrossEntropy::new()
        .class_weights(vec![0.5, 2.0, 1.0, 3.0])
        .unwrap()
        .ignore_index(9)
        .label_smoothing(0.2)
        .unwrap();
    let tape = Tape::<f64>::new();
    let z = tape.leaf(logits.clone());
    let close = |got: f64, pytorch: f64| {
        assert!(
            (got - pytorch).abs() <= 1e-14 * pytorch.abs().max(1.0),
            "{got} vs PyTorch {pytorch}"
        );
    };
    let mean = full.loss(z, &labels);
    close(mean.value().item(), 1.8829609274750048);
    close(
        full.clone()
            .reduction(Reduction::Sum)
            .loss(z, &labels)
            .value()
            .item(),
        16.005167883537542,
    );
    let rows = full
        .clone()
        .reduction(Reduction::None)
        .loss(z, &labels)
        .value()
        .to_vec();
    let pytorch_rows = [
        1.8010882134860862,
        4.939589032141074,
        0.0,
        4.93603995848498,
        1.2713722705263555,
        3.057078408899047,
    ];
    for (got, want) in rows.iter().zip(pytorch_rows) {
        close(*got, want);
    }
    let smooth = CrossEntropy::new()
        .ignore_index(9)
        .label_smoothing(0.3)
        .unwrap();
    close(smooth.loss(z, &labels).value().item(), 2.1455895388552353);
    let weighted = CrossEntropy::new()
        .class_weights(vec![0.5, 2.0, 1.0, 3.0])
        .unwrap()
        .ignore_index(9);
    close(weighted.loss(z, &labels).value().item(), 1.9456374827790857);
    let gradient = mean.backward().wrt(z).to_vec();
    let pytorch_row0 = [
        -0.04731029346344099,
        0.01019989471013183,
        0.0007332576242432648,
        0.0363771411290659,
    ];
    for (got, want) in gradient[..4].iter().zip(pytorch_row0) {
        assert!((got - want).abs() < 1e-16, "{got} vs PyTorch {want}");
    }
    assert_eq!(&gradient[8..12], &[0.0; 4]);
}
