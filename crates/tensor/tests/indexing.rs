//! gather, scatter_add, index_select, pad, concat, stack and one_hot against naive index loops
//! written here. Inputs are small integers (exactly representable, so sums of repeated scatter
//! indices are exact in any order).

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use tensor::{Indices, Tensor};

/// Integer values in [-8, 8] from `seed`.
fn integers(seed: u64, n: usize) -> Vec<f64> {
    values(seed, n, Values::Finite)
        .into_iter()
        .map(|v| (v * 0.8).round())
        .collect()
}

/// A tensor shape of rank >= 1, an axis, and the size of the index along that axis.
fn axis_case() -> impl Strategy<Value = (Vec<usize>, usize, usize)> {
    shape_rank_at_least_one().prop_flat_map(|dims| {
        let rank = dims.len();
        (Just(dims), 0..rank, 0..=5usize)
    })
}

fn with_axis(index: &[usize], axis: usize, value: usize) -> Vec<usize> {
    let mut index = index.to_vec();
    index[axis] = value;
    index
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gather_and_scatter_add_match_naive_loops(
        (dims, axis, picks) in axis_case(),
        seed in any::<u64>(),
    ) {
        let length = dims[axis];
        let index_dims = with_axis(&dims, axis, picks);
        prop_assume!(length > 0 || numel(&index_dims) == 0);
        let picked: Vec<usize> = integers(seed ^ 7, numel(&index_dims))
            .into_iter()
            .map(|v| (v.abs() as usize) % length.max(1))
            .collect();
        let index = Indices::new(picked.clone(), index_dims.as_slice()).unwrap();
        let xv = integers(seed, numel(&dims));
        let x = tensor::<f64>(&xv, &dims);

        let gathered = x.gather(axis, &index);
        prop_assert_eq!(gathered.dims(), index_dims.as_slice());
        let expected: Vec<f64> = multi_indices(&index_dims)
            .iter()
            .map(|i| xv[flat(&dims, &with_axis(i, axis, picked[flat(&index_dims, i)]))])
            .collect();
        prop_assert_eq!(gathered.to_vec(), expected);

        let sv = integers(seed ^ 3, numel(&index_dims));
        let source = tensor::<f64>(&sv, &index_dims);
        let scattered = x.scatter_add(axis, &index, &source);
        let mut expected = xv.clone();
        for i in multi_indices(&index_dims) {
            let k = flat(&index_dims, &i);
            expected[flat(&dims, &with_axis(&i, axis, picked[k]))] += sv[k];
        }
        prop_assert_eq!(scattered.dims(), dims.as_slice());
        prop_assert_eq!(scattered.to_vec(), expected);
        prop_assert_eq!(x.to_vec(), xv, "scatter_add changed its input");

        // scatter_add is the transpose of gather: <gather(x), s> = <x, scatter_add(0, s)>.
        let lhs = x.gather(axis, &index).mul(&source).sum_all().item();
        let rhs = x.mul(&Tensor::zeros(dims.as_slice()).scatter_add(axis, &index, &source)).sum_all().item();
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn index_select_matches_naive_loop(
        (dims, axis, _) in axis_case(),
        picks in vec(0..100usize, 0..6),
        seed in any::<u64>(),
    ) {
        let length = dims[axis];
        prop_assume!(length > 0 || picks.is_empty());
        let picks: Vec<usize> = picks.into_iter().map(|p| p % length.max(1)).collect();
        let xv = integers(seed, numel(&dims));
        let x = tensor::<f32>(&xv, &dims);
        let selected = x.index_select(axis, &picks);
        let out_dims = with_axis(&dims, axis, picks.len());
        prop_assert_eq!(selected.dims(), out_dims.as_slice());
        let expected: Vec<f32> = multi_indices(&out_dims)
            .iter()
            .map(|i| xv[flat(&dims, &with_axis(i, axis, picks[i[axis]]))] as f32)
            .collect();
        prop_assert_eq!(selected.to_vec(), expected);
    }

    #[test]
    fn pad_matches_naive_loop_and_narrow_undoes_it(
        (dims, axis, _) in axis_case(),
        before in 0..=3usize,
        after in 0..=3usize,
        seed in any::<u64>(),
    ) {
        let xv = integers(seed, numel(&dims));
        let x = tensor::<f64>(&xv, &dims);
        let padded = x.pad(axis, before, after);
        let out_dims = with_axis(&dims, axis, dims[axis] + before + after);
        prop_assert_eq!(padded.dims(), out_dims.as_slice());
        let expected: Vec<f64> = multi_indices(&out_dims)
            .iter()
            .map(|i| {
                let j = i[axis];
                if j < before || j >= before + dims[axis] {
                    0.0
                } else {
                    xv[flat(&dims, &with_axis(i, axis, j - before))]
                }
            })
            .collect();
        prop_assert_eq!(padded.to_vec(), expected);
        prop_assert_eq!(padded.narrow(axis, before, dims[axis]).to_vec(), xv);
    }

    #[test]
    fn concat_and_stack_match_naive_loops(
        (dims, axis, _) in axis_case(),
        sizes in vec(dim(), 1..=3),
        seed in any::<u64>(),
    ) {
        let parts: Vec<(Vec<usize>, Vec<f64>)> = sizes
            .iter()
            .enumerate()
            .map(|(n, &size)| {
                let d = with_axis(&dims, axis, size);
                let v = integers(seed.wrapping_add(n as u64), numel(&d));
                (d, v)
            })
            .collect();
        let tensors: Vec<Tensor<f64>> = parts.iter().map(|(d, v)| tensor(v, d)).collect();
        let refs: Vec<&Tensor<f64>> = tensors.iter().collect();
        let joined = Tensor::concat(&refs, axis).unwrap();
        let out_dims = with_axis(&dims, axis, sizes.iter().sum());
        prop_assert_eq!(joined.dims(), out_dims.as_slice());
        let expected: Vec<f64> = multi_indices(&out_dims)
            .iter()
            .map(|i| {
                let (mut part, mut j) = (0, i[axis]);
                while j >= sizes[part] {
                    j -= sizes[part];
                    part += 1;
                }
                let (d, v) = &parts[part];
                v[flat(d, &with_axis(i, axis, j))]
            })
            .collect();
        prop_assert_eq!(joined.to_vec(), expected);

        // stack: equal shapes along a new axis (which may be the last).
        let same: Vec<Tensor<f64>> = (0..sizes.len())
            .map(|n| tensor(&integers(seed ^ (n as u64 + 100), numel(&dims)), &dims))
            .collect();
        let refs: Vec<&Tensor<f64>> = same.iter().collect();
        for new_axis in [axis, dims.len()] {
            let stacked = Tensor::stack(&refs, new_axis).unwrap();
            let mut out_dims = dims.clone();
            out_dims.insert(new_axis, same.len());
            prop_assert_eq!(stacked.dims(), out_dims.as_slice());
            let expected: Vec<f64> = multi_indices(&out_dims)
                .iter()
                .map(|i| {
                    let mut inner = i.clone();
                    let which = inner.remove(new_axis);
                    same[which].get(&inner)
                })
                .collect();
            prop_assert_eq!(stacked.to_vec(), expected);
        }
    }

    #[test]
    fn one_hot_matches_definition(labels in vec(0..6usize, 0..8), classes in 6..9usize) {
        let encoded = Tensor::<f32>::one_hot(&labels, classes).unwrap();
        prop_assert_eq!(encoded.dims(), &[labels.len(), classes][..]);
        for (row, &label) in labels.iter().enumerate() {
            for class in 0..classes {
                let expected = if class == label { 1.0 } else { 0.0 };
                prop_assert_eq!(encoded.get(&[row, class]), expected);
            }
        }
    }
}
