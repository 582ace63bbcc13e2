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
//! let mut context = Context::new(&tape, &mut store, Mode::Train);
//! let x = tape.constant(Tensor::ones([4, 3]));
//! let loss = layer.forward(&mut context, x).square().mean_all();
//! let gradients = context.gradients(&loss.backward());
//! optimizer.step(&mut store, &gradients).unwrap();
//! ```
//!
//! # Identity
//! Every store has a [`StoreId`], and every [`ParamId`] and [`ParamGradients`] carries the id of
//! the store it came from. Using a parameter handle, or gradients, with another store is refused
//! (a panic for a handle, a named error from an optimizer's `step` for gradients), so gradients
//! of one model can never move the weights of another that happens to have the same shapes. A
//! clone of a store is the *same* model at another moment (a snapshot): it keeps the id, so its
//! layers, gradients and optimizer state stay valid for it.
//!
//! # The training step
//! A store counts its training steps. Each [`Context`] made in [`Mode::Train`] takes the next
//! step number and advances the count, so dropout masks (a function of the layer's seed and the
//! step) never repeat by accident, even when a loop restarts its own counter every epoch. The
//! count is saved with the parameters. [`Context::at_step`] binds a store to a step chosen by
//! the caller, to recompute a step exactly.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use autograd::{Gradients, Tape, Var};
use tensor::{Float, Tensor, TensorError};

use crate::error::{NnError, Result};

/// The identity of a [`ParamStore`]: unique per store made in this process (clones share it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId(u64);

impl StoreId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        StoreId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store #{}", self.0)
    }
}

/// A handle to one entry of a [`ParamStore`]: the store's identity and the entry's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId {
    store: StoreId,
    index: usize,
}

impl ParamId {
    /// Position in the store.
    pub fn index(self) -> usize {
        self.index
    }

    /// The store the entry belongs to.
    pub fn store(self) -> StoreId {
        self.store
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

/// Named parameters and buffers of a model, in the order they were added, with the model's
/// identity and its count of training steps (see the module docs).
#[derive(Clone)]
pub struct ParamStore<T: Float = f32> {
    id: StoreId,
    entries: Vec<Entry<T>>,
    step: u64,
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
    /// An empty store with a fresh identity, at training step 0.
    pub fn new() -> Self {
        ParamStore {
            id: StoreId::fresh(),
            entries: Vec::new(),
            step: 0,
        }
    }

    /// The store's identity.
    pub fn id(&self) -> StoreId {
        self.id
    }

    /// The number of the next training step (how many [`Mode::Train`] contexts it has made,
    /// unless set).
    pub fn training_step(&self) -> u64 {
        self.step
    }

    /// Sets the number of the next training step (loading a checkpoint does this).
    pub fn set_training_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The position of `id` in this store; panics if it belongs to another store.
    #[track_caller]
    fn position(&self, id: ParamId) -> usize {
        if id.store != self.id {
            panic!(
                "ParamStore: parameter #{} belongs to {}, not to this {}",
                id.index, id.store, self.id
            );
        }
        id.index
    }

    fn handle(&self, index: usize) -> ParamId {
        ParamId {
            store: self.id,
            index,
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
        Ok(self.handle(self.entries.len() - 1))
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
            .map(|index| self.handle(index))
    }

    /// An entry's value. Panics if `id` belongs to another store.
    #[track_caller]
    pub fn value(&self, id: ParamId) -> &Tensor<T> {
        &self.entries[self.position(id)].value
    }

    /// Replaces an entry's value. Panics if the shape differs or `id` belongs to another store
    /// (programmer errors).
    #[track_caller]
    pub fn set_value(&mut self, id: ParamId, value: Tensor<T>) {
        let position = self.position(id);
        let entry = &mut self.entries[position];
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
    #[track_caller]
    pub fn value_mut(&mut self, id: ParamId) -> &mut [T] {
        let position = self.position(id);
        self.entries[position].value.make_mut()
    }

    /// An entry's name.
    #[track_caller]
    pub fn name(&self, id: ParamId) -> &str {
        &self.entries[self.position(id)].name
    }

    /// An entry's role.
    #[track_caller]
    pub fn role(&self, id: ParamId) -> Role {
        self.entries[self.position(id)].role
    }

    /// Every entry as (id, name, role, value).
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &str, Role, &Tensor<T>)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (self.handle(i), e.name.as_str(), e.role, &e.value))
    }

    /// The trainable entries' ids, in order.
    pub fn trainable(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.role.is_trainable())
            .map(|(i, _)| self.handle(i))
    }

