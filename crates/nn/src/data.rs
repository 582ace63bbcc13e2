//! Data: an in-memory dataset, seeded shuffled mini-batches, a seeded train/test split, a
//! standardizer (chapter section 5), and a CSV reader whose errors name the file, line and
//! column.

use std::path::Path;

use rand::Rng;
use rand::seq::SliceRandom;
use tensor::{Float, Tensor, TensorError};

use crate::error::{NnError, Result};

/// The largest number of classes a [`Dataset`] may have: labels are below 2^24 (16,777,216),
/// the largest integer every float type holds exactly and far more classes than any one-hot
/// encoding or output layer could allocate. A larger label is refused when the data is loaded,
/// not when a later allocation of `labels x classes` elements aborts the process.
pub const MAX_CLASSES: usize = 1 << 24;

/// Feature rows `[samples, features]` with one integer class label (below [`MAX_CLASSES`])
/// per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<T: Float = f32> {
    features: Tensor<T>,
    labels: Vec<usize>,
}

impl<T: Float> Dataset<T> {
    /// A dataset; errors unless `features` is rank 2 with one row per label and every label is
    /// below [`MAX_CLASSES`].
    pub fn new(features: Tensor<T>, labels: Vec<usize>) -> Result<Self> {
        if let Some((position, &label)) =
            labels.iter().enumerate().find(|(_, l)| **l >= MAX_CLASSES)
        {
            return Err(NnError::Label {
                op: "Dataset::new",
                position,
                label,
                classes: MAX_CLASSES,
            });
        }
        match features.dims() {
            &[rows, _] if rows == labels.len() => Ok(Dataset {
                features: features.contiguous(),
                labels,
            }),
            _ => Err(NnError::Shape {
                op: "Dataset::new".to_string(),
                message: format!(
                    "features {} need shape [samples, features] with {} rows (one per label)",
                    features.shape(),
                    labels.len()
                ),
            }),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True with no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample.
    pub fn feature_count(&self) -> usize {
        self.features.dims()[1]
    }

    /// One more than the largest label (0 when empty); at most [`MAX_CLASSES`].
    pub fn class_count(&self) -> usize {
        // Labels are below MAX_CLASSES (checked by `new`), so the sum cannot overflow.
        self.labels.iter().max().map_or(0, |&m| m + 1)
    }

    /// The feature matrix.
    pub fn features(&self) -> &Tensor<T> {
        &self.features
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The labels as a `[samples, 1]` float column (0/1 targets for binary cross-entropy).
    pub fn labels_as_column(&self) -> Tensor<T> {
        let values: Vec<T> = self.labels.iter().map(|&l| T::from_usize(l)).collect();
        Tensor::from_vec(values, [self.len(), 1]).expect("one value per label")
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset<T> {
        Dataset {
            features: self.features.index_select(0, indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The same samples with transformed features (for example standardized).
    pub fn with_features(&self, features: Tensor<T>) -> Result<Dataset<T>> {
        Dataset::new(features, self.labels.clone())
    }

    /// A random split into (train, test) with `round(test_fraction * len)` test samples,
    /// shuffled by `rng`. Errors unless `test_fraction` is in [0, 1].
    pub fn split<R: Rng + ?Sized>(
        &self,
        test_fraction: f64,
        rng: &mut R,
    ) -> Result<(Dataset<T>, Dataset<T>)> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Dataset::split",
                message: format!("the test fraction must be in [0, 1], got {test_fraction}"),
            }));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        let test = (test_fraction * self.len() as f64).round() as usize;
        Ok((self.select(&order[test..]), self.select(&order[..test])))
    }

    /// Mini-batches of `batch_size` samples in an order shuffled by `rng` (the last batch may
    /// be smaller, unless [`Batches::drop_last`] drops it). One seed gives the same batches
    /// every time. A `batch_size` of 0 is taken as 1.
    pub fn shuffled_batches<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        rng: &mut R,
    ) -> Batches<'_, T> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        Batches {
            dataset: self,
            order,
            batch_size: batch_size.max(1),
            next: 0,
            drop_last: false,
        }
    }

    /// Mini-batches in the stored order (the last batch may be smaller, unless
    /// [`Batches::drop_last`] drops it).
    pub fn batches(&self, batch_size: usize) -> Batches<'_, T> {
        Batches {
            dataset: self,
            order: (0..self.len()).collect(),
            batch_size: batch_size.max(1),
            next: 0,
            drop_last: false,
        }
    }
}

/// An iterator of mini-batches; see [`Dataset::shuffled_batches`] and [`Dataset::batches`].
///
/// Every sample appears once, in batches of `batch_size`; the last batch holds what is left
/// (`len % batch_size` samples) unless [`drop_last`](Batches::drop_last) drops it.
#[derive(Debug)]
pub struct Batches<'a, T: Float> {
    dataset: &'a Dataset<T>,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    drop_last: bool,
}

