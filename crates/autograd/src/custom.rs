//! User-defined ops: a forward on tensors and a backward rule, recorded on the tape like a
//! primitive and checked by the same gradcheck.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;
use tensor::{Float, Tensor};

use crate::error::{AutogradError, Result};
use crate::ops::Primitive;
use crate::tape::{Tape, Var};

/// An op with its own forward and backward rule.
///
/// Before writing one, read `docs/custom-ops.md`: `autograd::testing::check_op` (feature
/// `testing`) checks a custom op the way the library checks its own primitives (gradcheck over
/// random shapes and layouts, second order, forward mode, f32 against f64, wrong counts and
/// shapes) and prints one report.
///
/// `backward` receives the gradient of the output and the forward values, and returns one
/// entry per input: `Some(gradient)` with the input's shape, or `None` for no gradient. The
/// library checks the count and the shapes and reports a broken contract as an error naming
/// the op.
///
/// Higher-order gradients need [`backward_on_vars`](CustomOp::backward_on_vars), the same rule
/// written on [`Var`]s; without it, [`backward_create_graph`](Var::backward_create_graph)
/// through the op fails with [`AutogradError::HigherOrderUnsupported`].
///
/// ```
/// use autograd::{CustomOp, AutogradError, Tape, Var, gradcheck::assert_gradcheck};
/// use tensor::Tensor;
///
/// /// softplus(x) = ln(1 + e^x), written as a custom op with its own rule sigmoid(x).
/// struct Softplus;
///
/// impl CustomOp<f64> for Softplus {
///     fn name(&self) -> &str {
///         "softplus"
///     }
///     fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
///         Ok(inputs[0].map(|x| x.max(0.0) + (-x.abs()).exp().ln_1p()))
///     }
///     fn backward(&self, grad: &Tensor<f64>, inputs: &[&Tensor<f64>], _output: &Tensor<f64>) -> Vec<Option<Tensor<f64>>> {
///         vec![Some(grad * &inputs[0].sigmoid())]
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![-1.0, 0.0, 2.0], [3]).unwrap());
/// let y = tape.custom_op(Softplus, &[x]).sum_all();
/// assert!((y.backward().wrt(x).to_vec()[1] - 0.5).abs() < 1e-15);
///
/// // The same harness that checks the built-in primitives:
/// assert_gradcheck(|v| v[0].tape().custom_op(Softplus, &[v[0]]), &[Tensor::from_vec(vec![-1.0, 0.3, 2.0], [3]).unwrap()]);
/// ```
pub trait CustomOp<T: Float>: 'static {
    /// The op's name, for messages and inspection.
    fn name(&self) -> &str;

    /// The forward value from the input values.
    fn forward(&self, inputs: &[&Tensor<T>]) -> std::result::Result<Tensor<T>, AutogradError>;

    /// The gradient of each input from the gradient of the output.
    fn backward(
        &self,
        grad_output: &Tensor<T>,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>>;

    /// The same rule on tape variables, for higher-order gradients. `None` (the default)
    /// means unsupported.
    fn backward_on_vars<'t>(
        &self,
        grad_output: Var<'t, T>,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
    ) -> Option<Vec<Option<Var<'t, T>>>> {
        let _ = (grad_output, inputs, output);
        None
    }

    /// The tangent of the output from the tangents of the inputs, for forward mode
    /// ([`jvp`](crate::jvp), [`Tape::forward_mode`]): `tangents[i]` is `None` where input `i`
    /// has no tangent (it is zero), and at least one is `Some`. Written on Vars, like
    /// [`backward_on_vars`](CustomOp::backward_on_vars), so the tangent can be differentiated
    /// again. `None` (the default) means unsupported: forward mode through the op is then
    /// [`AutogradError::TangentUnsupported`], never a silent zero. The result must have the
    /// output's shape.
    fn tangent<'t>(
        &self,
        tangents: &[Option<Var<'t, T>>],
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
    ) -> Option<Var<'t, T>> {
        let _ = (tangents, inputs, output);
        None
    }
}

/// A custom op's tangent rule, with its result's shape checked.
pub(crate) fn custom_tangent<'t, T: Float>(
    op: &dyn CustomOp<T>,
    tangents: &[Option<Var<'t, T>>],
    inputs: &[Var<'t, T>],
    output: Var<'t, T>,
) -> Result<Var<'t, T>> {
    let tangent =
        op.tangent(tangents, inputs, output)
            .ok_or_else(|| AutogradError::TangentUnsupported {
                op: format!("custom op '{}'", op.name()),
            })?;
    let (shape, expected) = (tangent.shape(), output.shape());
    if shape != expected {
        return Err(AutogradError::CustomOp {
            name: op.name().to_string(),
            message: format!("tangent returned shape {shape} for an output of shape {expected}"),
        });
    }
    Ok(tangent)
}

/// A custom op recorded on a tape: the op and all its input nodes.
#[derive(Clone)]
pub struct CustomNode<T: Float> {
    pub(crate) op: Arc<dyn CustomOp<T>>,
    pub(crate) inputs: Box<[u32]>,
}

