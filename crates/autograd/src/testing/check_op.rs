//! [`check_op`]: one call that checks a custom op or composite the way this crate checks its
//! own primitives, over random shapes, values and layouts, and prints one report.

use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tensor::{Float, Shape, Tensor};

use super::{Arrangement, arrange};
use crate::error::AutogradError;
use crate::gradcheck::{
    GradcheckError, GradcheckFailure, GradcheckOptions, PassRule, Report, gradcheck, gradgradcheck,
    jvpcheck,
};
use crate::tape::{Tape, Var};

/// An op under test, described as the registry describes its own: how many inputs it takes, a
/// strategy for valid inputs (f64; use [`tensor_strategy`](super::tensor_strategy) to get
/// transposed, sliced and broadcast layouts too) with the op's parameters, and its fallible
/// form in either element type (so the f32 forward can be compared with the f64 one).
///
/// A custom op is applied through [`Tape::try_custom_op`], so it needs `impl<T: Float>
/// CustomOp<T>`; a composite is applied directly.
pub trait OpUnderTest {
    /// Parameters drawn with the inputs (axes, a scalar, ...); `()` if there are none.
    type Params: Clone + fmt::Debug;

    /// The op's name, for the report.
    fn name(&self) -> String;

    /// Number of Var inputs.
    fn arity(&self) -> usize;

    /// Valid inputs and parameters. Every drawn instance must be one the op accepts.
    fn instances(&self) -> BoxedStrategy<(Vec<Tensor<f64>>, Self::Params)>;

    /// Applies the op to `inputs` (its fallible form: a wrong count or shape is an error).
    fn apply<'t, T: Float>(
        &self,
        inputs: &[Var<'t, T>],
        params: &Self::Params,
    ) -> Result<Var<'t, T>, AutogradError>;
}

/// Whether a derivative beyond the first is required of the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Must be supported and correct.
    Required,
    /// Checked if supported; "unsupported" must be the named error (default).
    IfSupported,
    /// Not checked.
    Skip,
}

/// Settings for [`check_op`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOpOptions {
    /// Random instances (default 64; the environment variable `PROPTEST_CASES` overrides it).
    pub cases: u32,
    /// Tolerances and step for every derivative check (default [`GradcheckOptions::strict`]).
    pub gradcheck: GradcheckOptions,
    /// Second derivatives, through `backward_create_graph` (default [`Support::IfSupported`]).
    pub second_order: Support,
    /// Forward mode, through the tangent rules (default [`Support::IfSupported`]).
    pub forward_mode: Support,
    /// How far the f32 forward may be from the f64 one, `|y32 - y64| <= atol * max|y64| +
    /// rtol * |y64|`: the absolute part scales with the output's largest magnitude, so an
    /// op whose outputs are all small is still held to f32's relative precision (default atol
    /// 1e-5, rtol 1e-4: some hundreds of f32 ulps, room for reassociation and for the
    /// inputs' own rounding to f32).
    pub f32_rule: PassRule,
    /// Seed of the random instances (default 0), so a report can be reproduced.
    pub seed: u64,
}

impl Default for CheckOpOptions {
    fn default() -> Self {
        CheckOpOptions {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(64),
            gradcheck: GradcheckOptions::strict("check_op"),
            second_order: Support::IfSupported,
            forward_mode: Support::IfSupported,
            f32_rule: PassRule {
                atol: 1e-5,
                rtol: 1e-4,
            },
            seed: 0,
        }
    }
}

/// One check [`check_op`] makes on every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The op accepts the instance (an error or panic on valid inputs fails).
    Forward,
    /// Two forwards give bit-identical values.
    ForwardDeterminism,
    /// [`gradcheck`]: the full Jacobian (kinks as subgradients), zero in gives zero out, and
    /// two backward passes are bit-identical.
    Gradcheck,
    /// Transposed, sliced and broadcast copies of each input: the same forward values as the
    /// contiguous input (broadcast copies excepted, whose values differ), and gradcheck passes.
    Layouts,
    /// [`gradgradcheck`].
    SecondOrder,
    /// [`jvpcheck`]: the tangent rules against finite differences and against the reverse mode.
    ForwardMode,
    /// The forward in f32 against the forward in f64.
    F32Agreement,
    /// One input too few or too many is a named error, an input of another rank is either
    /// accepted or a named error, never a panic, and a failed call leaves the tape unchanged.
    Errors,
}

