//! Chapter section 6, batch normalization: the same deep network trained with and without a
//! [`nn::BatchNorm1d`] layer between each hidden dense layer and its activation.
//!
//! Batch norm re-standardizes every hidden layer's z over the batch, so the activation always
//! sees inputs of mean ~0 and standard deviation ~1 (times the learned gamma, plus beta),
//! however the weights before it change during training: each layer learns on stable inputs,
//! as standardized inputs make the first layer learn faster (section 5). At test time the
//! layer uses the running averages of mu and sigma² gathered during training
//! ([`nn::Mode::Eval`]), so a prediction does not depend on the other samples of its batch.
//!
//! The network uses sigmoid units, as in the MNIST experiment of Ioffe and Szegedy's batch
//! norm paper. Sigmoid is where normalizing z matters most: its outputs are all positive
//! (mean 1/2, the off-centre inputs section 5 warns about) and its slope is at most 1/4, so a
//! plain deep sigmoid network sits on a plateau before it learns. With tanh or ReLU and a good
//! initialization the plain network already trains well; there the difference is small, and
//! at some learning rates the plain network is the faster one.

use std::fmt;
use std::path::PathBuf;

use nn::{Activation, Init};

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{Split, digits_split};
use crate::model::MlpSpec;
use crate::plot::{Chart, Legend, Series, write_svg};
use crate::report::{Table, epoch, epochs_to_show, number, percent};
use crate::train::{History, Objective, Progress, TrainSpec, train};
use crate::{Config, Result, Size};

/// The training loss both networks must reach (mean mini-batch cross-entropy of an epoch).
/// Guessing among 10 digits scores ln 10 = 2.30; 0.1 means nearly every training digit is
/// classified with confidence.
pub const LOSS_THRESHOLD: f64 = 0.1;

/// The sizes of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Training samples (the other digits are the test set).
    pub train_count: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// SGD step size, the same for both networks.
    pub learning_rate: f64,
    /// Seeds the split, the weights and the batch order.
    pub seed: u64,
}

impl Settings {
    /// The settings for the configuration's size, seeded by its seed (or this example's
    /// default seed).
    pub fn for_config(config: &Config) -> Self {
        let mut settings = Settings::for_size(config.size);
        settings.seed = config.seed_or(settings.seed);
        settings
    }

    /// The settings for a run size, at this example's default seed.
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Settings {
                train_count: 1000,
                width: 128,
                depth: 4,
                epochs: 60,
                learning_rate: 0.1,
                seed: 7,
            },
            Size::Quick => Settings {
                train_count: 1000,
                width: 64,
                depth: 4,
                epochs: 30,
                learning_rate: 0.1,
                seed: 7,
            },
        }
    }

    /// The deep sigmoid network, with or without batch norm.
    pub fn network(&self, batch_norm: bool) -> MlpSpec {
        MlpSpec {
            batch_norm,
            ..MlpSpec::uniform(
                64,
                self.width,
                self.depth,
                10,
                Activation::Sigmoid,
                Init::XavierNormal,
            )
        }
    }

    fn training(&self) -> TrainSpec {
        TrainSpec {
            epochs: self.epochs,
            batch_size: 50,
            learning_rate: self.learning_rate,
            momentum: 0.9,
            l2: 0.0,
            objective: Objective::Classes,
            seed: self.seed,
        }
    }
}

/// One network's training.
#[derive(Clone, Debug)]
pub struct Run {
    /// "plain" or "batch norm".
    pub name: &'static str,
    /// Every epoch.
    pub history: History,
}

