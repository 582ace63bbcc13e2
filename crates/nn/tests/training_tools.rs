//! The training utilities a PyTorch user reaches for: gradient clipping, accumulation,
//! freezing, parameter groups, skipped non-finite steps, snapshots and early stopping, and
//! evaluation from a shared store on several threads. Each against an independent computation.

use autograd::Tape;
use nn::optim::{Adam, AdamConfig, AdamW, Optimizer, ParamGroup, Sgd, SgdConfig, StepOutcome};
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, EarlyStopping, Init, Layer, Mode,
    ParamGradients, ParamStore, Progress, Role, Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

fn gradients(store: &ParamStore<f64>, values: Vec<Option<Vec<f64>>>) -> ParamGradients<f64> {
    let values = values
        .into_iter()
        .zip(store.iter())
        .map(|(v, (_, _, _, p))| v.map(|v| Tensor::from_vec(v, p.shape().clone()).unwrap()))
        .collect();
    ParamGradients::from_values(store, values).unwrap()
}

fn two_parameters() -> ParamStore<f64> {
    let mut store = ParamStore::new();
    store.add("w", Role::Weight, Tensor::ones([2, 1])).unwrap();
    store.add("b", Role::Bias, Tensor::ones([1])).unwrap();
    store
}

#[test]
fn clip_norm_scales_to_the_bound_and_returns_the_norm() {
    let store = two_parameters();
    let mut g = gradients(&store, vec![Some(vec![3.0, 0.0]), Some(vec![4.0])]);
    assert_eq!(g.clip_norm(10.0).unwrap(), 5.0);
    // Below the bound: unchanged, bit for bit.
    assert_eq!(g.iter().next().unwrap().1.to_vec(), vec![3.0, 0.0]);
    assert_eq!(g.clip_norm(2.5).unwrap(), 5.0);
    // Scaled by 2.5 / (5 + 1e-6), PyTorch's coefficient.
    let coefficient = 2.5 / (5.0 + 1e-6);
    let clipped: Vec<f64> = g.iter().flat_map(|(_, t)| t.to_vec()).collect();
    assert_eq!(clipped, vec![3.0 * coefficient, 0.0, 4.0 * coefficient]);
    // A non-finite norm is returned and nothing is scaled into NaN.
    let mut bad = gradients(
        &store,
        vec![Some(vec![f64::INFINITY, 1.0]), Some(vec![4.0])],
    );
    assert_eq!(bad.clip_norm(1.0).unwrap(), f64::INFINITY);
    assert_eq!(bad.iter().last().unwrap().1.to_vec(), vec![4.0]);
    assert!(g.clip_norm(-1.0).is_err() && g.clip_norm(f64::NAN).is_err());

    let mut v = gradients(&store, vec![Some(vec![-3.0, 2.0]), Some(vec![f64::NAN])]);
    v.clip_value(1.0).unwrap();
    let values: Vec<f64> = v.iter().flat_map(|(_, t)| t.to_vec()).collect();
    assert_eq!(&values[..2], &[-1.0, 1.0]);
    assert!(values[2].is_nan());
    let mut inside = gradients(&store, vec![Some(vec![-0.5, 0.25]), None]);
    inside.clip_value(1.0).unwrap();
    assert_eq!(inside.iter().next().unwrap().1.to_vec(), vec![-0.5, 0.25]);
    assert!(v.clip_value(-0.5).is_err());
}

/// A small model without batch statistics (so micro-batches and the full batch see the same
/// function).
fn mlp(store: &mut ParamStore<f64>) -> Sequential<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    Sequential::new()
        .with(Dense::new(store, "hidden", 3, 4, Init::HeNormal, &mut rng).unwrap())
        .with(Activation::Tanh)
        .with(Dense::new(store, "output", 4, 2, Init::XavierNormal, &mut rng).unwrap())
}

fn batch() -> (Tensor<f64>, Vec<usize>) {
    let x = Tensor::random_normal([6, 3], 0.0, 1.0, &mut StdRng::seed_from_u64(3)).unwrap();
    (x, vec![0, 1, 1, 0, 1, 0])
}

