//! Named parameters and buffers ([`ParamStore`]), the per-step binding of them to a tape
//! ([`Context`]), and their gradients ([`ParamGradients`]). The overview (identity, the training
//! step, freezing, evaluation from a shared store) is in the crate docs, "Parameters, contexts
//! and the training step".

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

/// What an entry is: a label for messages, statistics and the defaults of its
/// [`ParamOptions`]. What an entry *does* — whether optimizers update it, whether the L1/L2
/// penalties include it, how it is laid out in a parameter file — is in its options, three
/// independent switches ([`ParamStore::add_with`], [`ParamStore::set_trainable`],
/// [`ParamStore::set_penalized`]).
///
/// | role | trainable | penalized | file layout | PyTorch |
/// |---|---|---|---|---|
/// | `Weight` | yes | yes | transposed (`[outputs, inputs]`) | `nn.Linear.weight` |
/// | `Bias`, `Scale`, `Shift` | yes | no | as is | `bias`, norm `weight`/`bias` |
/// | `Embedding` | yes | no | as is (`[vocabulary, dim]`) | `nn.Embedding.weight` |
/// | `Parameter` | yes | no | as is | `nn.Parameter` |
/// | `RunningStatistic` | never | never | as is | a registered buffer |
/// | `Counter` | never | never | as is, an `I64` | `num_batches_tracked` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A dense layer's weight matrix `[inputs, outputs]`, saved as PyTorch's `[outputs, inputs]`.
    Weight,
    /// A bias.
    Bias,
    /// A normalization layer's learnable scale gamma.
    Scale,
    /// A normalization layer's learnable shift beta.
    Shift,
    /// An embedding table `[vocabulary, dim]`.
    Embedding,
    /// Any other learnable tensor (a custom layer's parameter).
    Parameter,
    /// A running statistic (batch norm's running mean and variance); a buffer, never trainable.
    RunningStatistic,
    /// A counter (batch norm's batches seen); a buffer, saved as an integer.
    Counter,
}

impl Role {
    /// True for buffers: state updated off the tape, never bound as a leaf or penalized.
    pub fn is_buffer(self) -> bool {
        matches!(self, Role::RunningStatistic | Role::Counter)
    }

    /// The options an entry of this role gets from [`ParamStore::add`] (the table above).
    pub fn default_options(self) -> ParamOptions {
        ParamOptions {
            trainable: !self.is_buffer(),
            penalized: self == Role::Weight,
            layout: if self == Role::Weight {
                FileLayout::Transposed
            } else {
                FileLayout::AsIs
            },
        }
    }
}

/// How a rank-2 entry is written to (and read from) a parameter file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileLayout {
    /// In the store's layout.
    AsIs,
    /// Transposed: a dense weight kept as `[inputs, outputs]` (so `x W` needs no transpose) is
    /// written as PyTorch's `nn.Linear` layout `[outputs, inputs]`. Rank 2 only.
    Transposed,
}

/// What an entry does, independently of what it is ([`Role`]): PyTorch's `requires_grad`, a
/// parameter group without weight decay, and the file layout, as three switches.
///
/// ```
/// use nn::{FileLayout, ParamOptions, ParamStore, Role};
/// use tensor::Tensor;
///
/// let mut store = ParamStore::<f32>::new();
/// // A [vocabulary, dim] table under the L2 penalty, saved as it is (not transposed).
/// let options = ParamOptions { penalized: true, ..Role::Embedding.default_options() };
/// let table = store.add_with("words", Role::Embedding, options, Tensor::zeros([100, 8])).unwrap();
/// assert!(store.options(table).penalized);
/// assert_eq!(store.options(table).layout, FileLayout::AsIs);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamOptions {
    /// Bound as a leaf and updated by optimizers (`requires_grad`). A frozen parameter is bound
    /// as a constant: layers still read it, it gets no gradient, and optimizers skip it.
    pub trainable: bool,
    /// Included in [`l2_penalty`](crate::l2_penalty) and [`l1_penalty`](crate::l1_penalty).
    pub penalized: bool,
    /// How it is laid out in a parameter file.
    pub layout: FileLayout,
}

#[derive(Clone, Debug)]
struct Entry<T: Float> {
    name: String,
    role: Role,
    options: ParamOptions,
    value: Tensor<T>,
}

