//! Matrix products on matrixmultiply's packed kernels, with the views' strides passed straight
//! through: a transposed, sliced or broadcast operand is never copied.
//!
//! Threading: with the crate feature `threading` (on by default), matrixmultiply splits large
//! products over `MATMUL_NUM_THREADS` threads (read once, at the first product; default 1).
//! matrixmultiply itself keeps small products on the calling thread.

use crate::error::{Result, TensorError, or_panic};
use crate::float::Float;
use crate::gemm::MatrixView;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// One operand of a (batched) product: its matrices' rows, columns and strides, and the
/// storage step from one matrix of the batch to the next (0 when broadcast).
struct Operand<'a, T: Float> {
    tensor: &'a Tensor<T>,
    batch_stride: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Float> Operand<'a, T> {
    fn new(tensor: &'a Tensor<T>) -> Self {
        let (d, s) = (tensor.dims(), tensor.strides());
        let r = d.len();
        let batch_stride = if r == 3 && d[0] > 1 { s[0] } else { 0 };
        Operand {
            tensor,
            batch_stride,
            rows: d[r - 2],
            cols: d[r - 1],
            row_stride: s[r - 2],
            col_stride: s[r - 1],
        }
    }

    fn matrix(&self, batch: usize) -> MatrixView<'a, T> {
        let offset = self.tensor.layout().offset() + batch * self.batch_stride;
        MatrixView::new(
            self.tensor.storage(),
            offset,
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
        )
        .expect("a tensor's layout stays inside its storage")
    }
}

impl<T: Float> Tensor<T> {
    /// The matrix product. Supported operands:
    /// - `[m, k] x [k, n] -> [m, n]`;
    /// - `[b, m, k] x [b, k, n] -> [b, m, n]` (batched), where either batch may be 1 or absent
    ///   (a rank-2 operand is shared by every matrix of the batch).
    ///
    /// Operands may be any views (transposed, sliced, broadcast): their strides go to the
    /// kernel unchanged. Panics with both shapes if the inner dimensions differ.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    /// let b = Tensor::<f32>::ones([3, 1]);
    /// assert_eq!(a.matmul(&b).to_vec(), vec![6.0, 15.0]);
    /// // A transposed view reaches the kernel without a copy.
    /// assert_eq!(a.t().matmul(&a).dims(), &[3, 3]);
    /// let err = a.try_matmul(&a).unwrap_err();
    /// assert_eq!(err.to_string(), "matmul: inner dimensions differ: [2, 3] x [2, 3]");
    /// ```
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_matmul(rhs))
    }

    /// Fallible [`matmul`](Tensor::matmul).
    pub fn try_matmul(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        let (lr, rr) = (self.rank(), rhs.rank());
        let unsupported = || TensorError::MatmulOperands {
            lhs: self.shape().clone(),
            rhs: rhs.shape().clone(),
        };
        if !(2..=3).contains(&lr) || !(2..=3).contains(&rr) {
            return Err(unsupported());
        }
        let (a, b) = (Operand::new(self), Operand::new(rhs));
        if a.cols != b.rows {
            return Err(TensorError::MatmulInner {
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
            });
        }
        let batch_of = |t: &Tensor<T>| if t.rank() == 3 { t.dims()[0] } else { 1 };
        let (batch_a, batch_b) = (batch_of(self), batch_of(rhs));
        let batch = match (batch_a, batch_b) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(unsupported()),
        };
        let (m, n) = (a.rows, b.cols);
        let out_shape = if lr == 3 || rr == 3 {
            Shape::from([batch, m, n])
        } else {
            Shape::from([m, n])
        };
        // Empty inner dimensions make an output larger than both inputs possible.
        let numel = out_shape.checked_numel("matmul")?;
        crate::storage::check_allocation::<T>("matmul", numel)?;
        Ok(Tensor::from_overwrite(out_shape, |out| {
            if m == 0 || n == 0 {
                return;
            }
            // A batch of row-major-compatible left matrices against one shared right matrix is a
            // single tall product: one kernel call instead of `batch` calls.
            if batch > 1 && batch_b == 1 && Some(a.batch_stride) == m.checked_mul(a.row_stride) {
                let tall = MatrixView::new(
                    self.storage(),
                    self.layout().offset(),
                    batch * m, // at most the output's element count, checked above
                    a.cols,
                    a.row_stride,
                    a.col_stride,
                );
                if let Some(tall) = tall {
                    T::gemm(T::ONE, tall, b.matrix(0), T::ZERO, out);
                    return;
                }
            }
            for (index, chunk) in out.chunks_mut(m * n).enumerate() {
                T::gemm(T::ONE, a.matrix(index), b.matrix(index), T::ZERO, chunk);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Tensor<f64>, b: &Tensor<f64>) -> Vec<f64> {
        let (m, k, n) = (a.dims()[0], a.dims()[1], b.dims()[1]);
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a.get(&[i, p]) * b.get(&[p, j])).sum();
            }
        }
        out
    }

    #[test]
    fn plain_and_transposed_products_match_the_triple_loop() {
        let a = Tensor::from_vec((0..12).map(|x| x as f64 * 0.5).collect(), [3, 4]).unwrap();
        let b = Tensor::from_vec((0..8).map(|x| 1.0 - x as f64).collect(), [4, 2]).unwrap();
        assert_eq!(a.matmul(&b).to_vec(), naive(&a, &b));
        let at = a.t();
        assert_eq!(at.matmul(&a).to_vec(), naive(&at, &a));
    }

    #[test]
    fn batched_products_broadcast_a_shared_matrix() {
        let a = Tensor::from_vec((0..12).map(f64::from).collect(), [2, 2, 3]).unwrap();
        let b = Tensor::from_vec((0..6).map(f64::from).collect(), [3, 2]).unwrap();
        let c = a.matmul(&b);
        assert_eq!(c.dims(), &[2, 2, 2]);
        for batch in 0..2 {
            let slice = a.narrow(0, batch, 1).reshape([2, 3]);
            assert_eq!(c.narrow(0, batch, 1).to_vec(), naive(&slice, &b));
        }
        let shared_left = b.t().matmul(&a.transpose(1, 2));
        assert_eq!(shared_left.dims(), &[2, 2, 2]);
    }

    #[test]
    fn unsupported_operands_are_named() {
        let v = Tensor::<f32>::zeros([3]);
        let m = Tensor::<f32>::zeros([3, 3]);
        assert_eq!(
            v.try_matmul(&m).unwrap_err().to_string(),
            "matmul: unsupported operands [3] x [3, 3] (need rank 2 or 3 with matching or broadcastable batch)"
        );
        let a = Tensor::<f32>::zeros([2, 3, 3]);
        let b = Tensor::<f32>::zeros([4, 3, 3]);
        assert!(matches!(
            a.try_matmul(&b),
            Err(TensorError::MatmulOperands { .. })
        ));
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Tensor::<f64>::zeros([2, 0]);
        let b = Tensor::<f64>::zeros([0, 3]);
        assert_eq!(a.matmul(&b).to_vec(), vec![0.0; 6]);
    }
}