#[test]
fn accumulated_micro_batch_gradients_equal_the_full_batch_gradient() {
    let mut store = ParamStore::<f64>::new();
    let model = mlp(&mut store);
    let (x, labels) = batch();
    let gradient_of = |store: &mut ParamStore<f64>, rows: std::ops::Range<usize>| {
        let tape = Tape::new();
        let mut context = Context::new(&tape, store, Mode::Train);
        let input = tape.constant(x.narrow(0, rows.start, rows.len()));
        let loss = nn::cross_entropy(model.forward(&mut context, input), &labels[rows]);
        context.gradients(&loss.backward())
    };
    let full = gradient_of(&mut store, 0..6);
    let mut total = gradient_of(&mut store, 0..3);
    total.accumulate(&gradient_of(&mut store, 3..6)).unwrap();
    total.scale(0.5); // two means of 3 rows make the mean of 6
    for ((_, a), (_, b)) in total.iter().zip(full.iter()) {
        for (a, b) in a.to_vec().iter().zip(b.to_vec()) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }
    // Gradients taken after the store grew (a clone is the same model) cover the new entry
    // too: accumulated into older ones, the new entry's gradient is kept.
    let mut small = ParamStore::<f64>::new();
    small.add("w", Role::Weight, Tensor::ones([1, 1])).unwrap();
    let mut older = gradients(&small, vec![Some(vec![1.0])]);
    small.add("b", Role::Bias, Tensor::ones([1])).unwrap();
    older
        .accumulate(&gradients(&small, vec![Some(vec![2.0]), Some(vec![5.0])]))
        .unwrap();
    let sums: Vec<Vec<f64>> = older.iter().map(|(_, t)| t.to_vec()).collect();
    assert_eq!(sums, vec![vec![3.0], vec![5.0]]);
    // Gradients of another store are refused, changing nothing.
    let other = two_parameters();
    let foreign = gradients(&other, vec![Some(vec![1.0, 1.0]), None]);
    let before: Vec<Vec<f64>> = total.iter().map(|(_, t)| t.to_vec()).collect();
    assert!(total.accumulate(&foreign).is_err());
    let after: Vec<Vec<f64>> = total.iter().map(|(_, t)| t.to_vec()).collect();
    assert_eq!(before, after);
}

#[test]
fn frozen_parameters_get_no_gradient_and_do_not_move() {
    let mut store = ParamStore::<f64>::new();
    let model = mlp(&mut store);
    let (x, labels) = batch();
    let forward = |store: &mut ParamStore<f64>| {
        let tape = Tape::new();
        let mut context = Context::new(&tape, store, Mode::Train);
        let logits = model.forward(&mut context, tape.constant(x.clone()));
        let loss = nn::cross_entropy(logits, &labels) + nn::l2_penalty(&context, 0.1);
        (loss.value().item(), context.gradients(&loss.backward()))
    };
    let (loss_before, all) = forward(&mut store);
    let hidden = store.matching("hidden.");
    assert_eq!(hidden.len(), 2);
    for &id in &hidden {
        store.set_trainable(id, false).unwrap();
    }
    let (loss_frozen, some) = forward(&mut store);
    // The same function (and the same loss: the penalty still counts the frozen weight).
    assert_eq!(loss_frozen, loss_before);
    for &id in &hidden {
        assert!(some.get(id).is_none());
    }
    let output = store.find("output.weight").unwrap();
    assert_eq!(
        some.get(output).unwrap().to_vec(),
        all.get(output).unwrap().to_vec()
    );
    let frozen_value = store.value(hidden[0]).clone();
    Sgd::new(0.5).step(&mut store, &some).unwrap();
    assert_eq!(store.value(hidden[0]), &frozen_value);
    // Gradients for a frozen parameter are refused by name.
    let error = Sgd::new(0.5).step(&mut store, &all).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Sgd::step: 'hidden.weight' is not trainable (a buffer, or a frozen parameter) and takes no gradient"
    );
    assert_eq!(store.trainable().count(), 2);
    // Unfrozen, it trains again.
    for &id in &hidden {
        store.set_trainable(id, true).unwrap();
    }
    assert_eq!(store.trainable().count(), 4);
    let (_, again) = forward(&mut store);
    assert_eq!(again.iter().count(), 4);
    assert!(hidden.iter().all(|&id| again.get(id).is_some()));
}