impl<T: Float> Entry<T> {
    /// Bound as a leaf and updated by optimizers.
    fn is_trainable(&self) -> bool {
        self.options.trainable
    }
}

/// Named parameters and buffers of a model, in the order they were added, with the model's
/// identity and its count of training steps (see the crate docs, "Parameters, contexts and the
/// training step").
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

    /// Adds an entry with its role's [default options](Role::default_options) (a
    /// [`Role::Weight`] that is not a matrix is saved as it is). Errors if the name is taken.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        role: Role,
        value: Tensor<T>,
    ) -> Result<ParamId> {
        let mut options = role.default_options();
        if value.rank() != 2 {
            options.layout = FileLayout::AsIs;
        }
        self.add_with(name, role, options, value)
    }

    /// Adds an entry with explicit options. Errors, adding nothing, if the name is taken, a
    /// buffer role is made trainable or penalized, or [`FileLayout::Transposed`] is asked for a
    /// value that is not a matrix.
    pub fn add_with(
        &mut self,
        name: impl Into<String>,
        role: Role,
        options: ParamOptions,
        value: Tensor<T>,
    ) -> Result<ParamId> {
        let name = name.into();
        if self.find(&name).is_some() {
            return Err(NnError::DuplicateName { name });
        }
        let problem = if role.is_buffer() && (options.trainable || options.penalized) {
            Some(format!(
                "'{name}' is a {role:?} buffer: it cannot be trainable or penalized"
            ))
        } else if options.layout == FileLayout::Transposed && value.rank() != 2 {
            Some(format!(
                "'{name}' has shape {}: only a matrix can be saved transposed",
                value.shape()
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "ParamStore::add_with",
                message,
            }));
        }
        self.entries.push(Entry {
            name,
            role,
            options,
            value,
        });
        Ok(self.handle(self.entries.len() - 1))
    }

    /// An entry's options.
    #[track_caller]
    pub fn options(&self, id: ParamId) -> ParamOptions {
        self.entries[self.position(id)].options
    }

    /// Freezes (`false`) or unfreezes (`true`) a parameter, as PyTorch's
    /// `requires_grad_(False)`: a frozen parameter is bound as a constant, gets no gradient and
    /// is skipped by optimizers (which keep its state). Errors, changing nothing, for a buffer.
    ///
    /// ```
    /// use nn::{Dense, Init, ParamStore};
    /// use nn::rand::SeedableRng;
    /// let mut rng = nn::rand::rngs::StdRng::seed_from_u64(0);
    /// let mut store = ParamStore::<f32>::new();
    /// let layer = Dense::new(&mut store, "hidden1", 4, 8, Init::HeNormal, &mut rng).unwrap();
    /// for id in store.matching("hidden1.") {
    ///     store.set_trainable(id, false).unwrap();
    /// }
    /// assert_eq!(store.trainable().count(), 0);
    /// assert!(!store.options(layer.weight()).trainable);
    /// ```
    #[track_caller]
    pub fn set_trainable(&mut self, id: ParamId, trainable: bool) -> Result<()> {
        let position = self.position(id);
        let entry = &mut self.entries[position];
        if entry.role.is_buffer() && trainable {
            return Err(NnError::NotTrainable {
                op: "ParamStore::set_trainable",
                parameter: entry.name.clone(),
            });
        }
        entry.options.trainable = trainable;
        Ok(())
    }

    /// Includes a parameter in the L1/L2 penalties or leaves it out. Errors, changing nothing,
    /// for a buffer.
    #[track_caller]
    pub fn set_penalized(&mut self, id: ParamId, penalized: bool) -> Result<()> {
        let position = self.position(id);
        let entry = &mut self.entries[position];
        if entry.role.is_buffer() && penalized {
            return Err(NnError::NotTrainable {
                op: "ParamStore::set_penalized",
                parameter: entry.name.clone(),
            });
        }
        entry.options.penalized = penalized;
        Ok(())
    }

    /// The ids of the entries whose names start with `prefix` (a layer's entries, as PyTorch's
    /// `model.hidden1.parameters()`: `store.matching("hidden1.")`), buffers included.
    pub fn matching(&self, prefix: &str) -> Vec<ParamId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name.starts_with(prefix))
            .map(|(i, _)| self.handle(i))
            .collect()
    }

    /// The ids of the parameters (trainable or frozen, not buffers) that the penalties leave
    /// out: biases, norms' scales and shifts, embeddings. The usual "no weight decay on biases
    /// and norms" parameter group is `ParamGroup::new(store.unpenalized())`.
    pub fn unpenalized(&self) -> Vec<ParamId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.role.is_buffer() && !e.options.penalized)
            .map(|(i, _)| self.handle(i))
            .collect()
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

    /// The trainable entries' ids, in order (frozen parameters and buffers left out).
    pub fn trainable(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_trainable())
            .map(|(i, _)| self.handle(i))
    }

    /// The entry at `index`, if there is one (for checking handles and gradients), with
    /// whether it is trainable.
    pub(crate) fn get(&self, index: usize) -> Option<(&str, bool, &Tensor<T>)> {
        self.entries
            .get(index)
            .map(|e| (e.name.as_str(), e.is_trainable(), &e.value))
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

/// The values of a store's parameters and buffers and its training step at one moment, held in
/// memory (PyTorch's `copy.deepcopy(model.state_dict())`). Taking one is cheap: tensors share
/// their buffers until the store writes one (copy-on-write). Optimizers are `Clone`: clone one
/// next to the snapshot to keep its state too ([`EarlyStopping`](crate::EarlyStopping) does).
#[derive(Clone, Debug)]
pub struct StoreSnapshot<T: Float = f32> {
    store: StoreId,
    names: Vec<String>,
    values: Vec<Tensor<T>>,
    step: u64,
}

impl<T: Float> StoreSnapshot<T> {
    /// The store it was taken from.
    pub fn store(&self) -> StoreId {
        self.store
    }

    /// The training step it was taken at.
    pub fn training_step(&self) -> u64 {
        self.step
    }

    /// The value of entry `name`, if the snapshot has one.
    pub fn value(&self, name: &str) -> Option<&Tensor<T>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
    }
}

