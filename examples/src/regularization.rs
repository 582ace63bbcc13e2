//! Chapter sections 2 and 3, L2 regularization and dropout: the overfitting network of
//! [`overfitting`](crate::overfitting), trained again with an L2 penalty of several strengths
//! and with dropout at several keep probabilities. Both keep the weights small or the units
//! independent, so the model cannot memorise its noisy training labels as well: its training
//! loss stays higher, its test loss lower, and the gap between them shrinks.

use std::fmt;
use std::path::PathBuf;

use crate::claims::{Claim, Unit, write_claims};
use crate::data::Split;
use crate::overfitting::Settings;
use crate::plot::{Chart, Legend, Series, write_svg};
use crate::report::{Table, number, percent};
use crate::train::{EpochRecord, History, Progress, train};
use crate::{Config, Result, Size};

/// What is added to the unregularized network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// Nothing: the overfitting baseline.
    None,
    /// `lambda * sum over dense layers of ||W||^2` added to the loss (`nn::l2_penalty`).
    L2 {
        /// lambda.
        lambda: f64,
    },
    /// Inverted dropout after every hidden layer (`nn::Dropout::with_keep_probability`).
    Dropout {
        /// Probability that a unit is kept (the chapter's p).
        keep: f64,
    },
}

impl fmt::Display for Regularizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regularizer::None => write!(f, "none"),
            Regularizer::L2 { lambda } => write!(f, "L2 lambda={lambda}"),
            Regularizer::Dropout { keep } => write!(f, "dropout keep={keep}"),
        }
    }
}

/// The settings swept.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// L2 strengths lambda.
    pub lambdas: Vec<f64>,
    /// Dropout keep probabilities.
    pub keeps: Vec<f64>,
}

impl Sweep {
    /// The sweep for a run size.
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Sweep {
                lambdas: vec![1e-3, 3e-3, 1e-2, 3e-2],
                keeps: vec![0.9, 0.7, 0.5, 0.3],
            },
            Size::Quick => Sweep {
                lambdas: vec![3e-3, 1e-2],
                keeps: vec![0.5, 0.3],
            },
        }
    }
}

/// One training run of the sweep.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// What was added.
    pub regularizer: Regularizer,
    /// Every epoch.
    pub history: History,
    /// sqrt(sum ||W||^2) over the dense layers after training.
    pub weight_norm: f64,
}

impl RunResult {
    /// The last epoch.
    pub fn last(&self) -> &EpochRecord {
        self.history.last().expect("at least one epoch")
    }

    /// Test loss minus training loss after the last epoch (both in evaluation mode, data loss
    /// only): how much worse the model does on data it has not seen.
    pub fn gap(&self) -> f64 {
        self.last().test.loss - self.last().train.loss
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The network and data settings (those of the overfitting example).
    pub settings: Settings,
    /// The unregularized run.
    pub baseline: RunResult,
    /// One run per lambda.
    pub l2: Vec<RunResult>,
    /// One run per keep probability.
    pub dropout: Vec<RunResult>,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

impl Summary {
    /// The L2 run with the lowest final test loss.
    pub fn best_l2(&self) -> &RunResult {
        best(&self.l2)
    }

    /// The dropout run with the lowest final test loss.
    pub fn best_dropout(&self) -> &RunResult {
        best(&self.dropout)
    }

    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        let base = &self.baseline;
        let (l2, dropout) = (self.best_l2(), self.best_dropout());
        vec![
            Claim::below(
                "l2_gap",
                "The best L2 strength shrinks the train-test gap",
                "gap, best L2 / none",
                l2.gap() / base.gap(),
                GAP_RATIO_BELOW,
                Unit::Ratio,
            ),
            Claim::below(
                "l2_test",
                "and lowers the test loss",
                "test loss, best L2 / none",
                l2.last().test.loss / base.last().test.loss,
                1.0,
                Unit::Ratio,
            ),
            Claim::below(
                "l2_norm",
                "L2 does it by shrinking the weights",
                "weight norm, best L2 / none",
                l2.weight_norm / base.weight_norm,
                GAP_RATIO_BELOW,
                Unit::Ratio,
            ),
            Claim::below(
                "dropout_gap",
                "The best keep probability shrinks the train-test gap",
                "gap, best dropout / none",
                dropout.gap() / base.gap(),
                GAP_RATIO_BELOW,
                Unit::Ratio,
            ),
            Claim::below(
                "dropout_test",
                "and lowers the test loss",
                "test loss, best dropout / none",
                dropout.last().test.loss / base.last().test.loss,
                1.0,
                Unit::Ratio,
            ),
        ]
    }
}

/// A regularizer that works removes more than this fraction of the unregularized gap.
pub const GAP_RATIO_BELOW: f64 = 0.9;

fn best(runs: &[RunResult]) -> &RunResult {
    runs.iter()
        .min_by(|a, b| a.last().test.loss.total_cmp(&b.last().test.loss))
        .expect("a non-empty sweep")
}

/// Trains the baseline and every setting of the sweep, and plots the best ones.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let sweep = Sweep::for_size(config.size);
    let split = settings.data(config)?;
    let baseline = train_with(config, &settings, &split, Regularizer::None)?;
    let l2 = sweep
        .lambdas
        .iter()
        .map(|&lambda| train_with(config, &settings, &split, Regularizer::L2 { lambda }))
        .collect::<Result<Vec<_>>>()?;
    let dropout = sweep
        .keeps
        .iter()
        .map(|&keep| train_with(config, &settings, &split, Regularizer::Dropout { keep }))
        .collect::<Result<Vec<_>>>()?;
    let mut summary = Summary {
        settings,
        baseline,
        l2,
        dropout,
        plots: Vec::new(),
    };
    summary.plots.push(plot(config, &summary)?);
    Ok(summary)
}

