//! cargo-fuzz target: the body is `tensor::fuzzing::strided`, which the test suite also runs over mutated
//! seeds (see the README's development section for the commands).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tensor::fuzzing::strided(data));
