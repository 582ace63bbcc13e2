//! Reductions against naive loops over multi-indices written here: sum, mean, max, min,
//! variance, logsumexp, argmax/argmin and sum_to, over random axis subsets, with and without
//! keepdim, in f32 and f64.
//!
//! The crate documents the order in which every output adds its reduced elements (row-major
//! order: sequentially under 32 elements, else in 16 lanes, a fixed tree, then the rest), so
//! sums (and max/min, which do not depend on order) are compared exactly against that order
//! written out here, in the same element type. Mean, variance and logsumexp are compared
//! against f64 references with error bounds stated next to each check.

mod common;

use common::*;
use proptest::prelude::*;
use tensor::{DType, Float, Tensor};

/// The output shape of reducing `axes` of `dims`, by the documented rule.
fn reduced_dims(dims: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .filter_map(|(axis, &d)| match (axes.contains(&axis), keepdim) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// For every output position (row-major), its input elements in row-major input order.
fn groups<T: Copy>(values: &[T], dims: &[usize], axes: &[usize]) -> Vec<Vec<T>> {
    let out_dims = reduced_dims(dims, axes, true);
    let mut out = vec![Vec::new(); numel(&out_dims)];
    for index in multi_indices(dims) {
        let kept: Vec<usize> = index
            .iter()
            .enumerate()
            .map(|(axis, &i)| if axes.contains(&axis) { 0 } else { i })
            .collect();
        out[flat(&out_dims, &kept)].push(values[flat(dims, &index)]);
    }
    out
}

/// The documented order of a sum over a group (its elements in row-major order): fewer than
/// 32 one after the other from 0; else element i into lane i % 16 for the first 16 * (n / 16),
/// lanes combined by halving (lane l += lane l + w for w = 8, 4, 2, 1), then the rest in order.
fn documented_sum<T: Float>(group: &[T]) -> T {
    if group.len() < 32 {
        return group.iter().fold(T::ZERO, |s, &x| s + x);
    }
    let full = group.len() / 16 * 16;
    let mut lanes = [T::ZERO; 16];
    for (i, &x) in group[..full].iter().enumerate() {
        lanes[i % 16] += x;
    }
    for width in [8, 4, 2, 1] {
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    group[full..].iter().fold(lanes[0], |s, &x| s + x)
}

fn naive_max<T: Float>(group: &[T]) -> T {
    let mut best = T::NEG_INFINITY;
    for &x in group {
        if x.is_nan() || best.is_nan() {
            best = T::NAN;
        } else if x > best {
            best = x;
        }
    }
    best
}

fn naive_min<T: Float>(group: &[T]) -> T {
    let mut best = T::INFINITY;
    for &x in group {
        if x.is_nan() || best.is_nan() {
            best = T::NAN;
        } else if x < best {
            best = x;
        }
    }
    best
}

/// log(sum(exp(x - max))) + max in f64, with the limits for an infinite maximum.
fn naive_logsumexp(group: &[f64]) -> f64 {
    let max = group.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    });
    if !max.is_finite() {
        // NaN stays NaN, +inf dominates, and all -inf gives log(0) = -inf.
        return max;
    }
    group.iter().map(|&x| (x - max).exp()).sum::<f64>().ln() + max
}

fn check_exact<T: Float>(
    what: &str,
    actual: &Tensor<T>,
    dims: &[usize],
    expected: &[T],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.dims(), dims, "{}: shape", what);
    let actual = actual.to_vec();
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!(
            same_value(a.to_f64(), e.to_f64()),
            "{}: output {} is {:?}, expected {:?}",
            what,
            i,
            a,
            e
        );
    }
    Ok(())
}

