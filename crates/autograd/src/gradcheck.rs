//! Gradient checking: the tape's gradients against central finite differences, in f64.
//!
//! Modelled on PyTorch's `torch.autograd.gradcheck`, as a diagnostic instrument rather than a
//! yes/no test: a failure says which input, which element, which output element, both values,
//! the pass rule with its numbers, and the worst absolute and relative errors over the check.
//!
//! ```
//! use autograd::gradcheck::{gradcheck, GradcheckOptions};
//! use tensor::Tensor;
//!
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3]).unwrap();
//! let report = gradcheck(|v| (v[0].tanh() * v[0]).sum_all(), &[x], &GradcheckOptions::default()).unwrap();
//! assert!(report.max_abs_error < 1e-8);
//! println!("{report}"); // the pass rule, the step and the entry closest to failing
//! ```
//!
//! What is checked, in order:
//! 1. every input is `f64` (finite differences in `f32` are too noisy to be a test);
//! 2. each gradient has its input's shape;
//! 3. a zero output gradient gives zero input gradients;
//! 4. running backward twice gives bit-identical gradients;
//! 5. every entry of the Jacobian: `|analytical - numerical| <= atol + rtol * |numerical|`,
//!    with numerical = (f(x + h e) - f(x - h e)) / (2 h) for each logical element e, and the step
//!    h chosen per element from the dtype and the element's magnitude ([`Step::Auto`]);
//! 6. at a kink (the two one-sided differences disagree, and keep disagreeing when the step is
//!    halved), the analytical value must lie between the one-sided derivatives: it must be a
//!    valid subgradient. The report lists every kink with whether the value follows the
//!    library's documented convention (`docs/derivatives.md`: relu'(0) = 0, abs'(0) = 0, ties
//!    split equally). See [`Kink`].
//!
//! Inputs may be any views. The analytical pass uses them as given (so strided kernels and
//! their backward rules are exercised); perturbations are applied to a materialised copy of
//! the input's logical elements, so a broadcast (stride-0) input is never perturbed through
//! its aliases: each logical element moves alone. [`Report::materialised`] lists such inputs.

use std::fmt;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{DType, Float, Shape, Tensor};

use crate::error::AutogradError;
use crate::tape::{Tape, Var};

mod audit;
mod kinks;

pub use audit::{AuditError, AuditFailure, AuditOptions, AuditReport, audit_tape};
pub use kinks::{Kink, KinkSite};
use kinks::{Probe, SiteScan};

/// How the finite-difference step h is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Per element, `h = eps^(3/8) * max(1, |x|)` with `eps` the element type's machine
    /// epsilon (1.35e-6 for f64, 2.5e-3 for f32), scaled with the element so that a large
    /// input is not moved by a step below its own rounding. At this step the central
    /// difference's rounding error (about eps |f| / h, 1.6e-10 |f| in f64) stays four orders
    /// below the strict tolerance, while its truncation error (h^2 |f'''| / 6) is 20 times
    /// smaller than at the textbook balance point eps^(1/3), which strongly curved functions
    /// (batch norm on a batch of two) need.
    Auto,
    /// The same h for every element (PyTorch's default is 1e-6).
    Fixed(f64),
}

impl Step {
    /// The base step for element type `T` before scaling by the element.
    fn base<T: Float>(self) -> f64 {
        match self {
            Step::Auto => T::EPSILON.to_f64().powf(0.375),
            Step::Fixed(h) => h,
        }
    }

    /// The step for an element of value `x`.
    pub fn for_value<T: Float>(self, x: f64) -> f64 {
        match self {
            Step::Auto => self.base::<T>() * x.abs().max(1.0),
            Step::Fixed(h) => h,
        }
    }

    /// The rule in words, for reports.
    pub(crate) fn describe<T: Float>(self) -> String {
        match self {
            Step::Auto => format!(
                "h = {:.3e} * max(1, |x|) per element ({}: machine epsilon^(3/8))",
                self.base::<T>(),
                T::DTYPE
            ),
            Step::Fixed(h) => format!("h = {h:e} for every element (fixed)"),
        }
    }
}

/// Tolerances and switches for [`gradcheck`]. The defaults are PyTorch's, except that the
/// relative tolerance is 1e-4 rather than 1e-3, so that a rule wrong by 0.1% fails (a test
/// ships that evidence), and the step is chosen per element ([`Step::Auto`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// How the finite-difference step is chosen (default [`Step::Auto`]).
    pub step: Step,
    /// Absolute tolerance (default 1e-5).
    pub atol: f64,
    /// Relative tolerance, against |numerical| (default 1e-4).
    pub rtol: f64,
    /// Check that a zero output gradient gives zero input gradients (default true).
    pub check_zero_gradient: bool,
    /// Check that backward twice gives identical gradients (default true).
    pub check_determinism: bool,
    /// Accept a subgradient at a recognised kink (default true); when false, a kink fails like
    /// any other mismatch, as in PyTorch.
    pub accept_kinks: bool,
    /// A name for the function under test, used in messages (default "gradcheck").
    pub label: String,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: Step::Auto,
            atol: 1e-5,
            rtol: 1e-4,
            check_zero_gradient: true,
            check_determinism: true,
            accept_kinks: true,
            label: "gradcheck".to_string(),
        }
    }
}

impl GradcheckOptions {
    /// Default options with a label for messages.
    pub fn labelled(label: impl Into<String>) -> Self {
        GradcheckOptions {
            label: label.into(),
            ..GradcheckOptions::default()
        }
    }

    /// Tolerances of 1e-6 (absolute and relative). In f64 with the automatic step the
    /// finite-difference error of a smooth function at moderate values is near 1e-10, so these
    /// bounds still leave a wide margin, and a rule wrong by 0.01% fails (a test ships that
    /// evidence). This crate's own tests use them.
    pub fn strict(label: impl Into<String>) -> Self {
        GradcheckOptions {
            atol: 1e-6,
            rtol: 1e-6,
            label: label.into(),
            ..GradcheckOptions::default()
        }
    }

    /// The pass rule with these tolerances.
    pub fn pass_rule(&self) -> PassRule {
        PassRule {
            atol: self.atol,
            rtol: self.rtol,
        }
    }
}

/// The rule every comparison is held to: `|a - n| <= atol + rtol * |n|`, with `a` the
/// analytical and `n` the numerical value (a NaN error fails).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassRule {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance, against |n|.
    pub rtol: f64,
}

impl PassRule {
    /// The bound for a numerical value `n`.
    pub fn allowed(&self, numerical: f64) -> f64 {
        self.atol + self.rtol * numerical.abs()
    }

    /// True if `analytical` passes against `numerical`.
    pub fn passes(&self, analytical: f64, numerical: f64) -> bool {
        (analytical - numerical).abs() <= self.allowed(numerical)
    }

    /// The comparison with its numbers, e.g. `|6 - 4| = 2 > 1e-5 + 1e-4 * |4| = 4.1e-4`.
    pub fn explain(&self, analytical: f64, numerical: f64) -> String {
        let error = (analytical - numerical).abs();
        let allowed = self.allowed(numerical);
        let verdict = if error <= allowed { "<=" } else { ">" };
        format!(
            "|a - n| = |{analytical:e} - {numerical:e}| = {error:.3e} {verdict} atol + rtol * |n| = {:e} + {:e} * {:e} = {allowed:.3e}",
            self.atol,
            self.rtol,
            numerical.abs()
        )
    }
}

impl fmt::Display for PassRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "|a - n| <= atol + rtol * |n| with atol = {:e}, rtol = {:e}",
            self.atol, self.rtol
        )
    }
}

