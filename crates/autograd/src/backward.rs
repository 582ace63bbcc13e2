//! The backward sweep; how it works is on [`Gradients`].

use smallvec::SmallVec;
use tensor::{Float, Tensor};

use crate::diagnostics::BackwardSite;
use crate::error::{AutogradError, Result, or_panic};
use crate::hooks;
use crate::operand::Operand;
use crate::ops;
use crate::tape::{Tape, Var};

/// The gradients of a scalar (or seeded) output with respect to every trainable leaf it
/// depends on. Read them with [`wrt`](Gradients::wrt) or [`get`](Gradients::get).
///
/// How they are computed: the sweep walks node indices from the output down to 0: creation order is a topological
/// order, so there is no recursion and no sort. Gradients live in one slot per node, are taken
/// out of the slot when the sweep reaches their node (and freed once its rule has run), and are
/// added into the slots of the node's inputs: moved when the slot is empty, summed in place
/// when the slot owns its buffer.
pub struct Gradients<'t, T: Float> {
    tape: &'t Tape<T>,
    /// Leaf node index and gradient, sorted by index.
    leaves: Vec<(u32, Tensor<T>)>,
    /// Every node's gradient, when the backward pass was asked to retain them.
    retained: Option<Vec<Option<Tensor<T>>>>,
}

impl<T: Float> std::fmt::Debug for Gradients<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gradients")
            .field("leaves", &self.leaves.len())
            .finish()
    }
}

impl<'t, T: Float> Gradients<'t, T> {
    /// The gradient for `leaf`, if the output depends on it.
    /// Panics if `leaf` belongs to another tape.
    #[track_caller]
    pub fn get(&self, leaf: Var<'t, T>) -> Option<&Tensor<T>> {
        or_panic(self.tape.check_owns("Gradients::get", &leaf));
        self.leaves
            .binary_search_by_key(&leaf.index, |(i, _)| *i)
            .ok()
            .map(|at| &self.leaves[at].1)
    }

    /// The gradient for a trainable leaf: zeros of its shape if the output does not depend on
    /// it. Panics if `leaf` is not a trainable leaf of this tape (gradients are kept for
    /// leaves only; intermediate ones are freed during the sweep).
    #[track_caller]
    pub fn wrt(&self, leaf: Var<'t, T>) -> Tensor<T> {
        if let Some(gradient) = self.get(leaf) {
            return gradient.clone();
        }
        assert_trainable_leaf(self.tape, leaf);
        Tensor::zeros(leaf.shape())
    }

    /// Number of leaves that received a gradient.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// True if no leaf received a gradient.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The gradient of any node, if the backward pass retained them all
    /// ([`Var::try_backward_retaining_all`]); `None` otherwise or if no gradient reached it.
    pub fn of_node(&self, var: Var<'t, T>) -> Option<&Tensor<T>> {
        self.retained
            .as_ref()?
            .get(var.index())
            .and_then(Option::as_ref)
    }

    /// The Euclidean norm of a node's retained gradient.
    pub fn norm_of_node(&self, index: usize) -> Option<f64> {
        let gradient = self.retained.as_ref()?.get(index)?.as_ref()?;
        Some(
            gradient
                .to_vec()
                .iter()
                .map(|g| g.to_f64() * g.to_f64())
                .sum::<f64>()
                .sqrt(),
        )
    }

    /// The retained gradient of the node at `index`, if any.
    pub(crate) fn retained(&self, index: usize) -> Option<&Tensor<T>> {
        self.retained.as_ref()?.get(index)?.as_ref()
    }

    /// The leaves with gradients, as (node index, gradient), by increasing index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Tensor<T>)> {
        self.leaves.iter().map(|(i, g)| (*i as usize, g))
    }
}

/// Gradients recorded as [`Var`]s on the tape (from
/// [`backward_create_graph`](Var::backward_create_graph)), so they can be differentiated again.
pub struct GradientVars<'t, T: Float> {
    tape: &'t Tape<T>,
    leaves: Vec<(u32, Var<'t, T>)>,
}

impl<T: Float> std::fmt::Debug for GradientVars<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientVars")
            .field("leaves", &self.leaves.len())
            .finish()
    }
}

