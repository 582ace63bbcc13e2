//! Function transforms on functions of Vars, in the manner of `torch.func` and JAX: [`jvp`],
//! [`vjp`], [`grad`], [`jacobian`] (reverse, forward or chosen by shape) and [`hessian`]
//! (forward over reverse).
//!
//! Each takes the function as a closure from the input Vars to one output Var, and the point
//! as tensors; each records on a tape of its own, so nothing leaks between calls.
//!
//! # Writing the closure
//! A closure written inline in the call works as is. One bound to a `let` first does not
//! (Rust infers its lifetimes from the first use, not from the signature it will be given,
//! and reports "lifetime may not live long enough"): wrap it in [`function`], which gives it
//! the signature, or write a `fn`:
//!
//! ```
//! use autograd::{function, grad, Var};
//! use tensor::Tensor;
//! let f = function(|x| (x[0] * x[0]).sum_all());
//! fn g<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
//!     x[0].exp().sum_all()
//! }
//! let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
//! assert_eq!(grad(&f, &[x.clone()], &[0]).unwrap()[0].to_vec(), vec![2.0, 4.0]);
//! assert_eq!(grad(g, &[x], &[0]).unwrap()[0].to_vec(), vec![1f64.exp(), 2f64.exp()]);
//! ```

use tensor::{Float, Shape, Tensor};

use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// Gives a closure the signature the transforms (and [`gradcheck`](crate::gradcheck)) take, so
/// it can be bound to a `let` and passed by reference to several of them. Returns it unchanged.
pub fn function<T, F>(f: F) -> F
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

fn transform_error(op: &'static str, message: String) -> AutogradError {
    AutogradError::Transform { op, message }
}

fn shapes<T: Float>(list: &[Tensor<T>]) -> String {
    let shapes: Vec<String> = list.iter().map(|t| t.shape().to_string()).collect();
    format!("[{}]", shapes.join(", "))
}