impl<T: Float> Batches<'_, T> {
    /// With `true`, the last batch is dropped when it is smaller than `batch_size`, so every
    /// batch has exactly `batch_size` samples (PyTorch's `DataLoader(drop_last=True)`); the
    /// samples of that batch are left out of this epoch. A dataset smaller than `batch_size`
    /// then gives no batch at all. The order is not changed: with the same seed, the batches
    /// are those of `drop_last(false)` without the last, short one.
    ///
    /// ```
    /// use nn::Dataset;
    /// use nn::rand::SeedableRng;
    /// use nn::rand::rngs::StdRng;
    /// use tensor::Tensor;
    ///
    /// let features = Tensor::<f32>::from_vec((0..10).map(|i| i as f32).collect(), [10, 1]).unwrap();
    /// let data = Dataset::new(features, vec![0; 10]).unwrap();
    ///
    /// let all: Vec<Dataset<f32>> = data.shuffled_batches(3, &mut StdRng::seed_from_u64(1)).collect();
    /// let full: Vec<Dataset<f32>> =
    ///     data.shuffled_batches(3, &mut StdRng::seed_from_u64(1)).drop_last(true).collect();
    /// assert_eq!(all.iter().map(Dataset::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    /// assert_eq!(full.iter().map(Dataset::len).collect::<Vec<_>>(), [3, 3, 3]);
    /// assert_eq!(full[..], all[..3]); // the same batches, without the short one
    /// ```
    #[must_use]
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The samples not yet handed out in a batch that will be yielded.
    fn remaining(&self) -> usize {
        let left = self.order.len() - self.next;
        if self.drop_last {
            left - left % self.batch_size
        } else {
            left
        }
    }
}

impl<T: Float> Iterator for Batches<'_, T> {
    type Item = Dataset<T>;

    fn next(&mut self) -> Option<Dataset<T>> {
        if self.remaining() == 0 {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.dataset.select(&self.order[self.next..end]);
        self.next = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let batches = self.remaining().div_ceil(self.batch_size);
        (batches, Some(batches))
    }
}

impl<T: Float> ExactSizeIterator for Batches<'_, T> {}

/// Per-feature standardization: subtract the mean and divide by the standard deviation, both
/// measured on the training set and then applied unchanged to any set (chapter section 5).
///
/// The standard deviation is the population one (divide by n), as scikit-learn's
/// `StandardScaler`; a constant feature (standard deviation 0) is only centred.
///
/// ```
/// use nn::Standardizer;
/// use tensor::Tensor;
/// let train = Tensor::from_vec(vec![1.0_f64, 10.0, 3.0, 30.0], [2, 2]).unwrap();
/// let scaler = Standardizer::fit(&train).unwrap();
/// assert_eq!(scaler.transform(&train).unwrap().to_vec(), vec![-1.0, -1.0, 1.0, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer<T: Float = f32> {
    mean: Tensor<T>,
    scale: Tensor<T>,
}

impl<T: Float> Standardizer<T> {
    /// Measures each column's mean and standard deviation. Errors unless `features` is
    /// `[samples, features]` with at least one sample.
    pub fn fit(features: &Tensor<T>) -> Result<Self> {
        if features.rank() != 2 || features.dims()[0] == 0 {
            return Err(NnError::Shape {
                op: "Standardizer::fit".to_string(),
                message: format!(
                    "needs [samples, features] with at least one sample, got {}",
                    features.shape()
                ),
            });
        }
        let mean = features.mean(&[0], false);
        let std = features.variance(&[0], false, false).sqrt();
        let scale = std.map(|s| if s > T::ZERO { s } else { T::ONE });
        Ok(Standardizer { mean, scale })
    }

    /// The fitted means.
    pub fn mean(&self) -> &Tensor<T> {
        &self.mean
    }

    /// The fitted standard deviations (1 where a feature was constant).
    pub fn scale(&self) -> &Tensor<T> {
        &self.scale
    }

    /// (x - mean) / std, column by column. Errors if the feature count differs from the fit.
    pub fn transform(&self, features: &Tensor<T>) -> Result<Tensor<T>> {
        match features.dims() {
            &[_, n] if n == self.mean.numel() => Ok(&(features - &self.mean) / &self.scale),
            _ => Err(NnError::Shape {
                op: "Standardizer::transform".to_string(),
                message: format!(
                    "fitted on {} features, got {}",
                    self.mean.numel(),
                    features.shape()
                ),
            }),
        }
    }
}

