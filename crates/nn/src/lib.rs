//! Neural-network building blocks for the chapter "Improving the way deep neural networks
//! learn", built only from the public `autograd` API: every gradient comes from the tape, and
//! nothing here has a backward rule of its own.
//!
//! | piece | items |
//! |---|---|
//! | parameters | [`ParamStore`] (named parameters and buffers; [`ParamOptions`]: trainable, penalized, file layout; [`snapshot`](ParamStore::snapshot)/[`restore`](ParamStore::restore); [`value_and_gradients`](ParamStore::value_and_gradients)), [`Context`] (one step's binding to a tape; [`Context::eval`] on a shared store), [`Mode`] |
//! | layers | [`Dense`] (last axis of any rank), [`Activation`], [`Dropout`], [`BatchNorm1d`], [`LayerNorm`], [`Embedding`], [`Sequential`], the [`Layer`] trait (`Send + Sync`, [`predict`](Layer::predict)) |
//! | functions | [`leaky_relu`], [`mse`], [`cross_entropy`] and [`CrossEntropy`] (label smoothing, class weights, ignore index), [`binary_cross_entropy_with_logits`], [`l2_penalty`], [`l1_penalty`], [`accuracy`] |
//! | initialisation | [`Init`]: Xavier, He, LeCun, fixed normal/uniform, constant |
//! | training | [`optim`]: SGD (momentum, Nesterov, dampening, coupled decay), Adam, AdamW, parameter groups, [`step_if_finite`](optim::Optimizer::step_if_finite), schedules with warmup and reduce-on-plateau; [`ParamGradients`] clipping and accumulation; [`EarlyStopping`] |
//! | data | [`Dataset`], [`Batches`] (seeded shuffle, [`drop_last`](Batches::drop_last)), [`Standardizer`], [`load_csv`] (plain or gzip) |
//! | files | [`save_safetensors`], [`load_safetensors`] |
//! | diagnostics | [`LayerStatistics`]: per-layer activation statistics, gradient norms, update ratios |
//!
//! Every convention (row-major batches, keep vs drop probability, batch-norm momentum and
//! variance, init variances, optimizer formulas) is listed next to PyTorch's in
//! `docs/conventions.md`; `docs/from-pytorch.md` ports a PyTorch training script line by line
//! and maps each PyTorch name to this crate's.
//!
//! A training step:
//!
//! ```
//! use autograd::Tape;
//! use nn::optim::{Optimizer, Sgd};
//! use nn::{Activation, Context, Dense, Dropout, Init, Layer, Mode, ParamStore, Sequential};
//! use nn::rand::SeedableRng; // the rand version nn is built with (see "rand" below)
//! use tensor::Tensor;
//!
//! let mut rng = nn::rand::rngs::StdRng::seed_from_u64(42);
//! let mut store = ParamStore::<f32>::new();
//! let model = Sequential::new()
//!     .with(Dense::new(&mut store, "hidden1", 4, 16, Init::HeNormal, &mut rng).unwrap())
//!     .with(Activation::Relu)
//!     .with(Dropout::with_keep_probability(0.8, &mut rng).unwrap())
//!     .with(Dense::new(&mut store, "output", 16, 3, Init::XavierNormal, &mut rng).unwrap());
//! let mut optimizer = Sgd::new(0.1);
//! let x = Tensor::<f32>::random_normal([8, 4], 0.0, 1.0, &mut rng).unwrap();
//! let labels = [0, 1, 2, 0, 1, 2, 0, 1];
//!
//! for step in 0..3 {
//!     let gradients = {
//!         let tape = Tape::new();
//!         let mut context = Context::new(&tape, &mut store, Mode::Train);
//!         let logits = model.forward(&mut context, tape.constant(x.clone()));
//!         let loss = nn::cross_entropy(logits, &labels) + nn::l2_penalty(&context, 1e-4);
//!         context.gradients(&loss.backward())
//!     }; // the tape is dropped here, so the update below writes the parameters in place
//!     optimizer.step(&mut store, &gradients).unwrap();
//! }
//! ```
//!
//! # Parameters, contexts and the training step
//! Named parameters and buffers live in a [`ParamStore`], outside the tape. Each training step
//! makes a fresh [`Tape`](autograd::Tape), binds the store to it with a [`Context`] (every
//! trainable parameter becomes a leaf), runs the model, and reads the parameters' gradients
//! back by [`ParamId`] into [`ParamGradients`] (the example above).
//!
//! **Identity.** Every store has a [`StoreId`], and every [`ParamId`] and [`ParamGradients`]
//! carries the id of the store it came from. Using a parameter handle, or gradients, with
//! another store is refused (a panic for a handle, a named error from an optimizer's `step` for
//! gradients), so gradients of one model can never move the weights of another that happens to
//! have the same shapes. A clone of a store is the *same* model at another moment (a snapshot):
//! it keeps the id, so its layers, gradients and optimizer state stay valid for it.
//!
//! **The training step.** A store counts its training steps. Each [`Context`] made in
//! [`Mode::Train`] takes the next step number and advances the count, so dropout masks (a
//! function of the layer's seed and the step) never repeat by accident, even when a loop
//! restarts its own counter every epoch. The count is saved with the parameters.
//! [`Context::at_step`] binds a store to a step chosen by the caller, to recompute a step
//! exactly.
//!
//! **Freezing and evaluation.** A parameter made untrainable with
//! [`ParamStore::set_trainable`] is bound as a constant: it gets no gradient and optimizers
//! skip it. [`Context::eval`] borrows the store shared, so a model (every layer is
//! `Send + Sync`) is evaluated from `&ParamStore` on several threads at once.
//!
//! # Learning-rate schedules
//! [`optim::CosineAnnealing`], [`optim::StepDecay`] and [`optim::ExponentialDecay`] are
//! functions of the epoch ([`optim::LearningRateSchedule`]), [`optim::LinearWarmup`] puts a
//! warmup in front of any of them, and [`optim::ReduceOnPlateau`] scales any rate down when a
//! validation metric stalls. Each is applied with
//! [`Optimizer::set_learning_rate`](optim::Optimizer::set_learning_rate):
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
//!
//! # Parameter files
//! [`save_safetensors`] and [`load_safetensors`] write and read a [`ParamStore`] in the
//! safetensors format, readable by PyTorch (`safetensors.torch.load_file`) and loadable into
//! the equivalent `torch.nn` modules with `load_state_dict`.
//!
//! Conventions, chosen so the file is a PyTorch state dict:
//! - names are the store's names (`hidden1.weight`, `bn1.running_var`, ...);
//! - a matrix with [`FileLayout::Transposed`] (a [`Role::Weight`] by default: a dense weight,
//!   kept here as `[inputs, outputs]`) is written transposed as `[outputs, inputs]`, the layout
//!   of `nn.Linear.weight`, and transposed back on loading; anything else (an [`Embedding`]'s
//!   `[vocabulary, dim]` table included) is written as it is;
//! - a [`Role::Counter`] (batch norm's `num_batches_tracked`) is written as an `I64` scalar;
//! - everything else is written as `F32` or `F64`, the store's element type;
//! - the store's training step goes in the header's `__metadata__` as `training_step` (PyTorch
//!   ignores it), so dropout masks continue where they stopped after a reload.
//!
//! Loading checks before it reads: the 8-byte header length against the file's length, the
//! header (valid JSON, no duplicate names, known dtypes, every tensor's byte range inside the
//! data section, ranges that tile it without gaps or overlaps as the format requires), and every
//! tensor against the model (missing, extra, shape, dtype). Every problem found is reported in
//! one error, not only the first, and only then are the tensors the model uses read, one by
//! one. So a file that claims a 3 GiB tensor the model does not have is refused after reading
//! its header, and `/dev/zero` (not a regular file) is refused at once. Loading is atomic: on
//! any error the store is left exactly as it was.
//!
//! # rand
//! `nn::rand` is the `rand` crate this one is built on, version 0.10, re-exported. The API
//! takes its traits: any `R: rand::Rng` in [`Dense::new`], [`Init::sample`],
//! [`Dropout::with_keep_probability`], [`Dataset::split`] and [`Dataset::shuffled_batches`]
//! (and `tensor::Tensor::random_normal`).
//!
//! A generator from another major version of rand in your own `Cargo.toml` does not implement
//! this version's `Rng`, and the call fails to compile with "the trait bound ...: Rng is not
//! satisfied" (the note mentions two versions of the crate `rand`). Use this re-export, so the
//! versions cannot differ:
//!
//! ```
//! use nn::rand::SeedableRng;
//! use nn::rand::rngs::StdRng;
//! use nn::{Dense, Init, ParamStore};
//!
//! let mut rng = StdRng::seed_from_u64(7);
//! let mut store = ParamStore::<f32>::new();
//! let layer = Dense::new(&mut store, "hidden1", 3, 2, Init::HeNormal, &mut rng).unwrap();
//! # let _ = layer;
//! assert_eq!(store.len(), 2); // weight and bias
//! ```
//!
//! # Errors
//! The contract of `tensor` and `autograd` holds here too (see `autograd`'s crate docs):
//! programmer errors panic in the plain form ([`Layer::forward`], [`mse`], [`cross_entropy`])
//! with the layer or loss and the shapes in the message; the `try_` form
//! ([`Layer::try_forward`], [`try_mse`], [`try_cross_entropy`]) returns an [`NnError`] and
//! changes nothing: a model whose third layer refuses its input has not updated the running
//! statistics of the first (see [`Context::try_atomically`]). Everything that reads the
//! outside world or updates parameters returns `Result` only: [`load_csv`],
//! [`load_safetensors`], [`ParamStore::add`], [`optim::Optimizer::step`] (which refuses
//! gradients taken from another store, or of another shape, before writing any parameter).
//!
//! The library's layers are written with `?` chains, because their input comes from the user;
//! a layer of your own may check its input shape once and then use operators (the [`Layer`]
//! example), which is what the worked examples do.
#![forbid(unsafe_code)]

