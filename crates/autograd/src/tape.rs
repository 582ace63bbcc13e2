//! The tape (a Wengert list of nodes) and [`Var`], the `Copy` handle to one of its nodes.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::panic::Location;

use smallvec::SmallVec;
use tensor::{Float, Shape, Tensor};

use crate::diagnostics::{AnomalyMode, Provenance, forward_report, has_non_finite};
use crate::error::{AutogradError, Result, or_panic};
use crate::ops::Primitive;

/// What a node is for the backward pass.
pub(crate) enum NodeKind<T: Float> {
    /// No gradient flows through it: a constant, or anything recorded without a gradient path
    /// (it keeps no backward data at all).
    Constant,
    /// A trainable input; the sweep collects its gradient.
    Leaf,
    /// The result of an op that a gradient must flow back through.
    Op(Primitive<T>),
}

/// One entry of the tape: the value, what produced it, and its inputs. 128 bytes, so the
/// compiler copies it inline.
pub(crate) struct Node<T: Float> {
    pub(crate) value: Tensor<T>,
    kind: NodeKind<T>,
    /// Input node indices; only the op's own inputs are meaningful.
    pub(crate) inputs: [u32; 2],
}

impl<T: Float> Node<T> {
    fn input(value: Tensor<T>, trainable: bool) -> Self {
        let kind = if trainable {
            NodeKind::Leaf
        } else {
            NodeKind::Constant
        };
        Node {
            value,
            kind,
            inputs: [0; 2],
        }
    }

    fn recorded(value: Tensor<T>, op: Primitive<T>, inputs: [u32; 2], requires_grad: bool) -> Self {
        let kind = if requires_grad {
            NodeKind::Op(op)
        } else {
            NodeKind::Constant
        };
        Node {
            value,
            kind,
            inputs,
        }
    }

    /// The op a gradient must flow back through, if any.
    pub(crate) fn op(&self) -> Option<&Primitive<T>> {
        match &self.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }

    /// True if a gradient flows from this node to a trainable leaf.
    pub(crate) fn requires_grad(&self) -> bool {
        !matches!(self.kind, NodeKind::Constant)
    }

    /// True for a trainable input.
    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self.kind, NodeKind::Leaf)
    }
}

/// Nodes in fixed-size chunks: appending never moves earlier nodes (a growing `Vec` would copy
/// the whole tape at every doubling), and clearing keeps the chunks for reuse.
pub(crate) struct NodeStore<T: Float> {
    chunks: Vec<Vec<Node<T>>>,
    len: usize,
}

/// The index the next node will have, if a `u32` can name it (4-byte indices keep gradient
/// slots and node inputs small; 2^32 nodes of 128 bytes would be 512 GiB of tape).
#[inline(always)]
fn node_index(len: usize, op: &dyn Fn() -> String) -> Result<u32> {
    match u32::try_from(len) {
        Ok(index) => Ok(index),
        Err(_) => Err(tape_full(op)),
    }
}

#[cold]
fn tape_full(op: &dyn Fn() -> String) -> AutogradError {
    AutogradError::TapeFull { op: op() }
}

/// Nodes per chunk (a power of two, so indexing is a shift and a mask).
const CHUNK: usize = 256;

impl<T: Float> NodeStore<T> {
    fn with_capacity(nodes: usize) -> Self {
        let chunks = (0..nodes.div_ceil(CHUNK))
            .map(|_| Vec::with_capacity(CHUNK))
            .collect();
        NodeStore { chunks, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, node: Node<T>) {
        let chunk = self.len / CHUNK;
        if chunk == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[chunk].push(node);
        self.len += 1;
    }

    fn clear(&mut self) {
        self.truncate(0);
    }

    /// Drops every node from `len` on.
    fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for (i, chunk) in self.chunks.iter_mut().enumerate() {
            chunk.truncate(len.saturating_sub(i * CHUNK).min(CHUNK));
        }
        self.len = len;
    }
}