#[test]
fn value_and_gradients_refuses_a_loss_that_is_not_a_scalar() {
    let mut store = ParamStore::<f64>::new();
    let mut rng = StdRng::seed_from_u64(1);
    let model = Sequential::new()
        .with(Dense::new(&mut store, "hidden", 3, 2, Init::HeNormal, &mut rng).unwrap())
        .with(BatchNorm1d::new(&mut store, "bn", 2).unwrap());
    let (x, _) = batch();
    let before = store.snapshot();
    let error = store
        .value_and_gradients(Mode::Train, |context| {
            model.try_forward(context, context.input(&x))
        })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        nn::NnError::Autograd(autograd::AutogradError::NonScalarOutput {
            shape: tensor::Shape::from([6, 2])
        })
        .to_string()
    );
    // Batch norm's running statistics were written by the forward pass and rolled back.
    for (id, name, ..) in store.iter() {
        assert_eq!(Some(store.value(id)), before.value(name), "{name}");
    }
    let (loss, gradients) = store
        .value_and_gradients(Mode::Train, |context| {
            Ok(model
                .try_forward(context, context.input(&x))?
                .square()
                .mean_all())
        })
        .unwrap();
    assert!(loss > 0.0 && gradients.iter().count() == 4);
}

#[test]
fn a_group_runs_the_optimizer_with_its_own_settings() {
    // Each parameter under a group must move exactly as under an optimizer configured with
    // the group's settings alone.
    let values = vec![Some(vec![0.3, -0.7]), Some(vec![0.9])];
    for adamw in [false, true] {
        let config = AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::adam(0.01)
        };
        let group_config = AdamConfig {
            learning_rate: 0.03,
            weight_decay: 0.0,
            ..config
        };
        let mut grouped = two_parameters();
        let b = grouped.find("b").unwrap();
        let group = ParamGroup::new([b])
            .learning_rate_factor(3.0)
            .weight_decay(0.0);
        let mut reference_default = two_parameters();
        let mut reference_group = two_parameters();
        let g = gradients(&grouped, values.clone());
        let (g_default, g_group) = (
            gradients(&reference_default, vec![values[0].clone(), None]),
            gradients(&reference_group, vec![None, values[1].clone()]),
        );
        let mut optimizers: [Box<dyn Optimizer<f64>>; 3] = if adamw {
            [
                Box::new(
                    AdamW::with_config(config)
                        .unwrap()
                        .with_group(group)
                        .unwrap(),
                ),
                Box::new(AdamW::with_config(config).unwrap()),
                Box::new(AdamW::with_config(group_config).unwrap()),
            ]
        } else {
            [
                Box::new(
                    Adam::with_config(config)
                        .unwrap()
                        .with_group(group)
                        .unwrap(),
                ),
                Box::new(Adam::with_config(config).unwrap()),
                Box::new(Adam::with_config(group_config).unwrap()),
            ]
        };
        for _ in 0..3 {
            optimizers[0].step(&mut grouped, &g).unwrap();
            optimizers[1]
                .step(&mut reference_default, &g_default)
                .unwrap();
            optimizers[2].step(&mut reference_group, &g_group).unwrap();
        }
        let value =
            |store: &ParamStore<f64>, name: &str| store.value(store.find(name).unwrap()).to_vec();
        assert_eq!(value(&grouped, "w"), value(&reference_default, "w"));
        assert_eq!(value(&grouped, "b"), value(&reference_group, "b"));
        assert_ne!(value(&grouped, "b"), value(&reference_default, "b"));
    }
    // A schedule moves every group with the optimizer: factor 2 of a rate set to 0.05.
    let mut store = two_parameters();
    let b = store.find("b").unwrap();
    let mut sgd = Sgd::with_config(SgdConfig {
        learning_rate: 0.1,
        ..SgdConfig::default()
    })
    .unwrap()
    .with_group(ParamGroup::new([b]).learning_rate_factor(2.0))
    .unwrap();
    sgd.set_learning_rate(0.05).unwrap();
    let g = gradients(&store, vec![None, Some(vec![1.0])]);
    sgd.step(&mut store, &g).unwrap();
    assert_eq!(store.value(b).to_vec(), vec![1.0 - 0.1]);
}

#[test]
fn invalid_or_foreign_groups_are_refused_by_name() {
    let store = two_parameters();
    let (w, b) = (store.find("w").unwrap(), store.find("b").unwrap());
    let error = Sgd::<f64>::new(0.1)
        .with_group(ParamGroup::new([w, b]))
        .unwrap()
        .with_group(ParamGroup::new([b]))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Sgd::with_group: parameter #1 of store #"),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("is already in group 0"),
        "{error}"
    );
    assert!(
        Sgd::<f64>::new(0.1)
            .with_group(ParamGroup::new([w, w]))
            .is_err()
    );
    assert_eq!(ParamGroup::new([b, w]).members(), &[b, w]);
    assert!(
        Adam::<f64>::new(0.1)
            .with_group(ParamGroup::new([w]).learning_rate_factor(-1.0))
            .is_err()
    );
    assert!(
        AdamW::<f64>::new(0.1)
            .with_group(ParamGroup::new([w]).weight_decay(f64::NAN))
            .is_err()
    );
    // A group of another store's parameters: the step is refused and nothing moves.
    let mut other = two_parameters();
    let before = other.value(other.find("w").unwrap()).clone();
    let mut sgd = Sgd::<f64>::new(0.1)
        .with_group(ParamGroup::new([w]))
        .unwrap();
    let g = gradients(&other, vec![Some(vec![1.0, 1.0]), None]);
    let error = sgd.step(&mut other, &g).unwrap_err().to_string();
    assert!(
        error.contains("a parameter group holds parameter #0 of store #"),
        "{error}"
    );
    assert_eq!(other.value(other.find("w").unwrap()), &before);
}