/// The comparison that came closest to its bound (largest error / allowed).
#[derive(Clone, Debug, PartialEq)]
pub struct Closest {
    /// The analytical value.
    pub analytical: f64,
    /// The numerical value.
    pub numerical: f64,
    /// Where: input and element, output element (or the direction of a directional check).
    pub at: String,
}

/// What a passing check measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Number of inputs.
    pub inputs: usize,
    /// Number of output elements (rows of the Jacobian).
    pub outputs: usize,
    /// Number of Jacobian entries compared.
    pub entries_checked: usize,
    /// Largest |analytical - numerical|.
    pub max_abs_error: f64,
    /// Largest |analytical - numerical| / |numerical| over entries whose |numerical| exceeds
    /// the absolute tolerance.
    pub max_rel_error: f64,
    /// Inputs that were broadcast views, perturbed element-wise on a materialised copy.
    pub materialised: Vec<usize>,
    /// The pass rule every entry was held to.
    pub rule: PassRule,
    /// How the step was chosen, in words.
    pub step: String,
    /// The smallest and largest step used.
    pub step_range: (f64, f64),
    /// The comparison closest to its bound, if any was made.
    pub closest: Option<Closest>,
    /// Every element where a kink was recognised, with what was checked there.
    pub kinks: Vec<Kink>,
    /// Which check produced the report ("gradcheck", "gradgradcheck", "jvpcheck",
    /// "directional gradcheck").
    pub check: &'static str,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed: {} inputs, {} outputs, {} entries compared; worst absolute error {:.3e}, worst relative error {:.3e}",
            self.check,
            self.inputs,
            self.outputs,
            self.entries_checked,
            self.max_abs_error,
            self.max_rel_error
        )?;
        write!(f, "\n  pass rule: {}", self.rule)?;
        write!(
            f,
            "\n  step: {} (from {:.3e} to {:.3e})",
            self.step, self.step_range.0, self.step_range.1
        )?;
        if let Some(closest) = &self.closest {
            write!(
                f,
                "\n  closest to failing: {}: {}",
                closest.at,
                self.rule.explain(closest.analytical, closest.numerical)
            )?;
        }
        if !self.materialised.is_empty() {
            write!(
                f,
                "\n  broadcast inputs materialised for perturbation: {:?}",
                self.materialised
            )?;
        }
        if !self.kinks.is_empty() {
            write!(f, "\n  {} kink(s):", self.kinks.len())?;
            for kink in &self.kinks {
                write!(f, "\n    {kink}")?;
            }
        }
        Ok(())
    }
}

/// Why a gradient check failed: the check's label and what went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckError {
    /// The check's label ([`GradcheckOptions::label`]).
    pub label: String,
    /// What failed (boxed: a full diagnostic, kept off the `Ok` path's size).
    pub failure: Box<GradcheckFailure>,
    /// The pass rule the check held values to.
    pub rule: PassRule,
}

impl GradcheckError {
    fn new(options: &GradcheckOptions, failure: GradcheckFailure) -> Self {
        GradcheckError {
            label: options.label.clone(),
            failure: Box::new(failure),
            rule: options.pass_rule(),
        }
    }
}
/// What a failed gradient check found (the label is on [`GradcheckError`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GradcheckFailure {
    /// An input is not `f64`.
    NotF64 {
        /// The element type given.
        dtype: DType,
    },
    /// Recording or backward failed.
    Autograd(Box<AutogradError>),
    /// A gradient does not have its input's shape.
    GradientShape {
        /// The input's position.
        input: usize,
        /// The input's shape.
        expected: Shape,
        /// The gradient's shape.
        actual: Shape,
    },
    /// A zero output gradient gave a non-zero input gradient.
    NonZeroForZeroGradient {
        /// The input's position.
        input: usize,
        /// The element (multi-index into the input).
        element: Vec<usize>,
        /// The value found.
        value: f64,
    },
    /// Two backward passes disagreed.
    Nondeterministic {
        /// The input's position.
        input: usize,
        /// The element.
        element: Vec<usize>,
        /// First pass.
        first: f64,
        /// Second pass.
        second: f64,
    },
    /// An analytical Jacobian entry differs from the numerical one beyond the tolerance (the
    /// entry with the largest excess over the tolerance is reported).
    Mismatch {
        /// The input's position.
        input: usize,
        /// The element of the input.
        element: Vec<usize>,
        /// The element of the output.
        output_element: Vec<usize>,
        /// The tape's value.
        analytical: f64,
        /// The finite-difference value.
        numerical: f64,
        /// The step used at this element.
        step: f64,
        /// Largest absolute error over the whole check.
        worst_abs: f64,
        /// Largest relative error over the whole check.
        worst_rel: f64,
    },
    /// At a recognised kink, the analytical value lies outside the interval between the two
    /// one-sided derivatives: it is not a subgradient.
    NotASubgradient {
        /// The kink, with the one-sided derivatives.
        kink: Box<Kink>,
    },
    /// The first derivative recorded with `backward_create_graph` differs from the ordinary
    /// backward pass's (a custom op's two rules disagree).
    FirstDerivativeMismatch {
        /// The input the first derivative is taken with respect to.
        input: usize,
        /// The element of that input (in its own shape).
        element: Vec<usize>,
        /// From the ordinary backward pass.
        backward: f64,
        /// From `backward_create_graph`.
        create_graph: f64,
    },
    /// gradgradcheck: the derivative of a first-derivative element with respect to an input
    /// element differs from finite differences of the first derivative.
    SecondOrderMismatch {
        /// The input perturbed.
        input: usize,
        /// Its element.
        element: Vec<usize>,
        /// The input whose gradient (first derivative) is differentiated.
        gradient_of: usize,
        /// The element of that gradient, in the input's own shape.
        gradient_element: Vec<usize>,
        /// From differentiating the recorded first derivative.
        analytical: f64,
        /// From finite differences of the ordinary first derivative.
        numerical: f64,
        /// The step used.
        step: f64,
        /// Largest absolute error over the whole check.
        worst_abs: f64,
        /// Largest relative error over the whole check.
        worst_rel: f64,
    },
    /// Forward mode's J v differs from central differences along v.
    TangentMismatch {
        /// The direction's number.
        direction: usize,
        /// The output element.
        output_element: Vec<usize>,
        /// (J v) at that element, from the tangent rules.
        forward: f64,
        /// (f(x + h v) - f(x - h v)) / (2 h) at that element.
        numerical: f64,
        /// The step used.
        step: f64,
        /// Largest absolute error over the whole check.
        worst_abs: f64,
        /// Largest relative error over the whole check.
        worst_rel: f64,
    },
    /// Forward and reverse mode disagree: u . (J v) from the tangent rules differs from
    /// (J^T u) . v from the backward rules by more than round-off.
    TransposeMismatch {
        /// The direction's number.
        direction: usize,
        /// u . (J v), forward mode.
        forward: f64,
        /// (J^T u) . v, reverse mode.
        reverse: f64,
        /// The round-off bound that was exceeded.
        allowed: f64,
    },
    /// The directional check failed while the full Jacobian check passed without any kink.
    DirectionalMismatch {
        /// The direction's number.
        direction: usize,
        /// u^T J v from the tape.
        analytical: f64,
        /// u^T J v from finite differences.
        numerical: f64,
    },
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, self.failure)?;
        let compared = match &*self.failure {
            GradcheckFailure::Mismatch {
                analytical,
                numerical,
                ..
            }
            | GradcheckFailure::SecondOrderMismatch {
                analytical,
                numerical,
                ..
            }
            | GradcheckFailure::DirectionalMismatch {
                analytical,
                numerical,
                ..
            }
            | GradcheckFailure::TangentMismatch {
                forward: analytical,
                numerical,
                ..
            } => Some((*analytical, *numerical)),
            GradcheckFailure::FirstDerivativeMismatch {
                backward,
                create_graph,
                ..
            } => Some((*create_graph, *backward)),
            _ => None,
        };
        if let Some((analytical, numerical)) = compared {
            write!(
                f,
                "\n  pass rule: {}\n  here: {}",
                self.rule,
                self.rule.explain(analytical, numerical)
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for GradcheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradcheckFailure::NotF64 { dtype } => write!(
                f,
                "inputs must be f64 (finite differences in {dtype} are too noisy), got {dtype}"
            ),
            GradcheckFailure::Autograd(error) => write!(f, "{error}"),
            GradcheckFailure::GradientShape {
                input,
                expected,
                actual,
            } => write!(
                f,
                "the gradient of input {input} has shape {actual}, but the input has shape {expected}"
            ),
            GradcheckFailure::NonZeroForZeroGradient {
                input,
                element,
                value,
            } => write!(
                f,
                "a zero output gradient gave {value:e} at input {input}, element {element:?} (expected 0)"
            ),
            GradcheckFailure::Nondeterministic {
                input,
                element,
                first,
                second,
            } => write!(
                f,
                "backward is not deterministic: input {input}, element {element:?}: {first:e} then {second:e}"
            ),
            GradcheckFailure::Mismatch {
                input,
                element,
                output_element,
                analytical,
                numerical,
                step,
                worst_abs,
                worst_rel,
            } => write!(
                f,
                "Jacobian mismatch for input {input}, element {element:?}, output element {output_element:?}: \
                 analytical {analytical:e} vs numerical {numerical:e} (step {step:.3e}); \
                 worst absolute error {worst_abs:.3e}, worst relative error {worst_rel:.3e}"
            ),
            GradcheckFailure::NotASubgradient { kink } => write!(
                f,
                "not a subgradient: {kink} (the analytical value must lie between the one-sided derivatives)"
            ),
            GradcheckFailure::FirstDerivativeMismatch {
                input,
                element,
                backward,
                create_graph,
            } => write!(
                f,
                "gradgradcheck: the first derivative from backward_create_graph ({create_graph:e}) differs \
                 from backward's ({backward:e}) for input {input}, element {element:?}"
            ),
            GradcheckFailure::SecondOrderMismatch {
                input,
                element,
                gradient_of,
                gradient_element,
                analytical,
                numerical,
                step,
                worst_abs,
                worst_rel,
            } => write!(
                f,
                "gradgradcheck: second-derivative mismatch: d(gradient of input {gradient_of} at {gradient_element:?}) \
                 / d(input {input} at {element:?}): analytical {analytical:e} vs numerical {numerical:e} \
                 (step {step:.3e}); worst absolute error {worst_abs:.3e}, worst relative error {worst_rel:.3e}"
            ),
            GradcheckFailure::TangentMismatch {
                direction,
                output_element,
                forward,
                numerical,
                step,
                worst_abs,
                worst_rel,
            } => write!(
                f,
                "forward-mode mismatch along direction {direction} at output element {output_element:?}: \
                 J v from the tangent rules {forward:e} vs numerical {numerical:e} (step {step:.3e}); \
                 worst absolute error {worst_abs:.3e}, worst relative error {worst_rel:.3e}"
            ),
            GradcheckFailure::TransposeMismatch {
                direction,
                forward,
                reverse,
                allowed,
            } => write!(
                f,
                "forward and reverse mode disagree along direction {direction}: u . (J v) = {forward:e} \
                 (tangent rules) vs (J^T u) . v = {reverse:e} (backward rules); round-off allows {allowed:.3e}"
            ),
            GradcheckFailure::DirectionalMismatch {
                direction,
                analytical,
                numerical,
            } => write!(
                f,
                "directional check {direction} failed: u^T J v analytical {analytical:e} vs numerical {numerical:e} \
                 (the full Jacobian check passed; the function may be non-smooth at this point)"
            ),
        }
    }
}

