//! Every primitive and every composite, from the registries in `autograd::testing`:
//! gradchecked (and gradgradchecked) over random shapes, values and memory layouts
//! (contiguous, transposed, sliced, broadcast), and run in anomaly mode on non-finite and on
//! empty inputs, where every `try_` form must return, never panic.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;

use autograd::gradcheck::{GradcheckOptions, gradcheck, gradgradcheck, jvpcheck};
use autograd::testing::{Instance, RegistryEntry, Sizes, composites, registry};
use autograd::{AnomalyMode, AutogradError, PrimitiveKind, Tape, Var};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tensor::Tensor;

/// Cases per entry (CI-sized; raise with PROPTEST_CASES for a longer soak).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn every_primitive_is_in_the_registry_exactly_once() {
    let listed: Vec<PrimitiveKind> = registry().iter().filter_map(|entry| entry.kind).collect();
    let unique: HashSet<PrimitiveKind> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a primitive is listed twice");
    for kind in PrimitiveKind::ALL {
        assert!(
            unique.contains(kind),
            "primitive '{}' is missing from the gradcheck registry",
            kind.name()
        );
    }
    assert_eq!(listed.len(), PrimitiveKind::ALL.len());
}

/// Public `try_` functions that are not ops on Vars, with the reason.
const NOT_OPS: [(&str, &str); 10] = [
    ("backward_keeping", "runs the backward sweep"),
    ("per_sample_gradients", "runs the backward sweep"),
    ("dual", "attaches a tangent (forward mode), records a view"),
    ("tangent", "reads a tangent (forward mode)"),
    (
        "apply",
        "testing::Instance::try_apply, the registries' own helper",
    ),
    ("backward", "runs the backward sweep"),
    ("backward_with", "runs the backward sweep"),
    ("backward_retaining_all", "runs the backward sweep"),
    ("backward_create_graph", "runs the backward sweep"),
    ("backward_create_graph_with", "runs the backward sweep"),
];

/// Methods whose registry entry carries the primitive's name.
const ALIASES: [(&str, &str); 5] = [
    ("broadcast_to", "expand"),
    ("powf", "pow_scalar"),
    ("scatter_add_into", "scatter_add"),
    ("custom_op", "custom"),
    ("select", "select"),
];

