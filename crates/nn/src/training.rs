//! [`EarlyStopping`]: stop when a validation metric stops improving, and go back to the best
//! parameters, buffers and optimizer state seen.

use tensor::{Float, TensorError};

use crate::error::{NnError, Result};
use crate::params::{ParamStore, StoreSnapshot};

/// What an observation told [`EarlyStopping`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// A new best: the model and optimizer were snapshotted.
    Improved,
    /// No improvement for `since_best` observations, fewer than the patience.
    NoImprovement {
        /// Observations since the best one.
        since_best: usize,
    },
    /// No improvement for `patience` observations: stop training.
    Stop,
}

/// Early stopping on a metric where lower is better (a validation loss), as Keras' and
/// Lightning's `EarlyStopping(patience, min_delta, restore_best_weights=True)`: an observation
/// improves when it is below the best by more than `min_delta`; after `patience` observations
/// without improvement it says [`Progress::Stop`]. At every improvement it keeps an in-memory
/// snapshot of the store (parameters, buffers, training step) and a clone of the optimizer (its
/// moments and step counts), which [`restore_best`](EarlyStopping::restore_best) puts back.
/// NaN never improves.
///
/// ```
/// use nn::optim::Sgd;
/// use nn::{EarlyStopping, ParamStore, Progress, Role};
/// use tensor::Tensor;
///
/// let mut store = ParamStore::<f32>::new();
/// let w = store.add("w", Role::Weight, Tensor::zeros([1, 1])).unwrap();
/// let mut optimizer = Sgd::<f32>::new(0.1);
/// let mut stopping = EarlyStopping::new(2);
/// let mut stopped_at = None;
/// for (epoch, validation_loss) in [0.9, 0.5, 0.7, 0.6, 0.8].into_iter().enumerate() {
///     store.value_mut(w)[0] = epoch as f32; // stands for an epoch of training
///     if stopping.observe(validation_loss, &store, &optimizer) == Progress::Stop {
///         stopped_at = Some(epoch);
///         break;
///     }
/// }
/// assert_eq!(stopped_at, Some(3));
/// assert_eq!(stopping.best(), Some((1, 0.5)));
/// stopping.restore_best(&mut store, &mut optimizer).unwrap();
/// assert_eq!(store.value(w).to_vec(), vec![1.0]); // the parameters of epoch 1
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStopping<T: Float = f32, O: Clone = ()> {
    patience: usize,
    min_delta: f64,
    observations: usize,
    best: Option<(usize, f64)>,
    since_best: usize,
    saved: Option<(StoreSnapshot<T>, O)>,
}

impl<T: Float, O: Clone> EarlyStopping<T, O> {
    /// Stops after `patience` observations without improvement (at least 1; 0 is taken as 1).
    pub fn new(patience: usize) -> Self {
        EarlyStopping {
            patience: patience.max(1),
            min_delta: 0.0,
            observations: 0,
            best: None,
            since_best: 0,
            saved: None,
        }
    }

    /// The smallest decrease that counts as an improvement; errors unless finite and >= 0.
    pub fn with_min_delta(mut self, min_delta: f64) -> Result<Self> {
        if !(min_delta >= 0.0 && min_delta.is_finite()) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "EarlyStopping::with_min_delta",
                message: format!("min_delta must be finite and >= 0, got {min_delta}"),
            }));
        }
        self.min_delta = min_delta;
        Ok(self)
    }

    /// Records the metric after an epoch, snapshotting `store` and `optimizer` if it is a new
    /// best.
    pub fn observe(&mut self, metric: f64, store: &ParamStore<T>, optimizer: &O) -> Progress {
        let index = self.observations;
        self.observations += 1;
        let improved = match self.best {
            None => !metric.is_nan(),
            Some((_, best)) => metric < best - self.min_delta,
        };
        if improved {
            self.best = Some((index, metric));
            self.since_best = 0;
            self.saved = Some((store.snapshot(), optimizer.clone()));
            return Progress::Improved;
        }
        self.since_best += 1;
        if self.since_best >= self.patience {
            Progress::Stop
        } else {
            Progress::NoImprovement {
                since_best: self.since_best,
            }
        }
    }

    /// The best observation so far, as (its index from 0, the metric).
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// True once `patience` observations have passed without improvement.
    pub fn should_stop(&self) -> bool {
        self.since_best >= self.patience
    }

    /// Puts the best observation's parameters, buffers, training step and optimizer state
    /// back. Errors, changing nothing, if nothing has improved yet or the snapshot does not fit
    /// `store` (see [`ParamStore::restore`]).
    pub fn restore_best(&self, store: &mut ParamStore<T>, optimizer: &mut O) -> Result<()> {
        let Some((snapshot, saved_optimizer)) = &self.saved else {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "EarlyStopping::restore_best",
                message: "no observation has improved yet, so there is nothing to restore"
                    .to_string(),
            }));
        };
        store.restore(snapshot)?;
        *optimizer = saved_optimizer.clone();
        Ok(())
    }
}