impl std::error::Error for GradcheckError {}

/// The one place the element type is checked: finite differences need f64.
fn require_f64<T: Float>(options: &GradcheckOptions) -> Result<(), GradcheckError> {
    if T::DTYPE == DType::F64 {
        Ok(())
    } else {
        Err(GradcheckError::new(
            options,
            GradcheckFailure::NotF64 { dtype: T::DTYPE },
        ))
    }
}

/// The multi-index of flat position `flat` in a row-major `shape`.
fn unravel(shape: &Shape, mut flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.rank()];
    for (axis, &d) in shape.dims().iter().enumerate().rev() {
        index[axis] = flat % d.max(1);
        flat /= d.max(1);
    }
    index
}

/// True if some element of the layout is addressed twice (a broadcast view).
fn has_aliases<T: Float>(tensor: &Tensor<T>) -> bool {
    tensor
        .dims()
        .iter()
        .zip(tensor.strides())
        .any(|(&d, &s)| d > 1 && s == 0)
}

/// The inputs that are broadcast views, for [`Report::materialised`].
fn broadcast_inputs<T: Float>(inputs: &[Tensor<T>]) -> Vec<usize> {
    (0..inputs.len())
        .filter(|&i| has_aliases(&inputs[i]))
        .collect()
}

fn to_f64<T: Float>(tensor: &Tensor<T>) -> Vec<f64> {
    tensor.to_vec().iter().map(|v| v.to_f64()).collect()
}

/// The largest |x| over the inputs, for a step along a direction that moves all of them.
fn largest_magnitude<T: Float>(inputs: &[Tensor<T>]) -> f64 {
    inputs
        .iter()
        .flat_map(to_f64)
        .fold(0.0, |most, x| if x.abs() > most { x.abs() } else { most })
}

/// The running statistics of a check: entries compared, worst errors, the comparison closest
/// to its bound and the range of steps.
#[derive(Default)]
struct Tally {
    entries: usize,
    worst_abs: f64,
    worst_rel: f64,
    closest: Option<(f64, Closest)>,
    steps: Option<(f64, f64)>,
}

impl Tally {
    /// How far the error exceeds the rule's bound if it fails (NaN for a NaN error), `None` if
    /// it passes.
    fn excess(rule: &PassRule, analytical: f64, numerical: f64) -> Option<f64> {
        let error = (analytical - numerical).abs();
        let allowed = rule.allowed(numerical);
        (error.is_nan() || error > allowed).then_some(error - allowed)
    }

    /// Counts one comparison in the statistics; `at` names it, if it is the closest yet.
    fn record(
        &mut self,
        rule: &PassRule,
        analytical: f64,
        numerical: f64,
        at: impl FnOnce() -> String,
    ) {
        let error = (analytical - numerical).abs();
        self.entries += 1;
        self.worst_abs = self.worst_abs.max(error);
        // Relative errors of values below the absolute tolerance are noise, not information.
        if numerical.abs() > rule.atol {
            self.worst_rel = self.worst_rel.max(error / numerical.abs());
        }
        let ratio = error / rule.allowed(numerical);
        if self.closest.as_ref().is_none_or(|(most, _)| ratio > *most) {
            self.closest = Some((
                ratio,
                Closest {
                    analytical,
                    numerical,
                    at: at(),
                },
            ));
        }
    }

