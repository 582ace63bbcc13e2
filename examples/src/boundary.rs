//! A picture of what L2 does, in two dimensions: a wide network trained on few breast-cancer
//! biopsies described by two features only (mean radius and mean texture, standardized), with
//! and without an L2 penalty. Its decision boundary, drawn over the plane with the training
//! samples on top, is the model's complexity made visible (as micrograd's demo draws it): the
//! unregularized network bends its boundary around individual samples, the penalized one keeps
//! it smooth.
//!
//! The boundary's length is measured on the grid the picture is drawn from: the fraction of
//! neighbouring grid cells (right and above) that the network puts in different classes.

use std::path::PathBuf;

use nn::{Activation, Dataset, Init, Layer};

use crate::data::{Split, load_breast_cancer, split, standardize};
use crate::model::{Mlp, MlpSpec};
use crate::plot::{Chart, Legend, Series, write_svg};
use crate::train::{History, Objective, Progress, TrainSpec, predict, train};
use crate::{Config, Result, Size, parallel};

/// The sizes of the contrast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Training samples (the rest of the 569 are the test set).
    pub train_count: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// lambda of the penalized network.
    pub lambda: f64,
    /// Cells per side of the grid the boundary is drawn and measured on.
    pub grid: usize,
    /// Seeds the split, the weights and the batch order.
    pub seed: u64,
}

impl Settings {
    /// The settings for a run size, at `seed`.
    pub fn for_size(size: Size, seed: u64) -> Self {
        match size {
            Size::Full => Settings {
                train_count: 60,
                width: 128,
                depth: 3,
                epochs: 1500,
                lambda: 1e-2,
                grid: 120,
                seed,
            },
            Size::Quick => Settings {
                train_count: 60,
                width: 32,
                depth: 3,
                epochs: 400,
                lambda: 1e-2,
                grid: 40,
                seed,
            },
        }
    }
}

/// The two features the plane shows: mean radius and mean texture (columns 0 and 1).
pub const FEATURES: [usize; 2] = [0, 1];

/// One of the two networks.
#[derive(Clone, Debug)]
pub struct BoundaryRun {
    /// 0 or the contrast's lambda.
    pub lambda: f64,
    /// Every epoch.
    pub history: History,
    /// The predicted class of each grid cell, rows from the bottom.
    pub cells: Vec<Vec<usize>>,
    /// Fraction of neighbouring cell pairs with different classes: the boundary's length.
    pub boundary_fraction: f64,
}

/// Both networks, and what the picture needs.
#[derive(Clone, Debug)]
pub struct Contrast {
    /// The sizes used.
    pub settings: Settings,
    /// The plane's extent in standardized units: (x range, y range).
    pub extent: ((f64, f64), (f64, f64)),
    /// The training samples, standardized: (x, y, class).
    pub train_points: Vec<(f64, f64, usize)>,
    /// Without L2.
    pub plain: BoundaryRun,
    /// With L2.
    pub l2: BoundaryRun,
}

impl Contrast {
    /// The penalized boundary's length over the unpenalized one's.
    pub fn boundary_ratio(&self) -> f64 {
        self.l2.boundary_fraction / self.plain.boundary_fraction
    }
}

/// The breast-cancer biopsies with two features only.
fn two_features(data: &Dataset<f32>) -> Result<Dataset<f32>> {
    let all = data.features().to_vec();
    let columns = data.feature_count();
    let picked: Vec<f32> = (0..data.len())
        .flat_map(|i| FEATURES.map(|c| all[i * columns + c]))
        .collect();
    Ok(data.with_features(tensor::Tensor::from_vec(picked, [data.len(), 2])?)?)
}

/// Trains both networks (on all cores) and measures their boundaries.
pub fn run(config: &Config, size: Size, seed: u64) -> Result<Contrast> {
    let settings = Settings::for_size(size, seed);
    let data = two_features(&load_breast_cancer(&config.data_dir)?)?;
    let split = standardize(&split(&data, settings.train_count, seed)?)?;
    let extent = ((-3.0, 3.0), (-3.0, 3.0));
    let runs = parallel::map(vec![0.0, settings.lambda], |lambda| {
        train_one(config, &settings, &split, lambda, extent)
    })?;
    let mut runs = runs.into_iter();
    let train_features = split.train.features().to_vec();
    let train_points = split
        .train
        .labels()
        .iter()
        .enumerate()
        .map(|(i, &class)| {
            (
                f64::from(train_features[2 * i]),
                f64::from(train_features[2 * i + 1]),
                class,
            )
        })
        .collect();
    Ok(Contrast {
        settings,
        extent,
        train_points,
        plain: runs.next().expect("two runs"),
        l2: runs.next().expect("two runs"),
    })
}

