//! Parameter groups: a learning-rate factor and a weight decay for some parameters, as the
//! `param_groups` of a `torch.optim` optimizer.

use tensor::{Float, TensorError};

use super::non_negative;
use crate::error::{NnError, Result};
use crate::params::{ParamId, ParamStore};

/// Some parameters with their own learning rate and weight decay, as one of PyTorch's
/// `param_groups`. Parameters in no group use the optimizer's settings.
///
/// PyTorch gives each group an absolute `lr`, and its schedulers multiply every group's initial
/// rate by the same factor. Here a group states its rate as a factor of the optimizer's, so a
/// schedule that sets the optimizer's rate moves every group with it: the same result.
///
/// ```
/// use nn::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
/// use nn::{ParamGradients, ParamStore, Role};
/// use tensor::Tensor;
/// let mut store = ParamStore::<f64>::new();
/// let w = store.add("w", Role::Weight, Tensor::ones([1, 1])).unwrap();
/// let b = store.add("b", Role::Bias, Tensor::ones([1])).unwrap();
/// let config = SgdConfig { learning_rate: 0.1, weight_decay: 0.5, ..SgdConfig::default() };
/// let mut sgd = Sgd::with_config(config)
///     .unwrap()
///     .with_group(ParamGroup::new([b]).learning_rate_factor(10.0).weight_decay(0.0))
///     .unwrap();
/// let gradients = ParamGradients::from_values(
///     &store,
///     vec![Some(Tensor::ones([1, 1])), Some(Tensor::ones([1]))],
/// )
/// .unwrap();
/// sgd.step(&mut store, &gradients).unwrap();
/// assert_eq!(store.value(w).to_vec(), vec![1.0 - 0.1 * (1.0 + 0.5)]); // decayed, lr 0.1
/// assert_eq!(store.value(b).to_vec(), vec![1.0 - 1.0 * 1.0]); // no decay, lr 10 x 0.1
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    members: Vec<ParamId>,
    learning_rate_factor: f64,
    weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group of `members`, at first with the optimizer's learning rate and weight decay.
    pub fn new(members: impl IntoIterator<Item = ParamId>) -> Self {
        ParamGroup {
            members: members.into_iter().collect(),
            learning_rate_factor: 1.0,
            weight_decay: None,
        }
    }

    /// The group's learning rate as a multiple of the optimizer's (1 by default).
    pub fn learning_rate_factor(mut self, factor: f64) -> Self {
        self.learning_rate_factor = factor;
        self
    }

    /// The group's weight decay, in place of the optimizer's (coupled or decoupled as the
    /// optimizer applies it).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// The members.
    pub fn members(&self) -> &[ParamId] {
        &self.members
    }
}

/// An optimizer's groups, checked when added.
#[derive(Clone, Debug, Default)]
pub(crate) struct ParamGroups {
    groups: Vec<ParamGroup>,
}

impl ParamGroups {
    /// Adds a group; errors, changing nothing, for an invalid factor or decay, or a parameter
    /// already in a group (which settings would apply would be ambiguous).
    pub(crate) fn add(&mut self, op: &'static str, group: ParamGroup) -> Result<()> {
        let invalid = |message: String| {
            Err(NnError::Tensor(TensorError::InvalidArgument {
                op,
                message,
            }))
        };
        if !non_negative(group.learning_rate_factor) {
            return invalid(format!(
                "a group's learning-rate factor must be finite and >= 0, got {}",
                group.learning_rate_factor
            ));
        }
        if let Some(decay) = group.weight_decay.filter(|&d| !non_negative(d)) {
            return invalid(format!(
                "a group's weight decay must be finite and >= 0, got {decay}"
            ));
        }
        for (position, member) in group.members.iter().enumerate() {
            let earlier = self
                .groups
                .iter()
                .position(|g| g.members.contains(member))
                .or_else(|| {
                    group.members[..position]
                        .contains(member)
                        .then_some(self.groups.len())
                });
            if let Some(earlier) = earlier {
                return invalid(format!(
                    "parameter #{} of {} is already in group {earlier}",
                    member.index(),
                    member.store()
                ));
            }
        }
        self.groups.push(group);
        Ok(())
    }

    /// Errors unless every member belongs to `store`.
    pub(crate) fn check<T: Float>(&self, op: &'static str, store: &ParamStore<T>) -> Result<()> {
        let foreign = self
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .find(|m| m.store() != store.id() || m.index() >= store.len());
        match foreign {
            Some(member) => Err(NnError::Tensor(TensorError::InvalidArgument {
                op,
                message: format!(
                    "a parameter group holds parameter #{} of {}, which is not an entry of this {}",
                    member.index(),
                    member.store(),
                    store.id()
                ),
            })),
            None => Ok(()),
        }
    }

    /// (learning rate, weight decay) for `id`, from the optimizer's.
    pub(crate) fn settings(
        &self,
        id: ParamId,
        learning_rate: f64,
        weight_decay: f64,
    ) -> (f64, f64) {
        match self.groups.iter().find(|g| g.members.contains(&id)) {
            Some(group) => (
                learning_rate * group.learning_rate_factor,
                group.weight_decay.unwrap_or(weight_decay),
            ),
            None => (learning_rate, weight_decay),
        }
    }
}