impl<T: Float> ParamStore<T> {
    /// A snapshot of every value and the training step.
    ///
    /// ```
    /// use nn::{ParamStore, Role};
    /// use tensor::Tensor;
    /// let mut store = ParamStore::<f32>::new();
    /// let w = store.add("w", Role::Weight, Tensor::ones([2, 2])).unwrap();
    /// let best = store.snapshot();
    /// store.value_mut(w)[0] = 5.0;
    /// store.restore(&best).unwrap();
    /// assert_eq!(store.value(w).to_vec(), vec![1.0; 4]);
    /// ```
    pub fn snapshot(&self) -> StoreSnapshot<T> {
        StoreSnapshot {
            store: self.id,
            names: self.entries.iter().map(|e| e.name.clone()).collect(),
            values: self.entries.iter().map(|e| e.value.clone()).collect(),
            step: self.step,
        }
    }

    /// Puts back every value and the training step of `snapshot`. Errors, changing nothing,
    /// if it was taken from another store or the store's entries have changed since (an entry
    /// added, or a shape).
    pub fn restore(&mut self, snapshot: &StoreSnapshot<T>) -> Result<()> {
        const OP: &str = "ParamStore::restore";
        if snapshot.store != self.id {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: OP,
                message: format!(
                    "the snapshot was taken from {}, not from this {}",
                    snapshot.store, self.id
                ),
            }));
        }
        if snapshot.values.len() != self.entries.len() {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: OP,
                message: format!(
                    "the snapshot has {} entries, the store {}",
                    snapshot.values.len(),
                    self.entries.len()
                ),
            }));
        }
        for (entry, value) in self.entries.iter().zip(&snapshot.values) {
            if entry.value.shape() != value.shape() {
                return Err(NnError::Shape {
                    op: OP.to_string(),
                    message: format!(
                        "'{}' has shape {}, the snapshot {}",
                        entry.name,
                        entry.value.shape(),
                        value.shape()
                    ),
                });
            }
        }
        for (entry, value) in self.entries.iter_mut().zip(&snapshot.values) {
            entry.value = value.clone();
        }
        self.step = snapshot.step;
        Ok(())
    }
}

