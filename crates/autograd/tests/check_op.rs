//! `testing::check_op` on a correct custom op, and on copies of it with one bug each: every
//! stage catches the bug it exists for, and a failure is shrunk to a small instance.

use std::sync::atomic::{AtomicU64, Ordering};

use autograd::testing::{
    CheckOpOptions, Domain, OpUnderTest, Sizes, Stage, Support, check_op, shape_strategy,
    tensor_strategy, values_strategy,
};
use autograd::{AutogradError, CustomOp, Var};
use proptest::prelude::*;
use tensor::{Float, Tensor};

/// The bug planted in softsign.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    None,
    /// The rule is 0.1% too large.
    RuleScaled,
    /// The rule is wrong only from the third element on.
    RuleWrongFromThirdElement,
    /// The rule leaks a gradient under a zero seed.
    Leaks,
    /// The rule on Vars detaches x (first derivative right, second wrong).
    DetachedVarsRule,
    /// No rule on Vars.
    NoVarsRule,
    /// The tangent rule is 1% too large.
    TangentScaled,
    /// Strided inputs take a slow path that drifted from the fast one.
    StridedPathDrifts,
    /// The forward depends on how often it ran.
    Nondeterministic,
    /// The forward ignores extra inputs.
    AcceptsExtraInputs,
    /// The forward asserts a rank instead of returning an error.
    PanicsOnRankThree,
}

/// softsign(x) = x / (1 + |x|), with its rules 1 / (1 + |x|)^2.
#[derive(Clone, Copy)]
struct Softsign(Bug);

static CALLS: AtomicU64 = AtomicU64::new(0);

impl<T: Float> CustomOp<T> for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>, AutogradError> {
        if inputs.len() != 1 && self.0 != Bug::AcceptsExtraInputs {
            return Err(AutogradError::CustomOp {
                name: "softsign".into(),
                message: format!("takes 1 input, got {}", inputs.len()),
            });
        }
        let x = inputs[0];
        assert!(
            self.0 != Bug::PanicsOnRankThree || x.rank() < 3,
            "rank 3 unsupported"
        );
        let mut y = x.map(|v| v / (T::ONE + v.abs()));
        if self.0 == Bug::StridedPathDrifts && !x.is_contiguous() {
            y = y.mul_scalar(T::from_f64(1.0 + 1e-6));
        }
        if self.0 == Bug::Nondeterministic {
            let calls = CALLS.fetch_add(1, Ordering::Relaxed) as f64;
            y = y.add_scalar(T::from_f64(1e-12 * (calls % 2.0)));
        }
        Ok(y)
    }
    fn backward(
        &self,
        grad: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        let slope = inputs[0].map(|v| (T::ONE + v.abs()).powf(T::from_f64(-2.0)));
        let mut g = grad * &slope;
        match self.0 {
            Bug::RuleScaled => g = g.mul_scalar(T::from_f64(1.001)),
            Bug::RuleWrongFromThirdElement => {
                let mut values = g.to_vec();
                for v in values.iter_mut().skip(2) {
                    *v *= T::from_f64(1.01);
                }
                g = Tensor::from_vec(values, g.shape().clone()).unwrap();
            }
            Bug::Leaks => g = g.add_scalar(T::from_f64(1e-3)),
            _ => {}
        }
        vec![Some(g)]
    }
    fn backward_on_vars<'t>(
        &self,
        grad: Var<'t, T>,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
    ) -> Option<Vec<Option<Var<'t, T>>>> {
        let x = match self.0 {
            Bug::NoVarsRule => return None,
            Bug::DetachedVarsRule => inputs[0].detach(),
            _ => inputs[0],
        };
        Some(vec![Some(
            grad * x.abs().add_scalar(T::ONE).powf(T::from_f64(-2.0)),
        )])
    }
    fn tangent<'t>(
        &self,
        tangents: &[Option<Var<'t, T>>],
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
    ) -> Option<Var<'t, T>> {
        let scale = if self.0 == Bug::TangentScaled {
            1.01
        } else {
            1.0
        };
        Some(
            tangents[0]?
                * inputs[0].abs().add_scalar(T::ONE).powf(T::from_f64(-2.0))
                * T::from_f64(scale),
        )
    }
}

