//! `worked-examples`: runs the chapter's worked examples and writes their plots.
//!
//! ```text
//! cargo run --release -p examples                      # all of them, plots in out/
//! cargo run --release -p examples -- overfitting       # one (or several) by name
//! cargo run --release -p examples -- --quick --out /tmp/plots
//! cargo run --release -p examples -- --seed 12          # everything random reseeded
//! cargo run --release -p examples -- --seeds 5 --quick  # each claim counted over 5 seeds
//! ```
//!
//! Results (the summary tables) go to standard output and are the same on every run; progress
//! lines, with timings, go to standard error.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use examples::config::{parse_seed, seed_from_env};
use examples::{Config, EXAMPLES, Size, claims, run_example};

const USAGE: &str = "usage: worked-examples [NAME ...] [--quick] [--seed N] [--seeds K] [--out DIR] [--quiet]

Runs the worked examples of the chapter (all of them when no NAME is given) and writes their
SVG plots to DIR (default: out/ at the repository root).

  NAME       overfitting | regularization | initialization | standardization | batch_norm | custom_layer
  --quick    smaller networks and fewer epochs (about 5 s instead of about a minute)
  --seed N   reseed everything random (split, label noise, weights, dropout masks, batch
             order) from N; without it, the environment variable EXAMPLES_SEED, else each
             example's own default seed
  --seeds K  run each example at K seeds (N, N+1, ..., N = --seed or 1) and print each claim
             as \"held in k of K\" with the range of its number; the plots of seed N go to DIR,
             the others to DIR/seed-S
  --out DIR  where the plots go
  --quiet    nothing on standard error (no progress lines, no timings)";

/// What the command line asks for.
enum Command {
    /// Print the usage.
    Help,
    /// Run these examples with this configuration, at `seeds` seeds (1: one run).
    Run {
        names: Vec<String>,
        config: Config,
        seeds: u64,
    },
}

fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut names = Vec::new();
    let mut size = Size::Full;
    let mut out_dir = default_out_dir();
    let mut progress = true;
    let mut seed = None;
    let mut seeds = 1;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => size = Size::Quick,
            "--quiet" => progress = false,
            "--seed" => {
                let text = args.next().ok_or("--seed needs a number")?;
                seed = Some(parse_seed(&text).map_err(|e| format!("--seed: {e}"))?);
            }
            "--seeds" => {
                let text = args.next().ok_or("--seeds needs a count")?;
                seeds = match text.parse::<u64>() {
                    Ok(k @ 1..=1000) => k,
                    _ => return Err(format!("--seeds: '{text}' is not a count from 1 to 1000")),
                };
            }
            "--out" => out_dir = PathBuf::from(args.next().ok_or("--out needs a folder")?),
            "-h" | "--help" => return Ok(Command::Help),
            name if EXAMPLES.contains(&name) => names.push(name.to_string()),
            other => return Err(format!("unknown argument '{other}'\n\n{USAGE}")),
        }
    }
    if names.is_empty() {
        names = EXAMPLES.iter().map(|n| n.to_string()).collect();
    }
    let seed = match seed {
        Some(seed) => Some(seed),
        None => seed_from_env()?,
    };
    // Several seeds start from 1 unless told otherwise.
    let seed = if seeds > 1 {
        Some(seed.unwrap_or(1))
    } else {
        seed
    };
    let config = Config::new(size, out_dir)
        .with_progress(progress)
        .with_seed(seed);
    Ok(Command::Run {
        names,
        config,
        seeds,
    })
}

/// `out/` at the repository root (the parent of this package), whatever the working directory.
fn default_out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("out")
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run {
            names,
            config,
            seeds,
        }) => match run_all(&names, &config, seeds) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the examples in order: their tables to standard output, then the list of plots. With
/// several seeds, each example's table is that of the first seed, followed by its claims
/// counted over all of them.
fn run_all(names: &[String], config: &Config, seeds: u64) -> Result<(), String> {
    // Timings go to standard error only, so that standard output is the same on every run.
    let note = |text: String| {
        if config.progress {
            eprintln!("{text}");
        }
    };
    let started = Instant::now();
    let mut plots = Vec::new();
    for name in names {
        let example_started = Instant::now();
        note(format!("== {name}"));
        let outcome = run_example(name, config).map_err(|e| format!("{name} failed: {e}"))?;
        println!("{}", outcome.text);
        plots.extend(outcome.plots.iter().cloned());
        if seeds > 1 {
            let first = config.seed.expect("several seeds start from a seed");
            let seed_list: Vec<u64> = (0..seeds).map(|i| first.wrapping_add(i)).collect();
            let mut runs = vec![outcome.claims];
            for &seed in &seed_list[1..] {
                note(format!("   {name}, seed {seed}"));
                let at_seed = config
                    .clone()
                    .with_seed(Some(seed))
                    .with_progress(false)
                    .with_out_dir(config.out_dir.join(format!("seed-{seed}")));
                let outcome = run_example(name, &at_seed)
                    .map_err(|e| format!("{name} failed at seed {seed}: {e}"))?;
                runs.push(outcome.claims);
            }
            println!(
                "  Claims over seeds {} to {}:",
                seed_list[0],
                seed_list[seed_list.len() - 1]
            );
            for tally in claims::tally(&seed_list, &runs) {
                println!("    {tally}");
            }
            println!();
        }
        let seconds = example_started.elapsed().as_secs_f64();
        note(format!("   {name} took {seconds:.1} s"));
    }
    if !plots.is_empty() {
        println!("Plots written:");
        for plot in &plots {
            println!("  {}", display_path(plot));
        }
    }
    note(format!(
        "All done in {:.1} s.",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The path without the `examples/..` detour of the default output folder.
fn display_path(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