impl<T: Float> std::ops::Index<usize> for NodeStore<T> {
    type Output = Node<T>;
    #[inline]
    fn index(&self, index: usize) -> &Node<T> {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

/// An append-only list of the values and ops of a computation (a Wengert list).
///
/// Every op on a [`Var`] appends one node; because a node's inputs always come before it,
/// walking the indices from last to first is a topological order, so
/// [`backward`](Var::backward) is a single loop: no recursion, no sort, no stack growth however
/// deep the graph.
///
/// A tape is used from one thread (its `Var`s borrow it). Make a fresh tape per training step,
/// or [`clear`](Tape::clear) one to reuse its memory.
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap());
/// let y = (x * x).sum_all(); // y = sum x^2
/// let grads = y.backward();
/// assert_eq!(grads.wrt(x).to_vec(), vec![2.0, 4.0, 6.0]); // dy/dx = 2x
/// ```
pub struct Tape<T: Float = f32> {
    nodes: RefCell<NodeStore<T>>,
    /// False inside [`Tape::no_grad`]: new nodes then never require a gradient.
    recording: Cell<bool>,
    /// Opt-in NaN/inf checks (see [`Tape::enable_anomaly_mode`]).
    anomaly: Cell<Option<AnomalyMode>>,
    /// True while source locations and scopes are recorded per node.
    tracking: Cell<bool>,
    /// True while a create-graph backward records the gradient computation: its non-finite
    /// values are reported as backward anomalies, by the sweep, not as forward ones.
    in_create_graph: Cell<bool>,
    provenance: RefCell<Provenance>,
    /// Forward mode's tangents, one table per open level (see `forward.rs`).
    pub(crate) levels: RefCell<Vec<crate::forward::Level>>,
    /// How many of the open levels a newly recorded node gets a tangent for: all of them,
    /// except while a level's own tangent is being computed (then only the levels outside it).
    /// Zero when forward mode is off, which is all the recording path checks.
    pub(crate) propagating: Cell<usize>,
    /// Gradient hooks by node (see `hooks.rs`).
    pub(crate) hooks: RefCell<crate::hooks::Hooks<T>>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Tape::new()
    }
}

