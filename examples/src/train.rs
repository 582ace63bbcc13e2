//! The training loop every example shares, and evaluation.
//!
//! One epoch = one pass over the training set in seeded shuffled mini-batches. Each step makes
//! a fresh tape, binds the parameters to it, computes the loss (plus the L2 penalty, if any),
//! backpropagates, and lets the optimizer update the parameters. After each epoch the model is
//! evaluated in [`Mode::Eval`] (dropout off, batch norm on its running statistics) on the whole
//! training and test sets.

use std::time::Instant;

use autograd::{Tape, Var};
use nn::optim::{Optimizer, Sgd, SgdConfig};
use nn::{Context, Dataset, Layer, Mode};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Result;
use crate::data::Split;
use crate::model::Mlp;

/// What the network's outputs mean, and so which loss and accuracy apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// One logit per class: softmax cross-entropy; the prediction is the largest logit.
    Classes,
    /// One logit: binary cross-entropy with logits; the prediction is 1 when the logit is > 0.
    Binary,
}

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSpec {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// SGD's step size.
    pub learning_rate: f64,
    /// SGD's (heavy-ball) momentum factor, 0 for plain SGD. With SGD, the L2 penalty's
    /// gradient `2 lambda W` acts exactly as a weight decay, as the chapter describes (with
    /// Adam it would be rescaled; see `nn::optim`).
    pub momentum: f64,
    /// lambda of the L2 penalty `lambda * sum ||W||^2` added to the loss (0 for none).
    pub l2: f64,
    /// The loss.
    pub objective: Objective,
    /// Seeds the order of the mini-batches.
    pub seed: u64,
}

/// Loss and accuracy of a model on one data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The data loss (cross-entropy), without any penalty, so that runs with and without L2
    /// are compared on the same quantity.
    pub loss: f64,
    /// Fraction of samples classified correctly.
    pub accuracy: f64,
}

/// The numbers of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    /// Epoch number: 0 is the model before any step, then 1, 2, ... after each pass.
    pub epoch: usize,
    /// Mean data loss over the epoch's mini-batches, in training mode (with dropout, batch
    /// statistics): the quantity the optimizer was descending. NaN for epoch 0 (no batches).
    pub batch_loss: f64,
    /// Evaluation-mode loss and accuracy on the whole training set, after the epoch.
    pub train: Evaluation,
    /// Evaluation-mode loss and accuracy on the test set, after the epoch.
    pub test: Evaluation,
}

/// Every epoch of one training run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The initial model (epoch 0), then one record per completed epoch.
    pub epochs: Vec<EpochRecord>,
    /// The epoch at which a loss became infinite or NaN, ending the run.
    pub diverged_at: Option<usize>,
}

