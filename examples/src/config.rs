//! What every example is told: how big a run to make, where the data is, where the plots go,
//! and whether to print progress.

use std::path::{Path, PathBuf};

/// How big a run is. Each example maps this to its own epochs, widths and sweep sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The sizes that make the plots in `docs/guide.md` (the whole run takes about a minute in
    /// release mode on two cores).
    Full,
    /// Smaller networks, fewer epochs and settings: seconds per example. The claims tests run
    /// this size.
    Quick,
}

/// Settings shared by all examples.
#[derive(Clone, Debug)]
pub struct Config {
    /// Full or quick.
    pub size: Size,
    /// The folder with `digits.csv.gz` and `breast_cancer.csv`.
    pub data_dir: PathBuf,
    /// The folder the SVG plots are written to (created if missing).
    pub out_dir: PathBuf,
    /// Print a progress line per epoch or per setting (to standard error, with timings).
    pub progress: bool,
    /// The seed everything random is drawn from (the split, the label noise, the weights, the
    /// dropout masks, the batch order); `None` for each example's own default.
    pub seed: Option<u64>,
}

impl Config {
    /// A configuration reading the data shipped with this package.
    pub fn new(size: Size, out_dir: impl Into<PathBuf>) -> Self {
        Config {
            size,
            data_dir: default_data_dir(),
            out_dir: out_dir.into(),
            progress: false,
            seed: None,
        }
    }

    /// The same configuration with every example seeded by `seed` (`None`: their defaults).
    pub fn with_seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// The same configuration writing its plots to `out_dir`.
    pub fn with_out_dir(mut self, out_dir: impl Into<PathBuf>) -> Self {
        self.out_dir = out_dir.into();
        self
    }

    /// The seed an example uses: the one asked for, or the example's `default`.
    pub fn seed_or(&self, default: u64) -> u64 {
        self.seed.unwrap_or(default)
    }

    /// The same configuration, printing progress or not.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// True for [`Size::Quick`].
    pub fn is_quick(&self) -> bool {
        self.size == Size::Quick
    }

    /// The path of an output file, creating the output folder if needed.
    pub fn output_file(&self, name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.out_dir)?;
        Ok(self.out_dir.join(name))
    }
}

/// `examples/data/` of this package: found from a fresh clone whatever the working directory.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// The name of the environment variable that seeds the examples (and the claim tests) when no
/// `--seed` is given.
pub const SEED_VARIABLE: &str = "EXAMPLES_SEED";

/// The seed in [`SEED_VARIABLE`], if it is set: `Ok(None)` when unset or empty, an error naming
/// the variable and its value when it is not a whole number.
pub fn seed_from_env() -> Result<Option<u64>, String> {
    match std::env::var(SEED_VARIABLE) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => parse_seed(&text)
            .map(Some)
            .map_err(|e| format!("{SEED_VARIABLE}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{SEED_VARIABLE} is not valid unicode"))
        }
    }
}

/// A seed written as a whole number (0 to 2^64 - 1).
pub fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a seed (a whole number from 0 to 2^64 - 1)"))
}
