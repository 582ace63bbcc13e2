//! Per-sample gradients on the tape: shared weights, broadcast parameters, penalties beside the
//! losses, and the named errors, against one backward pass per example's loss.

use autograd::{AutogradError, Tape, Var};
use tensor::Tensor;

const B: usize = 4;

fn data() -> Tensor<f64> {
    Tensor::from_fn([B, 3], |i| ((i * 5 % 7) as f64 - 3.0) * 0.4)
}

/// Per parameter, example b's gradient by a backward pass from loss b alone.
fn by_loop<'t>(losses: Var<'t, f64>, params: &[Var<'t, f64>]) -> Vec<Vec<Vec<f64>>> {
    params
        .iter()
        .map(|&p| {
            (0..B)
                .map(|b| {
                    let seed = Tensor::from_fn([B], |i| if i == b { 1.0 } else { 0.0 });
                    losses.backward_with(seed).wrt(p).to_vec()
                })
                .collect()
        })
        .collect()
}

fn assert_matches(per_sample: &autograd::PerSampleGradients<f64>, reference: &[Vec<Vec<f64>>]) {
    for (i, examples) in reference.iter().enumerate() {
        let stack = per_sample.get(i).to_vec();
        let size = stack.len() / B;
        let mut norms_squared = vec![0.0; B];
        for (b, want) in examples.iter().enumerate() {
            for (k, w) in want.iter().enumerate() {
                let got = stack[b * size + k];
                assert!(
                    (got - w).abs() < 1e-12 * (1.0 + w.abs()),
                    "param {i}, example {b}, element {k}: {got} vs {w}"
                );
            }
            norms_squared[b] = want.iter().map(|w| w * w).sum();
        }
        for (got, want) in per_sample
            .squared_norms(i)
            .to_vec()
            .iter()
            .zip(&norms_squared)
        {
            assert!(
                (got - want).abs() < 1e-12 * (1.0 + want),
                "param {i} squared norm {got} vs {want}"
            );
        }
    }
}

#[test]
fn a_weight_used_twice_and_a_broadcast_bias_match_the_loop() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(data());
    let w = tape.leaf(Tensor::from_fn([3, 3], |i| (i as f64 * 0.3).sin()));
    let b = tape.leaf(Tensor::from_fn([3], |i| i as f64 * 0.1 - 0.1));
    let c = tape.leaf(Tensor::from_fn([1, 3], |i| 0.5 - i as f64 * 0.2));
    // w twice (two outer-product parts), b broadcast from [3], c from [1, 3].
    let h = (x.matmul(w) + b).tanh();
    let out = (h.matmul(w) * c).sigmoid();
    let losses = out.square().sum(&[1], false);
    let per_sample = losses.try_per_sample_gradients(&[w, b, c]).unwrap();
    assert_eq!((per_sample.batch(), per_sample.len()), (B, 3));
    assert_matches(&per_sample, &by_loop(losses, &[w, b, c]));
}

#[test]
fn a_penalty_beside_the_losses_is_ignored_but_one_added_to_them_is_refused() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(data());
    let w = tape.leaf(Tensor::from_fn([3, 2], |i| (i as f64 * 0.7).cos()));
    // On the tape before the losses, but not part of them.
    let _penalty = w.square().sum_all();
    let losses = x.matmul(w).exp().sum(&[1], false);
    let per_sample = losses.try_per_sample_gradients(&[w]).unwrap();
    assert_matches(&per_sample, &by_loop(losses, &[w]));
    let with_penalty = losses + w.square().sum_all();
    let error = with_penalty.try_per_sample_gradients(&[w]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("parameter 0 reaches the batch through"),
        "{error}"
    );
}

