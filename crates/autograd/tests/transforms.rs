//! The function transforms (jvp, vjp, grad, jacobian, hessian) and the ways forward mode
//! composes with reverse mode, against closed forms, finite differences and each other.

use autograd::testing::{Sizes, registry};
use autograd::{
    AutogradError, CustomOp, JacobianMode, Tape, Var, function, grad, hessian,
    hessian_vector_product, jacobian, jvp, vjp,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

fn t(values: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), dims.to_vec()).unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * (1.0 + b.abs())
}

fn rosenbrock<'t>(p: &[Var<'t, f64>]) -> Var<'t, f64> {
    let (x, y) = (p[0].narrow(0, 0, 1), p[0].narrow(0, 1, 1));
    ((1.0 - x).square() + (y - x * x).square() * 100.0).sum_all()
}

#[test]
fn hessian_of_rosenbrock_matches_its_closed_form() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..20 {
        let p = Tensor::<f64>::random_normal([2], 0.0, 1.5, &mut rng).unwrap();
        let (x, y) = (p.to_vec()[0], p.to_vec()[1]);
        let h = hessian(rosenbrock, std::slice::from_ref(&p)).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0][0].dims(), &[2, 2]);
        let closed = [
            2.0 - 400.0 * (y - x * x) + 800.0 * x * x,
            -400.0 * x,
            -400.0 * x,
            200.0,
        ];
        for (got, want) in h[0][0].to_vec().iter().zip(closed) {
            assert!(close(*got, want, 1e-13), "at ({x}, {y}): {got} vs {want}");
        }
    }
}

#[test]
fn hessian_blocks_of_two_inputs_are_placed_by_input_and_are_symmetric() {
    // f(a, b) = sum(a^2 b) with a: [2], b: [2]: d2/da2 = diag(2b), d2/dadb = diag(2a), d2/db2 = 0.
    let a = t(&[1.5, -2.0], &[2]);
    let b = t(&[0.5, 3.0], &[2]);
    let h = hessian(
        |p| (p[0].square() * p[1]).sum_all(),
        &[a.clone(), b.clone()],
    )
    .unwrap();
    assert_eq!(h[0][0].to_vec(), vec![1.0, 0.0, 0.0, 6.0]);
    assert_eq!(h[0][1].to_vec(), vec![3.0, 0.0, 0.0, -4.0]);
    assert_eq!(h[1][0].to_vec(), vec![3.0, 0.0, 0.0, -4.0]);
    assert_eq!(h[1][1].to_vec(), vec![0.0; 4]);
}

#[test]
fn forward_over_reverse_hvp_equals_reverse_over_reverse() {
    let mut rng = StdRng::seed_from_u64(2);
    let w = Tensor::<f64>::random_normal([3, 4], 0.0, 1.0, &mut rng).unwrap();
    let v = Tensor::<f64>::random_normal([3, 4], 0.0, 1.0, &mut rng).unwrap();
    let f = function(|p| p[0].tanh().matmul(p[0].t()).square().sum_all());
    let reverse = hessian_vector_product(f, std::slice::from_ref(&w), std::slice::from_ref(&v))
        .unwrap()
        .remove(0);
    let tape = Tape::new();
    let x = tape.leaf(w);
    let forward = tape.forward_mode(|level| {
        let dual = level.dual(x, tape.constant(v.clone()));
        let g = f(&[dual]).backward_create_graph().wrt(x);
        level.tangent(g).value()
    });
    for (a, b) in forward.to_vec().iter().zip(reverse.to_vec()) {
        assert!(close(*a, b, 1e-12), "{a} vs {b}");
    }
}

#[test]
fn nested_levels_give_second_derivatives_forward_over_forward() {
    // d2/dx2 tanh x = -2 tanh x (1 - tanh^2 x)
    let values = [-1.2, -0.3, 0.0, 0.8, 2.0];
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&values, &[5]));
    let ones = tape.constant(Tensor::ones([5]));
    let second = tape.forward_mode(|outer| {
        let x = outer.dual(x, ones);
        let first = tape.forward_mode(|inner| {
            let x = inner.dual(x, ones);
            inner.tangent(x.tanh())
        });
        outer.tangent(first)
    });
    for (v, d2) in values.iter().zip(second.value().to_vec()) {
        let th = v.tanh();
        let want = -2.0 * th * (1.0 - th * th);
        assert!(close(d2, want, 1e-14), "tanh'' at {v}: {d2} vs {want}");
    }
}

