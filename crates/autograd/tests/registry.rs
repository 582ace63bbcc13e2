//! Every primitive, gradchecked over random shapes, values and memory layouts (contiguous,
//! transposed, sliced, broadcast), from the registry in `autograd::testing`.

use std::collections::HashSet;

use autograd::PrimitiveKind;
use autograd::gradcheck::{GradcheckOptions, gradcheck};
use autograd::testing::registry;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per primitive (CI-sized; raise with PROPTEST_CASES for a longer soak).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn every_primitive_is_in_the_registry_exactly_once() {
    let listed: Vec<PrimitiveKind> = registry().iter().map(|entry| entry.kind).collect();
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

#[test]
fn every_primitive_passes_gradcheck_on_random_shapes_and_layouts() {
    for entry in registry() {
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let options = GradcheckOptions::strict(entry.kind.name());
        let checked = std::cell::Cell::new(0);
        let result = runner.run(&(entry.instances)(), |instance| {
            checked.set(checked.get() + 1);
            assert_eq!(instance.inputs.len(), entry.arity, "{instance:?}");
            let apply = instance.apply.clone();
            gradcheck(move |v| apply(v), &instance.inputs, &options)
                .map(|_| ())
                .map_err(|error| {
                    TestCaseError::fail(format!("{error} (instance: {})", instance.description))
                })
        });
        if let Err(failure) = result {
            panic!("{entry:?}: {failure}");
        }
        assert_eq!(checked.get(), cases(), "{entry:?}");
    }
}

#[test]
fn the_strategies_produce_every_layout() {
    use autograd::testing::{Domain, tensor_strategy};
    use proptest::strategy::{Strategy, ValueTree};
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
fn every_primitive_passes_gradgradcheck_on_random_shapes_and_layouts() {
    use autograd::gradcheck::gradgradcheck;
    // Second derivatives cost a create-graph backward per finite-difference evaluation, so a
    // quarter of the first-order case count.
    for entry in registry() {
        let mut runner = TestRunner::new(Config {
            cases: cases() / 4,
            failure_persistence: None,
            ..Config::default()
        });
        let options = GradcheckOptions::strict(entry.kind.name());
        let result = runner.run(&(entry.instances)(), |instance| {
            let apply = instance.apply.clone();
            gradgradcheck(move |v| apply(v), &instance.inputs, &options)
                .map(|_| ())
                .map_err(|error| {
                    TestCaseError::fail(format!("{error} (instance: {})", instance.description))
                })
        });
        if let Err(failure) = result {
            panic!("{entry:?}: {failure}");
        }
    }
}