/// Errors unless `tangents` has one tensor of each primal's shape.
fn check_like<T: Float>(
    op: &'static str,
    what: &str,
    primals: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> Result<()> {
    let fits = primals.len() == tangents.len()
        && primals
            .iter()
            .zip(tangents)
            .all(|(p, t)| p.shape() == t.shape());
    if fits {
        Ok(())
    } else {
        Err(transform_error(
            op,
            format!(
                "{what} {} must have the shapes of the inputs {}",
                shapes(tangents),
                shapes(primals)
            ),
        ))
    }
}

/// The Jacobian-vector product: `f(primals)` and `J v`, the derivative of `f` at `primals`
/// along `tangents` (one per input, of its shape), in one forward pass with the tangent rules
/// (`torch.func.jvp`, `jax.jvp`). Costs about three forward passes and no backward pass.
///
/// ```
/// use autograd::jvp;
/// use tensor::Tensor;
/// // f(x, y) = x * y: J (v, w) = v y + x w
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
/// let y = Tensor::from_vec(vec![3.0, 4.0], [2]).unwrap();
/// let v = Tensor::from_vec(vec![1.0, 0.0], [2]).unwrap();
/// let w = Tensor::from_vec(vec![0.0, 1.0], [2]).unwrap();
/// let (value, tangent) = jvp(|p| p[0] * p[1], &[x, y], &[v, w]).unwrap();
/// assert_eq!(value.to_vec(), vec![3.0, 8.0]);
/// assert_eq!(tangent.to_vec(), vec![3.0, 2.0]);
/// ```
///
/// Errors: [`AutogradError::Transform`] if a tangent's shape differs from its input's;
/// [`AutogradError::TangentUnsupported`] naming a custom op without a tangent rule.
///
/// A closure bound to a `let` before the call needs [`function`] (see the
/// [module docs](crate::transforms)).
pub fn jvp<T, F>(
    f: F,
    primals: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> Result<(Tensor<T>, Tensor<T>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    check_like("jvp", "tangents", primals, tangents)?;
    let tape = Tape::new();
    tape.forward_mode(|level| {
        // Constants: no backward data is kept, as nothing is differentiated in reverse.
        let inputs = primals
            .iter()
            .zip(tangents)
            .map(|(p, t)| level.try_dual(tape.constant(p.clone()), tape.constant(t.clone())))
            .collect::<Result<Vec<_>>>()?;
        let output = f(&inputs);
        let tangent = level.try_tangent(output)?;
        Ok((output.value(), tangent.value()))
    })
}

/// The vector-Jacobian product: `f(primals)` and `J^T u` for a cotangent `u` of the output's
/// shape, one per input (`torch.func.vjp`, `jax.vjp`): one backward pass.
///
/// ```
/// use autograd::vjp;
/// use tensor::Tensor;
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
/// let u = Tensor::from_vec(vec![1.0, 10.0], [2]).unwrap();
/// let (value, cotangents) = vjp(|p| p[0] * p[0], &[x], &u).unwrap();
/// assert_eq!(value.to_vec(), vec![1.0, 4.0]);
/// assert_eq!(cotangents[0].to_vec(), vec![2.0, 40.0]); // 2 x u
/// ```
///
/// A closure bound to a `let` before the call needs [`function`] (see the
/// [module docs](crate::transforms)).
pub fn vjp<T, F>(
    f: F,
    primals: &[Tensor<T>],
    cotangent: &Tensor<T>,
) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = primals.iter().map(|p| tape.leaf(p.clone())).collect();
    let output = f(&leaves);
    let value = output.value();
    let gradients = gradients_or_zeros(output, &leaves, cotangent.clone())?;
    Ok((value, gradients))
}

/// The gradient of each leaf for `seed`; zeros when the output does not depend on any.
fn gradients_or_zeros<T: Float>(
    output: Var<'_, T>,
    leaves: &[Var<'_, T>],
    seed: Tensor<T>,
) -> Result<Vec<Tensor<T>>> {
    match output.try_backward_with(seed) {
        Ok(grads) => Ok(leaves.iter().map(|&leaf| grads.wrt(leaf)).collect()),
        Err(AutogradError::NoGradientPath) => Ok(leaves
            .iter()
            .map(|leaf| Tensor::zeros(leaf.shape()))
            .collect()),
        Err(error) => Err(error),
    }
}

/// The gradient of a scalar `f` with respect to the inputs listed in `wrt` (positions into
/// `primals`, in the order given), the other inputs held constant: no gradient is computed for
/// them (PyTorch's `torch.autograd.grad(outputs, inputs=...)`, `jax.grad(f, argnums)`). An
/// input the output does not depend on gets zeros (PyTorch's `allow_unused=True,
/// materialize_grads=True`).
///
/// ```
/// use autograd::grad;
/// use tensor::Tensor;
/// let w = Tensor::from_vec(vec![2.0], [1]).unwrap();
/// let x = Tensor::from_vec(vec![3.0], [1]).unwrap();
/// // d(w x)/dx only:
/// let g = grad(|p| (p[0] * p[1]).sum_all(), &[w, x], &[1]).unwrap();
/// assert_eq!(g.len(), 1);
/// assert_eq!(g[0].to_vec(), vec![2.0]);
/// ```
///
/// Errors: [`AutogradError::Transform`] for a position out of range or listed twice;
/// [`AutogradError::NonScalarOutput`] if `f` is not scalar (use [`vjp`]).
///
/// A closure bound to a `let` before the call needs [`function`] (see the
/// [module docs](crate::transforms)).
pub fn grad<T, F>(f: F, primals: &[Tensor<T>], wrt: &[usize]) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    for (k, &position) in wrt.iter().enumerate() {
        if position >= primals.len() || wrt[..k].contains(&position) {
            return Err(transform_error(
                "grad",
                format!(
                    "wrt {wrt:?} must list distinct positions below the number of inputs, {}",
                    primals.len()
                ),
            ));
        }
    }
    let tape = Tape::new();
    let inputs: Vec<Var<'_, T>> = primals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if wrt.contains(&i) {
                tape.leaf(p.clone())
            } else {
                tape.constant(p.clone())
            }
        })
        .collect();
    let output = f(&inputs);
    let shape = output.shape();
    if shape.numel() != 1 {
        return Err(AutogradError::NonScalarOutput { shape });
    }
    let leaves: Vec<Var<'_, T>> = wrt.iter().map(|&i| inputs[i]).collect();
    gradients_or_zeros(output, &leaves, Tensor::ones(shape))
}

/// How [`jacobian`] computes the Jacobian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JacobianMode {
    /// One backward sweep per output element over one recording (`torch.func.jacrev`).
    Reverse,
    /// One forward pass with tangents per input element (`torch.func.jacfwd`).
    Forward,
    /// Forward when the inputs have fewer elements than the output, reverse otherwise: the
    /// mode with fewer passes.
    Auto,
}

