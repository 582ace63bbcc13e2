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
}

impl Config {
    /// A configuration reading the data shipped with this package.
    pub fn new(size: Size, out_dir: impl Into<PathBuf>) -> Self {
        Config {
            size,
            data_dir: default_data_dir(),
            out_dir: out_dir.into(),
            progress: false,
        }
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