/// Trains the overfitting network with one regularizer; everything else (data, initial
/// weights, batch order) is the same for every run.
fn train_with(
    config: &Config,
    settings: &Settings,
    split: &Split,
    regularizer: Regularizer,
) -> Result<RunResult> {
    let mut network = settings.network();
    let mut training = settings.training();
    match regularizer {
        Regularizer::None => {}
        Regularizer::L2 { lambda } => training.l2 = lambda,
        Regularizer::Dropout { keep } => network.keep_probability = Some(keep),
    }
    let mut model = network.build(settings.seed)?;
    let label = format!("regularization {regularizer}");
    // One progress line per run: its last epoch.
    let progress = Progress::new(label, config.progress, training.epochs, 1);
    let history = train(&mut model, split, &training, &progress)?;
    if let Some(epoch) = history.diverged_at {
        return Err(format!("regularization: {regularizer} diverged in epoch {epoch}").into());
    }
    Ok(RunResult {
        regularizer,
        history,
        weight_norm: model.weight_norm(),
    })
}

fn plot(config: &Config, summary: &Summary) -> Result<PathBuf> {
    let path = config.output_file("regularization.svg")?;
    let runs = [&summary.baseline, summary.best_l2(), summary.best_dropout()];
    // Training loss spans decades (the unregularized run drives it towards 0): log scale.
    let mut train_loss = Chart::new("Training loss", "epoch", "cross-entropy (log scale)")
        .log_y()
        .legend(Legend::LowerLeft);
    let mut test_loss = Chart::new("Test loss (from epoch 1)", "epoch", "cross-entropy");
    let mut accuracy =
        Chart::new("Test accuracy", "epoch", "accuracy (%)").legend(Legend::LowerRight);
    for (color, run) in runs.iter().enumerate() {
        let name = run.regularizer.to_string();
        let history = &run.history;
        train_loss = train_loss.with(Series::new(&name, history.points(|r| r.train.loss), color));
        // Epoch 0 (the untrained network, loss ~3) would squash the differences that matter.
        let mut test_points = history.points(|r| r.test.loss);
        test_points.retain(|&(epoch, _)| epoch >= 1.0);
        test_loss = test_loss.with(Series::new(&name, test_points, color));
        accuracy = accuracy.with(Series::new(
            &name,
            history.points(|r| 100.0 * r.test.accuracy),
            color,
        ));
    }
    write_svg(&path, &[train_loss, test_loss, accuracy])?;
    Ok(path)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(
            f,
            "L2 and dropout: the overfitting network ({}x{} ReLU, {} training digits, {:.0}% of their labels wrong), {} epochs",
            s.depth,
            s.width,
            s.train_count,
            100.0 * s.label_noise,
            s.epochs
        )?;
        let mut table = Table::new(&[
            "regularizer",
            "train loss",
            "test loss",
            "gap",
            "train acc",
            "test acc",
            "weight norm",
        ]);
        let runs = std::iter::once(&self.baseline)
            .chain(&self.l2)
            .chain(&self.dropout);
        for run in runs {
            let last = run.last();
            table.row(vec![
                run.regularizer.to_string(),
                number(Some(last.train.loss), 4),
                number(Some(last.test.loss), 4),
                number(Some(run.gap()), 4),
                percent(last.train.accuracy),
                percent(last.test.accuracy),
                number(Some(run.weight_norm), 1),
            ]);
        }
        write!(f, "{table}")?;
        for best in [self.best_l2(), self.best_dropout()] {
            writeln!(
                f,
                "  Best {}: gap {:.4} vs {:.4} unregularized, test loss {:.4} vs {:.4}.",
                best.regularizer,
                best.gap(),
                self.baseline.gap(),
                best.last().test.loss,
                self.baseline.last().test.loss
            )?;
        }
        write_claims(f, &self.claims())
    }
}