    /// Records one comparison and returns its excess, as [`Tally::excess`].
    fn compare(
        &mut self,
        rule: &PassRule,
        analytical: f64,
        numerical: f64,
        at: impl FnOnce() -> String,
    ) -> Option<f64> {
        self.record(rule, analytical, numerical, at);
        Tally::excess(rule, analytical, numerical)
    }

    /// Counts an entry checked at a kink (against its interval, not in the error statistics).
    fn count(&mut self) {
        self.entries += 1;
    }

    fn step(&mut self, h: f64) {
        let (low, high) = self.steps.unwrap_or((h, h));
        self.steps = Some((low.min(h), high.max(h)));
    }

    #[allow(clippy::too_many_arguments)]
    fn report<T: Float>(
        self,
        check: &'static str,
        inputs: &[Tensor<T>],
        outputs: usize,
        options: &GradcheckOptions,
        kinks: Vec<Kink>,
    ) -> Report {
        Report {
            inputs: inputs.len(),
            outputs,
            entries_checked: self.entries,
            max_abs_error: self.worst_abs,
            max_rel_error: self.worst_rel,
            materialised: broadcast_inputs(inputs),
            rule: options.pass_rule(),
            step: options.step.describe::<T>(),
            step_range: self.steps.unwrap_or((0.0, 0.0)),
            closest: self.closest.map(|(_, closest)| closest),
            kinks,
            check,
        }
    }
}

/// Computes the values whose finite differences give the numerical Jacobian, from the inputs
/// (one of them perturbed). `None` means: evaluate the function under test itself.
type Reference<'a, T> = Option<&'a ReferenceFn<'a, T>>;

/// See [`Reference`].
type ReferenceFn<'a, T> = dyn Fn(&[Tensor<T>]) -> Result<Vec<f64>, AutogradError> + 'a;

/// Per output element j, per input, the gradient of output j: `rows[j][input][element]`.
type Jacobian = Vec<Vec<Vec<f64>>>;

struct Checker<'a, T: Float, F> {
    f: F,
    reference: Reference<'a, T>,
    inputs: &'a [Tensor<T>],
    options: &'a GradcheckOptions,
}

/// The function under test may fail (a create-graph backward inside `gradgradcheck` can); a
/// failure becomes [`GradcheckFailure::Autograd`].
impl<T: Float, F> Checker<'_, T, F>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>,
{
    fn fail(&self, failure: GradcheckFailure) -> GradcheckError {
        GradcheckError::new(self.options, failure)
    }

    fn autograd(&self, error: AutogradError) -> GradcheckError {
        self.fail(GradcheckFailure::Autograd(Box::new(error)))
    }

