//! Learning-rate schedules: functions of the epoch, applied with
//! [`Optimizer::set_learning_rate`](super::Optimizer::set_learning_rate) (the example is in the
//! crate docs, "Learning-rate schedules"), and reduce-on-plateau, driven by a metric.

/// A learning rate per epoch (counted from 0).
pub trait LearningRateSchedule {
    /// The learning rate for `epoch`.
    fn learning_rate(&self, epoch: usize) -> f64;
}

/// `initial * gamma^(epoch / step_size)` (integer division), as `torch.optim.lr_scheduler.StepLR`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// Rate at epoch 0.
    pub initial: f64,
    /// Epochs between decays.
    pub step_size: usize,
    /// Factor per decay.
    pub gamma: f64,
}

impl LearningRateSchedule for StepDecay {
    fn learning_rate(&self, epoch: usize) -> f64 {
        let decays = epoch / self.step_size.max(1);
        self.initial * self.gamma.powi(decays as i32)
    }
}

/// `initial * gamma^epoch`, as `ExponentialLR`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// Rate at epoch 0.
    pub initial: f64,
    /// Factor per epoch.
    pub gamma: f64,
}

impl LearningRateSchedule for ExponentialDecay {
    fn learning_rate(&self, epoch: usize) -> f64 {
        self.initial * self.gamma.powi(epoch as i32)
    }
}

/// `minimum + (initial - minimum) * (1 + cos(pi * epoch / period)) / 2`, as
/// `CosineAnnealingLR` (closed form, no restarts); stays at `minimum` after `period`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealing {
    /// Rate at epoch 0.
    pub initial: f64,
    /// Rate at the end of the period.
    pub minimum: f64,
    /// Epochs from `initial` to `minimum`.
    pub period: usize,
}

impl CosineAnnealing {
    /// From `initial` to 0 over `period` epochs: PyTorch's `CosineAnnealingLR(optimizer,
    /// T_max=period)` (whose `eta_min` is 0) for an optimizer made with rate `initial`.
    pub fn new(initial: f64, period: usize) -> Self {
        CosineAnnealing {
            initial,
            minimum: 0.0,
            period,
        }
    }
}

impl LearningRateSchedule for CosineAnnealing {
    fn learning_rate(&self, epoch: usize) -> f64 {
        let progress = (epoch.min(self.period) as f64) / (self.period.max(1) as f64);
        self.minimum
            + (self.initial - self.minimum) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
    }
}

/// A linear warmup from `start_factor * then(0)` to `then(0)` over `warmup` epochs (or steps:
/// the schedule counts whatever you count), followed by `then` started afresh: PyTorch's
/// `SequentialLR([LinearLR(start_factor, total_iters=warmup), then], milestones=[warmup])`.
///
/// ```
/// use nn::optim::{CosineAnnealing, LearningRateSchedule, LinearWarmup};
/// let schedule = LinearWarmup {
///     warmup: 4,
///     start_factor: 0.25,
///     then: CosineAnnealing { initial: 0.1, minimum: 0.0, period: 10 },
/// };
/// assert!((schedule.learning_rate(0) - 0.025).abs() < 1e-15);
/// assert!((schedule.learning_rate(2) - 0.0625).abs() < 1e-15);
/// assert_eq!(schedule.learning_rate(4), 0.1); // the cosine's epoch 0
/// assert!((schedule.learning_rate(9) - 0.05).abs() < 1e-15); // the cosine's epoch 5
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearWarmup<S> {
    /// Epochs of warmup (0: none).
    pub warmup: usize,
    /// The fraction of `then`'s first rate the warmup starts at.
    pub start_factor: f64,
    /// The schedule after the warmup, counted from 0 when the warmup ends.
    pub then: S,
}

