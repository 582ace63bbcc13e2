//! The gradient-checking tools themselves: kinks, the step and the pass rule, the mutation
//! evidence (how small a wrong rule each tolerance catches), gradgradcheck's messages, and the
//! audit of a recorded model. Each test shows a check catching the bug it exists for.

use autograd::gradcheck::{
    AuditFailure, AuditOptions, GradcheckFailure, GradcheckOptions, Step, audit_tape, gradcheck,
    gradcheck_directional, gradgradcheck, jvpcheck,
};
use autograd::{AutogradError, CustomOp, Tape, Var};
use tensor::{Float, Tensor};

/// A function under test, as a plain function pointer (so several fit in one list).
type Under = for<'t> fn(&[Var<'t, f64>]) -> Var<'t, f64>;

fn t(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), shape.to_vec()).unwrap()
}

/// relu with a chosen derivative at 0 (and the right one elsewhere).
struct Relu {
    at_zero: f64,
}

impl CustomOp<f64> for Relu {
    fn name(&self) -> &str {
        "my_relu"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].map(|x| x.max(0.0)))
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        let at_zero = self.at_zero;
        let slope = inputs[0].map(|x| {
            if x > 0.0 {
                1.0
            } else if x == 0.0 {
                at_zero
            } else {
                0.0
            }
        });
        vec![Some(grad * &slope)]
    }
}

// ---------------------------------------------------------------------------------------------
// Kinks

