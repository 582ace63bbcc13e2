//! cargo-fuzz target: the body is `nn::fuzzing::gzip_csv` (a `.csv.gz` file's bytes through
//! `load_csv`'s decompression and parser), which the test suite also runs over mutated seeds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nn::fuzzing::gzip_csv(data));
