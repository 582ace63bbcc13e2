//! Chapter section 5, standardizing the inputs: the breast-cancer features range from about
//! 0.001 (fractal dimension) to about 4000 (worst area). Trained on the raw numbers, the first
//! layer's loss surface is a long, narrow valley: a learning rate small enough not to diverge
//! along the large features crawls along the small ones. Standardized with
//! [`nn::Standardizer`] (fit on the training split only), every feature has mean 0 and
//! standard deviation 1 and one learning rate suits them all.
//!
//! To compare the inputs and not a lucky learning rate, each is trained at every learning
//! rate of a sweep, and its best run is the one compared.

use std::fmt;
use std::path::PathBuf;

use nn::{Activation, Init};

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{Split, load_breast_cancer, split, standardize};
use crate::model::MlpSpec;
use crate::plot::{Chart, Legend, Series, write_svg};
use crate::report::{Table, epoch, number, percent};
use crate::train::{History, Objective, Progress, TrainSpec, train};
use crate::{Config, Result, Size};

/// The loss both inputs must reach: the training set's binary cross-entropy. Guessing the
/// class frequencies (63% benign) scores 0.66; 0.2 means the features have been used.
pub const LOSS_THRESHOLD: f64 = 0.2;

/// The sizes of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Training samples (the rest of the 569 is the test set).
    pub train_count: usize,
    /// Units of the one hidden layer.
    pub width: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// The learning rates tried for each input.
    pub learning_rates: Vec<f64>,
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
        let decades = |from: i32, to: i32| (from..=to).rev().map(|e| 10f64.powi(e)).collect();
        match size {
            Size::Full => Settings {
                train_count: 400,
                width: 32,
                epochs: 100,
                learning_rates: decades(-7, 0),
                seed: 5,
            },
            Size::Quick => Settings {
                train_count: 400,
                width: 32,
                epochs: 40,
                learning_rates: decades(-6, 0),
                seed: 5,
            },
        }
    }

    fn network(&self) -> MlpSpec {
        MlpSpec::uniform(30, self.width, 1, 1, Activation::Relu, Init::HeNormal)
    }

    fn training(&self, learning_rate: f64) -> TrainSpec {
        TrainSpec {
            epochs: self.epochs,
            batch_size: 25,
            learning_rate,
            momentum: 0.9,
            l2: 0.0,
            objective: Objective::Binary,
            seed: self.seed,
        }
    }
}

/// One training run at one learning rate.
#[derive(Clone, Debug)]
pub struct Run {
    /// The learning rate.
    pub learning_rate: f64,
    /// Every epoch (possibly cut short by divergence).
    pub history: History,
}

impl Run {
    /// The first epoch whose training loss is at or below [`LOSS_THRESHOLD`].
    pub fn epochs_to_threshold(&self) -> Option<usize> {
        self.history
            .first_epoch_at_or_below(LOSS_THRESHOLD, |r| r.train.loss)
    }

    /// The last training loss, or infinity if the run diverged.
    pub fn final_loss(&self) -> f64 {
        match (self.history.diverged_at, self.history.last()) {
            (None, Some(last)) => last.train.loss,
            _ => f64::INFINITY,
        }
    }
}

/// All runs of one kind of input.
#[derive(Clone, Debug)]
pub struct InputResult {
    /// "raw" or "standardized".
    pub name: &'static str,
    /// One run per learning rate, in the order of the sweep.
    pub runs: Vec<Run>,
}

impl InputResult {
    /// The best run: among those that did not diverge, the first to reach the threshold, or
    /// (if none did) the one that ended lowest.
    pub fn best(&self) -> &Run {
        let rank = |run: &Run| {
            (
                run.history.diverged_at.is_some(),
                run.epochs_to_threshold().unwrap_or(usize::MAX),
            )
        };
        self.runs
            .iter()
            .min_by(|a, b| {
                rank(a)
                    .cmp(&rank(b))
                    .then(a.final_loss().total_cmp(&b.final_loss()))
            })
            .expect("a non-empty sweep")
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The sizes used.
    pub settings: Settings,
    /// The raw features.
    pub raw: InputResult,
    /// The standardized features.
    pub standardized: InputResult,
    /// The loss of predicting the training set's class frequencies for every sample, the
    /// entropy -p ln p - (1 - p) ln(1 - p): the plateau of a network that learns nothing else.
    pub class_prior_loss: f64,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

impl Summary {
    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        // "never" counts as one epoch more than the run.
        let never = (self.settings.epochs + 1) as f64;
        let epochs = |input: &InputResult| {
            input
                .best()
                .epochs_to_threshold()
                .map_or(never, |e| e as f64)
        };
        let (raw, standardized) = (epochs(&self.raw), epochs(&self.standardized));
        vec![Claim::above(
            "fewer_epochs",
            "Standardized inputs reach the loss threshold in several times fewer epochs than raw ones, each at its best learning rate",
            "raw epochs / standardized epochs",
            raw / standardized,
            EPOCH_RATIO_ABOVE,
            Unit::Ratio,
        )]
    }
}

/// How many times fewer epochs the standardized inputs need at least.
pub const EPOCH_RATIO_ABOVE: f64 = 4.0;

/// Trains on raw and on standardized inputs at every learning rate, and plots the best of each.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let raw_split = split(
        &load_breast_cancer(&config.data_dir)?,
        settings.train_count,
        settings.seed,
    )?;
    let standardized_split = standardize(&raw_split)?;
    let labels = raw_split.train.labels();
    let p = labels.iter().filter(|&&l| l == 1).count() as f64 / labels.len() as f64;
    let class_prior_loss = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    let raw = sweep(config, &settings, "raw", &raw_split)?;
    let standardized = sweep(config, &settings, "standardized", &standardized_split)?;
    let mut summary = Summary {
        settings,
        raw,
        standardized,
        class_prior_loss,
        plots: Vec::new(),
    };
    summary.plots.push(plot(config, &summary)?);
    Ok(summary)
}

