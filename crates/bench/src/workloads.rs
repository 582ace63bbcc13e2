//! The workloads W1-W6 (and W5t), exactly as `shared/bench/WORKLOADS.md` specifies them.

use std::hint::black_box;

use autograd::Tape;
use nn::optim::{Adam, Optimizer, Sgd};
use nn::{
    Activation, BatchNorm1d, Checkpoint, Context, Dense, Dropout, Init, Layer, Mode, ParamStore,
    Sequential,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tensor::Tensor;

use crate::harness::{Args, median, memory_kib, report, time_reps};

/// An MLP training workload (W1, W2, W3).
pub struct Mlp {
    id: &'static str,
    sizes: [usize; 4],
    batch: usize,
    warmup: usize,
    reps: usize,
    /// W2: Dense -> BatchNorm1d -> ReLU -> Dropout(0.5) blocks, an L2 penalty and Adam.
    regularized: bool,
    /// W2c: each hidden block checkpointed (recomputed in the backward pass).
    checkpointed: bool,
}

impl Mlp {
    /// MLP 784-512-512-10, batch 128, SGD lr 0.01.
    pub fn w1() -> Mlp {
        Mlp {
            id: "W1",
            sizes: [784, 512, 512, 10],
            batch: 128,
            warmup: 10,
            reps: 50,
            regularized: false,
            checkpointed: false,
        }
    }

    /// W1 with batch norm, dropout, an L2 penalty of 1e-4 and Adam lr 1e-3.
    pub fn w2() -> Mlp {
        Mlp {
            regularized: true,
            id: "W2",
            ..Mlp::w1()
        }
    }

    /// W2 with each hidden block (Dense, BatchNorm1d, ReLU, Dropout) checkpointed: the same
    /// step, for its peak memory and time (not a workload of `WORKLOADS.md`).
    pub fn w2c() -> Mlp {
        Mlp {
            checkpointed: true,
            id: "W2c",
            ..Mlp::w2()
        }
    }

    /// W1 at batch 16 (the small-batch figure: per-op bookkeeping shows).
    pub fn w1_batch16() -> Mlp {
        Mlp {
            id: "W1b16",
            batch: 16,
            ..Mlp::w1()
        }
    }

    /// MLP 64-64-64-10, batch 16, SGD lr 0.01.
    pub fn w3() -> Mlp {
        Mlp {
            id: "W3",
            sizes: [64, 64, 64, 10],
            batch: 16,
            warmup: 100,
            reps: 2000,
            regularized: false,
            checkpointed: false,
        }
    }
}

fn build(spec: &Mlp, sizes: &[usize], store: &mut ParamStore<f32>) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut model = Sequential::new();
    let layers = sizes.len() - 1;
    for i in 0..layers {
        let name = if i + 1 == layers {
            "output".to_string()
        } else {
            format!("hidden{}", i + 1)
        };
        let dense = Dense::new(
            store,
            &name,
            sizes[i],
            sizes[i + 1],
            Init::HeNormal,
            &mut rng,
        )
        .expect("fresh names");
        if i + 1 == layers {
            model.push(dense);
            continue;
        }
        // W1 and W2 keep their flat list of layers; W2c groups each hidden block to
        // checkpoint it.
        let mut block = Sequential::new();
        let target = if spec.checkpointed {
            &mut block
        } else {
            &mut model
        };
        target.push(dense);
        if spec.regularized {
            target.push(
                BatchNorm1d::new(store, &format!("bn{}", i + 1), sizes[i + 1])
                    .expect("fresh names"),
            );
        }
        target.push(Activation::Relu);
        if spec.regularized {
            target.push(Dropout::with_drop_probability(0.5, &mut rng).expect("valid probability"));
        }
        if spec.checkpointed {
            model.push(Checkpoint::new(block));
        }
    }
    model
}

