//! The fuzz targets' bodies (`nn::fuzzing`), run over a few thousand inputs mutated from the
//! seed corpus the library writes, so a regression fails `cargo test` without a nightly
//! toolchain. With `FUZZ_CORPUS_DIR` set, the seeds are also written there, one folder per
//! target, for cargo-fuzz (see the README's development section).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    Duplicate(usize, usize),
    /// Replaces the n-th run of ASCII digits by another number (as libFuzzer's
    /// ChangeASCIIInt): shapes, offsets and lengths in a header, numbers in a CSV.
    Number(usize, u64),
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Flip(at, mask) if len > 0 => bytes[at % len] ^= mask | 1,
            Edit::Insert(at, byte) => bytes.insert(at % (len + 1), byte),
            Edit::Remove(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            Edit::Duplicate(at, span) if len > 0 => {
                let start = at % len;
                let end = (start + span % 16).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(start..start, copy);
            }
            Edit::Number(nth, value) => {
                let runs: Vec<(usize, usize)> = {
                    let mut runs = Vec::new();
                    let mut i = 0;
                    while i < len {
                        if bytes[i].is_ascii_digit() {
                            let start = i;
                            while i < len && bytes[i].is_ascii_digit() {
                                i += 1;
                            }
                            runs.push((start, i));
                        } else {
                            i += 1;
                        }
                    }
                    runs
                };
                if !runs.is_empty() {
                    let (start, end) = runs[nth % runs.len()];
                    bytes.splice(start..end, value.to_string().into_bytes());
                }
            }
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, m)| Edit::Flip(a, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Insert(a, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, s)| Edit::Duplicate(a, s)),
        (any::<usize>(), prop_oneof![0..300u64, any::<u64>()])
            .prop_map(|(n, v)| Edit::Number(n, v)),
    ];
    proptest::collection::vec(edit, 1..6)
}

/// Runs `body` on `cases` mutations of the seeds of `target`.
fn fuzz(target: &str, cases: u32, body: fn(&[u8])) {
    let seeds: Vec<Vec<u8>> = nn::fuzzing::seed_corpus()
        .into_iter()
        .filter(|(t, ..)| *t == target)
        .map(|(_, _, bytes)| bytes)
        .collect();
    assert!(!seeds.is_empty());
    for seed in &seeds {
        body(seed);
    }
    // A fixed seed, so CI runs the same inputs every time (cargo-fuzz explores the rest).
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5EED),
        ..Config::default()
    });
    let strategy = (0..seeds.len(), edits());
    runner
        .run(&strategy, |(which, edits)| {
            body(&apply(seeds[which].clone(), &edits));
            Ok(())
        })
        .unwrap();
}

/// Inputs that broke a contract once (found by cargo-fuzz), replayed on every run.
#[test]
fn the_inputs_fuzzing_found_keep_their_contract() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("safetensors") {
            nn::fuzzing::safetensors(&bytes);
        } else if name.starts_with("gzip_csv") {
            nn::fuzzing::gzip_csv(&bytes);
        } else if name.starts_with("csv") {
            nn::fuzzing::csv(&bytes);
        } else {
            panic!("{name}: name a regression after its target");
        }
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn the_safetensors_loader_keeps_its_contract_on_mutated_files() {
    fuzz("safetensors", 3000, nn::fuzzing::safetensors);
}

#[test]
fn the_csv_parser_keeps_its_contract_on_mutated_text() {
    fuzz("csv", 3000, nn::fuzzing::csv);
}

#[test]
fn the_gzip_csv_reader_keeps_its_contract_on_mutated_files() {
    fuzz("gzip_csv", 3000, nn::fuzzing::gzip_csv);
}

#[test]
fn the_seed_corpus_is_written_where_asked() {
    let Some(directory) = std::env::var_os("FUZZ_CORPUS_DIR") else {
        return;
    };
    for (target, name, bytes) in nn::fuzzing::seed_corpus() {
        let folder = std::path::Path::new(&directory).join(target);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), bytes).unwrap();
    }
}
