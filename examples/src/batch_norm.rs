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
//!
//! Besides the race to the loss threshold, the example measures the other parts of section 6:
//!
//! - **gamma and beta** after training ([`LayerState`]): every layer's gamma leaves its
//!   initial 1, most of all in the last batch-norm layer (mean gamma ~1.4 at the full size),
//!   whose z feed the sigmoids in front of the classifier; beta moves less (mean |beta| 0.02-0.07
//!   per layer). The network does use the freedom to give each layer's output another mean
//!   and variance than 0 and 1.
//! - **the running statistics**: after every epoch each batch-norm layer's running mean and
//!   variance are compared with the actual mean and variance of its input z over the whole
//!   training set, z computed in evaluation mode, as a prediction computes it. After a few
//!   epochs they stay within a few hundredths (of a standard deviation; of the variance):
//!   the noise that averaging 50-sample batch statistics with momentum 0.1 leaves
//!   ([`noise_floor`]), plus one systematic part, measured by running the final network in
//!   training mode batch by batch ([`BatchTarget`]). Training mode divides each batch by its
//!   own biased variance, so every batch's z_norm has unbiased variance b / (b - 1) = 1.02,
//!   more than the evaluation-mode z_norm; behind a batch-norm layer z therefore varies more
//!   in training mode (2-6% in layers 2-4, measured; not always growing with depth), the
//!   running variances record that larger variance, and evaluation, dividing by it, shrinks
//!   z_norm a little. The first layer, which no batch statistic precedes, shows no such
//!   difference.
//! - **why evaluation needs them**: the trained network evaluated with its running statistics
//!   reset to 0 and 1 (the layer's initial buffers) loses most of its accuracy: its z are not
//!   standardized (in layers 2 on, off centre by about one standard deviation, which is about
//!   0.4), so the activations see other inputs than the ones gamma and beta were learned for.
//! - **eps** ([`EpsilonDemo`]): on a unit whose z is the same for every sample of the batch
//!   (variance 0), batch norm with eps > 0 outputs exactly beta, and its input gradient is
//!   the finite gamma (dy - mean dy) / sqrt(eps); the formula with eps = 0 is 0 / 0 = NaN,
//!   outputs and gradients alike, which is why the library refuses eps = 0.
//! - **the evaluation-mode loss** on the whole training and test sets, the quantity the other
//!   examples plot. (The loss-threshold race keeps the mean mini-batch loss, the quantity the
//!   optimizer descends.) Does the batch-norm network's test loss rise late, as an
//!   overfitting network's does? Measured: it falls within the first few epochs, then stays
//!   on a plateau about as low as its minimum, jittering by 3-17% from epoch to epoch (SGD at
//!   learning rate 0.1 with momentum 0.9 on 50-digit batches). Its lowest epoch is a dip of
//!   that jitter and falls anywhere in the second half, so "the rise after the minimum" of
//!   single epochs (+0% to +70% over seeds) is mostly chance. Averaged over windows of a
//!   quarter of the run ([`LateRise`]) the end is 0-16% above the lowest window, with the
//!   test accuracy unchanged (within half a point); where it is above, the misclassified
//!   test digits' mean loss has grown with it: the network, which has fit its 1000 training
//!   digits, makes the same mistakes with more confidence (overconfidence, not lost
//!   accuracy). At the default seed of the full size the last epochs add a loss spike, with
//!   the training loss jumping together with the test loss: an unstable step, not
//!   overfitting. The rise is printed, plotted and counted as an observation, not asserted.

use std::fmt;
use std::path::PathBuf;

use autograd::Tape;
use nn::{Activation, BatchNorm1d, Context, Dataset, Init, Layer, Mode, ParamStore, Role};
use tensor::Tensor;

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{Split, digits_split};
use crate::model::{Mlp, MlpSpec};
use crate::plot::{Chart, Legend, Series, write_svg_grid};
use crate::report::{Table, epoch, epochs_to_show, number, percent, scientific};
use crate::train::{
    EpochRecord, Evaluation, History, Hooks, Objective, Progress, TrainSpec, accuracy, loss,
    predict, train, train_with_hooks,
};
use crate::{Config, Result, Size};

/// The training loss both networks must reach (mean mini-batch cross-entropy of an epoch).
/// Guessing among 10 digits scores ln 10 = 2.30; 0.1 means nearly every training digit is
/// classified with confidence.
pub const LOSS_THRESHOLD: f64 = 0.1;

/// Samples per training step.
pub const BATCH_SIZE: usize = 50;

/// The momentum of [`nn::BatchNorm1d`]'s running statistics (its default, which the network
/// uses): each batch's statistic gets weight 0.1, the running value 0.9.
pub const BN_MOMENTUM: f64 = 0.1;

/// [`nn::BatchNorm1d`]'s default eps, added to the variance before the square root.
pub const BN_EPS: f64 = 1e-5;

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

    /// The training of both networks: SGD with momentum, no penalty.
    pub fn training(&self) -> TrainSpec {
        TrainSpec {
            epochs: self.epochs,
            batch_size: BATCH_SIZE,
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

/// The mean, smallest and largest of some values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Their mean.
    pub mean: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (NaNs for none).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Spread {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        Spread {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min,
            max,
        }
    }
}

/// One batch-norm layer of the trained-so-far network: its learned gamma and beta, and how
/// far its running statistics are from the statistics of its input z over the training set.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerState {
    /// gamma over the layer's units.
    pub gamma: Spread,
    /// beta over the layer's units.
    pub beta: Spread,
    /// Mean over units of |gamma - 1|: how far gamma has moved from its initial 1.
    pub gamma_shift: f64,
    /// Mean over units of |beta|: how far beta has moved from its initial 0.
    pub beta_shift: f64,
    /// Mean over units of |running mean - mean of z| / standard deviation of z, z being the
    /// layer's input over the whole training set in evaluation mode. In units of the
    /// standard deviation because that is the error it makes in z_norm.
    pub mean_error: f64,
    /// Mean over units of |running variance / variance of z - 1| (z_norm is off by the square
    /// root of this ratio).
    pub var_error: f64,
    /// The mean error that averaging the batch means with momentum [`BN_MOMENTUM`] leaves even
    /// with weights that no longer change ([`noise_floor`]), in the same unit.
    pub mean_floor: f64,
    /// The same for the variance, from the kurtosis of each unit's z (mean over units).
    pub var_floor: f64,
    /// Mean over units of |mean of z| / standard deviation of z: how far off centre z_norm
    /// would be with the running mean at its initial 0.
    pub z_offset: f64,
    /// Mean over units of the standard deviation of z: z_norm's with the running variance at
    /// its initial 1.
    pub z_std: f64,
}

/// The test set's loss split by digit: those classified right and those classified wrong.
/// The test loss is `(1 - error_rate) * right_loss + error_rate * wrong_loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSplit {
    /// Fraction of test digits classified wrong.
    pub error_rate: f64,
    /// Mean cross-entropy of the digits classified wrong (0 if none): large when the network
    /// is confident in its wrong answers.
    pub wrong_loss: f64,
    /// Mean cross-entropy of the digits classified right.
    pub right_loss: f64,
}

impl LossSplit {
    /// The misclassified digits' part of the test loss.
    pub fn wrong_part(&self) -> f64 {
        self.error_rate * self.wrong_loss
    }

    /// The correctly classified digits' part of the test loss.
    pub fn right_part(&self) -> f64 {
        (1.0 - self.error_rate) * self.right_loss
    }
}

/// The batch-norm network after one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochState {
    /// The epoch (0: before training).
    pub epoch: usize,
    /// Each batch-norm layer, first to last.
    pub layers: Vec<LayerState>,
    /// Its evaluation-mode test loss, split by digit.
    pub test: LossSplit,
}

/// The trained batch-norm network on the test set, with its running statistics and with them
/// reset to the layer's initial 0 (mean) and 1 (variance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResetCheck {
    /// As trained.
    pub trained: Evaluation,
    /// On a copy of the store whose running statistics are reset.
    pub reset: Evaluation,
}