/// W1, W2, W3: one full training step per repetition; returns the median in milliseconds. Reports the process's peak resident
/// memory at the end and its resident memory at the start (run one workload per process, with
/// `--only`, to read a workload's own peak).
pub fn mlp(args: &Args, spec: Mlp) -> f64 {
    let (_, startup_rss) = memory_kib();
    let sizes = if args.tiny {
        vec![8, 6, 6, 3]
    } else {
        spec.sizes.to_vec()
    };
    let batch = args.size(spec.batch, 4);
    let classes = sizes[sizes.len() - 1];
    let mut rng = StdRng::seed_from_u64(1234);
    let x = Tensor::<f32>::random_normal([batch, sizes[0]], 0.0, 1.0, &mut rng)
        .expect("valid parameters");
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..classes)).collect();
    let mut store = ParamStore::new();
    let model = build(&spec, &sizes, &mut store);
    let mut optimizer: Box<dyn Optimizer<f32>> = if spec.regularized {
        Box::new(Adam::new(1e-3))
    } else {
        Box::new(Sgd::new(0.01))
    };

    let evaluate = |store: &mut ParamStore<f32>| {
        let tape = Tape::new();
        tape.no_grad(|| {
            let mut context = Context::new(&tape, store, Mode::Eval);
            nn::cross_entropy(
                model.forward(&mut context, tape.constant(x.clone())),
                &labels,
            )
            .value()
            .item()
        })
    };
    let before = evaluate(&mut store);
    // What the tape holds once the loss is computed (what checkpointing reduces), on a copy of
    // the store so the timed steps are unchanged.
    let tape_bytes = {
        let mut copy = store.clone();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut copy, Mode::Train);
        let logits = model.forward(&mut context, tape.constant(x.clone()));
        let _loss = nn::cross_entropy(logits, &labels);
        tape.summary(None).total_bytes()
    };
    let (warmup, reps) = args.reps(spec.warmup, spec.reps);
    let samples = time_reps(warmup, reps, || {
        let gradients = {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Train);
            let logits = model.forward(&mut context, tape.constant(x.clone()));
            let mut loss = nn::cross_entropy(logits, &labels);
            if spec.regularized {
                loss = loss + nn::l2_penalty(&context, 1e-4);
            }
            context.gradients(&loss.backward())
        };
        optimizer
            .step(&mut store, &gradients)
            .expect("gradients of this store");
    });
    eprintln!(
        "{} ours: cross-entropy {before} -> {} after {} steps",
        spec.id,
        evaluate(&mut store),
        warmup + reps
    );
    let (peak, _) = memory_kib();
    let extra = format!(
        ", \"peak_rss_mib\": {:.1}, \"startup_rss_mib\": {:.1}, \"steps\": {}, \"tape_mib_after_forward\": {:.2}",
        peak as f64 / 1024.0,
        startup_rss as f64 / 1024.0,
        warmup + reps,
        tape_bytes as f64 / (1024.0 * 1024.0)
    );
    if spec.id == "W3" {
        report(spec.id, args.threads, &samples, 1e3, "us/step", &extra);
    } else {
        report(spec.id, args.threads, &samples, 1e6, "ms/step", &extra);
    }
    median(&samples) / 1e6
}

/// W4: 1000 rounds of y = tanh(y * 1.01 + 0.1) on 16 elements, then backward.
pub fn op_chain(args: &Args) {
    let rounds = args.size(1000, 10);
    let x_value = Tensor::<f32>::random_normal([16], 0.0, 1.0, &mut StdRng::seed_from_u64(1234))
        .expect("valid parameters");
    let (warmup, reps) = args.reps(5, 50);
    let samples = time_reps(warmup, reps, || {
        let tape = Tape::new();
        let x = tape.leaf(x_value.clone());
        let mut y = x;
        for _ in 0..rounds {
            y = (y * 1.01 + 0.1).tanh();
        }
        let gradients = y.sum_all().backward();
        assert!(gradients.get(x).is_some());
    });
    let ops = (3 * rounds) as f64;
    let extra = format!(
        ", \"ns_per_op_median\": {}, \"ns_per_op_min\": {}",
        median(&samples) / ops,
        samples.iter().cloned().fold(f64::INFINITY, f64::min) / ops
    );
    report("W4", args.threads, &samples, 1e3, "us", &extra);
}

/// W5 and W5t: a 1024 x 1024 product through `Tensor::matmul`, the left operand a transposed
/// view for W5t (no copy); returns the median rate in GFLOP/s.
pub fn matmul(args: &Args, transposed: bool) -> f64 {
    let n = args.size(1024, 32);
    let mut rng = StdRng::seed_from_u64(1234);
    let a = Tensor::<f32>::random_normal([n, n], 0.0, 1.0, &mut rng).expect("valid parameters");
    let b = Tensor::<f32>::random_normal([n, n], 0.0, 1.0, &mut rng).expect("valid parameters");
    let a = if transposed { a.t() } else { a };
    let (warmup, reps) = args.reps(3, 20);
    let samples = time_reps(warmup, reps, || {
        black_box(a.matmul(&b));
    });
    let flop = 2.0 * (n as f64).powi(3);
    let (fastest, slowest) = samples
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let id = if transposed { "W5t" } else { "W5" };
    println!(
        "{{\"peer\": \"ours\", \"id\": \"{id}\", \"threads\": {}, \"median\": {}, \"min\": {}, \"max\": {}, \"unit\": \"GFLOP/s\", \"median_ms\": {}, \"reps\": {}}}",
        args.threads,
        flop / median(&samples),
        flop / slowest,
        flop / fastest,
        median(&samples) / 1e6,
        samples.len()
    );
    flop / median(&samples)
}

