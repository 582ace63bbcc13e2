//! matmul against a naive triple loop computed in f64, in f32 and f64, for plain, transposed,
//! sliced and batch-permuted operands, batched 3-D x 3-D, 3-D x 2-D, 2-D x 3-D and broadcast
//! batches of 1.
//!
//! Tolerances, per output element c = sum_p a_ip b_pj with s = sum_p |a_ip| |b_pj| (the
//! reference is the exact-input product accumulated in f64):
//! - f64: |c - ref| <= 1e-12 * s (a relative bound on the terms; the standard dot-product
//!   error bound is k * 2^-53 * s, far below it for the k used here);
//! - f32: |c - ref| <= k * f32::EPSILON * s (twice the standard bound k * 2^-24 * s).
//!
//! When s is 0 the product must be exactly 0.

mod common;

use common::*;
use proptest::prelude::*;
use tensor::{DType, Float, Tensor};

/// How an operand of logical shape `[batch?, rows, cols]` is laid out in storage.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// Row-major `[batch?, rows, cols]`.
    Plain,
    /// `.t()` of a row-major `[batch?, cols, rows]` tensor.
    Transposed,
    /// Narrowed out of a larger row-major `[batch?, row0 + rows + extra, col0 + cols + extra]`.
    Sliced {
        row0: usize,
        col0: usize,
        extra: usize,
    },
    /// 3-D only: `permute([1, 0, 2])` of a row-major `[rows, batch, cols]` tensor.
    BatchInside,
    /// 3-D only: `permute([1, 2, 0])` of a row-major `[cols, batch, rows]` tensor, whose batch
    /// stride equals rows times its row stride.
    BatchMajorColumns,
}

/// An operand and its logical matrices (row-major, as the f64 values of the stored elements).
struct Operand<T: Float> {
    tensor: Tensor<T>,
    matrices: Vec<Vec<f64>>,
}

/// Storage position of element `(i, j)` of matrix `m` of an operand.
type StoragePosition = Box<dyn Fn(usize, usize, usize) -> usize>;

fn operand<T: Float>(
    batch: Option<usize>,
    rows: usize,
    cols: usize,
    form: Form,
    seed: u64,
) -> Operand<T> {
    let b = batch.unwrap_or(1);
    let with_batch =
        |dims: &[usize]| -> Vec<usize> { batch.into_iter().chain(dims.iter().copied()).collect() };
    let (storage_dims, read): (Vec<usize>, StoragePosition) = match form {
        Form::Plain => (
            with_batch(&[rows, cols]),
            Box::new(move |m, i, j| (m * rows + i) * cols + j),
        ),
        Form::Transposed => (
            with_batch(&[cols, rows]),
            Box::new(move |m, i, j| (m * cols + j) * rows + i),
        ),
        Form::Sliced { row0, col0, extra } => {
            let (big_rows, big_cols) = (row0 + rows + extra, col0 + cols + extra);
            (
                with_batch(&[big_rows, big_cols]),
                Box::new(move |m, i, j| (m * big_rows + row0 + i) * big_cols + col0 + j),
            )
        }
        Form::BatchInside => (
            vec![rows, b, cols],
            Box::new(move |m, i, j| (i * b + m) * cols + j),
        ),
        Form::BatchMajorColumns => (
            vec![cols, b, rows],
            Box::new(move |m, i, j| (j * b + m) * rows + i),
        ),
    };
    let stored: Vec<T> = cast_values(&values(seed, numel(&storage_dims), Values::Finite));
    let base = Tensor::from_vec(stored.clone(), storage_dims.as_slice()).unwrap();
    let r = storage_dims.len();
    let tensor = match form {
        Form::Plain => base,
        Form::Transposed => base.t(),
        Form::Sliced { row0, col0, .. } => base.narrow(r - 2, row0, rows).narrow(r - 1, col0, cols),
        Form::BatchInside => base.permute(&[1, 0, 2]),
        Form::BatchMajorColumns => base.permute(&[1, 2, 0]),
    };
    assert_eq!(tensor.dims(), with_batch(&[rows, cols]).as_slice());
    let matrices = (0..b)
        .map(|m| {
            (0..rows * cols)
                .map(|e| stored[read(m, e / cols, e % cols)].to_f64())
                .collect()
        })
        .collect();
    Operand { tensor, matrices }
}

/// Checks `a.matmul(b)` against the triple loop; `a` has `m x k` matrices, `b` has `k x n`.
fn check_product<T: Float>(
    a: &Operand<T>,
    b: &Operand<T>,
    m: usize,
    k: usize,
    n: usize,
    expected_dims: &[usize],
) -> Result<(), TestCaseError> {
    let c = a.tensor.matmul(&b.tensor);
    prop_assert_eq!(c.dims(), expected_dims);
    prop_assert!(c.is_contiguous());
    let c = c.to_vec();
    let batch = if expected_dims.len() == 3 {
        expected_dims[0]
    } else {
        1
    };
    let pick = |matrices: &[Vec<f64>], index: usize| -> usize {
        if matrices.len() == 1 { 0 } else { index }
    };
    for index in 0..batch {
        let (am, bm) = (
            &a.matrices[pick(&a.matrices, index)],
            &b.matrices[pick(&b.matrices, index)],
        );
        for i in 0..m {
            for j in 0..n {
                let (mut reference, mut magnitude) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let term = am[i * k + p] * bm[p * n + j];
                    reference += term;
                    magnitude += term.abs();
                }
                let tolerance = match T::DTYPE {
                    DType::F64 => 1e-12 * magnitude,
                    DType::F32 => k as f64 * f64::from(f32::EPSILON) * magnitude,
                };
                let actual = c[(index * m + i) * n + j].to_f64();
                prop_assert!(
                    (actual - reference).abs() <= tolerance,
                    "{:?} c[{}][{}][{}] = {:e}, reference {:e}, tolerance {:e}",
                    T::DTYPE,
                    index,
                    i,
                    j,
                    actual,
                    reference,
                    tolerance
                );
            }
        }
    }
    Ok(())
}

