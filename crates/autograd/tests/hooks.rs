//! Gradient hooks: what they see, when they run, what they may replace, in both backward modes.

use std::cell::RefCell;
use std::rc::Rc;

use autograd::gradcheck::{GradcheckOptions, gradcheck, gradgradcheck};
use autograd::{AutogradError, GradientHook, Operand, Tape, Var, function};
use tensor::Tensor;

fn t(values: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), [values.len()]).unwrap()
}

/// What the logging hooks saw: (hook name, gradient), in the order they ran.
type Seen = Rc<RefCell<Vec<(&'static str, Vec<f64>)>>>;

/// Records (name, gradient) when it runs and passes the gradient on unchanged, in both modes.
#[derive(Clone)]
struct Log {
    name: &'static str,
    seen: Seen,
}

impl GradientHook<f64> for Log {
    fn on_tensor(&self, gradient: Tensor<f64>) -> Tensor<f64> {
        self.seen.borrow_mut().push((self.name, gradient.to_vec()));
        gradient
    }
    fn on_var<'t>(&self, gradient: Var<'t, f64>) -> Option<Var<'t, f64>> {
        self.seen
            .borrow_mut()
            .push((self.name, gradient.value().to_vec()));
        Some(gradient)
    }
}

/// Multiplies the gradient by a constant, written once over Operand.
struct Scale(f64);

impl Scale {
    fn apply<O: Operand<f64>>(&self, gradient: O) -> O {
        gradient.mul_scalar(self.0)
    }
}

impl GradientHook<f64> for Scale {
    fn on_tensor(&self, gradient: Tensor<f64>) -> Tensor<f64> {
        self.apply(gradient)
    }
    fn on_var<'t>(&self, gradient: Var<'t, f64>) -> Option<Var<'t, f64>> {
        Some(self.apply(gradient))
    }
}

#[test]
fn hooks_run_in_the_sweeps_order_on_complete_gradients() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = |name| Log {
        name,
        seen: seen.clone(),
    };
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[1.0, 2.0]));
    let a = x * 2.0;
    let b = a.exp();
    a.register_hook(log("a, first"));
    b.register_hook(log("b"));
    x.register_hook(log("x"));
    a.register_hook(log("a, second"));
    // a is used twice: its hooks see the sum of both contributions.
    let y = (b + a * 3.0).sum_all();
    let grads = y.backward();
    let order: Vec<&str> = seen.borrow().iter().map(|(name, _)| *name).collect();
    assert_eq!(order, ["b", "a, first", "a, second", "x"]);
    let at_a = &seen.borrow()[1].1;
    let expected: Vec<f64> = [2.0f64, 4.0].iter().map(|v| v.exp() + 3.0).collect();
    assert_eq!(at_a, &expected);
    assert_eq!(
        grads.wrt(x).to_vec(),
        expected.iter().map(|g| 2.0 * g).collect::<Vec<_>>()
    );
}

#[test]
fn a_hook_replaces_the_gradient_its_inputs_receive_and_a_leaf_hook_what_gradients_hold() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[0.5, -1.5]));
    let w = tape.leaf(t(&[2.0, 3.0]));
    let h = x * w;
    h.register_hook(Scale(10.0));
    // A leaf's hook runs after its gradient is accumulated from every use.
    w.register_hook(|g: Tensor<f64>| g.mul_scalar(-1.0));
    let y = (h + w).sum_all();
    let grads = y.backward();
    assert_eq!(grads.wrt(x).to_vec(), vec![20.0, 30.0]); // 10 * w
    assert_eq!(
        grads.wrt(w).to_vec(),
        vec![-(10.0 * 0.5 + 1.0), -(10.0 * -1.5 + 1.0)]
    );
}

#[test]
fn observing_hooks_leave_gradcheck_and_gradgradcheck_passing() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let hook = Log {
        name: "hidden",
        seen: seen.clone(),
    };
    let f = function(move |v: &[Var<'_, f64>]| {
        let hidden = v[0].tanh() * v[1];
        hidden.register_hook(hook.clone());
        (hidden * hidden).sum_all()
    });
    let inputs = [t(&[0.3, -0.8, 1.1]), t(&[1.5, 0.2, -0.7])];
    gradcheck(&f, &inputs, &GradcheckOptions::strict("logged")).unwrap();
    gradgradcheck(&f, &inputs, &GradcheckOptions::strict("logged")).unwrap();
    assert!(!seen.borrow().is_empty());
}

#[test]
fn a_scaling_hook_scales_the_gradient_in_every_backward_that_reaches_it() {
    let values = [0.4, -1.2];
    let plain = |scale: Option<f64>| {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&values));
        let h = x * 1.0;
        if let Some(c) = scale {
            h.register_hook(Scale(c));
        }
        let first = h.tanh().sum_all().backward_create_graph().wrt(x);
        let second = first.sum_all().backward().wrt(x);
        (first.value().to_vec(), second.to_vec())
    };
    let (first, second) = plain(None);
    let (scaled_first, scaled_second) = plain(Some(3.0));
    for i in 0..2 {
        assert_eq!(scaled_first[i], 3.0 * first[i]);
        // The second backward also passes through h, so the hook runs there too (as in
        // PyTorch): 3 from the recorded first derivative, 3 again now.
        assert!((scaled_second[i] - 9.0 * second[i]).abs() < 1e-15);
    }
    // The two forms of the hook are the same function: the plain backward (on_tensor) gives
    // the create-graph one's value (on_var).
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&values));
    let h = x * 1.0;
    h.register_hook(Scale(3.0));
    assert_eq!(h.tanh().sum_all().backward().wrt(x).to_vec(), scaled_first);
}

#[test]
fn hook_errors_are_named() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[1.0, 2.0]));
    let h = x.exp();
    h.register_hook(|g: Tensor<f64>| g.sum_all());
    let error = h.sum_all().try_backward().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "hook: the hook on node #{} returned a gradient of shape [] for a node of shape [2]",
            h.index()
        )
    );
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[1.0, 2.0]));
    let h = x.exp();
    h.register_hook(|g: Tensor<f64>| g);
    let error = h.sum_all().try_backward_create_graph().unwrap_err();
    assert!(
        matches!(error, AutogradError::HigherOrderUnsupported { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("has no on_var"), "{error}");
}

#[test]
fn a_straight_through_estimator_with_a_clipping_hook() {
    // Binarize in the forward pass, pass the gradient straight through where |x| <= 1 (the
    // "hardtanh" straight-through estimator of binarized networks).
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[-2.0, -0.5, 0.3, 1.7]));
    let sign = x.value().map(|v| if v >= 0.0 { 1.0 } else { -1.0 });
    let binary = x + (tape.constant(sign) - x).detach();
    let inside = x.value().map(|v| if v.abs() <= 1.0 { 1.0 } else { 0.0 });
    x.register_hook(move |g: Tensor<f64>| &g * &inside);
    assert_eq!(binary.value().to_vec(), vec![-1.0, -1.0, 1.0, 1.0]);
    let weights = tape.constant(t(&[1.0, 2.0, 3.0, 4.0]));
    let grads = (binary * weights).sum_all().backward();
    assert_eq!(grads.wrt(x).to_vec(), vec![0.0, 2.0, 3.0, 0.0]);
}

#[test]
fn hooks_of_rolled_back_nodes_are_dropped() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(t(&[1.0, 2.0]));
    assert!(!tape.has_hooks());
    let y = x.exp();
    y.register_hook(|g: Tensor<f64>| g);
    assert!(tape.has_hooks());
    let mut tape = tape;
    tape.clear();
    assert!(!tape.has_hooks());
}
