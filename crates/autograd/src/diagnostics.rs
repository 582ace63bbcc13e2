//! Anomaly mode and provenance; the docs are on [`AnomalyMode`].

use std::fmt;
use std::panic::Location;

use tensor::{Float, Shape, Tensor};

use crate::error::{AutogradError, Result};
use crate::tape::{NodeStore, Tape};

/// Which checks anomaly mode makes.
///
/// Anomaly mode and provenance: where each node was recorded (source location, layer name),
/// and reports naming the first op that produced a NaN or an infinity.
///
/// ```
/// use autograd::{AnomalyMode, AutogradError, Tape};
/// use tensor::Tensor;
///
/// let tape = Tape::<f64>::new();
/// tape.enable_anomaly_mode(AnomalyMode::ALL);
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, -1.0], [2]).unwrap());
/// let error = tape.with_scope("hidden1", || x.try_log().unwrap_err());
/// let AutogradError::Anomaly(report) = error else { panic!() };
/// assert_eq!(report.op, "log");
/// assert_eq!(report.layer.as_deref(), Some("hidden1"));
/// assert!(report.location.is_some()); // file:line:column of the `try_log` call
/// assert_eq!(report.produced.nan, 1);
/// ```
///
/// Costs nothing measurable when off: one flag test per recorded op and per backward node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnomalyMode {
    /// Check every forward output: the first op whose output holds a NaN or an infinity fails
    /// with a report (its `try_` form returns [`AutogradError::Anomaly`](crate::AutogradError)).
    pub forward: bool,
    /// Check every gradient a backward rule produces, and flag a `select` whose unchosen branch
    /// holds a non-finite value that the backward pass is about to turn into a NaN gradient.
    pub backward: bool,
}

impl AnomalyMode {
    /// Forward and backward checks.
    pub const ALL: AnomalyMode = AnomalyMode {
        forward: true,
        backward: true,
    };
    /// Backward checks only, as PyTorch's `detect_anomaly` (a NaN in the forward pass is then a
    /// value; the report comes when a gradient goes non-finite, or at the `select` that lets it).
    pub const BACKWARD: AnomalyMode = AnomalyMode {
        forward: false,
        backward: true,
    };
}

/// Summary statistics of a tensor, for reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueSummary {
    /// The shape.
    pub shape: Shape,
    /// Smallest finite element (NaN if none).
    pub min: f64,
    /// Largest finite element (NaN if none).
    pub max: f64,
    /// Mean of the finite elements (NaN if none).
    pub mean: f64,
    /// Number of NaN elements.
    pub nan: usize,
    /// Number of infinite elements.
    pub infinite: usize,
}

impl ValueSummary {
    /// The statistics of `tensor`.
    pub fn of<T: Float>(tensor: &Tensor<T>) -> Self {
        let (mut min, mut max, mut sum, mut finite, mut nan, mut infinite) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            0usize,
            0usize,
            0usize,
        );
        for value in tensor.to_vec() {
            let v = value.to_f64();
            if v.is_nan() {
                nan += 1;
            } else if v.is_infinite() {
                infinite += 1;
            } else {
                min = min.min(v);
                max = max.max(v);
                sum += v;
                finite += 1;
            }
        }
        if finite == 0 {
            (min, max) = (f64::NAN, f64::NAN);
        }
        ValueSummary {
            shape: tensor.shape().clone(),
            min,
            max,
            mean: sum / finite as f64,
            nan,
            infinite,
        }
    }

    /// True if some element is NaN or infinite.
    pub fn has_non_finite(&self) -> bool {
        self.nan + self.infinite > 0
    }
}

impl fmt::Display for ValueSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shape {}, min {:.4e}, max {:.4e}, mean {:.4e}, {} NaN, {} inf",
            self.shape, self.min, self.max, self.mean, self.nan, self.infinite
        )
    }
}

/// True if any element of `tensor` is NaN or infinite (a fast scan, no summary).
pub(crate) fn has_non_finite<T: Float>(tensor: &Tensor<T>) -> bool {
    match tensor.as_contiguous_slice() {
        Some(values) => values.iter().any(|v| !v.is_finite()),
        None => tensor.to_vec().iter().any(|v| !v.is_finite()),
    }
}