#[test]
fn relu_and_abs_on_their_kinks_pass_and_follow_the_convention() {
    let x = t(&[0.0, -1.0, 0.0, 2.0], &[4]);
    for (name, f, left, right) in [
        ("relu", (|v| v[0].relu()) as Under, 0.0, 1.0),
        ("abs", |v| v[0].abs(), -1.0, 1.0),
    ] {
        let report = gradcheck(f, std::slice::from_ref(&x), &GradcheckOptions::strict(name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.kinks.len(), 2, "{report}");
        for (kink, at) in report.kinks.iter().zip([0, 2]) {
            assert_eq!(kink.input, Some(0));
            assert_eq!(kink.element, vec![at]);
            assert_eq!(kink.output_element, vec![at]);
            assert!((kink.left - left).abs() < 1e-9, "{kink}");
            assert!((kink.right - right).abs() < 1e-9, "{kink}");
            assert_eq!(kink.analytical, 0.0);
            assert_eq!(kink.sites.len(), 1);
            assert_eq!(kink.sites[0].op, name);
            assert_eq!(kink.convention, Some(0.0), "{kink}");
            assert_eq!(kink.follows_convention, Some(true));
        }
        let text = report.to_string();
        assert!(text.contains("2 kink(s)"), "{text}");
        assert!(text.contains("convention gives 0e0, followed"), "{text}");
    }
}

#[test]
fn the_convention_follows_the_kinks_orientation() {
    // relu(-x) at 0: the left side (x < 0) is active, slope -1; relu'(0) = 0 gives the right
    // side's 0. 3 relu(2x) + x: left 1, right 7; the convention gives the inactive (left) 1.
    let x = t(&[0.0], &[1]);
    let report = gradcheck(
        |v| (-v[0]).relu(),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("relu(-x)"),
    )
    .unwrap();
    let kink = &report.kinks[0];
    assert!(
        (kink.left + 1.0).abs() < 1e-9 && kink.right.abs() < 1e-9,
        "{kink}"
    );
    assert_eq!(kink.convention, Some(0.0));
    let report = gradcheck(
        |v| (v[0] * 2.0).relu() * 3.0 + v[0],
        &[x],
        &GradcheckOptions::strict("3 relu(2x) + x"),
    )
    .unwrap();
    let kink = &report.kinks[0];
    assert!(
        (kink.left - 1.0).abs() < 1e-9 && (kink.right - 7.0).abs() < 1e-9,
        "{kink}"
    );
    assert!((kink.convention.unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(kink.follows_convention, Some(true));
}

#[test]
fn ties_of_max_and_its_composites_split_equally() {
    // A 2-way tie and a 3-way tie along axis 1: each tied element's derivative is 1/k, between
    // the one-sided 0 (it drops out) and 1 (it alone is the max).
    let x = t(&[1.0, 1.0, 0.5, 2.0, 2.0, 2.0], &[2, 3]);
    let report = gradcheck(
        |v| v[0].max(&[1], false),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("max"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Tied elements: (0,0), (0,1) with output 0; (1,0), (1,1), (1,2) with output 1.
    assert_eq!(report.kinks.len(), 5, "{report}");
    for kink in &report.kinks {
        let k = if kink.element[0] == 0 { 2.0 } else { 3.0 };
        assert!((kink.analytical - 1.0 / k).abs() < 1e-12, "{kink}");
        assert!(
            kink.left.abs() < 1e-9 && (kink.right - 1.0).abs() < 1e-9,
            "{kink}"
        );
        assert_eq!(kink.sites[0].op, "max");
        assert_eq!(kink.follows_convention, Some(true), "{kink}");
    }
    // The composites built on max: min, max_all, min_all, and maximum/minimum (a pair tie).
    let a = t(&[0.5, -1.0, 2.0], &[3]);
    let b = t(&[0.5, 1.0, 2.0], &[3]);
    for (name, f, inputs, kinks) in [
        (
            "min",
            (|v| v[0].min(&[1], false)) as Under,
            vec![t(&[1.0, 1.0, 3.0, -2.0, -2.0, 0.0], &[2, 3])],
            4,
        ),
        (
            "max_all",
            |v| v[0].max_all(),
            vec![t(&[2.0, 1.0, 2.0], &[3])],
            2,
        ),
        (
            "min_all",
            |v| v[0].min_all(),
            vec![t(&[-2.0, 1.0, -2.0], &[3])],
            2,
        ),
        (
            "maximum",
            |v| v[0].maximum(v[1]),
            vec![a.clone(), b.clone()],
            4,
        ),
        ("minimum", |v| v[0].minimum(v[1]), vec![a, b], 4),
    ] {
        let report = gradcheck(f, &inputs, &GradcheckOptions::strict(name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.kinks.len(), kinks, "{name}: {report}");
        for kink in &report.kinks {
            assert_eq!(kink.follows_convention, Some(true), "{name}: {kink}");
            assert_eq!(kink.sites[0].op, "max", "{name}");
        }
    }
}

#[test]
fn a_select_boundary_is_a_kink_without_a_primitive_to_name() {
    // where(x > 0, x, 0.5 x) at 0: one-sided 0.5 and 1, analytical 0.5 (the condition is false
    // at 0). The condition is computed outside the tape, so no convention is claimed.
    let x = t(&[0.0, 1.0], &[2]);
    let report = gradcheck(
        |v| {
            let condition = v[0].value().map(|x| if x > 0.0 { 1.0 } else { 0.0 });
            Var::select(&condition, v[0], v[0] * 0.5)
        },
        &[x],
        &GradcheckOptions::strict("select boundary"),
    )
    .unwrap();
    assert_eq!(report.kinks.len(), 1);
    let kink = &report.kinks[0];
    assert_eq!(kink.analytical, 0.5);
    assert!(kink.sites.is_empty() && kink.convention.is_none());
    assert!(kink.to_string().contains("the convention cannot be stated"));
}

#[test]
fn clamp_on_its_bounds_is_a_kink_with_gradient_one() {
    // Elements exactly on both bounds, one inside, one beyond each bound. At min the one-sided
    // derivatives are 0 (below, clamped) and 1 (above, inside); at max, 1 and 0. PyTorch's
    // convention, 1 on the closed interval, is a valid subgradient at both.
    let x = t(&[-1.0, 0.25, 1.0, -2.0, 3.0], &[5]);
    let report = gradcheck(
        |v| v[0].clamp(-1.0, 1.0),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("clamp"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.kinks.len(), 2, "{report}");
    for (kink, (at, left, right)) in report.kinks.iter().zip([(0, 0.0, 1.0), (2, 1.0, 0.0)]) {
        assert_eq!(kink.element, vec![at], "{kink}");
        assert!((kink.left - left).abs() < 1e-9, "{kink}");
        assert!((kink.right - right).abs() < 1e-9, "{kink}");
        assert_eq!(kink.analytical, 1.0, "{kink}");
        // The boundary is a select on a mask computed outside the tape: no primitive to name.
        assert!(kink.sites.is_empty() && kink.convention.is_none(), "{kink}");
    }
    // The one-sided forms, on their bound.
    for (name, f) in [
        ("clamp_min", (|v| v[0].clamp_min(-1.0)) as Under),
        ("clamp_max", |v| v[0].clamp_max(1.0)),
    ] {
        let report = gradcheck(f, std::slice::from_ref(&x), &GradcheckOptions::strict(name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.kinks.len(), 1, "{name}: {report}");
        assert_eq!(report.kinks[0].analytical, 1.0, "{name}");
    }
    // Refusing kinks, as PyTorch's gradcheck does, the bound fails.
    let options = GradcheckOptions {
        accept_kinks: false,
        ..GradcheckOptions::strict("clamp")
    };
    assert!(gradcheck(|v| v[0].clamp(-1.0, 1.0), &[x], &options).is_err());
}

#[test]
fn clamp_gradient_is_exactly_one_on_the_bounds_and_matches_the_closed_form() {
    // d/dx sum_i w_i clamp(x_i, lo, hi) = w_i where lo <= x_i <= hi, else 0.
    let tape = Tape::<f64>::new();
    let values = [-1.0, -0.5, 1.0, -1.5, 2.0, 0.0];
    let weights = [3.0, -2.0, 0.5, 7.0, -4.0, 1.5];
    let x = tape.leaf(t(&values, &[6]));
    let w = tape.constant(t(&weights, &[6]));
    let grad = (x.clamp(-1.0, 1.0) * w)
        .sum_all()
        .backward()
        .wrt(x)
        .to_vec();
    let expected: Vec<f64> = values
        .iter()
        .zip(&weights)
        .map(|(&v, &w)| if (-1.0..=1.0).contains(&v) { w } else { 0.0 })
        .collect();
    assert_eq!(grad, expected);
    // On the bounds exactly 1, where the maximum/minimum composition gives a tie's 1/2.
    let y = tape.leaf(t(&[-1.0, 1.0], &[2]));
    assert_eq!(
        y.clamp(-1.0, 1.0).sum_all().backward().wrt(y).to_vec(),
        vec![1.0, 1.0]
    );
    let lo = tape.constant(Tensor::scalar(-1.0));
    let hi = tape.constant(Tensor::scalar(1.0));
    let composed = y
        .maximum(lo)
        .minimum(hi)
        .sum_all()
        .backward()
        .wrt(y)
        .to_vec();
    assert_eq!(composed, vec![0.5, 0.5]);
    // The tangent rule agrees: d clamp(x + s v)/ds at s = 0 is v on the bounds.
    let report = jvpcheck(
        |v| v[0].clamp(-1.0, 1.0),
        &[t(&values, &[6])],
        &GradcheckOptions::strict("clamp tangent"),
        2,
        7,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.kinks.is_empty(), "{report}");
}

#[test]
fn a_custom_op_s_subgradient_passes_and_a_wrong_one_fails() {
    let x = t(&[0.0, 1.5], &[2]);
    // relu'(0) = 1 is a valid subgradient (candle's choice): it passes, and no library
    // primitive sits at the kink, so the convention is not claimed.
    let report = gradcheck(
        |v| v[0].tape().custom_op(Relu { at_zero: 1.0 }, &[v[0]]),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("relu'(0) = 1"),
    )
    .unwrap();
    assert_eq!(report.kinks[0].analytical, 1.0);
    assert_eq!(report.kinks[0].follows_convention, None);
    // 2 lies outside [0, 1]: not a subgradient.
    let error = gradcheck(
        |v| v[0].tape().custom_op(Relu { at_zero: 2.0 }, &[v[0]]),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("relu'(0) = 2"),
    )
    .unwrap_err();
    let GradcheckFailure::NotASubgradient { kink } = &*error.failure else {
        panic!("expected a subgradient failure, got {error}");
    };
    assert_eq!((kink.element.as_slice(), kink.analytical), (&[0][..], 2.0));
    assert!(error.to_string().contains("not a subgradient"), "{error}");
    // -0.5 too, from below.
    assert!(
        gradcheck(
            |v| v[0].tape().custom_op(Relu { at_zero: -0.5 }, &[v[0]]),
            &[x],
            &GradcheckOptions::strict("relu'(0) = -0.5"),
        )
        .is_err()
    );
}

#[test]
fn with_kinks_refused_a_kink_fails_as_in_pytorch() {
    let options = GradcheckOptions {
        accept_kinks: false,
        ..GradcheckOptions::strict("relu")
    };
    let error = gradcheck(|v| v[0].relu(), &[t(&[0.0], &[1])], &options).unwrap_err();
    assert!(
        matches!(*error.failure, GradcheckFailure::Mismatch { .. }),
        "{error}"
    );
}

#[test]
fn a_jump_is_not_a_kink() {
    // where(x > 0, x + 1, x) jumps at 0: the one-sided differences grow as 1/h.
    let error = gradcheck(
        |v| {
            let condition = v[0].value().map(|x| if x > 0.0 { 1.0 } else { 0.0 });
            Var::select(&condition, v[0] + 1.0, v[0])
        },
        &[t(&[0.0], &[1])],
        &GradcheckOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(*error.failure, GradcheckFailure::Mismatch { .. }),
        "{error}"
    );
}

/// e^x with a rule off by a factor.
struct Exp {
    factor: f64,
}

impl CustomOp<f64> for Exp {
    fn name(&self) -> &str {
        "scaled_exp"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].exp())
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        _: &[&Tensor<f64>],
        output: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        vec![Some(grad * &output.mul_scalar(self.factor))]
    }
}

#[test]
fn curvature_is_not_mistaken_for_a_kink() {
    // At x = 3, e^x curves strongly (the one-sided differences differ by h e^x = 4e-6 of it):
    // the gap halves with the step, so it is no kink, and a rule wrong by 0.01% still fails.
    let x = t(&[3.0, 2.5], &[2]);
    let error = gradcheck(
        |v| v[0].tape().custom_op(Exp { factor: 1.0001 }, &[v[0]]),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("exp"),
    )
    .unwrap_err();
    assert!(
        matches!(*error.failure, GradcheckFailure::Mismatch { .. }),
        "{error}"
    );
    let report = gradcheck(
        |v| v[0].tape().custom_op(Exp { factor: 1.0 }, &[v[0]]),
        &[x],
        &GradcheckOptions::strict("exp"),
    )
    .unwrap();
    assert!(report.kinks.is_empty());
}

#[test]
fn directional_and_forward_mode_checks_accept_kinks_too() {
    let x = t(&[0.0, -1.0, 0.5, 0.0], &[4]);
    let report = gradcheck_directional(
        |v| v[0].relu().sum_all(),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("relu"),
        3,
        1,
    )
    .unwrap();
    // The direction crossed relu's kinks; the full check accepted them.
    assert_eq!(report.check, "gradcheck");
    assert_eq!(report.kinks.len(), 2);
    let report = jvpcheck(
        |v| v[0].relu(),
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("relu"),
        2,
        1,
    )
    .unwrap();
    // Two kinked elements, two directions; a direction moves both kinks at once, so no single
    // primitive explains either and the convention is not claimed.
    assert_eq!(report.kinks.len(), 4, "{report}");
    assert!(report.kinks.iter().all(|k| k.input.is_none()));
    assert!(report.kinks.iter().all(|k| k.sites.len() == 2));
    assert!(report.kinks.iter().all(|k| k.follows_convention.is_none()));
    // With one kinked element, the tangent rule's value is relu's convention.
    let report = jvpcheck(
        |v| v[0].relu(),
        &[t(&[0.0, -1.0, 0.5], &[3])],
        &GradcheckOptions::strict("relu"),
        2,
        1,
    )
    .unwrap();
    assert_eq!(report.kinks.len(), 2, "{report}");
    assert!(
        report
            .kinks
            .iter()
            .all(|k| k.follows_convention == Some(true) && k.analytical == 0.0)
    );
}

// ---------------------------------------------------------------------------------------------
// The step and the pass rule

#[test]
fn the_step_is_chosen_per_dtype_and_per_element_and_reported() {
    let base = f64::EPSILON.powf(0.375);
    assert!((Step::Auto.for_value::<f64>(0.5) - base).abs() < 1e-20);
    assert!((Step::Auto.for_value::<f64>(-100.0) - 100.0 * base).abs() < 1e-15);
    assert!((Step::Auto.for_value::<f32>(1.0) - f64::from(f32::EPSILON).powf(0.375)).abs() < 1e-12);
    assert_eq!(Step::Fixed(1e-6).for_value::<f64>(1e6), 1e-6);
    let report = gradcheck(
        |v| v[0].square(),
        &[t(&[0.5, -100.0], &[2])],
        &GradcheckOptions::strict("square"),
    )
    .unwrap();
    assert!((report.step_range.0 - base).abs() < 1e-20);
    assert!((report.step_range.1 - 100.0 * base).abs() < 1e-15);
    assert!(
        report
            .step
            .starts_with("h = 1.349e-6 * max(1, |x|) per element (f64"),
        "{}",
        report.step
    );
    // At x = 1e12 a fixed step of 1e-6 is below the rounding of x: the perturbed inputs equal
    // x and the check fails; the scaled step passes.
    let big = t(&[1e12], &[1]);
    let f = autograd::function(|v| v[0].square() * 1e-12);
    assert!(gradcheck(f, std::slice::from_ref(&big), &GradcheckOptions::default()).is_ok());
    let fixed = GradcheckOptions {
        step: Step::Fixed(1e-6),
        ..GradcheckOptions::default()
    };
    assert!(gradcheck(f, &[big], &fixed).is_err());
}

#[test]
fn every_report_and_failure_prints_the_pass_rule_with_its_values() {
    let report = gradcheck(
        |v| v[0].tanh(),
        &[t(&[0.5, -1.0], &[2])],
        &GradcheckOptions::strict("tanh"),
    )
    .unwrap();
    let text = report.to_string();
    assert!(
        text.contains("pass rule: |a - n| <= atol + rtol * |n| with atol = 1e-6, rtol = 1e-6"),
        "{text}"
    );
    assert!(text.contains("closest to failing: input 0 ["), "{text}");
    let error = gradcheck(
        |v| v[0].tape().custom_op(Exp { factor: 1.5 }, &[v[0]]),
        &[t(&[0.0], &[1])],
        &GradcheckOptions::default(),
    )
    .unwrap_err();
    // analytical 1.5, numerical 1: |1.5 - 1| = 0.5 > 1e-5 + 1e-4 * 1.
    let text = error.to_string();
    assert!(
        text.contains("pass rule: |a - n| <= atol + rtol * |n| with atol = 1e-5, rtol = 1e-4"),
        "{text}"
    );
    assert!(
        text.contains("|a - n| = |1.5e0 - 1.0000000000")
            && text.contains("= 5.000e-1 > atol + rtol * |n| = 1e-5 + 1e-4 * 1.0000000000"),
        "{text}"
    );
}

#[test]
fn mutation_evidence_a_rule_wrong_by_a_hundredth_of_a_percent_fails_strict() {
    // Over a spread of points, e^x with its rule scaled by (1 + r): r = 1e-4 fails under
    // strict (and passes the defaults, whose rtol is 1e-4); r = 1e-3 fails under the defaults.
    let points = [-1.5, -0.3, 0.0, 0.7, 2.0];
    let check = |factor: f64, options: &GradcheckOptions| {
        points
            .iter()
            .map(|&x| {
                gradcheck(
                    |v| v[0].tape().custom_op(Exp { factor }, &[v[0]]),
                    &[t(&[x], &[1])],
                    options,
                )
                .is_ok()
            })
            .collect::<Vec<bool>>()
    };
    let strict = GradcheckOptions::strict("exp");
    let defaults = GradcheckOptions::default();
    assert_eq!(check(1.0, &strict), vec![true; 5]);
    assert_eq!(check(1.0 + 1e-4, &strict), vec![false; 5]);
    assert_eq!(check(1.0 - 1e-4, &strict), vec![false; 5]);
    assert_eq!(check(1.0 + 1e-3, &defaults), vec![false; 5]);
    assert_eq!(check(1.0 - 1e-3, &defaults), vec![false; 5]);
}

// ---------------------------------------------------------------------------------------------
// gradgradcheck's messages

/// x^3 elementwise, whose rule on Vars detaches x: right first derivative, wrong second.
struct DetachedCube;

impl CustomOp<f64> for DetachedCube {
    fn name(&self) -> &str {
        "detached_cube"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].map(|x| x * x * x))
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        vec![Some(grad * &inputs[0].square().mul_scalar(3.0))]
    }
    fn backward_on_vars<'t>(
        &self,
        grad: Var<'t, f64>,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
    ) -> Option<Vec<Option<Var<'t, f64>>>> {
        Some(vec![Some(grad * inputs[0].detach().square() * 3.0)])
    }
}

#[test]
fn gradgradcheck_names_itself_and_the_element_in_the_input_s_shape() {
    // Two inputs, the second [2, 2] with its largest |x| at [1, 0]: the worst second-derivative
    // error is d(grad of input 1 at [1, 0]) / d(input 1 at [1, 0]).
    let a = t(&[0.3], &[1]);
    let b = t(&[0.5, -0.2, 1.8, 0.4], &[2, 2]);
    let error = gradgradcheck(
        |v| v[0] * v[1].tape().custom_op(DetachedCube, &[v[1]]),
        &[a, b],
        &GradcheckOptions::strict("detached"),
    )
    .unwrap_err();
    let GradcheckFailure::SecondOrderMismatch {
        input,
        element,
        gradient_of,
        gradient_element,
        ..
    } = &*error.failure
    else {
        panic!("expected a second-order mismatch, got {error}");
    };
    assert_eq!((*input, element.as_slice()), (1, &[1, 0][..]));
    assert_eq!(
        (*gradient_of, gradient_element.as_slice()),
        (1, &[1, 0][..])
    );
    let text = error.to_string();
    assert!(
        text.starts_with(
            "detached: gradgradcheck: second-derivative mismatch: d(gradient of input 1 at [1, 0]) / d(input 1 at [1, 0])"
        ),
        "{text}"
    );
    assert!(
        text.contains("pass rule: |a - n| <= atol + rtol * |n|"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The audit of a recorded model

/// x^2 with a wrong rule (3x instead of 2x), generic over the element type.
struct WrongSquare;

impl<T: Float> CustomOp<T> for WrongSquare {
    fn name(&self) -> &str {
        "wrong_square"
    }
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>, AutogradError> {
        Ok(inputs[0].square())
    }
    fn backward(
        &self,
        grad: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        vec![Some(grad * &inputs[0].mul_scalar(T::from_f64(3.0)))]
    }
}

/// A 3-layer MLP (8 -> 16 -> 16 -> 4) on a batch of 32, optionally with the wrong custom op
/// planted after the second layer's matmul; returns the loss.
fn mlp<'t, T: Float>(tape: &'t Tape<T>, plant: bool) -> Var<'t, T> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let mut normal = |shape: [usize; 2], scale: f64| {
        Tensor::<T>::random_normal(shape, T::ZERO, T::from_f64(scale), &mut rng).unwrap()
    };
    let x = tape.constant(normal([32, 8], 1.0));
    let w1 = tape.leaf(normal([8, 16], 0.5));
    let w2 = tape.leaf(normal([16, 16], 0.25));
    let w3 = tape.leaf(normal([16, 4], 0.25));
    let h1 = tape.with_scope("layer1", || x.matmul(w1).relu());
    let h2 = tape.with_scope("layer2", || {
        let z = h1.matmul(w2);
        let z = if plant {
            tape.custom_op(WrongSquare, &[z])
        } else {
            z.square()
        };
        z.tanh()
    });
    let out = tape.with_scope("layer3", || h2.matmul(w3));
    -out.log_softmax(1).mean_all()
}

#[test]
fn the_audit_passes_a_correct_mlp_and_names_a_planted_wrong_op() {
    let tape = Tape::<f64>::new();
    tape.track_provenance(true);
    let _loss = mlp(&tape, false);
    let report = audit_tape(&tape, &AuditOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.nodes_checked >= 10, "{report}");
    assert!(report.to_string().starts_with("audit passed: "), "{report}");

    let tape = Tape::<f64>::new();
    tape.track_provenance(true);
    let _loss = mlp(&tape, true);
    let error = audit_tape(&tape, &AuditOptions::default()).unwrap_err();
    println!("{error}");
    assert_eq!(error.op, "wrong_square");
    assert_eq!(error.layer.as_deref(), Some("layer2"));
    let location = error.location.clone().expect("provenance was tracked");
    assert!(location.contains("gradcheck_tools.rs"), "{location}");
    assert!(
        matches!(*error.failure, AuditFailure::Mismatch { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "audit: node {} (wrong_square), recorded at ",
            error.node
        )),
        "{text}"
    );
    assert!(text.contains("in layer 'layer2'"), "{text}");
}

#[test]
fn the_audit_works_in_f32_with_its_own_tolerances() {
    let tape = Tape::<f32>::new();
    let _loss = mlp(&tape, false);
    let report = audit_tape(&tape, &AuditOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.rule.rtol, 1e-2);
    let tape = Tape::<f32>::new();
    let _loss = mlp(&tape, true);
    let error = audit_tape(&tape, &AuditOptions::default()).unwrap_err();
    assert_eq!(error.op, "wrong_square");
    // Without provenance the message says how to get the location.
    assert!(error.to_string().contains("turn on Tape::track_provenance"));
}

#[test]
fn the_audit_holds_directions_still_at_kinks() {
    // relu and abs at exactly 0 and a max with a tie: a correct rule must not fail.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[0.0, 1.0, -1.0, 0.0, 2.0, 2.0], &[2, 3]));
    let _ = (x.relu() + x.abs()).max(&[1], false).sum_all();
    let report = audit_tape(&tape, &AuditOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.held_still_near_kinks > 0, "{report}");
}

#[test]
fn the_audit_holds_exactly_the_elements_at_a_kink_and_counts_what_it_did() {
    // relu and abs of x with one exact 0; max of x along axis 1 with a three-way tie in row 1
    // (a step along a random direction breaks it: the central difference of a 3-way tie is
    // (max + min) / 2 of the direction, not the rule's mean, so holding still is what lets a
    // correct rule pass); max of y along axis 0 with a two-way tie in column 0. Everything else
    // is at least 0.5 away from a kink, far beyond any step. Per direction: 1 + 1 + 3 + 2 held,
    // and 2 more in the rank-3 max below.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[0.0, 1.0, -1.0, 3.0, 3.0, 3.0], &[2, 3]));
    let y = tape.leaf(t(&[2.0, 5.0, 2.0, 1.0], &[2, 2]));
    let _ = x.relu();
    let _ = x.abs();
    let _ = x.max(&[1], false);
    let _ = y.max(&[0], false);
    // Rank 3, over the middle axis: group (0, 1) ties at 1 (2 held); group (1, 0) is 1 and 0.5,
    // half a unit apart (none held, unless groups were mixed up).
    let z = tape.leaf(t(&[0.2, 1.0, -0.3, 1.0, 1.0, 2.0, 0.5, -1.0], &[2, 2, 2]));
    let _ = z.max(&[1], false);
    let report = audit_tape(&tape, &AuditOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.held_still_near_kinks,
        2 * (1 + 1 + 3 + 2 + 2),
        "{report}"
    );
    assert_eq!(report.nodes_checked, 5);
    assert_eq!(report.nodes_without_rule, 3); // the three leaves
    let by_op: Vec<(&str, usize)> = report
        .by_op
        .iter()
        .map(|(op, n)| (op.as_str(), *n))
        .collect();
    assert_eq!(by_op, vec![("relu", 1), ("abs", 1), ("max", 3)], "{report}");
}

#[test]
fn the_audit_skips_nodes_that_are_not_finite_and_says_so() {
    // log(-1) is NaN: its node is skipped (no rule can be checked there) and counted, and a
    // node that consumes it is skipped too.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[-1.0, 2.0], &[2]));
    let _ = x.log().exp();
    let _ = x.tanh();
    let report = audit_tape(&tape, &AuditOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.nodes_not_finite, 2, "{report}");
    assert_eq!(report.nodes_checked, 1);
}

#[test]
fn mutation_evidence_for_the_audit_a_rule_wrong_by_a_tenth_of_a_percent_fails_in_f64() {
    // The f64 audit's rtol is 1e-5: e^x with its rule 0.1% too large is named; with the rule
    // right, it passes. (The f32 audit's rtol is 1e-2, the resolution f32 differences allow.)
    for (factor, passes) in [(1.0, true), (1.001, false), (0.999, false)] {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&[-1.5, -0.3, 0.0, 0.7, 2.0], &[5]));
        let _ = tape.custom_op(Exp { factor }, &[x]);
        assert_eq!(
            audit_tape(&tape, &AuditOptions::default()).is_ok(),
            passes,
            "factor {factor}"
        );
    }
}

