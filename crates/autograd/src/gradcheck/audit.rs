//! Auditing a recorded model: every node's rule checked on the values it actually saw.
//!
//! After a forward pass, each node of the tape is a small function of its inputs, whose values
//! the tape holds. [`audit_tape`] checks each op node's backward rule there, with directional
//! finite differences (for random u over the node's output and v over its inputs,
//! `u . (J v)` from the rule against `u . (f(x + h v) - f(x - h v)) / (2 h)`), in tape order,
//! and names the first node that disagrees: its op, where it was recorded and in which layer
//! (with [`Tape::track_provenance`] on), and the numbers. One wrong custom op in a large model
//! is found without writing a test for it.
//!
//! ```
//! use autograd::gradcheck::{audit_tape, AuditOptions};
//! use autograd::Tape;
//! use tensor::Tensor;
//!
//! let tape = Tape::<f64>::new();
//! tape.track_provenance(true);
//! let w = tape.leaf(Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.3], [2, 2]).unwrap());
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [1, 2]).unwrap());
//! let loss = x.matmul(w).tanh().sum_all();
//! let report = audit_tape(&tape, &AuditOptions::default()).unwrap();
//! assert_eq!(report.nodes_checked, 3); // matmul, tanh, sum
//! # let _ = loss;
//! ```
//!
//! Directions avoid kinks: where a relu's or abs's input lies within the step of 0, or a max's
//! two largest elements of a group lie within it of each other, the direction is set to zero
//! there (those elements are counted in [`AuditReport::held_still_near_kinks`]), so a
//! correct rule is never failed by a step that crosses a kink. Kinks inside a custom op cannot
//! be seen and are not avoided.

use std::collections::HashMap;
use std::fmt;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{DType, Float, Shape, Tensor};

use super::{PassRule, Step, unravel};
use crate::error::AutogradError;
use crate::ops::{self, Primitive};
use crate::tape::Tape;

/// Settings for [`audit_tape`].
#[derive(Clone, Debug, PartialEq)]
pub struct AuditOptions {
    /// How the step is chosen (default [`Step::Auto`], from the element type and the node's
    /// largest input magnitude).
    pub step: Step,
    /// The pass rule; `None` (the default) picks it from the element type: atol 1e-6 and rtol
    /// 1e-5 in f64, atol 1e-3 and rtol 1e-2 in f32 (finite differences in f32 carry rounding
    /// of order 1e-4 relative at the automatic step). The rule is applied to
    /// `|a - n| <= atol + rtol * max(|n|, m)`, with m the sum of the magnitudes of the terms
    /// of `u . (f(x + h v) - f(x - h v)) / (2 h)`, so that a product that cancels is not held
    /// to a bound of 0.
    pub rule: Option<PassRule>,
    /// Random direction pairs per node (default 2).
    pub directions: usize,
    /// Seed of the directions (default 0).
    pub seed: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            step: Step::Auto,
            rule: None,
            directions: 2,
            seed: 0,
        }
    }
}

impl AuditOptions {
    /// The pass rule for element type `dtype`.
    pub fn rule_for(&self, dtype: DType) -> PassRule {
        self.rule.unwrap_or(match dtype {
            DType::F64 => PassRule {
                atol: 1e-6,
                rtol: 1e-5,
            },
            _ => PassRule {
                atol: 1e-3,
                rtol: 1e-2,
            },
        })
    }
}

/// What a passing audit checked.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditReport {
    /// Op nodes whose rule was checked.
    pub nodes_checked: usize,
    /// Nodes without a rule to check (leaves, constants, nodes no gradient flows through).
    pub nodes_without_rule: usize,
    /// Op nodes skipped because an input or the output holds a non-finite value.
    pub nodes_not_finite: usize,
    /// How many nodes of each op were checked, by op name.
    pub by_op: Vec<(String, usize)>,
    /// Input elements held still because they sit within the step of a kink.
    pub held_still_near_kinks: usize,
    /// The pass rule.
    pub rule: PassRule,
    /// The step rule, in words.
    pub step: String,
    /// The node that came closest to its bound, with error / allowed.
    pub closest: Option<(usize, String, f64)>,
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = self
            .by_op
            .iter()
            .map(|(op, n)| format!("{op} x{n}"))
            .collect();
        write!(
            f,
            "audit passed: {} nodes checked ({}); {} without a rule, {} not finite; {} input elements held still near kinks\n  pass rule: |a - n| <= atol + rtol * max(|n|, m) with atol = {:e}, rtol = {:e}\n  step: {}",
            self.nodes_checked,
            ops.join(", "),
            self.nodes_without_rule,
            self.nodes_not_finite,
            self.held_still_near_kinks,
            self.rule.atol,
            self.rule.rtol,
            self.step
        )?;
        if let Some((node, op, ratio)) = &self.closest {
            write!(
                f,
                "\n  closest to failing: node {node} ({op}) at {ratio:.2e} of its bound"
            )?;
        }
        Ok(())
    }
}

