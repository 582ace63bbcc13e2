//! Chapter section 1, overfitting: a deep, wide network trained long on a small part of the
//! digits drives its training loss towards zero while its test loss, after an early minimum,
//! goes up again. It is fitting the peculiarities of its few training samples.

use std::fmt;
use std::path::PathBuf;

use nn::{Activation, Init};

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{ShiftAugmentation, Split, load_digits, split, standardize, with_label_noise};
use crate::model::MlpSpec;
use crate::plot::{Chart, Legend, Series, write_svg};
use crate::report::{Table, epochs_to_show, number, percent};
use crate::train::{
    EpochRecord, History, Hooks, Objective, Progress, TrainSpec, train, train_with_hooks,
};
use crate::{Config, Result, Size};

/// The sizes of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Training samples (the other digits are the test set).
    pub train_count: usize,
    /// Fraction of the training labels replaced by a wrong class (the test labels stay clean).
    pub label_noise: f64,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Passes over the training set.
    pub epochs: usize,
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
                train_count: 200,
                label_noise: 0.2,
                width: 256,
                depth: 3,
                epochs: 300,
                seed: 1,
            },
            Size::Quick => Settings {
                train_count: 150,
                label_noise: 0.2,
                width: 128,
                depth: 3,
                epochs: 150,
                seed: 1,
            },
        }
    }

    /// The digits, split and standardized, with label noise in the training set.
    pub fn data(&self, config: &Config) -> Result<Split> {
        standardize(&self.raw_data(config)?)
    }

    /// The same split before standardization (pixel values 0 to 16), for augmentation.
    pub fn raw_data(&self, config: &Config) -> Result<Split> {
        let mut split = split(&load_digits(&config.data_dir)?, self.train_count, self.seed)?;
        // Its own seed, so that which labels are corrupted is independent of the split.
        let noise_seed = self.seed.wrapping_add(1000);
        split.train = with_label_noise(&split.train, self.label_noise, noise_seed)?;
        Ok(split)
    }

    /// The network: ReLU hidden layers with He initialization, 10 class logits.
    pub fn network(&self) -> MlpSpec {
        MlpSpec::uniform(
            64,
            self.width,
            self.depth,
            10,
            Activation::Relu,
            Init::HeNormal,
        )
    }

    /// The training: plain mini-batch SGD (no momentum), no regularization.
    pub fn training(&self) -> TrainSpec {
        TrainSpec {
            epochs: self.epochs,
            batch_size: 25,
            learning_rate: 0.05,
            momentum: 0.0,
            l2: 0.0,
            objective: Objective::Classes,
            seed: self.seed,
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The sizes used.
    pub settings: Settings,
    /// Every epoch.
    pub history: History,
    /// The same network, data and batch order, each epoch's training images shifted by a
    /// random pixel ([`ShiftAugmentation`]): the chapter's first remedy, more data.
    pub augmented: History,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

impl Summary {
    /// The epoch with the lowest test loss.
    pub fn best(&self) -> &EpochRecord {
        self.history.best_test_epoch().expect("at least one epoch")
    }

    /// The last epoch.
    pub fn last(&self) -> &EpochRecord {
        self.history.last().expect("at least one epoch")
    }

    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        let (best, last) = (self.best(), self.last());
        let epochs = self.settings.epochs as f64;
        let augmented = self.augmented.last().expect("at least one epoch");
        vec![
            // The network fits its 200 clean-and-noisy digits within tens of epochs, then
            // spends the rest memorising the wrong labels: the minimum comes early.
            Claim::below(
                "minimum_early",
                "The test loss is lowest early in training",
                "minimum at",
                best.epoch as f64 / epochs,
                MINIMUM_BY,
                Unit::Percent,
            ),
            Claim::above(
                "test_rises",
                "After its minimum the test loss rises, as the network fits the noise",
                "rise to the end",
                last.test.loss / best.test.loss - 1.0,
                RISE_AT_LEAST,
                Unit::Change,
            ),
            Claim::above(
                "train_falls",
                "Meanwhile the training loss keeps falling",
                "fall from the minimum to the end",
                best.train.loss / last.train.loss,
                TRAIN_FALL_AT_LEAST,
                Unit::Ratio,
            ),
            // Nine shifted copies of each digit are as many new samples that carry the same
            // wrong labels in different pixels: memorising a wrong label now means fitting
            // nine images, so the network fits less of the noise and its training loss stays
            // far above the plain network's ~0.004, while its test loss does not rise with it.
            Claim::below(
                "augmentation_gap",
                "Shifting the training images by a pixel each epoch (more data) shrinks the train-test gap",
                "final gap, augmented / plain",
                (augmented.test.loss - augmented.train.loss) / (last.test.loss - last.train.loss),
                AUGMENTED_GAP_RATIO_BELOW,
                Unit::Ratio,
            ),
            // The mechanism itself: fitting a wrong label on nine images is harder than on one.
            Claim::above(
                "augmentation_memorises_less",
                "because the network memorises less of its training set: its training loss stays higher",
                "final train loss, augmented / plain",
                augmented.train.loss / last.train.loss,
                AUGMENTED_TRAIN_RATIO_ABOVE,
                Unit::Ratio,
            ),
            // Not at every seed: the augmented network also learns the clean digits more
            // slowly, and at a few seeds it ends where the plain one does.
            Claim::below(
                "augmentation_test",
                "and ends with a lower test loss",
                "final test loss, augmented / plain",
                augmented.test.loss / last.test.loss,
                1.0,
                Unit::Ratio,
            )
            .observation(),
        ]
    }
}

/// The augmented network's final train-test gap is below this fraction of the plain one's.
pub const AUGMENTED_GAP_RATIO_BELOW: f64 = 1.0;
/// The augmented network's final training loss is above this multiple of the plain one's.
pub const AUGMENTED_TRAIN_RATIO_ABOVE: f64 = 5.0;

/// The test minimum comes in the first this-fraction of the epochs.
pub const MINIMUM_BY: f64 = 0.5;
/// The test loss ends at least this fraction above its minimum.
pub const RISE_AT_LEAST: f64 = 0.03;
/// The training loss falls at least this factor after the test minimum.
pub const TRAIN_FALL_AT_LEAST: f64 = 5.0;

/// Trains the network and plots its training and test loss per epoch.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let raw = settings.raw_data(config)?;
    let split = standardize(&raw)?;
    let training = settings.training();
    let mut model = settings.network().build(settings.seed)?;
    let progress = Progress::new("overfitting", config.progress, training.epochs, 15);
    let history = train(&mut model, &split, &training, &progress)?;
    // The same initial weights and batch order; only the images differ.
    let (mut augmentation, augmented_split) =
        ShiftAugmentation::new(&raw, settings.seed.wrapping_add(2000))?;
    let mut model = settings.network().build(settings.seed)?;
    let progress = Progress::new(
        "overfitting, augmented",
        config.progress,
        training.epochs,
        3,
    );
    let mut next_epoch = |_epoch: usize| augmentation.next_epoch();
    let hooks = Hooks {
        epoch_data: Some(&mut next_epoch),
        after_epoch: None,
    };
    let augmented = train_with_hooks(&mut model, &augmented_split, &training, &progress, hooks)?;
    for (name, run) in [("plain", &history), ("augmented", &augmented)] {
        if let Some(epoch) = run.diverged_at {
            return Err(format!("overfitting ({name}): training diverged in epoch {epoch}").into());
        }
    }
    let plots = vec![plot(config, &history, &augmented)?];
    Ok(Summary {
        settings,
        history,
        augmented,
        plots,
    })
}

