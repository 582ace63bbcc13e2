//! Gradient checkpointing; the docs are on [`Tape::checkpoint`].

use std::rc::Rc;

use tensor::{Float, Tensor};

use crate::custom::CustomOp;
use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// The segment: a function of its input Vars, recorded on whichever tape they belong to.
type Segment<T> = dyn for<'s> Fn(&[Var<'s, T>]) -> Result<Var<'s, T>>;

/// The node standing for a checkpointed segment.
struct Checkpointed<T: Float> {
    segment: Rc<Segment<T>>,
}

impl<T: Float> CustomOp<T> for Checkpointed<T> {
    fn name(&self) -> &str {
        "checkpoint"
    }

    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let scratch = Tape::new();
        let vars: Vec<Var<'_, T>> = inputs
            .iter()
            .map(|&x| scratch.constant(x.clone()))
            .collect();
        Ok((self.segment)(&vars)?.value())
    }

    fn backward(
        &self,
        grad: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        let scratch = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|&x| scratch.leaf(x.clone())).collect();
        // The segment succeeded on these values in the forward pass, and is deterministic.
        let output = (self.segment)(&leaves).unwrap_or_else(|error| {
            panic!("checkpoint: the segment failed on recomputation: {error}")
        });
        match output.try_backward_with(grad.clone()) {
            Ok(gradients) => leaves
                .iter()
                .map(|&leaf| gradients.get(leaf).cloned())
                .collect(),
            Err(AutogradError::NoGradientPath) => vec![None; inputs.len()],
            Err(error) => panic!("checkpoint: the recomputed backward failed: {error}"),
        }
    }
}

impl<T: Float> Tape<T> {
    /// Records `segment` applied to `inputs` as a checkpointed segment (gradient checkpointing):
    /// only the inputs and the output stay on this tape; the segment is recomputed during
    /// backward. `segment` receives its inputs as Vars of a scratch tape and must reach
    /// everything it depends on through them (pass parameters as inputs), which the `'static`
    /// bound enforces. Errors are the segment's own, and nothing is recorded then.
    ///
    /// How: the segment runs on a scratch tape of its own and is recorded on the caller's tape
    /// as one node (a custom op) whose inputs are the segment's inputs. Its intermediate values
    /// live only as long as the scratch tape: during the forward pass, and again during the
    /// backward pass, when the node's rule reruns the segment on a fresh scratch tape and
    /// sweeps it with the gradient that reached the node. The same ops on the same values in
    /// the same order give the same bits, so a checkpointed model's gradients equal the plain
    /// model's exactly (anything random in the segment must be a function of its inputs and
    /// fixed state, as dropout masks are of (seed, step, shape)).
    ///
    /// The trade: memory for the segment's intermediates (its activations, masks, batch
    /// statistics) against one more forward pass of the segment per backward pass.
    ///
    /// Higher-order gradients and forward mode through a checkpoint are named errors. The
    /// segment must be deterministic: it is rerun during backward, where a custom op's rule
    /// cannot return an error, so a segment that succeeds in the forward pass and then fails on
    /// its rerun panics (naming the segment's error) instead of returning it.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap());
    /// let w = tape.leaf(Tensor::from_vec(vec![2.0, 3.0], [2]).unwrap());
    /// let y = tape.checkpoint(&[x, w], |v| Ok((v[0] * v[1]).tanh().exp())).unwrap().sum_all();
    /// let plain = (x * w).tanh().exp().sum_all();
    /// assert_eq!(y.value(), plain.value());
    /// assert_eq!(y.backward().wrt(w), plain.backward().wrt(w)); // bit for bit
    /// ```
    #[track_caller]
    pub fn checkpoint<'t, F>(&'t self, inputs: &[Var<'t, T>], segment: F) -> Result<Var<'t, T>>
    where
        F: for<'s> Fn(&[Var<'s, T>]) -> Result<Var<'s, T>> + 'static,
    {
        self.try_custom_op(
            Checkpointed {
                segment: Rc::new(segment),
            },
            inputs,
        )
    }
}