/// The names `foo` of every `pub fn try_foo` in the crate's sources.
fn public_try_functions() -> Vec<String> {
    let mut names = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    let line = line.trim_start();
                    if let Some(rest) = line.strip_prefix("pub fn try_") {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        names.push(name);
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_public_fallible_op_is_in_a_registry() {
    let entries: HashSet<&str> = registry()
        .iter()
        .chain(composites().iter())
        .map(|e| e.name)
        .collect();
    let found = public_try_functions();
    assert!(found.len() > 40, "the source scan found only {found:?}");
    for name in &found {
        if NOT_OPS.iter().any(|(n, _)| n == name) {
            continue;
        }
        let entry = ALIASES
            .iter()
            .find(|(method, _)| method == name)
            .map_or(name.as_str(), |(_, entry)| entry);
        assert!(
            entries.contains(entry),
            "`try_{name}` has no entry in autograd::testing::registry() or composites(): \
             add one, so it is gradchecked and run on non-finite and empty inputs"
        );
    }
}

/// Runs `check` on `cases` instances of `entry` with axis sizes in `sizes`.
fn for_instances(
    entry: &RegistryEntry,
    sizes: Sizes,
    cases: u32,
    check: impl Fn(&Instance) -> Result<(), TestCaseError>,
) {
    let result = runner(cases).run(&(entry.instances)(sizes), |instance| {
        assert_eq!(instance.inputs.len(), entry.arity, "{instance:?}");
        check(&instance)
    });
    if let Err(failure) = result {
        panic!("{entry:?}: {failure}");
    }
}

/// The instance's output computed without anomaly mode, if the call succeeds.
fn plain_output(instance: &Instance) -> Option<Tensor<f64>> {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = instance
        .inputs
        .iter()
        .map(|x| tape.leaf(x.clone()))
        .collect();
    instance.try_apply(&vars).ok().map(|y| y.value())
}

fn finite(t: &Tensor<f64>) -> bool {
    t.to_vec().iter().all(|v| v.is_finite())
}

/// Which derivative a registry test checks against finite differences.
#[derive(Clone, Copy)]
enum Check {
    /// The backward rules (the full Jacobian).
    Gradient,
    /// The backward rules evaluated on Vars (second order).
    SecondOrder,
    /// The tangent rules (J v along random v, and u . J v against the reverse mode).
    Tangent,
}

/// A seed for the instance's random tangents, from its values.
fn seed_of(instance: &Instance) -> u64 {
    instance
        .inputs
        .iter()
        .flat_map(|x| x.to_vec())
        .fold(0x5eed_u64, |h, v| h.rotate_left(7) ^ v.to_bits())
}

/// Checks `entry`'s derivatives where its value is finite (a NaN output, such as the unbiased variance
/// of one element, has no derivative to check); at most a tenth of the cases may be skipped.
fn gradcheck_entry(entry: &RegistryEntry, cases: u32, check: Check) {
    let options = GradcheckOptions::strict(entry.name);
    let skipped = std::cell::Cell::new(0);
    for_instances(entry, Sizes::NON_EMPTY, cases, |instance| {
        if !plain_output(instance).is_some_and(|y| finite(&y)) {
            skipped.set(skipped.get() + 1);
            return Ok(());
        }
        let result = match check {
            Check::Gradient => gradcheck(|v| instance.apply(v), &instance.inputs, &options),
            Check::SecondOrder => gradgradcheck(|v| instance.apply(v), &instance.inputs, &options),
            // Two random tangents per case, seeded by the case's first value so cases differ.
            Check::Tangent => jvpcheck(
                |v| instance.apply(v),
                &instance.inputs,
                &options,
                2,
                seed_of(instance),
            ),
        };
        result.map(|_| ()).map_err(|error| {
            TestCaseError::fail(format!("{error} (instance: {})", instance.description))
        })
    });
    assert!(
        skipped.get() * 10 <= cases,
        "{}: {} of {cases} instances had non-finite outputs",
        entry.name,
        skipped.get()
    );
}

/// The instance with one input element set to `poison` (on a contiguous copy).
fn poisoned(instance: &Instance, which: usize, poison: f64) -> Instance {
    let mut poisoned = instance.clone();
    let input = &mut poisoned.inputs[which];
    if input.numel() > 0 {
        let mut values = input.to_vec();
        values[0] = poison;
        *input = Tensor::from_vec(values, input.shape().clone()).unwrap();
    }
    poisoned
}

/// In anomaly mode the `try_` form returns (never panics); a value it returns that it computed
/// (a new node, not one of its inputs passed through) is finite; an error leaves the tape as
/// it was, and an anomaly report shows the non-finite value it found.
fn returns_in_anomaly_mode(instance: &Instance) -> Result<(), TestCaseError> {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let tape = Tape::new();
        tape.enable_anomaly_mode(AnomalyMode::ALL);
        let vars: Vec<Var<'_, f64>> = instance
            .inputs
            .iter()
            .map(|x| tape.leaf(x.clone()))
            .collect();
        let before = tape.len();
        match instance.try_apply(&vars) {
            Ok(y) => Ok(y.index() < before || finite(&y.value())),
            Err(error) => Err((error, tape.len() == before)),
        }
    }));
    match outcome {
        Err(_) => Err(TestCaseError::fail(format!(
            "the try_ form panicked in anomaly mode (instance: {instance:?})"
        ))),
        Ok(Ok(false)) => Err(TestCaseError::fail(format!(
            "anomaly mode let an op produce a non-finite value (instance: {instance:?})"
        ))),
        Ok(Ok(true)) => Ok(()),
        Ok(Err((error, unchanged))) => {
            if !unchanged {
                return Err(TestCaseError::fail(format!(
                    "a failed call left nodes on the tape: {error} (instance: {instance:?})"
                )));
            }
            if let AutogradError::Anomaly(report) = &error {
                if !report.produced.has_non_finite() {
                    return Err(TestCaseError::fail(format!(
                        "a report without a non-finite value: {report}"
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Every entry on inputs holding an infinity or a NaN (at each input in turn): the `try_` form
/// returns in anomaly mode.
fn check_non_finite(entry: &RegistryEntry) {
    for poison in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        for which in 0..entry.arity {
            for_instances(entry, Sizes::NON_EMPTY, 16, |instance| {
                returns_in_anomaly_mode(&poisoned(instance, which, poison))
            });
        }
    }
}

/// Every entry on inputs with empty axes: the `try_` form returns in anomaly mode.
fn check_empty(entry: &RegistryEntry) {
    for_instances(entry, Sizes::WITH_EMPTY, 48, returns_in_anomaly_mode);
}

fn primitive(name: &str) -> RegistryEntry {
    registry()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no registry entry named {name}"))
}

fn composite(name: &str) -> RegistryEntry {
    composites()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no composite entry named {name}"))
}

/// One module of tests per primitive, generated from the declaration table, so that
/// `cargo test -p autograd --test registry relu` reruns one primitive.
macro_rules! primitive_tests {
    ($($name:ident)*) => {
        $(
            mod $name {
                #[test]
                fn gradcheck() {
                    super::gradcheck_entry(&super::primitive(stringify!($name)), super::cases(), super::Check::Gradient);
                }

                #[test]
                fn gradgradcheck() {
                    // A create-graph backward per finite-difference evaluation: a quarter of the
                    // first-order cases.
                    super::gradcheck_entry(&super::primitive(stringify!($name)), super::cases() / 4, super::Check::SecondOrder);
                }

                #[test]
                fn jvpcheck() {
                    super::gradcheck_entry(&super::primitive(stringify!($name)), super::cases(), super::Check::Tangent);
                }

                #[test]
                fn non_finite_inputs_in_anomaly_mode() {
                    super::check_non_finite(&super::primitive(stringify!($name)));
                }

                #[test]
                fn empty_inputs_in_anomaly_mode() {
                    super::check_empty(&super::primitive(stringify!($name)));
                }
            }
        )*
    };
}

autograd::for_each_primitive!(primitive_tests);

/// One module of tests per composite (`cargo test -p autograd --test registry composites::mean`).
macro_rules! composite_tests {
    ($($name:ident)*) => {
        mod composites {
            $(
                mod $name {
                    #[test]
                    fn gradcheck() {
                        super::super::gradcheck_entry(&super::super::composite(stringify!($name)), super::super::cases() / 2, super::super::Check::Gradient);
                    }

                    #[test]
                    fn gradgradcheck() {
                        super::super::gradcheck_entry(&super::super::composite(stringify!($name)), super::super::cases() / 8, super::super::Check::SecondOrder);
                    }

                    #[test]
                    fn jvpcheck() {
                        super::super::gradcheck_entry(&super::super::composite(stringify!($name)), super::super::cases() / 2, super::super::Check::Tangent);
                    }

                    #[test]
                    fn non_finite_inputs_in_anomaly_mode() {
                        super::super::check_non_finite(&super::super::composite(stringify!($name)));
                    }

                    #[test]
                    fn empty_inputs_in_anomaly_mode() {
                        super::super::check_empty(&super::super::composite(stringify!($name)));
                    }
                }
            )*
        }
    };
}

autograd::for_each_composite!(composite_tests);

#[test]
fn the_generated_test_modules_cover_every_entry() {
    // for_each_primitive! comes from the declaration table and registry() from its kinds, so
    // they cannot drift apart; this checks the composites' list against itself the same way.
    macro_rules! names {
        ($($name:ident)*) => {
            vec![$(stringify!($name)),*]
        };
    }
    let primitives: Vec<&str> = autograd::for_each_primitive!(names);
    let registered: Vec<&str> = registry().iter().map(|e| e.name).collect();
    assert_eq!(primitives, registered);
    let composite_names: Vec<&str> = autograd::for_each_composite!(names);
    let listed: Vec<&str> = composites().iter().map(|e| e.name).collect();
    assert_eq!(composite_names, listed);
}

#[test]
fn the_reported_reproductions_return_errors() {
    // The six composites that used to panic inside their try_ forms in anomaly mode.
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let row =
        |values: Vec<f64>| tape.leaf(Tensor::from_vec(values.clone(), [1, values.len()]).unwrap());
    let anomaly =
        |result: autograd::Result<Var<'_, f64>>| matches!(result, Err(AutogradError::Anomaly(_)));
    assert!(anomaly(
        row(vec![f64::NEG_INFINITY, 0.0, 1.0]).try_log_softmax(1)
    ));
    assert!(anomaly(row(vec![f64::NEG_INFINITY; 3]).try_softmax(1)));
    assert!(anomaly(tape.leaf(Tensor::ones([1])).try_variance(
        &[0],
        false,
        true
    )));
    assert!(anomaly(
        tape.leaf(Tensor::zeros([0, 2])).try_mean(&[0], false)
    ));
    assert!(anomaly(
        row(vec![f64::INFINITY, 0.0]).try_logsumexp(&[1], false)
    ));
    // Broadcasting try_ forms used to panic inside the expand they record.
    let inf = tape.leaf(Tensor::from_vec(vec![f64::INFINITY], [1]).unwrap());
    assert!(anomaly(inf.try_add(tape.leaf(Tensor::ones([3])))));
}

#[test]
fn the_strategies_produce_every_layout() {
    use autograd::testing::{Domain, tensor_strategy};
    let mut runner = TestRunner::deterministic();
    let strategy = tensor_strategy(tensor::Shape::from([3, 4]), Domain::Any);
    let (mut contiguous, mut broadcast, mut strided) = (0, 0, 0);
    for _ in 0..200 {
        let tensor = strategy.new_tree(&mut runner).unwrap().current();
        if tensor.strides().contains(&0) {
            broadcast += 1;
        } else if tensor.is_contiguous() {
            contiguous += 1;
        } else {
            strided += 1;
        }
    }
    assert!(
        contiguous > 10 && broadcast > 10 && strided > 10,
        "{contiguous} {broadcast} {strided}"
    );
}

#[test]
fn the_empty_sizes_produce_empty_tensors() {
    let mut runner = TestRunner::deterministic();
    let strategy = autograd::testing::shape_strategy(1..=3, Sizes::WITH_EMPTY);
    let empty = (0..100)
        .filter(|_| strategy.new_tree(&mut runner).unwrap().current().numel() == 0)
        .count();
    assert!(empty > 10, "{empty} of 100 shapes were empty");
}
