//! Optimizer tests: three steps of each against values worked out from the update formulas,
//! and the weight-decay equivalences that motivate AdamW.

use autograd::Tape;
use tensor::Tensor;

use super::*;
use crate::dense::Dense;
use crate::init::Init;
use crate::layer::Layer;
use crate::params::{Context, Mode, ParamId, ParamStore, Role};
use crate::test_support::{rng, sample};

/// A store with one scalar-like parameter w = [1.0].
fn single() -> (ParamStore<f64>, ParamId) {
    let mut store = ParamStore::new();
    let id = store
        .add("w", Role::Weight, Tensor::from_vec(vec![1.0], [1]).unwrap())
        .unwrap();
    (store, id)
}

/// Runs `optimizer` for gradients 1, 2, 3 and returns w after each step.
fn trajectory(optimizer: &mut dyn Optimizer<f64>, gradients: [f64; 3]) -> [f64; 3] {
    let (mut store, id) = single();
    gradients.map(|g| {
        let grads =
            ParamGradients::from_values(vec![Some(Tensor::from_vec(vec![g], [1]).unwrap())]);
        optimizer.step(&mut store, &grads);
        store.value(id).item()
    })
}

fn assert_close(got: [f64; 3], want: [f64; 3]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
    }
}

#[test]
fn sgd_three_steps() {
    // w = w - lr g, lr 0.1, w0 = 1: 1 - 0.1 = 0.9, 0.9 - 0.2 = 0.7, 0.7 - 0.3 = 0.4
    assert_close(
        trajectory(&mut Sgd::new(0.1), [1.0, 2.0, 3.0]),
        [0.9, 0.7, 0.4],
    );
}

#[test]
fn sgd_momentum_three_steps() {
    // b1 = g1 = 1 -> w = 0.9; b2 = 0.9 * 1 + 2 = 2.9 -> w = 0.61; b3 = 0.9 * 2.9 + 3 = 5.61 -> w = 0.049
    let mut sgd = Sgd::with_config(SgdConfig {
        learning_rate: 0.1,
        momentum: 0.9,
        ..SgdConfig::default()
    })
    .unwrap();
    assert_close(trajectory(&mut sgd, [1.0, 2.0, 3.0]), [0.9, 0.61, 0.049]);
}

#[test]
fn sgd_nesterov_three_steps() {
    // step = g + 0.9 b: 1 + 0.9 = 1.9 -> 0.81; 2 + 0.9 * 2.9 = 4.61 -> 0.349;
    // 3 + 0.9 * 5.61 = 8.049 -> -0.4559
    let config = SgdConfig {
        learning_rate: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    };
    assert_close(
        trajectory(&mut Sgd::with_config(config).unwrap(), [1.0, 2.0, 3.0]),
        [0.81, 0.349, -0.4559],
    );
}

#[test]
fn sgd_dampening_three_steps() {
    // b1 = g1 = 1 (no dampening on the first step) -> 0.9; b2 = 0.9 + 0.5 * 2 = 1.9 -> 0.71;
    // b3 = 0.9 * 1.9 + 0.5 * 3 = 3.21 -> 0.389
    let config = SgdConfig {
        learning_rate: 0.1,
        momentum: 0.9,
        dampening: 0.5,
        ..SgdConfig::default()
    };
    assert_close(
        trajectory(&mut Sgd::with_config(config).unwrap(), [1.0, 2.0, 3.0]),
        [0.9, 0.71, 0.389],
    );
}

#[test]
fn sgd_coupled_weight_decay_three_steps() {
    // g = 1 + 0.1 w: 1.1 -> 0.89; 1.089 -> 0.7811; 1.07811 -> 0.673289
    let config = SgdConfig {
        learning_rate: 0.1,
        weight_decay: 0.1,
        ..SgdConfig::default()
    };
    assert_close(
        trajectory(&mut Sgd::with_config(config).unwrap(), [1.0, 1.0, 1.0]),
        [0.89, 0.7811, 0.673289],
    );
}