fn train_one(
    config: &Config,
    settings: &Settings,
    split: &Split,
    lambda: f64,
    extent: ((f64, f64), (f64, f64)),
) -> Result<BoundaryRun> {
    let spec = MlpSpec::uniform(
        2,
        settings.width,
        settings.depth,
        1,
        Activation::Relu,
        Init::HeNormal,
    );
    let mut model = spec.build(settings.seed)?;
    let training = TrainSpec {
        epochs: settings.epochs,
        batch_size: 20,
        learning_rate: 0.05,
        momentum: 0.9,
        l2: lambda,
        objective: Objective::Binary,
        seed: settings.seed,
    };
    let label = format!("boundary, L2 lambda={lambda}");
    let progress = Progress::new(label, config.progress, settings.epochs, 1);
    let history = train(&mut model, split, &training, &progress)?;
    if let Some(epoch) = history.diverged_at {
        return Err(format!("boundary: lambda {lambda} diverged in epoch {epoch}").into());
    }
    let cells = classify_grid(&mut model, settings.grid, extent)?;
    let boundary_fraction = boundary_fraction(&cells);
    Ok(BoundaryRun {
        lambda,
        history,
        cells,
        boundary_fraction,
    })
}

/// The class of the centre of each cell of a `grid x grid` partition of `extent`, rows from
/// the bottom.
fn classify_grid(
    model: &mut Mlp,
    grid: usize,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
) -> Result<Vec<Vec<usize>>> {
    let centre = |i: usize, lo: f64, hi: f64| lo + (i as f64 + 0.5) * (hi - lo) / grid as f64;
    let mut points = Vec::with_capacity(2 * grid * grid);
    for row in 0..grid {
        for column in 0..grid {
            points.push(centre(column, x0, x1) as f32);
            points.push(centre(row, y0, y1) as f32);
        }
    }
    let plane = tensor::Tensor::from_vec(points, [grid * grid, 2])?;
    let logits = model.network.predict(&model.store, &plane)?;
    let classes = predict(&logits, Objective::Binary);
    Ok(classes.chunks(grid).map(<[usize]>::to_vec).collect())
}

/// Fraction of horizontally or vertically neighbouring cells in different classes.
pub fn boundary_fraction(cells: &[Vec<usize>]) -> f64 {
    let (mut different, mut pairs) = (0usize, 0usize);
    for (r, row) in cells.iter().enumerate() {
        for (c, &class) in row.iter().enumerate() {
            if let Some(&right) = row.get(c + 1) {
                different += usize::from(right != class);
                pairs += 1;
            }
            if let Some(above) = cells.get(r + 1) {
                different += usize::from(above[c] != class);
                pairs += 1;
            }
        }
    }
    different as f64 / pairs.max(1) as f64
}

/// The two decision boundaries side by side.
pub fn plot(config: &Config, contrast: &Contrast) -> Result<PathBuf> {
    let path = config.output_file("regularization_boundary.svg")?;
    let (x_range, y_range) = contrast.extent;
    let charts: Vec<Chart> = [&contrast.plain, &contrast.l2]
        .into_iter()
        .map(|run| {
            let title = if run.lambda > 0.0 {
                format!(
                    "L2 lambda={}: boundary {:.1}% of cell edges",
                    run.lambda,
                    100.0 * run.boundary_fraction
                )
            } else {
                format!(
                    "No penalty: boundary {:.1}% of cell edges",
                    100.0 * run.boundary_fraction
                )
            };
            let mut chart = Chart::new(
                title,
                "mean radius (standardized)",
                "mean texture (standardized)",
            )
            .heatmap(x_range, y_range, run.cells.clone())
            .legend(Legend::UpperRight);
            for (class, name) in [(0, "malignant (train)"), (1, "benign (train)")] {
                let points = contrast
                    .train_points
                    .iter()
                    .filter(|p| p.2 == class)
                    .map(|p| (p.0, p.1))
                    .collect();
                chart = chart.with(Series::scatter(name, points, class));
            }
            chart
        })
        .collect();
    write_svg(&path, &charts)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_boundary_fraction_counts_differing_neighbours() {
        // One class everywhere: no boundary. A vertical split of a 2x2 grid: 2 of the 4
        // neighbouring pairs differ.
        assert_eq!(super::boundary_fraction(&[vec![1, 1], vec![1, 1]]), 0.0);
        assert_eq!(super::boundary_fraction(&[vec![0, 1], vec![0, 1]]), 0.5);
        assert_eq!(super::boundary_fraction(&[vec![0, 1], vec![1, 0]]), 1.0);
    }
}