/// relu with chosen slopes: `above` for x > 0 (1 is right), `at_zero` at 0.
struct SlopedRelu {
    above: f64,
    at_zero: f64,
}

impl CustomOp<f64> for SlopedRelu {
    fn name(&self) -> &str {
        "sloped_relu"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].map(|x| x.max(0.0)))
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        let (above, at_zero) = (self.above, self.at_zero);
        let slope = inputs[0].map(|x| {
            if x > 0.0 {
                above
            } else if x == 0.0 {
                at_zero
            } else {
                0.0
            }
        });
        vec![Some(grad * &slope)]
    }
}

#[test]
fn the_worst_failure_is_reported_whether_it_is_at_a_kink_or_not() {
    // Element 0 sits on the kink with relu'(0) = 3: 2 beyond the interval [0, 1]. Element 1
    // is smooth with a slope wrong by 0.5 (or by 10): the larger excess is the one reported.
    let x = t(&[0.0, 1.0], &[2]);
    let failure = |above: f64| {
        gradcheck(
            |v| {
                v[0].tape().custom_op(
                    SlopedRelu {
                        above,
                        at_zero: 3.0,
                    },
                    &[v[0]],
                )
            },
            std::slice::from_ref(&x),
            &GradcheckOptions::strict("sloped relu"),
        )
        .unwrap_err()
    };
    let error = failure(1.5);
    let GradcheckFailure::NotASubgradient { kink } = &*error.failure else {
        panic!("expected the kink's larger excess, got {error}");
    };
    assert_eq!(kink.element, vec![0]);
    let error = failure(11.0);
    assert!(
        matches!(
            &*error.failure,
            GradcheckFailure::Mismatch { element, .. } if element == &vec![1]
        ),
        "expected the smooth element's larger excess, got {error}"
    );
    // relu'(0) = 1.5 is 0.5 beyond the interval, less than a smooth error of 0.75: the smooth
    // element is reported (an excess that were a constant 1 would pick the kink).
    let error = gradcheck(
        |v| {
            v[0].tape().custom_op(
                SlopedRelu {
                    above: 1.75,
                    at_zero: 1.5,
                },
                &[v[0]],
            )
        },
        std::slice::from_ref(&x),
        &GradcheckOptions::strict("sloped relu"),
    )
    .unwrap_err();
    assert!(
        matches!(&*error.failure, GradcheckFailure::Mismatch { .. }),
        "{error}"
    );
    // Below the interval: relu'(0) = -2 is 2 below 0, against a smooth error of 0.5.
    let error = gradcheck(
        |v| {
            v[0].tape().custom_op(
                SlopedRelu {
                    above: 1.5,
                    at_zero: -2.0,
                },
                &[v[0]],
            )
        },
        &[x],
        &GradcheckOptions::strict("sloped relu"),
    )
    .unwrap_err();
    assert!(
        matches!(&*error.failure, GradcheckFailure::NotASubgradient { .. }),
        "{error}"
    );
}

