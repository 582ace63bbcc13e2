//! Gradient hooks; the docs are on [`GradientHook`].

use std::collections::BTreeMap;
use std::rc::Rc;

use tensor::{Float, Shape, Tensor};

use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// What a hook does with a gradient. Closures `Fn(Tensor<T>) -> Tensor<T>` are hooks for the
/// ordinary backward pass; implement [`on_var`](GradientHook::on_var) too for
/// [`backward_create_graph`](Var::backward_create_graph), where the gradient is a Var and the
/// hook's own computation must be recorded to be differentiated.
///
/// Gradient hooks: a function that sees a node's gradient during backward, once every
/// contribution to it has been summed, and may replace it (PyTorch's `Tensor.register_hook`;
/// on a leaf, `register_post_accumulate_grad_hook`).
///
/// A hook is attached to a node, not recorded as one: the sweep visits nodes in reverse
/// creation order and a node's gradient is complete when the sweep reaches it, so that is where
/// its hooks run (in the order they were registered), before the gradient moves on to the
/// node's inputs. A hook on a leaf runs before the gradient is handed out in
/// [`Gradients`](crate::Gradients). With no hooks registered, the sweep pays one test per call.
///
/// Writing the body once over [`Operand`](crate::Operand) gives both:
///
/// ```
/// use autograd::{GradientHook, Operand, Tape, Var};
/// use tensor::{Float, Tensor};
///
/// /// Scales every gradient passing through by a constant.
/// struct Scale(f64);
///
/// impl Scale {
///     fn apply<O: Operand<f64>>(&self, gradient: O) -> O {
///         gradient.mul_scalar(self.0)
///     }
/// }
///
/// impl GradientHook<f64> for Scale {
///     fn on_tensor(&self, gradient: Tensor<f64>) -> Tensor<f64> {
///         self.apply(gradient)
///     }
///     fn on_var<'t>(&self, gradient: Var<'t, f64>) -> Option<Var<'t, f64>> {
///         Some(self.apply(gradient))
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![3.0], [1]).unwrap());
/// let h = x * x;
/// h.register_hook(Scale(0.5));
/// let dy = h.sum_all().backward_create_graph().wrt(x); // 0.5 * 2x = x
/// assert_eq!(dy.value().to_vec(), vec![3.0]);
/// assert_eq!(dy.sum_all().backward().wrt(x).to_vec(), vec![1.0]);
/// ```
pub trait GradientHook<T: Float>: 'static {
    /// The gradient the sweep continues with: return `gradient` itself to only observe it.
    /// The result must have the node's shape.
    fn on_tensor(&self, gradient: Tensor<T>) -> Tensor<T>;

    /// The same on Vars, for a create-graph backward. `None` (the default) means the hook
    /// cannot be differentiated through: such a backward then fails with
    /// [`AutogradError::HigherOrderUnsupported`] naming the hook.
    fn on_var<'t>(&self, gradient: Var<'t, T>) -> Option<Var<'t, T>> {
        let _ = gradient;
        None
    }
}

impl<T: Float, F: Fn(Tensor<T>) -> Tensor<T> + 'static> GradientHook<T> for F {
    fn on_tensor(&self, gradient: Tensor<T>) -> Tensor<T> {
        self(gradient)
    }
}

/// The hooks of a tape's nodes, by node index.
pub(crate) struct Hooks<T: Float> {
    by_node: BTreeMap<u32, Vec<Rc<dyn GradientHook<T>>>>,
}

impl<T: Float> Default for Hooks<T> {
    fn default() -> Self {
        Hooks {
            by_node: BTreeMap::new(),
        }
    }
}

impl<T: Float> Hooks<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// The hooks of node `index`, in registration order (cloned handles, so the tape is free
    /// while they run).
    pub(crate) fn of(&self, index: usize) -> Option<Vec<Rc<dyn GradientHook<T>>>> {
        self.by_node.get(&u32::try_from(index).ok()?).cloned()
    }

    /// Drops the hooks of nodes from `len` on (a rolled-back or cleared tape).
    pub(crate) fn truncate(&mut self, len: usize) {
        let _ = self
            .by_node
            .split_off(&u32::try_from(len).unwrap_or(u32::MAX));
    }
}

fn shape_checked(index: usize, expected: &Shape, actual: &Shape) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(AutogradError::Transform {
            op: "hook",
            message: format!(
                "the hook on node #{index} returned a gradient of shape {actual} for a node of shape {expected}"
            ),
        })
    }
}

/// Runs node `index`'s hooks on its (complete) gradient, in the plain sweep.
pub(crate) fn run_on_tensor<T: Float>(
    hooks: &[Rc<dyn GradientHook<T>>],
    index: usize,
    mut gradient: Tensor<T>,
) -> Result<Tensor<T>> {
    for hook in hooks {
        let shape = gradient.shape().clone();
        gradient = hook.on_tensor(gradient);
        shape_checked(index, &shape, gradient.shape())?;
    }
    Ok(gradient)
}

/// Runs node `index`'s hooks on its gradient Var, in the create-graph sweep.
pub(crate) fn run_on_var<'t, T: Float>(
    hooks: &[Rc<dyn GradientHook<T>>],
    index: usize,
    mut gradient: Var<'t, T>,
) -> Result<Var<'t, T>> {
    for hook in hooks {
        let shape = gradient.shape();
        gradient = hook
            .on_var(gradient)
            .ok_or_else(|| AutogradError::HigherOrderUnsupported {
                op: format!("the gradient hook on node #{index} (it has no on_var)"),
            })?;
        shape_checked(index, &shape, &gradient.shape())?;
    }
    Ok(gradient)
}

impl<'t, T: Float> Var<'t, T> {
    /// Registers `hook` to run on this node's gradient during every later backward pass that
    /// reaches the node (the backward of a recorded gradient included, as in PyTorch), once
    /// all contributions to it have been summed; the gradient it returns is the one the sweep
    /// continues with (and, for a leaf, the one [`Gradients`](crate::Gradients) hold). Hooks of
    /// one node run in registration order.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0], [2]).unwrap());
    /// let h = x * 3.0;
    /// // Clip the gradient reaching h to [-1, 1] (h is used twice: the hook sees the sum).
    /// h.register_hook(|g: Tensor<f64>| g.clamp(-1.0, 1.0));
    /// let y = (h * 2.0 + h).sum_all(); // dy/dh = 3, clipped to 1
    /// assert_eq!(y.backward().wrt(x).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn register_hook(self, hook: impl GradientHook<T>) {
        self.tape
            .hooks
            .borrow_mut()
            .by_node
            .entry(self.index)
            .or_default()
            .push(Rc::new(hook));
    }
}

impl<T: Float> Tape<T> {
    /// True if any node of the tape has a hook.
    pub fn has_hooks(&self) -> bool {
        !self.hooks.borrow().is_empty()
    }
}
