//! Every fallible function and layer of `nn`, run in anomaly mode on inputs holding a NaN or an
//! infinity and on empty inputs: each returns (it never panics), an error leaves the store as it
//! was, and a value it returns is finite. A source scan makes a new `pub fn try_` without an
//! entry here fail the suite.

use std::panic::AssertUnwindSafe;

use autograd::{AnomalyMode, Tape, Var};
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, Mode, NnError, ParamStore,
    Sequential,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::Tensor;

/// A call under test: builds its layers in `store`, then applies them to `x` on `tape`.
type Case =
    for<'t> fn(&'t Tape<f64>, &mut ParamStore<f64>, Tensor<f64>) -> Result<Var<'t, f64>, NnError>;

fn rng() -> StdRng {
    StdRng::seed_from_u64(3)
}

fn layer_case<'t>(
    tape: &'t Tape<f64>,
    store: &mut ParamStore<f64>,
    x: Tensor<f64>,
    build: impl FnOnce(&mut ParamStore<f64>, usize) -> Box<dyn Layer<f64>>,
) -> Result<Var<'t, f64>, NnError> {
    let features = x.dims().get(1).copied().unwrap_or(1).max(1);
    let layer = build(store, features);
    let mut context = Context::new(tape, store, Mode::Train);
    let x = tape.constant(x);
    layer.try_forward(&mut context, x)
}

/// Every entry, by the name of the function or layer it covers.
fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("mse", |tape, _, x| {
            let target = tape.constant(x.map(|v| v * 0.5));
            nn::try_mse(tape.leaf(x), target)
        }),
        ("cross_entropy", |tape, _, x| {
            let labels = vec![0; x.dims().first().copied().unwrap_or(0)];
            nn::try_cross_entropy(tape.leaf(x), &labels)
        }),
        ("cross_entropy_per_example", |tape, _, x| {
            let labels = vec![0; x.dims().first().copied().unwrap_or(0)];
            nn::try_cross_entropy_per_example(tape.leaf(x), &labels)
        }),
        ("loss", |tape, _, x| {
            // Every option on: smoothing, weights, an ignored label (the last row).
            let rows = x.dims().first().copied().unwrap_or(0);
            let classes = x.dims().get(1).copied().unwrap_or(0);
            let mut labels = vec![0; rows];
            if let Some(last) = labels.last_mut() {
                *last = 7;
            }
            nn::CrossEntropy::new()
                .label_smoothing(0.1)?
                .class_weights(vec![2.0; classes])?
                .ignore_index(7)
                .try_loss(tape.leaf(x), &labels)
        }),
        ("binary_cross_entropy_with_logits", |tape, _, x| {
            let targets = tape.constant(x.map(|v| if v > 0.0 { 1.0 } else { 0.0 }));
            nn::try_binary_cross_entropy_with_logits(tape.leaf(x), targets)
        }),
        ("leaky_relu", |tape, _, x| {
            nn::try_leaky_relu(tape.leaf(x), 0.1)
        }),
        ("dropout_with_mask", |tape, _, x| {
            let mask = x.map(|_| 1.0);
            nn::try_dropout_with_mask(tape.leaf(x), &mask, 0.5)
        }),
        ("apply", |tape, _, x| {
            Activation::LogSoftmax.try_apply(tape.leaf(x))
        }),
        ("l2_penalty", |tape, store, x| {
            let features = x.dims().get(1).copied().unwrap_or(1).max(1);
            let layer = Dense::new(store, "d", features, 2, Init::HeNormal, &mut rng())?;
            let mut weight = vec![1.0; features * 2];
            weight[0] = f64::INFINITY;
            store.set_value(
                layer.weight(),
                Tensor::from_vec(weight, [features, 2]).unwrap(),
            );
            let context = Context::new(tape, store, Mode::Train);
            nn::try_l2_penalty(&context, 0.1)
        }),
        ("l1_penalty", |tape, store, x| {
            let features = x.dims().get(1).copied().unwrap_or(1).max(1);
            let layer = Dense::new(store, "d", features, 2, Init::HeNormal, &mut rng())?;
            store.set_value(layer.weight(), Tensor::full([features, 2], f64::NAN));
            let context = Context::new(tape, store, Mode::Train);
            nn::try_l1_penalty(&context, 0.1)
        }),
        ("forward_observed", |tape, store, x| {
            layer_case(tape, store, x, |store, features| {
                Box::new(
                    Sequential::new()
                        .with(BatchNorm1d::new(store, "bn", features).unwrap())
                        .with(
                            Dense::new(store, "d", features, 3, Init::HeNormal, &mut rng())
                                .unwrap(),
                        )
                        .with(Activation::Softmax),
                )
            })
        }),
        ("Dense", |tape, store, x| {
            layer_case(tape, store, x, |store, features| {
                Box::new(Dense::new(store, "d", features, 3, Init::HeNormal, &mut rng()).unwrap())
            })
        }),
        ("BatchNorm1d", |tape, store, x| {
            layer_case(tape, store, x, |store, features| {
                Box::new(BatchNorm1d::new(store, "bn", features).unwrap())
            })
        }),
        ("Dropout", |tape, store, x| {
            layer_case(tape, store, x, |_, _| {
                Box::new(Dropout::with_keep_probability(0.5, &mut rng()).unwrap())
            })
        }),
        ("LayerNorm", |tape, store, x| {
            layer_case(tape, store, x, |store, features| {
                Box::new(nn::LayerNorm::new(store, "norm", features).unwrap())
            })
        }),
        ("Embedding", |tape, store, x| {
            layer_case(tape, store, x, |store, _| {
                Box::new(nn::Embedding::new(store, "words", 5, 2, &mut rng()).unwrap())
            })
        }),
        ("Activation", |tape, store, x| {
            layer_case(tape, store, x, |_, _| Box::new(Activation::Tanh))
        }),
    ]
}