/// The Jacobian of `f` at `primals`: one tensor per input, of shape `output dims ++ input
/// dims` (as `torch.func.jacrev` and `jacfwd`), so entry `[i.., j..]` is
/// `d output[i..] / d input[j..]`.
///
/// ```
/// use autograd::{function, jacobian, JacobianMode, Var};
/// use tensor::Tensor;
/// // f(x) = [x0 x1, x0 + x1, x1^2] at (2, 3); `function` lets the closure be bound to a `let`.
/// let f = function(|x| {
///     let (a, b) = (x[0].narrow(0, 0, 1), x[0].narrow(0, 1, 1));
///     Var::concat(&[a * b, a + b, b * b], 0)
/// });
/// let x = Tensor::from_vec(vec![2.0, 3.0], [2]).unwrap();
/// let reverse = jacobian(&f, &[x.clone()], JacobianMode::Reverse).unwrap();
/// let forward = jacobian(&f, &[x], JacobianMode::Forward).unwrap();
/// assert_eq!(reverse[0].dims(), &[3, 2]);
/// assert_eq!(reverse[0].to_vec(), vec![3.0, 2.0, 1.0, 1.0, 0.0, 6.0]);
/// assert_eq!(forward[0].to_vec(), reverse[0].to_vec());
/// ```
///
/// A closure bound to a `let` before the call needs [`function`] (see the
/// [module docs](crate::transforms)).
pub fn jacobian<T, F>(f: F, primals: &[Tensor<T>], mode: JacobianMode) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    let mode = match mode {
        JacobianMode::Auto => {
            let output = {
                let tape = Tape::new();
                let inputs: Vec<Var<'_, T>> =
                    primals.iter().map(|p| tape.constant(p.clone())).collect();
                tape.no_grad(|| f(&inputs)).shape().numel()
            };
            let inputs: usize = primals.iter().map(Tensor::numel).sum();
            if inputs < output {
                JacobianMode::Forward
            } else {
                JacobianMode::Reverse
            }
        }
        chosen => chosen,
    };
    match mode {
        JacobianMode::Forward => jacobian_forward(&f, primals),
        _ => jacobian_reverse(&f, primals),
    }
}

/// Rows of the Jacobian (one per output element, each the concatenated per-input gradients)
/// assembled into one tensor per input of shape `output ++ input`.
fn assemble<T: Float>(
    output: &Shape,
    primals: &[Tensor<T>],
    entry: impl Fn(usize, usize, usize) -> T,
) -> Result<Vec<Tensor<T>>> {
    primals
        .iter()
        .enumerate()
        .map(|(input, p)| {
            let columns = p.numel();
            let mut dims: Vec<usize> = output.dims().to_vec();
            dims.extend_from_slice(p.dims());
            let values = (0..output.numel() * columns)
                .map(|k| entry(input, k / columns.max(1), k % columns.max(1)))
                .collect();
            Ok(Tensor::from_vec(values, dims)?)
        })
        .collect()
}