/// The same network, from the same initial weights, at every learning rate.
fn sweep(
    config: &Config,
    settings: &Settings,
    name: &'static str,
    split: &Split,
) -> Result<InputResult> {
    let mut runs = Vec::new();
    for &learning_rate in &settings.learning_rates {
        let mut model = settings.network().build(settings.seed)?;
        let label = format!("{name}, learning rate {learning_rate:.0e}");
        let progress = Progress::new(label, config.progress, settings.epochs, 1);
        let history = train(
            &mut model,
            split,
            &settings.training(learning_rate),
            &progress,
        )?;
        runs.push(Run {
            learning_rate,
            history,
        });
    }
    Ok(InputResult { name, runs })
}

/// A final loss above this (or a diverged run) is drawn as "blew up", not as a point.
const BLEW_UP: f64 = 1e3;

fn plot(config: &Config, summary: &Summary) -> Result<PathBuf> {
    let path = config.output_file("standardization.svg")?;
    let inputs = [&summary.raw, &summary.standardized];
    let threshold = Series::new(
        format!("threshold {LOSS_THRESHOLD}"),
        vec![
            (0.0, LOSS_THRESHOLD),
            (summary.settings.epochs as f64, LOSS_THRESHOLD),
        ],
        6,
    )
    .dashed();
    let mut curves = Chart::new(
        "Training loss at each input's best learning rate",
        "epoch",
        "binary cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::UpperRight);
    let mut sweep = Chart::new(
        "Final training loss per learning rate",
        "learning rate (log scale)",
        "binary cross-entropy (log scale)",
    )
    .log_x()
    .log_y()
    .legend(Legend::LowerLeft);
    for (color, input) in inputs.into_iter().enumerate() {
        let best = input.best();
        curves = curves.with(Series::new(
            format!("{}, learning rate {:.0e}", input.name, best.learning_rate),
            best.history.points(|r| r.train.loss),
            color,
        ));
        // Runs that diverged, or whose loss blew up past any useful scale, are left out of the
        // line (they would squash the rest) and named in the legend.
        let blew_up = |r: &Run| r.history.diverged_at.is_some() || r.final_loss() > BLEW_UP;
        let points = input
            .runs
            .iter()
            .filter(|r| !blew_up(r))
            .map(|r| (r.learning_rate, r.final_loss()))
            .collect();
        let diverged: Vec<String> = input
            .runs
            .iter()
            .filter(|r| blew_up(r))
            .map(|r| format!("{:.0e}", r.learning_rate))
            .collect();
        let label = if diverged.is_empty() {
            input.name.to_string()
        } else {
            format!("{} (blew up at {})", input.name, diverged.join(", "))
        };
        sweep = sweep.with(Series::new(label, points, color).with_markers());
    }
    // Predicting the training set's class frequencies for every sample scores the entropy of
    // the prior: the raw runs that learn nothing sit on this line.
    let epochs = (0.0, summary.settings.epochs as f64);
    let rates = summary
        .settings
        .learning_rates
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    let plateau = format!("class prior only ({:.3})", summary.class_prior_loss);
    curves = curves.with(threshold).with(Series::hline(
        plateau.clone(),
        summary.class_prior_loss,
        epochs,
        4,
    ));
    sweep = sweep.with(Series::hline(plateau, summary.class_prior_loss, rates, 4));
    write_svg(&path, &[curves, sweep])?;
    Ok(path)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(
            f,
            "Standardization: breast cancer, 30-{}-1 ReLU network, {} training samples, {} epochs of SGD (momentum 0.9) per learning rate",
            s.width, s.train_count, s.epochs
        )?;
        let mut table = Table::new(&[
            "input, learning rate",
            &format!("epochs to loss {LOSS_THRESHOLD}"),
            "final train loss",
            "test acc",
        ]);
        for input in [&self.raw, &self.standardized] {
            for run in &input.runs {
                let last = run.history.last();
                let final_loss = match run.history.diverged_at {
                    Some(e) => format!("diverged (epoch {e})"),
                    None => number(last.map(|r| r.train.loss), 4),
                };
                table.row(vec![
                    format!("{}, {:.0e}", input.name, run.learning_rate),
                    epoch(run.epochs_to_threshold()),
                    final_loss,
                    last.map_or("-".to_string(), |r| percent(r.test.accuracy)),
                ]);
            }
        }
        write!(f, "{table}")?;
        for input in [&self.raw, &self.standardized] {
            let best = input.best();
            writeln!(
                f,
                "  Best {}: learning rate {:.0e}, loss {LOSS_THRESHOLD} reached at epoch {}, final loss {:.4}.",
                input.name,
                best.learning_rate,
                epoch(best.epochs_to_threshold()),
                best.final_loss()
            )?;
        }
        write_claims(f, &self.claims())
    }
}