fn check_reductions<T: Float>(
    dims: &[usize],
    seed: u64,
    kind: Values,
    axes: &[usize],
    keepdim: bool,
) -> Result<(), TestCaseError> {
    let raw = values(seed, numel(dims), kind);
    let x = tensor::<T>(&raw, dims);
    let xs = x.to_vec();
    let out_dims = reduced_dims(dims, axes, keepdim);
    let groups = groups(&xs, dims, axes);
    let eps = T::EPSILON.to_f64();

    let sums: Vec<T> = groups.iter().map(|g| documented_sum(g)).collect();
    check_exact("sum", &x.sum(axes, keepdim), &out_dims, &sums)?;
    let maxes: Vec<T> = groups.iter().map(|g| naive_max(g)).collect();
    let mins: Vec<T> = groups.iter().map(|g| naive_min(g)).collect();
    if groups.iter().all(|g| !g.is_empty()) {
        check_exact("max", &x.max(axes, keepdim), &out_dims, &maxes)?;
        check_exact("min", &x.min(axes, keepdim), &out_dims, &mins)?;
    }

    // mean = sum / n: one rounding of the exact sum's quotient, so within eps * |sum / n|, or
    // half the smallest subnormal when the quotient is subnormal.
    let smallest = match T::DTYPE {
        DType::F32 => f64::from(f32::from_bits(1)),
        DType::F64 => f64::from_bits(1),
    };
    let mean = x.mean(axes, keepdim);
    prop_assert_eq!(mean.dims(), out_dims.as_slice());
    for (i, (&m, g)) in mean.to_vec().iter().zip(&groups).enumerate() {
        let expected = sums[i].to_f64() / g.len() as f64;
        let m = m.to_f64();
        prop_assert!(
            same_value(m, expected) || (m - expected).abs() <= eps * expected.abs() + smallest,
            "mean {}: {} vs {}",
            i,
            m,
            expected
        );
    }

    if kind == Values::Finite {
        // Variance against a two-pass f64 reference. The crate's two-pass computation in T has
        // error below (n + 4) * eps * (var + max x^2) (rounded mean, rounded deviations, their
        // squares and a sequential sum); 4x that is the bound.
        for unbiased in [false, true] {
            let var = x.variance(axes, keepdim, unbiased);
            prop_assert_eq!(var.dims(), out_dims.as_slice());
            for (i, (&v, g)) in var.to_vec().iter().zip(&groups).enumerate() {
                let n = g.len();
                let g64: Vec<f64> = g.iter().map(|x| x.to_f64()).collect();
                let mean = g64.iter().sum::<f64>() / n as f64;
                let squares: f64 = g64.iter().map(|x| (x - mean) * (x - mean)).sum();
                let divisor = if unbiased { n.saturating_sub(1) } else { n };
                let expected = squares / divisor as f64;
                let v = v.to_f64();
                let max_sq = g64.iter().fold(0.0f64, |m, x| m.max(x * x));
                let tolerance = 4.0 * (n as f64 + 4.0) * eps * (expected.abs() + max_sq);
                prop_assert!(
                    same_value(v, expected) || (v - expected).abs() <= tolerance,
                    "variance(unbiased={}) {}: {} vs {} (n = {})",
                    unbiased,
                    i,
                    v,
                    expected,
                    n
                );
            }
        }
    }

    if groups.iter().all(|g| !g.is_empty()) {
        check_logsumexp(&x, axes, keepdim, &out_dims, &groups)?;
    }
    Ok(())
}

/// logsumexp against the f64 reference: the crate's value has error below (n + 4) * eps *
/// (1 + |result|) (n roundings in the sum of terms in (0, 1], a log of a value >= 1, and the
/// final shift), eps being the tested type's.
fn check_logsumexp<T: Float>(
    x: &Tensor<T>,
    axes: &[usize],
    keepdim: bool,
    out_dims: &[usize],
    groups: &[Vec<T>],
) -> Result<(), TestCaseError> {
    let eps = T::EPSILON.to_f64();
    let lse = x.logsumexp(axes, keepdim);
    prop_assert_eq!(lse.dims(), out_dims);
    for (i, (&l, g)) in lse.to_vec().iter().zip(groups).enumerate() {
        let g64: Vec<f64> = g.iter().map(|x| x.to_f64()).collect();
        let expected = naive_logsumexp(&g64);
        let l = l.to_f64();
        let tolerance = (g.len() as f64 + 4.0) * eps * (1.0 + expected.abs());
        prop_assert!(
            same_value(l, expected) || (l - expected).abs() <= tolerance,
            "logsumexp {}: {} vs {} over {:?}",
            i,
            l,
            expected,
            g
        );
        if g64.iter().all(|v| v.is_finite()) {
            prop_assert!(l.is_finite(), "logsumexp of finite inputs is {}", l);
        }
    }
    Ok(())
}

