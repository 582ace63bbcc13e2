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
        let mut only = "W1,W2,W2c,W3,W4,W5,W5t,W6,W7".to_string();
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
        "bench: {message}\nusage: bench --threads N [--only W1,W2,W2c,W3,W4,W5,W5t,W6,W7] [--tiny] [--reps N]"
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