#[test]
fn levels_keep_their_perturbations_apart() {
    // f(x, y) = x y with x dual at the outer level and y at the inner: the inner tangent is x
    // (d/dy), whose outer tangent is 1 (d2/dxdy); the inner level must not see x's tangent.
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&[2.0], &[1]));
    let y = tape.constant(t(&[5.0], &[1]));
    let one = tape.constant(t(&[1.0], &[1]));
    let (inner_tangent, mixed) = tape.forward_mode(|outer| {
        let x = outer.dual(x, one);
        let inner_tangent = tape.forward_mode(|inner| {
            let y = inner.dual(y, one);
            inner.tangent(x * y)
        });
        (inner_tangent, outer.tangent(inner_tangent))
    });
    assert_eq!(inner_tangent.value().to_vec(), vec![2.0]);
    assert_eq!(mixed.value().to_vec(), vec![1.0]);
}

#[test]
fn reverse_over_forward_differentiates_a_tangent() {
    // g(x) = (d/dt) f(x + t v) = grad f(x) . v for f = sum x^3: dg/dx = 6 x v.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[1.0, -2.0, 0.5], &[3]));
    let v = t(&[0.5, 1.0, -3.0], &[3]);
    let g = tape.forward_mode(|level| {
        let dual = level.dual(x, tape.constant(v.clone()));
        level.tangent(dual.powf(3.0).sum_all())
    });
    assert_eq!(g.value().item(), 3.0 * 0.5 + 12.0 - 0.75 * 3.0);
    assert_eq!(g.backward().wrt(x).to_vec(), vec![3.0, -12.0, -9.0]);
}

/// A small tanh MLP of its input (parameters fixed), as a function for jacobians.
fn mlp<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
    let tape = x[0].tape();
    let w1 = tape.constant(Tensor::from_fn([3, 5], |i| {
        ((i * 7 % 11) as f64 - 5.0) * 0.2
    }));
    let w2 = tape.constant(Tensor::from_fn([5, 2], |i| {
        ((i * 3 % 7) as f64 - 3.0) * 0.3
    }));
    (x[0].matmul(w1) + 0.1).tanh().matmul(w2)
}

#[test]
fn jacobian_of_an_mlp_matches_finite_differences_in_both_modes() {
    let x = Tensor::from_fn([4, 3], |i| (i as f64 * 0.37).sin());
    for mode in [
        JacobianMode::Reverse,
        JacobianMode::Forward,
        JacobianMode::Auto,
    ] {
        let j = jacobian(mlp, std::slice::from_ref(&x), mode)
            .unwrap()
            .remove(0);
        assert_eq!(j.dims(), &[4, 2, 4, 3], "{mode:?}");
        let j = j.to_vec();
        let eps = 1e-6;
        for k in 0..12 {
            let moved = |delta: f64| {
                let mut values = x.to_vec();
                values[k] += delta;
                let tape = Tape::new();
                mlp(&[tape.constant(t(&values, &[4, 3]))]).value().to_vec()
            };
            let (plus, minus) = (moved(eps), moved(-eps));
            for out in 0..8 {
                let numerical = (plus[out] - minus[out]) / (2.0 * eps);
                let analytical = j[out * 12 + k];
                assert!(
                    (analytical - numerical).abs() < 1e-8,
                    "{mode:?}: d out[{out}] / d x[{k}]: {analytical} vs {numerical}"
                );
            }
        }
    }
}

#[test]
fn jacfwd_equals_jacrev_on_random_registry_functions() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    for entry in registry() {
        let strategy = (entry.instances)(Sizes::NON_EMPTY);
        for _ in 0..24 {
            let instance = strategy.new_tree(&mut runner).unwrap().current();
            let f = function(|v| instance.apply(v));
            let reverse = jacobian(f, &instance.inputs, JacobianMode::Reverse).unwrap();
            let forward = jacobian(f, &instance.inputs, JacobianMode::Forward).unwrap();
            for (r, fw) in reverse.iter().zip(&forward) {
                assert_eq!(r.dims(), fw.dims(), "{instance:?}");
                for (a, b) in r.to_vec().iter().zip(fw.to_vec()) {
                    let agree = a == &b || (a - b).abs() <= 1e-12 * (1.0 + a.abs());
                    assert!(agree, "{instance:?}: reverse {a} vs forward {b}");
                }
            }
        }
    }
}

#[test]
fn vjp_and_jvp_agree_through_the_transpose_identity() {
    let x = Tensor::from_fn([4, 3], |i| (i as f64 * 0.61).cos());
    let v = Tensor::from_fn([4, 3], |i| (i as f64 * 1.3).sin());
    let u = Tensor::from_fn([4, 2], |i| i as f64 - 3.5);
    let (value, jv) = jvp(mlp, std::slice::from_ref(&x), std::slice::from_ref(&v)).unwrap();
    let (value_again, jtu) = vjp(mlp, std::slice::from_ref(&x), &u).unwrap();
    assert_eq!(value, value_again);
    let dot = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.to_vec()
            .iter()
            .zip(b.to_vec())
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    let (forward, reverse) = (dot(&u, &jv), dot(&jtu[0], &v));
    assert!(close(forward, reverse, 1e-13), "{forward} vs {reverse}");
}

