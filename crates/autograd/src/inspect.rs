//! Tape inspection; the docs are on [`TapeSummary`].

use std::fmt;
use std::fmt::Write as _;

use tensor::{Float, Shape, Tensor};

use crate::backward::Gradients;
use crate::ops::Primitive;
use crate::tape::{Node, Tape};

/// One row of a [`TapeSummary`].
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSummary {
    /// Position on the tape.
    pub index: usize,
    /// `leaf`, `constant`, or the op's name.
    pub op: String,
    /// The value's shape.
    pub shape: Shape,
    /// Input nodes.
    pub inputs: Vec<usize>,
    /// Bytes this node holds for the backward pass: its value's buffer unless it is a view of
    /// an input's (views share), plus saved data such as a select's condition or a gather's
    /// indices.
    pub bytes: usize,
    /// Where it was recorded, if provenance was tracked.
    pub location: Option<String>,
    /// The layer (tape scope) it was recorded in, if any.
    pub layer: Option<String>,
    /// Norm of its gradient, if the backward pass retained every node's gradient.
    pub gradient_norm: Option<f64>,
}

/// A table of every node of a tape; `Display` prints it.
///
/// Looking at a tape: a summary table (node, op, shape, bytes held, gradient norm) and a
/// Graphviz DOT export with values and gradients per node, in the spirit of micrograd's
/// `draw_dot`.
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
///
/// let tape = Tape::<f64>::new();
/// tape.track_provenance(true); // record source lines and layer scopes too
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0], [2]).unwrap());
/// let y = tape.with_scope("square", || x * x).sum_all();
/// let grads = y.try_backward_retaining_all(None).unwrap();
/// let summary = tape.summary(Some(&grads));
/// assert_eq!(summary.nodes().len(), 3);
/// println!("{summary}");
/// let dot = tape.to_dot(Some(&grads));
/// assert!(dot.starts_with("digraph tape {"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TapeSummary {
    nodes: Vec<NodeSummary>,
}

impl TapeSummary {
    /// The rows.
    pub fn nodes(&self) -> &[NodeSummary] {
        &self.nodes
    }

    /// Total bytes held by the tape.
    pub fn total_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.bytes).sum()
    }
}

impl fmt::Display for TapeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape_width = self
            .nodes
            .iter()
            .map(|n| n.shape.to_string().len())
            .max()
            .unwrap_or(5)
            .max(5);
        let op_width = self
            .nodes
            .iter()
            .map(|n| n.op.len())
            .max()
            .unwrap_or(2)
            .max(2);
        writeln!(
            f,
            "{:>6}  {:op_width$}  {:shape_width$}  {:>10}  {:>11}  layer / recorded at",
            "node", "op", "shape", "bytes", "grad norm"
        )?;
        for n in &self.nodes {
            let norm = n
                .gradient_norm
                .map_or("-".to_string(), |v| format!("{v:.4e}"));
            let place = match (&n.layer, &n.location) {
                (Some(layer), Some(at)) => format!("{layer} / {at}"),
                (None, Some(at)) => at.clone(),
                (Some(layer), None) => layer.clone(),
                (None, None) => String::new(),
            };
            writeln!(
                f,
                "{:>6}  {:op_width$}  {:shape_width$}  {:>10}  {:>11}  {place}",
                format!("#{}", n.index),
                n.op,
                n.shape.to_string(),
                n.bytes,
                norm
            )?;
        }
        write!(
            f,
            "{} nodes, {} bytes held",
            self.nodes.len(),
            self.total_bytes()
        )
    }
}

fn op_name<T: Float>(node: &Node<T>) -> String {
    match node.op() {
        Some(op) => op.name().to_string(),
        None if node.is_leaf() => "leaf".to_string(),
        None => "constant".to_string(),
    }
}

/// Bytes of the data an op saves besides its inputs' values.
fn saved_bytes<T: Float>(op: Option<&Primitive<T>>) -> usize {
    match op {
        Some(Primitive::Select { condition }) => condition.storage_len() * T::DTYPE.size_in_bytes(),
        Some(Primitive::Gather { arg }) => std::mem::size_of_val(arg.index.values()),
        Some(Primitive::ScatterAdd { arg }) => std::mem::size_of_val(arg.index.values()),
        Some(Primitive::Permute { order }) => std::mem::size_of_val(order.as_slice()),
        _ => 0,
    }
}

/// A short rendering of a tensor for a graph label: the values if few, else a summary.
fn brief<T: Float>(tensor: &Tensor<T>) -> String {
    let values = tensor.to_vec();
    if values.len() <= 4 {
        let parts: Vec<String> = values
            .iter()
            .map(|v| format!("{:.4}", v.to_f64()))
            .collect();
        format!("[{}]", parts.join(", "))
    } else {
        let mean = values.iter().map(|v| v.to_f64()).sum::<f64>() / values.len() as f64;
        format!("{} mean {:.4}", tensor.shape(), mean)
    }
}