    /// The entry at `index`, if there is one (for checking handles and gradients).
    pub(crate) fn get(&self, index: usize) -> Option<(&str, Role, &Tensor<T>)> {
        self.entries
            .get(index)
            .map(|e| (e.name.as_str(), e.role, &e.value))
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
    /// Training: the context takes the store's next training step (dropout masks are drawn for
    /// it); batch norm uses batch statistics and updates its running ones.
    Train,
    /// Evaluation: dropout is the identity; batch norm uses its running statistics.
    Eval,
}

/// One forward pass's view of a [`ParamStore`]: the trainable parameters bound to a tape as
/// leaves, the mode (with the training step in training), and write access to the buffers.
///
/// Buffer writes made inside [`try_atomically`](Context::try_atomically) are undone if the
/// closure fails, so a forward pass that errors halfway (a later layer's shape, an anomaly)
/// leaves batch norm's running statistics as they were. [`Sequential`](crate::Sequential) runs
/// its layers that way.
pub struct Context<'t, 's, T: Float = f32> {
    tape: &'t Tape<T>,
    store: &'s mut ParamStore<T>,
    vars: Vec<Option<Var<'t, T>>>,
    mode: Mode,
    /// The training step, in training.
    step: Option<u64>,
    /// Previous values of the buffers written inside a transaction, oldest first.
    undo: Vec<(ParamId, Tensor<T>)>,
    transactions: usize,
}

impl<T: Float> fmt::Debug for Context<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("mode", &self.mode)
            .field("step", &self.step)
            .field("entries", &self.store.len())
            .finish()
    }
}

impl<'t, 's, T: Float> Context<'t, 's, T> {
    /// Binds every trainable parameter of `store` to `tape` as a leaf (in both modes:
    /// evaluation does not switch gradients off; use [`Tape::no_grad`] for that). In
    /// [`Mode::Train`] the context takes the store's next training step and advances it.
    pub fn new(tape: &'t Tape<T>, store: &'s mut ParamStore<T>, mode: Mode) -> Self {
        let vars = store
            .entries
            .iter()
            .map(|e| e.role.is_trainable().then(|| tape.leaf(e.value.clone())))
            .collect();
        Context::assemble(tape, store, vars, mode, None)
    }

    /// A training context at an explicit `step`, leaving the store's count alone: recomputes a
    /// step exactly (its dropout masks included), for gradient checks, checkpointing and
    /// debugging. Reusing a step on purpose is the only way to repeat its masks.
    pub fn at_step(tape: &'t Tape<T>, store: &'s mut ParamStore<T>, step: u64) -> Self {
        let vars = store
            .entries
            .iter()
            .map(|e| e.role.is_trainable().then(|| tape.leaf(e.value.clone())))
            .collect();
        Context::assemble(tape, store, vars, Mode::Train, Some(step))
    }

    fn assemble(
        tape: &'t Tape<T>,
        store: &'s mut ParamStore<T>,
        vars: Vec<Option<Var<'t, T>>>,
        mode: Mode,
        step: Option<u64>,
    ) -> Self {
        let step = match (mode, step) {
            (Mode::Eval, _) => None,
            (Mode::Train, Some(step)) => Some(step),
            (Mode::Train, None) => {
                let step = store.step;
                store.step = store.step.wrapping_add(1);
                Some(step)
            }
        };
        Context {
            tape,
            store,
            vars,
            mode,
            step,
            undo: Vec::new(),
            transactions: 0,
        }
    }