impl<T: Float> fmt::Debug for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tape")
            .field("nodes", &self.len())
            .field("recording", &self.recording.get())
            .finish()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape::with_capacity(0)
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        Tape {
            nodes: RefCell::new(NodeStore::with_capacity(nodes)),
            recording: Cell::new(true),
            anomaly: Cell::new(None),
            tracking: Cell::new(false),
            in_create_graph: Cell::new(false),
            provenance: RefCell::new(Provenance::default()),
            levels: RefCell::new(Vec::new()),
            propagating: Cell::new(0),
            hooks: RefCell::new(crate::hooks::Hooks::default()),
        }
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.borrow().len() == 0
    }

    /// Drops every node but keeps the allocation, for reuse in the next training step. The
    /// borrow checker guarantees no `Var` of this tape is still alive.
    pub fn clear(&mut self) {
        self.nodes.get_mut().clear();
        self.recording.set(true);
        self.provenance.get_mut().clear();
        for level in self.levels.get_mut() {
            level.truncate(0);
        }
        self.hooks.get_mut().truncate(0);
    }

    /// Turns on anomaly mode (see [`AnomalyMode`]); also records each node's source location
    /// and scope, so reports can name them. Off by default.
    pub fn enable_anomaly_mode(&self, mode: AnomalyMode) {
        self.anomaly.set(Some(mode));
        self.tracking.set(true);
    }

    /// Turns anomaly mode off (provenance tracking stays as it was).
    pub fn disable_anomaly_mode(&self) {
        self.anomaly.set(None);
    }

    /// The current anomaly mode.
    pub fn anomaly_mode(&self) -> Option<AnomalyMode> {
        self.anomaly.get()
    }

    /// Records, from now on, each node's source location and scope (for
    /// [`summary`](Tape::summary), DOT export and reports) without anomaly checks.
    pub fn track_provenance(&self, on: bool) {
        self.tracking.set(on);
    }

    /// Runs `f` with new nodes attributed to the layer or block `name` (shown in anomaly reports
    /// and tape summaries while tracking is on; free otherwise). Scopes nest.
    pub fn with_scope<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        if !self.tracking.get() {
            return f();
        }
        struct Leave<'a>(&'a RefCell<Provenance>, u32);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.borrow_mut().leave(self.1);
            }
        }
        let _leave = Leave(&self.provenance, self.provenance.borrow_mut().enter(name));
        f()
    }

    /// Where a node was recorded (`file:line:column`) and in which scope, if tracked.
    pub fn provenance_of(&self, var: Var<'_, T>) -> (Option<String>, Option<String>) {
        self.provenance.borrow().of(var.index())
    }

    /// True if anomaly mode checks backward passes.
    #[inline]
    pub(crate) fn checks_backward(&self) -> bool {
        self.anomaly.get().is_some_and(|mode| mode.backward)
    }

    /// Runs `f` with forward anomaly checks handed to the create-graph sweep (see
    /// `in_create_graph`), restoring the flag even if `f` panics.
    pub(crate) fn recording_gradients<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.in_create_graph, self.in_create_graph.replace(true));
        f()
    }

    pub(crate) fn provenance(&self) -> std::cell::Ref<'_, Provenance> {
        self.provenance.borrow()
    }

    /// A trainable leaf: an input whose gradient [`backward`](Var::backward) computes.
    #[track_caller]
    pub fn leaf(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push_node(Node::input(value, true))
    }

    /// A constant: an input that never gets a gradient (data, labels, masks).
    #[track_caller]
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push_node(Node::input(value, false))
    }

    /// Runs `f` without recording gradient paths: every node made inside is a constant, keeps
    /// no backward data, and nothing computed inside can be differentiated (as PyTorch's
    /// `torch.no_grad()`). Leaves made inside still require gradients.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f32>::new();
    /// let w = tape.leaf(Tensor::ones([2]));
    /// let prediction = tape.no_grad(|| (w * 3.0).sum_all());
    /// assert!(!prediction.requires_grad());
    /// assert_eq!(prediction.value().item(), 6.0);
    /// ```
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.recording, self.recording.replace(false));
        f()
    }

    /// True unless inside [`no_grad`](Tape::no_grad).
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// Read access to the nodes (for the backward sweep and inspection).
    pub(crate) fn nodes(&self) -> Ref<'_, NodeStore<T>> {
        self.nodes.borrow()
    }

    #[track_caller]
    fn push_node(&self, node: Node<T>) -> Var<'_, T> {
        let mut nodes = self.nodes.borrow_mut();
        let index = or_panic(node_index(nodes.len(), &|| "leaf or constant".into()));
        nodes.push(node);
        if self.tracking.get() {
            self.provenance
                .borrow_mut()
                .note(index as usize, Location::caller());
        }
        Var { tape: self, index }
    }

    /// The forward anomaly report for an op about to be recorded, if anomaly mode wants one.
    #[track_caller]
    fn forward_anomaly(
        &self,
        op: &Primitive<T>,
        inputs: &[&Tensor<T>],
        value: &Tensor<T>,
    ) -> Option<AutogradError> {
        let mode = self.anomaly.get()?;
        if !mode.forward || self.in_create_graph.get() || !has_non_finite(value) {
            return None;
        }
        let layer = self.provenance.borrow().current_name();
        Some(forward_report(
            op.name(),
            Location::caller(),
            layer,
            inputs,
            value,
        ))
    }

    /// Records primitive `op` applied to `inputs`: checks that they belong to this tape, runs
    /// the table's forward on their values, and appends the node. Nothing is recorded if a
    /// check or the forward fails.
    #[track_caller]
    #[inline]
    pub(crate) fn apply_primitive<const N: usize>(
        &self,
        op: Primitive<T>,
        inputs: [Var<'_, T>; N],
    ) -> Result<Var<'_, T>> {
        if self.propagating.get() != 0 {
            return self.apply_primitive_with_tangents(op, inputs);
        }
        for input in &inputs {
            self.check_owns(op.kind().name(), input)?;
        }
        // One borrow for the forward, the checks and the push.
        let mut nodes = self.nodes.borrow_mut();
        let value = {
            let values = inputs.map(|v| &nodes[v.index as usize].value);
            op.forward(&values)?
        };
        let indices = inputs.map(|v| v.index);
        self.push_op(&mut nodes, op, &indices, value)
    }

    /// Appends the node of an op whose value is already computed (by the table's forward, or a
    /// custom op's own): the one place an op node is recorded. In anomaly mode a non-finite
    /// value is refused with a report. The node needs a gradient only if the tape is recording
    /// and some input needs one; otherwise it keeps no backward data.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn push_op(
        &self,
        nodes: &mut NodeStore<T>,
        op: Primitive<T>,
        inputs: &[u32],
        value: Tensor<T>,
    ) -> Result<Var<'_, T>> {
        if self.anomaly.get().is_some() {
            let values: SmallVec<[&Tensor<T>; 2]> =
                inputs.iter().map(|&i| &nodes[i as usize].value).collect();
            if let Some(anomaly) = self.forward_anomaly(&op, &values, &value) {
                return Err(anomaly);
            }
        }
        let requires_grad =
            self.recording.get() && inputs.iter().any(|&i| nodes[i as usize].requires_grad());
        // Built-in ops keep their (at most two) inputs inline; a custom op lists them itself.
        let mut slots = [0u32; 2];
        for (slot, &input) in slots.iter_mut().zip(inputs) {
            *slot = input;
        }
        let index = node_index(nodes.len(), &|| op.name().to_string())?;
        nodes.push(Node::recorded(value, op, slots, requires_grad));
        if self.tracking.get() {
            self.provenance
                .borrow_mut()
                .note(index as usize, Location::caller());
        }
        Ok(Var { tape: self, index })
    }

    /// Mutable access to the nodes, for recording outside `apply_primitive` (custom ops).
    pub(crate) fn nodes_mut(&self) -> std::cell::RefMut<'_, NodeStore<T>> {
        self.nodes.borrow_mut()
    }

    /// Frees the buffer of an intermediate node whose value no backward rule reads, keeping its
    /// shape (as a broadcast zero, which holds no memory). Crate-private and only for a
    /// composite's own intermediate that never escapes it, consumed only by ops whose rules read
    /// their input's shape alone (`sum`). Kept when anomaly mode or provenance tracking is on,
    /// so reports and inspection show the true value.
    pub(crate) fn release_value(&self, var: Var<'_, T>) {
        if self.anomaly.get().is_some() || self.tracking.get() {
            return;
        }
        let mut nodes = self.nodes.borrow_mut();
        let index = var.index as usize;
        let node = &mut nodes.chunks[index / CHUNK][index % CHUNK];
        let shape = node.value.shape().clone();
        node.value = Tensor::scalar(T::ZERO).broadcast_to(shape);
    }

    /// Starts a composite's recording: unless [`Rollback::commit`] is called, dropping the
    /// guard (an early `?` return) removes every node recorded since, so a failed call leaves
    /// the tape exactly as it was. A guard, not a closure, so that `#[track_caller]` still names
    /// the user's line. Crate-private: the composite's own Vars never escape a failed call,
    /// which is what makes removing their nodes safe.
    pub(crate) fn rollback_guard(&self) -> Rollback<'_, T> {
        Rollback {
            tape: self,
            mark: self.len(),
            committed: false,
        }
    }

    /// Errors unless `var` was recorded on this tape.
    pub(crate) fn check_owns(&self, op: &'static str, var: &Var<'_, T>) -> Result<()> {
        if std::ptr::eq(self, var.tape) {
            Ok(())
        } else {
            Err(AutogradError::ForeignVar { op })
        }
    }
}

