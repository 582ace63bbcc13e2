//! [`check_layer`] (feature `testing`): a layer checked the way `autograd::testing::check_op`
//! checks an op, with respect to its input and every trainable parameter, over random inputs,
//! in training and evaluation mode, with one report.

use std::cell::RefCell;
use std::fmt;

use autograd::gradcheck::{GradcheckOptions, PassRule, gradcheck, gradgradcheck, jvpcheck};
use autograd::testing::{
    Arrangement, Support, arrange, catch_panic, stage_outcome, unsupported_derivative,
};
use autograd::{Tape, Var};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tensor::{Float, Shape, Tensor};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::{Context, Mode, ParamStore};

/// A layer under test: how to build it (in either element type, so that its f32 forward can be
/// compared with its f64 one) and a strategy for valid inputs.
pub trait LayerUnderTest {
    /// The layer's name, for the report.
    fn name(&self) -> String;

    /// Builds the layer, adding its parameters to `store`. The f32 copy's parameters are
    /// overwritten with the f64 copy's values, so the initialisation need not agree.
    fn build<T: Float>(&self, store: &mut ParamStore<T>) -> Result<Box<dyn Layer<T>>>;

    /// Valid inputs (f64, any layout).
    fn inputs(&self) -> BoxedStrategy<Tensor<f64>>;

    /// The modes to check (default both).
    fn modes(&self) -> Vec<Mode> {
        vec![Mode::Train, Mode::Eval]
    }
}

/// Settings for [`check_layer`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckLayerOptions {
    /// Random instances (default 32; `PROPTEST_CASES` overrides it).
    pub cases: u32,
    /// Tolerances and step of the derivative checks (default
    /// [`GradcheckOptions::strict`]).
    pub gradcheck: GradcheckOptions,
    /// Second derivatives (default [`Support::IfSupported`]).
    pub second_order: Support,
    /// Forward mode (default [`Support::IfSupported`]).
    pub forward_mode: Support,
    /// The f32 forward against the f64 one, `|y32 - y64| <= atol * max|y64| + rtol * |y64|`
    /// (default atol 1e-5, rtol 1e-4).
    pub f32_rule: PassRule,
    /// Seed of the instances (default 0).
    pub seed: u64,
}

impl Default for CheckLayerOptions {
    fn default() -> Self {
        CheckLayerOptions {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(32),
            gradcheck: GradcheckOptions::strict("check_layer"),
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

/// One check [`check_layer`] makes on every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerStage {
    /// The layer accepts the input, and [`Layer::output_shape`] predicts the output's shape.
    Forward,
    /// Two forwards at the same training step are bit-identical.
    ForwardDeterminism,
    /// gradcheck with respect to the input and every trainable parameter (zero in gives zero
    /// out, backward is deterministic, kinks as subgradients).
    Gradcheck,
    /// Transposed, sliced and broadcast inputs: the same forward (broadcast excepted) and
    /// gradcheck passes.
    Layouts,
    /// gradgradcheck with respect to the input and the parameters.
    SecondOrder,
    /// jvpcheck with respect to the input and the parameters.
    ForwardMode,
    /// The forward in f32 (with the f64 copy's parameters) against the forward in f64.
    F32Agreement,
    /// Inputs of another feature count or rank: a named error (or accepted, if
    /// `output_shape` accepts them too), never a panic, and a refused input changes neither
    /// the tape nor the store.
    Errors,
}

impl LayerStage {
    /// Every stage, in the order they run.
    pub const ALL: [LayerStage; 8] = [
        LayerStage::Forward,
        LayerStage::ForwardDeterminism,
        LayerStage::Gradcheck,
        LayerStage::Layouts,
        LayerStage::SecondOrder,
        LayerStage::ForwardMode,
        LayerStage::F32Agreement,
        LayerStage::Errors,
    ];

    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            LayerStage::Forward => "forward and output_shape",
            LayerStage::ForwardDeterminism => "forward determinism",
            LayerStage::Gradcheck => "gradcheck",
            LayerStage::Layouts => "layouts",
            LayerStage::SecondOrder => "gradgradcheck",
            LayerStage::ForwardMode => "jvpcheck",
            LayerStage::F32Agreement => "f32 vs f64 forward",
            LayerStage::Errors => "shape errors",
        }
    }
}

/// What a stage did over all instances.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStageSummary {
    /// The stage.
    pub stage: LayerStage,
    /// How many checks it ran.
    pub runs: usize,
    /// Why it was not run (skipped, or the named error of an unsupported derivative).
    pub not_run: Option<String>,
    /// The worst relative error seen, if the stage measures one.
    pub worst_rel: Option<f64>,
}