/// How to read a CSV file of numbers with one label column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Skip the first line.
    pub header: bool,
    /// The label column (0-based); `None` for the last one.
    pub label_column: Option<usize>,
    /// Accept `nan`, `inf` and values beyond the element type's range as features (by default
    /// they are refused: a NaN feature silently turns a model's loss into NaN).
    pub allow_non_finite: bool,
}

/// Reads a CSV file of numbers into a [`Dataset`]: every column but the label column is a
/// feature, the label column holds integers in `0..MAX_CLASSES`. A UTF-8 byte-order mark is
/// skipped. Errors name the file, line and column (with invisible characters escaped): an
/// unreadable file, no data rows, a line with a different number of fields, a field that is not
/// a number, a non-finite feature or one beyond the element type's range (unless
/// [`CsvOptions::allow_non_finite`]), a label that is not such an integer.
///
/// # Gzip
/// A gzip-compressed file (`digits.csv.gz`) is decompressed first, then read the same way. A
/// file is taken as gzip when it starts with gzip's magic bytes `1f 8b`, or when its name ends
/// in `.gz` (so a `.gz` file that is not gzip is refused, not read as text); concatenated gzip
/// members are read as one stream, as `gzip -d` does. A corrupt stream, a truncated file (the
/// deflate data or the trailer cut short) and a checksum or length mismatch in the trailer are
/// an [`NnError::Gzip`] naming the file, never a panic and never a silently shortened dataset;
/// errors found after decompression name the file and the line in the decompressed text.
/// Decompressed text that is not UTF-8 is an [`NnError::Io`], as for a plain file. A stream that
/// inflates past [`MAX_DECOMPRESSED_BYTES`] is refused (a crafted file can inflate a
/// thousandfold).
///
/// ```
/// use std::io::Write;
/// use nn::{CsvOptions, NnError, load_csv};
///
/// let directory = std::env::temp_dir().join(format!("nn-load-csv-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&directory).unwrap();
/// let path = directory.join("tiny.csv.gz");
/// let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// encoder.write_all(b"0.5,1.5,0\n2.5,3.5,1\n").unwrap();
/// let compressed = encoder.finish().unwrap();
/// std::fs::write(&path, &compressed).unwrap();
///
/// let data = load_csv::<f32>(&path, CsvOptions::default()).unwrap();
/// assert_eq!(data.labels(), &[0, 1]);
/// assert_eq!(data.features().to_vec(), vec![0.5, 1.5, 2.5, 3.5]);
///
/// // The same file cut short: a named error with the path, not a shorter dataset.
/// std::fs::write(&path, &compressed[..compressed.len() - 4]).unwrap();
/// let error = load_csv::<f32>(&path, CsvOptions::default()).unwrap_err();
/// assert!(matches!(error, NnError::Gzip { .. }), "{error}");
/// assert!(error.to_string().starts_with(&format!("{}: not a valid gzip file", path.display())));
/// # std::fs::remove_dir_all(&directory).unwrap();
/// ```
/// (`flate2` is used here only to write the example's file.)
pub fn load_csv<T: Float>(path: impl AsRef<Path>, options: CsvOptions) -> Result<Dataset<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let text = csv_text(bytes, path)?;
    parse_csv(&text, &path.display().to_string(), options)
}

/// gzip's first two bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most bytes [`load_csv`] inflates a gzip file to (4 GiB): a small crafted file can
/// inflate a thousandfold, and is refused with [`NnError::Gzip`] instead of exhausting memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 4 << 30;

/// The text of a CSV file's bytes: decompressed if they are gzip (by the magic bytes or a
/// `.gz` name), then checked to be UTF-8. Errors name `path`.
pub(crate) fn csv_text(bytes: Vec<u8>, path: &Path) -> Result<String> {
    let gz_name = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let bytes = if bytes.starts_with(&GZIP_MAGIC) || gz_name {
        gunzip(&bytes, path)?
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|_| NnError::Io {
        path: path.to_path_buf(),
        // std::fs::read_to_string's message, which this loader used to return.
        message: "stream did not contain valid UTF-8".to_string(),
    })
}

/// Decompresses every gzip member of `bytes`; errors are [`NnError::Gzip`] naming `path`.
fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    gunzip_at_most(bytes, path, MAX_DECOMPRESSED_BYTES)
}

/// [`gunzip`] refusing a stream that inflates to more than `limit` bytes.
fn gunzip_at_most(bytes: &[u8], path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let error = |message: String| NnError::Gzip {
        path: path.to_path_buf(),
        message,
    };
    if !bytes.starts_with(&GZIP_MAGIC) {
        let start: Vec<String> = bytes.iter().take(2).map(|b| format!("{b:02x}")).collect();
        return Err(error(format!(
            "the name ends in .gz but the file does not start with gzip's magic bytes 1f 8b (it starts with [{}])",
            start.join(" ")
        )));
    }
    let mut text = Vec::new();
    // One byte past the limit tells a stream of exactly `limit` bytes from a larger one.
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(limit.saturating_add(1));
    match decoder.read_to_end(&mut text) {
        Ok(_) if text.len() as u64 > limit => Err(error(format!(
            "it inflates to more than {limit} bytes (MAX_DECOMPRESSED_BYTES), refused before it exhausts memory"
        ))),
        Ok(_) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(error(format!(
            "the file ends before the gzip stream does (truncated?): {e}"
        ))),
        Err(e) => Err(error(e.to_string())),
    }
}

