//! Learning-rate schedules: functions of the epoch, applied with
//! [`Optimizer::set_learning_rate`](super::Optimizer::set_learning_rate).
//!
//! ```
//! use nn::optim::{CosineAnnealing, LearningRateSchedule, Optimizer, Sgd};
//! let schedule = CosineAnnealing { initial: 0.1, minimum: 0.0, period: 10 };
//! let mut sgd = Sgd::<f32>::new(0.1);
//! for epoch in 0..10 {
//!     sgd.set_learning_rate(schedule.learning_rate(epoch));
//!     // ... train one epoch ...
//! }
//! assert!((schedule.learning_rate(5) - 0.05).abs() < 1e-12);
//! ```

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

impl LearningRateSchedule for CosineAnnealing {
    fn learning_rate(&self, epoch: usize) -> f64 {
        let progress = (epoch.min(self.period) as f64) / (self.period.max(1) as f64);
        self.minimum
            + (self.initial - self.minimum) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