/// What a passing [`check_layer`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerCheckReport {
    /// The layer's name.
    pub layer: String,
    /// Instances drawn.
    pub cases: u32,
    /// Trainable parameters checked with the input.
    pub parameters: usize,
    /// Instances skipped for a non-finite output.
    pub skipped_non_finite: u32,
    /// Each stage.
    pub stages: Vec<LayerStageSummary>,
    /// The derivative checks' pass rule.
    pub rule: PassRule,
}

impl LayerCheckReport {
    /// The summary of `stage`.
    pub fn stage(&self, stage: LayerStage) -> &LayerStageSummary {
        &self.stages[stage as usize]
    }
}

impl fmt::Display for LayerCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "check_layer '{}': passed on {} random inputs, with respect to the input and {} trainable parameters ({} skipped: non-finite output)",
            self.layer, self.cases, self.parameters, self.skipped_non_finite
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
        write!(f, "  pass rule: {}", self.rule)
    }
}

/// Why [`check_layer`] failed, with the smallest failing input proptest shrank to.
#[derive(Clone, Debug)]
pub struct LayerCheckFailure {
    /// The layer's name.
    pub layer: String,
    /// The stage that failed.
    pub stage: LayerStage,
    /// What it found.
    pub message: String,
    /// The smallest failing input (boxed, to keep the error small).
    pub input: Option<Box<Tensor<f64>>>,
    /// The mode it failed in.
    pub mode: Option<Mode>,
}