/// A field as it appears in messages: quoted, with invisible and control characters escaped,
/// and cut short if long.
fn shown(field: &str) -> String {
    let escaped: String = field.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 40 {
        let head: String = escaped.chars().take(40).collect();
        format!("'{head}...'")
    } else {
        format!("'{escaped}'")
    }
}

/// [`load_csv`] on text already in memory (for example decompressed); `source` names it in
/// errors.
///
/// ```
/// use nn::{parse_csv, CsvOptions};
/// let data = parse_csv::<f32>("1,2,0\n3,4,1\n", "inline", CsvOptions::default()).unwrap();
/// assert_eq!(data.labels(), &[0, 1]);
/// let error = parse_csv::<f32>("1,2,0\n3,x,1\n", "inline", CsvOptions::default()).unwrap_err();
/// assert_eq!(error.to_string(), "inline: line 2, column 2: 'x' is not a number");
/// let error = parse_csv::<f32>("1,nan,0\n", "inline", CsvOptions::default()).unwrap_err();
/// assert_eq!(error.to_string(), "inline: line 1, column 2: 'nan' is not finite (set allow_non_finite to accept it)");
/// ```
pub fn parse_csv<T: Float>(text: &str, source: &str, options: CsvOptions) -> Result<Dataset<T>> {
    let error = |line: usize, column: usize, message: String| NnError::Csv {
        file: source.to_string(),
        line,
        column,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    for (number, line) in text.lines().enumerate().skip(usize::from(options.header)) {
        let line_number = number + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let expected = *width.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(error(
                line_number,
                fields.len().min(expected) + 1,
                format!("expected {expected} fields, found {}", fields.len()),
            ));
        }
        let label_column = options.label_column.unwrap_or(expected - 1);
        if label_column >= expected {
            return Err(error(
                line_number,
                label_column + 1,
                format!("no label column {} in {expected} fields", label_column + 1),
            ));
        }
        for (column, field) in fields.iter().enumerate() {
            if column == label_column {
                let label = field
                    .parse::<usize>()
                    .ok()
                    .filter(|&label| label < MAX_CLASSES)
                    .ok_or_else(|| {
                        error(
                            line_number,
                            column + 1,
                            format!(
                                "label {} is not an integer in 0..{MAX_CLASSES}",
                                shown(field)
                            ),
                        )
                    })?;
                labels.push(label);
            } else {
                let value: f64 = field.parse().map_err(|_| {
                    error(
                        line_number,
                        column + 1,
                        format!("{} is not a number", shown(field)),
                    )
                })?;
                let converted = T::from_f64(value);
                if !options.allow_non_finite {
                    if !value.is_finite() {
                        return Err(error(
                            line_number,
                            column + 1,
                            format!(
                                "{} is not finite (set allow_non_finite to accept it)",
                                shown(field)
                            ),
                        ));
                    }
                    if !converted.is_finite() {
                        return Err(error(
                            line_number,
                            column + 1,
                            format!(
                                "{} is beyond the range of {} (set allow_non_finite to accept it)",
                                shown(field),
                                T::DTYPE
                            ),
                        ));
                    }
                }
                features.push(converted);
            }
        }
    }
    let Some(width) = width else {
        return Err(error(
            text.lines().count().max(1),
            1,
            "no data rows".to_string(),
        ));
    };
    Dataset::new(
        Tensor::from_vec(features, [labels.len(), width - 1])?,
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn data() -> Dataset<f64> {
        let features = Tensor::from_vec((0..20).map(f64::from).collect(), [10, 2]).unwrap();
        Dataset::new(features, (0..10).map(|i| i % 3).collect()).unwrap()
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let d = data();
        let (train, test) = d.split(0.3, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!((train.len(), test.len()), (7, 3));
        let mut rows: Vec<f64> = train
            .features()
            .to_vec()
            .into_iter()
            .chain(test.features().to_vec())
            .collect();
        rows.sort_by(f64::total_cmp);
        assert_eq!(rows, (0..20).map(f64::from).collect::<Vec<_>>());
        // Labels travel with their rows: row r has features [2r, 2r + 1] and label r % 3.
        for part in [&train, &test] {
            for (i, &label) in part.labels().iter().enumerate() {
                assert_eq!(label, (part.features().get(&[i, 0]) / 2.0) as usize % 3);
            }
        }
        assert_eq!(
            d.split(0.3, &mut StdRng::seed_from_u64(1)).unwrap(),
            (train, test)
        );
        assert!(d.split(1.5, &mut StdRng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn shuffled_batches_cover_every_sample_once() {
        let d = data();
        let batches: Vec<Dataset<f64>> = d
            .shuffled_batches(4, &mut StdRng::seed_from_u64(2))
            .take(10) // bounded, so an iterator that stopped advancing fails, not hangs
            .collect();
        assert_eq!(
            batches.iter().map(Dataset::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut seen: Vec<f64> = batches
            .iter()
            .flat_map(|b| b.features().narrow(1, 0, 1).to_vec())
            .collect();
        seen.sort_by(f64::total_cmp);
        assert_eq!(seen, (0..10).map(|r| 2.0 * r as f64).collect::<Vec<_>>());
        let again: Vec<Dataset<f64>> = d
            .shuffled_batches(4, &mut StdRng::seed_from_u64(2))
            .take(10) // bounded, so an iterator that stopped advancing fails, not hangs
            .collect();
        assert_eq!(batches, again);
        assert_eq!(d.batches(4).next().unwrap().labels(), &[0, 1, 2, 0]);
    }

    #[test]
    fn batches_advance_and_end() {
        // Bounded by `take`, so an iterator that stopped advancing would fail, not hang.
        let d = data();
        let sizes: Vec<usize> = d.batches(4).take(5).map(|b| b.len()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        // In the stored order, batch k starts at row 4k, whose first feature is 2 * 4k.
        let firsts: Vec<f64> = d
            .batches(4)
            .take(5)
            .map(|b| b.features().get(&[0, 0]))
            .collect();
        assert_eq!(firsts, vec![0.0, 8.0, 16.0]);
        let shuffled: Vec<usize> = d
            .shuffled_batches(3, &mut StdRng::seed_from_u64(0))
            .take(6)
            .map(|b| b.len())
            .collect();
        assert_eq!(shuffled, vec![3, 3, 3, 1]);
    }

    /// The order of the samples across the batches: row r has first feature 2r.
    fn rows(batches: &[Dataset<f64>]) -> Vec<usize> {
        batches
            .iter()
            .flat_map(|b| b.features().narrow(1, 0, 1).to_vec())
            .map(|x| (x / 2.0) as usize)
            .collect()
    }

    #[test]
    fn drop_last_drops_only_the_short_last_batch_and_keeps_the_order() {
        let d = data(); // 10 samples
        let sizes = |batches: &[Dataset<f64>]| batches.iter().map(Dataset::len).collect::<Vec<_>>();
        let shuffled = |drop_last: bool| -> Vec<Dataset<f64>> {
            d.shuffled_batches(3, &mut StdRng::seed_from_u64(5))
                .drop_last(drop_last)
                .take(10) // bounded, so an iterator that stopped advancing fails, not hangs
                .collect()
        };
        let kept = shuffled(false);
        let dropped = shuffled(true);
        assert_eq!(sizes(&kept), vec![3, 3, 3, 1]);
        assert_eq!(sizes(&dropped), vec![3, 3, 3]);
        // The seeded order is the one this seed gave before drop_last existed (pinned: a change
        // to the shuffle would change every user's training run); drop_last only cuts its tail.
        let order = rows(&kept);
        assert_eq!(order, vec![8, 2, 6, 0, 5, 3, 7, 9, 1, 4]);
        assert_eq!(rows(&dropped), order[..9]);
        assert_eq!(dropped[..], kept[..3]);
        assert_eq!(shuffled(false), kept, "drop_last(false) is the default");
        let default: Vec<Dataset<f64>> = d
            .shuffled_batches(3, &mut StdRng::seed_from_u64(5))
            .take(10)
            .collect();
        assert_eq!(default, kept);

        // In the stored order too; a batch size that divides the length drops nothing.
        let stored: Vec<Dataset<f64>> = d.batches(3).drop_last(true).take(10).collect();
        assert_eq!(sizes(&stored), vec![3, 3, 3]);
        assert_eq!(rows(&stored), (0..9).collect::<Vec<_>>());
        assert_eq!(d.batches(5).drop_last(true).take(10).count(), 2);
        assert_eq!(d.batches(10).drop_last(true).take(10).count(), 1);
        // Fewer samples than one batch: nothing at all, not a short batch.
        assert_eq!(d.batches(11).drop_last(true).take(10).count(), 0);
        assert_eq!(d.batches(11).take(10).count(), 1);
    }

    #[test]
    fn batches_know_how_many_are_left() {
        let d = data();
        let mut batches = d.batches(3);
        assert_eq!(batches.len(), 4);
        batches.next();
        assert_eq!(batches.size_hint(), (3, Some(3)));
        let mut full = d
            .shuffled_batches(3, &mut StdRng::seed_from_u64(0))
            .drop_last(true);
        assert_eq!(full.len(), 3);
        for left in (0..3).rev() {
            assert!(full.next().is_some());
            assert_eq!(full.len(), left);
        }
        assert!(full.next().is_none());
        assert_eq!(d.batches(11).drop_last(true).len(), 0);
        assert_eq!(d.select(&[]).batches(3).len(), 0);
    }

    /// A folder of this test's own, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!("nn-data-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
        fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A CSV long enough that its deflate stream spans several blocks' worth of symbols.
    fn long_csv() -> String {
        (0..500)
            .map(|i| format!("{},{}.25,{}\n", i, i * 7 % 13, i % 4))
            .collect()
    }

    #[test]
    fn a_stream_inflating_past_the_limit_is_refused() {
        let text = "1,2,0\n".repeat(100); // 600 bytes
        let packed = gzip(text.as_bytes());
        let path = Path::new("bomb.csv.gz");
        assert_eq!(gunzip_at_most(&packed, path, 600).unwrap(), text.as_bytes());
        let error = gunzip_at_most(&packed, path, 599).unwrap_err();
        assert_eq!(
            error.to_string(),
            NnError::Gzip {
                path: path.to_path_buf(),
                message: "it inflates to more than 599 bytes (MAX_DECOMPRESSED_BYTES), refused before it exhausts memory".to_string(),
            }
            .to_string()
        );
        assert!(packed.len() < 100, "the test's stream is a small file");
    }

    #[test]
    fn gzip_csv_round_trips_like_the_plain_file() {
        let scratch = Scratch::new("gzip-round-trip");
        let text = format!("a,b,label\n{}", long_csv());
        let options = CsvOptions {
            header: true,
            ..CsvOptions::default()
        };
        let plain = load_csv::<f64>(scratch.write("data.csv", text.as_bytes()), options).unwrap();
        assert_eq!(plain.len(), 500);
        let compressed = gzip(text.as_bytes());
        let from_gz = load_csv::<f64>(scratch.write("data.csv.gz", &compressed), options).unwrap();
        assert_eq!(from_gz, plain);
        // Detected by the magic bytes whatever the name, and by a .GZ name in any case.
        let unnamed = load_csv::<f64>(scratch.write("data.bin", &compressed), options).unwrap();
        assert_eq!(unnamed, plain);
        let upper = load_csv::<f64>(scratch.write("DATA.CSV.GZ", &compressed), options).unwrap();
        assert_eq!(upper, plain);
        // Concatenated members are one stream, as `gzip -d` reads them.
        let (head, tail) = text.split_at(text.len() / 2);
        let members = [gzip(head.as_bytes()), gzip(tail.as_bytes())].concat();
        let joined = load_csv::<f64>(scratch.write("two.csv.gz", &members), options).unwrap();
        assert_eq!(joined, plain);
        // Parse errors after decompression name the file and the line of the text.
        let bad = gzip(b"1,2,0\n3,x,1\n");
        let path = scratch.write("bad.csv.gz", &bad);
        assert_eq!(
            load_csv::<f32>(&path, CsvOptions::default())
                .unwrap_err()
                .to_string(),
            format!("{}: line 2, column 2: 'x' is not a number", path.display())
        );
    }

    #[test]
    fn a_corrupt_gzip_stream_is_a_named_error_with_the_path() {
        let scratch = Scratch::new("gzip-corrupt");
        let good = gzip(long_csv().as_bytes());
        let mut corrupt = good.clone();
        // Past the 10-byte header: the deflate data itself.
        for byte in &mut corrupt[12..40] {
            *byte ^= 0xa5;
        }
        let mut bad_checksum = good.clone();
        let crc = bad_checksum.len() - 8;
        bad_checksum[crc] ^= 1;
        let mut bad_length = good.clone();
        let isize_at = bad_length.len() - 4;
        bad_length[isize_at] ^= 1;
        for (name, bytes) in [
            ("corrupt.csv.gz", corrupt),
            ("checksum.csv.gz", bad_checksum),
            ("length.csv.gz", bad_length),
            ("magic-only.csv.gz", vec![0x1f, 0x8b]),
        ] {
            let path = scratch.write(name, &bytes);
            let error = load_csv::<f32>(&path, CsvOptions::default()).unwrap_err();
            assert!(
                matches!(&error, NnError::Gzip { path: p, .. } if *p == path),
                "{name}: {error:?}"
            );
            let prefix = format!("{}: not a valid gzip file: ", path.display());
            assert!(error.to_string().starts_with(&prefix), "{name}: {error}");
            // Corruption in a complete file is not reported as a truncation (the magic-only
            // file is one).
            if name != "magic-only.csv.gz" {
                assert!(
                    !error.to_string().contains("(truncated?)"),
                    "{name}: {error}"
                );
            }
        }
        // A .gz name on a file that is not gzip: refused, not read as text.
        let path = scratch.write("plain.csv.gz", b"1,2,0\n");
        let error = load_csv::<f32>(&path, CsvOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: not a valid gzip file: the name ends in .gz but the file does not start with gzip's magic bytes 1f 8b (it starts with [31 2c])",
                path.display()
            )
        );
        // Not UTF-8 once decompressed: the plain file's error.
        let path = scratch.write("latin1.csv.gz", &gzip(b"1,\xe9,0\n"));
        assert_eq!(
            load_csv::<f32>(&path, CsvOptions::default()).unwrap_err(),
            NnError::Io {
                path: path.clone(),
                message: "stream did not contain valid UTF-8".to_string()
            }
        );
        let path = scratch.write("latin1.csv", b"1,\xe9,0\n");
        let plain = load_csv::<f32>(&path, CsvOptions::default()).unwrap_err();
        assert_eq!(
            plain.to_string(),
            format!("{}: stream did not contain valid UTF-8", path.display())
        );
    }

    #[test]
    fn a_truncated_gzip_file_is_a_named_error_never_a_shorter_dataset() {
        let scratch = Scratch::new("gzip-truncated");
        let good = gzip(long_csv().as_bytes());
        // Every cut: inside the header, the deflate data, and the 8-byte trailer.
        for cut in (2..good.len()).step_by(7).chain(good.len() - 8..good.len()) {
            let path = scratch.write("cut.csv.gz", &good[..cut]);
            match load_csv::<f32>(&path, CsvOptions::default()) {
                Err(NnError::Gzip { path: p, message }) => {
                    assert_eq!(p, path);
                    assert!(!message.is_empty());
                }
                other => panic!("cut at {cut} of {}: {other:?}", good.len()),
            }
        }
        let path = scratch.write("cut.csv.gz", &good[..good.len() - 1]);
        let message = load_csv::<f32>(&path, CsvOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the file ends before the gzip stream does (truncated?): "),
            "{message}"
        );
    }

    #[test]
    fn standardizer_fits_on_train_and_applies_the_same_numbers() {
        let train = Tensor::from_vec(vec![1.0, 5.0, 3.0, 5.0, 5.0, 5.0], [3, 2]).unwrap();
        let scaler = Standardizer::fit(&train).unwrap();
        let std = (8.0_f64 / 3.0).sqrt();
        assert_eq!(scaler.mean().to_vec(), vec![3.0, 5.0]);
        assert!((scaler.scale().to_vec()[0] - std).abs() < 1e-15);
        assert_eq!(
            scaler.scale().to_vec()[1],
            1.0,
            "constant feature: centred only"
        );
        let test = Tensor::from_vec(vec![7.0, 6.0], [1, 2]).unwrap();
        let out = scaler.transform(&test).unwrap().to_vec();
        assert!((out[0] - 4.0 / std).abs() < 1e-15);
        assert_eq!(out[1], 1.0);
        assert_eq!(
            scaler
                .transform(&Tensor::zeros([2, 3]))
                .unwrap_err()
                .to_string(),
            "Standardizer::transform: fitted on 2 features, got [2, 3]"
        );
    }

    #[test]
    fn csv_errors_name_file_line_and_column() {
        let parse = |text: &str| {
            parse_csv::<f32>(
                text,
                "data.csv",
                CsvOptions {
                    header: true,
                    ..CsvOptions::default()
                },
            )
        };
        assert_eq!(
            parse("a,b,c\n1,2,0\n3,4\n").unwrap_err().to_string(),
            "data.csv: line 3, column 3: expected 3 fields, found 2"
        );
        assert_eq!(
            parse("a,b,c\n1,2,0\n3,4,-1\n").unwrap_err().to_string(),
            "data.csv: line 3, column 3: label '-1' is not an integer in 0..16777216"
        );
        assert_eq!(
            parse("a,b,c\n1,nan?,0\n").unwrap_err().to_string(),
            "data.csv: line 2, column 2: 'nan?' is not a number"
        );
        let ok = parse("a,b,c\n1,2,0\n\n3,4,1\n").unwrap();
        assert_eq!(ok.features().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        let first_column = parse_csv::<f32>(
            "2,1.5\n0,2.5\n",
            "x",
            CsvOptions {
                label_column: Some(0),
                ..CsvOptions::default()
            },
        )
        .unwrap();
        assert_eq!(first_column.labels(), &[2, 0]);
        let missing = load_csv::<f32>("/nonexistent/file.csv", CsvOptions::default()).unwrap_err();
        assert!(missing.to_string().starts_with("/nonexistent/file.csv: "));
    }

    fn parse_plain(text: &str) -> Result<Dataset<f32>> {
        parse_csv::<f32>(text, "x.csv", CsvOptions::default())
    }

    #[test]
    fn labels_beyond_the_bound_are_refused_before_anything_allocates_by_them() {
        // u64::MAX used to load, then overflow class_count(); 10^12 made one_hot abort.
        for label in ["18446744073709551615", "1000000000000", "16777216"] {
            let error = parse_plain(&format!("1,2,{label}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!(
                    "x.csv: line 1, column 3: label '{label}' is not an integer in 0..16777216"
                )
            );
        }
        let largest = parse_plain("1,2,16777215\n").unwrap();
        assert_eq!(largest.class_count(), MAX_CLASSES);
        let error = Dataset::new(Tensor::<f32>::zeros([1, 1]), vec![usize::MAX]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("Dataset::new: label 18446744073709551615"),
            "{error}"
        );
    }

    #[test]
    fn non_finite_and_out_of_range_features_are_refused_unless_allowed() {
        for field in ["nan", "inf", "Infinity", "-inf", "1e400"] {
            let error = parse_plain(&format!("{field},0\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!(
                    "x.csv: line 1, column 1: '{field}' is not finite (set allow_non_finite to accept it)"
                )
            );
        }
        // Finite in f64, infinite in f32.
        assert_eq!(
            parse_plain("1e39,0\n").unwrap_err().to_string(),
            "x.csv: line 1, column 1: '1e39' is beyond the range of f32 (set allow_non_finite to accept it)"
        );
        assert!(parse_csv::<f64>("1e39,0\n", "x", CsvOptions::default()).is_ok());
        let allowed = CsvOptions {
            allow_non_finite: true,
            ..CsvOptions::default()
        };
        let data = parse_csv::<f32>("nan,0\n1e39,1\n", "x", allowed).unwrap();
        assert!(data.features().to_vec()[0].is_nan());
        assert_eq!(data.features().to_vec()[1], f32::INFINITY);
    }

    #[test]
    fn sizes_and_bad_shapes_are_reported() {
        let d = data();
        assert!(!d.is_empty());
        assert_eq!((d.len(), d.feature_count(), d.class_count()), (10, 2, 3));
        assert!(d.select(&[]).is_empty());
        assert_eq!(d.select(&[]).class_count(), 0);
        let fit = |dims: &[usize]| Standardizer::fit(&Tensor::<f64>::zeros(dims)).map(|_| ());
        assert!(fit(&[4]).is_err(), "rank 1");
        assert!(fit(&[0, 3]).is_err(), "no samples");
        assert!(fit(&[2, 3, 1]).is_err(), "rank 3");
        assert!(fit(&[1, 3]).is_ok());
        let error = parse_csv::<f32>(
            "1,2\n",
            "x.csv",
            CsvOptions {
                label_column: Some(4),
                ..CsvOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.csv: line 1, column 5: no label column 5 in 2 fields"
        );
    }

    #[test]
    fn long_fields_are_cut_in_messages() {
        let forty = "a".repeat(40);
        let error = parse_plain(&format!("{forty},0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(&format!("'{forty}' is not a number")),
            "{error}"
        );
        let error = parse_plain(&format!("{forty}b,0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(&format!("'{forty}...' is not a number")),
            "{error}"
        );
    }

    #[test]
    fn empty_data_is_refused() {
        // These used to give an Ok 0 x 0 dataset.
        for text in ["", "\n\n  \n", "\u{feff}"] {
            assert_eq!(
                parse_plain(text)
                    .unwrap_err()
                    .to_string()
                    .split(": ")
                    .last(),
                Some("no data rows"),
                "{text:?}"
            );
        }
        let header_only = parse_csv::<f32>(
            "a,b,label\n",
            "x.csv",
            CsvOptions {
                header: true,
                ..CsvOptions::default()
            },
        );
        assert_eq!(
            header_only.unwrap_err().to_string(),
            "x.csv: line 1, column 1: no data rows"
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_invisible_characters_are_shown() {
        // A BOM without `header` used to give "'\u{feff}1' is not a number", printed as
        // "'1' is not a number".
        let data = parse_plain("\u{feff}1,2,0\n3,4,1\n").unwrap();
        assert_eq!(data.features().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        let error = parse_plain("1,2\u{200b},0\n").unwrap_err().to_string();
        assert_eq!(
            error,
            "x.csv: line 1, column 2: '2\\u{200b}' is not a number"
        );
        let error = parse_plain("1,\u{7},0\n").unwrap_err().to_string();
        assert_eq!(error, "x.csv: line 1, column 2: '\\u{7}' is not a number");
    }
}
