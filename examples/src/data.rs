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

/// The one-pixel shifts of an image: (rows down, columns right), each in {-1, 0, 1}. Shifting
/// a digit by a pixel keeps it the same digit: the cheapest "more data" there is.
pub const ONE_PIXEL_SHIFTS: [(i64, i64); 9] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 0),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

/// Each row of `images` (`side x side` pixels, row-major) moved by its shift from `shifts`
/// (rows down, columns right); pixels moved in from outside are 0, the digits' background.
pub fn shift_images(images: &[f32], side: usize, shifts: &[(i64, i64)]) -> Vec<f32> {
    let pixels = side * side;
    let mut shifted = vec![0.0; images.len()];
    for (sample, &(down, right)) in shifts.iter().enumerate() {
        let image = &images[sample * pixels..(sample + 1) * pixels];
        let out = &mut shifted[sample * pixels..(sample + 1) * pixels];
        for row in 0..side {
            for column in 0..side {
                let from_row = row as i64 - down;
                let from_column = column as i64 - right;
                if (0..side as i64).contains(&from_row) && (0..side as i64).contains(&from_column) {
                    out[row * side + column] =
                        image[from_row as usize * side + from_column as usize];
                }
            }
        }
    }
    shifted
}

/// Augments the raw 8x8 digits: each epoch, every training image moved by a one-pixel shift
/// drawn at random (its label unchanged), standardized by statistics fitted on all nine shifts
/// of the training images (the distribution the network trains on). The test set gets the
/// same standardization, unshifted.
#[derive(Debug)]
pub struct ShiftAugmentation {
    raw_train: Dataset<f32>,
    scaler: Standardizer<f32>,
    rng: StdRng,
}

impl ShiftAugmentation {
    /// The augmentation of `raw` (unstandardized digits, 64 pixels per row), drawing shifts
    /// from `seed`; also returns the split standardized as the augmented network sees it.
    pub fn new(raw: &Split, seed: u64) -> Result<(Self, Split)> {
        let images = raw.train.features().to_vec();
        let count = raw.train.len();
        let mut all = Vec::with_capacity(images.len() * ONE_PIXEL_SHIFTS.len());
        for shift in ONE_PIXEL_SHIFTS {
            all.extend(shift_images(&images, 8, &vec![shift; count]));
        }
        let all = tensor::Tensor::from_vec(all, [count * ONE_PIXEL_SHIFTS.len(), 64])?;
        let scaler = Standardizer::fit(&all)?;
        let split = Split {
            train: raw
                .train
                .with_features(scaler.transform(raw.train.features())?)?,
            test: raw
                .test
                .with_features(scaler.transform(raw.test.features())?)?,
        };
        let augmentation = ShiftAugmentation {
            raw_train: raw.train.clone(),
            scaler,
            rng: StdRng::seed_from_u64(seed),
        };
        Ok((augmentation, split))
    }

    /// The next epoch's training set: every image shifted by a random one-pixel shift.
    pub fn next_epoch(&mut self) -> Result<Dataset<f32>> {
        let shifts: Vec<(i64, i64)> = (0..self.raw_train.len())
            .map(|_| ONE_PIXEL_SHIFTS[self.rng.random_range(0..ONE_PIXEL_SHIFTS.len())])
            .collect();
        let images = self.raw_train.features().to_vec();
        let shifted =
            tensor::Tensor::from_vec(shift_images(&images, 8, &shifts), [shifts.len(), 64])?;
        Ok(self
            .raw_train
            .with_features(self.scaler.transform(&shifted)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_every_pixel_and_fills_with_background() {
        // A 3x3 image 1..9, moved one row down and one column left.
        let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let shifted = shift_images(&image, 3, &[(1, -1)]);
        assert_eq!(shifted, vec![0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]);
        // No shift is the identity; the nine shifts are distinct.
        assert_eq!(shift_images(&image, 3, &[(0, 0)]), image);
        let distinct: std::collections::BTreeSet<Vec<u32>> = ONE_PIXEL_SHIFTS
            .iter()
            .map(|&s| {
                shift_images(&image, 3, &[s])
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect();
        assert_eq!(distinct.len(), 9);
        // Each image of a batch gets its own shift, and stays in its own row.
        let two: Vec<f32> = image.iter().chain(&image).copied().collect();
        let shifted = shift_images(&two, 3, &[(0, 0), (1, -1)]);
        assert_eq!(&shifted[..9], &image[..]);
        assert_eq!(
            &shifted[9..],
            &[0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]
        );
    }
}
