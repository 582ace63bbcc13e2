//! Kinks: where a function is continuous but its derivative jumps (relu and abs at 0, a max
//! with ties, a select whose condition flips). Central differences there average the two
//! sides and match no rule; the check instead compares the analytical value with the interval
//! between the one-sided derivatives (every value in it is a valid subgradient of a
//! one-dimensional restriction), and says whether it is the value the library's documented
//! convention gives.
//!
//! A kink is recognised at an element when the one-sided differences disagree beyond the pass
//! rule and keep disagreeing when the step is halved. A smooth function's one-sided
//! differences differ by about `h f''`, which halves with h; a kink's differ by the jump in the
//! derivative, which does not; a jump in the value itself grows as 1/h and is not accepted.
//! The one-sided derivatives are Richardson-extrapolated from the two steps (`2 d(h/2) - d(h)`),
//! which removes their first-order error.

use std::fmt;

use tensor::{Float, Shape, Tensor};

use super::{PassRule, unravel};
use crate::ops::{Primitive, PrimitiveKind};
use crate::tape::Tape;

/// An element where a kink was recognised, and what was checked there.
#[derive(Clone, Debug, PartialEq)]
pub struct Kink {
    /// The input whose element was perturbed; `None` along a random direction (jvpcheck).
    pub input: Option<usize>,
    /// The element of that input (empty along a direction).
    pub element: Vec<usize>,
    /// The output element.
    pub output_element: Vec<usize>,
    /// The derivative from below (moving the element down).
    pub left: f64,
    /// The derivative from above.
    pub right: f64,
    /// The rule's value, which must lie in the interval between `left` and `right`.
    pub analytical: f64,
    /// The library primitives sitting at their kink that this element moves (found on the
    /// recorded tape).
    pub sites: Vec<KinkSite>,
    /// The value the library's documented convention gives at this kink, when exactly one
    /// primitive at its kink explains it; `None` when none does (a custom op, or a condition
    /// computed outside the tape) or several do.
    pub convention: Option<f64>,
    /// Whether `analytical` equals `convention` (within the pass rule).
    pub follows_convention: Option<bool>,
}

impl Kink {
    /// True if `analytical` lies between the one-sided derivatives (each end widened by the
    /// pass rule's tolerance).
    pub fn is_subgradient(&self, rule: &PassRule) -> bool {
        let (low, high) = (self.left.min(self.right), self.left.max(self.right));
        self.analytical >= low - rule.allowed(low) && self.analytical <= high + rule.allowed(high)
    }

    /// How far outside the widened interval `analytical` lies (0 inside).
    pub(crate) fn excess(&self, rule: &PassRule) -> f64 {
        let (low, high) = (self.left.min(self.right), self.left.max(self.right));
        let below = low - rule.allowed(low) - self.analytical;
        let above = self.analytical - high - rule.allowed(high);
        below.max(above).max(0.0)
    }
}

impl fmt::Display for Kink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.input {
            Some(input) => write!(f, "input {input} {:?}", self.element)?,
            None => write!(f, "along the direction")?,
        }
        write!(
            f,
            ", output {:?}: one-sided derivatives {:e} (left) and {:e} (right), analytical {:e}",
            self.output_element, self.left, self.right, self.analytical
        )?;
        match (
            self.sites.as_slice(),
            self.convention,
            self.follows_convention,
        ) {
            ([], ..) => write!(
                f,
                "; no library primitive at its kink moves with this element (a custom op, or a \
                 condition computed outside the tape): the convention cannot be stated"
            ),
            ([site], Some(convention), Some(follows)) => write!(
                f,
                "; {} at node {} ({}): convention gives {convention:e}, {}",
                site.op,
                site.node,
                site.convention,
                if follows {
                    "followed"
                } else {
                    "NOT followed (a valid subgradient, but not the library's)"
                }
            ),
            (sites, ..) => {
                let names: Vec<String> = sites
                    .iter()
                    .map(|s| format!("{} at node {}", s.op, s.node))
                    .collect();
                write!(
                    f,
                    "; several primitives at their kinks move together ({}): the convention cannot be stated",
                    names.join(", ")
                )
            }
        }
    }
}

/// A library primitive on the tape whose input sits at its kink.
#[derive(Clone, Debug, PartialEq)]
pub struct KinkSite {
    /// The node's position on the tape.
    pub node: usize,
    /// The primitive's name.
    pub op: &'static str,
    /// The element of the node's input at the kink.
    pub element: Vec<usize>,
    /// The documented convention (`docs/derivatives.md`).
    pub convention: &'static str,
}

