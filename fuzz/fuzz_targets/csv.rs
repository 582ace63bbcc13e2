//! cargo-fuzz target: the body is `nn::fuzzing::csv`, which the test suite also runs over mutated
//! seeds (see the README's development section for the commands).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nn::fuzzing::csv(data));
