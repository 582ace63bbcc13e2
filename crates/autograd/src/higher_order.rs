//! Higher-order gradients: Hessian-vector products, built on
//! [`Var::backward_create_graph`] (the same backward rules evaluated on Vars).

use tensor::{Float, Tensor, TensorError};

use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// H v for a scalar function f at x: the Hessian of f times v, without forming H. Computed by
/// reverse-over-reverse differentiation (Pearlmutter's trick): `H v = d/dx (grad f(x) . v)`.
/// `x` and `v` are lists of tensors of equal shapes (one per input of `f`).
///
/// ```
/// use autograd::hessian_vector_product;
/// use tensor::Tensor;
/// // f(x) = sum x^3 has Hessian diag(6 x): H v = 6 x v.
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
/// let v = Tensor::from_vec(vec![1.0, 0.5], [2]).unwrap();
/// let hv = hessian_vector_product(|x| x[0].powf(3.0).sum_all(), &[x], &[v]).unwrap();
/// assert_eq!(hv[0].to_vec(), vec![6.0, 6.0]);
/// ```
///
/// A closure bound to a `let` before the call needs [`autograd::function`](crate::function)
/// (Rust infers a `let`-bound closure's lifetimes too narrowly without it).
pub fn hessian_vector_product<T, F>(
    f: F,
    x: &[Tensor<T>],
    v: &[Tensor<T>],
) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    if x.len() != v.len() || x.iter().zip(v).any(|(x, v)| x.shape() != v.shape()) {
        let shapes = |list: &[Tensor<T>]| {
            list.iter()
                .map(|t| t.shape().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(AutogradError::Tensor(TensorError::InvalidArgument {
            op: "hessian_vector_product",
            message: format!(
                "x [{}] and v [{}] must have the same shapes",
                shapes(x),
                shapes(v)
            ),
        }));
    }
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = x.iter().map(|x| tape.leaf(x.clone())).collect();
    let gradients = f(&leaves).try_backward_create_graph()?;
    let projection = leaves
        .iter()
        .zip(v)
        .map(|(&leaf, v)| (gradients.wrt(leaf) * tape.constant(v.clone())).sum_all())
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| tape.constant(Tensor::scalar(T::ZERO)));
    match projection.try_backward() {
        Ok(second) => Ok(leaves.iter().map(|&leaf| second.wrt(leaf)).collect()),
        // The gradient does not depend on x (f is at most linear): H = 0.
        Err(AutogradError::NoGradientPath) => Ok(x.iter().map(Tensor::zeros_like).collect()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradcheckOptions, gradgradcheck};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn values() -> [f64; 5] {
        [-1.7, -0.4, 0.05, 0.9, 2.2]
    }

    /// d²/dx² of each function, from the tape (differentiating the create-graph gradient).
    fn second_derivative(f: for<'t> fn(Var<'t, f64>) -> Var<'t, f64>, x: f64) -> f64 {
        let tape = Tape::new();
        let leaf = tape.leaf(Tensor::from_vec(vec![x], [1]).unwrap());
        let first = f(leaf).sum_all().backward_create_graph().wrt(leaf);
        first.sum_all().backward().wrt(leaf).item()
    }

    #[test]
    fn second_derivatives_match_closed_forms() {
        for x in values() {
            let t = x.tanh();
            let s = 1.0 / (1.0 + (-x).exp());
            let cases: [(&str, f64, f64); 3] = [
                (
                    "tanh",
                    second_derivative(|v| v.tanh(), x),
                    -2.0 * t * (1.0 - t * t),
                ),
                ("exp", second_derivative(|v| v.exp(), x), x.exp()),
                (
                    "sigmoid",
                    second_derivative(|v| v.sigmoid(), x),
                    s * (1.0 - s) * (1.0 - 2.0 * s),
                ),
            ];
            for (name, got, want) in cases {
                assert!(
                    (got - want).abs() < 1e-14 * want.abs().max(1.0),
                    "{name}'' at {x}: {got} vs {want}"
                );
            }
            let positive = x.abs() + 0.1;
            let log = second_derivative(|v| v.log(), positive);
            assert!(
                (log + 1.0 / (positive * positive)).abs() < 1e-12,
                "log'' at {positive}: {log}"
            );
        }
    }

    /// A small tanh MLP's loss as a function of its flattened parameters.
    fn mlp_loss<'t>(p: &[Var<'t, f64>]) -> Var<'t, f64> {
        let tape = p[0].tape();
        let x = tape.constant(
            Tensor::from_vec((0..12).map(|i| (i as f64 * 0.7).sin()).collect(), [4, 3]).unwrap(),
        );
        let target = tape.constant(Tensor::from_vec(vec![0.5, -0.5, 1.0, 0.0], [4, 1]).unwrap());
        let hidden = (x.matmul(p[0]) + p[1]).tanh();
        let out = hidden.matmul(p[2]) + p[3];
        (out - target).square().mean_all()
    }

    fn mlp_parameters(seed: u64) -> Vec<Tensor<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        [[3, 5], [1, 5], [5, 1], [1, 1]]
            .iter()
            .map(|dims| Tensor::random_normal(*dims, 0.0, 0.7, &mut rng).unwrap())
            .collect()
    }

    fn gradient(p: &[Tensor<f64>]) -> Vec<Tensor<f64>> {
        let tape = Tape::new();
        let leaves: Vec<Var<'_, f64>> = p.iter().map(|t| tape.leaf(t.clone())).collect();
        let grads = mlp_loss(&leaves).backward();
        leaves.iter().map(|&l| grads.wrt(l)).collect()
    }

    #[test]
    fn hvp_of_an_mlp_loss_matches_finite_differences_of_its_gradient() {
        let p = mlp_parameters(3);
        let v = mlp_parameters(4);
        let hv = hessian_vector_product(mlp_loss, &p, &v).unwrap();
        // (grad(p + eps v) - grad(p - eps v)) / (2 eps)
        let eps = 1e-5;
        let shifted = |sign: f64| -> Vec<Tensor<f64>> {
            p.iter()
                .zip(&v)
                .map(|(p, v)| p + &v.mul_scalar(sign * eps))
                .collect()
        };
        let (plus, minus) = (gradient(&shifted(1.0)), gradient(&shifted(-1.0)));
        for ((hv, plus), minus) in hv.iter().zip(&plus).zip(&minus) {
            let numerical = (plus - minus).div_scalar(2.0 * eps);
            assert!(hv.allclose(&numerical, 1e-6, 1e-8), "{hv} vs {numerical}");
        }
    }

    #[test]
    fn hvp_of_a_linear_function_is_zero_and_bad_shapes_are_named() {
        let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
        let hv = hessian_vector_product(
            |x| (x[0] * 3.0).sum_all(),
            std::slice::from_ref(&x),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_eq!(hv[0].to_vec(), vec![0.0, 0.0]);
        let error =
            hessian_vector_product(|x| x[0].sum_all(), &[x], &[Tensor::zeros([3])]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hessian_vector_product: x [[2]] and v [[3]] must have the same shapes"
        );
    }

    /// x^3 with a correct rule on tensors and a rule on Vars that is either wrong outright
    /// (3 x instead of 3 x^2) or right in value but detached from x (so its own derivative is
    /// lost, which is what detaching gradients, as candle does, amounts to).
    struct Cube {
        detached: bool,
    }

    impl crate::CustomOp<f64> for Cube {
        fn name(&self) -> &str {
            "cube"
        }
        fn forward(
            &self,
            inputs: &[&Tensor<f64>],
        ) -> std::result::Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].map(|x| x * x * x))
        }
        fn backward(
            &self,
            g: &Tensor<f64>,
            inputs: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![Some(g * &inputs[0].square().mul_scalar(3.0))]
        }
        fn backward_on_vars<'t>(
            &self,
            g: Var<'t, f64>,
            inputs: &[Var<'t, f64>],
            _: Var<'t, f64>,
        ) -> Option<Vec<Option<Var<'t, f64>>>> {
            let x = inputs[0];
            let rule = if self.detached {
                g * x.detach().square() * 3.0
            } else {
                g * x * 3.0
            };
            Some(vec![Some(rule)])
        }
    }

    #[test]
    fn gradgradcheck_passes_for_an_mlp_and_catches_wrong_rules_on_vars() {
        gradgradcheck(
            mlp_loss,
            &mlp_parameters(5),
            &GradcheckOptions::strict("mlp"),
        )
        .unwrap();
        let x = Tensor::from_vec(vec![0.5, -1.5], [2]).unwrap();
        let check = |detached| {
            gradgradcheck(
                |v| v[0].tape().custom_op(Cube { detached }, &[v[0]]),
                std::slice::from_ref(&x),
                &GradcheckOptions::strict("cube"),
            )
            .unwrap_err()
        };
        let wrong = check(false);
        assert!(
            matches!(
                *wrong.failure,
                crate::gradcheck::GradcheckFailure::FirstDerivativeMismatch { .. }
            ),
            "{wrong}"
        );
        let detached = check(true);
        // Named as a second-order failure, at the first derivative's element in its input's
        // own shape.
        assert!(
            detached.to_string().starts_with(
                "cube: gradgradcheck: second-derivative mismatch: d(gradient of input 0 at [1])"
            ),
            "{detached}"
        );
    }

    #[test]
    fn a_gradient_penalty_loss_trains() {
        // loss(p) = mse + ||d out / d x||^2 averaged: the penalty's gradient with respect to the
        // parameters needs second derivatives. Plain gradient descent must lower it.
        let x =
            Tensor::from_vec((0..12).map(|i| (i as f64 * 0.7).sin()).collect(), [4, 3]).unwrap();
        let penalised = |p: &[Tensor<f64>]| -> (f64, Vec<Tensor<f64>>) {
            let tape = Tape::new();
            let leaves: Vec<Var<'_, f64>> = p.iter().map(|t| tape.leaf(t.clone())).collect();
            let input = tape.leaf(x.clone());
            let out = (input.matmul(leaves[0]) + leaves[1])
                .tanh()
                .matmul(leaves[2])
                + leaves[3];
            let input_gradient = out.sum_all().backward_create_graph().wrt(input);
            let penalty = input_gradient.square().mean_all();
            let grads = penalty.backward();
            (
                penalty.value().item(),
                leaves.iter().map(|&l| grads.wrt(l)).collect(),
            )
        };
        let mut p = mlp_parameters(6);
        let (start, _) = penalised(&p);
        for _ in 0..50 {
            let (_, grads) = penalised(&p);
            p = p
                .iter()
                .zip(&grads)
                .map(|(p, g)| p - &g.mul_scalar(0.1))
                .collect();
        }
        let (end, _) = penalised(&p);
        assert!(end < 0.5 * start, "penalty {start} -> {end}");
    }
}