/// One Adam step from (w, m, v) at step t with gradient g, the formula written out.
fn adam_formula(w: f64, m: f64, v: f64, g: f64, t: i32, lr: f64) -> (f64, f64, f64) {
    let m = 0.9 * m + 0.1 * g;
    let v = 0.999 * v + 0.001 * g * g;
    let m_hat = m / (1.0 - 0.9_f64.powi(t));
    let v_hat = v / (1.0 - 0.999_f64.powi(t));
    (w - lr * m_hat / (v_hat.sqrt() + 1e-8), m, v)
}

#[test]
fn adam_three_steps() {
    // Step 1: m = 0.1, v = 0.001, m_hat = 1, v_hat = 1, so w = 1 - 0.1 / (1 + 1e-8).
    let (w1, m1, v1) = adam_formula(1.0, 0.0, 0.0, 1.0, 1, 0.1);
    assert!((w1 - (1.0 - 0.1 / (1.0 + 1e-8))).abs() < 1e-15);
    let (w2, m2, v2) = adam_formula(w1, m1, v1, 2.0, 2, 0.1);
    let (w3, ..) = adam_formula(w2, m2, v2, 3.0, 3, 0.1);
    assert_close(
        trajectory(&mut Adam::new(0.1), [1.0, 2.0, 3.0]),
        [w1, w2, w3],
    );
}

#[test]
fn adam_coupled_decay_three_steps() {
    // The gradient seen by Adam is g + 0.1 w.
    let (w1, m1, v1) = adam_formula(1.0, 0.0, 0.0, 1.0 + 0.1, 1, 0.1);
    let (w2, m2, v2) = adam_formula(w1, m1, v1, 2.0 + 0.1 * w1, 2, 0.1);
    let (w3, ..) = adam_formula(w2, m2, v2, 3.0 + 0.1 * w2, 3, 0.1);
    let mut adam = Adam::with_config(AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adam(0.1)
    })
    .unwrap();
    assert_close(trajectory(&mut adam, [1.0, 2.0, 3.0]), [w1, w2, w3]);
}

#[test]
fn adamw_three_steps() {
    // w is first shrunk by (1 - lr * lambda) = 0.99, then the Adam step on the raw gradient.
    let (w1, m1, v1) = adam_formula(0.99, 0.0, 0.0, 1.0, 1, 0.1);
    let (w2, m2, v2) = adam_formula(0.99 * w1, m1, v1, 2.0, 2, 0.1);
    let (w3, ..) = adam_formula(0.99 * w2, m2, v2, 3.0, 3, 0.1);
    let mut adamw = AdamW::with_config(AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adamw(0.1)
    })
    .unwrap();
    assert_close(trajectory(&mut adamw, [1.0, 2.0, 3.0]), [w1, w2, w3]);
}

/// Parameters after three steps on a small regression problem, with `lambda / 2` times the
/// squared norm of every trainable parameter added to the loss when `penalised`.
fn train(optimizer: &mut dyn Optimizer<f64>, lambda: f64, penalised: bool) -> Vec<f64> {
    let mut store = ParamStore::new();
    let layer = Dense::new(&mut store, "d", 3, 2, Init::XavierNormal, &mut rng(5)).unwrap();
    let (x, y) = (sample(&[6, 3], 1), sample(&[6, 2], 2));
    for step in 0..3 {
        let gradients = {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Train { step });
            let prediction = layer.forward(&mut context, tape.constant(x.clone()));
            let mut loss = crate::loss::mse(prediction, tape.constant(y.clone()));
            if penalised {
                let norms: Vec<_> = context
                    .trainable()
                    .map(|(_, _, p)| p.square().sum_all())
                    .collect();
                let total = norms.into_iter().reduce(|a, b| a + b).unwrap();
                loss = loss + total * (lambda / 2.0);
            }
            context.gradients(&loss.backward())
        };
        optimizer.step(&mut store, &gradients);
    }
    store
        .trainable()
        .flat_map(|id| store.value(id).to_vec())
        .collect()
}

fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn sgd_weight_decay_is_the_l2_penalty_and_adamw_decay_is_not() {
    let lambda = 0.05;
    // SGD: coupled decay lambda == plain SGD on loss + (lambda / 2) ||w||^2.
    let decayed = train(
        &mut Sgd::with_config(SgdConfig {
            learning_rate: 0.1,
            weight_decay: lambda,
            ..SgdConfig::default()
        })
        .unwrap(),
        lambda,
        false,
    );
    let penalised = train(&mut Sgd::new(0.1), lambda, true);
    assert!(max_difference(&decayed, &penalised) < 1e-14);

    // Adam's weight_decay is coupled, so it also equals the penalty...
    let adam_decayed = train(
        &mut Adam::with_config(AdamConfig {
            weight_decay: lambda,
            ..AdamConfig::adam(0.01)
        })
        .unwrap(),
        lambda,
        false,
    );
    let adam_penalised = train(&mut Adam::new(0.01), lambda, true);
    assert!(max_difference(&adam_decayed, &adam_penalised) < 1e-14);
    // ...but decoupled decay (AdamW), which for SGD would be the same thing, is not.
    let adamw = train(
        &mut AdamW::with_config(AdamConfig {
            weight_decay: lambda,
            ..AdamConfig::adamw(0.01)
        })
        .unwrap(),
        lambda,
        false,
    );
    assert!(max_difference(&adamw, &adam_penalised) > 1e-4);
}

#[test]
fn with_adam_an_l2_penalty_is_normalised_away() {
    // A weight w = 1 whose data gradient is 0. With the L2 penalty its gradient is lambda w,
    // and Adam divides by its own RMS: the first step moves it by lr whatever lambda is.
    // AdamW shrinks it by exactly lr * lambda.
    let (lr, lambda) = (0.1, 0.01);
    let mut adam = Adam::with_config(AdamConfig {
        weight_decay: lambda,
        ..AdamConfig::adam(lr)
    })
    .unwrap();
    let mut adamw = AdamW::with_config(AdamConfig {
        weight_decay: lambda,
        ..AdamConfig::adamw(lr)
    })
    .unwrap();
    let with_penalty = trajectory(&mut adam, [0.0; 3])[0];
    let decoupled = trajectory(&mut adamw, [0.0; 3])[0];
    assert!((with_penalty - (1.0 - lr * lambda / (lambda + 1e-8))).abs() < 1e-12);
    assert!((decoupled - (1.0 - lr * lambda)).abs() < 1e-15);
}

#[test]
fn invalid_settings_are_named() {
    assert_eq!(
        Sgd::<f32>::with_config(SgdConfig {
            learning_rate: -1.0,
            ..SgdConfig::default()
        })
        .unwrap_err()
        .to_string(),
        "Sgd: the learning rate must be finite and >= 0, got -1"
    );
    assert_eq!(
        Adam::<f32>::with_config(AdamConfig {
            beta1: 1.0,
            ..AdamConfig::adam(0.1)
        })
        .unwrap_err()
        .to_string(),
        "Adam: betas must be in [0, 1), got 1 and 0.999"
    );
}

#[test]
fn optimizers_leave_buffers_and_gradientless_parameters_alone() {
    let mut store = ParamStore::<f64>::new();
    let w = store.add("w", Role::Weight, Tensor::ones([2])).unwrap();
    let b = store.add("b", Role::Bias, Tensor::ones([2])).unwrap();
    let stat = store
        .add("s", Role::RunningStatistic, Tensor::ones([2]))
        .unwrap();
    let grads = ParamGradients::from_values(vec![Some(Tensor::ones([2])), None, None]);
    let mut sgd = Sgd::new(0.5);
    Optimizer::step(&mut sgd, &mut store, &grads);
    assert_eq!(store.value(w).to_vec(), vec![0.5, 0.5]);
    assert_eq!(store.value(b).to_vec(), vec![1.0, 1.0]);
    assert_eq!(store.value(stat).to_vec(), vec![1.0, 1.0]);
}