#[test]
fn grad_over_a_subset_of_inputs_treats_the_rest_as_constants() {
    let w = t(&[1.0, 2.0], &[2]);
    let x = t(&[3.0, -1.0], &[2]);
    let b = t(&[0.5], &[1]);
    let f = function(|p| ((p[0] * p[1]).sum_all() + p[2]).square().sum_all());
    // s = w . x + b = 1.5; f = s^2; df/dx = 2 s w, df/db = 2 s.
    let g = grad(f, &[w.clone(), x.clone(), b.clone()], &[2, 1]).unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].to_vec(), vec![3.0]);
    assert_eq!(g[1].to_vec(), vec![3.0, 6.0]);
    // An input the output does not depend on gets zeros.
    let unused = grad(|p| p[0].sum_all(), &[w.clone(), x.clone()], &[1]).unwrap();
    assert_eq!(unused[0].to_vec(), vec![0.0, 0.0]);
    for wrt in [&[3][..], &[0, 0][..]] {
        let error = grad(f, &[w.clone(), x.clone(), b.clone()], wrt).unwrap_err();
        assert!(
            matches!(error, AutogradError::Transform { op: "grad", .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&format!("{wrt:?}")), "{error}");
    }
    let error = grad(|p| p[0] * 2.0, &[w], &[0]).unwrap_err();
    assert!(
        matches!(error, AutogradError::NonScalarOutput { .. }),
        "{error}"
    );
}

#[test]
fn tangent_and_cotangent_shapes_are_checked() {
    let x = t(&[1.0, 2.0], &[2]);
    let error = jvp(|p| p[0].exp(), std::slice::from_ref(&x), &[t(&[1.0], &[1])]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "jvp: tangents [[1]] must have the shapes of the inputs [[2]]"
    );
    let error = jvp(|p| p[0].exp(), std::slice::from_ref(&x), &[]).unwrap_err();
    assert!(error.to_string().starts_with("jvp: tangents []"), "{error}");
    let error = vjp(|p| p[0].exp(), std::slice::from_ref(&x), &t(&[1.0], &[1])).unwrap_err();
    assert!(matches!(error, AutogradError::SeedShape { .. }), "{error}");
    let tape = Tape::<f64>::new();
    let primal = tape.leaf(x);
    let error = tape
        .forward_mode(|level| level.try_dual(primal, tape.constant(t(&[1.0, 2.0, 3.0], &[3]))))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "dual: the tangent has shape [3], the primal [2]; they must be equal"
    );
}

/// x^2 with a backward rule but no tangent rule.
struct NoTangent;

impl CustomOp<f64> for NoTangent {
    fn name(&self) -> &str {
        "no_tangent"
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
        vec![Some(grad * &inputs[0].mul_scalar(2.0))]
    }
}

/// x^2 whose tangent rule returns the wrong shape.
struct WrongTangentShape;

impl CustomOp<f64> for WrongTangentShape {
    fn name(&self) -> &str {
        "wrong_tangent"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].square())
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        _: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        vec![Some(grad.clone())]
    }
    fn tangent<'t>(
        &self,
        tangents: &[Option<Var<'t, f64>>],
        _: &[Var<'t, f64>],
        _: Var<'t, f64>,
    ) -> Option<Var<'t, f64>> {
        Some(tangents[0]?.sum_all())
    }
}

#[test]
fn forward_mode_through_a_custom_op_without_a_tangent_rule_is_a_named_error() {
    let x = t(&[1.0, 2.0], &[2]);
    let v = t(&[1.0, 1.0], &[2]);
    let through = function(|p| p[0].tape().custom_op(NoTangent, &[p[0]]).exp().sum_all());
    let error = jvp(through, std::slice::from_ref(&x), std::slice::from_ref(&v)).unwrap_err();
    assert_eq!(
        error,
        AutogradError::TangentUnsupported {
            op: "custom op 'no_tangent'".to_string()
        }
    );
    assert!(error.to_string().contains("CustomOp::tangent"), "{error}");
    // Reverse mode through it still works, and a value not depending on it still has a tangent.
    assert_eq!(
        grad(through, std::slice::from_ref(&x), &[0]).unwrap()[0].dims(),
        &[2]
    );
    let beside = jvp(
        |p| {
            let _unused = p[0].tape().custom_op(NoTangent, &[p[0]]);
            p[0] * 3.0
        },
        std::slice::from_ref(&x),
        std::slice::from_ref(&v),
    )
    .unwrap();
    assert_eq!(beside.1.to_vec(), vec![3.0, 3.0]);
    // A tangent rule that breaks its contract is an error of the op, when it is recorded.
    let tape = Tape::<f64>::new();
    let primal = tape.constant(x);
    let error = tape
        .forward_mode(|level| {
            let dual = level.dual(primal, tape.constant(v.clone()));
            tape.try_custom_op(WrongTangentShape, &[dual])
        })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "custom op 'wrong_tangent': tangent returned shape [] for an output of shape [2]"
    );
}