impl<T: Float> fmt::Debug for CustomNode<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "custom op '{}' on {:?}", self.op.name(), self.inputs)
    }
}

impl<T: Float> Tape<T> {
    /// Records a user-defined op applied to `inputs`. Panics with the op's message if its
    /// forward fails or an input belongs to another tape.
    #[track_caller]
    pub fn custom_op(&self, op: impl CustomOp<T>, inputs: &[Var<'_, T>]) -> Var<'_, T> {
        crate::error::or_panic(self.try_custom_op(op, inputs))
    }

    /// Fallible [`custom_op`](Tape::custom_op); nothing is recorded on error.
    #[track_caller]
    pub fn try_custom_op(&self, op: impl CustomOp<T>, inputs: &[Var<'_, T>]) -> Result<Var<'_, T>> {
        for input in inputs {
            self.check_owns("custom_op", input)?;
        }
        // The user's forward runs with the tape unborrowed (it may read other Vars).
        let values: Vec<Tensor<T>> = inputs.iter().map(Var::value).collect();
        let refs: Vec<&Tensor<T>> = values.iter().collect();
        let value = op.forward(&refs)?;
        let indices: Box<[u32]> = inputs.iter().map(|v| v.index).collect();
        let node = CustomNode {
            op: Arc::new(op),
            inputs: indices.clone(),
        };
        let op = Primitive::Custom(Box::new(node));
        if self.propagating.get() != 0 {
            return self.push_op_with_tangents(op, &indices, value);
        }
        let mut nodes = self.nodes_mut();
        self.push_op(&mut nodes, op, &indices, value)
    }
}

/// Checks a custom backward's result against its inputs and keeps only the needed gradients.
pub(crate) fn checked_gradients<O>(
    name: &str,
    gradients: Vec<Option<O>>,
    input_shapes: &[tensor::Shape],
    shape_of: impl Fn(&O) -> tensor::Shape,
    needs: &[bool],
) -> Result<SmallVec<[Option<O>; 2]>> {
    if gradients.len() != input_shapes.len() {
        return Err(AutogradError::CustomOp {
            name: name.to_string(),
            message: format!(
                "backward returned {} gradients for {} inputs",
                gradients.len(),
                input_shapes.len()
            ),
        });
    }
    for (i, (gradient, expected)) in gradients.iter().zip(input_shapes).enumerate() {
        if let Some(gradient) = gradient {
            let shape = shape_of(gradient);
            if &shape != expected {
                return Err(AutogradError::CustomOp {
                    name: name.to_string(),
                    message: format!(
                        "backward returned a gradient of shape {shape} for input {i} of shape {expected}"
                    ),
                });
            }
        }
    }
    Ok(gradients
        .into_iter()
        .zip(needs)
        .map(|(g, &need)| g.filter(|_| need))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken {
        gradient_shape: [usize; 1],
        count: usize,
    }

    impl CustomOp<f64> for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn forward(
            &self,
            inputs: &[&Tensor<f64>],
        ) -> std::result::Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].clone())
        }
        fn backward(
            &self,
            _: &Tensor<f64>,
            _: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            (0..self.count)
                .map(|_| Some(Tensor::zeros(self.gradient_shape)))
                .collect()
        }
    }

    struct FailingForward;

    impl CustomOp<f64> for FailingForward {
        fn name(&self) -> &str {
            "failing"
        }
        fn forward(
            &self,
            inputs: &[&Tensor<f64>],
        ) -> std::result::Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].try_matmul(inputs[0])?)
        }
        fn backward(
            &self,
            _: &Tensor<f64>,
            _: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![None]
        }
    }

    #[test]
    fn broken_backward_contracts_are_named_errors() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones([3]));
        let wrong_shape = tape
            .custom_op(
                Broken {
                    gradient_shape: [2],
                    count: 1,
                },
                &[x],
            )
            .sum_all();
        assert_eq!(
            wrong_shape.try_backward().unwrap_err().to_string(),
            "custom op 'broken': backward returned a gradient of shape [2] for input 0 of shape [3]"
        );
        let wrong_count = tape
            .custom_op(
                Broken {
                    gradient_shape: [3],
                    count: 2,
                },
                &[x],
            )
            .sum_all();
        assert_eq!(
            wrong_count.try_backward().unwrap_err().to_string(),
            "custom op 'broken': backward returned 2 gradients for 1 inputs"
        );
    }

    #[test]
    fn failing_forward_records_nothing() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones([2, 3]));
        let before = tape.len();
        let error = tape.try_custom_op(FailingForward, &[x]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "matmul: inner dimensions differ: [2, 3] x [2, 3]"
        );
        assert_eq!(tape.len(), before);
    }

    #[test]
    fn higher_order_through_an_op_without_var_rule_is_a_named_error() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones([3]));
        let y = tape
            .custom_op(
                Broken {
                    gradient_shape: [3],
                    count: 1,
                },
                &[x],
            )
            .sum_all();
        assert_eq!(
            y.try_backward_create_graph().unwrap_err().to_string(),
            "custom op 'broken': higher-order gradients are not supported through this op"
        );
    }
}