/// See [`Tape::rollback_guard`].
pub(crate) struct Rollback<'t, T: Float> {
    tape: &'t Tape<T>,
    mark: usize,
    committed: bool,
}

impl<T: Float> Rollback<'_, T> {
    /// Keeps what was recorded and passes `value` through.
    pub(crate) fn commit<R>(mut self, value: R) -> R {
        self.committed = true;
        value
    }
}

impl<T: Float> Drop for Rollback<'_, T> {
    fn drop(&mut self) {
        // Never touch the tape while unwinding from a panic (it may be borrowed mid-op).
        if self.committed || std::thread::panicking() {
            return;
        }
        if let (Ok(mut nodes), Ok(mut provenance), Ok(mut levels), Ok(mut hooks)) = (
            self.tape.nodes.try_borrow_mut(),
            self.tape.provenance.try_borrow_mut(),
            self.tape.levels.try_borrow_mut(),
            self.tape.hooks.try_borrow_mut(),
        ) {
            nodes.truncate(self.mark);
            provenance.truncate(self.mark);
            for level in levels.iter_mut() {
                level.truncate(self.mark);
            }
            hooks.truncate(self.mark);
        }
    }
}

/// A handle to one node of a [`Tape`]: a tape reference and an index, `Copy`, 16 bytes.
///
/// Operators and methods on `Var` record new nodes, so formulas read like math:
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
///
/// let tape = Tape::<f32>::new();
/// let x = tape.constant(Tensor::ones([4, 3]));
/// let w = tape.leaf(Tensor::full([3, 2], 0.5));
/// let b = tape.leaf(Tensor::zeros([2]));
/// let y = (x.matmul(w) + b).relu(); // b broadcasts over the rows
/// assert_eq!(y.value().dims(), &[4, 2]);
/// ```
///
/// Using a `Var` with another tape's `Var` panics with a message saying so (`try_` forms return
/// [`AutogradError::ForeignVar`]); it never gives a silently wrong answer.
pub struct Var<'t, T: Float = f32> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) index: u32,
}

