//! The worked examples of the chapter "Improving the way deep neural networks learn", each on a
//! real data set shipped in `examples/data/`.
//!
//! Every example is a module with a `run(&Config) -> Result<Summary>` function. `run` trains
//! what the chapter's claim is about, writes its SVG plots under [`Config::out_dir`], and
//! returns a `Summary` holding the numbers the claim is about (printed as a table by its
//! `Display`). The binary `worked-examples` runs them; `tests/claims.rs` asserts each claim on
//! the numbers of a small run.
//!
//! | module | chapter section | claim shown |
//! |---|---|---|
//! | [`overfitting`] | 1 | a big network trained long on little data: train loss falls, test loss turns up |
//! | [`regularization`] | 2, 3 | L2 and dropout shrink the gap between train and test loss (with [`boundary`]: L2's decision boundary in two dimensions) |
//! | [`initialization`] | 4 | too small / too large weights make activations and gradients vanish or explode; Xavier and He keep them steady |
//! | [`standardization`] | 5 | standardized inputs learn in fewer epochs than raw ones |
//! | [`batch_norm`] | 6 | batch normalization makes a deep network learn in fewer epochs |
//! | [`custom_layer`] | — | a new layer from tape ops, and a custom op with its own backward rule, both gradient-checked |
//!
//! The shared pieces are written once: [`data`] (loading, splitting, augmentation), [`model`]
//! (an MLP builder), [`train`] (the training loop and evaluation), [`plot`] (charts),
//! [`report`] (tables), [`claims`] (each example's claims, counted over seeds) and
//! [`parallel`] (independent runs on all cores).
//!
//! Every example is seeded by [`Config::seed`] (`--seed N` or `EXAMPLES_SEED` on the command
//! line), and `worked-examples --seeds K` counts each claim over K seeds.
#![forbid(unsafe_code)]

pub mod batch_norm;
pub mod boundary;
pub mod claims;
pub mod config;
pub mod custom_layer;
pub mod data;
pub mod initialization;
pub mod model;
pub mod overfitting;
pub mod parallel;
pub mod plot;
pub mod regularization;
pub mod report;
pub mod standardization;
pub mod train;

pub use claims::{Claim, Tally};
pub use config::{Config, Size};

/// The error type of the examples: any error, with its message (they are all reported and
/// end the run).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result alias for the examples.
pub type Result<T> = std::result::Result<T, Error>;

/// The examples by name, in the order `worked-examples` runs them.
pub const EXAMPLES: [&str; 6] = [
    "overfitting",
    "regularization",
    "initialization",
    "standardization",
    "batch_norm",
    "custom_layer",
];

/// `docs/guide.md`, whose code snippets are compiled and run as doctests so they cannot rot.
#[doc = include_str!("../../docs/guide.md")]
#[cfg(doctest)]
pub struct GuideDoctests;

/// What running one example by name produced: its summary as text, and its plot files.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The summary table.
    pub text: String,
    /// The files written (SVG plots; the custom-layer example's Graphviz graph).
    pub plots: Vec<std::path::PathBuf>,
    /// The claims the run checked (see [`claims`]).
    pub claims: Vec<Claim>,
}

/// Runs the example called `name` (one of [`EXAMPLES`]).
pub fn run_example(name: &str, config: &Config) -> Result<Outcome> {
    fn outcome<S: std::fmt::Display>(
        summary: &S,
        plots: &[std::path::PathBuf],
        claims: Vec<Claim>,
    ) -> Outcome {
        Outcome {
            text: summary.to_string(),
            plots: plots.to_vec(),
            claims,
        }
    }
    Ok(match name {
        "overfitting" => {
            let s = overfitting::run(config)?;
            outcome(&s, &s.plots, s.claims())
        }
        "regularization" => {
            let s = regularization::run(config)?;
            outcome(&s, &s.plots, s.claims())
        }
        "initialization" => {
            let s = initialization::run(config)?;
            outcome(&s, &s.plots, s.claims())
        }
        "standardization" => {
            let s = standardization::run(config)?;
            outcome(&s, &s.plots, s.claims())
        }
        "batch_norm" => {
            let s = batch_norm::run(config)?;
            outcome(&s, &s.plots, s.claims())
        }
        "custom_layer" => {
            let s = custom_layer::run(config)?;
            outcome(&s, std::slice::from_ref(&s.graph), s.claims())
        }
        other => {
            return Err(format!(
                "no example called '{other}'; the examples are: {}",
                EXAMPLES.join(", ")
            )
            .into());
        }
    })
}