    /// Records f on fresh leaves of `inputs`.
    fn record<'t>(
        &self,
        tape: &'t Tape<T>,
        inputs: &[Tensor<T>],
    ) -> Result<(Var<'t, T>, Vec<Var<'t, T>>), GradcheckError> {
        let leaves: Vec<Var<'t, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let output = (self.f)(&leaves).map_err(|e| self.autograd(e))?;
        Ok((output, leaves))
    }

    /// f at `inputs` with input `which` replaced by `replacement`, as f64 values.
    fn evaluate(&self, which: usize, replacement: &Tensor<T>) -> Result<Vec<f64>, GradcheckError> {
        let mut inputs = self.inputs.to_vec();
        inputs[which] = replacement.clone();
        self.evaluate_all(&inputs)
    }

    /// f at `inputs`, as f64 values.
    fn evaluate_all(&self, inputs: &[Tensor<T>]) -> Result<Vec<f64>, GradcheckError> {
        if let Some(reference) = self.reference {
            return reference(inputs).map_err(|e| self.autograd(e));
        }
        let tape = Tape::new();
        let (output, _) = self.record(&tape, inputs)?;
        Ok(to_f64(&output.value()))
    }

    /// Which primitives at their kinks the move to `moved` displaces, from `scan` of the tape
    /// at the point.
    fn explain(&self, scan: &SiteScan, moved: &[Tensor<T>]) -> kinks::Explanation {
        let tape = Tape::new();
        match self.record(&tape, moved) {
            Ok(_) => scan.explain(&tape),
            Err(_) => kinks::Explanation::none(),
        }
    }

    /// Per input, the gradient for `seed` as f64 values (zeros where no gradient flows).
    fn gradients(
        &self,
        output: Var<'_, T>,
        leaves: &[Var<'_, T>],
        seed: Tensor<T>,
    ) -> Result<Vec<Vec<f64>>, GradcheckError> {
        let grads = match output.try_backward_with(seed) {
            Ok(grads) => Some(grads),
            // Nothing depends on a leaf: every gradient is zero.
            Err(AutogradError::NoGradientPath) => None,
            Err(error) => return Err(self.autograd(error)),
        };
        leaves
            .iter()
            .enumerate()
            .map(|(input, &leaf)| {
                let expected = self.inputs[input].shape().clone();
                match grads.as_ref().and_then(|g| g.get(leaf)) {
                    None => Ok(vec![0.0; expected.numel()]),
                    Some(g) if g.shape() != &expected => {
                        Err(self.fail(GradcheckFailure::GradientShape {
                            input,
                            expected,
                            actual: g.shape().clone(),
                        }))
                    }
                    Some(g) => Ok(to_f64(g)),
                }
            })
            .collect()
    }

    fn run(&self) -> Result<Report, GradcheckError> {
        require_f64::<T>(self.options)?;
        let tape = Tape::new();
        let (output, leaves) = self.record(&tape, self.inputs)?;
        if self.options.check_zero_gradient {
            self.check_zero_gradient(output, &leaves)?;
        }
        let rows = self.analytical_jacobian(output, &leaves)?;
        self.compare_with_finite_differences(&tape, &rows, &output.shape())
    }

    /// Check 3: a zero output gradient gives zero input gradients.
    fn check_zero_gradient(
        &self,
        output: Var<'_, T>,
        leaves: &[Var<'_, T>],
    ) -> Result<(), GradcheckError> {
        let zero = self.gradients(output, leaves, Tensor::zeros(output.shape()))?;
        for (input, values) in zero.iter().enumerate() {
            if let Some((flat, &value)) = values.iter().enumerate().find(|(_, v)| **v != 0.0) {
                return Err(self.fail(GradcheckFailure::NonZeroForZeroGradient {
                    input,
                    element: unravel(self.inputs[input].shape(), flat),
                    value,
                }));
            }
        }
        Ok(())
    }

    /// One backward pass per output element; the first is run twice for check 4.
    fn analytical_jacobian(
        &self,
        output: Var<'_, T>,
        leaves: &[Var<'_, T>],
    ) -> Result<Jacobian, GradcheckError> {
        let output_shape = output.shape();
        let outputs = output_shape.numel();
        let mut rows = Vec::with_capacity(outputs);
        for j in 0..outputs {
            let mut seed = vec![T::ZERO; outputs];
            seed[j] = T::ONE;
            let seed =
                Tensor::from_vec(seed, output_shape.clone()).expect("seed has the output's size");
            let row = self.gradients(output, leaves, seed.clone())?;
            if self.options.check_determinism && j == 0 {
                let again = self.gradients(output, leaves, seed)?;
                self.check_identical(&row, &again)?;
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Check 4: two backward passes agree to the bit.
    fn check_identical(
        &self,
        first: &[Vec<f64>],
        second: &[Vec<f64>],
    ) -> Result<(), GradcheckError> {
        for (input, (first, second)) in first.iter().zip(second).enumerate() {
            if let Some(flat) = first
                .iter()
                .zip(second)
                .position(|(a, b)| a.to_bits() != b.to_bits())
            {
                return Err(self.fail(GradcheckFailure::Nondeterministic {
                    input,
                    element: unravel(self.inputs[input].shape(), flat),
                    first: first[flat],
                    second: second[flat],
                }));
            }
        }
        Ok(())
    }

    /// Checks 5 and 6: the numerical Jacobian, column by column, against `rows`, with kinks
    /// recognised where the central difference disagrees. Reports the entry that exceeds its
    /// tolerance by the most.
    fn compare_with_finite_differences(
        &self,
        tape: &Tape<T>,
        rows: &Jacobian,
        output_shape: &Shape,
    ) -> Result<Report, GradcheckError> {
        let rule = self.options.pass_rule();
        let mut tally = Tally::default();
        let mut kinks = Vec::new();
        let mut worst: Option<(f64, GradcheckFailure)> = None;
        // f at the point, for the one-sided differences that recognise kinks.
        let center = if self.options.accept_kinks {
            Some(self.evaluate_all(self.inputs)?)
        } else {
            None
        };
        let mut scan: Option<SiteScan> = None;
        for (input, x) in self.inputs.iter().enumerate() {
            let base = x.to_vec();
            for flat in 0..base.len() {
                let value = base[flat].to_f64();
                let h = self.options.step.for_value::<T>(value);
                tally.step(h);
                // The input with this element moved by `delta`, and the step actually taken
                // (the moved value is rounded to the element type).
                let moved = |delta: f64| {
                    let mut values = base.clone();
                    values[flat] = T::from_f64(value + delta);
                    let taken = (values[flat].to_f64() - value).abs();
                    let tensor = Tensor::from_vec(values, x.shape().clone()).expect("same size");
                    (tensor, taken)
                };
                let (up, up_step) = moved(h);
                let (down, down_step) = moved(-h);
                let plus = self.evaluate(input, &up)?;
                let minus = self.evaluate(input, &down)?;
                let mut halves: Option<(Vec<f64>, Vec<f64>, [f64; 4])> = None;
                let mut explanation: Option<kinks::Explanation> = None;
                let at = |j: usize| {
                    format!(
                        "input {input} {:?}, output {:?}",
                        unravel(x.shape(), flat),
                        unravel(output_shape, j)
                    )
                };
                for (j, row) in rows.iter().enumerate() {
                    let numerical = (plus[j] - minus[j]) / (up_step + down_step);
                    let analytical = row[input][flat];
                    let excess = Tally::excess(&rule, analytical, numerical);
                    let suspect = !excess.is_some_and(f64::is_nan)
                        && center.as_ref().is_some_and(|center| {
                            kinks::suspicious(
                                &rule,
                                [center[j], plus[j], minus[j]],
                                [up_step, down_step],
                                excess.is_none(),
                            )
                        });
                    let mut kink_failure = None;
                    if suspect {
                        if halves.is_none() {
                            let (up_half, up_half_step) = moved(h / 2.0);
                            let (down_half, down_half_step) = moved(-h / 2.0);
                            halves = Some((
                                self.evaluate(input, &up_half)?,
                                self.evaluate(input, &down_half)?,
                                [up_step, down_step, up_half_step, down_half_step],
                            ));
                        }
                        let (plus_half, minus_half, steps) = halves.as_ref().expect("just set");
                        let probe = Probe {
                            center: center.as_ref().expect("suspected")[j],
                            plus: plus[j],
                            minus: minus[j],
                            plus_half: plus_half[j],
                            minus_half: minus_half[j],
                            steps: *steps,
                        };
                        if let Some(sides) = kinks::recognise(&rule, &probe) {
                            if explanation.is_none() {
                                let scan = scan.get_or_insert_with(|| SiteScan::new(tape));
                                let mut moved_inputs = self.inputs.to_vec();
                                moved_inputs[input] = moved(h / 2.0).0;
                                explanation = Some(self.explain(scan, &moved_inputs));
                            }
                            let kink = explanation.as_ref().expect("just set").kink(
                                &rule,
                                Some(input),
                                unravel(x.shape(), flat),
                                unravel(output_shape, j),
                                sides,
                                analytical,
                            );
                            tally.count();
                            if kink.is_subgradient(&rule) {
                                kinks.push(kink);
                                continue;
                            }
                            kink_failure = Some((
                                kink.excess(&rule),
                                GradcheckFailure::NotASubgradient {
                                    kink: Box::new(kink),
                                },
                            ));
                        }
                    }
                    let Some(excess) = excess.or(kink_failure.as_ref().map(|(e, _)| *e)) else {
                        tally.record(&rule, analytical, numerical, || at(j));
                        continue;
                    };
                    let (excess, failure) = kink_failure.unwrap_or_else(|| {
                        tally.record(&rule, analytical, numerical, || at(j));
                        let failure = GradcheckFailure::Mismatch {
                            input,
                            element: unravel(x.shape(), flat),
                            output_element: unravel(output_shape, j),
                            analytical,
                            numerical,
                            step: h,
                            worst_abs: 0.0,
                            worst_rel: 0.0,
                        };
                        (excess, failure)
                    });
                    if worst
                        .as_ref()
                        .is_none_or(|(most, _)| excess > *most || excess.is_nan())
                    {
                        worst = Some((excess, failure));
                    }
                }
            }
        }
        if let Some((_, mut failure)) = worst {
            if let GradcheckFailure::Mismatch {
                worst_abs,
                worst_rel,
                ..
            } = &mut failure
            {
                (*worst_abs, *worst_rel) = (tally.worst_abs, tally.worst_rel);
            }
            return Err(self.fail(failure));
        }
        Ok(tally.report(
            "gradcheck",
            self.inputs,
            output_shape.numel(),
            self.options,
            kinks,
        ))
    }
}

/// Checks the tape's gradients of `f` at `inputs` against central finite differences (see the
/// module docs for every check made). `f` receives the inputs as trainable leaves and may
/// return an output of any shape; its full Jacobian is compared.
///
/// At a kink the analytical value must be a subgradient (see [`Kink`]):
///
/// ```
/// use autograd::gradcheck::{gradcheck, GradcheckOptions};
/// use tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.0, -1.0, 2.0], [3]).unwrap(); // relu's kink at x[0]
/// let report = gradcheck(|v| v[0].relu(), &[x], &GradcheckOptions::strict("relu")).unwrap();
/// let kink = &report.kinks[0];
/// assert_eq!((kink.left, kink.right, kink.analytical), (0.0, 1.0, 0.0));
/// assert_eq!(kink.follows_convention, Some(true)); // relu'(0) = 0
/// ```
///
/// A closure bound to a `let` before the call needs [`autograd::function`](crate::function)
/// (Rust infers a `let`-bound closure's lifetimes too narrowly without it).
pub fn gradcheck<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    Checker {
        f: infallible(f),
        reference: None,
        inputs,
        options,
    }
    .run()
}

/// Wraps an infallible function under test in the fallible form the checker runs.
fn infallible<T: Float, F>(
    f: F,
) -> impl for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    move |v| Ok(f(v))
}

/// Input and element of flat position `flat` in the concatenation of the inputs' flattened
/// elements (the layout of gradgradcheck's first derivative).
fn locate<T: Float>(inputs: &[Tensor<T>], mut flat: usize) -> (usize, Vec<usize>) {
    for (input, x) in inputs.iter().enumerate() {
        if flat < x.numel() {
            return (input, unravel(x.shape(), flat));
        }
        flat -= x.numel();
    }
    (inputs.len(), Vec::new())
}

/// Checks second derivatives, as PyTorch's `gradgradcheck`: the tape's Jacobian of the first
/// derivative — computed with [`Var::backward_create_graph`], so the backward rules run on Vars
/// and are themselves differentiated — against central finite differences of the first
/// derivative computed by the ordinary backward pass (the one [`gradcheck`] verifies), in f64.
/// It also checks that the two first derivatives agree at `inputs`, so a rule on Vars that
/// disagrees with its rule on tensors is caught even when its own derivative is consistent.
///
/// The first derivative is the vector-Jacobian product of `f` with a fixed, seeded random
/// output cotangent u: `x -> [d<u, f(x)>/dx_0, d<u, f(x)>/dx_1, ...]`. A failure says
/// "gradgradcheck" and names the first-derivative element in its input's own shape. An op that
/// cannot give higher-order gradients fails with its named error. Kinks are not accepted here:
/// at a kink the first derivative jumps, so it has no second derivative to check.
///
/// ```
/// use autograd::gradcheck::{gradgradcheck, GradcheckOptions};
/// use tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3, -1.2, 0.8], [3]).unwrap();
/// gradgradcheck(|v| v[0].tanh().exp(), &[x], &GradcheckOptions::strict("tanh then exp")).unwrap();
/// ```
///
/// A closure bound to a `let` before the call needs [`autograd::function`](crate::function)
/// (Rust infers a `let`-bound closure's lifetimes too narrowly without it).
pub fn gradgradcheck<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    require_f64::<T>(options)?;
    let options = &GradcheckOptions {
        accept_kinks: false,
        ..options.clone()
    };
    let autograd =
        |e: AutogradError| GradcheckError::new(options, GradcheckFailure::Autograd(Box::new(e)));
    let output_shape = {
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        f(&leaves).shape()
    };
    let cotangent = Tensor::<T>::random_normal(
        output_shape,
        T::ZERO,
        T::ONE,
        &mut StdRng::seed_from_u64(0x5EED),
    )
    .expect("valid parameters");
    // The first derivative from the ordinary backward pass, flattened.
    let plain = |inputs: &[Tensor<T>]| -> Result<Vec<f64>, AutogradError> {
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let gradients = match f(&leaves).try_backward_with(cotangent.clone()) {
            Ok(gradients) => Some(gradients),
            Err(AutogradError::NoGradientPath) => None,
            Err(error) => return Err(error),
        };
        Ok(leaves
            .iter()
            .flat_map(|&x| match &gradients {
                Some(gradients) => gradients.wrt(x).to_vec(),
                None => vec![T::ZERO; x.shape().numel()],
            })
            .map(|g| g.to_f64())
            .collect())
    };
    // At the inputs themselves, both first derivatives must agree.
    let expected = plain(inputs).map_err(autograd)?;
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let got: Vec<f64> = recorded(&f, &cotangent, &leaves)
        .map_err(autograd)?
        .iter()
        .flat_map(|g| to_f64(&g.value()))
        .collect();
    let rule = options.pass_rule();
    for (flat, (&backward, &create_graph)) in expected.iter().zip(&got).enumerate() {
        if Tally::excess(&rule, create_graph, backward).is_some() {
            let (input, element) = locate(inputs, flat);
            return Err(GradcheckError::new(
                options,
                GradcheckFailure::FirstDerivativeMismatch {
                    input,
                    element,
                    backward,
                    create_graph,
                },
            ));
        }
    }

    let reference = |inputs: &[Tensor<T>]| plain(inputs);
    let result = run_with_reference(
        |v| recorded(&f, &cotangent, v).and_then(|parts| Var::try_concat(&parts, 0)),
        &reference,
        inputs,
        options,
    );
    let error = match result {
        Ok(report) => {
            return Ok(Report {
                check: "gradgradcheck",
                ..report
            });
        }
        Err(error) => error,
    };
    match *error.failure {
        GradcheckFailure::Mismatch {
            input,
            element,
            output_element,
            analytical,
            numerical,
            step,
            worst_abs,
            worst_rel,
        } => {
            let (gradient_of, gradient_element) = locate(inputs, output_element[0]);
            Err(GradcheckError::new(
                options,
                GradcheckFailure::SecondOrderMismatch {
                    input,
                    element,
                    gradient_of,
                    gradient_element,
                    analytical,
                    numerical,
                    step,
                    worst_abs,
                    worst_rel,
                },
            ))
        }
        failure => Err(GradcheckError {
            failure: Box::new(failure),
            ..error
        }),
    }
}

/// The checker with a reference function; a separate function so the closure under test gets
/// its higher-ranked signature from the bound on `F`.
fn run_with_reference<T, F>(
    f: F,
    reference: &ReferenceFn<'_, T>,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>,
{
    Checker {
        f,
        reference: Some(reference),
        inputs,
        options,
    }
    .run()
}

/// The first derivative of `f` along `cotangent`, recorded on the tape (flattened per input).
fn recorded<'t, T, F>(
    f: &F,
    cotangent: &Tensor<T>,
    v: &[Var<'t, T>],
) -> Result<Vec<Var<'t, T>>, AutogradError>
where
    T: Float,
    F: for<'s> Fn(&[Var<'s, T>]) -> Var<'s, T>,
{
    let tape = v[0].tape();
    let seed = tape.constant(cotangent.clone());
    let gradients = match f(v).try_backward_create_graph_with(seed) {
        Ok(gradients) => Some(gradients),
        Err(AutogradError::NoGradientPath) => None,
        Err(error) => return Err(error),
    };
    Ok(v.iter()
        .map(|&x| match &gradients {
            Some(gradients) => gradients.wrt(x).flatten(),
            None => tape.constant(Tensor::zeros([x.shape().numel()])),
        })
        .collect())
}

/// [`gradcheck`] with default options, panicking with the failure's message: for tests.
///
/// ```
/// use autograd::gradcheck::assert_gradcheck;
/// use tensor::Tensor;
/// let a = Tensor::from_vec(vec![0.5, -1.5, 2.0, 0.1], [2, 2]).unwrap();
/// let b = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap(); // broadcast over rows
/// assert_gradcheck(|v| (v[0] * v[1]).exp().sum(&[1], false), &[a, b]);
/// ```
#[track_caller]
pub fn assert_gradcheck<T, F>(f: F, inputs: &[Tensor<T>])
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    assert_gradcheck_with(f, inputs, &GradcheckOptions::default());
}