fn plot(config: &Config, history: &History, augmented: &History) -> Result<PathBuf> {
    let path = config.output_file("overfitting.svg")?;
    let best = history.best_test_epoch().expect("at least one epoch");
    let lowest = Series::point(
        format!("lowest test loss (epoch {})", best.epoch),
        (best.epoch as f64, best.test.loss),
        6,
    );
    // Log scale: the training loss falls by decades while the test loss moves by tens of
    // percent, and both must be readable on one axis.
    let loss = Chart::new("Cross-entropy per epoch", "epoch", "loss (log scale)")
        .log_y()
        .with(Series::new("train", history.points(|r| r.train.loss), 0).dashed())
        .with(Series::new("test", history.points(|r| r.test.loss), 1))
        .with(lowest.clone());
    // The test curve from its minimum on, on its own scale, so that its rise is plain to see.
    let after_minimum: Vec<(f64, f64)> = history
        .points(|r| r.test.loss)
        .into_iter()
        .filter(|&(epoch, _)| epoch >= best.epoch as f64)
        .collect();
    let test = Chart::new("Test loss from its minimum on", "epoch", "test loss")
        .legend(Legend::LowerRight)
        .with(Series::new("test", after_minimum, 1))
        .with(lowest);
    let accuracy = Chart::new("Accuracy per epoch", "epoch", "accuracy (%)")
        .legend(Legend::LowerRight)
        .with(Series::new("train", history.points(|r| 100.0 * r.train.accuracy), 0).dashed())
        .with(Series::new(
            "test",
            history.points(|r| 100.0 * r.test.accuracy),
            1,
        ));
    let more_data = Chart::new(
        "More data: test loss, plain vs shifted images",
        "epoch",
        "test loss",
    )
    .with(Series::new("plain", history.points(|r| r.test.loss), 1))
    .with(Series::new(
        "augmented (1-pixel shifts)",
        augmented.points(|r| r.test.loss),
        2,
    ));
    write_svg(&path, &[loss, test, accuracy, more_data])?;
    Ok(path)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(
            f,
            "Overfitting: {}x{} ReLU network, {} training digits ({:.0}% of their labels wrong), {} clean test digits, {} epochs",
            s.depth,
            s.width,
            s.train_count,
            100.0 * s.label_noise,
            1797 - s.train_count,
            s.epochs
        )?;
        let mut table = Table::new(&["epoch", "train loss", "test loss", "train acc", "test acc"]);
        let best = self.best().epoch;
        let shown = epochs_to_show(s.epochs, &[best]);
        for record in self
            .history
            .epochs
            .iter()
            .filter(|r| shown.contains(&r.epoch))
        {
            let mark = if record.epoch == best {
                " (lowest test loss)"
            } else {
                ""
            };
            table.row(vec![
                format!("{}{mark}", record.epoch),
                number(Some(record.train.loss), 4),
                number(Some(record.test.loss), 4),
                percent(record.train.accuracy),
                percent(record.test.accuracy),
            ]);
        }
        write!(f, "{table}")?;
        let (best, last) = (self.best(), self.last());
        writeln!(
            f,
            "  From epoch {} to {}, train loss fell {:.4} -> {:.4} while test loss rose {:.4} -> {:.4} ({:+.0}%).",
            best.epoch,
            last.epoch,
            best.train.loss,
            last.train.loss,
            best.test.loss,
            last.test.loss,
            100.0 * (last.test.loss / best.test.loss - 1.0)
        )?;
        let augmented = self.augmented.last().expect("at least one epoch");
        let augmented_best = self
            .augmented
            .best_test_epoch()
            .expect("at least one epoch");
        writeln!(
            f,
            "  With each epoch's images shifted by a random pixel: test loss {:.4} at its minimum (epoch {}), {:.4} at the end ({:+.0}%); train loss {:.4}, test accuracy {}.",
            augmented_best.test.loss,
            augmented_best.epoch,
            augmented.test.loss,
            100.0 * (augmented.test.loss / augmented_best.test.loss - 1.0),
            augmented.train.loss,
            percent(augmented.test.accuracy)
        )?;
        write_claims(f, &self.claims())
    }
}
