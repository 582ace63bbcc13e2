//! Loading the two data sets, splitting them into train and test, and standardizing.

use std::path::Path;

use nn::{CsvOptions, Dataset, Standardizer};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::Result;

/// A training set and a test set drawn from the same data.
#[derive(Clone, Debug)]
pub struct Split {
    /// The samples the model learns from.
    pub train: Dataset<f32>,
    /// The held-out samples that measure generalisation.
    pub test: Dataset<f32>,
}

/// The handwritten digits: 1797 samples of 64 pixels (values 0..16), labels 0..9.
pub fn load_digits(data_dir: &Path) -> Result<Dataset<f32>> {
    // gzip-compressed (nn::load_csv decompresses it); no header; the label is the last column.
    Ok(nn::load_csv(
        data_dir.join("digits.csv.gz"),
        CsvOptions::default(),
    )?)
}

/// Breast Cancer Wisconsin: 569 samples of 30 features, labels 0 (malignant) and 1 (benign).
pub fn load_breast_cancer(data_dir: &Path) -> Result<Dataset<f32>> {
    // The first line is scikit-learn's header `569,30,malignant,benign`, not data.
    let options = CsvOptions {
        header: true,
        ..CsvOptions::default()
    };
    Ok(nn::load_csv(data_dir.join("breast_cancer.csv"), options)?)
}

/// A seeded random split with exactly `train_count` training samples; the rest is the test set.
pub fn split(data: &Dataset<f32>, train_count: usize, seed: u64) -> Result<Split> {
    if train_count > data.len() {
        return Err(format!("{train_count} training samples asked of {}", data.len()).into());
    }
    // `Dataset::split` takes round(fraction * len) test samples: this fraction gives exactly
    // len - train_count of them.
    let test_fraction = (data.len() - train_count) as f64 / data.len() as f64;
    let (train, test) = data.split(test_fraction, &mut StdRng::seed_from_u64(seed))?;
    Ok(Split { train, test })
}

/// The split with every feature standardized by the training set's mean and standard
/// deviation; the test set gets the same numbers (chapter section 5: fitting on the test set
/// would leak it into training).
pub fn standardize(split: &Split) -> Result<Split> {
    let scaler = Standardizer::fit(split.train.features())?;
    Ok(Split {
        train: split
            .train
            .with_features(scaler.transform(split.train.features())?)?,
        test: split
            .test
            .with_features(scaler.transform(split.test.features())?)?,
    })
}

/// The digits, split and standardized: the starting point of most examples.
pub fn digits_split(data_dir: &Path, train_count: usize, seed: u64) -> Result<Split> {
    standardize(&split(&load_digits(data_dir)?, train_count, seed)?)
}

/// The same samples with the labels of `round(fraction * len)` of them, chosen at random,
/// replaced by a different class drawn at random: label noise, the "noisy data" of the
/// chapter's section 1. Only ever applied to a training set; the test set stays clean.
pub fn with_label_noise(data: &Dataset<f32>, fraction: f64, seed: u64) -> Result<Dataset<f32>> {
    let classes = data.class_count();
    if classes < 2 {
        return Err("label noise needs at least two classes".into());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rng);
    let noisy = (fraction * data.len() as f64).round() as usize;
    let mut labels = data.labels().to_vec();
    for &i in &order[..noisy.min(data.len())] {
        // A uniform draw among the classes other than the true one.
        let shift = rng.random_range(1..classes);
        labels[i] = (labels[i] + shift) % classes;
    }
    Ok(Dataset::new(data.features().clone(), labels)?)
}