/// W6: a 100,000-deep chain y = y * 1.0001 + 0.0001 on one element, then backward, on the main
/// thread with the default stack; reports peak memory above the start-up baseline.
pub fn deep_chain(args: &Args) {
    let rounds = args.size(100_000, 100);
    let (_, startup_rss) = memory_kib();
    let (warmup, reps) = args.reps(1, 5);
    let samples = time_reps(warmup, reps, || {
        let tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(vec![1.0_f32], [1]).expect("one value"));
        let mut y = x;
        for _ in 0..rounds {
            y = y * 1.0001 + 0.0001;
        }
        let gradients = y.sum_all().backward();
        assert!(gradients.get(x).is_some());
    });
    let (peak, _) = memory_kib();
    let extra = format!(
        ", \"vmhwm_kib\": {peak}, \"startup_rss_kib\": {startup_rss}, \"above_startup_mib\": {:.1}",
        peak.saturating_sub(startup_rss) as f64 / 1024.0
    );
    report("W6", args.threads, &samples, 1e6, "ms", &extra);
}

/// W7: per-sample gradients of W1's MLP at batch 128: one forward pass, per-example
/// cross-entropy, the per-sample gradients of every parameter in factored form, each example's
/// gradient norm and differentially private SGD's clipped sum (what a DP-SGD step needs before
/// its noise). Timed interleaved with W1 steps on the same model, so `ratio_to_w1` is a
/// same-session ratio; also reports materialising every parameter's `[128, ...]` stack and the
/// loop of 128 single-example backward passes it replaces (fewer repetitions: it is slow).
pub fn per_sample(args: &Args) {
    let spec = Mlp::w1();
    let sizes = if args.tiny {
        vec![8, 6, 6, 3]
    } else {
        spec.sizes.to_vec()
    };
    let batch = args.size(spec.batch, 4);
    let classes = sizes[sizes.len() - 1];
    let mut rng = StdRng::seed_from_u64(1234);
    let x = Tensor::<f32>::random_normal([batch, sizes[0]], 0.0, 1.0, &mut rng)
        .expect("valid parameters");
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..classes)).collect();
    let mut store = ParamStore::new();
    let model = build(&spec, &sizes, &mut store);
    let mut optimizer = Sgd::new(0.01);
    let (warmup, reps) = args.reps(spec.warmup, spec.reps);
    let mut w1_samples = Vec::with_capacity(reps);
    let mut w7_samples = Vec::with_capacity(reps);
    for rep in 0..warmup + reps {
        let w1 = time_reps(0, 1, || {
            let gradients = {
                let tape = Tape::new();
                let mut context = Context::new(&tape, &mut store, Mode::Train);
                let logits = model.forward(&mut context, tape.constant(x.clone()));
                context.gradients(&nn::cross_entropy(logits, &labels).backward())
            };
            optimizer
                .step(&mut store, &gradients)
                .expect("gradients of this store");
        });
        let w7 = time_reps(0, 1, || {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Train);
            let logits = model.forward(&mut context, tape.constant(x.clone()));
            let losses = nn::cross_entropy_per_example(logits, &labels);
            let per_sample = context
                .try_per_sample_gradients(losses)
                .expect("the MLP is per-example");
            black_box(per_sample.norms());
            black_box(per_sample.clipped_sum(1.0));
        });
        if rep >= warmup {
            w1_samples.extend(w1);
            w7_samples.extend(w7);
        }
    }
    // Materialising every parameter's stack, and the loop it replaces.
    let few = args.reps(1, 5).1;
    let materialised = time_reps(1, few, || {
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let logits = model.forward(&mut context, tape.constant(x.clone()));
        let losses = nn::cross_entropy_per_example(logits, &labels);
        let per_sample = context
            .try_per_sample_gradients(losses)
            .expect("the MLP is per-example");
        for id in context.store().trainable() {
            black_box(per_sample.get(id).expect("a trainable parameter"));
        }
    });
    let looped = time_reps(0, args.reps(1, 2).1, || {
        for b in 0..batch {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, Mode::Eval);
            let row = tape.constant(x.narrow(0, b, 1).contiguous());
            let loss = nn::cross_entropy(model.forward(&mut context, row), &labels[b..=b]);
            black_box(context.gradients(&loss.backward()));
        }
    });
    let w1 = median(&w1_samples);
    let extra = format!(
        ", \"w1_median_ms\": {}, \"ratio_to_w1\": {:.3}, \"materialised_ms\": {}, \"loop_of_backward_ms\": {}, \"loop_ratio_to_w1\": {:.1}",
        w1 / 1e6,
        median(&w7_samples) / w1,
        median(&materialised) / 1e6,
        median(&looped) / 1e6,
        median(&looped) / w1
    );
    report("W7", args.threads, &w7_samples, 1e6, "ms/step", &extra);
}
