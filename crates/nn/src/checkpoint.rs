//! [`Checkpoint`], a gradient-checkpointing layer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use autograd::{AutogradError, Var};
use tensor::{Float, Shape, Tensor};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::{Context, ParamId};

/// Buffer values a run of the block wrote (batch norm's running statistics).
type Written<T> = Rc<RefCell<Vec<(ParamId, Tensor<T>)>>>;

/// Wraps a layer (often a [`Sequential`](crate::Sequential) block) so that a forward pass keeps
/// only the block's input and output on the tape; the backward pass reruns the block at the
/// same training step (so dropout draws the same masks) and sweeps it. Gradients equal the plain
/// model's bit for bit. Batch norm's running statistics are updated once, by the forward pass:
/// the rerun writes into a copy of the store that is dropped.
///
/// A layer whose intermediate values are recomputed in the backward pass instead of kept
/// (gradient checkpointing, PyTorch's `torch.utils.checkpoint`), built on
/// [`Tape::checkpoint`](autograd::Tape::checkpoint).
///
/// The trade: the block's activations, masks and batch statistics are not held between the
/// forward and the backward pass, for one more forward pass of the block per step
/// (`crates/bench` W2c measures both).
///
/// ```
/// use autograd::Tape;
/// use nn::{Activation, Checkpoint, Context, Dense, Init, Layer, Mode, ParamStore, Sequential};
/// use rand::SeedableRng;
/// use tensor::Tensor;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f64>::new();
/// let block = Sequential::new()
///     .with(Dense::new(&mut store, "hidden", 3, 4, Init::HeNormal, &mut rng).unwrap())
///     .with(Activation::Tanh);
/// let model = Sequential::new().with(Checkpoint::new(block));
/// let tape = Tape::new();
/// let mut context = Context::new(&tape, &mut store, Mode::Train);
/// let y = model.forward(&mut context, tape.constant(Tensor::ones([2, 3])));
/// assert_eq!(y.shape().dims(), &[2, 4]);
/// ```
pub struct Checkpoint<T: Float = f32> {
    layer: Arc<dyn Layer<T>>,
}

impl<T: Float> std::fmt::Debug for Checkpoint<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checkpoint({})", self.layer.name())
    }
}

impl<T: Float> Checkpoint<T> {
    /// Checkpoints `layer`.
    pub fn new(layer: impl Layer<T> + 'static) -> Self {
        Checkpoint {
            layer: Arc::new(layer),
        }
    }
}

impl<T: Float> Layer<T> for Checkpoint<T> {
    fn name(&self) -> &str {
        self.layer.name()
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.layer.output_shape(input)
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        self.layer.output_shape(&x.shape())?;
        let mut snapshot = context.store().clone();
        if let Some(step) = context.training_step() {
            snapshot.set_training_step(step);
        }
        let mode = context.mode();
        let mut inputs = vec![x];
        inputs.extend(context.trainable().map(|(_, _, var)| var));
        // What the run inside the forward pass wrote to buffers, and the layer's own error.
        let written: Written<T> = Rc::default();
        let failure: Rc<RefCell<Option<NnError>>> = Rc::default();
        let (layer, written_by_run, failure_of_run) =
            (self.layer.clone(), written.clone(), failure.clone());
        // Written inline in the call, so that it gets the signature `checkpoint` asks for.
        let recorded = context.tape().checkpoint(&inputs, move |vars| {
            let mut store = snapshot.clone();
            let run = Context::with_vars(vars[0].tape(), &mut store, &vars[1..], mode)
                .and_then(|mut scratch| layer.try_forward(&mut scratch, vars[0]));
            let output = match run {
                Ok(output) => output,
                Err(error) => {
                    let message = error.to_string();
                    *failure_of_run.borrow_mut() = Some(error);
                    return Err(AutogradError::CustomOp {
                        name: "checkpoint".to_string(),
                        message,
                    });
                }
            };
            *written_by_run.borrow_mut() = store
                .iter()
                .filter(|(id, _, role, value)| {
                    role.is_buffer() && !value.shares_storage_with(snapshot.value(*id))
                })
                .map(|(id, _, _, value)| (id, value.clone()))
                .collect();
            Ok(output)
        });
        let output = match recorded {
            Ok(output) => output,
            Err(error) => return Err(failure.borrow_mut().take().unwrap_or(error.into())),
        };
        // The forward run's buffer writes, once (the backward rerun writes into a dropped copy).
        for (id, value) in written.borrow_mut().drain(..) {
            context.set_buffer(id, value);
        }
        Ok(output)
    }
}