impl<T: Float> Tape<T> {
    /// A table of every node: op, shape, bytes held, where it was recorded (if provenance is
    /// tracked) and its gradient norm (if `gradients` retained every node's gradient).
    pub fn summary(&self, gradients: Option<&Gradients<'_, T>>) -> TapeSummary {
        let nodes = self.nodes();
        let provenance = self.provenance();
        let rows = (0..nodes.len())
            .map(|index| {
                let node = &nodes[index];
                let inputs: Vec<usize> = node.op().map_or(Vec::new(), |op| {
                    op.input_indices(&node.inputs)
                        .iter()
                        .map(|&i| i as usize)
                        .collect()
                });
                let is_view = inputs
                    .iter()
                    .any(|&i| nodes[i].value.shares_storage_with(&node.value));
                let value_bytes = if is_view {
                    0
                } else {
                    node.value.storage_len() * T::DTYPE.size_in_bytes()
                };
                let (location, layer) = provenance.of(index);
                NodeSummary {
                    index,
                    op: op_name(node),
                    shape: node.value.shape().clone(),
                    inputs,
                    bytes: value_bytes + saved_bytes(node.op()),
                    location,
                    layer,
                    gradient_norm: gradients.and_then(|g| g.norm_of_node(index)),
                }
            })
            .collect();
        TapeSummary { nodes: rows }
    }

    /// The tape as a Graphviz graph (`dot -Tsvg`): one box per node with its op, shape, value
    /// and (if `gradients` retained them) gradient; an edge from each input to its op.
    pub fn to_dot(&self, gradients: Option<&Gradients<'_, T>>) -> String {
        let nodes = self.nodes();
        let provenance = self.provenance();
        let mut dot = String::from(
            "digraph tape {\n  rankdir=LR;\n  node [shape=record, fontname=\"monospace\", fontsize=10];\n",
        );
        for index in 0..nodes.len() {
            let node = &nodes[index];
            let mut label = format!(
                "#{index} {} | {} | value {}",
                op_name(node),
                node.value.shape(),
                brief(&node.value)
            );
            if let Some(gradient) = gradients.and_then(|g| g.retained(index)) {
                let _ = write!(label, " | grad {}", brief(gradient));
            }
            if let Some(layer) = provenance.of(index).1 {
                let _ = write!(label, " | {layer}");
            }
            let label = label
                .replace('"', "\\\"")
                .replace('{', "\\{")
                .replace('}', "\\}")
                .replace('<', "\\<")
                .replace('>', "\\>");
            let fill = match node.op() {
                Some(_) => "white",
                None if node.is_leaf() => "lightblue",
                None => "lightgrey",
            };
            let _ = writeln!(
                dot,
                "  n{index} [label=\"{label}\", style=filled, fillcolor={fill}];"
            );
            if let Some(op) = node.op() {
                for &input in op.input_indices(&node.inputs) {
                    let _ = writeln!(dot, "  n{input} -> n{index};");
                }
            }
        }
        dot.push_str("}\n");
        dot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rows_describe_each_node() {
        let tape = Tape::<f64>::new();
        tape.track_provenance(true);
        let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0, 3.0], [3]).unwrap());
        let c = tape.constant(Tensor::ones([3]));
        let y = tape.with_scope("block", || (x * c).exp());
        let loss = y.sum_all();
        let grads = loss.try_backward_retaining_all(None).unwrap();
        let summary = tape.summary(Some(&grads));
        let rows = summary.nodes();
        assert_eq!(
            rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(),
            ["leaf", "constant", "mul", "exp", "sum"]
        );
        assert_eq!(rows[2].inputs, vec![0, 1]);
        assert_eq!(rows[2].bytes, 3 * 8);
        assert_eq!(rows[2].layer.as_deref(), Some("block"));
        assert!(rows[2].location.as_deref().unwrap().contains("inspect.rs"));
        // d loss / d x = exp(x): its norm, from the retained leaf gradient.
        let expected = [1.0_f64, -2.0, 3.0]
            .iter()
            .map(|v| v.exp().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((rows[0].gradient_norm.unwrap() - expected).abs() < 1e-12);
        assert_eq!(
            rows[1].gradient_norm, None,
            "no gradient reaches a constant"
        );
        assert_eq!(rows[4].gradient_norm, Some(1.0));
        assert!(summary.to_string().contains("#2  mul"), "{summary}");
    }

    #[test]
    fn views_hold_no_bytes_of_their_own() {
        let tape = Tape::<f32>::new();
        let x = tape.leaf(Tensor::zeros([4, 5]));
        let _ = x.t().narrow(0, 1, 2);
        let summary = tape.summary(None);
        assert_eq!(summary.nodes()[0].bytes, 80);
        assert_eq!(
            summary.nodes()[1].bytes,
            2 * 8,
            "permute saves its order (two axes), not a copy"
        );
        assert_eq!(summary.nodes()[2].bytes, 0);
    }

    #[test]
    fn dot_has_a_box_per_node_and_an_edge_per_input() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::from_vec(vec![2.0], [1]).unwrap());
        let b = tape.leaf(Tensor::from_vec(vec![3.0], [1]).unwrap());
        let y = (a * b + a).sum_all();
        let grads = y.try_backward_retaining_all(None).unwrap();
        let dot = tape.to_dot(Some(&grads));
        assert_eq!(dot.matches(" [label=").count(), tape.len());
        for edge in [
            "n0 -> n2;",
            "n1 -> n2;",
            "n2 -> n3;",
            "n0 -> n3;",
            "n3 -> n4;",
        ] {
            assert!(dot.contains(edge), "{edge} missing from\n{dot}");
        }
        // a's gradient is b + 1 = 4.
        assert!(
            dot.contains("#0 leaf | [1] | value [2.0000] | grad [4.0000]"),
            "{dot}"
        );
    }
}