impl<T: Float> ParamStore<T> {
    /// Runs one forward pass on a fresh tape and returns the loss's value and the parameters'
    /// gradients (JAX's `value_and_grad` over the model's parameters; PyTorch's
    /// `loss = ...; loss.backward()`). `loss` builds the scalar loss from a [`Context`] in
    /// `mode` (a [`Mode::Train`] context takes the next training step, as [`Context::new`]
    /// does, whether or not `loss` succeeds). Errors, with the store's buffers as they were, if
    /// `loss` fails or returns a Var that is not a scalar.
    ///
    /// ```
    /// use nn::optim::{Optimizer, Sgd};
    /// use nn::{Dense, Init, Layer, Mode, ParamStore};
    /// use nn::rand::SeedableRng;
    /// use tensor::Tensor;
    /// let mut rng = nn::rand::rngs::StdRng::seed_from_u64(0);
    /// let mut store = ParamStore::<f64>::new();
    /// let model = Dense::new(&mut store, "output", 3, 2, Init::Constant(0.0), &mut rng).unwrap();
    /// let x = Tensor::ones([4, 3]);
    /// let (loss, gradients) = store
    ///     .value_and_gradients(Mode::Train, |context| {
    ///         let logits = model.try_forward(context, context.input(&x))?;
    ///         nn::try_cross_entropy(logits, &[0, 0, 0, 1])
    ///     })
    ///     .unwrap();
    /// // Zero logits: loss ln 2, and the bias gradient is mean(softmax - onehot) = (-1/4, 1/4).
    /// assert!((loss - 2.0_f64.ln()).abs() < 1e-15);
    /// assert_eq!(gradients.get(model.bias()).unwrap().to_vec(), vec![-0.25, 0.25]);
    /// Sgd::new(0.1).step(&mut store, &gradients).unwrap();
    /// ```
    pub fn value_and_gradients<F>(
        &mut self,
        mode: Mode,
        loss: F,
    ) -> Result<(f64, ParamGradients<T>)>
    where
        F: for<'t, 'c> FnOnce(&mut Context<'t, 'c, T>) -> Result<Var<'t, T>>,
    {
        let tape = Tape::new();
        let mut context = Context::new(&tape, self, mode);
        let loss = context.try_atomically(|context| {
            let loss = loss(context)?;
            if loss.shape().numel() != 1 {
                return Err(NnError::Autograd(
                    autograd::AutogradError::NonScalarOutput {
                        shape: loss.shape(),
                    },
                ));
            }
            Ok(loss)
        })?;
        let gradients = context.gradients(&loss.try_backward()?);
        Ok((loss.value().item().to_f64(), gradients))
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
/// leaves (frozen ones as constants), the mode (with the training step in training), and write
/// access to the buffers.
///
/// [`Context::new`] and [`Context::at_step`] borrow the store mutably: training advances its
/// step count and batch norm writes its running statistics. [`Context::eval`] borrows it
/// shared, so a model is evaluated from `&ParamStore`, from several threads at once (each with
/// its own tape), or on a worker (the store and every library layer are `Send + Sync`):
///
/// ```
/// use autograd::Tape;
/// use nn::{Activation, Context, Dense, Init, Layer, ParamStore, Sequential};
/// use nn::rand::SeedableRng;
/// use tensor::Tensor;
///
/// let mut rng = nn::rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f32>::new();
/// let model = Sequential::new()
///     .with(Dense::new(&mut store, "hidden1", 4, 8, Init::HeNormal, &mut rng).unwrap())
///     .with(Activation::Relu)
///     .with(Dense::new(&mut store, "output", 8, 3, Init::XavierNormal, &mut rng).unwrap());
/// let (store, model) = (&store, &model);
/// let outputs: Vec<Vec<f32>> = std::thread::scope(|scope| {
///     let workers: Vec<_> = (0..2)
///         .map(|i| {
///             scope.spawn(move || {
///                 let tape = Tape::new();
///                 let mut context = Context::eval(&tape, store);
///                 let x = tape.constant(Tensor::full([2, 4], i as f32));
///                 model.forward(&mut context, x).value().to_vec()
///             })
///         })
///         .collect();
///     workers.into_iter().map(|w| w.join().unwrap()).collect()
/// });
/// assert_eq!(outputs[0], model.predict(store, &Tensor::zeros([2, 4])).unwrap().to_vec());
/// ```
///
/// Buffer writes made inside [`try_atomically`](Context::try_atomically) are undone if the
/// closure fails, so a forward pass that errors halfway (a later layer's shape, an anomaly)
/// leaves batch norm's running statistics as they were. [`Sequential`](crate::Sequential) runs
/// its layers that way.
pub struct Context<'t, 's, T: Float = f32> {
    tape: &'t Tape<T>,
    store: StoreAccess<'s, T>,
    vars: Vec<Binding<'t, T>>,
    mode: Mode,
    /// The training step, in training.
    step: Option<u64>,
    /// Previous values of the buffers written inside a transaction, oldest first.
    undo: Vec<(ParamId, Tensor<T>)>,
    transactions: usize,
}

/// How a context holds its store: exclusively (training, buffer writes) or shared (evaluation).
enum StoreAccess<'s, T: Float> {
    Exclusive(&'s mut ParamStore<T>),
    Shared(&'s ParamStore<T>),
}

impl<T: Float> std::ops::Deref for StoreAccess<'_, T> {
    type Target = ParamStore<T>;

    fn deref(&self) -> &ParamStore<T> {
        match self {
            StoreAccess::Exclusive(store) => store,
            StoreAccess::Shared(store) => store,
        }
    }
}

/// How one entry is bound to the tape.
#[derive(Clone, Copy)]
enum Binding<'t, T: Float> {
    /// A buffer: not on the tape.
    Buffer,
    /// A trainable parameter: a leaf.
    Leaf(Var<'t, T>),
    /// A frozen parameter: a constant.
    Frozen(Var<'t, T>),
}

impl<'t, T: Float> Binding<'t, T> {
    fn leaf(self) -> Option<Var<'t, T>> {
        match self {
            Binding::Leaf(var) => Some(var),
            _ => None,
        }
    }
}

/// Every entry of `store` bound to `tape`: trainable parameters as leaves, frozen ones as
/// constants.
fn bind_all<'t, T: Float>(tape: &'t Tape<T>, store: &ParamStore<T>) -> Vec<Binding<'t, T>> {
    store
        .entries
        .iter()
        .map(|e| {
            if e.role.is_buffer() {
                Binding::Buffer
            } else if e.is_trainable() {
                Binding::Leaf(tape.leaf(e.value.clone()))
            } else {
                Binding::Frozen(tape.constant(e.value.clone()))
            }
        })
        .collect()
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
        let vars = bind_all(tape, store);
        Context::assemble(tape, StoreAccess::Exclusive(store), vars, mode, None)
    }

    /// An evaluation context on a shared store (PyTorch's `model.eval()` under
    /// `torch.no_grad()`, without needing the model mutably): dropout is the identity and batch
    /// norm reads its running statistics. The parameters are still leaves, so gradients with
    /// respect to them or to the input can be taken. Writing a buffer through it
    /// ([`set_buffer`](Context::set_buffer)) panics: nothing in evaluation mode writes one.
    pub fn eval(tape: &'t Tape<T>, store: &'s ParamStore<T>) -> Self {
        let vars = bind_all(tape, store);
        Context::assemble(tape, StoreAccess::Shared(store), vars, Mode::Eval, None)
    }

    /// A training context at an explicit `step`, leaving the store's count alone: recomputes a
    /// step exactly (its dropout masks included), for gradient checks, checkpointing and
    /// debugging. Reusing a step on purpose is the only way to repeat its masks.
    pub fn at_step(tape: &'t Tape<T>, store: &'s mut ParamStore<T>, step: u64) -> Self {
        let vars = bind_all(tape, store);
        Context::assemble(
            tape,
            StoreAccess::Exclusive(store),
            vars,
            Mode::Train,
            Some(step),
        )
    }

    fn assemble(
        tape: &'t Tape<T>,
        mut store: StoreAccess<'s, T>,
        vars: Vec<Binding<'t, T>>,
        mode: Mode,
        step: Option<u64>,
    ) -> Self {
        let step = match (mode, step, &mut store) {
            (Mode::Eval, _, _) => None,
            (Mode::Train, Some(step), _) => Some(step),
            (Mode::Train, None, StoreAccess::Exclusive(store)) => {
                let step = store.step;
                store.step = store.step.wrapping_add(1);
                Some(step)
            }
            (Mode::Train, None, StoreAccess::Shared(_)) => {
                unreachable!("shared contexts are made in evaluation mode only")
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
            if entry.role.is_buffer() {
                vars.push(Binding::Buffer);
                continue;
            }
            if !entry.is_trainable() {
                vars.push(Binding::Frozen(tape.constant(entry.value.clone())));
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
            vars.push(Binding::Leaf(var));
        }
        if given.next().is_some() {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Context::with_vars",
                message: "more Vars than trainable parameters".to_string(),
            }));
        }
        let step = store.step;
        Ok(Context::assemble(
            tape,
            StoreAccess::Exclusive(store),
            vars,
            mode,
            Some(step),
        ))
    }

    /// The tape.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// `x` as a constant on the context's tape: a model's input.
    pub fn input(&self, x: &Tensor<T>) -> Var<'t, T> {
        self.tape.constant(x.clone())
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
        &self.store
    }

    /// A parameter's Var: a leaf, or a constant if it is frozen. Panics if `id` is a buffer or
    /// belongs to another store.
    #[track_caller]
    pub fn param(&self, id: ParamId) -> Var<'t, T> {
        match self.vars[self.store.position(id)] {
            Binding::Leaf(var) | Binding::Frozen(var) => var,
            Binding::Buffer => panic!(
                "Context::param: '{}' is a {:?} buffer, not a parameter (read it with Context::buffer)",
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
        self.store_mut("Context::set_buffer").set_value(id, value);
    }

    #[track_caller]
    fn store_mut(&mut self, op: &str) -> &mut ParamStore<T> {
        match &mut self.store {
            StoreAccess::Exclusive(store) => store,
            StoreAccess::Shared(_) => panic!(
                "{op}: this context shares its store (Context::eval), so it cannot write buffers; \
                 make it with Context::new"
            ),
        }
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
                self.store_mut("Context::try_atomically")
                    .set_value(id, value);
            }
        } else if self.transactions == 0 {
            self.undo.clear();
        }
        result
    }

    /// The trainable parameters as (id, role, leaf); frozen parameters are left out.
    pub fn trainable(&self) -> impl Iterator<Item = (ParamId, Role, Var<'t, T>)> + '_ {
        self.vars.iter().enumerate().filter_map(|(i, v)| {
            v.leaf()
                .map(|var| (self.store.handle(i), self.store.entries[i].role, var))
        })
    }

    /// The parameters the L1/L2 penalties include ([`ParamOptions::penalized`]), trainable or
    /// frozen (a frozen one adds a constant: the loss's value does not depend on what is
    /// frozen), as (id, Var).
    pub fn penalized(&self) -> impl Iterator<Item = (ParamId, Var<'t, T>)> + '_ {
        self.vars
            .iter()
            .enumerate()
            .filter_map(|(i, binding)| match binding {
                Binding::Leaf(var) | Binding::Frozen(var)
                    if self.store.entries[i].options.penalized =>
                {
                    Some((self.store.handle(i), *var))
                }
                _ => None,
            })
    }

    /// The parameters' gradients from a backward pass on this context's tape (zeros for a
    /// parameter the loss does not depend on), marked with this store's identity.
    #[track_caller]
    pub fn gradients(&self, gradients: &Gradients<'t, T>) -> ParamGradients<T> {
        let values = self
            .vars
            .iter()
            .map(|v| v.leaf().map(|var| gradients.wrt(var)))
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
            if !entry.is_trainable() {
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

    /// Scales every gradient by `max_norm / norm` when their global norm exceeds `max_norm`
    /// (PyTorch's `torch.nn.utils.clip_grad_norm_`, with its `1e-6` added to the norm), and
    /// returns the norm before clipping. A norm that is not finite is returned with the
    /// gradients left as they are (scaling would turn every gradient into NaN), so that
    /// [`Optimizer::step_if_finite`](crate::optim::Optimizer::step_if_finite) can skip the step.
    /// Errors, changing nothing, if `max_norm` is negative or not finite.
    ///
    /// ```
    /// use nn::{ParamGradients, ParamStore, Role};
    /// use tensor::Tensor;
    /// let mut store = ParamStore::<f64>::new();
    /// store.add("w", Role::Weight, Tensor::zeros([2, 1])).unwrap();
    /// let gradient = Tensor::from_vec(vec![3.0, 4.0], [2, 1]).unwrap();
    /// let mut gradients = ParamGradients::from_values(&store, vec![Some(gradient)]).unwrap();
    /// let norm = gradients.clip_norm(1.0).unwrap();
    /// assert_eq!(norm, 5.0);
    /// assert!((gradients.global_norm() - 1.0).abs() < 1e-6);
    /// ```
    pub fn clip_norm(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm >= 0.0 && max_norm.is_finite()) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "ParamGradients::clip_norm",
                message: format!("max_norm must be finite and >= 0, got {max_norm}"),
            }));
        }
        let norm = self.global_norm();
        let coefficient = max_norm / (norm + 1e-6);
        if norm.is_finite() && coefficient < 1.0 {
            let coefficient = T::from_f64(coefficient);
            for gradient in self.values.iter_mut().flatten() {
                *gradient = gradient.map(|g| g * coefficient);
            }
        }
        Ok(norm)
    }

    /// Clamps every gradient element to `[-clip, clip]` (PyTorch's `clip_grad_value_`); NaN
    /// stays NaN. Errors, changing nothing, if `clip` is negative or not finite.
    pub fn clip_value(&mut self, clip: f64) -> Result<()> {
        if !(clip >= 0.0 && clip.is_finite()) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "ParamGradients::clip_value",
                message: format!("clip must be finite and >= 0, got {clip}"),
            }));
        }
        let (low, high) = (T::from_f64(-clip), T::from_f64(clip));
        for gradient in self.values.iter_mut().flatten() {
            *gradient = gradient.map(|g| {
                if g < low {
                    low
                } else if g > high {
                    high
                } else {
                    g
                }
            });
        }
        Ok(())
    }

    /// Adds `other` into these gradients: gradient accumulation over micro-batches (what
    /// PyTorch does by calling `backward` several times before `step`). A parameter with a
    /// gradient in only one of them keeps that one. Errors, changing nothing, if `other` belongs
    /// to another store or a shape differs.
    ///
    /// ```
    /// use nn::{ParamGradients, ParamStore, Role};
    /// use tensor::Tensor;
    /// let mut store = ParamStore::<f64>::new();
    /// store.add("b", Role::Bias, Tensor::zeros([2])).unwrap();
    /// let micro = |v: f64| ParamGradients::from_values(&store, vec![Some(Tensor::full([2], v))]).unwrap();
    /// let mut total = micro(1.0);
    /// total.accumulate(&micro(2.0)).unwrap();
    /// total.scale(0.5); // the mean over two micro-batches
    /// assert_eq!(total.iter().next().unwrap().1.to_vec(), vec![1.5, 1.5]);
    /// ```
    pub fn accumulate(&mut self, other: &ParamGradients<T>) -> Result<()> {
        const OP: &str = "ParamGradients::accumulate";
        if other.store != self.store {
            return Err(NnError::ForeignGradients {
                op: OP,
                gradients: other.store,
                store: self.store,
            });
        }
        for (index, gradient) in other.values.iter().enumerate() {
            let (Some(gradient), Some(Some(mine))) = (gradient, self.values.get(index)) else {
                continue;
            };
            if gradient.shape() != mine.shape() {
                return Err(NnError::GradientShape {
                    op: OP,
                    parameter: format!("#{index}"),
                    parameter_shape: mine.shape().clone(),
                    gradient_shape: gradient.shape().clone(),
                });
            }
        }
        if self.values.len() < other.values.len() {
            self.values.resize(other.values.len(), None);
        }
        for (mine, gradient) in self.values.iter_mut().zip(&other.values) {
            let Some(gradient) = gradient else { continue };
            *mine = Some(match mine.take() {
                Some(sum) => sum.zip_map(gradient, OP, |a, b| a + b),
                None => gradient.clone(),
            });
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor` (1 / micro-batches, for the mean).
    pub fn scale(&mut self, factor: f64) {
        let factor = T::from_f64(factor);
        for gradient in self.values.iter_mut().flatten() {
            *gradient = gradient.map(|g| g * factor);
        }
    }

    /// The first gradient element that is NaN or infinite, as (parameter id, flat element
    /// index, value), or `None` when every gradient is finite.
    pub fn first_non_finite(&self) -> Option<(ParamId, usize, f64)> {
        self.iter().find_map(|(id, gradient)| {
            let values = gradient.to_vec();
            let element = values.iter().position(|g| !g.is_finite())?;
            Some((id, element, values[element].to_f64()))
        })
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
            let Some((name, trainable, value)) = store.get(id.index) else {
                return Err(NnError::Tensor(TensorError::InvalidArgument {
                    op,
                    message: format!(
                        "a gradient for entry #{} of a store with {} entries",
                        id.index,
                        store.len()
                    ),
                }));
            };
            if !trainable {
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
