//! Argument parsing, thread configuration, timing and the JSON report line, with the same
//! conventions as the peers' harness (`shared/bench/peers/rust/src/lib.rs`).

use std::time::Instant;

/// Command-line settings.
pub struct Args {
    /// Threads for matrix products (`MATMUL_NUM_THREADS`).
    pub threads: usize,
    /// Workload ids to run, in order.
    pub only: Vec<String>,
    /// Toy sizes and two repetitions, to check that everything runs.
    pub tiny: bool,
    /// Timed repetitions for every workload instead of its own count (`--reps N`), for
    /// example to show that a training step's memory stays flat over 2,000 steps.
    pub reps: Option<usize>,
}

impl Args {
    /// Parses `--threads N [--only W1,W2] [--tiny]`, making sure `MATMUL_NUM_THREADS` equals N
    /// before the first matrix product.
    pub fn parse() -> Args {
        let mut threads = 0;
        let mut only = "W1,W1b16,W2,W2c,W3,W4,W5,W5t,W6,W7".to_string();
        let mut tiny = false;
        let mut reps = None;
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < argv.len() {
            match argv[i].as_str() {
                "--threads" => {
                    threads = argv
                        .get(i + 1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage("--threads needs a number"));
                    i += 1;
                }
                "--only" => {
                    only = argv
                        .get(i + 1)
                        .cloned()
                        .unwrap_or_else(|| usage("--only needs a list such as W1,W4"));
                    i += 1;
                }
                "--tiny" => tiny = true,
                "--reps" => {
                    reps = Some(
                        argv.get(i + 1)
                            .and_then(|v| v.parse().ok())
                            .filter(|&n: &usize| n >= 1)
                            .unwrap_or_else(|| usage("--reps needs a number >= 1")),
                    );
                    i += 1;
                }
                other => usage(&format!("unknown argument {other}")),
            }
            i += 1;
        }
        if threads == 0 {
            usage("--threads N is required (N >= 1)");
        }
        match std::env::var("MATMUL_NUM_THREADS") {
            Ok(value) if value == threads.to_string() => {}
            Ok(value) => usage(&format!(
                "MATMUL_NUM_THREADS={value} contradicts --threads {threads}"
            )),
            Err(_) => rerun_with_threads(threads),
        }
        let only = only
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Args {
            threads,
            only,
            tiny,
            reps,
        }
    }

    /// `full` normally, `tiny` with `--tiny`.
    pub fn size(&self, full: usize, tiny: usize) -> usize {
        if self.tiny { tiny } else { full }
    }

    /// (warm-up, timed) repetitions.
    pub fn reps(&self, warmup: usize, timed: usize) -> (usize, usize) {
        if self.tiny {
            (1, 2)
        } else {
            (warmup, self.reps.unwrap_or(timed))
        }
    }
}

/// matrixmultiply reads `MATMUL_NUM_THREADS` once, from the environment. Rust 2024 allows
/// changing the environment of a running process only with an unchecked call (other threads may
/// read it), so the binary instead runs itself again with the variable set, and exits with the
/// child's status.
fn rerun_with_threads(threads: usize) -> ! {
    let program = std::env::current_exe()
        .unwrap_or_else(|e| usage(&format!("cannot find this program: {e}")));
    let status = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .env("MATMUL_NUM_THREADS", threads.to_string())
        .status()
        .unwrap_or_else(|e| usage(&format!("cannot run this program again: {e}")));
    std::process::exit(status.code().unwrap_or(1))
}

fn usage(message: &str) -> ! {
    eprintln!(
        "bench: {message}\nusage: bench --threads N [--only W1,W1b16,W2,W2c,W3,W4,W5,W5t,W6,W7] [--tiny] [--reps N]"
    );
    std::process::exit(2)
}

/// Runs `f` `warmup` times untimed, then `reps` times timed; nanoseconds per repetition.
pub fn time_reps(warmup: usize, reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64
        })
        .collect()
}

/// The median (mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

fn min_max(samples: &[f64]) -> (f64, f64) {
    samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Prints the JSON line of a workload timed in nanoseconds, divided by `scale` into `unit`;
/// `extra` is appended verbatim (starting with a comma when non-empty).
pub fn report(id: &str, threads: usize, samples: &[f64], scale: f64, unit: &str, extra: &str) {
    let (min, max) = min_max(samples);
    println!(
        "{{\"peer\": \"ours\", \"id\": \"{id}\", \"threads\": {threads}, \"median\": {}, \"min\": {}, \"max\": {}, \"unit\": \"{unit}\", \"reps\": {}{extra}}}",
        median(samples) / scale,
        min / scale,
        max / scale,
        samples.len()
    );
}

/// Peak resident set size so far, in KiB (VmHWM), and the current one (VmRSS).
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// W1's matrix products per step: forward (784x512, 512x512, 512x10 at batch 128) and, per
/// layer, the weight gradient and (except the first layer) the input gradient.
const W1_MATMUL_GFLOP: f64 = {
    let (batch, sizes) = (128.0, [784.0, 512.0, 512.0, 10.0]);
    let mut flop = 0.0;
    let mut layer = 0;
    while layer < 3 {
        let products = if layer == 0 { 2.0 } else { 3.0 };
        flop += products * 2.0 * batch * sizes[layer] * sizes[layer + 1];
        layer += 1;
    }
    flop / 1e9
};

/// The medians a run collected, for the ratios that need no peer.
#[derive(Default)]
pub struct Medians {
    /// W1, ms per step.
    pub w1_ms: Option<f64>,
    /// W2, ms per step.
    pub w2_ms: Option<f64>,
    /// W5, GFLOP/s.
    pub w5_gflops: Option<f64>,
}

impl Medians {
    /// Prints the peer-free ratios of the targets (one JSON line, id "ratios") when the run
    /// had the workloads they need: W2 / W1, and W1 / its matmul floor (W1's matrix-product
    /// work at this run's W5 rate).
    pub fn report(&self, threads: usize, tiny: bool) {
        let mut fields = Vec::new();
        if let (Some(w1), Some(w2)) = (self.w1_ms, self.w2_ms) {
            fields.push(format!("\"w2_over_w1\": {:.3}", w2 / w1));
        }
        if let (Some(w1), Some(rate), false) = (self.w1_ms, self.w5_gflops, tiny) {
            let floor_ms = W1_MATMUL_GFLOP / rate * 1e3;
            fields.push(format!(
                "\"w1_matmul_floor_ms\": {floor_ms:.3}, \"w1_over_floor\": {:.3}",
                w1 / floor_ms
            ));
        }
        if !fields.is_empty() {
            println!(
                "{{\"peer\": \"ours\", \"id\": \"ratios\", \"threads\": {threads}, {}}}",
                fields.join(", ")
            );
        }
    }
}
