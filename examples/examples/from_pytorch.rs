//! The port of docs/from-pytorch/train.py, line for line (docs/from-pytorch.md): digits,
//! standardization, Dense + BatchNorm + ReLU + Dropout blocks, cross-entropy + L2, Adam with a
//! cosine schedule and gradient clipping, early stopping with the best weights restored, and a
//! safetensors round trip. Run with `cargo run --release -p examples --example from_pytorch`.
use nn::optim::{Adam, CosineAnnealing, LearningRateSchedule, Optimizer};
use nn::rand::{SeedableRng, rngs::StdRng};
use nn::{Activation, BatchNorm1d, CsvOptions, Dense, Dropout, EarlyStopping, Init, Layer};
use nn::{Mode, ParamStore, Progress, Result, Sequential, Standardizer};

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let dataset = nn::load_csv("examples/data/digits.csv.gz", CsvOptions::default())?;
    let (train, validation) = dataset.split(0.2, &mut rng)?;
    let scaler = Standardizer::fit(train.features())?;
    let train = train.with_features(scaler.transform(train.features())?)?;
    let validation = validation.with_features(scaler.transform(validation.features())?)?;
    // Named as PyTorch's nn.Sequential names them (0 and 1, 4 and 5, 8), so the saved file
    // loads into the PyTorch model with load_state_dict.
    let mut block = |store: &mut ParamStore, [dense, bn]: [&str; 2], inputs, outputs| {
        let linear = Dense::new(store, dense, inputs, outputs, Init::HeUniform, &mut rng)?;
        let block: Sequential = Sequential::new()
            .with(linear)
            .with(BatchNorm1d::new(store, bn, outputs)?)
            .with(Activation::Relu)
            .with(Dropout::with_keep_probability(0.8, &mut rng)?);
        Result::Ok(block)
    };
    let mut store = ParamStore::new();
    let (first, second) = (
        block(&mut store, ["0", "1"], 64, 128)?,
        block(&mut store, ["4", "5"], 128, 64)?,
    );
    let output = Dense::new(&mut store, "8", 64, 10, Init::HeUniform, &mut rng)?;
    let model = Sequential::new().with(first).with(second).with(output);
    let mut optimizer = Adam::new(1e-3);
    let schedule = CosineAnnealing::new(1e-3, 30);
    let mut stopping = EarlyStopping::new(5);
    for epoch in 0..30 {
        optimizer.set_learning_rate(schedule.learning_rate(epoch))?;
        for batch in train.shuffled_batches(64, &mut rng) {
            let (_, mut gradients) = store.value_and_gradients(Mode::Train, |context| {
                let logits = model.try_forward(context, context.input(batch.features()))?;
                Ok(nn::try_cross_entropy(logits, batch.labels())?
                    + nn::try_l2_penalty(context, 1e-4)?)
            })?;
            gradients.clip_norm(5.0)?;
            optimizer.step(&mut store, &gradients)?;
        }
        let logits = model.predict(&store, validation.features())?;
        let valid_loss = nn::cross_entropy_value(&logits, validation.labels())?;
        let accuracy = nn::accuracy(&logits, validation.labels())?;
        println!("epoch {epoch}: validation loss {valid_loss:.4}, accuracy {accuracy:.3}");
        if stopping.observe(valid_loss, &store, &optimizer) == Progress::Stop {
            break;
        }
    }
    stopping.restore_best(&mut store, &mut optimizer)?;
    nn::save_safetensors(&store, "digits.safetensors")?;
    nn::load_safetensors(&mut store, "digits.safetensors")
}