/// The first node whose rule disagrees, and where it was recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditError {
    /// The node's position on the tape.
    pub node: usize,
    /// Its op (a custom op's own name).
    pub op: String,
    /// Where it was recorded (with provenance tracking on).
    pub location: Option<String>,
    /// The layer (tape scope) it was recorded in.
    pub layer: Option<String>,
    /// What disagreed (boxed: a full diagnostic, kept off the `Ok` path's size).
    pub failure: Box<AuditFailure>,
}

/// What [`audit_tape`] found wrong at a node.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AuditFailure {
    /// `u . (J v)` from the rule differs from finite differences.
    Mismatch {
        /// The direction's number.
        direction: usize,
        /// From the rule: the rule's input gradients for seed u, dotted with v.
        analytical: f64,
        /// From finite differences of the node's forward.
        numerical: f64,
        /// The bound that was exceeded.
        allowed: f64,
        /// The step used.
        step: f64,
    },
    /// The rule returned a gradient of the wrong shape.
    GradientShape {
        /// The input's position among the node's inputs.
        input: usize,
        /// The input's shape.
        expected: Shape,
        /// The gradient's.
        actual: Shape,
    },
    /// The rule or the forward failed on the node's own values.
    Autograd(Box<AutogradError>),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit: node {} ({})", self.node, self.op)?;
        match &self.location {
            Some(location) => write!(f, ", recorded at {location}")?,
            None => write!(
                f,
                " (turn on Tape::track_provenance for its source location)"
            )?,
        }
        if let Some(layer) = &self.layer {
            write!(f, ", in layer '{layer}'")?;
        }
        write!(f, ": ")?;
        match &*self.failure {
            AuditFailure::Mismatch {
                direction,
                analytical,
                numerical,
                allowed,
                step,
            } => write!(
                f,
                "its rule disagrees with finite differences along direction {direction}: u . (J v) from the rule \
                 {analytical:e} vs numerical {numerical:e}; |a - n| = {:.3e} > allowed {allowed:.3e} (step {step:.3e})",
                (analytical - numerical).abs()
            ),
            AuditFailure::GradientShape {
                input,
                expected,
                actual,
            } => write!(
                f,
                "its rule returned a gradient of shape {actual} for input {input} of shape {expected}"
            ),
            AuditFailure::Autograd(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for AuditError {}

fn values_of<T: Float>(tensor: &Tensor<T>) -> Vec<f64> {
    tensor.to_vec().iter().map(|v| v.to_f64()).collect()
}

/// Sets the direction to 0 where a step of `h` along it could cross a kink of `op` at input
/// `x`; returns how many elements were held still.
fn hold_still_near_kinks<T: Float>(
    op: &Primitive<T>,
    x: &Tensor<T>,
    v: &mut [f64],
    h: f64,
) -> usize {
    let values = values_of(x);
    match op {
        Primitive::Relu {} | Primitive::Abs {} => {
            let mut held = 0;
            for (x, v) in values.iter().zip(v.iter_mut()) {
                if x.abs() <= 2.0 * h * v.abs() {
                    *v = 0.0;
                    held += 1;
                }
            }
            held
        }
        Primitive::Max { axes, .. } => {
            let shape = x.shape();
            let dims = shape.dims();
            let group_of = |flat: usize| -> usize {
                unravel(shape, flat)
                    .iter()
                    .enumerate()
                    .fold(0, |key, (axis, &i)| {
                        let i = if axes & (1 << axis) != 0 { 0 } else { i };
                        key * dims[axis].max(1) + i
                    })
            };
            // Per group: the two largest values and the largest |v|.
            let mut groups: HashMap<usize, (f64, f64, f64)> = HashMap::new();
            for (flat, (&x, &v)) in values.iter().zip(v.iter()).enumerate() {
                let g = groups.entry(group_of(flat)).or_insert((
                    f64::NEG_INFINITY,
                    f64::NEG_INFINITY,
                    0.0,
                ));
                if x > g.0 {
                    g.1 = g.0;
                    g.0 = x;
                } else if x > g.1 {
                    g.1 = x;
                }
                g.2 = g.2.max(v.abs());
            }
            let mut held = 0;
            for (flat, v) in v.iter_mut().enumerate() {
                let (first, second, largest) = groups[&group_of(flat)];
                if second.is_finite() && first - second <= 4.0 * h * largest {
                    *v = 0.0;
                    held += 1;
                }
            }
            held
        }
        _ => 0,
    }
}

/// Checks every op node's rule of `tape` on its recorded inputs (see the module docs), in tape
/// order, and returns the first that disagrees.
pub fn audit_tape<T: Float>(
    tape: &Tape<T>,
    options: &AuditOptions,
) -> Result<AuditReport, AuditError> {
    let rule = options.rule_for(T::DTYPE);
    let nodes = tape.nodes();
    let provenance = tape.provenance();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut report = AuditReport {
        nodes_checked: 0,
        nodes_without_rule: 0,
        nodes_not_finite: 0,
        by_op: Vec::new(),
        held_still_near_kinks: 0,
        rule,
        step: options.step.describe::<T>(),
        closest: None,
    };
    for index in 0..nodes.len() {
        let node = &nodes[index];
        let Some(op) = node.op() else {
            report.nodes_without_rule += 1;
            continue;
        };
        let fail = |failure: AuditFailure| {
            let (location, layer) = provenance.of(index);
            AuditError {
                node: index,
                op: op.name().to_string(),
                location,
                layer,
                failure: Box::new(failure),
            }
        };
        let input_indices = op.input_indices(&node.inputs);
        let inputs: Vec<&Tensor<T>> = input_indices
            .iter()
            .map(|&i| &nodes[i as usize].value)
            .collect();
        let needs: Vec<bool> = input_indices
            .iter()
            .map(|&i| nodes[i as usize].requires_grad())
            .collect();
        let finite = |t: &Tensor<T>| t.to_vec().iter().all(|v| v.is_finite());
        if !inputs.iter().all(|x| finite(x)) || !finite(&node.value) {
            report.nodes_not_finite += 1;
            continue;
        }
        let largest = inputs
            .iter()
            .flat_map(|x| values_of(x))
            .fold(0.0_f64, |most, x| most.max(x.abs()));
        let h = options.step.for_value::<T>(largest);
        for direction in 0..options.directions {
            let u =
                Tensor::<T>::random_normal(node.value.shape().clone(), T::ZERO, T::ONE, &mut rng)
                    .expect("valid parameters");
            let mut v: Vec<Vec<f64>> = Vec::with_capacity(inputs.len());
            for (x, &need) in inputs.iter().zip(&needs) {
                let mut direction = if need {
                    values_of(
                        &Tensor::<T>::random_normal(x.shape().clone(), T::ZERO, T::ONE, &mut rng)
                            .expect("valid parameters"),
                    )
                } else {
                    vec![0.0; x.numel()]
                };
                report.held_still_near_kinks += hold_still_near_kinks(op, x, &mut direction, h);
                v.push(direction);
            }
            // The rule's gradients for seed u, dotted with v.
            let mut analytical = 0.0;
            let mut shape_error = None;
            ops::backward(
                op,
                u.clone(),
                &inputs,
                &node.value,
                &needs,
                |position, gradient| {
                    if gradient.shape() != inputs[position].shape() {
                        shape_error.get_or_insert(AuditFailure::GradientShape {
                            input: position,
                            expected: inputs[position].shape().clone(),
                            actual: gradient.shape().clone(),
                        });
                        return Ok(());
                    }
                    analytical += values_of(&gradient)
                        .iter()
                        .zip(&v[position])
                        .map(|(g, v)| g * v)
                        .sum::<f64>();
                    Ok(())
                },
            )
            .map_err(|e| fail(AuditFailure::Autograd(Box::new(e))))?;
            if let Some(failure) = shape_error {
                return Err(fail(failure));
            }
            // The node's forward at x + delta v.
            let forward_at = |delta: f64| -> Result<Vec<f64>, AuditError> {
                let moved: Vec<Tensor<T>> = inputs
                    .iter()
                    .zip(&v)
                    .map(|(x, v)| {
                        let values = values_of(x)
                            .iter()
                            .zip(v)
                            .map(|(x, v)| T::from_f64(x + delta * v))
                            .collect();
                        Tensor::from_vec(values, x.shape().clone()).expect("same size")
                    })
                    .collect();
                let refs: Vec<&Tensor<T>> = moved.iter().collect();
                op.forward(&refs)
                    .map(|y| values_of(&y))
                    .map_err(|e| fail(AuditFailure::Autograd(Box::new(e))))
            };
            let (plus, minus) = (forward_at(h)?, forward_at(-h)?);
            let u = values_of(&u);
            let mut numerical = 0.0;
            let mut magnitude = 0.0;
            for ((u, p), m) in u.iter().zip(&plus).zip(&minus) {
                let term = u * (p - m) / (2.0 * h);
                numerical += term;
                magnitude += term.abs();
            }
            let allowed = rule.atol + rule.rtol * numerical.abs().max(magnitude);
            let error = (analytical - numerical).abs();
            if error.is_nan() || error > allowed {
                return Err(fail(AuditFailure::Mismatch {
                    direction,
                    analytical,
                    numerical,
                    allowed,
                    step: h,
                }));
            }
            let ratio = error / allowed;
            if report
                .closest
                .as_ref()
                .is_none_or(|(_, _, most)| ratio > *most)
            {
                report.closest = Some((index, op.name().to_string(), ratio));
            }
        }
        report.nodes_checked += 1;
        match report.by_op.iter_mut().find(|(name, _)| name == op.name()) {
            Some((_, count)) => *count += 1,
            None => report.by_op.push((op.name().to_string(), 1)),
        }
    }
    Ok(report)
}