impl OpUnderTest for Softsign {
    type Params = ();
    fn name(&self) -> String {
        format!("softsign ({:?})", self.0)
    }
    fn arity(&self) -> usize {
        1
    }
    fn instances(&self) -> BoxedStrategy<(Vec<Tensor<f64>>, ())> {
        shape_strategy(0..=2, Sizes::NON_EMPTY)
            .prop_flat_map(|shape| tensor_strategy(shape, Domain::AwayFromZero))
            .prop_map(|x| (vec![x], ()))
            .boxed()
    }
    fn apply<'t, T: Float>(
        &self,
        inputs: &[Var<'t, T>],
        _: &(),
    ) -> Result<Var<'t, T>, AutogradError> {
        match inputs.first() {
            Some(x) => x.tape().try_custom_op(*self, inputs),
            None => Err(AutogradError::CustomOp {
                name: "softsign".into(),
                message: "takes 1 input, got 0".into(),
            }),
        }
    }
}

fn options() -> CheckOpOptions {
    CheckOpOptions {
        cases: 24,
        ..CheckOpOptions::default()
    }
}

fn failing_stage(bug: Bug, options: &CheckOpOptions) -> (Stage, String) {
    let failure = check_op(&Softsign(bug), options).unwrap_err();
    (failure.stage, failure.to_string())
}