/// Epsilon's role, shown on one [`nn::BatchNorm1d`] (f64) applied in training mode to a batch
/// in which one unit's z is the same for every sample, so its batch variance is exactly 0.
#[derive(Clone, Debug, PartialEq)]
pub struct EpsilonDemo {
    /// The constant unit's z, in every sample.
    pub constant: f64,
    /// The other unit's z, one per sample (so that the batch is an ordinary one).
    pub varying: Vec<f64>,
    /// The constant unit's gamma.
    pub gamma: f64,
    /// The constant unit's beta.
    pub beta: f64,
    /// The eps of the layer (the library's default).
    pub eps: f64,
    /// The output gradient fed to the constant unit, one per sample.
    pub output_gradient: Vec<f64>,
    /// The constant unit's outputs with eps: (0 / sqrt(0 + eps)) * gamma + beta = beta.
    pub output: Vec<f64>,
    /// The gradient of the constant unit's inputs with eps.
    pub input_gradient: Vec<f64>,
    /// Its closed form for a unit of variance 0 (z_norm = 0):
    /// `gamma * (dy - mean(dy)) / sqrt(eps)`.
    pub closed_form_gradient: Vec<f64>,
    /// The gradients of gamma (`sum(dy * z_norm)` = 0) and beta (`sum(dy)`).
    pub parameter_gradients: (f64, f64),
    /// What `BatchNorm1d::with_eps(0.0)` answers.
    pub refusal: String,
    /// The same formula with eps = 0, composed of tape ops: (0 / sqrt(0)) * gamma + beta.
    pub output_without_eps: Vec<f64>,
    /// Its input gradient.
    pub gradient_without_eps: Vec<f64>,
}

impl EpsilonDemo {
    /// The largest |output - beta| with eps (0: the output is beta, exactly).
    pub fn output_deviation(&self) -> f64 {
        self.output
            .iter()
            .map(|y| (y - self.beta).abs())
            .fold(0.0, f64::max)
    }

    /// The largest |input gradient - closed form| relative to the closed form's largest value.
    /// NaN if any gradient is not finite.
    pub fn gradient_deviation(&self) -> f64 {
        let scale = self
            .closed_form_gradient
            .iter()
            .map(|g| g.abs())
            .fold(0.0, f64::max);
        let worst = self
            .input_gradient
            .iter()
            .zip(&self.closed_form_gradient)
            .map(|(g, c)| {
                if g.is_finite() {
                    (g - c).abs()
                } else {
                    f64::NAN
                }
            })
            .fold(0.0, |acc: f64, d| if d.is_nan() { d } else { acc.max(d) });
        worst / scale
    }

    /// The fraction of the constant unit's outputs and input gradients that are NaN with
    /// eps = 0.
    pub fn nan_fraction_without_eps(&self) -> f64 {
        let values: Vec<f64> = self
            .output_without_eps
            .iter()
            .chain(&self.gradient_without_eps)
            .copied()
            .collect();
        values.iter().filter(|v| v.is_nan()).count() as f64 / values.len() as f64
    }
}

/// Means over a window of consecutive epochs of the batch-norm network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowMeans {
    /// The window's first epoch.
    pub start: usize,
    /// Mean evaluation-mode test loss.
    pub test_loss: f64,
    /// Mean evaluation-mode training loss.
    pub train_loss: f64,
    /// Mean test accuracy.
    pub test_accuracy: f64,
    /// Mean mean loss of the misclassified test digits.
    pub wrong_loss: f64,
}

/// The batch-norm network's test-loss minimum and what happened after it, epoch by epoch and
/// smoothed over windows of a quarter of the run (the test loss jitters from epoch to epoch,
/// so a single epoch's minimum is partly a dip of the jitter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LateRise {
    /// The epoch with the lowest evaluation-mode test loss.
    pub best: EpochRecord,
    /// The last epoch.
    pub last: EpochRecord,
    /// The test loss split at the minimum.
    pub best_split: LossSplit,
    /// The test loss split at the end.
    pub last_split: LossSplit,
    /// Epochs per window.
    pub window: usize,
    /// The window (of epochs from 1 on) with the lowest mean test loss.
    pub low: WindowMeans,
    /// The last window.
    pub end: WindowMeans,
    /// Median over the second half of the run of |test loss / previous epoch's - 1|.
    pub jitter: f64,
}

impl LateRise {
    /// Relative rise of the test loss from its minimum to the end.
    pub fn rise(&self) -> f64 {
        self.last.test.loss / self.best.test.loss - 1.0
    }

    /// Relative rise of the window-mean test loss from its lowest window to the last.
    pub fn smoothed_rise(&self) -> f64 {
        self.end.test_loss / self.low.test_loss - 1.0
    }

    /// Test accuracy lost from the lowest window to the last (window means; negative:
    /// gained).
    pub fn smoothed_accuracy_drop(&self) -> f64 {
        self.low.test_accuracy - self.end.test_accuracy
    }

