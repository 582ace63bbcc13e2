//! Optimizer tests: three steps of each against values worked out from the update formulas,
//! and the weight-decay equivalences that motivate AdamW.

use autograd::Tape;
use tensor::Tensor;

use super::*;
use crate::dense::Dense;
use crate::error::NnError;
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
        let grads = ParamGradients::from_values(
            &store,
            vec![Some(Tensor::from_vec(vec![g], [1]).unwrap())],
        )
        .unwrap();
        optimizer.step(&mut store, &grads).unwrap();
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

#[test]
fn sgd_momentum_with_coupled_weight_decay_three_steps() {
    // g' = 1 + 0.1 w, b = g' first, then 0.9 b + g':
    // g' = 1.1, b = 1.1 -> w = 0.89; g' = 1.089, b = 0.99 + 1.089 = 2.079 -> w = 0.6821;
    // g' = 1.06821, b = 1.8711 + 1.06821 = 2.93931 -> w = 0.388169
    let config = SgdConfig {
        learning_rate: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
        ..SgdConfig::default()
    };
    assert_close(
        trajectory(&mut Sgd::with_config(config).unwrap(), [1.0, 1.0, 1.0]),
        [0.89, 0.6821, 0.388169],
    );
}

#[test]
fn sgd_keeps_the_settings_it_was_given() {
    let config = SgdConfig {
        learning_rate: 0.2,
        momentum: 0.5,
        dampening: 0.25,
        nesterov: false,
        weight_decay: 0.125,
    };
    assert_eq!(Sgd::<f32>::with_config(config).unwrap().config(), &config);
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
    for _ in 0..3 {
        let gradients = {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Train);
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
        optimizer.step(&mut store, &gradients).unwrap();
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
fn adamw_defaults_to_pytorchs_weight_decay() {
    // torch.optim.AdamW: lr given, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
    assert_eq!(
        AdamConfig::adamw(0.1),
        AdamConfig {
            learning_rate: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    );
    // With zero gradients the Adam step is 0, so only the decay moves w: w *= 1 - 0.1 * 0.01.
    let shrink = 1.0 - 0.1 * 0.01;
    assert_close(
        trajectory(&mut AdamW::new(0.1), [0.0; 3]),
        [shrink, shrink * shrink, shrink * shrink * shrink],
    );
}

#[test]
fn each_setting_is_checked_on_its_own() {
    // One bad setting among valid ones is enough to refuse the configuration.
    let adam = |config: AdamConfig| Adam::<f32>::with_config(config).map(|_| ());
    let adamw = |config: AdamConfig| AdamW::<f32>::with_config(config).map(|_| ());
    let base = AdamConfig::adam(0.1);
    for (config, message) in [
        (
            AdamConfig { beta2: 1.0, ..base },
            "betas must be in [0, 1), got 0.9 and 1",
        ),
        (
            AdamConfig { eps: -1e-8, ..base },
            "eps and weight decay must be finite and >= 0, got -0.00000001 and 0",
        ),
        (
            AdamConfig {
                weight_decay: -0.5,
                ..base
            },
            "eps and weight decay must be finite and >= 0, got 0.00000001 and -0.5",
        ),
        (
            AdamConfig {
                weight_decay: f64::INFINITY,
                ..base
            },
            "eps and weight decay must be finite and >= 0, got 0.00000001 and inf",
        ),
    ] {
        assert_eq!(
            adam(config).unwrap_err().to_string(),
            format!("Adam: {message}")
        );
        assert_eq!(
            adamw(config).unwrap_err().to_string(),
            format!("AdamW: {message}")
        );
    }
    let sgd = |config: SgdConfig| Sgd::<f32>::with_config(config).map(|_| ());
    for (momentum, weight_decay) in [
        (-0.5, 0.0),
        (0.0, -0.5),
        (f64::NAN, 0.0),
        (0.9, f64::INFINITY),
    ] {
        assert_eq!(
            sgd(SgdConfig {
                momentum,
                weight_decay,
                ..SgdConfig::default()
            })
            .unwrap_err()
            .to_string(),
            format!(
                "Sgd: momentum and weight decay must be finite and >= 0, got {momentum} and {weight_decay}"
            )
        );
    }
    assert_eq!(
        sgd(SgdConfig {
            momentum: 0.9,
            dampening: 0.5,
            nesterov: true,
            ..SgdConfig::default()
        })
        .unwrap_err()
        .to_string(),
        "Sgd: Nesterov momentum needs momentum > 0 and dampening 0, got momentum 0.9, dampening 0.5"
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
    let grads =
        ParamGradients::from_values(&store, vec![Some(Tensor::ones([2])), None, None]).unwrap();
    let mut sgd = Sgd::new(0.5);
    Optimizer::step(&mut sgd, &mut store, &grads).unwrap();
    assert_eq!(store.value(w).to_vec(), vec![0.5, 0.5]);
    assert_eq!(store.value(b).to_vec(), vec![1.0, 1.0]);
    assert_eq!(store.value(stat).to_vec(), vec![1.0, 1.0]);
}

/// A one-layer model and the gradients of a fixed loss for it.
fn model_and_gradients(
    inputs: usize,
    outputs: usize,
    seed: u64,
) -> (ParamStore<f64>, Dense, ParamGradients<f64>) {
    let mut store = ParamStore::new();
    let layer = Dense::new(
        &mut store,
        "d",
        inputs,
        outputs,
        Init::XavierNormal,
        &mut rng(seed),
    )
    .unwrap();
    let gradients = {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let x = tape.constant(sample(&[4, inputs], seed + 1));
        let loss = layer.forward(&mut context, x).square().mean_all();
        context.gradients(&loss.backward())
    };
    (store, layer, gradients)
}

fn values(store: &ParamStore<f64>) -> Vec<Vec<f64>> {
    store.iter().map(|(_, _, _, v)| v.to_vec()).collect()
}

#[test]
fn gradients_of_another_store_are_refused_and_nothing_moves() {
    // The reproduction: two models of the same shapes; A's gradients used to move B's weights.
    let (_, _, from_a) = model_and_gradients(31, 32, 1);
    let (mut b, _, from_b) = model_and_gradients(31, 32, 2);
    let before = values(&b);
    for optimizer in [
        &mut Sgd::new(0.1) as &mut dyn Optimizer<f64>,
        &mut Adam::new(0.1),
        &mut AdamW::new(0.1),
    ] {
        let error = optimizer.step(&mut b, &from_a).unwrap_err();
        assert!(matches!(error, NnError::ForeignGradients { .. }), "{error}");
        assert!(
            error.to_string().ends_with("(another model's parameters)"),
            "{error}"
        );
        assert_eq!(values(&b), before);
    }
    // B's own gradients still apply.
    Sgd::new(0.1).step(&mut b, &from_b).unwrap();
    assert_ne!(values(&b), before);
}

#[test]
fn an_optimizer_reused_for_another_model_is_refused_and_its_state_is_untouched() {
    // The reproduction: one Adam stepped a small model, then a larger one, and updated only
    // the first few elements of the larger one.
    let (mut small, _, small_gradients) = model_and_gradients(2, 2, 3);
    let (mut large, _, large_gradients) = model_and_gradients(8, 16, 4);
    let large_before = values(&large);
    let mut reused = Adam::new(0.01);
    reused.step(&mut small, &small_gradients).unwrap();
    let error = reused.step(&mut large, &large_gradients).unwrap_err();
    assert!(
        matches!(error, NnError::ForeignOptimizerState { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("make one optimizer per model"));
    assert_eq!(values(&large), large_before);
    // The refused call changed nothing: the next step on the small model is the one a fresh
    // optimizer that never saw the large model takes.
    let (mut twin, _, twin_gradients) = model_and_gradients(2, 2, 3);
    let mut fresh = Adam::new(0.01);
    fresh.step(&mut twin, &twin_gradients).unwrap();
    reused.step(&mut small, &small_gradients).unwrap();
    fresh.step(&mut twin, &twin_gradients).unwrap();
    assert_eq!(values(&small), values(&twin));
}

#[test]
fn gradients_of_the_wrong_shape_or_for_missing_entries_are_refused() {
    let mut store = ParamStore::<f64>::new();
    store.add("w", Role::Weight, Tensor::ones([3, 4])).unwrap();
    store
        .add("s", Role::RunningStatistic, Tensor::ones([4]))
        .unwrap();
    // A [3] gradient for a [3, 4] weight used to move 3 of its 12 elements.
    let error = ParamGradients::from_values(&store, vec![Some(Tensor::ones([3])), None])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "ParamGradients::from_values: the gradient of 'w' has shape [3], the parameter [3, 4]"
    );
    let error = ParamGradients::from_values(&store, vec![None, Some(Tensor::ones([4]))])
        .unwrap_err()
        .to_string();
    assert!(error.contains("'s' is not trainable (a buffer"), "{error}");
    assert!(ParamGradients::from_values(&store, vec![None]).is_err());
    // A gradient for a 10th entry of a 9-entry store used to panic with an index error. A clone
    // is the same model, so its gradients are accepted, but not for an entry the store lacks.
    let mut grown = store.clone();
    grown.add("extra", Role::Bias, Tensor::ones([2])).unwrap();
    let for_grown =
        ParamGradients::from_values(&grown, vec![None, None, Some(Tensor::ones([2]))]).unwrap();
    let before = values(&store);
    let error = Sgd::new(0.1).step(&mut store, &for_grown).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Sgd::step: a gradient for entry #2 of a store with 2 entries"
    );
    assert_eq!(values(&store), before);
}

#[test]
fn setters_validate_like_the_constructors() {
    let mut sgd = Sgd::<f64>::new(0.1);
    let mut adam = Adam::<f64>::new(0.1);
    let mut adamw = AdamW::<f64>::new(0.1);
    for optimizer in [&mut sgd as &mut dyn Optimizer<f64>, &mut adam, &mut adamw] {
        for bad in [f64::NAN, -0.5, f64::INFINITY] {
            let error = optimizer.set_learning_rate(bad).unwrap_err().to_string();
            assert!(
                error.ends_with(&format!(
                    "the learning rate must be finite and >= 0, got {bad}"
                )),
                "{error}"
            );
            assert_eq!(optimizer.learning_rate(), 0.1);
        }
        optimizer.set_learning_rate(0.25).unwrap();
        assert_eq!(optimizer.learning_rate(), 0.25);
    }
    for dampening in [f64::NAN, -0.1, 1.5] {
        let error = Sgd::<f64>::with_config(SgdConfig {
            momentum: 0.9,
            dampening,
            ..SgdConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            format!("Sgd: dampening must be in [0, 1], got {dampening}")
        );
    }
}

#[test]
fn adam_counts_steps_per_parameter() {
    // The reproduction: after 10^4 steps of one parameter, a parameter added later got a first
    // update of 0.00316 at lr 0.001 from the shared step count's bias correction. PyTorch keeps
    // a step per parameter, so its first update is lr * g / (|g| + eps) = 0.001.
    let mut store = ParamStore::<f64>::new();
    let early = store.add("early", Role::Weight, Tensor::ones([1])).unwrap();
    let mut adam = Adam::new(0.001);
    for _ in 0..10_000 {
        let grads = ParamGradients::from_values(&store, vec![Some(Tensor::ones([1]))]).unwrap();
        adam.step(&mut store, &grads).unwrap();
    }
    let late = store.add("late", Role::Weight, Tensor::ones([1])).unwrap();
    let grads = ParamGradients::from_values(
        &store,
        vec![Some(Tensor::ones([1])), Some(Tensor::ones([1]))],
    )
    .unwrap();
    let early_before = store.value(early).item();
    adam.step(&mut store, &grads).unwrap();
    let update = 1.0 - store.value(late).item();
    assert!((update - 0.001 / (1.0 + 1e-8)).abs() < 1e-15, "{update}");
    // The early parameter's step continues its own count (bias correction ~ 1 by now).
    assert!((early_before - store.value(early).item() - 0.001).abs() < 1e-6);
}