#[test]
fn a_failed_op_inside_a_level_leaves_the_tape_and_its_tangents_as_they_were() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&[1.0, 2.0, 3.0], &[3]));
    let w = tape.constant(t(&[1.0, 2.0], &[2]));
    tape.forward_mode(|level| {
        let x = level.dual(x, tape.constant(Tensor::ones([3])));
        let y = x.exp();
        let before = tape.len();
        assert!(y.try_add(w).is_err());
        assert!(tape.try_custom_op(WrongTangentShape, &[y]).is_err());
        assert_eq!(tape.len(), before);
        // The next node recorded reuses the index and gets its own, correct tangent.
        let z = y * 2.0;
        assert_eq!(z.index(), before);
        let expected: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| 2.0 * v.exp()).collect();
        assert_eq!(level.tangent(z).value().to_vec(), expected);
    });
    assert_eq!(tape.open_levels(), 0);
}

#[test]
fn values_that_do_not_depend_on_a_dual_have_zero_tangents() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&[1.0, 2.0], &[2]));
    let c = tape.constant(t(&[5.0, 6.0], &[2]));
    tape.forward_mode(|level| {
        let x = level.dual(x, tape.constant(Tensor::ones([2])));
        let _ = x.exp();
        assert_eq!(level.tangent(c.exp()).value().to_vec(), vec![0.0, 0.0]);
    });
}

/// a + b whose tangent rule breaks its contract only for b's tangent.
struct FailsOnSecondTangent;

impl CustomOp<f64> for FailsOnSecondTangent {
    fn name(&self) -> &str {
        "fails_on_second"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0] + inputs[1])
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        _: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        vec![Some(grad.clone()), Some(grad.clone())]
    }
    fn tangent<'t>(
        &self,
        tangents: &[Option<Var<'t, f64>>],
        _: &[Var<'t, f64>],
        _: Var<'t, f64>,
    ) -> Option<Var<'t, f64>> {
        match tangents {
            [Some(t), None] => Some(*t),
            [_, Some(t)] => Some(t.sum_all()),
            _ => None,
        }
    }
}

#[test]
fn a_tangent_failing_at_an_inner_level_leaves_no_outer_tangent_behind() {
    let tape = Tape::<f64>::new();
    let a = tape.constant(t(&[1.0, 2.0], &[2]));
    let b = tape.constant(t(&[3.0, 4.0], &[2]));
    let ones = tape.constant(Tensor::ones([2]));
    tape.forward_mode(|outer| {
        let a = outer.dual(a, ones);
        tape.forward_mode(|inner| {
            let b = inner.dual(b, ones);
            let before = tape.len();
            // The outer tangent is computed, then the inner one breaks the contract: the node
            // and the outer tangent recorded for it must both go.
            let error = tape
                .try_custom_op(FailsOnSecondTangent, &[a, b])
                .unwrap_err();
            assert!(error.to_string().contains("fails_on_second"), "{error}");
            let fresh = tape.constant(t(&[5.0, 6.0], &[2])).exp();
            assert_eq!(fresh.index(), before + 1);
            assert_eq!(outer.tangent(fresh).value().to_vec(), vec![0.0, 0.0]);
            assert_eq!(inner.tangent(fresh).value().to_vec(), vec![0.0, 0.0]);
        });
    });
}

#[test]
fn levels_open_and_close_with_their_closure() {
    let tape = Tape::<f64>::new();
    assert_eq!(tape.open_levels(), 0);
    tape.forward_mode(|outer| {
        assert_eq!(tape.open_levels(), 1);
        assert_eq!(format!("{outer:?}"), "DualLevel { level: 0 }");
        tape.forward_mode(|inner| {
            assert_eq!(tape.open_levels(), 2);
            assert_eq!(format!("{inner:?}"), "DualLevel { level: 1 }");
        });
        assert_eq!(tape.open_levels(), 1);
    });
    assert_eq!(tape.open_levels(), 0);
    // A panic inside a level closes it too.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.forward_mode(|_| panic!("inside"))
    }));
    assert!(caught.is_err());
    assert_eq!(tape.open_levels(), 0);
    let x = tape.constant(t(&[1.0], &[1]));
    let y = x.exp();
    assert_eq!(y.value().to_vec(), vec![1f64.exp()]);
}
