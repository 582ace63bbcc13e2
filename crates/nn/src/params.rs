//! Named parameters and buffers ([`ParamStore`]), the per-step binding of them to a tape
//! ([`Context`]), and their gradients ([`ParamGradients`]).
//!
//! Parameters live outside the tape. Each training step makes a fresh [`Tape`], binds the store
//! to it with a [`Context`] (every trainable parameter becomes a leaf), runs the model, and
//! reads the parameters' gradients back by [`ParamId`]:
//!
//! ```
//! use autograd::Tape;
//! use nn::{Context, Dense, Init, Layer, Mode, ParamStore, optim::{Optimizer, Sgd}};
//! use rand::SeedableRng;
//! use tensor::Tensor;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::<f32>::new();
//! let layer = Dense::new(&mut store, "hidden1", 3, 2, Init::XavierNormal, &mut rng).unwrap();
//! let mut optimizer = Sgd::new(0.1);
//!
//! let tape = Tape::new();
//! let mut context = Context::new(&tape, &mut store, Mode::Train { step: 0 });
//! let x = tape.constant(Tensor::ones([4, 3]));
//! let loss = layer.forward(&mut context, x).square().mean_all();
//! let gradients = context.gradients(&loss.backward());
//! optimizer.step(&mut store, &gradients);
//! ```

use std::fmt;

use autograd::{Gradients, Tape, Var};
use tensor::{Float, Tensor};

use crate::error::{NnError, Result};

/// A handle to one entry of a [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// Position in the store.
    pub fn index(self) -> usize {
        self.0
    }
}

/// What an entry is for. Trainable roles are bound as leaves and updated by optimizers;
/// the others are state updated off the tape (batch norm's running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A dense layer's weight matrix: the only role the L1/L2 penalties apply to.
    Weight,
    /// A dense layer's bias.
    Bias,
    /// Batch norm's learnable scale gamma.
    Scale,
    /// Batch norm's learnable shift beta.
    Shift,
    /// A running statistic (batch norm's running mean and variance); not trainable.
    RunningStatistic,
    /// A counter (batch norm's batches seen); not trainable, saved as an integer.
    Counter,
}

impl Role {
    /// True for the roles optimizers update.
    pub fn is_trainable(self) -> bool {
        matches!(self, Role::Weight | Role::Bias | Role::Scale | Role::Shift)
    }
}

#[derive(Clone, Debug)]
struct Entry<T: Float> {
    name: String,
    role: Role,
    value: Tensor<T>,
}

/// Named parameters and buffers of a model, in the order they were added.
#[derive(Clone)]
pub struct ParamStore<T: Float = f32> {
    entries: Vec<Entry<T>>,
}

impl<T: Float> fmt::Debug for ParamStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for entry in &self.entries {
            list.entry(&format_args!(
                "{} {:?} {}",
                entry.name,
                entry.role,
                entry.value.shape()
            ));
        }
        list.finish()
    }
}

impl<T: Float> Default for ParamStore<T> {
    fn default() -> Self {
        ParamStore::new()
    }
}

impl<T: Float> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore {
            entries: Vec::new(),
        }
    }

    /// Adds an entry. Errors if the name is taken.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        role: Role,
        value: Tensor<T>,
    ) -> Result<ParamId> {
        let name = name.into();
        if self.find(&name).is_some() {
            return Err(NnError::DuplicateName { name });
        }
        self.entries.push(Entry { name, role, value });
        Ok(ParamId(self.entries.len() - 1))
    }

    /// Number of entries (parameters and buffers).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries
            .iter()
            .position(|e| e.name == name)
            .map(ParamId)
    }

    /// An entry's value.
    pub fn value(&self, id: ParamId) -> &Tensor<T> {
        &self.entries[id.0].value
    }

    /// Replaces an entry's value. Panics if the shape differs (a programmer error).
    #[track_caller]
    pub fn set_value(&mut self, id: ParamId, value: Tensor<T>) {
        let entry = &mut self.entries[id.0];
        assert_eq!(
            entry.value.shape(),
            value.shape(),
            "set_value: '{}' has shape {}, the new value {}",
            entry.name,
            entry.value.shape(),
            value.shape()
        );
        entry.value = value;
    }

    /// An entry's value as a mutable row-major slice (copy-on-write: other holders of the
    /// tensor, such as a tape it was bound to, never see the change).
    pub fn value_mut(&mut self, id: ParamId) -> &mut [T] {
        self.entries[id.0].value.make_mut()
    }

    /// An entry's name.
    pub fn name(&self, id: ParamId) -> &str {
        &self.entries[id.0].name
    }

    /// An entry's role.
    pub fn role(&self, id: ParamId) -> Role {
        self.entries[id.0].role
    }

    /// Every entry as (id, name, role, value).
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &str, Role, &Tensor<T>)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (ParamId(i), e.name.as_str(), e.role, &e.value))
    }

    /// The trainable entries' ids, in order.
    pub fn trainable(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.role.is_trainable())
            .map(|(i, _)| ParamId(i))
    }

    /// Total number of trainable scalars.
    pub fn trainable_count(&self) -> usize {
        self.trainable().map(|id| self.value(id).numel()).sum()
    }

    /// Replaces every value at once (used by loading): all shapes are checked first.
    pub(crate) fn replace_all(&mut self, values: Vec<Tensor<T>>) {
        debug_assert_eq!(values.len(), self.entries.len());
        for (entry, value) in self.entries.iter_mut().zip(values) {
            entry.value = value;
        }
    }
}