/// [`gradcheck`] with [`GradcheckOptions::strict`] tolerances, panicking with the failure's
/// message.
#[track_caller]
pub fn assert_gradcheck_strict<T, F>(f: F, inputs: &[Tensor<T>])
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    assert_gradcheck_with(f, inputs, &GradcheckOptions::strict("gradcheck"));
}

/// [`gradcheck`] with explicit options, panicking with the failure's message.
#[track_caller]
pub fn assert_gradcheck_with<T, F>(f: F, inputs: &[Tensor<T>], options: &GradcheckOptions)
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    if let Err(error) = gradcheck(f, inputs, options) {
        panic!("{error}");
    }
}

/// A tensor of standard normal values: a random direction for the directional checks.
fn standard_normal<T: Float>(shape: &Shape, rng: &mut StdRng) -> Tensor<T> {
    Tensor::<T>::random_normal(shape.clone(), T::ZERO, T::ONE, rng).expect("valid parameters")
}

/// `x + delta v` for each input and its direction (contiguous copies of the logical elements,
/// so a broadcast input moves element by element).
fn moved_along<T: Float>(inputs: &[Tensor<T>], v: &[Tensor<T>], delta: f64) -> Vec<Tensor<T>> {
    inputs
        .iter()
        .zip(v)
        .map(|(x, v)| {
            x.zip_map(v, "moved_along", |x, v| {
                T::from_f64(x.to_f64() + delta * v.to_f64())
            })
        })
        .collect()
}