#[test]
fn ops_that_mix_examples_are_named() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(data());
    let w = tape.leaf(Tensor::from_fn([3, 3], |i| (i as f64 * 0.3).sin()));
    let h = x.matmul(w);
    let cases: Vec<(Var<'_, f64>, &str)> = vec![
        (
            (h - h.mean(&[0], true)).square().sum(&[1], false),
            "reduces over the batch axis",
        ),
        (h.narrow(0, 1, 2).pad(0, 1, 1).sum(&[1], false), "'narrow'"),
        (h.t().t().sum(&[1], false), "'permute'"),
        (
            h.reshape([B * 3]).reshape([B, 3]).sum(&[1], false),
            "'reshape'",
        ),
    ];
    for (losses, expected) in cases {
        let error = losses.try_per_sample_gradients(&[w]).unwrap_err();
        assert!(
            matches!(
                error,
                AutogradError::Transform {
                    op: "per_sample_gradients",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
    let index = tensor::Indices::new(vec![0; 3], [1, 3]).unwrap();
    let square = tape.leaf(Tensor::from_fn([3, B], |i| (i as f64 * 0.2).sin()));
    let a = x.matmul(square); // [B, B]
    let more: Vec<(Var<'_, f64>, &str)> = vec![
        (h.broadcast_to([2, B, 3]).sum(&[0, 2], false), "'expand'"),
        (h.broadcast_to([B, B, 3]).sum(&[1, 2], false), "'expand'"),
        (h.pad(0, 1, 0).narrow(0, 0, B).sum(&[1], false), "'pad'"),
        (
            h.gather(0, &index).broadcast_to([B, 3]).sum(&[1], false),
            "'gather'",
        ),
        (
            h.scatter_add_into(
                &[B, 3].into(),
                0,
                &tensor::Indices::new(vec![0; B * 3], [B, 3]).unwrap(),
            )
            .sum(&[1], false),
            "'scatter_add'",
        ),
        (
            a.matmul(a).sum(&[1], false),
            "multiplies across the batch axis",
        ),
        (
            tape.custom_op(autograd::testing::Cube, &[h])
                .sum(&[1], false),
            "custom op",
        ),
    ];
    for (losses, expected) in more {
        let error = losses.try_per_sample_gradients(&[w, square]).unwrap_err();
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
    let unrelated = tape.constant(Tensor::ones([B])).exp();
    let error = unrelated.try_per_sample_gradients(&[w]).unwrap_err();
    assert!(
        error.to_string().contains("do not depend on any parameter"),
        "{error}"
    );
    let error = tape
        .leaf(Tensor::ones([B]))
        .exp()
        .try_per_sample_gradients(&[w])
        .unwrap_err();
    assert!(error.to_string().contains("parameters alone"), "{error}");
}

#[test]
fn the_clipped_sum_clips_each_example_to_the_bound_and_sums() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(data());
    let w = tape.leaf(Tensor::from_fn([3, 2], |i| (i as f64 * 0.7).cos()));
    let b = tape.leaf(Tensor::from_fn([2], |i| i as f64 * 0.3));
    let losses = (x.matmul(w) + b).exp().sum(&[1], false);
    let per_sample = losses.try_per_sample_gradients(&[w, b]).unwrap();
    assert!(!per_sample.is_empty());
    let reference = by_loop(losses, &[w, b]);
    let norms: Vec<f64> = (0..B)
        .map(|e| {
            reference
                .iter()
                .map(|param| param[e].iter().map(|g| g * g).sum::<f64>())
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let max_norm = norms.iter().cloned().fold(f64::INFINITY, f64::min) * 1.5;
    assert!(norms.iter().any(|&n| n > max_norm) && norms.iter().any(|&n| n < max_norm));
    let clipped = per_sample.clipped_sum(max_norm);
    assert_eq!(clipped.len(), 2);
    for (i, param) in reference.iter().enumerate() {
        let mut want = vec![0.0; param[0].len()];
        for (e, gradient) in param.iter().enumerate() {
            let factor = (max_norm / (norms[e] + 1e-6)).min(1.0);
            for (w, g) in want.iter_mut().zip(gradient) {
                *w += factor * g;
            }
        }
        for (got, want) in clipped[i].to_vec().iter().zip(&want) {
            assert!(
                (got - want).abs() < 1e-12 * (1.0 + want.abs()),
                "param {i}: {got} vs {want}"
            );
        }
    }
    let none = losses.try_per_sample_gradients(&[]).unwrap();
    assert!(none.is_empty());
    assert_eq!(none.norms().to_vec(), vec![0.0; B]);
}

#[test]
fn per_example_batched_products_and_regrouped_rows_are_allowed() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(Tensor::from_fn([B, 2, 3], |i| (i as f64 * 0.3).cos()));
    let w = tape.leaf(Tensor::from_fn([3, 2], |i| (i as f64 * 0.5).sin()));
    let v = tape.leaf(Tensor::from_fn([2], |i| 1.0 + i as f64));
    // Each example's [2, 3] matrix times the shared w, multiplied by its own transpose (a
    // per-example batched product), regrouped and reduced per example.
    let h = x.matmul(w).tanh(); // [B, 2, 2]
    let g = h.matmul(h.permute(&[0, 2, 1])); // [B, 2, 2], rows stay per example
    let losses = (g.reshape([B, 4]).reshape([B, 2, 2]).sum(&[2], false) * v)
        .sum(&[1], true)
        .reshape([B]);
    let per_sample = losses.try_per_sample_gradients(&[v]).unwrap();
    assert_matches(&per_sample, &by_loop(losses, &[v]));
    // The shared weight of a batched product is not one of the supported uses (yet).
    let error = losses.try_per_sample_gradients(&[w, v]).unwrap_err();
    assert!(error.to_string().contains("is used by 'matmul'"), "{error}");
}