#[test]
fn a_correct_op_passes_every_stage_and_prints_one_report() {
    let report = check_op(&Softsign(Bug::None), &options()).unwrap_or_else(|e| panic!("{e}"));
    for stage in Stage::ALL {
        let summary = report.stage(stage);
        assert!(summary.runs > 0, "{stage:?} did not run: {report}");
        assert!(summary.not_run.is_none(), "{report}");
    }
    // Every instance is checked in at least its contiguous and sliced layouts.
    assert!(report.stage(Stage::Layouts).runs >= 2 * 24);
    let text = report.to_string();
    assert!(text.starts_with("check_op 'softsign (None)': passed on 24 random instances"));
    for name in [
        "gradcheck",
        "gradgradcheck",
        "jvpcheck",
        "layouts",
        "f32 vs f64 forward",
        "shape and arity errors",
        "pass rule: |a - n| <= atol + rtol * |n|",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn a_wrong_rule_fails_gradcheck_with_the_pass_rule() {
    let (stage, text) = failing_stage(Bug::RuleScaled, &options());
    assert_eq!(stage, Stage::Gradcheck, "{text}");
    assert!(
        text.contains("Jacobian mismatch") && text.contains("pass rule"),
        "{text}"
    );
}

#[test]
fn a_failure_is_shrunk_to_the_smallest_instance_that_shows_it() {
    // Wrong only from the third element on: the smallest failing instance has 3 elements.
    let failure = check_op(&Softsign(Bug::RuleWrongFromThirdElement), &options()).unwrap_err();
    println!("{failure}");
    assert_eq!(failure.stage, Stage::Gradcheck);
    assert_eq!(failure.inputs[0].numel(), 3, "{failure}");
    assert!(
        failure
            .to_string()
            .contains("smallest failing instance (shrunk by proptest)")
    );
}

#[test]
fn a_rule_that_leaks_under_a_zero_seed_fails_gradcheck() {
    let (stage, text) = failing_stage(Bug::Leaks, &options());
    assert_eq!(stage, Stage::Gradcheck);
    assert!(text.contains("a zero output gradient gave"), "{text}");
}

#[test]
fn second_order_is_checked_and_its_absence_is_named() {
    let (stage, text) = failing_stage(Bug::DetachedVarsRule, &options());
    assert_eq!(stage, Stage::SecondOrder, "{text}");
    assert!(text.contains("gradgradcheck"), "{text}");
    // Without a rule on Vars: reported as unsupported, or a failure when required.
    let report = check_op(&Softsign(Bug::NoVarsRule), &options()).unwrap();
    let why = report.stage(Stage::SecondOrder).not_run.clone().unwrap();
    assert!(why.starts_with("unsupported"), "{why}");
    let required = CheckOpOptions {
        second_order: Support::Required,
        ..options()
    };
    let (stage, text) = failing_stage(Bug::NoVarsRule, &required);
    assert_eq!(stage, Stage::SecondOrder);
    assert!(
        text.contains("required, but the op does not support it"),
        "{text}"
    );
}

#[test]
fn a_wrong_tangent_rule_fails_forward_mode() {
    let (stage, text) = failing_stage(Bug::TangentScaled, &options());
    assert_eq!(stage, Stage::ForwardMode, "{text}");
    assert!(text.contains("forward-mode mismatch"), "{text}");
}

#[test]
fn a_strided_path_that_drifts_fails_the_layouts_stage() {
    let (stage, text) = failing_stage(Bug::StridedPathDrifts, &options());
    assert_eq!(stage, Stage::Layouts, "{text}");
    assert!(
        text.contains("differs from the contiguous input's"),
        "{text}"
    );
}

#[test]
fn a_forward_that_changes_between_calls_fails_determinism() {
    let (stage, text) = failing_stage(Bug::Nondeterministic, &options());
    assert_eq!(stage, Stage::ForwardDeterminism, "{text}");
}

#[test]
fn wrong_counts_must_be_named_errors_and_nothing_may_panic() {
    let (stage, text) = failing_stage(Bug::AcceptsExtraInputs, &options());
    assert_eq!(stage, Stage::Errors);
    assert!(
        text.contains("2 inputs: accepted, but the op takes 1"),
        "{text}"
    );
    let (stage, text) = failing_stage(Bug::PanicsOnRankThree, &options());
    assert_eq!(stage, Stage::Errors, "{text}");
    assert!(text.contains("panicked (rank 3 unsupported)"), "{text}");
}

/// ln(1 + x) computed naively: exact enough in f64 for small x, not in f32.
struct NaiveLog1p;

impl<T: Float> CustomOp<T> for NaiveLog1p {
    fn name(&self) -> &str {
        "naive_log1p"
    }
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>, AutogradError> {
        match inputs {
            [x] => Ok(x.map(|v| (T::ONE + v).ln())),
            _ => Err(AutogradError::CustomOp {
                name: "naive_log1p".into(),
                message: format!("takes 1 input, got {}", inputs.len()),
            }),
        }
    }
    fn backward(
        &self,
        grad: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        vec![Some(grad * &inputs[0].map(|v| T::ONE / (T::ONE + v)))]
    }
}

impl OpUnderTest for NaiveLog1p {
    type Params = ();
    fn name(&self) -> String {
        "naive_log1p".into()
    }
    fn arity(&self) -> usize {
        1
    }
    fn instances(&self) -> BoxedStrategy<(Vec<Tensor<f64>>, ())> {
        // Small x, where 1 + x loses x's digits in f32.
        (1..=4usize)
            .prop_flat_map(|n| values_strategy(n, Domain::Positive))
            .prop_map(|values| {
                let n = values.len();
                let small = values.iter().map(|v| v * 1e-5).collect();
                (vec![Tensor::from_vec(small, [n]).unwrap()], ())
            })
            .boxed()
    }
    fn apply<'t, T: Float>(
        &self,
        inputs: &[Var<'t, T>],
        _: &(),
    ) -> Result<Var<'t, T>, AutogradError> {
        let tape = inputs
            .first()
            .map(|x| x.tape())
            .ok_or(AutogradError::CustomOp {
                name: "naive_log1p".into(),
                message: "takes 1 input, got 0".into(),
            })?;
        tape.try_custom_op(NaiveLog1p, inputs)
    }
}

#[test]
fn an_op_that_loses_precision_in_f32_fails_the_f32_stage() {
    let failure = check_op(&NaiveLog1p, &options()).unwrap_err();
    assert_eq!(failure.stage, Stage::F32Agreement, "{failure}");
    assert!(failure.message.contains("f32 gives"), "{failure}");
}