impl Run {
    /// The first epoch whose mean mini-batch loss is at or below [`LOSS_THRESHOLD`].
    pub fn epochs_to_threshold(&self) -> Option<usize> {
        self.history
            .first_epoch_at_or_below(LOSS_THRESHOLD, |r| r.batch_loss)
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The sizes used.
    pub settings: Settings,
    /// Without batch norm.
    pub plain: Run,
    /// With batch norm.
    pub batch_norm: Run,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

impl Summary {
    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        let never = (self.settings.epochs + 1) as f64;
        let epochs = |run: &Run| run.epochs_to_threshold().map_or(never, |e| e as f64);
        let accuracy = self
            .batch_norm
            .history
            .last()
            .map_or(f64::NAN, |r| r.test.accuracy);
        vec![
            Claim::above(
                "fewer_epochs",
                "With batch norm the deep sigmoid network reaches the loss threshold in far fewer epochs",
                "plain epochs / batch-norm epochs",
                epochs(&self.plain) / epochs(&self.batch_norm),
                EPOCH_RATIO_ABOVE,
                Unit::Ratio,
            ),
            Claim::above(
                "eval_accuracy",
                "Evaluated with its running statistics, the batch-norm network classifies the test digits",
                "test accuracy",
                accuracy,
                EVAL_ACCURACY_ABOVE,
                Unit::Percent,
            ),
        ]
    }
}

/// How many times fewer epochs batch norm needs at least.
pub const EPOCH_RATIO_ABOVE: f64 = 2.0;
/// The evaluation-mode test accuracy of the trained batch-norm network is above this.
pub const EVAL_ACCURACY_ABOVE: f64 = 0.9;

/// Trains the network with and without batch norm and plots both.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let split = digits_split(&config.data_dir, settings.train_count, settings.seed)?;
    let plain = train_one(config, &settings, &split, false)?;
    let batch_norm = train_one(config, &settings, &split, true)?;
    let mut summary = Summary {
        settings,
        plain,
        batch_norm,
        plots: Vec::new(),
    };
    summary.plots.push(plot(config, &summary)?);
    Ok(summary)
}

fn train_one(config: &Config, settings: &Settings, split: &Split, batch_norm: bool) -> Result<Run> {
    let name = if batch_norm { "batch norm" } else { "plain" };
    // The same seed: both networks start from the same dense weights.
    let mut model = settings.network(batch_norm).build(settings.seed)?;
    let progress = Progress::new(name, config.progress, settings.epochs, 15);
    let history = train(&mut model, split, &settings.training(), &progress)?;
    Ok(Run { name, history })
}

fn plot(config: &Config, summary: &Summary) -> Result<PathBuf> {
    let path = config.output_file("batch_norm.svg")?;
    let mut loss = Chart::new(
        "Training loss (mean over the epoch's batches)",
        "epoch",
        "cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::LowerLeft);
    let mut accuracy = Chart::new("Test accuracy (evaluation mode)", "epoch", "accuracy (%)")
        .legend(Legend::LowerRight);
    for (color, run) in [&summary.plain, &summary.batch_norm]
        .into_iter()
        .enumerate()
    {
        loss = loss.with(Series::new(
            run.name,
            run.history.points(|r| r.batch_loss),
            color,
        ));
        accuracy = accuracy.with(Series::new(
            run.name,
            run.history.points(|r| 100.0 * r.test.accuracy),
            color,
        ));
    }
    loss = loss.with(
        Series::new(
            format!("threshold {LOSS_THRESHOLD}"),
            vec![
                (1.0, LOSS_THRESHOLD),
                (summary.settings.epochs as f64, LOSS_THRESHOLD),
            ],
            6,
        )
        .dashed(),
    );
    write_svg(&path, &[loss, accuracy])?;
    Ok(path)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(
            f,
            "Batch normalization: {} hidden sigmoid layers of {} units (Xavier), {} training digits, SGD learning rate {} (momentum 0.9)",
            s.depth, s.width, s.train_count, s.learning_rate
        )?;
        let mut table = Table::new(&[
            "epoch",
            "plain: batch loss",
            "test acc",
            "batch norm: batch loss",
            "test acc (running stats)",
        ]);
        // Every few epochs, and the ones where each network reached the threshold.
        let reached: Vec<usize> = [&self.plain, &self.batch_norm]
            .iter()
            .filter_map(|run| run.epochs_to_threshold())
            .collect();
        let shown = epochs_to_show(s.epochs, &reached);
        let rows = self
            .plain
            .history
            .epochs
            .iter()
            .zip(&self.batch_norm.history.epochs)
            .filter(|(plain, _)| shown.contains(&plain.epoch));
        for (plain, bn) in rows {
            table.row(vec![
                plain.epoch.to_string(),
                number(Some(plain.batch_loss), 4),
                percent(plain.test.accuracy),
                number(Some(bn.batch_loss), 4),
                percent(bn.test.accuracy),
            ]);
        }
        write!(f, "{table}")?;
        writeln!(
            f,
            "  Epochs to a training loss of {LOSS_THRESHOLD}: plain {}, batch norm {}.",
            epoch(self.plain.epochs_to_threshold()),
            epoch(self.batch_norm.epochs_to_threshold())
        )?;
        write_claims(f, &self.claims())
    }
}