impl<S: LearningRateSchedule> LearningRateSchedule for LinearWarmup<S> {
    fn learning_rate(&self, epoch: usize) -> f64 {
        if epoch >= self.warmup {
            return self.then.learning_rate(epoch - self.warmup);
        }
        let progress = epoch as f64 / self.warmup as f64;
        self.then.learning_rate(0) * (self.start_factor + (1.0 - self.start_factor) * progress)
    }
}

/// Reduce-on-plateau, as PyTorch's `ReduceLROnPlateau(mode='min', threshold_mode='rel')`: when
/// the observed metric (a validation loss) has not improved on its best by more than a relative
/// `threshold` for more than `patience` observations, the rate is multiplied by `factor`, then
/// `cooldown` observations pass before counting again. It keeps a multiplier rather than
/// setting a rate, so it composes with any schedule: the rate is
/// `learning_rate(schedule's rate)`, never below `minimum`.
///
/// ```
/// use nn::optim::{Optimizer, ReduceOnPlateau, Sgd};
/// let mut plateau = ReduceOnPlateau::new(0.5, 1).unwrap();
/// let mut sgd = Sgd::<f32>::new(0.1);
/// for validation_loss in [1.0, 0.8, 0.8, 0.8, 0.7] {
///     plateau.observe(validation_loss);
///     sgd.set_learning_rate(plateau.learning_rate(0.1)).unwrap();
/// }
/// // 0.8 did not improve twice in a row (more than patience 1): one halving.
/// assert_eq!(sgd.learning_rate(), 0.05);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceOnPlateau {
    factor: f64,
    patience: usize,
    threshold: f64,
    cooldown: usize,
    minimum: f64,
    best: f64,
    bad_observations: usize,
    cooldown_left: usize,
    scale: f64,
}

impl ReduceOnPlateau {
    /// Multiplies the rate by `factor` (in (0, 1)) after more than `patience` observations
    /// without improvement; PyTorch's defaults for the rest (threshold 1e-4, cooldown 0,
    /// minimum 0).
    pub fn new(factor: f64, patience: usize) -> crate::Result<Self> {
        if !(factor > 0.0 && factor < 1.0) {
            return Err(crate::NnError::Tensor(
                tensor::TensorError::InvalidArgument {
                    op: "ReduceOnPlateau::new",
                    message: format!("factor must be in (0, 1), got {factor}"),
                },
            ));
        }
        Ok(ReduceOnPlateau {
            factor,
            patience,
            threshold: 1e-4,
            cooldown: 0,
            minimum: 0.0,
            best: f64::INFINITY,
            bad_observations: 0,
            cooldown_left: 0,
            scale: 1.0,
        })
    }

