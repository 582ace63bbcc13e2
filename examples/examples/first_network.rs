//! A first network, read top to bottom: handwritten digits in, a two-layer network trained with
//! SGD, L2 and dropout, its loss curve out. Run it with `cargo run --release -p examples
//! --example first_network`; `-- --seed 7` (or `EXAMPLES_SEED=7`) redraws every random choice.
use autograd::Tape;
use nn::optim::{Optimizer, Sgd};
use nn::rand::{SeedableRng, rngs::StdRng};
use nn::{Activation, Context, CsvOptions, Dense, Dropout, Init, Layer, Mode, ParamStore};
use nn::{Sequential, Standardizer};

/// What one epoch printed. The losses are mean cross-entropies, without the L2 penalty.
pub(crate) struct EpochLine {
    pub(crate) epoch: usize,
    pub(crate) train_loss: f64,
    pub(crate) test_loss: f64,
    pub(crate) test_accuracy: f64,
}

pub(crate) fn run(seed: u64, epochs: usize) -> nn::Result<Vec<EpochLine>> {
    // One generator draws the split, the weights, the dropout masks' seed and the batch order.
    let mut rng = StdRng::seed_from_u64(seed);
    // 1797 digits of 8x8 pixels (0..16), the label in the last column; a quarter held out.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let (train, test) = nn::load_csv::<f32>(path, CsvOptions::default())?.split(0.25, &mut rng)?;
    // Standardize each pixel to mean 0, std 1, so one learning rate suits every weight. The
    // mean and std are the training set's, applied unchanged to the test set, which stays unseen.
    let scaler = Standardizer::fit(train.features())?;
    let train = train.with_features(scaler.transform(train.features())?)?;
    let test = test.with_features(scaler.transform(test.features())?)?;

    // 64 pixels -> 64 ReLU units -> 10 logits, one per digit. He initialization (variance
    // 2 / inputs) keeps the signal's size steady through a ReLU, which zeroes about half of it.
    let mut store = ParamStore::new(); // the weights live here, outside any tape
    let hidden = Dense::new(&mut store, "hidden", 64, 64, Init::HeNormal, &mut rng)?;
    let output = Dense::new(&mut store, "output", 64, 10, Init::XavierNormal, &mut rng)?;
    let network = Sequential::new()
        .with(hidden)
        .with(Activation::Relu)
        .with(Dropout::with_keep_probability(0.8, &mut rng)?) // keeps each unit with p = 0.8
        .with(output);
    let mut optimizer = Sgd::new(0.1);

    let mut lines = Vec::new();
    for epoch in 1..=epochs {
        for batch in train.shuffled_batches(32, &mut rng) {
            let gradients = {
                let tape = Tape::new(); // a fresh tape records this step, and only this step
                let mut context = Context::new(&tape, &mut store, Mode::Train);
                let pixels = tape.constant(batch.features().clone()); // data: no gradient
                let logits = network.forward(&mut context, pixels);
                let data_loss = nn::cross_entropy(logits, batch.labels());
                let loss = data_loss + nn::l2_penalty(&context, 1e-4); // weights only, not biases
                context.gradients(&loss.backward())
            }; // the tape is dropped here, so the update may write the weights in place
            optimizer.step(&mut store, &gradients)?;
        }
        // `predict` runs in `Mode::Eval`, where dropout is the identity: we measure the whole
        // network, as it will be used, and the same input always gives the same answer.
        let train_logits = network.predict(&store, train.features())?;
        let test_logits = network.predict(&store, test.features())?;
        lines.push(EpochLine {
            epoch,
            train_loss: nn::cross_entropy_value(&train_logits, train.labels())?,
            test_loss: nn::cross_entropy_value(&test_logits, test.labels())?,
            test_accuracy: nn::accuracy(&test_logits, test.labels())?,
        });
    }
    Ok(lines)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed of every random draw: `--seed N`, else the variable EXAMPLES_SEED, else 1.
    let flag = std::env::args().skip_while(|a| a != "--seed").nth(1);
    let seed: u64 = match flag.or(std::env::var("EXAMPLES_SEED").ok()) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("the seed '{text}' is not a whole number"))?,
        None => 1,
    };
    println!("epoch  train loss  test loss  test accuracy  (seed {seed}; # = 0.02 of test loss)");
    for line in run(seed, 20)? {
        let (epoch, train, test) = (line.epoch, line.train_loss, line.test_loss);
        let accuracy = 100.0 * line.test_accuracy;
        let bar = "#".repeat((test / 0.02).round() as usize);
        println!("{epoch:>5}  {train:>10.3}  {test:>9.3}  {accuracy:>12.1}%  {bar}");
    }
    Ok(())
}
