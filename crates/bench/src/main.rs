//! The benchmark binary: the workloads of `shared/bench/WORKLOADS.md`, timed with the same
//! conventions as the peers' harness, printing one JSON line per workload in their format.
//!
//! ```text
//! cargo run --release -p bench -- --threads 1 [--only W1,W4] [--tiny]
//! ```
//!
//! Conventions (the peers'): inputs and initial parameters are generated once from a fixed seed
//! before timing; each timed repetition builds the graph, runs backward, applies the update
//! (W1-W3) and drops everything it made, so teardown is timed too; median, min and max are over
//! the timed repetitions. `--tiny` runs every workload at toy sizes with two repetitions, only
//! to prove the binary works (CI); its numbers mean nothing.
#![forbid(unsafe_code)]

mod harness;
mod workloads;

fn main() {
    let args = harness::Args::parse();
    let mut medians = harness::Medians::default();
    for id in &args.only {
        match id.as_str() {
            "W1" => medians.w1_ms = Some(workloads::mlp(&args, workloads::Mlp::w1())),
            "W1b16" => {
                workloads::mlp(&args, workloads::Mlp::w1_batch16());
            }
            "W2" => medians.w2_ms = Some(workloads::mlp(&args, workloads::Mlp::w2())),
            "W2c" => {
                workloads::mlp(&args, workloads::Mlp::w2c());
            }
            "W3" => {
                workloads::mlp(&args, workloads::Mlp::w3());
            }
            "W4" => workloads::op_chain(&args),
            "W5" => medians.w5_gflops = Some(workloads::matmul(&args, false)),
            "W5t" => {
                workloads::matmul(&args, true);
            }
            "W6" => workloads::deep_chain(&args),
            "W7" => workloads::per_sample(&args),
            other => {
                eprintln!("unknown workload {other}; known: W1 W1b16 W2 W2c W3 W4 W5 W5t W6 W7");
                std::process::exit(2);
            }
        }
    }
    medians.report(args.threads, args.tiny);
}