/// The one-sided derivatives at a recognised kink.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OneSided {
    pub(crate) left: f64,
    pub(crate) right: f64,
}

/// Values of one output element at the point, one and half a step above and below, with the
/// actual (representable) steps taken.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    pub(crate) center: f64,
    pub(crate) plus: f64,
    pub(crate) minus: f64,
    pub(crate) plus_half: f64,
    pub(crate) minus_half: f64,
    /// The steps up and down (positive), full and half.
    pub(crate) steps: [f64; 4],
}

/// How much of the one-sided gap must survive halving the step for a kink: a smooth
/// function's gap halves (ratio 0.5), a kink's stays (ratio 1), a jump's doubles (ratio 2).
const KINK_RATIO: (f64, f64) = (0.75, 1.5);

/// Where the central difference passes, a gap this large relative to the one-sided values is
/// still looked at, so that kinks whose convention is the midpoint (abs'(0) = 0, a two-way
/// tie) are reported too; a smooth function reaches it only if |f''| exceeds 1e-3 / h times
/// |f'| (about 740 |f'| in f64), where the half-step test then rejects it.
const SCREEN: f64 = 1e-3;

/// True if the one-sided differences at h (from f at the point, h above and h below, and the
/// two steps) disagree enough to probe for a kink: beyond the pass rule where the central
/// difference failed, and also by [`SCREEN`] of their size where it passed.
pub(crate) fn suspicious(
    rule: &PassRule,
    [center, plus, minus]: [f64; 3],
    [up, down]: [f64; 2],
    passed: bool,
) -> bool {
    let right = (plus - center) / up;
    let left = (center - minus) / down;
    let gap = (right - left).abs();
    let size = right.abs().max(left.abs());
    gap > rule.allowed(size) && (!passed || gap > SCREEN * size)
}

/// Recognises a kink from a probe, or returns `None` (smooth here, or a jump).
pub(crate) fn recognise(rule: &PassRule, probe: &Probe) -> Option<OneSided> {
    let [up, down, up_half, down_half] = probe.steps;
    let right = (probe.plus - probe.center) / up;
    let left = (probe.center - probe.minus) / down;
    let right_half = (probe.plus_half - probe.center) / up_half;
    let left_half = (probe.center - probe.minus_half) / down_half;
    let gap = (right - left).abs();
    let gap_half = (right_half - left_half).abs();
    // A NaN gap is no kink either.
    if gap.is_nan() || gap <= rule.allowed(right.abs().max(left.abs())) {
        return None;
    }
    let ratio = gap_half / gap;
    (ratio >= KINK_RATIO.0 && ratio <= KINK_RATIO.1).then_some(OneSided {
        left: 2.0 * left_half - left,
        right: 2.0 * right_half - right,
    })
}

/// A primitive whose input has elements at its kink, at the unperturbed point.
struct Candidate {
    node: usize,
    kind: PrimitiveKind,
    input_node: usize,
    input_shape: Shape,
    /// The input's values (logical order) at the point.
    values: Vec<f64>,
    /// Flat positions at the kink, each with its weight on the side where it is active: 0
    /// for relu (relu'(0) = 0 takes the inactive side), 1/2 for abs (abs'(0) = 0, the mean of
    /// -1 and 1), 1/k for a k-way tie of max (ties split equally).
    positions: Vec<(usize, f64)>,
}

/// The tape at the unperturbed point, scanned for primitives at their kinks.
pub(crate) struct SiteScan {
    candidates: Vec<Candidate>,
    nodes: usize,
}

/// Which primitive explains a kink, and how its convention weighs the two sides.
pub(crate) struct Explanation {
    pub(crate) sites: Vec<KinkSite>,
    /// With exactly one site: (weight on the active side, true if active above).
    pub(crate) weighting: Option<(f64, bool)>,
}

impl Explanation {
    /// No primitive explains the kink.
    pub(crate) fn none() -> Self {
        Explanation {
            sites: Vec::new(),
            weighting: None,
        }
    }

    /// The kink record for one output element.
    pub(crate) fn kink(
        &self,
        rule: &PassRule,
        input: Option<usize>,
        element: Vec<usize>,
        output_element: Vec<usize>,
        sides: OneSided,
        analytical: f64,
    ) -> Kink {
        let convention = self.convention(sides);
        Kink {
            input,
            element,
            output_element,
            left: sides.left,
            right: sides.right,
            analytical,
            sites: self.sites.clone(),
            convention,
            follows_convention: convention.map(|c| rule.passes(analytical, c)),
        }
    }