impl Stage {
    /// Every stage, in the order they run.
    pub const ALL: [Stage; 8] = [
        Stage::Forward,
        Stage::ForwardDeterminism,
        Stage::Gradcheck,
        Stage::Layouts,
        Stage::SecondOrder,
        Stage::ForwardMode,
        Stage::F32Agreement,
        Stage::Errors,
    ];

    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Forward => "forward",
            Stage::ForwardDeterminism => "forward determinism",
            Stage::Gradcheck => "gradcheck",
            Stage::Layouts => "layouts",
            Stage::SecondOrder => "gradgradcheck",
            Stage::ForwardMode => "jvpcheck",
            Stage::F32Agreement => "f32 vs f64 forward",
            Stage::Errors => "shape and arity errors",
        }
    }
}

/// What one stage did over all instances.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSummary {
    /// The stage.
    pub stage: Stage,
    /// How many checks it ran.
    pub runs: usize,
    /// Why it was not run, if it was not (skipped, or the op does not support it: the named
    /// error it returned).
    pub not_run: Option<String>,
    /// The worst relative error it saw (derivative checks and f32 agreement), if any.
    pub worst_rel: Option<f64>,
}

/// What a passing [`check_op`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCheckReport {
    /// The op's name.
    pub op: String,
    /// Instances drawn.
    pub cases: u32,
    /// Instances skipped because the f64 output was not finite.
    pub skipped_non_finite: u32,
    /// Each stage.
    pub stages: Vec<StageSummary>,
    /// Elements checked as subgradients at kinks, over every gradcheck.
    pub kinks: usize,
    /// The derivative checks' pass rule.
    pub rule: PassRule,
    /// The derivative checks' step, in words.
    pub step: String,
}

impl OpCheckReport {
    /// The summary of `stage`.
    pub fn stage(&self, stage: Stage) -> &StageSummary {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .expect("every stage has a summary")
    }
}

impl fmt::Display for OpCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "check_op '{}': passed on {} random instances ({} skipped: non-finite output)",
            self.op, self.cases, self.skipped_non_finite
        )?;
        writeln!(f, "  {:<24} {:>6}  result", "stage", "runs")?;
        for stage in &self.stages {
            let result = match (&stage.not_run, stage.worst_rel) {
                (Some(why), _) => format!("not run: {why}"),
                (None, Some(worst)) => format!("passed; worst relative error {worst:.2e}"),
                (None, None) => "passed".to_string(),
            };
            writeln!(
                f,
                "  {:<24} {:>6}  {result}",
                stage.stage.name(),
                stage.runs
            )?;
        }
        writeln!(f, "  pass rule: {}", self.rule)?;
        writeln!(f, "  step: {}", self.step)?;
        write!(
            f,
            "  kinks: {} elements checked as subgradients",
            self.kinks
        )
    }
}

/// Why [`check_op`] failed: the stage, what it found, and the smallest failing instance
/// proptest shrank to.
#[derive(Clone, Debug)]
pub struct OpCheckFailure {
    /// The op's name.
    pub op: String,
    /// The stage that failed.
    pub stage: Stage,
    /// What it found (a gradcheck failure's full message, with the pass rule).
    pub message: String,
    /// The smallest failing instance's inputs.
    pub inputs: Vec<Tensor<f64>>,
    /// The instance's parameters, printed.
    pub params: String,
}

impl fmt::Display for OpCheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "check_op '{}' failed at stage '{}': {}",
            self.op,
            self.stage.name(),
            self.message
        )?;
        writeln!(f, "  smallest failing instance (shrunk by proptest):")?;
        for (i, x) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "    input {i}: shape {} strides {:?} values {:?}",
                x.shape(),
                x.strides(),
                x.to_vec()
            )?;
        }
        write!(f, "    params: {}", self.params)
    }
}