/// For each position of the other axes (row-major), the first index of the largest element
/// along `axis`; NaN counts as the largest.
fn naive_arg<T: Float>(
    values: &[T],
    dims: &[usize],
    axis: usize,
    better: fn(T, T) -> bool,
) -> Vec<usize> {
    let mut rest = dims.to_vec();
    rest.remove(axis);
    multi_indices(&rest)
        .into_iter()
        .map(|outer| {
            let at = |i: usize| {
                let mut index = outer.clone();
                index.insert(axis, i);
                values[flat(dims, &index)]
            };
            let mut best = 0;
            for i in 1..dims[axis] {
                let (x, b) = (at(i), at(best));
                if !b.is_nan() && (x.is_nan() || better(x, b)) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

fn check_arg<T: Float>(dims: &[usize], seed: u64) -> Result<(), TestCaseError> {
    let x = tensor::<T>(&values(seed, numel(dims), Values::WithSpecials), dims);
    let xs = x.to_vec();
    for axis in 0..dims.len() {
        let others_empty = dims.iter().enumerate().any(|(a, &d)| a != axis && d == 0);
        if dims[axis] == 0 && !others_empty {
            prop_assert!(x.try_argmax(axis).is_err());
            continue;
        }
        prop_assert_eq!(
            x.argmax(axis),
            naive_arg(&xs, dims, axis, |a, b| a > b),
            "argmax({})",
            axis
        );
        prop_assert_eq!(
            x.argmin(axis),
            naive_arg(&xs, dims, axis, |a, b| a < b),
            "argmin({})",
            axis
        );
    }
    Ok(())
}

fn check_sum_to<T: Float>(from: &[usize], to: &[usize], seed: u64) -> Result<(), TestCaseError> {
    // `from` broadcasts to `to`; sum_to goes back.
    let x = tensor::<T>(&values(seed, numel(to), Values::WithSpecials), to);
    let xs = x.to_vec();
    let lead = to.len() - from.len();
    // Each output's elements in row-major order of `to`, summed in the documented order.
    let mut groups = vec![Vec::new(); numel(from)];
    for index in multi_indices(to) {
        let target: Vec<usize> = from
            .iter()
            .enumerate()
            .map(|(axis, &d)| if d == 1 { 0 } else { index[lead + axis] })
            .collect();
        groups[flat(from, &target)].push(xs[flat(to, &index)]);
    }
    let expected: Vec<T> = groups.iter().map(|g| documented_sum(g)).collect();
    check_exact("sum_to", &x.sum_to(from), from, &expected)?;
    // Summing a broadcast back multiplies by the number of copies (exact for these integers).
    let small: Vec<f64> = (0..numel(from)).map(|i| (i % 7) as f64 - 3.0).collect();
    let source = tensor::<T>(&small, from);
    let copies = if numel(from) == 0 {
        0
    } else {
        numel(to) / numel(from)
    };
    let back = source.broadcast_to(to).sum_to(from);
    let expected: Vec<T> = small
        .iter()
        .map(|&v| T::from_f64(v * copies as f64))
        .collect();
    check_exact("sum_to(broadcast_to)", &back, from, &expected)
}

fn reduction_args() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, bool)> {
    shape().prop_flat_map(|dims| {
        let rank = dims.len();
        (Just(dims), axes_subset(rank), any::<bool>())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reductions_match_naive_loops(
        (dims, axes, keepdim) in reduction_args(),
        seed in any::<u64>(),
        specials in any::<bool>(),
    ) {
        let kind = if specials { Values::WithSpecials } else { Values::Finite };
        check_reductions::<f64>(&dims, seed, kind, &axes, keepdim)?;
        check_reductions::<f32>(&dims, seed, kind, &axes, keepdim)?;
    }

    #[test]
    fn full_reductions_match_naive_loops(dims in shape(), seed in any::<u64>()) {
        let raw = values(seed, numel(&dims), Values::WithSpecials);
        let x = tensor::<f64>(&raw, &dims);
        let total = documented_sum(&raw);
        prop_assert_eq!(x.sum_all().rank(), 0);
        prop_assert!(same_value(x.sum_all().item(), total));
        // The documented formula (shared with autograd): the sum times 1/n.
        prop_assert!(same_value(x.mean_all().item(), total * (1.0 / raw.len() as f64)));
        if !raw.is_empty() {
            prop_assert!(same_value(x.max_all().item(), naive_max(&raw)));
            prop_assert!(same_value(x.min_all().item(), naive_min(&raw)));
        }
    }

    #[test]
    fn argmax_and_argmin_match_naive_loops(dims in shape(), seed in any::<u64>()) {
        check_arg::<f64>(&dims, seed)?;
        check_arg::<f32>(&dims, seed)?;
    }

    #[test]
    fn sum_to_matches_naive_loop((to, from) in broadcast_target_and_source(), seed in any::<u64>()) {
        check_sum_to::<f64>(&from, &to, seed)?;
        check_sum_to::<f32>(&from, &to, seed)?;
    }

    #[test]
    fn logsumexp_is_finite_and_accurate_at_large_magnitudes(
        (dims, axes, keepdim) in nonempty_shape().prop_flat_map(|dims| {
            let rank = dims.len();
            (Just(dims), axes_subset(rank), any::<bool>())
        }),
        picks in proptest::collection::vec(0..6usize, 625),
    ) {
        const LARGE: [f64; 6] = [1e4, -1e4, 9999.5, -9997.0, 1e4 - 1.0 / 64.0, 0.0];
        let raw: Vec<f64> = picks[..numel(&dims)].iter().map(|&i| LARGE[i]).collect();
        for_both(&raw, &dims, &axes, keepdim)?;
    }
}

fn for_both(
    raw: &[f64],
    dims: &[usize],
    axes: &[usize],
    keepdim: bool,
) -> Result<(), TestCaseError> {
    fn one<T: Float>(
        raw: &[f64],
        dims: &[usize],
        axes: &[usize],
        keepdim: bool,
    ) -> Result<(), TestCaseError> {
        let x = tensor::<T>(raw, dims);
        let groups = groups(&x.to_vec(), dims, axes);
        check_logsumexp(
            &x,
            axes,
            keepdim,
            &reduced_dims(dims, axes, keepdim),
            &groups,
        )
    }
    one::<f64>(raw, dims, axes, keepdim)?;
    one::<f32>(raw, dims, axes, keepdim)
}

#[test]
fn logsumexp_limits_at_infinities() {
    let t = |v: Vec<f64>| Tensor::from_vec(v, [2]).unwrap();
    let lse = |v: Vec<f64>| t(v).logsumexp(&[0], false).item();
    assert_eq!(lse(vec![f64::NEG_INFINITY; 2]), f64::NEG_INFINITY);
    assert_eq!(lse(vec![f64::INFINITY, 1.0]), f64::INFINITY);
    assert_eq!(lse(vec![f64::NEG_INFINITY, 3.0]), 3.0);
    assert!(lse(vec![f64::NAN, 1.0]).is_nan());
    // Two equal large logits: x + ln 2.
    assert_eq!(lse(vec![1e4, 1e4]), 1e4 + std::f64::consts::LN_2);
}

#[test]
fn reductions_over_empty_axes() {
    let empty = Tensor::<f64>::zeros([2, 0, 3]);
    assert_eq!(empty.sum(&[1], false).to_vec(), vec![0.0; 6]);
    assert_eq!(empty.sum(&[1], true).dims(), &[2, 1, 3]);
    assert!(empty.mean(&[1], false).to_vec().iter().all(|m| m.is_nan()));
    // No outputs: nothing to reduce, so no error even for max.
    assert_eq!(empty.max(&[0, 2], false).dims(), &[0]);
    assert_eq!(empty.sum_all().item(), 0.0);
}

/// argmax/argmin over a leading axis of a rank-3 tensor list their results in row-major order
/// of the remaining axes (regression: they came out in the order of a transposed view).
#[test]
fn argmax_over_a_leading_axis_keeps_the_other_axes_in_order() {
    // x[0] is all zeros; x[1] = [[1, 0, 1], [0, 0, 1]].
    let mut values = vec![0.0_f64; 6];
    values.extend([1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    let x = Tensor::from_vec(values, [2, 2, 3]).unwrap();
    assert_eq!(x.argmax(0), vec![1, 0, 1, 0, 0, 1]);
    assert_eq!(x.argmin(0), vec![0, 0, 0, 0, 0, 0]);
    // Along the middle axis of [2, 2, 3]: outputs in (i, k) order.
    assert_eq!(x.argmax(1), vec![0, 0, 0, 0, 0, 0]);
    assert_eq!(x.argmin(1), vec![0, 0, 0, 1, 0, 0]);
}