/// Inputs of shape [batch, 3] with one non-finite element, and empty ones.
fn inputs() -> Vec<Tensor<f64>> {
    let mut inputs = Vec::new();
    for poison in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        let mut values: Vec<f64> = (0..12).map(|i| i as f64 * 0.3 - 1.5).collect();
        values[4] = poison;
        inputs.push(Tensor::from_vec(values, [4, 3]).unwrap());
    }
    inputs.push(Tensor::zeros([0, 3]));
    inputs.push(Tensor::zeros([4, 0]));
    inputs
}

#[test]
fn every_fallible_call_returns_in_anomaly_mode() {
    for (name, case) in cases() {
        for x in inputs() {
            let shape = x.shape().clone();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let tape = Tape::new();
                tape.enable_anomaly_mode(AnomalyMode::ALL);
                let mut store = ParamStore::new();
                match case(&tape, &mut store, x) {
                    Ok(y) => Ok(y.value().to_vec().iter().all(|v| v.is_finite())),
                    Err(_) => {
                        // A failed forward leaves the running statistics as built.
                        let untouched = store.iter().all(|(_, name, _, value)| {
                            !name.ends_with("num_batches_tracked") || value.item() == 0.0
                        });
                        Err(untouched)
                    }
                }
            }));
            match outcome {
                Err(_) => panic!("{name} panicked in anomaly mode on input {shape}"),
                Ok(Ok(finite)) => assert!(finite, "{name} returned a non-finite value on {shape}"),
                Ok(Err(untouched)) => {
                    assert!(untouched, "{name} failed on {shape} but changed state")
                }
            }
        }
    }
}

#[test]
fn every_public_try_function_has_a_case() {
    let names: Vec<&str> = cases().iter().map(|(n, _)| *n).collect();
    // Not ops on Vars: the transaction helper, and per-sample gradients (a backward pass,
    // tested in tests/per_sample.rs).
    let exempt = ["atomically", "per_sample_gradients"];
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut found = 0;
    let mut folders = vec![std::path::PathBuf::from(folder)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let Some(rest) = line.trim_start().strip_prefix("pub fn try_") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found += 1;
                assert!(
                    names.contains(&name.as_str()) || exempt.contains(&name.as_str()),
                    "`try_{name}` in {} has no case in tests/fallible.rs",
                    path.display()
                );
            }
        }
    }
    assert!(found >= 9, "the scan found {found}");
}
