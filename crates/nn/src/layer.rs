//! The [`Layer`] trait and [`Sequential`], a stack of layers.

use std::fmt;

use autograd::{Tape, Var};
use tensor::{Float, Shape, Tensor};

use crate::error::{Result, or_panic};
use crate::params::{Context, ParamStore};
use crate::stats::LayerStatistics;

/// A building block of a model: a function of its input and its parameters, written with
/// autograd ops so its gradient is derived by the tape.
///
/// `output_shape` states the layer's shape contract without touching anything; [`Sequential`]
/// checks a whole stack with it before running any layer, so a shape error leaves the model
/// (and batch norm's running statistics) as it was.
///
/// A user-written layer, with its parameters in the store:
///
/// ```
/// use autograd::Var;
/// use nn::{Context, Init, Layer, Mode, NnError, ParamId, ParamStore, Role};
/// use rand::SeedableRng;
/// use tensor::{Float, Shape, Tensor};
///
/// /// y = x * scale + shift, with a learnable scale and shift per feature.
/// struct Affine {
///     scale: ParamId,
///     shift: ParamId,
///     features: usize,
/// }
///
/// impl Affine {
///     fn new<T: Float>(store: &mut ParamStore<T>, name: &str, features: usize) -> Result<Self, NnError> {
///         let scale = store.add(format!("{name}.scale"), Role::Scale, Tensor::ones([features]))?;
///         let shift = store.add(format!("{name}.shift"), Role::Shift, Tensor::zeros([features]))?;
///         Ok(Affine { scale, shift, features })
///     }
/// }
///
/// impl<T: Float> Layer<T> for Affine {
///     fn name(&self) -> &str {
///         "affine"
///     }
///     fn output_shape(&self, input: &Shape) -> Result<Shape, NnError> {
///         match input.dims() {
///             [_, n] if *n == self.features => Ok(input.clone()),
///             _ => Err(NnError::Shape { op: "affine".into(), message: format!("expected [batch, {}], got {input}", self.features) }),
///         }
///     }
///     fn try_forward<'t>(&self, context: &mut Context<'t, '_, T>, x: Var<'t, T>) -> Result<Var<'t, T>, NnError> {
///         Layer::<T>::output_shape(self, &x.shape())?;
///         Ok(x * context.param(self.scale) + context.param(self.shift))
///     }
/// }
///
/// let mut store = ParamStore::<f64>::new();
/// let layer = Affine::new(&mut store, "affine1", 3).unwrap();
/// let tape = autograd::Tape::new();
/// let mut context = Context::new(&tape, &mut store, Mode::Eval);
/// let y = layer.forward(&mut context, tape.constant(Tensor::ones([2, 3])));
/// assert_eq!(y.value().to_vec(), vec![1.0; 6]);
/// ```
///
/// Layers are `Send + Sync` (a supertrait), so a model is shared by reference across threads
/// for evaluation ([`Context::eval`]) or moved to a worker; a layer keeps its parameters in the
/// [`ParamStore`](crate::ParamStore), not in itself, and needs no interior mutability.
pub trait Layer<T: Float = f32>: Send + Sync {
    /// The layer's name, for messages and per-layer statistics.
    fn name(&self) -> &str;

    /// The output shape for an input of shape `input`, or an error naming the layer and what
    /// it expected. Must not change anything.
    fn output_shape(&self, input: &Shape) -> Result<Shape>;

    /// The forward pass. Errors (before recording anything or touching any state) if the
    /// input does not fit.
    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>>;

    /// [`try_forward`](Layer::try_forward), panicking with the error's message.
    #[track_caller]
    fn forward<'t>(&self, context: &mut Context<'t, '_, T>, x: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(context, x))
    }

    /// The layer's output for `x` in evaluation mode, recorded on nothing (a fresh tape under
    /// [`no_grad`](autograd::Tape::no_grad)): PyTorch's `model.eval()` then
    /// `with torch.no_grad(): model(x)`, from a shared store.
    fn predict(&self, store: &ParamStore<T>, x: &Tensor<T>) -> Result<Tensor<T>> {
        let tape = Tape::new();
        tape.no_grad(|| {
            let mut context = Context::eval(&tape, store);
            let input = tape.constant(x.clone());
            self.try_forward(&mut context, input).map(|y| y.value())
        })
    }
}

/// Layers applied one after another.
///
/// ```
/// use nn::{Activation, Dense, Init, ParamStore, Sequential};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f32>::new();
/// let model = Sequential::<f32>::new()
///     .with(Dense::new(&mut store, "hidden1", 4, 8, Init::HeNormal, &mut rng).unwrap())
///     .with(Activation::Relu)
///     .with(Dense::new(&mut store, "output", 8, 3, Init::XavierNormal, &mut rng).unwrap());
/// assert_eq!(model.len(), 3);
/// ```
pub struct Sequential<T: Float = f32> {
    layers: Vec<Box<dyn Layer<T>>>,
}

// A model is shared across threads and moved to workers (`Layer: Send + Sync`).
const _: () = {
    const fn send_and_sync<S: Send + Sync>() {}
    send_and_sync::<Sequential<f32>>();
    send_and_sync::<crate::ParamStore<f64>>();
};

impl<T: Float> fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.name()))
            .finish()
    }
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Sequential::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty stack (the identity).
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// The stack with `layer` appended.
    pub fn with(mut self, layer: impl Layer<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Layer<T> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers, in order.
    pub fn layers(&self) -> impl Iterator<Item = &dyn Layer<T>> {
        self.layers.iter().map(|l| l.as_ref())
    }

    /// Runs the layers, calling `observe(layer, output)` after each: for per-layer statistics
    /// (activation means, standard deviations, dead units) without changing the model. Each
    /// layer's ops are recorded in a tape scope named after it, so anomaly reports and tape
    /// summaries name the layer. If any layer fails, the buffer writes of the layers before it
    /// are undone ([`Context::try_atomically`]): a failed forward pass changes no state.
    pub fn try_forward_observed<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
        mut observe: impl FnMut(&dyn Layer<T>, Var<'t, T>),
    ) -> Result<Var<'t, T>> {
        self.output_shape(&x.shape())?;
        let tape = context.tape();
        // All or nothing: if a later layer fails (an anomaly, a custom layer's error), the
        // buffer writes of the earlier ones (batch norm's running statistics) are undone.
        context.try_atomically(|context| {
            let mut h = x;
            for layer in &self.layers {
                h = tape.with_scope(layer.name(), || layer.try_forward(context, h))?;
                observe(layer.as_ref(), h);
            }
            Ok(h)
        })
    }

    /// The forward pass, recording each layer's output statistics into `statistics`.
    pub fn forward_with_statistics<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
        statistics: &mut LayerStatistics,
    ) -> Result<Var<'t, T>> {
        self.try_forward_observed(context, x, |layer, output| {
            statistics.record_activation(layer.name(), &output.value())
        })
    }
}

impl<T: Float> Layer<T> for Sequential<T> {
    fn name(&self) -> &str {
        "sequential"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.layers
            .iter()
            .try_fold(input.clone(), |shape, layer| layer.output_shape(&shape))
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        self.try_forward_observed(context, x, |_, _| {})
    }
}