impl std::error::Error for OpCheckFailure {}

/// The running summary of the stages.
struct Tally {
    skipped: u32,
    kinks: usize,
    stages: Vec<StageSummary>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            skipped: 0,
            kinks: 0,
            stages: Stage::ALL
                .iter()
                .map(|&stage| StageSummary {
                    stage,
                    runs: 0,
                    not_run: None,
                    worst_rel: None,
                })
                .collect(),
        }
    }

    fn ran(&mut self, stage: Stage, worst_rel: Option<f64>) {
        let summary = &mut self.stages[stage as usize];
        summary.runs += 1;
        if let Some(worst) = worst_rel {
            summary.worst_rel = Some(summary.worst_rel.map_or(worst, |w| w.max(worst)));
        }
    }

    fn not_run(&mut self, stage: Stage, why: String) {
        self.stages[stage as usize].not_run.get_or_insert(why);
    }
}

/// A stage's failure inside one case: the stage and the message.
type CaseFailure = (Stage, String);

/// Runs `f`, turning a panic into its message (shared with `nn::testing::check_layer`).
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string())
    })
}

/// The outcome of a derivative check run under [`catch_panic`], as the report or `stage`'s
/// failure message (a panic inside it, the op failing on an instance the check derived from a
/// valid one, is a failure too).
pub fn stage_outcome<S>(
    stage: S,
    outcome: Result<Result<Report, GradcheckError>, String>,
) -> Result<Report, (S, String)> {
    match outcome {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => Err((stage, error.to_string())),
        Err(panic) => Err((stage, format!("panicked: {panic}"))),
    }
}

/// The named error of an op that does not support the derivative asked for (higher order or
/// forward mode), if that is what the check returned.
pub fn unsupported_derivative(
    outcome: &Result<Result<Report, GradcheckError>, String>,
) -> Option<String> {
    let Ok(Err(GradcheckError { failure, .. })) = outcome else {
        return None;
    };
    match &**failure {
        GradcheckFailure::Autograd(error)
            if matches!(
                **error,
                AutogradError::HigherOrderUnsupported { .. }
                    | AutogradError::TangentUnsupported { .. }
            ) =>
        {
            Some(error.to_string())
        }
        _ => None,
    }
}

/// The op's forward value on fresh leaves of `inputs`, in element type `T`.
fn forward<O: OpUnderTest, T: Float>(
    op: &O,
    inputs: &[Tensor<T>],
    params: &O::Params,
) -> Result<Result<Tensor<T>, AutogradError>, String> {
    catch_panic(|| {
        let tape = Tape::<T>::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        op.apply(&leaves, params).map(|y| y.value())
    })
}

/// The contiguous copy and the transposed and sliced views of `x` (same logical values), and
/// a broadcast input of its shape (other values), each with its description.
fn layouts(x: &Tensor<f64>, which: usize) -> Vec<(Tensor<f64>, &'static str, bool)> {
    let shape = x.shape();
    let values = x.to_vec();
    let mut out = vec![(
        arrange(values.clone(), shape, Arrangement::Contiguous, which),
        "contiguous",
        true,
    )];
    if shape.rank() >= 2 {
        out.push((
            arrange(values.clone(), shape, Arrangement::Transposed, which),
            "transposed",
            true,
        ));
    }
    if shape.rank() >= 1 {
        out.push((
            arrange(values, shape, Arrangement::Sliced, which),
            "sliced",
            true,
        ));
    }
    // Broadcast along the last axis that can be: along a batch axis every example would be
    // the same, a singular point for batch statistics.
    if let Some(axis) = (0..shape.rank()).rev().find(|&a| shape.dims()[a] > 1) {
        out.push((
            x.contiguous().narrow(axis, 0, 1).broadcast_to(shape),
            "broadcast",
            false,
        ));
    }
    out
}