impl History {
    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The first epoch whose value of `metric` is at or below `threshold`, if any (0 if the
    /// initial model already is).
    pub fn first_epoch_at_or_below(
        &self,
        threshold: f64,
        metric: impl Fn(&EpochRecord) -> f64,
    ) -> Option<usize> {
        self.epochs
            .iter()
            .find(|r| metric(r) <= threshold)
            .map(|r| r.epoch)
    }

    /// The record with the lowest test loss.
    pub fn best_test_epoch(&self) -> Option<&EpochRecord> {
        self.epochs
            .iter()
            .min_by(|a, b| a.test.loss.total_cmp(&b.test.loss))
    }

    /// (epoch, value) points of a metric, finite values only, for plotting.
    pub fn points(&self, metric: impl Fn(&EpochRecord) -> f64) -> Vec<(f64, f64)> {
        self.epochs
            .iter()
            .map(|r| (r.epoch as f64, metric(r)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    }
}

/// Prints one progress line per epoch (or every few epochs) to standard error, with the time
/// taken. Timings go only here, never into results, so two runs give the same results.
#[derive(Debug)]
pub struct Progress {
    label: String,
    every: usize,
    enabled: bool,
    started: Instant,
}

impl Progress {
    /// Lines labelled `label`, about `lines` of them for `epochs` epochs (and always the last).
    pub fn new(label: impl Into<String>, enabled: bool, epochs: usize, lines: usize) -> Self {
        Progress {
            label: label.into(),
            every: epochs.div_ceil(lines.max(1)).max(1),
            enabled,
            started: Instant::now(),
        }
    }

    /// Silent progress.
    pub fn silent() -> Self {
        Progress::new("", false, 1, 1)
    }

    fn epoch(&self, record: &EpochRecord, epochs: usize) {
        if !self.enabled || !(record.epoch % self.every == 0 || record.epoch == epochs) {
            return;
        }
        eprintln!(
            "  {:<28} epoch {:>4}/{:<4} train loss {:>8.4} acc {:>6.2}%  test loss {:>8.4} acc {:>6.2}%  {:>6.2} s",
            self.label,
            record.epoch,
            epochs,
            record.train.loss,
            100.0 * record.train.accuracy,
            record.test.loss,
            100.0 * record.test.accuracy,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn diverged(&self, epoch: usize) {
        if self.enabled {
            eprintln!(
                "  {:<28} diverged (loss not finite) in epoch {epoch}",
                self.label
            );
        }
    }
}

/// Trains `model` on `split.train` and records every epoch.
pub fn train(
    model: &mut Mlp,
    split: &Split,
    spec: &TrainSpec,
    progress: &Progress,
) -> Result<History> {
    train_with_hooks(model, split, spec, progress, Hooks::default())
}

/// The training set of an epoch, given its number (see [`Hooks::epoch_data`]).
pub type EpochData<'a> = &'a mut dyn FnMut(usize) -> Result<Dataset<f32>>;

/// An observer called after each epoch (see [`Hooks::after_epoch`]).
pub type AfterEpoch<'a> = &'a mut dyn FnMut(usize, &mut Mlp) -> Result<()>;

/// What a training run may do besides the plain loop.
#[derive(Default)]
pub struct Hooks<'a> {
    /// The training samples of epoch `e` (1, 2, ...), in place of `split.train`: data
    /// augmentation draws fresh variants of the samples each epoch. The epoch's records still
    /// evaluate on `split.train`, the samples as they are.
    pub epoch_data: Option<EpochData<'a>>,
    /// Called after each epoch's record, with the epoch number and the model (to measure
    /// what the records do not: weights, batch-norm statistics).
    pub after_epoch: Option<AfterEpoch<'a>>,
}

impl std::fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("epoch_data", &self.epoch_data.is_some())
            .field("after_epoch", &self.after_epoch.is_some())
            .finish()
    }
}

/// [`train`], with per-epoch data and a per-epoch observer. With `Hooks::default()` it is
/// [`train`] exactly.
pub fn train_with_hooks(
    model: &mut Mlp,
    split: &Split,
    spec: &TrainSpec,
    progress: &Progress,
    mut hooks: Hooks<'_>,
) -> Result<History> {
    let mut optimizer = Sgd::with_config(SgdConfig {
        learning_rate: spec.learning_rate,
        momentum: spec.momentum,
        ..SgdConfig::default()
    })?;
    let mut order = StdRng::seed_from_u64(spec.seed);
    let mut history = History::default();
    // Epoch 0, the untrained model: where the curves start.
    history
        .epochs
        .push(record_epoch(model, split, spec.objective, 0, f64::NAN)?);
    for epoch in 1..=spec.epochs {
        let augmented = match hooks.epoch_data.as_mut() {
            Some(epoch_data) => Some(epoch_data(epoch)?),
            None => None,
        };
        let samples = augmented.as_ref().unwrap_or(&split.train);
        let batches = samples.shuffled_batches(spec.batch_size, &mut order);
        let batch_loss = run_epoch(model, batches, spec, &mut optimizer)?;
        let record = record_epoch(model, split, spec.objective, epoch, batch_loss)?;
        if !(batch_loss.is_finite() && record.train.loss.is_finite()) {
            // The weights are NaN or infinite from here on: nothing more to learn.
            history.diverged_at = Some(epoch);
            progress.diverged(epoch);
            break;
        }
        progress.epoch(&record, spec.epochs);
        history.epochs.push(record);
        if let Some(after_epoch) = hooks.after_epoch.as_mut() {
            after_epoch(epoch, model)?;
        }
    }
    Ok(history)
}

/// One pass over the mini-batches; returns their mean data loss. Each step's dropout masks
/// come from the store's own step count, which runs on across epochs.
fn run_epoch(
    model: &mut Mlp,
    batches: impl Iterator<Item = Dataset<f32>>,
    spec: &TrainSpec,
    optimizer: &mut dyn Optimizer<f32>,
) -> Result<f64> {
    let (mut loss_sum, mut count) = (0.0, 0);
    for batch in batches {
        loss_sum += train_step(model, &batch, spec, optimizer)?;
        count += 1;
    }
    Ok(loss_sum / count.max(1) as f64)
}

/// The record of `epoch`: evaluation-mode loss and accuracy on both sets.
fn record_epoch(
    model: &mut Mlp,
    split: &Split,
    objective: Objective,
    epoch: usize,
    batch_loss: f64,
) -> Result<EpochRecord> {
    Ok(EpochRecord {
        epoch,
        batch_loss,
        train: evaluate(model, &split.train, objective)?,
        test: evaluate(model, &split.test, objective)?,
    })
}

/// One mini-batch step; returns the batch's data loss.
fn train_step(
    model: &mut Mlp,
    batch: &Dataset<f32>,
    spec: &TrainSpec,
    optimizer: &mut dyn Optimizer<f32>,
) -> Result<f64> {
    let (gradients, loss) = {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut model.store, Mode::Train);
        let x = tape.constant(batch.features().clone());
        let output = model.network.try_forward(&mut context, x)?;
        let data_loss = loss(output, batch, spec.objective)?;
        let total = if spec.l2 > 0.0 {
            data_loss + nn::l2_penalty(&context, spec.l2)
        } else {
            data_loss
        };
        let gradients = context.gradients(&total.try_backward()?);
        (gradients, f64::from(data_loss.value().item()))
    }; // the tape is dropped here, so the optimizer updates the parameters in place
    optimizer.step(&mut model.store, &gradients)?;
    Ok(loss)
}

/// The data loss of `output` for `data`'s labels.
pub fn loss<'t>(
    output: Var<'t, f32>,
    data: &Dataset<f32>,
    objective: Objective,
) -> Result<Var<'t, f32>> {
    Ok(match objective {
        Objective::Classes => nn::try_cross_entropy(output, data.labels())?,
        Objective::Binary => {
            let targets = output.tape().constant(data.labels_as_column());
            nn::try_binary_cross_entropy_with_logits(output, targets)?
        }
    })
}

