//! Anomaly mode: the first NaN or infinity, forward or backward, is reported with the op, its
//! source location, its layer and the statistics of its inputs; the "NaN gradient through
//! select" trap is flagged before it happens; and a failed check changes nothing.

use autograd::{AnomalyMode, AnomalyPhase, AnomalyReport, AutogradError, Tape, Var};
use tensor::Tensor;

fn report(error: AutogradError) -> AnomalyReport {
    match error {
        AutogradError::Anomaly(report) => *report,
        other => panic!("expected an anomaly report, got {other}"),
    }
}

fn t(values: &[f64]) -> Tensor<f64> {
    Tensor::from_slice(values, [values.len()]).unwrap()
}

#[test]
fn forward_report_names_op_location_layer_and_inputs() {
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[4.0, -1.0, 0.0]));
    let before = tape.len();
    let line = line!() + 1;
    let error = tape.with_scope("hidden1", || x.try_log()).unwrap_err();
    let report = report(error);
    assert_eq!(report.phase, AnomalyPhase::Forward);
    assert_eq!(report.op, "log");
    assert_eq!(report.layer.as_deref(), Some("hidden1"));
    let location = report.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("crates/autograd/tests/anomaly.rs:{line}:")),
        "{location}"
    );
    assert_eq!((report.produced.nan, report.produced.infinite), (1, 1));
    assert_eq!((report.inputs[0].min, report.inputs[0].max), (-1.0, 4.0));
    assert_eq!(tape.len(), before, "a failed check records nothing");
    let message = report.to_string();
    assert!(
        message.starts_with("anomaly: log, recorded at crates/autograd/tests/anomaly.rs"),
        "{message}"
    );
    assert!(
        message.contains("in layer 'hidden1': produced non-finite values in the forward pass"),
        "{message}"
    );
}

#[test]
fn panicking_forms_panic_with_the_report() {
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[1e300]));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| x * x)).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("anomaly: mul, recorded at"),
        "{message}"
    );
}

#[test]
fn backward_report_names_the_rule_that_produced_a_non_finite_gradient() {
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[0.0, 4.0]));
    // sqrt(0) = 0 is finite, but its derivative 1 / (2 sqrt(0)) is infinite.
    let y = tape.with_scope("norm", || x.sqrt()).sum_all();
    let report = report(y.try_backward().unwrap_err());
    assert_eq!(report.phase, AnomalyPhase::Backward);
    assert_eq!(report.op, "sqrt");
    assert_eq!(report.node, Some(y.index() - 1));
    assert_eq!(report.layer.as_deref(), Some("norm"));
    assert_eq!(report.produced.infinite, 1);
    assert!(
        report
            .detail
            .starts_with("its backward rule produced a non-finite gradient for input 0"),
        "{}",
        report.detail
    );
}

#[test]
fn the_select_trap_is_flagged_before_the_nan_gradient_appears() {
    // where(x > 0, sqrt(x), 0): sqrt(-1) is NaN in the unchosen branch; PyTorch returns a NaN
    // gradient here. In backward-only mode (PyTorch's) the forward NaN is a value, and the
    // select is reported.
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::BACKWARD);
    let x = tape.leaf(t(&[-1.0, 4.0]));
    let positive = x.value().greater(&Tensor::scalar(0.0));
    let root = x.sqrt();
    let y = Var::select(&positive, root, x * 0.0).sum_all();
    let report = report(y.try_backward().unwrap_err());
    assert_eq!(report.phase, AnomalyPhase::WhereTrap);
    assert_eq!(report.op, "select");
    assert!(
        report.detail.contains(&format!(
            "on_true branch (node #{}, sqrt recorded at",
            root.index()
        )),
        "{}",
        report.detail
    );
    assert!(
        report
            .detail
            .contains("holds 1 non-finite values where it is not chosen")
    );

    // With forward checks on, the NaN is reported where it is made: at sqrt.
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[-1.0, 4.0]));
    assert_eq!(report_of(x.try_sqrt()).op, "sqrt");

    // The fix the message suggests passes.
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[-1.0, 4.0]));
    let positive = x.value().greater(&Tensor::scalar(0.0));
    let safe = Var::select(&positive, x, tape.constant(Tensor::ones([2])));
    let y = Var::select(&positive, safe.sqrt(), x * 0.0).sum_all();
    assert_eq!(y.backward().wrt(x).to_vec(), vec![0.0, 0.25]);
}

fn report_of(result: autograd::Result<Var<'_, f64>>) -> AnomalyReport {
    report(result.unwrap_err())
}

#[test]
fn when_off_nan_is_a_value() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[-1.0]));
    let y = x.log();
    assert!(y.value().item().is_nan());
    assert!(y.sum_all().backward().wrt(x).item().is_finite());
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    tape.disable_anomaly_mode();
    assert!(x.try_log().is_ok());
}

#[test]
fn a_create_graph_backward_reports_instead_of_panicking() {
    // sqrt at 0 is finite, its derivative 1 / (2 sqrt(0)) is not. The create-graph backward
    // records that derivative as tape ops; it used to panic inside them in anomaly mode.
    let tape = Tape::<f64>::new();
    tape.enable_anomaly_mode(AnomalyMode::ALL);
    let x = tape.leaf(t(&[0.0, 4.0]));
    let y = x.try_sqrt().unwrap().try_sum_all().unwrap();
    let before = tape.len();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        y.try_backward_create_graph().map(|_| ())
    }));
    let error = outcome
        .expect("returns, does not panic")
        .expect_err("a non-finite derivative");
    let report = report(error);
    assert_eq!(report.phase, AnomalyPhase::Backward);
    assert_eq!(report.op, "sqrt");
    assert_eq!(report.produced.infinite, 1);
    assert!(tape.len() >= before);
    // Without anomaly mode the same backward gives the value (inf is a value).
    tape.disable_anomaly_mode();
    let gradient = y.backward_create_graph().wrt(x).value().to_vec();
    assert_eq!(gradient, vec![f64::INFINITY, 0.25]);
}
