//! examples/examples/first_network.rs keeps working and stays short. The example's `run` is
//! compiled into this test (an `[[example]]` gets no `CARGO_BIN_EXE_*`, and running cargo from
//! a test would rebuild under the cargo lock), so the test checks the very code a learner reads.

#[allow(dead_code)] // its `main` is the example's, not ours
#[path = "../examples/first_network.rs"]
mod first_network;

use first_network::run;

const EPOCHS: usize = 20;

/// Mechanisms that hold for any seed. The bounds are far outside what 20 seeds gave (seeds
/// 1..=20, `cargo run --release -p examples --example first_network -- --seed N`): the training
/// loss fell 9-27-fold over the 20 epochs (from 0.42-0.52 to 0.019-0.047), and the final test
/// accuracy was 95.8-98.2%.
#[test]
fn it_learns_the_digits_for_any_seed() {
    for seed in [1, 2, 3] {
        let lines = run(seed, EPOCHS).unwrap();
        let (first, last) = (&lines[0], &lines[EPOCHS - 1]);
        assert_eq!((lines.len(), last.epoch), (EPOCHS, EPOCHS), "seed {seed}");
        // Descent works: the training loss falls, and more than 3-fold (9-fold at least, measured).
        assert!(last.train_loss < first.train_loss / 3.0, "seed {seed}");
        // And it generalises: far above the 10% of guessing one of ten digits (95.8% at least).
        assert!(
            last.test_accuracy > 0.9,
            "seed {seed}: {}",
            last.test_accuracy
        );
        assert!(last.test_loss < first.test_loss, "seed {seed}");
    }
}

/// `--seed` reseeds everything random: one seed gives one run exactly, another seed another.
#[test]
fn one_seed_gives_one_run() {
    let losses = |seed| -> Vec<f64> { run(seed, 2).unwrap().iter().map(|l| l.test_loss).collect() };
    assert_eq!(losses(4), losses(4));
    assert_ne!(losses(4), losses(5));
}

/// The example is read top to bottom by someone new to the library, so it must stay short:
/// at most 90 lines as rustfmt lays it out (`cargo fmt --check` in CI keeps it laid out so).
#[test]
fn the_example_stays_short() {
    let source = include_str!("../examples/first_network.rs");
    let lines = source.lines().count();
    assert!(lines <= 90, "first_network.rs has {lines} lines");
}