/// Training or evaluation, passed explicitly to every forward (never a global).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout masks are drawn for `step`; batch norm uses batch statistics and
    /// updates its running ones.
    Train {
        /// The training step, which (with each dropout layer's seed) determines its mask.
        step: u64,
    },
    /// Evaluation: dropout is the identity; batch norm uses its running statistics.
    Eval,
}

/// One forward pass's view of a [`ParamStore`]: the trainable parameters bound to a tape as
/// leaves, the mode, and write access to the buffers.
pub struct Context<'t, 's, T: Float = f32> {
    tape: &'t Tape<T>,
    store: &'s mut ParamStore<T>,
    vars: Vec<Option<Var<'t, T>>>,
    mode: Mode,
}

impl<T: Float> fmt::Debug for Context<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("mode", &self.mode)
            .field("entries", &self.store.len())
            .finish()
    }
}

impl<'t, 's, T: Float> Context<'t, 's, T> {
    /// Binds every trainable parameter of `store` to `tape` as a leaf (in both modes:
    /// evaluation does not switch gradients off; use [`Tape::no_grad`] for that).
    pub fn new(tape: &'t Tape<T>, store: &'s mut ParamStore<T>, mode: Mode) -> Self {
        let vars = store
            .entries
            .iter()
            .map(|e| e.role.is_trainable().then(|| tape.leaf(e.value.clone())))
            .collect();
        Context {
            tape,
            store,
            vars,
            mode,
        }
    }

    /// Binds the trainable parameters to the given Vars, in the store's order of trainable
    /// entries (for gradchecking a layer with respect to its parameters). Errors if the count
    /// or a shape differs.
    pub fn with_vars(
        tape: &'t Tape<T>,
        store: &'s mut ParamStore<T>,
        trainable: &[Var<'t, T>],
        mode: Mode,
    ) -> Result<Self> {
        let mut given = trainable.iter();
        let mut vars = Vec::with_capacity(store.len());
        for entry in &store.entries {
            if !entry.role.is_trainable() {
                vars.push(None);
                continue;
            }
            let var = *given.next().ok_or_else(|| NnError::InvalidArgument {
                op: "Context::with_vars",
                message: format!("no Var given for parameter '{}'", entry.name),
            })?;
            if var.shape() != *entry.value.shape() {
                return Err(NnError::Shape {
                    op: "Context::with_vars".to_string(),
                    message: format!(
                        "'{}' has shape {}, the Var {}",
                        entry.name,
                        entry.value.shape(),
                        var.shape()
                    ),
                });
            }
            vars.push(Some(var));
        }
        if given.next().is_some() {
            return Err(NnError::InvalidArgument {
                op: "Context::with_vars",
                message: "more Vars than trainable parameters".to_string(),
            });
        }
        Ok(Context {
            tape,
            store,
            vars,
            mode,
        })
    }

    /// The tape.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True in [`Mode::Train`].
    pub fn is_training(&self) -> bool {
        matches!(self.mode, Mode::Train { .. })
    }

    /// The store (read-only).
    pub fn store(&self) -> &ParamStore<T> {
        self.store
    }

    /// A trainable parameter's leaf. Panics if `id` is a buffer.
    #[track_caller]
    pub fn param(&self, id: ParamId) -> Var<'t, T> {
        match self.vars[id.0] {
            Some(var) => var,
            None => panic!(
                "Context::param: '{}' is a {:?}, not a trainable parameter",
                self.store.name(id),
                self.store.role(id)
            ),
        }
    }

    /// A buffer's current value.
    pub fn buffer(&self, id: ParamId) -> &Tensor<T> {
        self.store.value(id)
    }

    /// Replaces a buffer's value (batch norm's running statistics). Panics on a shape change.
    #[track_caller]
    pub fn set_buffer(&mut self, id: ParamId, value: Tensor<T>) {
        self.store.set_value(id, value);
    }

    /// The trainable parameters as (id, role, leaf).
    pub fn trainable(&self) -> impl Iterator<Item = (ParamId, Role, Var<'t, T>)> + '_ {
        self.vars
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|var| (ParamId(i), self.store.role(ParamId(i)), var)))
    }

    /// The parameters' gradients from a backward pass on this context's tape (zeros for a
    /// parameter the loss does not depend on).
    pub fn gradients(&self, gradients: &Gradients<'t, T>) -> ParamGradients<T> {
        let values = self
            .vars
            .iter()
            .map(|v| v.map(|var| gradients.wrt(var)))
            .collect();
        ParamGradients { values }
    }
}

/// Gradients of the trainable parameters, by [`ParamId`], detached from any tape.
#[derive(Clone, Debug)]
pub struct ParamGradients<T: Float = f32> {
    values: Vec<Option<Tensor<T>>>,
}

impl<T: Float> ParamGradients<T> {
    /// Gradients from explicit values, one per store entry (`None` for buffers).
    pub fn from_values(values: Vec<Option<Tensor<T>>>) -> Self {
        ParamGradients { values }
    }

    /// The gradient of a trainable parameter.
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.values.get(id.0).and_then(Option::as_ref)
    }

    /// (id, gradient) for every trainable parameter.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Tensor<T>)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (ParamId(i), g)))
    }

    /// The Euclidean norm of all gradients together.
    pub fn global_norm(&self) -> f64 {
        self.iter()
            .map(|(_, g)| {
                g.to_vec()
                    .iter()
                    .map(|x| x.to_f64() * x.to_f64())
                    .sum::<f64>()
            })
            .sum::<f64>()
            .sqrt()
    }
}
