//! Fuzz-target body (feature `fuzzing`): tensors built from raw shapes, strides and offsets.
//! The body panics only if the library breaks its contract: a strided tensor either is refused
//! with an error or reads exactly the elements its layout names, and every kernel run on it
//! agrees with a naive loop over those elements. The same body runs under cargo-fuzz (`fuzz/`)
//! and, over mutated seeds, in `cargo test` (`tests/fuzz_bodies.rs`).

use crate::Tensor;

/// A little-endian reader over the fuzzer's bytes that yields zeros when they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    /// A usize from 1, 2 or 8 bytes (chosen by a tag), so that both small values and values near
    /// `usize::MAX` (overflow) are reachable.
    fn size(&mut self) -> usize {
        match self.byte() % 4 {
            0 | 1 => usize::from(self.byte() % 8),
            2 => usize::from(u16::from_le_bytes([self.byte(), self.byte()])),
            _ => {
                let mut raw = [0u8; 8];
                raw.iter_mut().for_each(|b| *b = self.byte());
                u64::from_le_bytes(raw) as usize
            }
        }
    }
}

/// The storage position of every logical element of `shape` with `strides` and `offset`, in
/// row-major order, computed naively with checked arithmetic.
fn positions(shape: &[usize], strides: &[usize], offset: usize) -> Option<Vec<usize>> {
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    if count > 1 << 16 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let position = index
            .iter()
            .zip(strides)
            .try_fold(offset, |p, (&i, &s)| p.checked_add(i.checked_mul(s)?))?;
        out.push(position);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Some(out)
}

/// Builds a tensor from a data length, a shape, strides and an offset decoded from `bytes`,
/// and checks it against the naive positions; then its contiguous copy, sum, transpose and (for
/// a matrix) product with its own transpose against naive loops.
pub fn strided(bytes: &[u8]) {
    let mut input = Bytes(bytes);
    let len = usize::from(input.byte()) % 64;
    let rank = usize::from(input.byte() % 5);
    let shape: Vec<usize> = (0..rank).map(|_| input.size()).collect();
    let strides: Vec<usize> = (0..rank).map(|_| input.size()).collect();
    let offset = input.size();
    let data: Vec<f64> = (0..len).map(|i| i as f64 * 0.5 - 3.0).collect();
    let Ok(tensor) = Tensor::from_strided(data.clone(), shape.clone(), &strides, offset) else {
        return;
    };
    // Accepted: every position the layout names must lie inside the buffer.
    let expected: Vec<f64> = match positions(&shape, &strides, offset) {
        Some(positions) => positions
            .iter()
            .map(|&p| {
                *data
                    .get(p)
                    .expect("an accepted layout stays inside its buffer")
            })
            .collect(),
        None => return, // too many elements to check naively
    };
    assert_eq!(
        tensor.to_vec(),
        expected,
        "shape {shape:?} strides {strides:?} offset {offset}"
    );
    assert_eq!(tensor.contiguous().to_vec(), expected);
    let naive_sum: f64 = expected.iter().sum();
    let sum = tensor.sum_all().item();
    assert!(
        (sum - naive_sum).abs() <= 1e-9 * (1.0 + naive_sum.abs()),
        "sum {sum} vs {naive_sum}"
    );
    assert_eq!(
        tensor.map(|x| x * 2.0).to_vec(),
        expected.iter().map(|x| x * 2.0).collect::<Vec<_>>()
    );
    // Ops over every axis: each either returns or errors, never panics, and agrees in shape.
    // Reducing or padding an empty tensor can ask for far more elements than it holds: sizes
    // the machine cannot hold are errors (tested in the unit tests), and sizes it can but
    // should not fill here are skipped (an allocator that overcommits would only fail later).
    let affordable = |dims: &[usize]| {
        dims.iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_some_and(|n| n <= 1 << 16)
    };
    for axis in 0..rank {
        let mut others = shape.clone();
        others[axis] = 3;
        if !affordable(&others) {
            continue;
        }
        if let Ok(summed) = tensor.try_sum(&[axis], false) {
            assert_eq!(summed.rank(), rank - 1);
            let naive_total: f64 = expected.iter().sum();
            let total: f64 = summed.to_vec().iter().sum();
            assert!((total - naive_total).abs() <= 1e-9 * (1.0 + naive_total.abs()));
            assert!(tensor.try_mean(&[axis], true).is_ok());
            // max has no identity: an error over an empty axis when there are outputs.
            assert_eq!(
                tensor.try_max(&[axis], false).is_err(),
                shape[axis] == 0 && summed.numel() > 0
            );
        }
        let half = shape[axis] / 2;
        let narrowed = tensor
            .try_narrow(axis, half, shape[axis] - half)
            .expect("an in-range narrow");
        assert_eq!(narrowed.dims()[axis], shape[axis] - half);
        if let Ok(padded) = tensor.try_pad(axis, 1, 2) {
            assert_eq!(padded.dims()[axis], shape[axis] + 3);
            assert_eq!(
                padded
                    .try_narrow(axis, 1, shape[axis])
                    .expect("in range")
                    .to_vec(),
                expected
            );
        }
        if shape[axis] > 0 {
            if let Ok(picked) = tensor.try_index_select(axis, &[shape[axis] - 1, 0]) {
                assert_eq!(picked.dims()[axis], 2);
            }
        }
        let unsqueezed = tensor.try_unsqueeze(axis).expect("an axis <= rank");
        assert_eq!(unsqueezed.squeeze(axis).to_vec(), expected);
    }
    let reversed: Vec<usize> = (0..rank).rev().collect();
    assert_eq!(
        tensor.permute(&reversed).permute(&reversed).to_vec(),
        expected
    );
    // (Small matrices only: the product of a tall matrix with its transpose is huge.)
    if let [rows @ 0..=64, cols] = shape[..] {
        assert_eq!(tensor.t().t().to_vec(), expected);
        let product = tensor.matmul(&tensor.t());
        for i in 0..rows {
            for j in 0..rows {
                let naive: f64 = (0..cols)
                    .map(|k| expected[i * cols + k] * expected[j * cols + k])
                    .sum();
                let got = product.get(&[i, j]);
                assert!(
                    (got - naive).abs() <= 1e-9 * (1.0 + naive.abs()),
                    "[{i}, {j}]: {got} vs {naive}"
                );
            }
        }
    }
}