    /// The relative improvement that counts (`metric < best * (1 - threshold)`); errors unless
    /// finite and in [0, 1).
    pub fn with_threshold(mut self, threshold: f64) -> crate::Result<Self> {
        if !(0.0..1.0).contains(&threshold) {
            return Err(crate::NnError::Tensor(
                tensor::TensorError::InvalidArgument {
                    op: "ReduceOnPlateau::with_threshold",
                    message: format!("threshold must be in [0, 1), got {threshold}"),
                },
            ));
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// Observations to wait after a reduction before counting again.
    pub fn with_cooldown(mut self, cooldown: usize) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The smallest rate [`learning_rate`](ReduceOnPlateau::learning_rate) returns.
    pub fn with_minimum(mut self, minimum: f64) -> Self {
        self.minimum = minimum;
        self
    }

    /// Records one observation of the metric (lower is better; NaN never improves) and returns
    /// true if it reduced the rate.
    pub fn observe(&mut self, metric: f64) -> bool {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad_observations = 0;
        } else {
            self.bad_observations += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_observations = 0;
        }
        if self.bad_observations > self.patience {
            self.scale *= self.factor;
            self.cooldown_left = self.cooldown;
            self.bad_observations = 0;
            return true;
        }
        false
    }

    /// The product of the reductions so far (1 before the first).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `base` (the optimizer's rate, or a schedule's for this epoch) times the reductions, not
    /// below the minimum.
    pub fn learning_rate(&self, base: f64) -> f64 {
        (base * self.scale).max(self.minimum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_hands_over() {
        // torch 2.15's SequentialLR([LinearLR(start_factor=0.5, total_iters=2),
        // StepLR(step_size=1, gamma=0.5)], milestones=[2]) gives 0.5, 0.75, 1, 0.5, 0.25.
        let schedule = LinearWarmup {
            warmup: 2,
            start_factor: 0.5,
            then: StepDecay {
                initial: 1.0,
                step_size: 1,
                gamma: 0.5,
            },
        };
        assert_eq!(
            [0, 1, 2, 3, 4].map(|e| schedule.learning_rate(e)),
            [0.5, 0.75, 1.0, 0.5, 0.25]
        );
        let none = LinearWarmup {
            warmup: 0,
            start_factor: 0.1,
            then: schedule.then,
        };
        assert_eq!(none.learning_rate(0), 1.0);
    }

    #[test]
    fn plateau_follows_pytorch_patience_threshold_and_cooldown() {
        // Traced by hand from torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.5,
        // patience=1, cooldown=1, threshold=0.1), and run through torch 2.15: its rates after
        // each observation are 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25. Improvement needs
        // metric < best * 0.9.
        let mut plateau = ReduceOnPlateau::new(0.5, 1)
            .unwrap()
            .with_threshold(0.1)
            .unwrap()
            .with_cooldown(1);
        let metrics = [1.0, 0.95, 0.95, 0.95, 0.95, 0.95, 0.5, f64::NAN];
        let reduced: Vec<bool> = metrics.iter().map(|&m| plateau.observe(m)).collect();
        // 0.95 is not 10% better than 1.0: bad, bad (> patience: reduce), then the cooldown
        // swallows one, then bad, bad again.
        assert_eq!(
            reduced,
            [false, false, true, false, false, true, false, false]
        );
        assert_eq!(plateau.scale(), 0.25);
        assert_eq!(plateau.learning_rate(0.1), 0.025);
        assert_eq!(plateau.clone().with_minimum(0.05).learning_rate(0.1), 0.05);
        // An equal metric is not an improvement, even with threshold 0 (PyTorch's `a < best`).
        let mut exact = ReduceOnPlateau::new(0.5, 0)
            .unwrap()
            .with_threshold(0.0)
            .unwrap();
        assert!(!exact.observe(1.0));
        assert!(exact.observe(1.0));
        assert!(ReduceOnPlateau::new(1.0, 0).is_err());
        assert!(
            ReduceOnPlateau::new(0.5, 0)
                .unwrap()
                .with_threshold(1.0)
                .is_err()
        );
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let step = StepDecay {
            initial: 1.0,
            step_size: 3,
            gamma: 0.5,
        };
        assert_eq!(
            [0, 2, 3, 5, 6].map(|e| step.learning_rate(e)),
            [1.0, 1.0, 0.5, 0.5, 0.25]
        );
        let exponential = ExponentialDecay {
            initial: 2.0,
            gamma: 0.9,
        };
        assert!((exponential.learning_rate(2) - 2.0 * 0.81).abs() < 1e-15);
        let cosine = CosineAnnealing {
            initial: 1.0,
            minimum: 0.1,
            period: 4,
        };
        assert_eq!(cosine.learning_rate(0), 1.0);
        assert!((cosine.learning_rate(2) - 0.55).abs() < 1e-15);
        assert!((cosine.learning_rate(4) - 0.1).abs() < 1e-15);
        assert!((cosine.learning_rate(9) - 0.1).abs() < 1e-15);
        assert_eq!(
            CosineAnnealing::new(0.5, 8),
            CosineAnnealing {
                initial: 0.5,
                minimum: 0.0,
                period: 8
            }
        );
    }
}