/// Evaluation-mode loss and accuracy of `model` on `data`, without recording gradients.
pub fn evaluate(model: &mut Mlp, data: &Dataset<f32>, objective: Objective) -> Result<Evaluation> {
    evaluate_in_mode(model, data, objective, Mode::Eval)
}

/// Loss and accuracy of `model` on `data` in `mode`, without recording gradients. In
/// [`Mode::Train`] dropout draws its masks (those of the store's current step) and batch norm
/// uses the batch's statistics (and updates its running ones): what evaluating without
/// switching to evaluation mode would do.
pub fn evaluate_in_mode(
    model: &mut Mlp,
    data: &Dataset<f32>,
    objective: Objective,
    mode: Mode,
) -> Result<Evaluation> {
    let tape = Tape::new();
    tape.no_grad(|| {
        let mut context = Context::new(&tape, &mut model.store, mode);
        let x = tape.constant(data.features().clone());
        let output = model.network.try_forward(&mut context, x)?;
        let loss = f64::from(loss(output, data, objective)?.value().item());
        let predictions = predict(&output.value(), objective);
        Ok(Evaluation {
            loss,
            accuracy: accuracy(&predictions, data.labels()),
        })
    })
}

/// The predicted class of each row of `output`.
pub fn predict(output: &tensor::Tensor<f32>, objective: Objective) -> Vec<usize> {
    match objective {
        Objective::Classes => output.argmax(1),
        Objective::Binary => output
            .to_vec()
            .iter()
            .map(|&logit| usize::from(logit > 0.0))
            .collect(),
    }
}

/// Fraction of predictions equal to their labels.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    correct as f64 / labels.len().max(1) as f64
}