/// Every stage on one instance.
fn check_case<O: OpUnderTest>(
    op: &O,
    inputs: &[Tensor<f64>],
    params: &O::Params,
    options: &CheckOpOptions,
    case_seed: u64,
    tally: &RefCell<Tally>,
) -> Result<(), CaseFailure> {
    let gradcheck_options = &options.gradcheck;
    // Forward, and its determinism.
    let output = match forward(op, inputs, params) {
        Ok(Ok(y)) => y,
        Ok(Err(e)) => {
            return Err((
                Stage::Forward,
                format!("the op refused a valid instance: {e}"),
            ));
        }
        Err(panic) => return Err((Stage::Forward, format!("panicked: {panic}"))),
    };
    if output.to_vec().iter().any(|v| !v.is_finite()) {
        tally.borrow_mut().skipped += 1;
        return Ok(());
    }
    tally.borrow_mut().ran(Stage::Forward, None);
    match forward(op, inputs, params) {
        Ok(Ok(again))
            if again
                .to_vec()
                .iter()
                .zip(output.to_vec())
                .all(|(a, b)| a.to_bits() == b.to_bits()) => {}
        Ok(Ok(again)) => {
            return Err((
                Stage::ForwardDeterminism,
                format!(
                    "two forwards differ: {:?} then {:?}",
                    output.to_vec(),
                    again.to_vec()
                ),
            ));
        }
        _ => {
            return Err((
                Stage::ForwardDeterminism,
                "the second forward failed".to_string(),
            ));
        }
    }
    tally.borrow_mut().ran(Stage::ForwardDeterminism, None);

    // The derivatives at the instance as drawn.
    let run_gradcheck = |inputs: &[Tensor<f64>]| {
        catch_panic(|| {
            gradcheck(
                |v| op.apply(v, params).unwrap_or_else(|e| panic!("{e}")),
                inputs,
                gradcheck_options,
            )
        })
    };
    let report = stage_outcome(Stage::Gradcheck, run_gradcheck(inputs))?;
    {
        let mut tally = tally.borrow_mut();
        tally.kinks += report.kinks.len();
        tally.ran(Stage::Gradcheck, Some(report.max_rel_error));
    }

    // Other layouts of each input.
    for which in 0..inputs.len() {
        for (relaid, layout, same_values) in layouts(&inputs[which], which) {
            let mut moved = inputs.to_vec();
            moved[which] = relaid;
            let stage_error = |message: String| {
                (
                    Stage::Layouts,
                    format!(
                        "input {which} {layout} (strides {:?}): {message}",
                        moved[which].strides()
                    ),
                )
            };
            if same_values {
                match forward(op, &moved, params) {
                    Ok(Ok(y)) => {
                        let close = y.shape() == output.shape()
                            && y.to_vec()
                                .iter()
                                .zip(output.to_vec())
                                .all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs()));
                        if !close {
                            return Err(stage_error(format!(
                                "the forward differs from the contiguous input's: {:?} vs {:?}",
                                y.to_vec(),
                                output.to_vec()
                            )));
                        }
                    }
                    Ok(Err(e)) => return Err(stage_error(format!("the op refused it: {e}"))),
                    Err(panic) => return Err(stage_error(format!("panicked: {panic}"))),
                }
            }
            let finite = forward(op, &moved, params)
                .ok()
                .and_then(|y| y.ok())
                .is_some_and(|y| y.to_vec().iter().all(|v| v.is_finite()));
            if finite {
                let report = stage_outcome(Stage::Layouts, run_gradcheck(&moved))
                    .map_err(|(_, message)| stage_error(message))?;
                tally.borrow_mut().kinks += report.kinks.len();
                tally
                    .borrow_mut()
                    .ran(Stage::Layouts, Some(report.max_rel_error));
            }
        }
    }

    // Second order and forward mode, as required.
    let higher = [
        (Stage::SecondOrder, options.second_order),
        (Stage::ForwardMode, options.forward_mode),
    ];
    for (stage, support) in higher {
        if support == Support::Skip {
            tally
                .borrow_mut()
                .not_run(stage, "skipped by the options".to_string());
            continue;
        }
        let outcome = catch_panic(|| match stage {
            Stage::SecondOrder => gradgradcheck(
                |v| op.apply(v, params).unwrap_or_else(|e| panic!("{e}")),
                inputs,
                gradcheck_options,
            ),
            _ => jvpcheck(
                |v| op.apply(v, params).unwrap_or_else(|e| panic!("{e}")),
                inputs,
                gradcheck_options,
                2,
                case_seed,
            ),
        });
        if let Some(why) = unsupported_derivative(&outcome) {
            if support == Support::Required {
                return Err((
                    stage,
                    format!("required, but the op does not support it: {why}"),
                ));
            }
            tally
                .borrow_mut()
                .not_run(stage, format!("unsupported ({why})"));
            continue;
        }
        let report = stage_outcome(stage, outcome)?;
        tally.borrow_mut().ran(stage, Some(report.max_rel_error));
    }

    // The forward in f32.
    let narrow: Vec<Tensor<f32>> = inputs.iter().map(|x| x.cast::<f32>()).collect();
    match forward(op, &narrow, params) {
        Ok(Ok(y)) => {
            if y.shape() != output.shape() {
                return Err((
                    Stage::F32Agreement,
                    format!("shape {} in f32 but {} in f64", y.shape(), output.shape()),
                ));
            }
            let largest = output.to_vec().iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            let rule = PassRule {
                atol: options.f32_rule.atol * largest,
                rtol: options.f32_rule.rtol,
            };
            let mut worst = 0.0_f64;
            for (flat, (a, b)) in y.to_vec().iter().zip(output.to_vec()).enumerate() {
                let a = f64::from(*a);
                if !rule.passes(a, b) {
                    return Err((
                        Stage::F32Agreement,
                        format!(
                            "output element {flat}: f32 gives {a:e}, f64 gives {b:e}; {} (atol = {:e} * max|y| = {largest:e})",
                            rule.explain(a, b),
                            options.f32_rule.atol
                        ),
                    ));
                }
                if b != 0.0 {
                    worst = worst.max((a - b).abs() / b.abs());
                }
            }
            tally.borrow_mut().ran(Stage::F32Agreement, Some(worst));
        }
        Ok(Err(e)) => {
            return Err((
                Stage::F32Agreement,
                format!("the op refused the f32 instance: {e}"),
            ));
        }
        Err(panic) => return Err((Stage::F32Agreement, format!("panicked in f32: {panic}"))),
    }

    // Wrong counts and shapes.
    let arity = op.arity();
    let extra = inputs.first().cloned().unwrap_or_else(|| Tensor::ones([1]));
    let mut attempts: Vec<(String, Vec<Tensor<f64>>, bool)> = Vec::new();
    if arity > 0 {
        attempts.push((
            format!("{} inputs", arity - 1),
            inputs[..arity - 1].to_vec(),
            true,
        ));
    }
    let mut more = inputs.to_vec();
    more.push(extra);
    attempts.push((format!("{} inputs", arity + 1), more, true));
    for which in 0..inputs.len() {
        let mut dims = vec![2];
        dims.extend_from_slice(inputs[which].dims());
        let mut reshaped = inputs.to_vec();
        reshaped[which] = Tensor::full(Shape::from(dims.clone()), 0.5);
        attempts.push((format!("input {which} of shape {dims:?}"), reshaped, false));
    }
    for (what, attempt, must_fail) in attempts {
        let outcome = catch_panic(|| {
            let tape = Tape::<f64>::new();
            let leaves: Vec<Var<'_, f64>> = attempt.iter().map(|x| tape.leaf(x.clone())).collect();
            let before = tape.len();
            let result = op.apply(&leaves, params).map(|_| ());
            (result, tape.len() == before)
        });
        match outcome {
            Err(panic) => {
                return Err((
                    Stage::Errors,
                    format!("{what}: panicked ({panic}) instead of returning an error"),
                ));
            }
            Ok((Ok(()), _)) if must_fail => {
                return Err((
                    Stage::Errors,
                    format!("{what}: accepted, but the op takes {arity}"),
                ));
            }
            Ok((Err(e), false)) => {
                return Err((
                    Stage::Errors,
                    format!("{what}: the error ({e}) left nodes on the tape"),
                ));
            }
            Ok(_) => {}
        }
        tally.borrow_mut().ran(Stage::Errors, None);
    }
    Ok(())
}