impl fmt::Display for LayerCheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "check_layer '{}' failed at stage '{}': {}",
            self.layer,
            self.stage.name(),
            self.message
        )?;
        if let (Some(x), Some(mode)) = (&self.input, self.mode) {
            write!(
                f,
                "\n  smallest failing input (shrunk by proptest), in {mode:?} mode: shape {} strides {:?} values {:?}",
                x.shape(),
                x.strides(),
                x.to_vec()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LayerCheckFailure {}

/// The layer on `v[0]` with the trainable parameters bound to `v[1..]`, on a copy of `store`
/// (so batch norm's running statistics do not leak between evaluations) at the store's
/// current training step (so dropout masks stay fixed).
fn evaluate<'t, T: Float>(
    layer: &dyn Layer<T>,
    store: &ParamStore<T>,
    v: &[Var<'t, T>],
    mode: Mode,
) -> Result<Var<'t, T>> {
    let mut store = store.clone();
    let mut context = Context::with_vars(v[0].tape(), &mut store, &v[1..], mode)?;
    layer.try_forward(&mut context, v[0])
}

/// The layer's output value on `x`, with fresh leaves for the parameters.
fn output<T: Float>(
    layer: &dyn Layer<T>,
    store: &ParamStore<T>,
    x: &Tensor<T>,
    mode: Mode,
) -> std::result::Result<Result<Tensor<T>>, String> {
    catch_panic(|| {
        let tape = Tape::<T>::new();
        let mut leaves = vec![tape.leaf(x.clone())];
        leaves.extend(
            store
                .trainable()
                .map(|id| tape.leaf(store.value(id).clone())),
        );
        evaluate(layer, store, &leaves, mode).map(|y| y.value())
    })
}

type CaseFailure = (LayerStage, String);

struct Tally {
    skipped: u32,
    stages: Vec<LayerStageSummary>,
}

impl Tally {
    fn ran(&mut self, stage: LayerStage, worst_rel: Option<f64>) {
        let summary = &mut self.stages[stage as usize];
        summary.runs += 1;
        if let Some(worst) = worst_rel {
            summary.worst_rel = Some(summary.worst_rel.map_or(worst, |w| w.max(worst)));
        }
    }
}

/// The built layer in both element types, the f32 copy holding the f64 copy's values.
struct Built {
    layer: Box<dyn Layer<f64>>,
    store: ParamStore<f64>,
    narrow_layer: Box<dyn Layer<f32>>,
    narrow_store: ParamStore<f32>,
}

fn build<L: LayerUnderTest>(under_test: &L) -> Result<Built> {
    let mut store = ParamStore::<f64>::new();
    let layer = under_test.build(&mut store)?;
    let mut narrow_store = ParamStore::<f32>::new();
    let narrow_layer = under_test.build(&mut narrow_store)?;
    let values: Vec<_> = store
        .iter()
        .map(|(id, _, _, v)| (id, v.cast::<f32>()))
        .collect();
    let narrow_ids: Vec<_> = narrow_store.iter().map(|(id, ..)| id).collect();
    if narrow_ids.len() != values.len() {
        return Err(NnError::Shape {
            op: "check_layer".to_string(),
            message: format!(
                "build made {} parameters in f64 but {} in f32",
                values.len(),
                narrow_ids.len()
            ),
        });
    }
    for (narrow_id, (_, value)) in narrow_ids.into_iter().zip(values) {
        narrow_store.set_value(narrow_id, value);
    }
    Ok(Built {
        layer,
        store,
        narrow_layer,
        narrow_store,
    })
}

fn check_case(
    built: &Built,
    x: &Tensor<f64>,
    mode: Mode,
    options: &CheckLayerOptions,
    case_seed: u64,
    tally: &RefCell<Tally>,
) -> std::result::Result<(), CaseFailure> {
    let layer = &*built.layer;
    let store = &built.store;
    let y = match output(layer, store, x, mode) {
        Ok(Ok(y)) => y,
        Ok(Err(e)) => return Err((LayerStage::Forward, format!("refused a valid input: {e}"))),
        Err(panic) => return Err((LayerStage::Forward, format!("panicked: {panic}"))),
    };
    match layer.output_shape(x.shape()) {
        Ok(shape) if &shape == y.shape() => {}
        Ok(shape) => {
            return Err((
                LayerStage::Forward,
                format!("output_shape says {shape}, the forward gave {}", y.shape()),
            ));
        }
        Err(e) => {
            return Err((
                LayerStage::Forward,
                format!("output_shape refused an input the forward accepts: {e}"),
            ));
        }
    }
    if y.to_vec().iter().any(|v| !v.is_finite()) {
        tally.borrow_mut().skipped += 1;
        return Ok(());
    }
    tally.borrow_mut().ran(LayerStage::Forward, None);
    match output(layer, store, x, mode) {
        Ok(Ok(again))
            if again
                .to_vec()
                .iter()
                .zip(y.to_vec())
                .all(|(a, b)| a.to_bits() == b.to_bits()) => {}
        _ => {
            return Err((
                LayerStage::ForwardDeterminism,
                "two forwards at the same training step differ".to_string(),
            ));
        }
    }
    tally.borrow_mut().ran(LayerStage::ForwardDeterminism, None);

    let with_parameters = |x: &Tensor<f64>| {
        let mut inputs = vec![x.clone()];
        inputs.extend(store.trainable().map(|id| store.value(id).clone()));
        inputs
    };
    let run_gradcheck = |x: &Tensor<f64>| {
        catch_panic(|| {
            gradcheck(
                |v| evaluate(layer, store, v, mode).unwrap_or_else(|e| panic!("{e}")),
                &with_parameters(x),
                &options.gradcheck,
            )
        })
    };
    let report = stage_outcome(LayerStage::Gradcheck, run_gradcheck(x))?;
    tally
        .borrow_mut()
        .ran(LayerStage::Gradcheck, Some(report.max_rel_error));

    // Layouts of the input.
    let shape = x.shape();
    let mut layouts = vec![];
    if shape.rank() >= 2 {
        layouts.push((
            arrange(x.to_vec(), shape, Arrangement::Transposed, 0),
            "transposed",
            true,
        ));
    }
    if shape.rank() >= 1 {
        layouts.push((
            arrange(x.to_vec(), shape, Arrangement::Sliced, 1),
            "sliced",
            true,
        ));
    }
    // Broadcast along the last axis that can be: along a batch axis every example would be
    // the same, a singular point for batch statistics.
    if let Some(axis) = (0..shape.rank()).rev().find(|&a| shape.dims()[a] > 1) {
        layouts.push((
            x.contiguous().narrow(axis, 0, 1).broadcast_to(shape),
            "broadcast",
            false,
        ));
    }
    for (relaid, layout, same_values) in layouts {
        let failure = |message: String| {
            (
                LayerStage::Layouts,
                format!("{layout} input (strides {:?}): {message}", relaid.strides()),
            )
        };
        let moved = match output(layer, store, &relaid, mode) {
            Ok(Ok(moved)) => moved,
            Ok(Err(e)) => return Err(failure(format!("refused: {e}"))),
            Err(panic) => return Err(failure(format!("panicked: {panic}"))),
        };
        if same_values
            && !moved
                .to_vec()
                .iter()
                .zip(y.to_vec())
                .all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs()))
        {
            return Err(failure(
                "the forward differs from the contiguous input's".to_string(),
            ));
        }
        if moved.to_vec().iter().all(|v| v.is_finite()) {
            let report = stage_outcome(LayerStage::Layouts, run_gradcheck(&relaid))
                .map_err(|(_, message)| failure(message))?;
            tally
                .borrow_mut()
                .ran(LayerStage::Layouts, Some(report.max_rel_error));
        }
    }

    // Second order and forward mode.
    for (stage, support) in [
        (LayerStage::SecondOrder, options.second_order),
        (LayerStage::ForwardMode, options.forward_mode),
    ] {
        if support == Support::Skip {
            tally.borrow_mut().stages[stage as usize]
                .not_run
                .get_or_insert_with(|| "skipped by the options".to_string());
            continue;
        }
        let inputs = with_parameters(x);
        let outcome = catch_panic(|| match stage {
            LayerStage::SecondOrder => gradgradcheck(
                |v| evaluate(layer, store, v, mode).unwrap_or_else(|e| panic!("{e}")),
                &inputs,
                &options.gradcheck,
            ),
            _ => jvpcheck(
                |v| evaluate(layer, store, v, mode).unwrap_or_else(|e| panic!("{e}")),
                &inputs,
                &options.gradcheck,
                2,
                case_seed,
            ),
        });
        if let Some(why) = unsupported_derivative(&outcome) {
            if support == Support::Required {
                return Err((stage, format!("required, but not supported: {why}")));
            }
            tally.borrow_mut().stages[stage as usize]
                .not_run
                .get_or_insert(format!("unsupported ({why})"));
            continue;
        }
        let report = stage_outcome(stage, outcome)?;
        tally.borrow_mut().ran(stage, Some(report.max_rel_error));
    }

    // f32 against f64, with the same parameter values.
    let narrow = match output(
        &*built.narrow_layer,
        &built.narrow_store,
        &x.cast::<f32>(),
        mode,
    ) {
        Ok(Ok(narrow)) => narrow,
        Ok(Err(e)) => return Err((LayerStage::F32Agreement, format!("refused in f32: {e}"))),
        Err(panic) => {
            return Err((
                LayerStage::F32Agreement,
                format!("panicked in f32: {panic}"),
            ));
        }
    };
    let largest = y.to_vec().iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let rule = PassRule {
        atol: options.f32_rule.atol * largest,
        rtol: options.f32_rule.rtol,
    };
    let mut worst = 0.0_f64;
    for (flat, (a, b)) in narrow.to_vec().iter().zip(y.to_vec()).enumerate() {
        let a = f64::from(*a);
        if !rule.passes(a, b) {
            return Err((
                LayerStage::F32Agreement,
                format!(
                    "output element {flat}: f32 gives {a:e}, f64 gives {b:e}; {}",
                    rule.explain(a, b)
                ),
            ));
        }
        if b != 0.0 {
            worst = worst.max((a - b).abs() / b.abs());
        }
    }
    tally
        .borrow_mut()
        .ran(LayerStage::F32Agreement, Some(worst));

    // Inputs of another feature count and of another rank.
    let mut wrong = Vec::new();
    if let Some(&last) = shape.dims().last() {
        let mut dims = shape.dims().to_vec();
        *dims.last_mut().expect("rank >= 1") = last + 1;
        wrong.push(dims);
    }
    let mut deeper = vec![2];
    deeper.extend_from_slice(shape.dims());
    wrong.push(deeper);
    for dims in wrong {
        let input = Tensor::full(Shape::from(dims.clone()), 0.5);
        let predicted = layer.output_shape(input.shape());
        let outcome = catch_panic(|| {
            let tape = Tape::<f64>::new();
            let mut store = store.clone();
            let step = store.training_step();
            let x = tape.constant(input.clone());
            let mut context = Context::new(&tape, &mut store, mode);
            let before = tape.len();
            let result = layer.try_forward(&mut context, x).map(|y| y.shape());
            let tape_unchanged = tape.len() == before;
            drop(context);
            let store_unchanged = store
                .iter()
                .zip(built.store.iter())
                .all(|((.., a), (.., b))| a.to_vec() == b.to_vec())
                && (mode == Mode::Eval || store.training_step() <= step + 1);
            (result, tape_unchanged, store_unchanged)
        });
        let what = format!("input of shape {dims:?}");
        match outcome {
            Err(panic) => {
                return Err((
                    LayerStage::Errors,
                    format!("{what}: panicked ({panic}) instead of returning an error"),
                ));
            }
            Ok((Ok(shape), ..)) => match predicted {
                Ok(expected) if expected == shape => {}
                _ => {
                    return Err((
                        LayerStage::Errors,
                        format!(
                            "{what}: the forward accepted it (output {shape}) but output_shape says {predicted:?}"
                        ),
                    ));
                }
            },
            Ok((Err(e), tape_unchanged, store_unchanged)) => {
                if !tape_unchanged || !store_unchanged {
                    return Err((
                        LayerStage::Errors,
                        format!("{what}: the error ({e}) left the tape or the store changed"),
                    ));
                }
                if predicted.is_ok() {
                    return Err((
                        LayerStage::Errors,
                        format!("{what}: the forward refused it ({e}) but output_shape accepts it"),
                    ));
                }
            }
        }
        tally.borrow_mut().ran(LayerStage::Errors, None);
    }
    Ok(())
}