impl<'t, T: Float> GradientVars<'t, T> {
    /// The gradient for `leaf` as a Var: a constant zero of its shape if the output does not
    /// depend on it. Panics if `leaf` is not a trainable leaf of this tape.
    #[track_caller]
    pub fn wrt(&self, leaf: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.tape.check_owns("GradientVars::wrt", &leaf));
        match self.leaves.binary_search_by_key(&leaf.index, |(i, _)| *i) {
            Ok(at) => self.leaves[at].1,
            Err(_) => {
                assert_trainable_leaf(self.tape, leaf);
                self.tape.constant(Tensor::zeros(leaf.shape()))
            }
        }
    }
}

#[track_caller]
fn assert_trainable_leaf<T: Float>(tape: &Tape<T>, leaf: Var<'_, T>) {
    let nodes = tape.nodes();
    let node = &nodes[leaf.index()];
    if !node.is_leaf() {
        panic!(
            "wrt: node #{} is not a trainable leaf; gradients are kept for leaves made with Tape::leaf only",
            leaf.index()
        );
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Gradients of this scalar output with respect to every trainable leaf. Panics if the
    /// output has more than one element or depends on no trainable leaf.
    #[track_caller]
    pub fn backward(self) -> Gradients<'t, T> {
        or_panic(self.try_backward())
    }

    /// Fallible [`backward`](Var::backward).
    pub fn try_backward(self) -> Result<Gradients<'t, T>> {
        let shape = self.shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NonScalarOutput { shape });
        }
        self.try_backward_with(Tensor::ones(shape))
    }

    /// Gradients of `sum(seed * output)`: the vector-Jacobian product with `seed`, which must
    /// have the output's shape.
    #[track_caller]
    pub fn backward_with(self, seed: Tensor<T>) -> Gradients<'t, T> {
        or_panic(self.try_backward_with(seed))
    }

    /// Fallible [`backward_with`](Var::backward_with).
    pub fn try_backward_with(self, seed: Tensor<T>) -> Result<Gradients<'t, T>> {
        self.check_seed(seed.shape())?;
        let (leaves, retained) =
            sweep_tensors(self.tape, self.index as usize, seed, Retain::Leaves)?;
        Ok(Gradients {
            tape: self.tape,
            leaves,
            retained,
        })
    }

    /// [`backward_with`](Var::backward_with) (or [`backward`](Var::backward) when `seed` is
    /// `None`) that also keeps the gradient of **every** node, for inspection
    /// ([`Gradients::of_node`], [`Tape::summary`](crate::Tape::summary),
    /// [`Tape::to_dot`](crate::Tape::to_dot)). Costs one gradient buffer per node.
    pub fn try_backward_retaining_all(self, seed: Option<Tensor<T>>) -> Result<Gradients<'t, T>> {
        let seed = match seed {
            Some(seed) => seed,
            None => {
                let shape = self.shape();
                if shape.numel() != 1 {
                    return Err(AutogradError::NonScalarOutput { shape });
                }
                Tensor::ones(shape)
            }
        };
        self.check_seed(seed.shape())?;
        let (leaves, retained) = sweep_tensors(self.tape, self.index as usize, seed, Retain::All)?;
        Ok(Gradients {
            tape: self.tape,
            leaves,
            retained,
        })
    }

    /// [`backward_with`](Var::backward_with) that also keeps the gradients of the nodes in
    /// `keep` (any nodes, not only leaves), read with [`Gradients::of_node`]: PyTorch's
    /// `torch.autograd.grad(outputs, inputs=[...])` for intermediate values. A node the output
    /// does not depend on has none.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    /// let h = x * 3.0;
    /// let y = h.square().sum_all();
    /// let grads = y.try_backward_keeping(Tensor::ones([]), &[h]).unwrap();
    /// assert_eq!(grads.of_node(h).unwrap().to_vec(), vec![6.0, 12.0]); // 2 h
    /// ```
    pub fn try_backward_keeping(
        self,
        seed: Tensor<T>,
        keep: &[Var<'t, T>],
    ) -> Result<Gradients<'t, T>> {
        self.check_seed(seed.shape())?;
        let mut marks = vec![false; self.index as usize + 1];
        for var in keep {
            self.tape.check_owns("backward_keeping", var)?;
            if let Some(mark) = marks.get_mut(var.index()) {
                *mark = true;
            }
        }
        let (leaves, retained) =
            sweep_tensors(self.tape, self.index as usize, seed, Retain::Nodes(&marks))?;
        Ok(Gradients {
            tape: self.tape,
            leaves,
            retained,
        })
    }

    /// Gradients recorded on the tape as Vars, by evaluating the same backward rules on Vars,
    /// so they can be differentiated again (PyTorch's `create_graph=True`).
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![2.0], [1]).unwrap());
    /// let y = x.powf(3.0).sum_all();
    /// let dy = y.backward_create_graph().wrt(x); // 3 x^2 = 12
    /// let d2y = dy.sum_all().backward().wrt(x); // 6 x = 12
    /// assert_eq!(dy.value().to_vec(), vec![12.0]);
    /// assert_eq!(d2y.to_vec(), vec![12.0]);
    /// ```
    #[track_caller]
    pub fn backward_create_graph(self) -> GradientVars<'t, T> {
        or_panic(self.try_backward_create_graph())
    }

    /// Fallible [`backward_create_graph`](Var::backward_create_graph). Errors name any op on
    /// the path that cannot provide higher-order gradients.
    pub fn try_backward_create_graph(self) -> Result<GradientVars<'t, T>> {
        let shape = self.shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NonScalarOutput { shape });
        }
        let seed = self.tape.constant(Tensor::ones(shape));
        self.try_backward_create_graph_with(seed)
    }

    /// [`backward_create_graph`](Var::backward_create_graph) with a seed (a Var of the
    /// output's shape, itself differentiable).
    pub fn try_backward_create_graph_with(self, seed: Var<'t, T>) -> Result<GradientVars<'t, T>> {
        self.tape.check_owns("backward_create_graph", &seed)?;
        self.check_seed(&seed.shape())?;
        let leaves = sweep_vars(self.tape, self.index as usize, seed)?;
        Ok(GradientVars {
            tape: self.tape,
            leaves,
        })
    }

    fn check_seed(&self, seed: &tensor::Shape) -> Result<()> {
        let output = self.shape();
        if &output != seed {
            return Err(AutogradError::SeedShape {
                output,
                seed: seed.clone(),
            });
        }
        if !self.requires_grad() {
            return Err(AutogradError::NoGradientPath);
        }
        Ok(())
    }
}