/// A cheaper check for inputs too large for a full Jacobian: for `directions` random pairs
/// (u over the output, v over the inputs, seeded by `seed`), compares u^T J v from one
/// backward pass with (u . f(x + h v) - u . f(x - h v)) / (2 h), with h the step for the
/// largest |x|. On failure it reruns the full [`gradcheck`]: its error names the element; if it
/// passes because the direction crossed a kink, its report (with the kinks) is returned.
///
/// A closure bound to a `let` before the call needs [`autograd::function`](crate::function)
/// (Rust infers a `let`-bound closure's lifetimes too narrowly without it).
pub fn gradcheck_directional<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
    directions: usize,
    seed: u64,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    require_f64::<T>(options)?;
    let checker = Checker {
        f: infallible(f),
        reference: None,
        inputs,
        options,
    };
    let rule = options.pass_rule();
    let h = options.step.for_value::<T>(largest_magnitude(inputs));
    let mut rng = StdRng::seed_from_u64(seed);
    let tape = Tape::new();
    let (output, leaves) = checker.record(&tape, inputs)?;
    let output_shape = output.shape();
    let mut tally = Tally::default();
    tally.step(h);
    for direction in 0..directions {
        let u = standard_normal(&output_shape, &mut rng);
        let v: Vec<Tensor<T>> = inputs
            .iter()
            .map(|x| standard_normal(x.shape(), &mut rng))
            .collect();
        let gradients = checker.gradients(output, &leaves, u.clone())?;
        let dot =
            |a: &[f64], b: &Tensor<T>| a.iter().zip(to_f64(b)).map(|(a, b)| a * b).sum::<f64>();
        let analytical: f64 = gradients.iter().zip(&v).map(|(g, v)| dot(g, v)).sum();
        let projected = |delta: f64| -> Result<f64, GradcheckError> {
            let tape = Tape::new();
            let (y, _) = checker.record(&tape, &moved_along(inputs, &v, delta))?;
            Ok(dot(&to_f64(&y.value()), &u))
        };
        let numerical = (projected(h)? - projected(-h)?) / (2.0 * h);
        let at = || format!("direction {direction}");
        if tally.compare(&rule, analytical, numerical, at).is_some() {
            let full = checker.run()?;
            if !full.kinks.is_empty() {
                return Ok(full);
            }
            return Err(checker.fail(GradcheckFailure::DirectionalMismatch {
                direction,
                analytical,
                numerical,
            }));
        }
    }
    Ok(tally.report(
        "directional gradcheck",
        inputs,
        output_shape.numel(),
        options,
        Vec::new(),
    ))
}

/// How far apart `u . (J v)` and `(J^T u) . v` may be, relative to a scale: both are sums of
/// the same products taken in different orders, so they differ by round-off of the magnitudes
/// involved. The scale is the sum of the magnitudes of both dot products' terms plus |u| |v|
/// (what a Jacobian of unit size would give, so that a product that cancels to nearly 0, such
/// as the variance of a constant, is not held to a bound of 0). 1e-10 of it leaves about 10^6
/// ulps of margin for round-off, while a wrong rule errs by the order of the scale itself.
const TRANSPOSE_TOLERANCE: f64 = 1e-10;