    /// The convention's value for one output element's one-sided derivatives.
    pub(crate) fn convention(&self, sides: OneSided) -> Option<f64> {
        let (weight, active_above) = self.weighting?;
        let (active, inactive) = if active_above {
            (sides.right, sides.left)
        } else {
            (sides.left, sides.right)
        };
        Some(inactive + weight * (active - inactive))
    }
}

fn values_of<T: Float>(tensor: &Tensor<T>) -> Vec<f64> {
    tensor.to_vec().iter().map(|v| v.to_f64()).collect()
}

/// The flat positions of a max's input that tie for their group's maximum, with the tie's size.
fn ties(values: &[f64], shape: &Shape, mask: u64) -> Vec<(usize, f64)> {
    let dims = shape.dims();
    let group_of = |flat: usize| -> usize {
        let index = unravel(shape, flat);
        index.iter().enumerate().fold(0, |key, (axis, &i)| {
            let i = if mask & (1 << axis) != 0 { 0 } else { i };
            key * dims[axis].max(1) + i
        })
    };
    let mut best: std::collections::HashMap<usize, (f64, usize)> = Default::default();
    for (flat, &v) in values.iter().enumerate() {
        let entry = best.entry(group_of(flat)).or_insert((f64::NEG_INFINITY, 0));
        if v > entry.0 {
            *entry = (v, 1);
        } else if v == entry.0 {
            entry.1 += 1;
        }
    }
    values
        .iter()
        .enumerate()
        .filter_map(|(flat, &v)| {
            let (max, count) = best[&group_of(flat)];
            (v == max && count >= 2).then_some((flat, 1.0 / count as f64))
        })
        .collect()
}

impl SiteScan {
    /// Scans a recorded tape for relu and abs nodes with an input exactly 0 and max nodes with
    /// ties.
    pub(crate) fn new<T: Float>(tape: &Tape<T>) -> Self {
        let nodes = tape.nodes();
        let mut candidates = Vec::new();
        for node in 0..nodes.len() {
            let Some(op) = nodes[node].op() else { continue };
            let kind = op.kind();
            let input_node = match op {
                Primitive::Relu {} | Primitive::Abs {} | Primitive::Max { .. } => {
                    nodes[node].inputs[0] as usize
                }
                _ => continue,
            };
            let input = &nodes[input_node].value;
            let values = values_of(input);
            let positions = match op {
                Primitive::Max { axes, .. } => ties(&values, input.shape(), *axes),
                _ => {
                    let weight = if kind == PrimitiveKind::Relu {
                        0.0
                    } else {
                        0.5
                    };
                    (0..values.len())
                        .filter(|&p| values[p] == 0.0)
                        .map(|p| (p, weight))
                        .collect()
                }
            };
            if !positions.is_empty() {
                candidates.push(Candidate {
                    node,
                    kind,
                    input_node,
                    input_shape: input.shape().clone(),
                    values,
                    positions,
                });
            }
        }
        SiteScan {
            candidates,
            nodes: nodes.len(),
        }
    }

    /// Which candidates a small move of the inputs displaces, from the tape recorded at the
    /// moved point (the same function records the same nodes; if it did not, nothing is
    /// claimed).
    pub(crate) fn explain<T: Float>(&self, moved: &Tape<T>) -> Explanation {
        let none = Explanation::none();
        let nodes = moved.nodes();
        if nodes.len() != self.nodes {
            return none;
        }
        let mut sites = Vec::new();
        let mut weighting = None;
        for candidate in &self.candidates {
            if nodes[candidate.node].op().map(Primitive::kind) != Some(candidate.kind) {
                return none;
            }
            let now = values_of(&nodes[candidate.input_node].value);
            for &(flat, weight) in &candidate.positions {
                if now[flat] != candidate.values[flat] {
                    weighting = Some((weight, now[flat] > candidate.values[flat]));
                    sites.push(KinkSite {
                        node: candidate.node,
                        op: candidate.kind.name(),
                        element: unravel(&candidate.input_shape, flat),
                        convention: candidate.kind.derivative_row()[3],
                    });
                }
            }
        }
        if sites.len() != 1 {
            weighting = None;
        }
        Explanation { sites, weighting }
    }
}