/// The gradients in flight during a sweep. Each node has a 4-byte index into a small pool of
/// live gradients, so memory grows with the sweep's frontier (usually a handful of gradients),
/// not with the length of the tape.
struct Slots<G> {
    /// Pool position of each node's gradient, or `EMPTY`.
    position: Vec<u32>,
    live: Vec<Option<G>>,
    free: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

impl<G> Slots<G> {
    fn new(nodes: usize) -> Self {
        Slots {
            position: vec![EMPTY; nodes],
            live: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Removes and returns a node's gradient.
    fn take(&mut self, node: usize) -> Option<G> {
        let at = std::mem::replace(&mut self.position[node], EMPTY);
        if at == EMPTY {
            return None;
        }
        self.free.push(at);
        self.live[at as usize].take()
    }

    /// Adds `gradient` to a node's gradient: a move when it has none yet, `combine` otherwise.
    fn add(&mut self, node: usize, gradient: G, combine: impl FnOnce(G, G) -> G) {
        let at = self.position[node];
        if at != EMPTY {
            let previous = self.live[at as usize]
                .take()
                .expect("a live slot holds a gradient");
            self.live[at as usize] = Some(combine(previous, gradient));
            return;
        }
        let at = self.free.pop().unwrap_or_else(|| {
            self.live.push(None);
            (self.live.len() - 1) as u32
        });
        self.live[at as usize] = Some(gradient);
        self.position[node] = at;
    }
}

/// The forward values of a node's inputs and whether each needs a gradient. Built-in ops have
/// at most two inputs, held inline; only a custom op with more spills to the heap.
fn input_values<'a, T: Float>(
    nodes: &'a crate::tape::NodeStore<T>,
    indices: &[u32],
) -> (SmallVec<[&'a Tensor<T>; 2]>, SmallVec<[bool; 2]>) {
    if let [first] | [first, _] = indices {
        let first = &nodes[*first as usize];
        let second = indices.get(1).map(|&i| &nodes[i as usize]);
        let values = match second {
            Some(second) => SmallVec::from_buf([&first.value, &second.value]),
            None => SmallVec::from_buf_and_len([&first.value, &first.value], 1),
        };
        let needs = SmallVec::from_buf_and_len(
            [
                first.requires_grad(),
                second.is_some_and(|s| s.requires_grad()),
            ],
            indices.len(),
        );
        return (values, needs);
    }
    indices
        .iter()
        .map(|&i| (&nodes[i as usize].value, nodes[i as usize].requires_grad()))
        .unzip()
}

/// Leaf gradients by index, and every node's gradient when `retain_all`.
type SweepResult<T> = (Vec<(u32, Tensor<T>)>, Option<Vec<Option<Tensor<T>>>>);

/// Which gradients besides the leaves' a sweep keeps.
#[derive(Clone, Copy)]
enum Retain<'a> {
    Leaves,
    All,
    /// The nodes marked true (indexed by node).
    Nodes(&'a [bool]),
}

/// The plain sweep: rules evaluated on tensors; returns the leaves' gradients by index.
fn sweep_tensors<T: Float>(
    tape: &Tape<T>,
    root: usize,
    seed: Tensor<T>,
    retain: Retain<'_>,
) -> Result<SweepResult<T>> {
    let nodes = tape.nodes();
    let mut slots = Slots::new(root + 1);
    slots.add(root, seed, |_, seed| seed);
    let mut leaves = Vec::new();
    let mut retained: Option<Vec<Option<Tensor<T>>>> =
        (!matches!(retain, Retain::Leaves)).then(|| vec![None; root + 1]);
    let hooked = tape.has_hooks();
    for index in (0..=root).rev() {
        let Some(mut grad) = slots.take(index) else {
            continue;
        };
        if hooked {
            let hooks = tape.hooks.borrow().of(index);
            if let Some(hooks) = hooks {
                grad = hooks::run_on_tensor(&hooks, index, grad)?;
            }
        }
        if let Some(retained) = &mut retained {
            let keep = match retain {
                Retain::Nodes(marks) => marks[index],
                Retain::All | Retain::Leaves => true,
            };
            if keep {
                // A shared handle: rules that would write into `grad` in place allocate instead.
                retained[index] = Some(grad.clone());
            }
        }
        let node = &nodes[index];
        let Some(op) = node.op() else {
            if node.requires_grad() {
                leaves.push((index as u32, grad));
            }
            continue;
        };
        let input_indices = op.input_indices(&node.inputs);
        let (inputs, needs) = input_values(&nodes, input_indices);
        // Anomaly mode's watch, off the sweep's path unless enabled.
        let site = if tape.checks_backward() {
            Some(BackwardSite::watch(tape, &nodes, index, op, &needs, &grad)?)
        } else {
            None
        };
        ops::backward(
            op,
            grad,
            &inputs,
            &node.value,
            &needs,
            |position, gradient| {
                let input = input_indices[position] as usize;
                if let Some(site) = &site {
                    site.check(position, input, &gradient)?;
                }
                debug_assert_eq!(
                    gradient.shape(),
                    nodes[input].value.shape(),
                    "rule of {}",
                    op.name()
                );
                slots.add(input, gradient, |previous, gradient| {
                    previous.accumulate(&gradient)
                });
                Ok(())
            },
        )?;
    }
    leaves.reverse();
    Ok((leaves, retained))
}

/// The create-graph sweep: the same rules evaluated on Vars, recording the gradient
/// computation on the tape. Nodes appended during the sweep come after `root` and are never
/// visited by it.
fn sweep_vars<'t, T: Float>(
    tape: &'t Tape<T>,
    root: usize,
    seed: Var<'t, T>,
) -> Result<Vec<(u32, Var<'t, T>)>> {
    let mut slots = Slots::new(root + 1);
    slots.add(root, seed, |_, seed| seed);
    let mut leaves = Vec::new();
    let hooked = tape.has_hooks();
    for index in (0..=root).rev() {
        let Some(mut grad) = slots.take(index) else {
            continue;
        };
        if hooked {
            let hooks = tape.hooks.borrow().of(index);
            if let Some(hooks) = hooks {
                grad = hooks::run_on_var(&hooks, index, grad)?;
            }
        }
        // Copy out what the rule needs, so the tape is free to record while the rule runs.
        let (op, input_indices, needs) = {
            let nodes = tape.nodes();
            let node = &nodes[index];
            let Some(op) = node.op().cloned() else {
                if node.requires_grad() {
                    leaves.push((index as u32, grad));
                }
                continue;
            };
            let input_indices: SmallVec<[u32; 2]> =
                op.input_indices(&node.inputs).iter().copied().collect();
            let needs: SmallVec<[bool; 2]> = input_indices
                .iter()
                .map(|&i| nodes[i as usize].requires_grad())
                .collect();
            (op, input_indices, needs)
        };
        let inputs: SmallVec<[Var<'t, T>; 2]> = input_indices
            .iter()
            .map(|&i| Var { tape, index: i })
            .collect();
        let input_refs: SmallVec<[&Var<'t, T>; 2]> = inputs.iter().collect();
        let output = Var {
            tape,
            index: index as u32,
        };
        let site = if tape.checks_backward() {
            let nodes = tape.nodes();
            let incoming = &nodes[grad.index()].value;
            Some(BackwardSite::watch(
                tape, &nodes, index, &op, &needs, incoming,
            )?)
        } else {
            None
        };
        // The rule records the gradient computation on the tape; its non-finite values are
        // this rule's (a backward anomaly), checked below, not a forward one.
        tape.recording_gradients(|| {
            ops::backward(
                &op,
                grad,
                &input_refs,
                &output,
                &needs,
                |position, gradient| {
                    let input = input_indices[position] as usize;
                    if let Some(site) = &site {
                        site.check(position, input, &gradient.value())?;
                    }
                    slots.add(input, gradient, |previous, gradient| {
                        Operand::add(previous, &gradient)
                    });
                    Ok(())
                },
            )
        })?;
    }
    leaves.reverse();
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_errors_are_named() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones([2, 3]));
        assert_eq!(
            x.exp().try_backward().unwrap_err().to_string(),
            "backward: the output has shape [2, 3] (6 elements); call backward_with(seed) for a non-scalar output"
        );
        assert_eq!(
            x.exp()
                .try_backward_with(Tensor::ones([3]))
                .unwrap_err()
                .to_string(),
            "backward_with: seed shape [3] differs from output shape [2, 3]"
        );
        let c = tape.constant(Tensor::ones([1]));
        assert_eq!(
            c.exp().sum_all().try_backward().unwrap_err().to_string(),
            "backward: the output does not depend on any leaf that requires a gradient"
        );
    }

    #[test]
    fn disconnected_leaf_gets_zeros_and_non_leaf_is_refused() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones([2]));
        let unused = tape.leaf(Tensor::ones([3]));
        let hidden = x.exp();
        let grads = hidden.sum_all().backward();
        assert_eq!(grads.wrt(unused).to_vec(), vec![0.0; 3]);
        assert!(grads.get(unused).is_none());
        assert_eq!(grads.len(), 1);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grads.wrt(hidden)));
        assert!(refused.is_err());
    }

    #[test]
    fn gradients_of_another_tape_are_refused() {
        let first = Tape::<f64>::new();
        let second = Tape::<f64>::new();
        let x = first.leaf(Tensor::ones([1]));
        let y = second.leaf(Tensor::ones([1]));
        let grads = x.sum_all().backward();
        let refused =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grads.get(y).is_some()));
        assert!(refused.is_err());
    }

    #[test]
    fn long_chain_backpropagates_without_recursion() {
        // 10^5 nodes in the debug suite; the benchmark runs 2 * 10^5 on the main thread.
        let tape = Tape::<f64>::with_capacity(100_001);
        let x = tape.leaf(Tensor::ones([1]));
        let mut y = x;
        for _ in 0..100_000 {
            y = y.mul_scalar(1.000001);
        }
        let grad = y.sum_all().backward().wrt(x).item();
        assert!((grad - 1.000001_f64.powi(100_000)).abs() < 1e-9);
    }

    #[test]
    fn backward_twice_gives_identical_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![0.3, -0.7], [2]).unwrap());
        let y = (x.tanh() * x).sum_all();
        assert_eq!(y.backward().wrt(x), y.backward().wrt(x));
    }

    #[test]
    fn second_derivatives_through_create_graph() {
        let tape = Tape::<f64>::new();
        let values = [-0.8, 0.1, 1.3];
        let x = tape.leaf(Tensor::from_vec(values.to_vec(), [3]).unwrap());
        let dy = x.tanh().sum_all().backward_create_graph().wrt(x);
        let d2y = dy.sum_all().backward().wrt(x).to_vec();
        for (v, d2) in values.iter().zip(d2y) {
            let t = v.tanh();
            let closed = -2.0 * t * (1.0 - t * t);
            assert!((d2 - closed).abs() < 1e-14, "{d2} vs {closed}");
        }
    }
}