/// Checks a layer the way `autograd::testing::check_op` checks an op (see [`LayerStage`] for
/// every check), with respect to its input and every trainable parameter, on random inputs
/// in each of its modes. On failure proptest shrinks the input, and the error names the stage,
/// the finding and the smallest failing input. `docs/custom-ops.md` walks through it.
///
/// ```
/// use nn::testing::{check_layer, CheckLayerOptions, LayerUnderTest};
/// use nn::{Dense, Init, Layer, ParamStore};
/// use autograd::testing::{tensor_strategy, Domain};
/// use proptest::prelude::*;
/// use rand::SeedableRng;
/// use tensor::{Float, Shape, Tensor};
///
/// struct SmallDense;
///
/// impl LayerUnderTest for SmallDense {
///     fn name(&self) -> String { "dense 3 -> 2".into() }
///     fn build<T: Float>(&self, store: &mut ParamStore<T>) -> nn::Result<Box<dyn Layer<T>>> {
///         let mut rng = rand::rngs::StdRng::seed_from_u64(0);
///         Ok(Box::new(Dense::new(store, "dense", 3, 2, Init::XavierNormal, &mut rng)?))
///     }
///     fn inputs(&self) -> BoxedStrategy<Tensor<f64>> {
///         (1..=3usize).prop_flat_map(|batch| tensor_strategy(Shape::from([batch, 3]), Domain::Any)).boxed()
///     }
/// }
///
/// let report = check_layer(&SmallDense, &CheckLayerOptions { cases: 4, ..CheckLayerOptions::default() }).unwrap();
/// assert_eq!(report.parameters, 2); // the weight and the bias
/// println!("{report}");
/// ```
pub fn check_layer<L: LayerUnderTest>(
    under_test: &L,
    options: &CheckLayerOptions,
) -> std::result::Result<LayerCheckReport, LayerCheckFailure> {
    let fail = |stage, message| LayerCheckFailure {
        layer: under_test.name(),
        stage,
        message,
        input: None,
        mode: None,
    };
    let built =
        build(under_test).map_err(|e| fail(LayerStage::Forward, format!("build failed: {e}")))?;
    let modes = under_test.modes();
    if modes.is_empty() {
        return Err(fail(LayerStage::Forward, "no modes to check".to_string()));
    }
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
    let tally = RefCell::new(Tally {
        skipped: 0,
        stages: LayerStage::ALL
            .iter()
            .map(|&stage| LayerStageSummary {
                stage,
                runs: 0,
                not_run: None,
                worst_rel: None,
            })
            .collect(),
    });
    let case = std::cell::Cell::new(0u64);
    let strategy = (under_test.inputs(), proptest::sample::select(modes));
    let result = runner.run(&strategy, |(x, mode)| {
        case.set(case.get() + 1);
        check_case(&built, &x, mode, options, options.seed ^ case.get(), &tally).map_err(
            |(stage, message)| TestCaseError::fail(format!("{}\u{1f}{message}", stage as usize)),
        )
    });
    let tally = tally.into_inner();
    match result {
        Ok(()) => Ok(LayerCheckReport {
            layer: under_test.name(),
            cases: options.cases,
            parameters: built.store.trainable().count(),
            skipped_non_finite: tally.skipped,
            stages: tally.stages,
            rule: options.gradcheck.pass_rule(),
        }),
        Err(TestError::Fail(reason, (x, mode))) => {
            let reason = reason.to_string();
            let (stage, message) = reason
                .split_once('\u{1f}')
                .and_then(|(stage, message)| {
                    let stage = LayerStage::ALL.get(stage.parse::<usize>().ok()?)?;
                    Some((*stage, message.to_string()))
                })
                .unwrap_or((LayerStage::Forward, reason.clone()));
            Err(LayerCheckFailure {
                layer: under_test.name(),
                stage,
                message,
                input: Some(Box::new(x)),
                mode: Some(mode),
            })
        }
        Err(TestError::Abort(reason)) => Err(fail(
            LayerStage::Forward,
            format!("proptest gave up: {reason}"),
        )),
    }
}