/// Checks forward mode ([`Tape::forward_mode`], [`jvp`](crate::jvp)) of `f` at `inputs`, along
/// `directions` random tangents v (normal, seeded by `seed`, one per input):
///
/// 1. J v from the tangent rules, element by element, against the central difference
///    `(f(x + h v) - f(x - h v)) / (2 h)` (h the step for the largest |x|), with
///    [`gradcheck`]'s pass rule; where the direction crosses a kink, J v must lie between the
///    one-sided directional derivatives (listed in the report's kinks, `input` `None`);
/// 2. forward against reverse mode through the identity `u . (J v) = (J^T u) . v` for a random
///    u over the output, to round-off (see the bound in the source).
///
/// Inputs may be any views: the tangent rules run on them as given. Needs f64.
///
/// ```
/// use autograd::gradcheck::{jvpcheck, GradcheckOptions};
/// use tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3]).unwrap();
/// let report = jvpcheck(|v| v[0].tanh() * v[0], &[x], &GradcheckOptions::strict("tanh x"), 2, 7).unwrap();
/// assert_eq!(report.entries_checked, 2 * 3);
/// ```
///
/// A closure bound to a `let` before the call needs [`autograd::function`](crate::function)
/// (Rust infers a `let`-bound closure's lifetimes too narrowly without it).
pub fn jvpcheck<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
    directions: usize,
    seed: u64,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    require_f64::<T>(options)?;
    let checker = Checker {
        f: infallible(f),
        reference: None,
        inputs,
        options,
    };
    let rule = options.pass_rule();
    let h = options.step.for_value::<T>(largest_magnitude(inputs));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    tally.step(h);
    let mut kinks = Vec::new();
    let mut scan: Option<SiteScan> = None;
    let mut output_shape = Shape::scalar();
    for direction in 0..directions {
        let v: Vec<Tensor<T>> = inputs
            .iter()
            .map(|x| standard_normal(x.shape(), &mut rng))
            .collect();
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let (output, tangent) = tape
            .forward_mode(|level| {
                let duals = leaves
                    .iter()
                    .zip(&v)
                    .map(|(&leaf, v)| level.try_dual(leaf, tape.constant(v.clone())))
                    .collect::<Result<Vec<_>, _>>()?;
                let output = (checker.f)(&duals)?;
                Ok((output, level.try_tangent(output)?))
            })
            .map_err(|e| checker.autograd(e))?;
        output_shape = output.shape();
        let forward = to_f64(&tangent.value());
        // 1. Against central differences along v.
        let moved = |delta: f64| checker.evaluate_all(&moved_along(inputs, &v, delta));
        let (plus, minus) = (moved(h)?, moved(-h)?);
        let mut center: Option<Vec<f64>> = None;
        let mut halves: Option<(Vec<f64>, Vec<f64>)> = None;
        let mut explanation: Option<kinks::Explanation> = None;
        let mut worst: Option<(f64, GradcheckFailure)> = None;
        for (j, &analytical) in forward.iter().enumerate() {
            let numerical = (plus[j] - minus[j]) / (2.0 * h);
            let excess = Tally::excess(&rule, analytical, numerical);
            if options.accept_kinks && !excess.is_some_and(f64::is_nan) {
                if center.is_none() {
                    center = Some(checker.evaluate_all(inputs)?);
                }
                let at_point = center.as_ref().expect("just set")[j];
                if kinks::suspicious(
                    &rule,
                    [at_point, plus[j], minus[j]],
                    [h, h],
                    excess.is_none(),
                ) {
                    if halves.is_none() {
                        halves = Some((moved(h / 2.0)?, moved(-h / 2.0)?));
                    }
                    let (plus_half, minus_half) = halves.as_ref().expect("just set");
                    let probe = Probe {
                        center: at_point,
                        plus: plus[j],
                        minus: minus[j],
                        plus_half: plus_half[j],
                        minus_half: minus_half[j],
                        steps: [h, h, h / 2.0, h / 2.0],
                    };
                    if let Some(sides) = kinks::recognise(&rule, &probe) {
                        if explanation.is_none() {
                            let tape_at_point = Tape::new();
                            checker.record(&tape_at_point, inputs)?;
                            let scan = scan.insert(SiteScan::new(&tape_at_point));
                            explanation =
                                Some(checker.explain(scan, &moved_along(inputs, &v, h / 2.0)));
                        }
                        let kink = explanation.as_ref().expect("just set").kink(
                            &rule,
                            None,
                            Vec::new(),
                            unravel(&output_shape, j),
                            sides,
                            analytical,
                        );
                        tally.count();
                        if kink.is_subgradient(&rule) {
                            kinks.push(kink);
                            continue;
                        }
                        return Err(checker.fail(GradcheckFailure::NotASubgradient {
                            kink: Box::new(kink),
                        }));
                    }
                }
            }
            let Some(excess) = excess else {
                tally.record(&rule, analytical, numerical, || {
                    format!(
                        "direction {direction}, output {:?}",
                        unravel(&output_shape, j)
                    )
                });
                continue;
            };
            tally.record(&rule, analytical, numerical, || {
                format!(
                    "direction {direction}, output {:?}",
                    unravel(&output_shape, j)
                )
            });
            if worst
                .as_ref()
                .is_none_or(|(most, _)| excess > *most || excess.is_nan())
            {
                let failure = GradcheckFailure::TangentMismatch {
                    direction,
                    output_element: unravel(&output_shape, j),
                    forward: analytical,
                    numerical,
                    step: h,
                    worst_abs: 0.0,
                    worst_rel: 0.0,
                };
                worst = Some((excess, failure));
            }
        }
        if let Some((_, mut failure)) = worst {
            if let GradcheckFailure::TangentMismatch {
                worst_abs,
                worst_rel,
                ..
            } = &mut failure
            {
                (*worst_abs, *worst_rel) = (tally.worst_abs, tally.worst_rel);
            }
            return Err(checker.fail(failure));
        }
        // 2. Against the reverse mode: u . (J v) = (J^T u) . v.
        let u = standard_normal(&output_shape, &mut rng);
        let reverse_rows = checker.gradients(output, &leaves, u.clone())?;
        let u = to_f64(&u);
        let mut scale = 0.0;
        let mut forward_dot = 0.0;
        for (u, jv) in u.iter().zip(&forward) {
            forward_dot += u * jv;
            scale += (u * jv).abs();
        }
        let mut reverse_dot = 0.0;
        for (row, v) in reverse_rows.iter().zip(&v) {
            for (g, v) in row.iter().zip(to_f64(v)) {
                reverse_dot += g * v;
                scale += (g * v).abs();
            }
        }
        let norm =
            |values: &mut dyn Iterator<Item = f64>| values.map(|x| x * x).sum::<f64>().sqrt();
        let v_norm = norm(&mut v.iter().flat_map(to_f64));
        let allowed = TRANSPOSE_TOLERANCE * (scale + norm(&mut u.iter().copied()) * v_norm);
        let disagreement = (forward_dot - reverse_dot).abs();
        if disagreement.is_nan() || disagreement > allowed {
            return Err(checker.fail(GradcheckFailure::TransposeMismatch {
                direction,
                forward: forward_dot,
                reverse: reverse_dot,
                allowed,
            }));
        }
    }
    Ok(tally.report("jvpcheck", inputs, output_shape.numel(), options, kinks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::CustomOp;

    /// x^2 with a deliberately wrong rule: 3x instead of 2x.
    struct WrongSquare;

    impl CustomOp<f64> for WrongSquare {
        fn name(&self) -> &str {
            "wrong_square"
        }
        fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].square())
        }
        fn backward(
            &self,
            grad: &Tensor<f64>,
            inputs: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![Some(grad * &inputs[0].mul_scalar(3.0))]
        }
    }

    /// Returns a gradient even for a zero seed.
    struct LeakyRule;

    impl CustomOp<f64> for LeakyRule {
        fn name(&self) -> &str {
            "leaky"
        }
        fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].clone())
        }
        fn backward(
            &self,
            grad: &Tensor<f64>,
            _: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![Some(grad.add_scalar(1e-3))]
        }
    }

    fn x() -> Tensor<f64> {
        Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]).unwrap()
    }

    #[test]
    fn a_wrong_rule_is_caught_and_located() {
        let error = gradcheck(
            |v| v[0].tape().custom_op(WrongSquare, &[v[0]]),
            &[x()],
            &GradcheckOptions::labelled("wrong"),
        )
        .unwrap_err();
        let GradcheckFailure::Mismatch {
            input,
            element,
            output_element,
            analytical,
            numerical,
            worst_abs,
            ..
        } = &*error.failure
        else {
            panic!("expected a mismatch, got {error}");
        };
        assert_eq!(*input, 0);
        // The largest excess is at the largest |x| = 2: analytical 3x = 6, numerical 2x = 4.
        assert_eq!(element, &vec![2]);
        assert_eq!(output_element, &vec![2]);
        assert!((analytical - 6.0).abs() < 1e-12);
        assert!((numerical - 4.0).abs() < 1e-6);
        assert!((worst_abs - 2.0).abs() < 1e-6);
        assert!(
            error.to_string().starts_with(
                "wrong: Jacobian mismatch for input 0, element [2], output element [2]"
            )
        );
    }

    #[test]
    fn f32_inputs_are_refused() {
        let error = gradcheck(
            |v| v[0].exp(),
            &[Tensor::<f32>::ones([2])],
            &GradcheckOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            GradcheckError {
                label: "gradcheck".to_string(),
                failure: Box::new(GradcheckFailure::NotF64 { dtype: DType::F32 }),
                rule: GradcheckOptions::default().pass_rule(),
            }
        );
    }

    #[test]
    fn a_rule_that_leaks_under_a_zero_seed_is_caught() {
        let error = gradcheck(
            |v| v[0].tape().custom_op(LeakyRule, &[v[0]]),
            &[x()],
            &GradcheckOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                *error.failure,
                GradcheckFailure::NonZeroForZeroGradient { input: 0, .. }
            ),
            "{error}"
        );
    }

    #[test]
    fn strided_and_broadcast_inputs_are_checked_on_their_logical_elements() {
        let base =
            Tensor::from_vec((0..12).map(|v| v as f64 * 0.3 - 1.0).collect(), [3, 4]).unwrap();
        let transposed = base.t();
        let broadcast = Tensor::from_vec(vec![0.4, -0.2, 0.9], [3, 1])
            .unwrap()
            .broadcast_to([3, 4]);
        let report = gradcheck(
            |v| (v[0].t() * v[1]).exp(),
            &[transposed, broadcast],
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert_eq!(report.materialised, vec![1]);
        assert_eq!(report.entries_checked, 2 * 12 * 12);
    }

    #[test]
    fn directional_check_passes_correct_rules_and_reports_wrong_ones_in_full() {
        let big =
            Tensor::from_vec((0..64).map(|v| (v as f64 * 0.37).sin()).collect(), [8, 8]).unwrap();
        let report = gradcheck_directional(
            |v| v[0].matmul(v[0]).tanh(),
            &[big],
            &GradcheckOptions::default(),
            4,
            7,
        )
        .unwrap();
        assert_eq!(report.entries_checked, 4);
        let error = gradcheck_directional(
            |v| v[0].tape().custom_op(WrongSquare, &[v[0]]),
            &[x()],
            &GradcheckOptions::default(),
            3,
            7,
        )
        .unwrap_err();
        assert!(
            matches!(*error.failure, GradcheckFailure::Mismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn report_displays_the_errors() {
        let report = gradcheck(|v| v[0].sigmoid(), &[x()], &GradcheckOptions::default()).unwrap();
        assert!(
            report
                .to_string()
                .starts_with("gradcheck passed: 1 inputs, 3 outputs, 9 entries compared")
        );
    }
}