#[test]
fn a_non_finite_step_is_skipped_and_leaves_everything_as_it_was() {
    let mut store = two_parameters();
    let mut adam = Adam::<f64>::new(0.1);
    let finite = gradients(&store, vec![Some(vec![0.5, -0.5]), Some(vec![1.0])]);
    let infinite = gradients(
        &store,
        vec![Some(vec![0.5, -0.5]), Some(vec![f64::NEG_INFINITY])],
    );
    assert_eq!(
        adam.step_if_finite(&mut store, &finite).unwrap(),
        StepOutcome::Applied
    );
    let (store_before, adam_before) = (store.clone(), adam.clone());
    let outcome = adam.step_if_finite(&mut store, &infinite).unwrap();
    assert_eq!(
        outcome,
        StepOutcome::Skipped {
            parameter: "b".to_string(),
            element: 0,
            value: f64::NEG_INFINITY
        }
    );
    assert_eq!(
        outcome.to_string(),
        "step skipped: the gradient of 'b' is -inf at element 0; nothing was updated"
    );
    assert_eq!(StepOutcome::Applied.to_string(), "step applied");
    for (id, ..) in store.iter() {
        assert_eq!(store.value(id), store_before.value(id));
    }
    // The optimizer's state did not advance: its next step is the one the copy makes.
    let mut twin = store_before.clone();
    adam.step(&mut store, &finite).unwrap();
    let mut adam_twin = adam_before;
    adam_twin.step(&mut twin, &finite).unwrap();
    for (id, ..) in store.iter() {
        assert_eq!(store.value(id), twin.value(id));
    }
    // Gradients of another store are still an error, not a skip.
    let other = two_parameters();
    let foreign = gradients(&other, vec![Some(vec![f64::NAN, 0.0]), None]);
    assert!(adam.step_if_finite(&mut store, &foreign).is_err());
}

#[test]
fn early_stopping_restores_the_best_parameters_buffers_and_optimizer() {
    let mut store = ParamStore::<f64>::new();
    let mut rng = StdRng::seed_from_u64(1);
    let model = Sequential::new()
        .with(Dense::new(&mut store, "hidden", 3, 4, Init::HeNormal, &mut rng).unwrap())
        .with(BatchNorm1d::new(&mut store, "bn", 4).unwrap())
        .with(Activation::Relu)
        .with(Dense::new(&mut store, "output", 4, 2, Init::XavierNormal, &mut rng).unwrap());
    let (x, labels) = batch();
    let mut adam = Adam::<f64>::new(0.05);
    let step = |store: &mut ParamStore<f64>, adam: &mut Adam<f64>| {
        let tape = Tape::new();
        let mut context = Context::new(&tape, store, Mode::Train);
        let loss = nn::cross_entropy(
            model.forward(&mut context, tape.constant(x.clone())),
            &labels,
        );
        let g = context.gradients(&loss.backward());
        adam.step(store, &g).unwrap();
    };
    let mut stopping = EarlyStopping::new(2).with_min_delta(0.01).unwrap();
    // Observed metrics chosen to improve at 0 and 1, then stall (0.895 is within min_delta).
    let metrics = [1.0, 0.9, 0.895, 0.95];
    let mut best_state = None;
    let mut progress = Vec::new();
    for metric in metrics {
        step(&mut store, &mut adam);
        let p = stopping.observe(metric, &store, &adam);
        if p == Progress::Improved {
            best_state = Some((store.clone(), adam.clone()));
        }
        progress.push(p);
    }
    assert_eq!(
        progress,
        [
            Progress::Improved,
            Progress::Improved,
            Progress::NoImprovement { since_best: 1 },
            Progress::Stop
        ]
    );
    assert!(stopping.should_stop());
    assert_eq!(stopping.best(), Some((1, 0.9)));
    stopping.restore_best(&mut store, &mut adam).unwrap();
    let (mut best_store, mut best_adam) = best_state.unwrap();
    for (id, name, ..) in store.iter() {
        assert_eq!(store.value(id), best_store.value(id), "{name}");
    }
    assert_eq!(store.training_step(), best_store.training_step());
    // The optimizer state came back too: the next steps agree bit for bit.
    step(&mut store, &mut adam);
    step(&mut best_store, &mut best_adam);
    for (id, name, ..) in store.iter() {
        assert_eq!(store.value(id), best_store.value(id), "{name}");
    }
    // An equal metric is no improvement (with min_delta 0 too), and the stop comes after
    // `patience` of them, not before.
    let mut strict = EarlyStopping::<f64, ()>::new(2);
    assert_eq!(strict.observe(0.5, &store, &()), Progress::Improved);
    assert_eq!(
        strict.observe(0.5, &store, &()),
        Progress::NoImprovement { since_best: 1 }
    );
    assert!(!strict.should_stop());
    assert_eq!(strict.observe(0.5, &store, &()), Progress::Stop);
    assert!(strict.should_stop());
    // NaN never improves; nothing to restore before the first improvement.
    let mut empty = EarlyStopping::<f64, ()>::new(1);
    assert_eq!(empty.observe(f64::NAN, &store, &()), Progress::Stop);
    assert!(empty.restore_best(&mut store, &mut ()).is_err());
    assert!(
        EarlyStopping::<f64, ()>::new(1)
            .with_min_delta(-1.0)
            .is_err()
    );
}

