//! Fuzz-target bodies (feature `fuzzing`): the parameter-file loader, the CSV parser and the
//! gzip CSV reader on arbitrary bytes. Each body panics only if the library breaks its contract: a call returns a
//! value or a named error, never panics, and a failed load changes nothing. The same bodies run
//! under cargo-fuzz (`fuzz/`) and, over mutated seeds, in `cargo test` (`tests/fuzz_bodies.rs`).

use std::io::Cursor;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::{CsvOptions, Dataset, MAX_CLASSES, csv_text, parse_csv};
use crate::io::{LoadOptions, read_safetensors, safetensors_bytes};
use crate::{BatchNorm1d, Dense, Init, ParamStore};

/// The model the loader body loads into: Dense(3, 4), BatchNorm1d(4), Dense(4, 2).
pub fn target_model() -> ParamStore<f32> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut store = ParamStore::new();
    Dense::new(&mut store, "hidden1", 3, 4, Init::HeNormal, &mut rng).expect("fresh names");
    BatchNorm1d::new(&mut store, "bn1", 4).expect("fresh names");
    Dense::new(&mut store, "output", 4, 2, Init::HeNormal, &mut rng).expect("fresh names");
    store
}

fn snapshot(store: &ParamStore<f32>) -> Vec<(String, Vec<u32>)> {
    store
        .iter()
        .map(|(_, name, _, value)| {
            let bits = value.to_vec().iter().map(|x| x.to_bits()).collect();
            (name.to_string(), bits)
        })
        .collect()
}

/// Loads `bytes` as a safetensors file into [`target_model`] (with the cast option when the
/// length is odd): on success every entry keeps its shape; on error the store is unchanged,
/// bit for bit, and the message names the source.
pub fn safetensors(bytes: &[u8]) {
    let mut store = target_model();
    let before = snapshot(&store);
    let shapes: Vec<_> = store.iter().map(|(_, _, _, v)| v.shape().clone()).collect();
    let options = LoadOptions {
        cast: bytes.len() % 2 == 1,
    };
    let mut reader = Cursor::new(bytes);
    let path = Path::new("fuzz.safetensors");
    match read_safetensors(&mut store, &mut reader, bytes.len() as u64, path, options) {
        Ok(()) => {
            let after: Vec<_> = store.iter().map(|(_, _, _, v)| v.shape().clone()).collect();
            assert_eq!(after, shapes, "a successful load changed a shape");
        }
        Err(error) => {
            assert_eq!(
                snapshot(&store),
                before,
                "a failed load changed the store: {error}"
            );
            assert!(error.to_string().starts_with("fuzz.safetensors"), "{error}");
        }
    }
}

/// Parses `bytes` (lossily as UTF-8) as CSV, with options from its first byte: on success the
/// dataset is consistent (one row per label, labels in range, finite features unless allowed);
/// on error the message names the source.
pub fn csv(bytes: &[u8]) {
    let flags = bytes.first().copied().unwrap_or(0);
    let options = CsvOptions {
        header: flags & 1 != 0,
        label_column: (flags & 2 != 0).then_some(usize::from(flags >> 4)),
        allow_non_finite: flags & 4 != 0,
    };
    let text = String::from_utf8_lossy(bytes.get(1..).unwrap_or_default());
    match parse_csv::<f32>(&text, "fuzz.csv", options) {
        Ok(data) => check_dataset(&data, options),
        Err(error) => assert!(error.to_string().starts_with("fuzz.csv"), "{error}"),
    }
}

/// A dataset's invariants: not empty, one row per label, labels in range, finite features
/// unless allowed.
fn check_dataset(data: &Dataset<f32>, options: CsvOptions) {
    assert!(!data.is_empty(), "an empty dataset was accepted");
    assert_eq!(data.features().dims()[0], data.len());
    assert!(data.labels().iter().all(|&l| l < MAX_CLASSES));
    assert!(data.class_count() <= MAX_CLASSES);
    if !options.allow_non_finite {
        assert!(data.features().to_vec().iter().all(|v| v.is_finite()));
    }
}

/// Reads `bytes` as the contents of a file `fuzz.csv.gz`, the way [`load_csv`](crate::load_csv)
/// does (gzip by name, then CSV with the default options): on success the dataset is
/// consistent; on error (a corrupt or truncated stream, text that is not UTF-8, a bad line) the
/// message names the file.
pub fn gzip_csv(bytes: &[u8]) {
    let path = Path::new("fuzz.csv.gz");
    let options = CsvOptions::default();
    match csv_text(bytes.to_vec(), path)
        .and_then(|text| parse_csv::<f32>(&text, "fuzz.csv.gz", options))
    {
        Ok(data) => check_dataset(&data, options),
        Err(error) => assert!(error.to_string().starts_with("fuzz.csv.gz: "), "{error}"),
    }
}

/// Seed inputs for every body, written by the library itself: (target, name, bytes). Valid
/// files and near misses, so mutation starts from the formats' real structure.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut store = target_model();
    for (i, step) in [0_u64, 7, 123_456].into_iter().enumerate() {
        store.set_training_step(step);
        let bytes = safetensors_bytes(&store).expect("a valid store");
        seeds.push(("safetensors", format!("model-{i}"), bytes));
    }
    let mut double = ParamStore::<f64>::new();
    let mut rng = StdRng::seed_from_u64(2);
    Dense::new(&mut double, "hidden1", 3, 4, Init::HeNormal, &mut rng).expect("fresh names");
    let bytes = safetensors_bytes(&double).expect("a valid store");
    seeds.push(("safetensors", "double".to_string(), bytes));
    for (name, text) in [
        ("plain", "\u{0}1,2,0\n3,4,1\n5.5,-6e2,2\n"),
        ("header", "\u{1}a,b,label\n1,2,0\n3,4,1\n"),
        ("first-label", "\u{2}2,1.5\n0,2.5\n"),
        ("non-finite", "\u{4}nan,inf,0\n-Infinity,1e400,1\n"),
        ("bom", "\u{0}\u{feff}1,2,0\n"),
        ("ragged", "\u{0}1,2,0\n3,4\n"),
        ("big-label", "\u{0}1,18446744073709551615\n"),
    ] {
        seeds.push(("csv", name.to_string(), text.as_bytes().to_vec()));
    }
    let long: String = (0..64)
        .map(|i| format!("{i},{}.5,{}\n", i % 9, i % 3))
        .collect();
    for (name, text) in [
        ("plain", "1,2,0\n3,4,1\n5.5,-6e2,2\n"),
        ("long", long.as_str()),
        ("bom", "\u{feff}1,2,0\n"),
        ("ragged", "1,2,0\n3,4\n"),
    ] {
        seeds.push(("gzip_csv", name.to_string(), gzip(text.as_bytes())));
    }
    // Two members, read as one stream.
    let two = [gzip(b"1,2,0\n"), gzip(b"3,4,1\n")].concat();
    seeds.push(("gzip_csv", "two-members".to_string(), two));
    seeds
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}