    /// Relative change of the misclassified digits' mean loss from the lowest window to the
    /// last: how much more confident the mistakes became.
    pub fn wrong_loss_rise(&self) -> f64 {
        self.end.wrong_loss / self.low.wrong_loss - 1.0
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
    /// The batch-norm network after each epoch (index: the epoch, 0 before training).
    pub states: Vec<EpochState>,
    /// What each batch-norm layer's running statistics average, on the trained network.
    pub batch_targets: Vec<BatchTarget>,
    /// The trained batch-norm network with its running statistics reset.
    pub reset: ResetCheck,
    /// Epsilon on a constant unit.
    pub epsilon: EpsilonDemo,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

impl Summary {
    /// The batch-norm layers after the last epoch.
    pub fn final_layers(&self) -> &[LayerState] {
        self.states.last().map_or(&[], |s| &s.layers)
    }

    /// The batch-norm network's test-loss minimum and the end of its training.
    pub fn late_rise(&self) -> Option<LateRise> {
        let history = &self.batch_norm.history;
        let (best, last) = (history.best_test_epoch()?, history.last()?);
        // Epochs 1..=E with their states (epoch 0, the untrained network, is no candidate).
        let trained: Vec<(&EpochRecord, &EpochState)> = history
            .epochs
            .iter()
            .zip(&self.states)
            .filter(|(r, _)| r.epoch >= 1)
            .collect();
        let window = (trained.len() / 4).max(1);
        let means = |run: &[(&EpochRecord, &EpochState)]| {
            let mean = |f: &dyn Fn(&EpochRecord, &EpochState) -> f64| {
                run.iter().map(|(r, s)| f(r, s)).sum::<f64>() / run.len() as f64
            };
            WindowMeans {
                start: run[0].0.epoch,
                test_loss: mean(&|r, _| r.test.loss),
                train_loss: mean(&|r, _| r.train.loss),
                test_accuracy: mean(&|r, _| r.test.accuracy),
                wrong_loss: mean(&|_, s| s.test.wrong_loss),
            }
        };
        let windows: Vec<WindowMeans> = trained.windows(window).map(means).collect();
        let low = *windows
            .iter()
            .min_by(|a, b| a.test_loss.total_cmp(&b.test_loss))?;
        let end = *windows.last()?;
        let second_half = &trained[trained.len() / 2..];
        let mut changes: Vec<f64> = second_half
            .windows(2)
            .map(|pair| (pair[1].0.test.loss / pair[0].0.test.loss - 1.0).abs())
            .collect();
        changes.sort_by(f64::total_cmp);
        Some(LateRise {
            best: *best,
            last: *last,
            best_split: self.states.get(best.epoch)?.test,
            last_split: self.states.get(last.epoch)?.test,
            window,
            low,
            end,
            jitter: changes.get(changes.len() / 2).copied().unwrap_or(f64::NAN),
        })
    }

    /// What this example claims, checked on this run.
    ///
    /// Next to each bound: where it comes from, and the range measured over seeds 1-20 at the
    /// quick size and seeds 1-5 and 7 (the default) at the full size.
    pub fn claims(&self) -> Vec<Claim> {
        let never = (self.settings.epochs + 1) as f64;
        let epochs = |run: &Run| run.epochs_to_threshold().map_or(never, |e| e as f64);
        let accuracy = self
            .batch_norm
            .history
            .last()
            .map_or(f64::NAN, |r| r.test.accuracy);
        let layers = self.final_layers();
        // The claims are about every layer: the least-moved gamma, the worst running
        // statistic. (`f64::min`/`max` skip the NaN start; no layers leave NaN, which fails.)
        let least = |f: &dyn Fn(&LayerState) -> f64| layers.iter().map(f).fold(f64::NAN, f64::min);
        let worst = |f: &dyn Fn(&LayerState) -> f64| layers.iter().map(f).fold(f64::NAN, f64::max);
        let targets = &self.batch_targets;
        let deeper_inflation = targets
            .iter()
            .skip(1)
            .map(|t| t.var_inflation)
            .fold(f64::NAN, f64::min);
        let worst_tracking = targets
            .iter()
            .zip(layers)
            .map(|(t, l)| (t.mean_error / l.mean_floor).max(t.var_error / l.var_floor))
            .fold(f64::NAN, f64::max);
        let rise = self.late_rise();
        let eps = &self.epsilon;
        vec![
            // Measured 3.10x-5.17x quick, 4.88x-7.20x full: the plain sigmoid network's plateau
            // (slope <= 1/4 per layer) lasts for most of the run.
            Claim::above(
                "fewer_epochs",
                "With batch norm the deep sigmoid network reaches the loss threshold in far fewer epochs",
                "plain epochs / batch-norm epochs",
                epochs(&self.plain) / epochs(&self.batch_norm),
                EPOCH_RATIO_ABOVE,
                Unit::Ratio,
            ),
            // Measured 95.0%-97.9% quick, 94.6%-97.4% full.
            Claim::above(
                "eval_accuracy",
                "Evaluated with its running statistics, the batch-norm network classifies the test digits",
                "test accuracy",
                accuracy,
                EVAL_ACCURACY_ABOVE,
                Unit::Percent,
            ),
            // gamma's gradient is sum(dy * z_norm), not zero-mean noise: training moves it
            // systematically. Measured 0.069-0.090 quick, 0.047-0.064 full (wider layers move
            // each unit's gamma less); the bound is half the full size's smallest.
            Claim::above(
                "gamma_moves",
                "Training moves every layer's gamma away from its initial 1: the network uses the freedom gamma gives",
                "least layer mean |gamma - 1|",
                least(&|l| l.gamma_shift),
                GAMMA_SHIFT_ABOVE,
                Unit::Decimals(3),
            ),
            // The last hidden layer feeds the classifier: with the training set fit, the
            // cross-entropy still rewards larger margins, and a larger gamma spreads the z its
            // sigmoid sees. Measured mean gamma 1.67-1.70 quick, 1.39-1.41 full (the least of
            // the other layers' 1.04-1.07).
            Claim::above(
                "last_gamma_grows",
                "The last batch-norm layer's gamma grows well above 1",
                "its mean gamma",
                layers.last().map_or(f64::NAN, |l| l.gamma.mean),
                LAST_GAMMA_ABOVE,
                Unit::Decimals(3),
            ),
            // The noise floor of an average of batch means with momentum 0.1 is 0.025 std
            // ([`noise_floor`]); the rest is the difference between the training-mode z the
            // running mean averages and the evaluation-mode z it is compared with. 0.1 std is
            // four floors. Measured 0.022-0.070 quick, 0.010-0.035 full.
            Claim::below(
                "running_mean_converges",
                "Each running mean ends within a small fraction of a standard deviation of the mean of its input z over the training set",
                "worst layer mean |error| / std of z",
                worst(&|l| l.mean_error),
                RUNNING_MEAN_ERROR_BELOW,
                Unit::Decimals(3),
            ),
            // The variance's noise floor (0.042-0.055, from each unit's kurtosis) plus the
            // training-mode inflation of layers 2-4 (the claims below; at most 6.1%) is at most
            // 0.12; 0.15 leaves a quarter on top. Measured 0.043-0.066 quick, 0.049-0.081 full.
            Claim::below(
                "running_var_converges",
                "... and each running variance within a small relative error of the variance of its input z",
                "worst layer mean |running var / var - 1|",
                worst(&|l| l.var_error),
                RUNNING_VAR_ERROR_BELOW,
                Unit::Decimals(3),
            ),
            // Against the quantity they average (the training-mode batch statistics of the
            // final network) only the moving average's noise remains: within a few noise
            // floors. Measured 0.85-1.44 floors quick, 0.50-2.34 full (2.34 at the seed whose
            // last epochs have a loss spike, so the weights moved fast just before the end).
            Claim::below(
                "running_stats_track_batches",
                "Against the training-mode batch statistics they average, the running statistics are off by the noise of a momentum average only",
                "worst layer error / noise floor",
                worst_tracking,
                TRACKING_FLOORS_BELOW,
                Unit::Ratio,
            ),
            // Training mode divides each batch by its own biased variance, so z_norm's unbiased
            // variance in a batch is b / (b - 1) = 1.020, and the next layer's z spreads more
            // than in evaluation mode; its running variance records the larger spread, and
            // evaluation, dividing by it, gives z_norm a variance below 1, which adds to the
            // next layer's difference. Measured least inflation in layers 2-4 of 2.3%-5.5%
            // quick, 2.4%-4.4% full; the bound is half of b / (b - 1) - 1.
            Claim::above(
                "training_mode_inflates_variance",
                "Behind a batch-norm layer z varies more in training mode than in evaluation mode (and the running variances record the training-mode value)",
                "least inflation, layers 2 on",
                deeper_inflation,
                INFLATION_ABOVE,
                Unit::Percent,
            ),
            // The control: the first layer's z = W x does not depend on any batch statistic.
            // Measured |inflation| at most 0.42% quick, 0.33% full (batch sampling noise).
            Claim::below(
                "first_layer_not_inflated",
                "... while the first layer's input, which no batch statistic touches, varies the same in both modes",
                "|inflation| of layer 1",
                targets.first().map_or(f64::NAN, |t| t.var_inflation.abs()),
                FIRST_INFLATION_BELOW,
                Unit::Percent,
            ),
            // With the statistics reset, z_norm = z, which in layers 2 on is about one standard
            // deviation off centre with a standard deviation of about 0.4: not the inputs gamma
            // and beta were learned for. "Most" of ~96%: above 50 points. Measured 60.5-88.6
            // points quick, 67.9-85.7 full.
            Claim::above(
                "reset_statistics_fail",
                "With its running statistics reset to 0 and 1 the trained network loses most of its test accuracy: evaluation needs the statistics gathered in training",
                "accuracy lost",
                self.reset.trained.accuracy - self.reset.reset.accuracy,
                RESET_ACCURACY_LOSS_ABOVE,
                Unit::Percent,
            ),
            // Exact in floating point: every z - mu of the constant unit is exactly 0, and
            // 0 / sqrt(eps) * gamma + beta is beta. The same at every seed (no randomness).
            Claim::below(
                "eps_constant_unit_is_beta",
                "With eps > 0 a unit whose z is the same in every sample outputs exactly beta",
                "largest |output - beta|",
                eps.output_deviation(),
                EXACT_BELOW,
                Unit::Scientific,
            ),
            // The closed form with z_norm = 0 in f64; measured 1.1e-16 (rounding).
            Claim::below(
                "eps_gradient_finite",
                "... and its input gradient is finite: gamma (dy - mean dy) / sqrt(eps)",
                "largest deviation from that closed form",
                eps.gradient_deviation(),
                CLOSED_FORM_BELOW,
                Unit::Scientific,
            ),
            // 0 / sqrt(0) is 0 / 0 = NaN, and NaN propagates through every later op and the
            // backward pass. Measured 100%.
            Claim::above(
                "eps_zero_is_nan",
                "With eps = 0 the same formula is 0 / 0: every output and input gradient of that unit is NaN",
                "NaN outputs and gradients",
                eps.nan_fraction_without_eps(),
                ALL_NAN_ABOVE,
                Unit::Percent,
            ),
            // An observation: the single-epoch test loss jitters by 3%-17% from epoch to epoch
            // (median, second half), so where its lowest epoch falls, and the rise after it, is
            // largely chance. Held at 9 of 20 quick seeds (+0% to +35%) and 3 of 6 full (+2% to
            // +70%, the +70% at a seed with a loss spike in its last epochs).
            Claim::above(
                "test_loss_rises_late",
                "The batch-norm network's evaluation-mode test loss ends above its lowest epoch",
                "rise to the end",
                rise.map_or(f64::NAN, |r| r.rise()),
                LATE_RISE_ABOVE,
                Unit::Change,
            )
            .observation(),
            // Once the training set is fit the decision boundaries move little; 1 point is 8 of
            // the 797 test digits. Measured -0.2 to +0.2 points quick, -0.1 to +0.4 full.
            Claim::below(
                "late_accuracy_holds",
                "After the test loss's lowest stretch the test accuracy stays where it was (window means over a quarter of the run)",
                "accuracy lost",
                rise.map_or(f64::NAN, |r| r.smoothed_accuracy_drop()),
                LATE_ACCURACY_DROP_BELOW,
                Unit::Percent,
            ),
            // An observation: where the smoothed test loss rises, the misclassified digits'
            // mean loss rises with it. Held at 6 of 20 quick seeds (-1% to +22%) and 3 of 6 full
            // (+0% to +14%); at the others the lowest window is the last, or nearly.
            Claim::above(
                "mistakes_grow_confident",
                "... while the misclassified test digits' mean loss grows: the same mistakes, made with more confidence",
                "rise of their mean loss",
                rise.map_or(f64::NAN, |r| r.wrong_loss_rise()),
                WRONG_LOSS_RISE_ABOVE,
                Unit::Change,
            )
            .observation(),
        ]
    }
}

/// How many times fewer epochs batch norm needs at least.
pub const EPOCH_RATIO_ABOVE: f64 = 2.0;
/// The evaluation-mode test accuracy of the trained batch-norm network is above this.
pub const EVAL_ACCURACY_ABOVE: f64 = 0.9;
/// Every layer's mean |gamma - 1| is above this at the end.
pub const GAMMA_SHIFT_ABOVE: f64 = 0.025;
/// The last batch-norm layer's mean gamma is above this at the end.
pub const LAST_GAMMA_ABOVE: f64 = 1.2;
/// Every layer's final running mean is off by less than this many standard deviations of z
/// (mean over units).
pub const RUNNING_MEAN_ERROR_BELOW: f64 = 0.1;
/// Every layer's final running variance is off by less than this fraction (mean over units).
pub const RUNNING_VAR_ERROR_BELOW: f64 = 0.15;
/// Against the training-mode batch statistics, the running statistics are off by less than
/// this many noise floors.
pub const TRACKING_FLOORS_BELOW: f64 = 3.0;
/// Behind a batch-norm layer the training-mode variance of z exceeds the evaluation-mode one
/// by more than this fraction.
pub const INFLATION_ABOVE: f64 = 0.01;
/// The first layer's training-mode and evaluation-mode variances differ by less than this
/// fraction.
pub const FIRST_INFLATION_BELOW: f64 = 0.01;
/// Resetting the running statistics costs more test accuracy than this.
pub const RESET_ACCURACY_LOSS_ABOVE: f64 = 0.5;
/// A number that must be exactly 0 is below this.
pub const EXACT_BELOW: f64 = 1e-12;
/// The relative deviation from a closed form, in f64, is below this.
pub const CLOSED_FORM_BELOW: f64 = 1e-9;
/// All (more than 99.9%) of the values are NaN.
pub const ALL_NAN_ABOVE: f64 = 0.999;
/// The observed late rise of the test loss is above this.
pub const LATE_RISE_ABOVE: f64 = 0.1;
/// The window-mean test accuracy falls less than this after the lowest test-loss window.
pub const LATE_ACCURACY_DROP_BELOW: f64 = 0.01;
/// The observed rise of the misclassified digits' mean loss is above this.
pub const WRONG_LOSS_RISE_ABOVE: f64 = 0.05;

/// Trains the network with and without batch norm and plots both.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let split = digits_split(&config.data_dir, settings.train_count, settings.seed)?;
    let plain = {
        // The same seed: both networks start from the same dense weights.
        let mut model = settings.network(false).build(settings.seed)?;
        let progress = Progress::new("plain", config.progress, settings.epochs, 15);
        let history = train(&mut model, &split, &settings.training(), &progress)?;
        Run {
            name: "plain",
            history,
        }
    };
    let mut model = settings.network(true).build(settings.seed)?;
    let (history, states) = train_observed(
        &mut model,
        &split,
        &settings.training(),
        settings.depth,
        config.progress,
    )?;
    let batch_norm = Run {
        name: "batch norm",
        history,
    };
    let trained = batch_norm
        .history
        .last()
        .map(|r| r.test)
        .ok_or("batch norm: no epoch recorded")?;
    let reset = ResetCheck {
        trained,
        reset: evaluate_with_reset_statistics(&model, &split.test)?,
    };
    let batch_targets = batch_targets(&model, &split, settings.depth)?;
    let mut summary = Summary {
        settings,
        plain,
        batch_norm,
        states,
        batch_targets,
        reset,
        epsilon: epsilon_demo()?,
        plots: Vec::new(),
    };
    summary.plots.push(plot(config, &summary)?);
    Ok(summary)
}

/// [`train`], measuring after every epoch what its records do not: the batch-norm layers'
/// gamma, beta and running statistics against the statistics of their inputs, and the test
/// loss split by digit (through [`train_with_hooks`]'s `after_epoch`, so the training is
/// `train`'s exactly; a test below checks it bit for bit).
fn train_observed(
    model: &mut Mlp,
    split: &Split,
    spec: &TrainSpec,
    depth: usize,
    progress: bool,
) -> Result<(History, Vec<EpochState>)> {
    let mut states = vec![observe_epoch(model, split, spec, depth, 0, f64::NAN)?.1];
    let progress = Progress::new("batch norm", progress, spec.epochs, 15);
    let mut observe = |epoch: usize, model: &mut Mlp| -> Result<()> {
        states.push(observe_epoch(model, split, spec, depth, epoch, f64::NAN)?.1);
        Ok(())
    };
    let hooks = Hooks {
        epoch_data: None,
        after_epoch: Some(&mut observe),
    };
    let history = train_with_hooks(model, split, spec, &progress, hooks)?;
    Ok((history, states))
}

/// The record of `epoch` (evaluation-mode loss and accuracy on both sets, computed as
/// `train::evaluate` computes them) and the state of the batch-norm layers.
fn observe_epoch(
    model: &mut Mlp,
    split: &Split,
    spec: &TrainSpec,
    depth: usize,
    epoch: usize,
    batch_loss: f64,
) -> Result<(EpochRecord, EpochState)> {
    let evaluation = |output: &Tensor<f32>, loss: f64, data: &Dataset<f32>| Evaluation {
        loss,
        accuracy: accuracy(&predict(output, spec.objective), data.labels()),
    };
    // Each hidden layer's z over the whole training set, in evaluation mode: the dense
    // layers `hidden1`, `hidden2`, ... (model.rs's names), each after the previous layers'
    // batch norm on its running statistics, as a prediction computes it.
    let mut inputs: Vec<Tensor<f32>> = Vec::new();
    let (train, test, per_example, test_output) = {
        let tape = Tape::new();
        tape.no_grad(|| -> Result<_> {
            let mut context = Context::new(&tape, &mut model.store, Mode::Eval);
            let x = tape.constant(split.train.features().clone());
            let output = model
                .network
                .try_forward_observed(&mut context, x, |layer, z| {
                    if layer.name().starts_with("hidden") {
                        inputs.push(z.value());
                    }
                })?;
            let train_loss = f64::from(loss(output, &split.train, spec.objective)?.value().item());
            let train = evaluation(&output.value(), train_loss, &split.train);
            let x = tape.constant(split.test.features().clone());
            let output = model.network.try_forward(&mut context, x)?;
            let test_loss = f64::from(loss(output, &split.test, spec.objective)?.value().item());
            let test = evaluation(&output.value(), test_loss, &split.test);
            let per_example = nn::try_cross_entropy_per_example(output, split.test.labels())?
                .value()
                .to_vec();
            Ok((train, test, per_example, output.value()))
        })?
    };
    if inputs.len() != depth {
        return Err(format!("expected {depth} hidden layers, observed {}", inputs.len()).into());
    }
    let layers = inputs
        .iter()
        .enumerate()
        .map(|(i, z)| layer_state(&model.store, i + 1, z, split.train.len()))
        .collect::<Result<Vec<_>>>()?;
    let predictions = predict(&test_output, spec.objective);
    let record = EpochRecord {
        epoch,
        batch_loss,
        train,
        test,
    };
    let state = EpochState {
        epoch,
        layers,
        test: loss_split(&per_example, &predictions, split.test.labels()),
    };
    Ok((record, state))
}

/// The values of the store's entry `name`, in f64.
fn values(store: &ParamStore<f32>, name: &str) -> Result<Vec<f64>> {
    let id = store
        .find(name)
        .ok_or_else(|| format!("the network has no parameter '{name}'"))?;
    Ok(store
        .value(id)
        .to_vec()
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Batch-norm layer `bn{layer}` (model.rs's name) against its input `z` ([samples, units]).
fn layer_state(
    store: &ParamStore<f32>,
    layer: usize,
    z: &Tensor<f32>,
    train_count: usize,
) -> Result<LayerState> {
    let name = |entry: &str| format!("bn{layer}.{entry}");
    let gamma = values(store, &name("weight"))?;
    let beta = values(store, &name("bias"))?;
    let running_mean = values(store, &name("running_mean"))?;
    let running_var = values(store, &name("running_var"))?;
    let moments = column_moments(z);
    let units = moments.len() as f64;
    let mean_of = |f: &dyn Fn(usize) -> f64| (0..moments.len()).map(f).sum::<f64>() / units;
    let floor = noise_floor(BN_MOMENTUM, BATCH_SIZE, train_count);
    Ok(LayerState {
        gamma: Spread::of(&gamma),
        beta: Spread::of(&beta),
        gamma_shift: mean_of(&|j| (gamma[j] - 1.0).abs()),
        beta_shift: mean_of(&|j| beta[j].abs()),
        mean_error: mean_of(&|j| {
            (running_mean[j] - moments[j].mean).abs() / moments[j].variance.sqrt()
        }),
        var_error: mean_of(&|j| (running_var[j] / moments[j].variance - 1.0).abs()),
        mean_floor: floor.mean,
        var_floor: mean_of(&|j| floor.variance_for_kurtosis(moments[j].kurtosis)),
        z_offset: mean_of(&|j| moments[j].mean.abs() / moments[j].variance.sqrt()),
        z_std: mean_of(&|j| moments[j].variance.sqrt()),
    })
}

/// What the running statistics of one batch-norm layer average, measured on the trained
/// network with its weights frozen: its input z in training mode (the earlier layers on their
/// batch statistics), batch by batch over the training set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchTarget {
    /// Mean over units of |running mean - mean of the batch means| / std of the
    /// evaluation-mode z.
    pub mean_error: f64,
    /// Mean over units of |running variance / mean of the unbiased batch variances - 1|.
    pub var_error: f64,
    /// Mean over units of (mean of the unbiased batch variances / variance of the
    /// evaluation-mode z - 1), signed: how much more the training-mode z varies.
    pub var_inflation: f64,
}

/// Each batch-norm layer's [`BatchTarget`]: the trained network run in training mode (on a
/// copy of its store, whose running statistics the run moves and which is then dropped) over
/// the training set in batches of [`BATCH_SIZE`].
fn batch_targets(model: &Mlp, split: &Split, depth: usize) -> Result<Vec<BatchTarget>> {
    let mut store = model.store.clone();
    // Evaluation mode first, while the copy's running statistics are still the trained ones.
    let eval = hidden_inputs(model, &mut store, Mode::Eval, &split.train)?;
    let units = eval.first().map_or(0, |z| z.dims()[1]);
    // Sums over the batches of each unit's batch mean and unbiased batch variance.
    let mut sums = vec![vec![(0.0, 0.0); units]; depth];
    let mut batches = 0;
    for batch in split.train.batches(BATCH_SIZE) {
        let inputs = hidden_inputs(model, &mut store, Mode::Train, &batch)?;
        for (layer, z) in inputs.iter().enumerate() {
            let b = z.dims()[0] as f64;
            for (sum, m) in sums[layer].iter_mut().zip(column_moments(z)) {
                sum.0 += m.mean;
                sum.1 += m.variance * b / (b - 1.0);
            }
        }
        batches += 1;
    }
    let count = batches as f64;
    (0..depth)
        .map(|layer| {
            let name = |entry: &str| format!("bn{}.{entry}", layer + 1);
            let running_mean = values(&model.store, &name("running_mean"))?;
            let running_var = values(&model.store, &name("running_var"))?;
            let moments = column_moments(&eval[layer]);
            let per_unit = |f: &dyn Fn(usize, f64, f64) -> f64| {
                sums[layer]
                    .iter()
                    .enumerate()
                    .map(|(j, &(mean, var))| f(j, mean / count, var / count))
                    .sum::<f64>()
                    / units as f64
            };
            Ok(BatchTarget {
                mean_error: per_unit(&|j, mean, _| {
                    (running_mean[j] - mean).abs() / moments[j].variance.sqrt()
                }),
                var_error: per_unit(&|j, _, var| (running_var[j] / var - 1.0).abs()),
                var_inflation: per_unit(&|j, _, var| var / moments[j].variance - 1.0),
            })
        })
        .collect()
}

/// The z of every hidden layer (the outputs of the dense layers `hidden1`, `hidden2`, ...,
/// model.rs's names) for `data`, with `store` in `mode`, recorded on nothing.
fn hidden_inputs(
    model: &Mlp,
    store: &mut ParamStore<f32>,
    mode: Mode,
    data: &Dataset<f32>,
) -> Result<Vec<Tensor<f32>>> {
    let tape = Tape::new();
    let mut inputs = Vec::new();
    tape.no_grad(|| -> Result<()> {
        let mut context = Context::new(&tape, store, mode);
        let x = tape.constant(data.features().clone());
        model
            .network
            .try_forward_observed(&mut context, x, |layer, z| {
                if layer.name().starts_with("hidden") {
                    inputs.push(z.value());
                }
            })?;
        Ok(())
    })?;
    Ok(inputs)
}

/// Mean, variance (divided by the count: the training set is the whole population here) and
/// kurtosis of one unit's values.
#[derive(Clone, Copy, Debug)]
struct Moments {
    mean: f64,
    variance: f64,
    kurtosis: f64,
}

/// The moments of each column of a [rows, columns] tensor, in f64.
fn column_moments(z: &Tensor<f32>) -> Vec<Moments> {
    let (rows, columns) = (z.dims()[0], z.dims()[1]);
    let values = z.to_vec();
    (0..columns)
        .map(|j| {
            let column = || (0..rows).map(|i| f64::from(values[i * columns + j]));
            let mean = column().sum::<f64>() / rows as f64;
            let central = |power: i32| column().map(|v| (v - mean).powi(power)).sum::<f64>();
            let variance = central(2) / rows as f64;
            let kurtosis = central(4) / rows as f64 / (variance * variance);
            Moments {
                mean,
                variance,
                kurtosis,
            }
        })
        .collect()
}

/// The error the running statistics keep even when the network has stopped changing: each
/// is an exponential moving average (weight `momentum` on the newest batch) of noisy batch
/// statistics, so it scatters around the training set's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseFloor {
    /// Expected |running mean - mean| / standard deviation.
    pub mean: f64,
    /// sqrt(momentum / (2 - momentum)) * sqrt((N - b) / (N - 1)): the factor by which the
    /// average shrinks the standard deviation of one batch's statistic.
    pub shrink: f64,
    /// Samples per batch.
    pub batch_size: usize,
}

impl NoiseFloor {
    /// Expected |running variance / variance - 1| for a unit whose z has kurtosis `kurtosis`
    /// (3 for a normal distribution): the unbiased variance of b samples has relative variance
    /// (kurtosis - 1) / b + 2 / (b (b - 1)).
    pub fn variance_for_kurtosis(&self, kurtosis: f64) -> f64 {
        let b = self.batch_size as f64;
        let relative = ((kurtosis - 1.0) / b + 2.0 / (b * (b - 1.0))).sqrt();
        MEAN_ABS_OF_NORMAL * self.shrink * relative
    }
}

/// E|X| / std(X) for a normal X: sqrt(2 / pi).
const MEAN_ABS_OF_NORMAL: f64 = 0.797_884_560_802_865_4;

/// The running statistics' noise floor for batches of `batch_size` drawn without replacement
/// from `train_count` samples. In the steady state an exponential moving average
/// `r <- (1 - m) r + m x` of independent values of variance s² has variance
/// `s² m / (2 - m)`; a batch mean of b of N samples has variance
/// `sigma² / b * (N - b) / (N - 1)`; batch statistics are near normal (a sum of 50 terms), so
/// the mean absolute error is sqrt(2 / pi) times its standard deviation.
pub fn noise_floor(momentum: f64, batch_size: usize, train_count: usize) -> NoiseFloor {
    let (b, n) = (batch_size as f64, train_count as f64);
    let shrink = (momentum / (2.0 - momentum)).sqrt() * ((n - b) / (n - 1.0)).sqrt();
    NoiseFloor {
        mean: MEAN_ABS_OF_NORMAL * shrink / b.sqrt(),
        shrink,
        batch_size,
    }
}

/// The test loss split into the digits classified right and wrong.
fn loss_split(per_example: &[f32], predictions: &[usize], labels: &[usize]) -> LossSplit {
    let (mut wrong, mut right) = (Vec::new(), Vec::new());
    for ((&l, &p), &y) in per_example.iter().zip(predictions).zip(labels) {
        if p == y {
            right.push(f64::from(l));
        } else {
            wrong.push(f64::from(l));
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    LossSplit {
        error_rate: wrong.len() as f64 / labels.len().max(1) as f64,
        wrong_loss: mean(&wrong),
        right_loss: mean(&right),
    }
}

/// Loss and accuracy of the trained network on `data` with every running mean set to 0 and
/// every running variance to 1 (batch norm's initial buffers), on a copy of its store.
fn evaluate_with_reset_statistics(model: &Mlp, data: &Dataset<f32>) -> Result<Evaluation> {
    let mut store = model.store.clone();
    let running: Vec<_> = store
        .iter()
        .filter(|(_, _, role, _)| *role == Role::RunningStatistic)
        .map(|(id, name, _, value)| (id, name.ends_with(".running_mean"), value.shape().clone()))
        .collect();
    for (id, is_mean, shape) in running {
        let value = if is_mean {
            Tensor::zeros(shape)
        } else {
            Tensor::ones(shape)
        };
        store.set_value(id, value);
    }
    let logits = model.network.predict(&store, data.features())?;
    Ok(Evaluation {
        loss: nn::cross_entropy_value(&logits, data.labels())?,
        accuracy: accuracy(&predict(&logits, Objective::Classes), data.labels()),
    })
}

/// Epsilon on a unit of variance 0: one [`nn::BatchNorm1d`] over two units, in training mode,
/// on a batch of four samples whose second unit is 3 in every sample.
pub fn epsilon_demo() -> Result<EpsilonDemo> {
    let constant = 3.0;
    let varying = vec![1.0, 2.0, 4.0, 7.0];
    let (gamma, beta) = (1.5, 0.25);
    // Any output gradient will do; a non-zero mean makes the "- mean(dy)" of the closed form
    // visible.
    let output_gradient = vec![-1.0, 0.75, 0.5, 0.25];
    let b = varying.len();
    let interleave = |first: &[f64], second: &[f64]| -> Vec<f64> {
        first
            .iter()
            .zip(second)
            .flat_map(|(&a, &c)| [a, c])
            .collect()
    };
    let x = Tensor::from_vec(interleave(&varying, &vec![constant; b]), [b, 2])?;
    let dy = Tensor::from_vec(interleave(&[0.0; 4], &output_gradient), [b, 2])?;
    let second = |t: &Tensor<f64>| (0..b).map(|i| t.get(&[i, 1])).collect::<Vec<f64>>();

    let mut store = ParamStore::<f64>::new();
    let layer = BatchNorm1d::new(&mut store, "bn", 2)?;
    store.set_value(layer.scale(), Tensor::from_vec(vec![1.0, gamma], [2])?);
    store.set_value(layer.shift(), Tensor::from_vec(vec![0.0, beta], [2])?);
    let refusal = match layer.clone().with_eps(0.0) {
        Ok(_) => "accepted".to_string(),
        Err(error) => error.to_string(),
    };
    let (output, input_gradient, parameter_gradients) = {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let input = tape.leaf(x.clone());
        let y = layer.try_forward(&mut context, input)?;
        let gradients = y.try_backward_with(dy.clone())?;
        let gamma_gradient = gradients.wrt(context.param(layer.scale())).to_vec()[1];
        let beta_gradient = gradients.wrt(context.param(layer.shift())).to_vec()[1];
        (
            second(&y.value()),
            second(&gradients.wrt(input)),
            (gamma_gradient, beta_gradient),
        )
    };
    let mean_dy = output_gradient.iter().sum::<f64>() / b as f64;
    let closed_form_gradient = output_gradient
        .iter()
        .map(|g| gamma * (g - mean_dy) / BN_EPS.sqrt())
        .collect();

    // The library refuses eps = 0, so the formula is written out with the same tape ops:
    // (z - mu) / sqrt(sigma²) * gamma + beta.
    let (output_without_eps, gradient_without_eps) = {
        let tape = Tape::new();
        let input = tape.leaf(x);
        let (_, centered, variance) = input.try_moments(&[0], false)?;
        let y = centered
            .try_div(variance.try_sqrt()?)?
            .try_mul(tape.constant(Tensor::from_vec(vec![1.0, gamma], [2])?))?
            .try_add(tape.constant(Tensor::from_vec(vec![0.0, beta], [2])?))?;
        let gradients = y.try_backward_with(dy)?;
        (second(&y.value()), second(&gradients.wrt(input)))
    };
    Ok(EpsilonDemo {
        constant,
        varying,
        gamma,
        beta,
        eps: BN_EPS,
        output_gradient,
        output,
        input_gradient,
        closed_form_gradient,
        parameter_gradients,
        refusal,
        output_without_eps,
        gradient_without_eps,
    })
}

fn plot(config: &Config, summary: &Summary) -> Result<PathBuf> {
    let path = config.output_file("batch_norm.svg")?;
    let mut batch_loss = Chart::new(
        "Training loss (mean over the epoch's batches)",
        "epoch",
        "cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::LowerLeft);
    let mut eval_loss = Chart::new(
        "Evaluation-mode loss (train dashed, test solid)",
        "epoch",
        "cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::UpperRight)
    .with_legend_room();
    let mut accuracy = Chart::new("Test accuracy (evaluation mode)", "epoch", "accuracy (%)")
        .legend(Legend::LowerRight);
    for (color, run) in [&summary.plain, &summary.batch_norm]
        .into_iter()
        .enumerate()
    {
        batch_loss = batch_loss.with(Series::new(
            run.name,
            run.history.points(|r| r.batch_loss),
            color,
        ));
        eval_loss = eval_loss
            .with(
                Series::new(
                    format!("{}: train", run.name),
                    run.history.points(|r| r.train.loss),
                    color,
                )
                .dashed(),
            )
            .with(Series::new(
                format!("{}: test", run.name),
                run.history.points(|r| r.test.loss),
                color,
            ));
        accuracy = accuracy.with(Series::new(
            run.name,
            run.history.points(|r| 100.0 * r.test.accuracy),
            color,
        ));
    }
    batch_loss = batch_loss.with(
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
    if let Some(rise) = summary.late_rise() {
        eval_loss = eval_loss.with(Series::point(
            format!("batch norm: lowest test loss (epoch {})", rise.best.epoch),
            (rise.best.epoch as f64, rise.best.test.loss),
            6,
        ));
    }
    // From epoch 1 on: epoch 0 is the untrained network, orders of magnitude off, and would
    // flatten the rest.
    let trained = || summary.states.iter().filter(|s| s.epoch >= 1);
    let points = |f: &dyn Fn(&EpochState) -> f64| -> Vec<(f64, f64)> {
        trained().map(|s| (s.epoch as f64, f(s))).collect()
    };
    let split = Chart::new(
        "Batch norm: test loss split by digit",
        "epoch",
        "cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::UpperRight)
    .with_legend_room()
    .with(Series::new(
        "test loss",
        summary
            .batch_norm
            .history
            .points(|r| r.test.loss)
            .into_iter()
            .filter(|&(e, _)| e >= 1.0)
            .collect(),
        1,
    ))
    .with(Series::new(
        "misclassified digits' part",
        points(&|s| s.test.wrong_part()),
        3,
    ))
    .with(Series::new(
        "correct digits' part",
        points(&|s| s.test.right_part()),
        2,
    ))
    .with(Series::new("error rate (fraction)", points(&|s| s.test.error_rate), 6).dashed());
    let per_layer = |title: &str, y_label: &str, metric: fn(&LayerState) -> f64| {
        let mut chart = Chart::new(title, "epoch", y_label);
        for l in 0..summary.settings.depth {
            chart = chart.with(Series::new(
                format!("bn{}", l + 1),
                points(&|s| metric(&s.layers[l])),
                l,
            ));
        }
        chart
    };
    let epochs = summary.settings.epochs as f64;
    let floor = |label: &str, metric: fn(&LayerState) -> f64| {
        let value = summary.final_layers().first().map_or(f64::NAN, metric);
        Series::new(label, vec![(1.0, value), (epochs, value)], 6).dashed()
    };
    let running_mean = per_layer(
        "Running mean vs the training set's mean of z",
        "mean |error| / std of z (log scale)",
        |l| l.mean_error,
    )
    .log_y()
    .legend(Legend::UpperRight)
    .with_legend_room()
    .with(floor("noise floor", |l| l.mean_floor));
    let running_var = per_layer(
        "Running variance vs the training set's variance of z",
        "mean |running var / var - 1| (log scale)",
        |l| l.var_error,
    )
    .log_y()
    .legend(Legend::UpperRight)
    .with_legend_room()
    .with(floor("noise floor (layer 1)", |l| l.var_floor));
    // gamma solid, beta dashed, one colour per layer.
    let mut affine = Chart::new(
        "gamma and beta: distance from their initial 1 and 0",
        "epoch",
        "mean |gamma - 1|, mean |beta|",
    )
    .legend(Legend::UpperLeft)
    .with_legend_room();
    for l in 0..summary.settings.depth {
        affine = affine
            .with(Series::new(
                format!("bn{}: |gamma - 1|", l + 1),
                points(&|s| s.layers[l].gamma_shift),
                l,
            ))
            .with(
                Series::new(
                    format!("bn{}: |beta|", l + 1),
                    points(&|s| s.layers[l].beta_shift),
                    l,
                )
                .dashed(),
            );
    }
    write_svg_grid(
        &path,
        &[
            batch_loss,
            eval_loss,
            accuracy,
            split,
            running_mean,
            running_var,
            affine,
        ],
        2,
    )?;
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
            "eval train",
            "eval test",
            "test acc",
            "batch norm: batch loss",
            "eval train",
            "eval test",
            "test acc (running stats)",
        ]);
        // Every few epochs, the ones where each network reached the threshold, and the batch
        // norm network's test-loss minimum.
        let mut marked: Vec<usize> = [&self.plain, &self.batch_norm]
            .iter()
            .filter_map(|run| run.epochs_to_threshold())
            .collect();
        let rise = self.late_rise();
        marked.extend(rise.map(|r| r.best.epoch));
        let shown = epochs_to_show(s.epochs, &marked);
        let rows = self
            .plain
            .history
            .epochs
            .iter()
            .zip(&self.batch_norm.history.epochs)
            .filter(|(plain, _)| shown.contains(&plain.epoch));
        for (plain, bn) in rows {
            let mark = match rise {
                Some(r) if r.best.epoch == bn.epoch => " (bn lowest test loss)",
                _ => "",
            };
            table.row(vec![
                format!("{}{mark}", plain.epoch),
                number(Some(plain.batch_loss), 4),
                number(Some(plain.train.loss), 4),
                number(Some(plain.test.loss), 4),
                percent(plain.test.accuracy),
                number(Some(bn.batch_loss), 4),
                number(Some(bn.train.loss), 4),
                number(Some(bn.test.loss), 4),
                percent(bn.test.accuracy),
            ]);
        }
        write!(f, "{table}")?;
        writeln!(
            f,
            "  Epochs to a training loss (mean batch loss) of {LOSS_THRESHOLD}: plain {}, batch norm {}.",
            epoch(self.plain.epochs_to_threshold()),
            epoch(self.batch_norm.epochs_to_threshold())
        )?;
        if let Some(r) = rise {
            writeln!(
                f,
                "  Batch norm's evaluation-mode test loss: lowest {:.4} at epoch {}, {:.4} at epoch {} ({:+.0}%); from epoch to epoch in the second half it moves by {:.0}% (median).",
                r.best.test.loss,
                r.best.epoch,
                r.last.test.loss,
                r.last.epoch,
                100.0 * r.rise(),
                100.0 * r.jitter,
            )?;
            writeln!(
                f,
                "  Means over {} epochs: lowest test loss in epochs {}-{}, {:.4} -> {:.4} in the last {} ({:+.0}%); test accuracy {} -> {}; training loss {:.4} -> {:.4}; mean loss of a misclassified test digit {:.2} -> {:.2} ({:+.0}%).",
                r.window,
                r.low.start,
                r.low.start + r.window - 1,
                r.low.test_loss,
                r.end.test_loss,
                r.window,
                100.0 * r.smoothed_rise(),
                percent(r.low.test_accuracy),
                percent(r.end.test_accuracy),
                r.low.train_loss,
                r.end.train_loss,
                r.low.wrong_loss,
                r.end.wrong_loss,
                100.0 * r.wrong_loss_rise(),
            )?;
            writeln!(
                f,
                "  Split by test digit, epoch {} -> {}: misclassified {} -> {}, their mean loss {:.2} -> {:.2}; their part of the test loss {:.4} -> {:.4}, the correct digits' {:.4} -> {:.4}.",
                r.best.epoch,
                r.last.epoch,
                percent(r.best_split.error_rate),
                percent(r.last_split.error_rate),
                r.best_split.wrong_loss,
                r.last_split.wrong_loss,
                r.best_split.wrong_part(),
                r.last_split.wrong_part(),
                r.best_split.right_part(),
                r.last_split.right_part(),
            )?;
        }

        writeln!(
            f,
            "  Batch-norm layers after training (gamma starts at 1, beta at 0; z = the layer's input over the training set, evaluation mode):"
        )?;
        let mut layers = Table::new(&[
            "layer",
            "gamma mean",
            "min",
            "max",
            "beta mean",
            "min",
            "max",
            "|gamma-1|",
            "|beta|",
            "running mean err",
            "running var err",
        ]);
        for (l, layer) in self.final_layers().iter().enumerate() {
            layers.row(vec![
                format!("bn{}", l + 1),
                number(Some(layer.gamma.mean), 3),
                number(Some(layer.gamma.min), 3),
                number(Some(layer.gamma.max), 3),
                number(Some(layer.beta.mean), 3),
                number(Some(layer.beta.min), 3),
                number(Some(layer.beta.max), 3),
                number(Some(layer.gamma_shift), 3),
                number(Some(layer.beta_shift), 3),
                format!(
                    "{} ({:.1} floors)",
                    number(Some(layer.mean_error), 4),
                    layer.mean_error / layer.mean_floor
                ),
                format!(
                    "{} ({:.1} floors)",
                    number(Some(layer.var_error), 4),
                    layer.var_error / layer.var_floor
                ),
            ]);
        }
        write!(f, "{layers}")?;
        let mut targets = Table::new(&[
            "layer",
            "running mean err vs training-mode batches",
            "running var err vs training-mode batches",
            "training-mode batch var / eval var - 1",
        ]);
        for (l, target) in self.batch_targets.iter().enumerate() {
            targets.row(vec![
                format!("bn{}", l + 1),
                number(Some(target.mean_error), 4),
                number(Some(target.var_error), 4),
                format!("{:+.4}", target.var_inflation),
            ]);
        }
        write!(f, "{targets}")?;
        if let Some(layer) = self.final_layers().first() {
            writeln!(
                f,
                "  Running mean error: mean over units of |running mean - mean of z| / std of z; variance error: of |running var / var of z - 1|. Noise floor (momentum {BN_MOMENTUM}, batches of {BATCH_SIZE} of {}): {:.4} for the mean, {:.4} for the variance (first layer; from each unit's kurtosis).",
                s.train_count, layer.mean_floor, layer.var_floor
            )?;
        }
        let mut convergence = Table::new(&[
            "epoch",
            "running mean error (worst layer)",
            "running var error (worst layer)",
        ]);
        let worst = |state: &EpochState, f: fn(&LayerState) -> f64| {
            state.layers.iter().map(f).fold(0.0, f64::max)
        };
        for state in self
            .states
            .iter()
            .filter(|st| epochs_to_show(s.epochs, &[]).contains(&st.epoch))
        {
            convergence.row(vec![
                state.epoch.to_string(),
                number(Some(worst(state, |l| l.mean_error)), 4),
                number(Some(worst(state, |l| l.var_error)), 4),
            ]);
        }
        write!(f, "{convergence}")?;
        writeln!(
            f,
            "  Test set, trained network: with its running statistics accuracy {} (loss {:.4}); with them reset to mean 0, variance 1: accuracy {} (loss {:.4}).",
            percent(self.reset.trained.accuracy),
            self.reset.trained.loss,
            percent(self.reset.reset.accuracy),
            self.reset.reset.loss,
        )?;
        let per_layer = |f: fn(&LayerState) -> String| {
            self.final_layers()
                .iter()
                .map(f)
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "    Reset, z_norm is z (over sqrt(1 + eps)): per layer its mean is {} standard deviations from 0 (mean over units), and its standard deviation {}.",
            per_layer(|l| format!("{:.2}", l.z_offset)),
            per_layer(|l| scientific(l.z_std)),
        )?;

        let e = &self.epsilon;
        let list = |values: &[f64]| {
            values
                .iter()
                .map(|v| format!("{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "  Epsilon on a constant unit: a batch of {} samples, one unit's z = {} in all of them (batch variance 0), the other's {}; gamma {}, beta {}, output gradient [{}].",
            e.varying.len(),
            e.constant,
            list(&e.varying),
            e.gamma,
            e.beta,
            list(&e.output_gradient)
        )?;
        writeln!(
            f,
            "    eps = {}: output [{}] (= beta); input gradient [{}] (closed form gamma (dy - mean dy) / sqrt(eps): [{}]); gamma gradient {}, beta gradient {}.",
            scientific(e.eps),
            list(&e.output),
            e.input_gradient
                .iter()
                .map(|g| format!("{g:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            e.closed_form_gradient
                .iter()
                .map(|g| format!("{g:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            e.parameter_gradients.0,
            e.parameter_gradients.1,
        )?;
        writeln!(
            f,
            "    eps = 0: the library refuses it (\"{}\"); written out with tape ops the output is [{}] and the input gradient [{}].",
            e.refusal,
            list(&e.output_without_eps),
            list(&e.gradient_without_eps)
        )?;
        write_claims(f, &self.claims())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_data_dir;

    /// The bits of every number of a history (NaN == NaN here, unlike `PartialEq`).
    fn bits(history: &History) -> Vec<u64> {
        history
            .epochs
            .iter()
            .flat_map(|r| {
                [
                    r.epoch as f64,
                    r.batch_loss,
                    r.train.loss,
                    r.train.accuracy,
                    r.test.loss,
                    r.test.accuracy,
                ]
            })
            .map(f64::to_bits)
            .collect()
    }

    #[test]
    fn the_observed_training_is_train_to_the_bit() {
        let settings = Settings {
            train_count: 200,
            width: 8,
            depth: 2,
            epochs: 3,
            ..Settings::for_size(Size::Quick)
        };
        let split = digits_split(&default_data_dir(), settings.train_count, 3).unwrap();
        let spec = settings.training();
        let mut reference = settings.network(true).build(3).unwrap();
        let expected = train(&mut reference, &split, &spec, &Progress::silent()).unwrap();
        let mut observed = settings.network(true).build(3).unwrap();
        let (history, states) =
            train_observed(&mut observed, &split, &spec, settings.depth, false).unwrap();
        assert_eq!(bits(&history), bits(&expected));
        assert_eq!(states.len(), settings.epochs + 1);
        // The same parameters and buffers, entry by entry (two builds are two stores, so
        // entries are matched by name).
        for (_, name, _, value) in reference.store.iter() {
            let id = observed.store.find(name).expect("the same names");
            assert_eq!(value, observed.store.value(id), "{name}");
        }
    }

    #[test]
    fn the_running_statistics_start_at_zero_and_one() {
        // Before training the running mean is 0 and the running variance 1, so the errors are
        // |mean of z| / std of z and |1 / var of z - 1|: check the first layer by hand.
        let settings = Settings {
            train_count: 200,
            width: 8,
            depth: 2,
            epochs: 0,
            ..Settings::for_size(Size::Quick)
        };
        let split = digits_split(&default_data_dir(), settings.train_count, 3).unwrap();
        let mut model = settings.network(true).build(3).unwrap();
        let (_, states) = train_observed(
            &mut model,
            &split,
            &settings.training(),
            settings.depth,
            false,
        )
        .unwrap();
        let z = model.dense_layers[0]
            .predict(&model.store, split.train.features())
            .unwrap();
        let moments = column_moments(&z);
        let expected_mean = moments
            .iter()
            .map(|m| m.mean.abs() / m.variance.sqrt())
            .sum::<f64>()
            / 8.0;
        let expected_var = moments
            .iter()
            .map(|m| (1.0 / m.variance - 1.0).abs())
            .sum::<f64>()
            / 8.0;
        let layer = &states[0].layers[0];
        assert!((layer.mean_error - expected_mean).abs() < 1e-9);
        assert!((layer.var_error - expected_var).abs() < 1e-9);
        assert_eq!(layer.gamma_shift, 0.0);
        assert_eq!(layer.beta_shift, 0.0);
    }

    #[test]
    fn the_noise_floor_of_a_plain_average() {
        // Momentum 1 keeps only the last batch: the error of one batch mean of b samples,
        // sqrt(2 / pi) sigma / sqrt(b) (times the finite-population factor).
        let population = (999_950.0f64 / 999_999.0).sqrt();
        let floor = noise_floor(1.0, 50, 1_000_000);
        let expected = MEAN_ABS_OF_NORMAL / 50f64.sqrt() * population;
        assert!((floor.mean - expected).abs() < 1e-12);
        // A normal unit (kurtosis 3): the unbiased variance's relative variance is 2 / (b - 1).
        let expected = MEAN_ABS_OF_NORMAL * (2.0f64 / 49.0).sqrt() * population;
        assert!((floor.variance_for_kurtosis(3.0) - expected).abs() < 1e-12);
        // Momentum 0.1 keeps an average of about 19 batches: sqrt(0.1 / 1.9) of one batch's
        // noise.
        let shrunk = noise_floor(0.1, 50, 1_000_000);
        assert!((shrunk.mean / floor.mean - (0.1f64 / 1.9).sqrt()).abs() < 1e-12);
    }
}