    /// Binds the trainable parameters to the given Vars, in the store's order of trainable
    /// entries (for gradchecking a layer with respect to its parameters). In [`Mode::Train`] it
    /// runs the store's next training step *without* advancing the count, so repeated
    /// evaluations (every point of a gradient check) see the same dropout masks. Errors if the
    /// count or a shape differs.
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
            let var = *given.next().ok_or_else(|| {
                NnError::Tensor(TensorError::InvalidArgument {
                    op: "Context::with_vars",
                    message: format!("no Var given for parameter '{}'", entry.name),
                })
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
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Context::with_vars",
                message: "more Vars than trainable parameters".to_string(),
            }));
        }
        let step = store.step;
        Ok(Context::assemble(tape, store, vars, mode, Some(step)))
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
        matches!(self.mode, Mode::Train)
    }

    /// The training step this context runs (`None` in evaluation).
    pub fn training_step(&self) -> Option<u64> {
        self.step
    }

    /// The store (read-only).
    pub fn store(&self) -> &ParamStore<T> {
        self.store
    }

    /// A trainable parameter's leaf. Panics if `id` is a buffer or belongs to another store.
    #[track_caller]
    pub fn param(&self, id: ParamId) -> Var<'t, T> {
        match self.vars[self.store.position(id)] {
            Some(var) => var,
            None => panic!(
                "Context::param: '{}' is a {:?}, not a trainable parameter",
                self.store.name(id),
                self.store.role(id)
            ),
        }
    }

    /// A buffer's current value.
    #[track_caller]
    pub fn buffer(&self, id: ParamId) -> &Tensor<T> {
        self.store.value(id)
    }

    /// Replaces a buffer's value (batch norm's running statistics). Panics on a shape change.
    /// Inside [`try_atomically`](Context::try_atomically) the old value is kept until the
    /// closure succeeds.
    #[track_caller]
    pub fn set_buffer(&mut self, id: ParamId, value: Tensor<T>) {
        if self.transactions > 0 {
            self.undo.push((id, self.store.value(id).clone()));
        }
        self.store.set_value(id, value);
    }

    /// Runs `f`, undoing every buffer write it made if it fails: a failed forward pass changes
    /// no state. Transactions nest; the writes are final when the outermost one succeeds.
    ///
    /// ```
    /// use autograd::Tape;
    /// use nn::{BatchNorm1d, Context, Layer, Mode, NnError, ParamStore};
    /// use tensor::{Tensor, TensorError};
    ///
    /// let mut store = ParamStore::<f32>::new();
    /// let bn = BatchNorm1d::new(&mut store, "bn", 2).unwrap();
    /// let before = store.value(bn.running_mean()).clone();
    /// let tape = Tape::new();
    /// let mut context = Context::new(&tape, &mut store, Mode::Train);
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 5.0], [2, 2]).unwrap());
    /// let result: Result<(), NnError> = context.try_atomically(|context| {
    ///     bn.try_forward(context, x)?; // updates the running statistics...
    ///     Err(NnError::Tensor(TensorError::InvalidArgument { op: "later layer", message: "fails".into() }))
    /// });
    /// assert!(result.is_err());
    /// assert_eq!(context.buffer(bn.running_mean()), &before); // ...which are rolled back
    /// ```
    pub fn try_atomically<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let mark = self.undo.len();
        self.transactions += 1;
        let result = f(self);
        self.transactions -= 1;
        if result.is_err() {
            while self.undo.len() > mark {
                let (id, value) = self.undo.pop().expect("above the mark");
                self.store.set_value(id, value);
            }
        } else if self.transactions == 0 {
            self.undo.clear();
        }
        result
    }

    /// The trainable parameters as (id, role, leaf).
    pub fn trainable(&self) -> impl Iterator<Item = (ParamId, Role, Var<'t, T>)> + '_ {
        self.vars.iter().enumerate().filter_map(|(i, v)| {
            v.map(|var| (self.store.handle(i), self.store.entries[i].role, var))
        })
    }

    /// The parameters' gradients from a backward pass on this context's tape (zeros for a
    /// parameter the loss does not depend on), marked with this store's identity.
    #[track_caller]
    pub fn gradients(&self, gradients: &Gradients<'t, T>) -> ParamGradients<T> {
        let values = self
            .vars
            .iter()
            .map(|v| v.map(|var| gradients.wrt(var)))
            .collect();
        ParamGradients {
            store: self.store.id,
            values,
        }
    }
}