/// Checks `op` the way this crate checks its primitives (see [`Stage`] for every check), on
/// `options.cases` random instances from its strategy; on failure proptest shrinks the
/// instance and the error names the stage, the finding (with the pass rule and its numbers)
/// and the smallest failing instance. `docs/custom-ops.md` walks through it.
///
/// ```
/// use autograd::testing::{check_op, CheckOpOptions, OpUnderTest, Domain, Sizes, shape_strategy, tensor_strategy};
/// use autograd::{AutogradError, Var};
/// use proptest::prelude::*;
/// use tensor::{Float, Tensor};
///
/// /// x * sigmoid(x), as a composite.
/// struct Swish;
///
/// impl OpUnderTest for Swish {
///     type Params = ();
///     fn name(&self) -> String { "swish".into() }
///     fn arity(&self) -> usize { 1 }
///     fn instances(&self) -> BoxedStrategy<(Vec<Tensor<f64>>, ())> {
///         shape_strategy(0..=2, Sizes::NON_EMPTY)
///             .prop_flat_map(|shape| tensor_strategy(shape, Domain::Any))
///             .prop_map(|x| (vec![x], ()))
///             .boxed()
///     }
///     fn apply<'t, T: Float>(&self, v: &[Var<'t, T>], _: &()) -> Result<Var<'t, T>, AutogradError> {
///         let [x] = v else {
///             return Err(AutogradError::Transform { op: "swish", message: format!("takes 1 input, got {}", v.len()) });
///         };
///         x.try_mul(x.try_sigmoid()?)
///     }
/// }
///
/// let report = check_op(&Swish, &CheckOpOptions { cases: 8, ..CheckOpOptions::default() }).unwrap();
/// println!("{report}");
/// ```
pub fn check_op<O: OpUnderTest>(
    op: &O,
    options: &CheckOpOptions,
) -> Result<OpCheckReport, OpCheckFailure> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&options.seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: options.cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let tally = RefCell::new(Tally::new());
    let mut case = 0u64;
    let case_seed = RefCell::new(&mut case);
    let result = runner.run(&op.instances(), |(inputs, params)| {
        let seed = {
            let mut case = case_seed.borrow_mut();
            **case += 1;
            options.seed ^ **case
        };
        check_case(op, &inputs, &params, options, seed, &tally).map_err(|(stage, message)| {
            TestCaseError::fail(format!("{}\u{1f}{message}", stage as usize))
        })
    });
    let tally = tally.into_inner();
    match result {
        Ok(()) => Ok(OpCheckReport {
            op: op.name(),
            cases: options.cases,
            skipped_non_finite: tally.skipped,
            stages: tally.stages,
            kinks: tally.kinks,
            rule: options.gradcheck.pass_rule(),
            step: options.gradcheck.step.describe::<f64>(),
        }),
        Err(TestError::Fail(reason, (inputs, params))) => {
            let reason = reason.to_string();
            let (stage, message) = reason
                .split_once('\u{1f}')
                .and_then(|(stage, message)| {
                    let stage = Stage::ALL.get(stage.parse::<usize>().ok()?)?;
                    Some((*stage, message.to_string()))
                })
                .unwrap_or((Stage::Forward, reason.clone()));
            Err(OpCheckFailure {
                op: op.name(),
                stage,
                message,
                inputs,
                params: format!("{params:?}"),
            })
        }
        Err(TestError::Abort(reason)) => Err(OpCheckFailure {
            op: op.name(),
            stage: Stage::Forward,
            message: format!("proptest gave up: {reason}"),
            inputs: Vec::new(),
            params: String::new(),
        }),
    }
}

/// [`check_op`] with the default options, panicking with the failure's report: for tests.
#[track_caller]
pub fn assert_check_op<O: OpUnderTest>(op: &O) -> OpCheckReport {
    match check_op(op, &CheckOpOptions::default()) {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    }
}