fn jacobian_reverse<T, F>(f: &F, primals: &[Tensor<T>]) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = primals.iter().map(|p| tape.leaf(p.clone())).collect();
    let output = f(&leaves);
    let shape = output.shape();
    // rows[j][input] = d output[j] / d input, flattened.
    let rows = (0..shape.numel())
        .map(|j| {
            let seed = Tensor::from_fn(shape.clone(), |k| if k == j { T::ONE } else { T::ZERO });
            let row = gradients_or_zeros(output, &leaves, seed)?;
            Ok(row.iter().map(Tensor::to_vec).collect::<Vec<_>>())
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(&shape, primals, |input, j, k| rows[j][input][k])
}

fn jacobian_forward<T, F>(f: &F, primals: &[Tensor<T>]) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    // columns[input][k] = d output / d input[k], flattened.
    let mut columns: Vec<Vec<Vec<T>>> = Vec::with_capacity(primals.len());
    let mut output_shape = None;
    for (input, p) in primals.iter().enumerate() {
        let mut of_input = Vec::with_capacity(p.numel());
        for k in 0..p.numel() {
            let tangent = basis(p.shape(), k)?;
            let tape = Tape::new();
            let column = tape.forward_mode(|level| {
                let inputs = primals
                    .iter()
                    .enumerate()
                    .map(|(i, q)| {
                        let primal = tape.constant(q.clone());
                        if i == input {
                            level.try_dual(primal, tape.constant(tangent.clone()))
                        } else {
                            Ok(primal)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let output = f(&inputs);
                output_shape.get_or_insert_with(|| output.shape());
                level.try_tangent(output).map(|t| t.value().to_vec())
            })?;
            of_input.push(column);
        }
        columns.push(of_input);
    }
    let output = match output_shape {
        Some(shape) => shape,
        // Every input is empty: evaluate once for the output's shape.
        None => {
            let tape = Tape::new();
            let inputs: Vec<Var<'_, T>> =
                primals.iter().map(|p| tape.constant(p.clone())).collect();
            f(&inputs).shape()
        }
    };
    assemble(&output, primals, |input, j, k| columns[input][k][j])
}

/// The `k`-th basis tensor of `shape` (1 at flat position `k`, 0 elsewhere).
fn basis<T: Float>(shape: &Shape, k: usize) -> Result<Tensor<T>> {
    Ok(Tensor::from_fn(shape.clone(), |i| {
        if i == k { T::ONE } else { T::ZERO }
    }))
}

/// The Hessian of a scalar `f` at `primals`, by forward over reverse: for each input element,
/// one forward-mode pass through the create-graph gradient (`torch.func.hessian`,
/// `jax.hessian`). Block `[i][j]` has shape `input_i dims ++ input_j dims` and holds
/// `d^2 f / d input_i d input_j`.
///
/// ```
/// use autograd::{function, hessian, Var};
/// use tensor::Tensor;
/// // Rosenbrock f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 at (1, 1): H = [[802, -400], [-400, 200]]
/// let rosenbrock = function(|p: &[Var<'_, f64>]| {
///     let (x, y) = (p[0].narrow(0, 0, 1), p[0].narrow(0, 1, 1));
///     ((1.0 - x).square() + (y - x * x).square() * 100.0).sum_all()
/// });
/// let h = hessian(rosenbrock, &[Tensor::from_vec(vec![1.0, 1.0], [2]).unwrap()]).unwrap();
/// assert_eq!(h[0][0].to_vec(), vec![802.0, -400.0, -400.0, 200.0]);
/// ```
///
/// A closure bound to a `let` before the call needs [`function`] (see the
/// [module docs](crate::transforms)).
pub fn hessian<T, F>(f: F, primals: &[Tensor<T>]) -> Result<Vec<Vec<Tensor<T>>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    // columns[j][k][i] = d (grad f)_i / d input_j[k], flattened over input i.
    let mut columns: Vec<Vec<Vec<Vec<T>>>> = Vec::with_capacity(primals.len());
    for (j, p) in primals.iter().enumerate() {
        let mut of_input = Vec::with_capacity(p.numel());
        for k in 0..p.numel() {
            let tangent = basis(p.shape(), k)?;
            let tape = Tape::new();
            let column = tape.forward_mode(|level| {
                let leaves: Vec<Var<'_, T>> =
                    primals.iter().map(|q| tape.leaf(q.clone())).collect();
                let inputs = leaves
                    .iter()
                    .enumerate()
                    .map(|(i, &leaf)| {
                        if i == j {
                            level.try_dual(leaf, tape.constant(tangent.clone()))
                        } else {
                            Ok(leaf)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let output = f(&inputs);
                let shape = output.shape();
                if shape.numel() != 1 {
                    return Err(AutogradError::NonScalarOutput { shape });
                }
                let gradients = match output.try_backward_create_graph() {
                    Ok(gradients) => gradients,
                    // f does not depend on its inputs: H = 0.
                    Err(AutogradError::NoGradientPath) => {
                        return Ok(primals.iter().map(|q| vec![T::ZERO; q.numel()]).collect());
                    }
                    Err(error) => return Err(error),
                };
                leaves
                    .iter()
                    .map(|&leaf| {
                        let tangent = level.try_tangent(gradients.wrt(leaf))?;
                        Ok(tangent.value().to_vec())
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            of_input.push(column);
        }
        columns.push(of_input);
    }
    primals
        .iter()
        .enumerate()
        .map(|(i, pi)| {
            primals
                .iter()
                .enumerate()
                .map(|(j, pj)| {
                    let n = pj.numel();
                    let mut dims: Vec<usize> = pi.dims().to_vec();
                    dims.extend_from_slice(pj.dims());
                    let values = (0..pi.numel() * n)
                        .map(|flat| columns[j][flat % n][i][flat / n])
                        .collect();
                    Ok(Tensor::from_vec(values, dims)?)
                })
                .collect()
        })
        .collect()
}