mod activation;
mod batch_norm;
mod check;
mod checkpoint;
mod data;
mod dense;
mod dropout;
mod embedding;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod init;
mod io;
mod layer;
mod layer_norm;
mod loss;
pub mod optim;
mod params;
mod penalty;
mod per_sample;
mod stats;
#[cfg(test)]
mod test_support;
#[cfg(feature = "testing")]
pub mod testing;
mod training;

// The custom-op guide's examples compile and run as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/custom-ops.md")]
struct CustomOpsGuide;

// So do the diagnostics guide's.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/diagnostics.md")]
struct DiagnosticsGuide;

// And the function-transforms guide's.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/transforms.md")]
struct TransformsGuide;

pub use activation::{Activation, leaky_relu, try_leaky_relu};
pub use batch_norm::BatchNorm1d;
pub use check::gradcheck_layer;
pub use checkpoint::Checkpoint;
pub use data::{
    Batches, CsvOptions, Dataset, MAX_CLASSES, MAX_DECOMPRESSED_BYTES, Standardizer, load_csv,
    parse_csv,
};
pub use dense::Dense;
pub use dropout::{Dropout, dropout_with_mask, try_dropout_with_mask};
pub use embedding::Embedding;
pub use error::{NnError, Result};
pub use init::Init;
pub use io::{
    LoadOptions, MAX_HEADER_BYTES, load_safetensors, load_safetensors_with, read_safetensors,
    safetensors_bytes, save_safetensors,
};
pub use layer::{Layer, Sequential};
pub use layer_norm::LayerNorm;
pub use loss::{
    CrossEntropy, Reduction, accuracy, binary_cross_entropy_with_logits, cross_entropy,
    cross_entropy_per_example, cross_entropy_value, mse, try_binary_cross_entropy_with_logits,
    try_cross_entropy, try_cross_entropy_per_example, try_mse,
};
pub use params::{
    Context, FileLayout, Mode, ParamGradients, ParamId, ParamOptions, ParamStore, Role, StoreId,
    StoreSnapshot,
};
pub use penalty::{l1_penalty, l2_penalty, try_l1_penalty, try_l2_penalty};
pub use per_sample::PerSampleParamGradients;
pub use stats::{ActivationStatistics, LayerRow, LayerStatistics};
pub use training::{EarlyStopping, Progress};

// The rand version the API takes; the crate docs ("rand") say why to use it.
pub use rand;