fn form_2d() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Plain),
        Just(Form::Transposed),
        (0..=3usize, 0..=3usize, 0..=2usize).prop_map(|(row0, col0, extra)| Form::Sliced {
            row0,
            col0,
            extra
        }),
    ]
}

fn form_3d() -> impl Strategy<Value = Form> {
    prop_oneof![
        3 => form_2d(),
        1 => Just(Form::BatchInside),
        1 => Just(Form::BatchMajorColumns),
    ]
}

/// Matrix sizes: mostly small (including 0 and 1), sometimes past the kernels' register tiles.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 2 => Just(1usize), 8 => 2..=6usize, 3 => 7..=24usize]
}

fn check_2d<T: Float>(
    (m, k, n): (usize, usize, usize),
    (fa, fb): (Form, Form),
    seed: u64,
) -> Result<(), TestCaseError> {
    let a = operand::<T>(None, m, k, fa, seed);
    let b = operand::<T>(None, k, n, fb, seed ^ 0x55);
    check_product(&a, &b, m, k, n, &[m, n])
}

/// `shapes` picks the batch layout: 0 both 3-D, 1 3-D x 2-D, 2 2-D x 3-D, 3 a batch of 1 on the
/// left against a full batch on the right, 4 the reverse.
fn check_3d<T: Float>(
    (batch, m, k, n): (usize, usize, usize, usize),
    (fa, fb): (Form, Form),
    shapes: u8,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (batch_a, batch_b) = match shapes {
        0 => (Some(batch), Some(batch)),
        1 => (Some(batch), None),
        2 => (None, Some(batch)),
        3 => (Some(1), Some(batch)),
        _ => (Some(batch), Some(1)),
    };
    // The batch-permuted forms are 3-D only.
    let two_d = |form: Form| match form {
        Form::BatchInside | Form::BatchMajorColumns => Form::Transposed,
        other => other,
    };
    let fa = if batch_a.is_some() { fa } else { two_d(fa) };
    let fb = if batch_b.is_some() { fb } else { two_d(fb) };
    let a = operand::<T>(batch_a, m, k, fa, seed);
    let b = operand::<T>(batch_b, k, n, fb, seed ^ 0x55);
    check_product(&a, &b, m, k, n, &[batch, m, n])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matmul_2d_matches_triple_loop(
        mkn in (size(), size(), size()),
        forms in (form_2d(), form_2d()),
        seed in any::<u64>(),
    ) {
        check_2d::<f64>(mkn, forms, seed)?;
        check_2d::<f32>(mkn, forms, seed)?;
    }

    #[test]
    fn matmul_batched_matches_triple_loop(
        bmkn in (0..=4usize, size(), size(), size()),
        forms in (form_3d(), form_3d()),
        shapes in 0..5u8,
        seed in any::<u64>(),
    ) {
        check_3d::<f64>(bmkn, forms, shapes, seed)?;
        check_3d::<f32>(bmkn, forms, shapes, seed)?;
    }
}

/// Sizes past matrixmultiply's cache blocks (k beyond one depth block, several row panels),
/// with transposed, sliced and batched operands.
#[test]
fn large_products_match_triple_loop() {
    fn run<T: Float>() {
        let sliced = Form::Sliced {
            row0: 3,
            col0: 5,
            extra: 2,
        };
        for (m, k, n, fa, fb) in [
            (70, 300, 9, Form::Transposed, Form::Plain),
            (5, 520, 33, sliced, Form::Transposed),
            (129, 17, 70, Form::Plain, sliced),
        ] {
            let a = operand::<T>(None, m, k, fa, 11);
            let b = operand::<T>(None, k, n, fb, 12);
            check_product(&a, &b, m, k, n, &[m, n]).unwrap();
        }
        let a = operand::<T>(Some(3), 40, 270, Form::BatchMajorColumns, 13);
        let b = operand::<T>(None, 270, 6, Form::Transposed, 14);
        check_product(&a, &b, 40, 270, 6, &[3, 40, 6]).unwrap();
    }
    run::<f64>();
    run::<f32>();
}

/// A hand-checkable product, so the reference loop itself is pinned down.
#[test]
fn small_product_by_hand() {
    let a = Tensor::from_vec(vec![1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let b = Tensor::from_vec(vec![7.0_f64, 8.0, 9.0, 10.0, 11.0, 12.0], [3, 2]).unwrap();
    // [1 2 3; 4 5 6] [7 8; 9 10; 11 12] = [58 64; 139 154]
    assert_eq!(a.matmul(&b).to_vec(), vec![58.0, 64.0, 139.0, 154.0]);
    // (B^T A^T) = (AB)^T
    assert_eq!(
        b.t().matmul(&a.t()).to_vec(),
        vec![58.0, 139.0, 64.0, 154.0]
    );
}