#[test]
fn a_snapshot_restores_only_its_own_store() {
    let mut store = two_parameters();
    store.set_training_step(7);
    let snapshot = store.snapshot();
    assert_eq!(
        (snapshot.training_step(), snapshot.store()),
        (7, store.id())
    );
    store.set_training_step(9);
    store.restore(&snapshot).unwrap();
    assert_eq!(store.training_step(), 7);
    let mut other = two_parameters();
    let error = other.restore(&snapshot).unwrap_err().to_string();
    assert!(
        error.starts_with("ParamStore::restore: the snapshot was taken from store #"),
        "{error}"
    );
    store.add("extra", Role::Bias, Tensor::zeros([1])).unwrap();
    assert_eq!(
        store.restore(&snapshot).unwrap_err().to_string(),
        "ParamStore::restore: the snapshot has 2 entries, the store 3"
    );
    assert_eq!(snapshot.value("w").unwrap().to_vec(), vec![1.0, 1.0]);
    assert!(snapshot.value("extra").is_none());
}

#[test]
fn evaluation_from_a_shared_store_on_threads_matches_the_exclusive_context() {
    let mut store = ParamStore::<f32>::new();
    let mut rng = StdRng::seed_from_u64(5);
    let model = Sequential::new()
        .with(Dense::new(&mut store, "hidden", 4, 8, Init::HeNormal, &mut rng).unwrap())
        .with(BatchNorm1d::new(&mut store, "bn", 8).unwrap())
        .with(Activation::Relu)
        .with(Dropout::with_keep_probability(0.5, &mut rng).unwrap())
        .with(Dense::new(&mut store, "output", 8, 3, Init::XavierNormal, &mut rng).unwrap());
    let x = Tensor::<f32>::random_normal([16, 4], 0.0, 1.0, &mut rng).unwrap();
    // Train one step so the running statistics are not the initial ones.
    {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        model.forward(&mut context, tape.constant(x.clone()));
    }
    let exclusive = {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        model
            .forward(&mut context, tape.constant(x.clone()))
            .value()
            .to_vec()
    };
    let (shared_store, shared_model) = (&store, &model);
    let results: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| shared_model.predict(shared_store, &x).unwrap().to_vec()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in results {
        assert_eq!(result, exclusive);
    }
    // A model and its store move to a worker.
    let worker = std::thread::spawn(move || model.predict(&store, &x).unwrap().to_vec());
    assert_eq!(worker.join().unwrap(), exclusive);
}

#[test]
#[should_panic(
    expected = "Context::set_buffer: this context shares its store (Context::eval), so it cannot write buffers"
)]
fn a_shared_context_refuses_buffer_writes() {
    let mut store = ParamStore::<f64>::new();
    let running = store
        .add("running", Role::RunningStatistic, Tensor::zeros([1]))
        .unwrap();
    let tape = Tape::new();
    let mut context = Context::eval(&tape, &store);
    context.set_buffer(running, Tensor::ones([1]));
}