#[test]
fn a_small_kink_is_recognised_where_the_central_difference_fails() {
    // x + 1e-4 relu(x) at 0: the slopes 1 and 1.0001 differ by far less than the screen for
    // kinks whose central difference passes (1e-3 of their size), but the central value
    // 1.00005 fails against relu'(0) = 0's 1 under strict tolerances, so the kink is probed.
    let report = gradcheck(
        |v| v[0] + v[0].relu() * 1e-4,
        &[t(&[0.0], &[1])],
        &GradcheckOptions::strict("small kink"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.kinks.len(), 1, "{report}");
    let kink = &report.kinks[0];
    assert!((kink.right - kink.left - 1e-4).abs() < 1e-9, "{kink}");
    assert_eq!(kink.follows_convention, Some(true));
}

#[test]
fn ties_are_found_per_reduction_group_in_any_rank() {
    // max over the middle axis of a [2, 2, 2] tensor: groups (a, c). Group (0, 1) ties at 1;
    // group (1, 0) holds a lone 1 and 0.5 (no tie: a key that mixed groups up would count three
    // tied elements there and claim a 1/3 convention).
    let x = t(&[0.2, 1.0, -0.3, 1.0, 1.0, 2.0, 0.5, -1.0], &[2, 2, 2]);
    let report = gradcheck(
        |v| v[0].max(&[1], false),
        &[x],
        &GradcheckOptions::strict("max over axis 1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let elements: Vec<&[usize]> = report.kinks.iter().map(|k| k.element.as_slice()).collect();
    assert_eq!(elements, vec![&[0, 0, 1][..], &[0, 1, 1][..]], "{report}");
    for kink in &report.kinks {
        assert_eq!(kink.analytical, 0.5);
        assert_eq!(kink.convention, Some(0.5), "{kink}");
        assert_eq!(kink.sites[0].element, kink.element);
    }
}

#[test]
fn a_lone_maximum_moved_with_a_kink_is_not_a_second_site() {
    // relu's kink at x[0] feeds a max over a group of one: the max moves too, but a lone
    // maximum is no kink, so relu alone explains the element and its convention is stated.
    let report = gradcheck(
        |v| v[0].relu().max(&[1], false),
        &[t(&[0.0, 1.0], &[2, 1])],
        &GradcheckOptions::strict("relu then max"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.kinks.len(), 1, "{report}");
    let kink = &report.kinks[0];
    assert_eq!(kink.sites.len(), 1, "{kink}");
    assert_eq!(kink.sites[0].op, "relu");
    assert_eq!(kink.follows_convention, Some(true));
}

/// y = c x element-wise, with the rule c + d: the error at each element is exactly |d|.
struct Scaled {
    c: Vec<f64>,
    d: Vec<f64>,
}

impl CustomOp<f64> for Scaled {
    fn name(&self) -> &str {
        "scaled"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        let c = Tensor::from_vec(self.c.clone(), [self.c.len()]).unwrap();
        Ok(inputs[0] * &c)
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        _: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        let slope: Vec<f64> = self.c.iter().zip(&self.d).map(|(c, d)| c + d).collect();
        vec![Some(
            grad * &Tensor::from_vec(slope, [self.c.len()]).unwrap(),
        )]
    }
}

#[test]
fn the_reported_mismatch_is_the_largest_excess_over_the_bound_not_the_largest_error() {
    // Defaults (atol 1e-5, rtol 1e-4). Element 0: numerical 1e4, error 1.5, bound 1.00001:
    // excess 0.5. Element 1: numerical 1, error 1, bound 1.1e-4: excess 1. Element 1 is worse.
    let error = gradcheck(
        |v| {
            v[0].tape().custom_op(
                Scaled {
                    c: vec![1e4, 1.0],
                    d: vec![1.5, 1.0],
                },
                &[v[0]],
            )
        },
        &[t(&[0.3, 0.7], &[2])],
        &GradcheckOptions::default(),
    )
    .unwrap_err();
    let GradcheckFailure::Mismatch { element, .. } = &*error.failure else {
        panic!("{error}");
    };
    assert_eq!(element, &vec![1], "{error}");
}

#[test]
fn the_statistics_skip_values_below_atol_and_the_closest_entry_is_nearest_its_bound() {
    // Strict (atol = rtol = 1e-6). Element 0: numerical 1, error 1e-7 (relative 1e-7), bound
    // 2e-6: at 0.05 of it. Element 1: numerical 1e-7, below atol, error 1e-7 (relative 1), bound
    // 1.0000001e-6: at 0.1 of it. Off the diagonal, everything is exactly 0.
    let report = gradcheck(
        |v| {
            v[0].tape().custom_op(
                Scaled {
                    c: vec![1.0, 1e-7],
                    d: vec![1e-7, 1e-7],
                },
                &[v[0]],
            )
        },
        &[t(&[0.3, 0.7], &[2])],
        &GradcheckOptions::strict("scaled"),
    )
    .unwrap();
    // The relative error of the value below atol (1.0) is left out.
    assert!(
        (report.max_rel_error - 1e-7).abs() < 1e-9,
        "{}",
        report.max_rel_error
    );
    let closest = report.closest.as_ref().unwrap();
    assert_eq!(closest.at, "input 0 [1], output [1]");
    assert_eq!(report.entries_checked, 4);
}

#[test]
fn entries_at_kinks_are_counted_as_checked() {
    let report = gradcheck(
        |v| v[0].relu(),
        &[t(&[0.0, -1.0, 0.0, 2.0], &[4])],
        &GradcheckOptions::strict("relu"),
    )
    .unwrap();
    assert_eq!(report.kinks.len(), 2);
    assert_eq!(report.entries_checked, 16);
}