impl<T: Float> Clone for Var<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Float> Copy for Var<'_, T> {}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var(#{}, shape {})", self.index, self.shape())
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this Var belongs to.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Position of the node on its tape.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The node's value (a cheap clone sharing its storage).
    pub fn value(&self) -> Tensor<T> {
        self.tape.nodes.borrow()[self.index as usize].value.clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Shape {
        self.tape.nodes.borrow()[self.index as usize]
            .value
            .shape()
            .clone()
    }

    /// True if a gradient can flow from this node back to a trainable leaf.
    pub fn requires_grad(&self) -> bool {
        self.tape.nodes.borrow()[self.index as usize].requires_grad()
    }

    /// A constant with the same value (sharing storage): gradients stop here.
    #[track_caller]
    pub fn detach(self) -> Var<'t, T> {
        self.tape.constant(self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_after_the_last_indexable_one_is_a_named_error() {
        let last = u32::MAX as usize;
        assert_eq!(node_index(last, &|| "exp".into()), Ok(u32::MAX));
        let error = node_index(last + 1, &|| "exp".into()).unwrap_err();
        assert_eq!(
            error,
            AutogradError::TapeFull {
                op: "exp".to_string()
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("exp: the tape already holds 2^32 nodes")
        );
    }

    #[test]
    fn nodes_without_a_gradient_path_keep_no_backward_data() {
        let tape = Tape::<f64>::new();
        let c = tape.constant(Tensor::ones([2]));
        let y = c.exp();
        assert!(!y.requires_grad());
        assert!(tape.nodes()[y.index()].op().is_none());
        let x = tape.leaf(Tensor::ones([2]));
        let z = (x * y).exp();
        assert!(z.requires_grad());
        assert!(tape.nodes()[z.index()].op().is_some());
    }

    #[test]
    fn no_grad_restores_recording_even_after_a_panic() {
        let tape = Tape::<f32>::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tape.no_grad(|| panic!("inside"))
        }));
        assert!(result.is_err());
        assert!(tape.is_recording());
    }

    #[test]
    fn detach_shares_storage_and_stops_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![3.0], [1]).unwrap());
        let d = x.detach();
        assert!(d.value().shares_storage_with(&x.value()));
        let y = (x * d).sum_all(); // d/dx (x * const) = const = 3
        assert_eq!(y.backward().wrt(x).to_vec(), vec![3.0]);
    }

    #[test]
    fn clear_empties_the_tape_for_reuse() {
        let mut tape = Tape::<f32>::with_capacity(8);
        {
            let x = tape.leaf(Tensor::ones([1]));
            let _ = x.exp();
        }
        assert_eq!(tape.len(), 2);
        tape.clear();
        assert!(tape.is_empty());
    }
}
