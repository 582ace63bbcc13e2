//! The matrix product: rank 2, and batched rank 3 (with a rank-2 operand shared across the
//! batch).

use tensor::{Float, Tensor};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::Primitive;
use crate::ops::elementwise::for_both;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// The matrix product `[m, k] x [k, n] -> [m, n]`, or batched `[b, m, k] x [b, k, n]` where
    /// either operand may be rank 2 (shared by every matrix of the batch).
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::ones([4, 3]));
    /// let w = tape.leaf(Tensor::ones([3, 2]));
    /// let grads = x.matmul(w).sum_all().backward();
    /// assert_eq!(grads.wrt(w).to_vec(), vec![4.0; 6]); // x^T 1
    /// ```
    #[track_caller]
    pub fn matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_matmul(other))
    }

    /// Fallible [`matmul`](Var::matmul); the error names both shapes.
    #[track_caller]
    pub fn try_matmul(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape
            .apply_primitive(Primitive::Matmul {}, [self, other])
    }
}

/// A B.
pub(crate) fn matmul_forward<T: Float>([a, b]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    a.try_matmul(b)
}

/// d(A B) = (G B^T, A^T G), each summed over the batch when its operand was shared by it.
pub(crate) fn matmul_backward<T: Float, O: Operand<T>>(
    grad: O,
    [a, b]: [&O; 2],
    _: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    for_both(
        grad,
        needs,
        |g| g.matmul(&b.clone().transpose_last()).sum_to(&a.shape()),
        |g| a.clone().transpose_last().matmul(&g).sum_to(&b.shape()),
    )
}

/// t(A B) = tA B + A tB.
pub(crate) fn matmul_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    [a, b]: [&O; 2],
    _: &O,
) -> O {
    crate::ops::sum_of(ta.map(|t| t.matmul(b)), tb.map(|t| a.clone().matmul(&t)))
}

#[cfg(test)]
mod tests {
    use tensor::Tensor;

    use crate::gradcheck::assert_gradcheck;
    use crate::tape::Tape;

    fn matrix(rows: usize, cols: usize, seed: f64) -> Tensor<f64> {
        Tensor::from_vec(
            (0..rows * cols)
                .map(|i| ((i as f64 + seed) * 0.731).sin())
                .collect(),
            [rows, cols],
        )
        .unwrap()
    }

    #[test]
    fn matmul_gradients_plain_transposed_and_batched() {
        assert_gradcheck(
            |x| x[0].matmul(x[1]),
            &[matrix(3, 4, 0.0), matrix(4, 2, 1.0)],
        );
        assert_gradcheck(
            |x| x[0].t().matmul(x[1]),
            &[matrix(4, 3, 0.0), matrix(4, 2, 1.0)],
        );
        let batch = matrix(6, 4, 2.0).reshape([2, 3, 4]);
        let batch_b = matrix(8, 2, 3.0).reshape([2, 4, 2]);
        assert_gradcheck(|x| x[0].matmul(x[1]), &[batch.clone(), batch_b]);
        assert_gradcheck(|x| x[0].matmul(x[1]), &[batch.clone(), matrix(4, 2, 4.0)]);
        assert_gradcheck(|x| x[0].matmul(x[1]), &[matrix(2, 3, 5.0), batch]);
    }

    #[test]
    fn weight_gradient_matches_the_closed_form() {
        let tape = Tape::<f64>::new();
        let x_value = matrix(5, 3, 0.5);
        let x = tape.constant(x_value.clone());
        let w = tape.leaf(matrix(3, 2, 1.5));
        let seed = matrix(5, 2, 2.5);
        let grads = x.matmul(w).backward_with(seed.clone());
        // dL/dW = X^T G, computed here with a plain loop.
        let mut expected = vec![0.0; 6];
        for i in 0..3 {
            for j in 0..2 {
                expected[i * 2 + j] = (0..5)
                    .map(|r| x_value.get(&[r, i]) * seed.get(&[r, j]))
                    .sum();
            }
        }
        assert!(
            grads
                .wrt(w)
                .allclose(&Tensor::from_vec(expected, [3, 2]).unwrap(), 1e-14, 1e-14)
        );
    }

    #[test]
    fn inner_mismatch_is_named_and_recorded_nowhere() {
        let tape = Tape::<f32>::new();
        let a = tape.leaf(Tensor::zeros([3, 4]));
        let b = tape.leaf(Tensor::zeros([5, 2]));
        let before = tape.len();
        assert_eq!(
            a.try_matmul(b).unwrap_err().to_string(),
            "matmul: inner dimensions differ: [3, 4] x [5, 2]"
        );
        assert_eq!(tape.len(), before);
    }
}