/// The report for an op whose forward output holds a NaN or an infinity.
pub(crate) fn forward_report<T: Float>(
    op: &str,
    location: &Location<'_>,
    layer: Option<String>,
    inputs: &[&Tensor<T>],
    value: &Tensor<T>,
) -> crate::AutogradError {
    crate::AutogradError::Anomaly(Box::new(AnomalyReport {
        phase: AnomalyPhase::Forward,
        op: op.to_string(),
        node: None,
        location: Some(format!(
            "{}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        )),
        layer,
        inputs: inputs.iter().map(|x| ValueSummary::of(x)).collect(),
        produced: ValueSummary::of(value),
        detail: "produced non-finite values in the forward pass".to_string(),
    }))
}

/// What a backward anomaly report says about the node whose rule produced a non-finite
/// gradient.
pub(crate) struct BackwardSite<'a> {
    /// The op's name.
    pub(crate) op: &'a str,
    /// The node.
    pub(crate) node: usize,
    /// Where it was recorded and in which layer.
    pub(crate) provenance: (Option<String>, Option<String>),
    /// Its inputs' forward values.
    pub(crate) inputs: Vec<ValueSummary>,
    /// The gradient that arrived at it.
    pub(crate) incoming: ValueSummary,
}

impl<'a> BackwardSite<'a> {
    /// Anomaly mode's watch over one node of a backward sweep, taken before its rule runs
    /// (the sweep calls it only when the tape checks backward passes). Runs the
    /// [`check_where_trap`] check first.
    #[cold]
    pub(crate) fn watch<T: Float>(
        tape: &Tape<T>,
        nodes: &NodeStore<T>,
        index: usize,
        op: &'a crate::ops::Primitive<T>,
        needs: &[bool],
        incoming: &Tensor<T>,
    ) -> Result<Self> {
        check_where_trap(tape, nodes, index, op, needs)?;
        let inputs = op
            .input_indices(&nodes[index].inputs)
            .iter()
            .map(|&i| ValueSummary::of(&nodes[i as usize].value))
            .collect();
        Ok(BackwardSite {
            op: op.name(),
            node: index,
            provenance: tape.provenance().of(index),
            inputs,
            incoming: ValueSummary::of(incoming),
        })
    }

    /// Checks the gradient the rule produced for input `position` (node `input`): the report
    /// if it holds NaN or infinity.
    pub(crate) fn check<T: Float>(
        &self,
        position: usize,
        input: usize,
        gradient: &Tensor<T>,
    ) -> Result<()> {
        if !has_non_finite(gradient) {
            return Ok(());
        }
        let (location, layer) = self.provenance.clone();
        Err(crate::AutogradError::Anomaly(Box::new(AnomalyReport {
            phase: AnomalyPhase::Backward,
            op: self.op.to_string(),
            node: Some(self.node),
            location,
            layer,
            inputs: self.inputs.clone(),
            produced: ValueSummary::of(gradient),
            detail: format!(
                "its backward rule produced a non-finite gradient for input {position} (node #{input}) \
                 from an incoming gradient with {}",
                self.incoming
            ),
        })))
    }
}

/// Anomaly mode's check at a `select` node, before its rule runs: a branch that needs a gradient
/// but holds NaN or infinity where it was not chosen is about to receive exact zeros there, and
/// the op that produced those values will turn them into NaN (0 * inf) on its way back.
fn check_where_trap<T: Float>(
    tape: &Tape<T>,
    nodes: &NodeStore<T>,
    index: usize,
    op: &crate::ops::Primitive<T>,
    needs: &[bool],
) -> Result<()> {
    let crate::ops::Primitive::Select { condition } = op else {
        return Ok(());
    };
    let node = &nodes[index];
    for (branch, name) in [(0usize, "on_true"), (1, "on_false")] {
        if !needs[branch] {
            continue;
        }
        let input = node.inputs[branch] as usize;
        let value = &nodes[input].value;
        let chosen_when = if branch == 0 { T::ONE } else { T::ZERO };
        let hidden = condition
            .to_vec()
            .iter()
            .zip(value.to_vec())
            .filter(|(c, v)| ((**c != T::ZERO) != (chosen_when == T::ONE)) && !v.is_finite())
            .count();
        if hidden == 0 {
            continue;
        }
        let provenance = tape.provenance();
        let (location, layer) = provenance.of(index);
        let producer = nodes[input]
            .op()
            .map_or("a leaf".to_string(), |op| op.name().to_string());
        let producer_at = provenance
            .of(input)
            .0
            .map_or(String::new(), |at| format!(" recorded at {at}"));
        return Err(AutogradError::Anomaly(Box::new(AnomalyReport {
            phase: AnomalyPhase::WhereTrap,
            op: "select".to_string(),
            node: Some(index),
            location,
            layer,
            inputs: [node.inputs[0], node.inputs[1]]
                .iter()
                .map(|&i| ValueSummary::of(&nodes[i as usize].value))
                .collect(),
            produced: ValueSummary::of(value),
            detail: format!(
                "its {name} branch (node #{input}, {producer}{producer_at}) holds {hidden} non-finite values where it is \
                 not chosen; the backward pass gives those positions a zero gradient, which {producer} will turn into NaN \
                 (0 * inf). Compute that branch from inputs masked to a safe value instead (e.g. sqrt(select(x > 0, x, 1)))"
            ),
        })));
    }
    Ok(())
}

/// Where the anomaly was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyPhase {
    /// An op's output in the forward pass.
    Forward,
    /// A gradient produced by an op's backward rule.
    Backward,
    /// A `select` about to pass a zero gradient into a branch whose unchosen values are not
    /// finite (PyTorch's "NaN gradient through where").
    WhereTrap,
}

