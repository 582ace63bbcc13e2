//! `worked-examples`: runs the chapter's worked examples and writes their plots.
//!
//! ```text
//! cargo run --release -p examples                      # all of them, plots in out/
//! cargo run --release -p examples -- overfitting       # one (or several) by name
//! cargo run --release -p examples -- --quick --out /tmp/plots
//! ```
//!
//! Results (the summary tables) go to standard output and are the same on every run; progress
//! lines, with timings, go to standard error.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use examples::{Config, EXAMPLES, Size, run_example};

const USAGE: &str = "usage: worked-examples [NAME ...] [--quick] [--out DIR] [--quiet]

Runs the worked examples of the chapter (all of them when no NAME is given) and writes their
SVG plots to DIR (default: out/ at the repository root).

  NAME       overfitting | regularization | initialization | standardization | batch_norm | custom_layer
  --quick    smaller networks and fewer epochs (a few seconds instead of about 25)
  --out DIR  where the plots go
  --quiet    nothing on standard error (no progress lines, no timings)";

/// What the command line asks for.
enum Command {
    /// Print the usage.
    Help,
    /// Run these examples with this configuration.
    Run { names: Vec<String>, config: Config },
}

fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut names = Vec::new();
    let mut size = Size::Full;
    let mut out_dir = default_out_dir();
    let mut progress = true;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => size = Size::Quick,
            "--quiet" => progress = false,
            "--out" => out_dir = PathBuf::from(args.next().ok_or("--out needs a folder")?),
            "-h" | "--help" => return Ok(Command::Help),
            name if EXAMPLES.contains(&name) => names.push(name.to_string()),
            other => return Err(format!("unknown argument '{other}'\n\n{USAGE}")),
        }
    }
    if names.is_empty() {
        names = EXAMPLES.iter().map(|n| n.to_string()).collect();
    }
    let config = Config::new(size, out_dir).with_progress(progress);
    Ok(Command::Run { names, config })
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
        Ok(Command::Run { names, config }) => match run_all(&names, &config) {
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

/// Runs the examples in order: their tables to standard output, then the list of plots.
fn run_all(names: &[String], config: &Config) -> Result<(), String> {
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
        plots.extend(outcome.plots);
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