/// (name, data length, shape, strides, offset) of a seed.
type SeedLayout = (&'static str, u8, &'static [u16], &'static [u16], u16);

/// Seed inputs for [`strided`]: contiguous, transposed, broadcast, sliced and empty layouts, and
/// one whose strides overflow.
pub fn seed_corpus() -> Vec<(String, Vec<u8>)> {
    // (data length, shape, strides, offset), each size with tag 2 (two bytes).
    let cases: [SeedLayout; 6] = [
        ("contiguous", 12, &[3, 4], &[4, 1], 0),
        ("transposed", 12, &[4, 3], &[1, 4], 0),
        ("broadcast", 3, &[2, 3], &[0, 1], 0),
        ("sliced", 20, &[2, 2], &[5, 1], 6),
        ("empty", 4, &[0, 3], &[3, 1], 4),
        ("rank-3", 24, &[2, 3, 4], &[12, 4, 1], 0),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(name, len, shape, strides, offset)| {
            let mut bytes = vec![*len, shape.len() as u8];
            for value in shape
                .iter()
                .chain(strides.iter())
                .chain(std::iter::once(offset))
            {
                bytes.push(2);
                bytes.extend(value.to_le_bytes());
            }
            (name.to_string(), bytes)
        })
        .collect();
    // Empty and size-1 axes whose strides are huge (they are never stepped).
    let mut huge = vec![4, 3, 2, 2, 0, 2, 4, 0, 0, 0, 3];
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend([2, 2, 0, 3]);
    huge.extend((u64::MAX / 3).to_le_bytes());
    seeds.push(("huge-strides".to_string(), huge));
    // 274,177 x 67,280,421,310,721 = 2^64 + 1: a product that wraps to 1.
    let mut overflow = vec![1, 2, 3];
    overflow.extend(274_177_u64.to_le_bytes());
    overflow.push(3);
    overflow.extend(67_280_421_310_721_u64.to_le_bytes());
    overflow.extend([0, 0, 0, 0, 0, 0]);
    seeds.push(("overflow".to_string(), overflow));
    seeds
}