/// The first NaN or infinity found by anomaly mode, with everything needed to find its cause.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyReport {
    /// Where it was found.
    pub phase: AnomalyPhase,
    /// The op.
    pub op: String,
    /// The op's node on the tape (for backward reports).
    pub node: Option<usize>,
    /// Source location where the op was recorded (`file:line:column`).
    pub location: Option<String>,
    /// The layer (tape scope) the op was recorded in, if any.
    pub layer: Option<String>,
    /// Statistics of the op's inputs (forward values).
    pub inputs: Vec<ValueSummary>,
    /// Statistics of the offending output or gradient.
    pub produced: ValueSummary,
    /// What happened, in words.
    pub detail: String,
}

impl fmt::Display for AnomalyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "anomaly: {}", self.op)?;
        if let Some(node) = self.node {
            write!(f, " (node #{node})")?;
        }
        match (&self.location, &self.layer) {
            (Some(location), Some(layer)) => {
                write!(f, ", recorded at {location} in layer '{layer}'")?
            }
            (Some(location), None) => write!(f, ", recorded at {location}")?,
            (None, Some(layer)) => write!(f, ", recorded in layer '{layer}'")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.detail)?;
        for (i, input) in self.inputs.iter().enumerate() {
            write!(f, "\n  input {i}: {input}")?;
        }
        write!(f, "\n  produced: {}", self.produced)
    }
}

/// Per-node source locations and scopes, kept only while tracking is on.
#[derive(Debug, Default)]
pub(crate) struct Provenance {
    /// For node i: where it was recorded and its scope (0: none, s: `scopes[s - 1]`).
    nodes: Vec<Option<(&'static Location<'static>, u32)>>,
    scopes: Vec<String>,
    current: u32,
}

impl Provenance {
    pub(crate) fn note(&mut self, node: usize, location: &'static Location<'static>) {
        if self.nodes.len() <= node {
            self.nodes.resize(node + 1, None);
        }
        self.nodes[node] = Some((location, self.current));
    }

    /// Location and layer name of a node, if known.
    pub(crate) fn of(&self, node: usize) -> (Option<String>, Option<String>) {
        match self.nodes.get(node).copied().flatten() {
            Some((location, scope)) => (
                Some(format!(
                    "{}:{}:{}",
                    location.file(),
                    location.line(),
                    location.column()
                )),
                (scope > 0).then(|| self.scopes[scope as usize - 1].clone()),
            ),
            None => (None, None),
        }
    }

    /// Enters scope `name`; returns the scope to restore.
    pub(crate) fn enter(&mut self, name: &str) -> u32 {
        self.scopes.push(name.to_string());
        std::mem::replace(&mut self.current, self.scopes.len() as u32)
    }

    pub(crate) fn leave(&mut self, previous: u32) {
        self.current = previous;
    }

    /// The name of the current scope.
    pub(crate) fn current_name(&self) -> Option<String> {
        (self.current > 0).then(|| self.scopes[self.current as usize - 1].clone())
    }

    pub(crate) fn clear(&mut self) {
        *self = Provenance::default();
    }

    /// Forgets the nodes from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.nodes.truncate(len);
    }
}