/// Gradients of the trainable parameters of one store, by [`ParamId`], detached from any tape.
/// They carry the store's identity: an optimizer refuses to apply them to another store.
#[derive(Clone, Debug)]
pub struct ParamGradients<T: Float = f32> {
    store: StoreId,
    values: Vec<Option<Tensor<T>>>,
}

impl<T: Float> ParamGradients<T> {
    /// Gradients already known to fit the store (one value per entry, trainable ones only).
    pub(crate) fn from_parts(store: StoreId, values: Vec<Option<Tensor<T>>>) -> Self {
        ParamGradients { store, values }
    }

    /// Gradients from explicit values, one per entry of `store` (`None` for buffers and for
    /// parameters without a gradient). Errors unless there is one value per entry, buffers get
    /// none, and every gradient has its parameter's shape.
    ///
    /// ```
    /// use nn::{ParamGradients, ParamStore, Role};
    /// use tensor::Tensor;
    /// let mut store = ParamStore::<f64>::new();
    /// store.add("w", Role::Weight, Tensor::zeros([3, 4])).unwrap();
    /// let error = ParamGradients::from_values(&store, vec![Some(Tensor::ones([3]))]).unwrap_err();
    /// assert_eq!(error.to_string(), "ParamGradients::from_values: the gradient of 'w' has shape [3], the parameter [3, 4]");
    /// ```
    pub fn from_values(store: &ParamStore<T>, values: Vec<Option<Tensor<T>>>) -> Result<Self> {
        const OP: &str = "ParamGradients::from_values";
        if values.len() != store.len() {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: OP,
                message: format!(
                    "{} values for a store of {} entries",
                    values.len(),
                    store.len()
                ),
            }));
        }
        for (entry, value) in store.entries.iter().zip(&values) {
            let Some(gradient) = value else { continue };
            if !entry.role.is_trainable() {
                return Err(NnError::NotTrainable {
                    op: OP,
                    parameter: entry.name.clone(),
                });
            }
            if gradient.shape() != entry.value.shape() {
                return Err(NnError::GradientShape {
                    op: OP,
                    parameter: entry.name.clone(),
                    parameter_shape: entry.value.shape().clone(),
                    gradient_shape: gradient.shape().clone(),
                });
            }
        }
        Ok(ParamGradients {
            store: store.id,
            values,
        })
    }

    /// The store these gradients belong to.
    pub fn store(&self) -> StoreId {
        self.store
    }

    /// The gradient of a trainable parameter. Panics if `id` belongs to another store.
    #[track_caller]
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        if id.store != self.store {
            panic!(
                "ParamGradients::get: parameter #{} belongs to {}, these gradients to {}",
                id.index, id.store, self.store
            );
        }
        self.values.get(id.index).and_then(Option::as_ref)
    }

    /// (id, gradient) for every trainable parameter that has one.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Tensor<T>)> {
        self.values.iter().enumerate().filter_map(|(index, g)| {
            g.as_ref().map(|g| {
                (
                    ParamId {
                        store: self.store,
                        index,
                    },
                    g,
                )
            })
        })
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

    /// Checks that these gradients can be applied to `store`: the same store, one trainable
    /// entry per gradient, equal shapes. `op` names the caller in the error.
    pub fn check_against(&self, op: &'static str, store: &ParamStore<T>) -> Result<()> {
        if self.store != store.id {
            return Err(NnError::ForeignGradients {
                op,
                gradients: self.store,
                store: store.id,
            });
        }
        for (id, gradient) in self.iter() {
            let Some((name, role, value)) = store.get(id.index) else {
                return Err(NnError::Tensor(TensorError::InvalidArgument {
                    op,
                    message: format!(
                        "a gradient for entry #{} of a store with {} entries",
                        id.index,
                        store.len()
                    ),
                }));
            };
            if !role.is_trainable() {
                return Err(NnError::NotTrainable {
                    op,
                    parameter: name.to_string(),
                });
            }
            if gradient.shape() != value.shape() {
                return Err(NnError::GradientShape {
                    op,
                    parameter: name.to_string(),
                    parameter_shape: value.shape().clone(),
                    gradient_shape: gradient.shape().clone(),
                });
            }
        }
        Ok(())
    }
}
