//! Per-sample gradients: the gradient of each example's loss with respect to each parameter,
//! for a whole batch, from **one** backward pass (the building block of differentially private
//! training and of per-example gradient-norm diagnostics; Opacus, `torch.func.vmap(grad)`).
//!
//! # How
//! Where a parameter meets the batch, the batch-summed gradient is a sum of per-example terms
//! that the backward rule adds up: for `y = x W` (x: `[B, in]`) the rule gives `x^T g`, the sum
//! over b of the outer products `x_b g_b^T`; for a bias broadcast to `[B, out]` it gives the
//! sum of the rows of g. So one backward pass from the sum of the per-example losses, keeping the
//! gradient `g` of those boundary nodes, gives every per-sample gradient in factored form
//! (Opacus's "expanded weights" trick, derived here from the tape instead of per layer type).
//!
//! That is exact only if row b of every batch-shaped node influences example b's loss alone. The
//! tape is checked for it before anything is computed: a node that reduces over the batch axis
//! (batch norm in training mode), multiplies two batch-shaped operands as matrices, reshapes,
//! permutes, slices, gathers or scatters along the batch axis, or a custom op on batch-shaped
//! input is a named error ([`AutogradError::Transform`] with op `per_sample_gradients`). So is a
//! parameter that reaches the batch any other way than as the right operand of a matmul or
//! through broadcasting (for example through a transpose, or a penalty term added to every
//! example's loss).
//!
//! # Cost
//! One forward and one backward pass, plus, per dense layer, `B (in + out)` numbers kept; the
//! norms and the clipped sum of differentially private SGD are computed from the factors
//! without materialising `B` copies of each weight ([`PerSampleGradients::norms`],
//! [`PerSampleGradients::clipped_sum`]); [`PerSampleGradients::get`] materialises one
//! parameter's `[B, ...]` stack on request.

use tensor::{Float, Shape, Tensor};

use crate::error::{AutogradError, Result};
use crate::ops::Primitive;
use crate::tape::{Tape, Var};

/// One parameter's per-sample gradient, as a sum of parts (a parameter used twice has two).
#[derive(Clone, Debug)]
enum Part<T: Float> {
    /// Example b's gradient is `left_b right_b^T` (a matmul's input row and output gradient).
    Outer { left: Tensor<T>, right: Tensor<T> },
    /// Example b's gradient is row b: `[B, ...param shape]`.
    Rows(Tensor<T>),
}

/// The per-sample gradients of a batch (see the module docs), one entry per parameter in the
/// order given.
#[derive(Clone, Debug)]
pub struct PerSampleGradients<T: Float> {
    batch: usize,
    shapes: Vec<Shape>,
    parts: Vec<Vec<Part<T>>>,
}

/// A node's place with respect to the batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// No gradient flows through it (data, masks, labels).
    Constant,
    /// Computed from parameters only; the same for every example.
    Shared,
    /// Axis 0 is the batch, and row b only influences example b's loss.
    Rows,
}

fn refuse(message: String) -> AutogradError {
    AutogradError::Transform {
        op: "per_sample_gradients",
        message,
    }
}

impl<T: Float> PerSampleGradients<T> {
    /// The batch size B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// Parameter `i`'s per-sample gradients, materialised: shape `[B, ...param shape]`, row b
    /// the gradient of example b's loss.
    pub fn get(&self, i: usize) -> Tensor<T> {
        let mut dims = vec![self.batch];
        dims.extend_from_slice(self.shapes[i].dims());
        let stack = |part: &Part<T>| match part {
            Part::Outer { left, right } => {
                let (m, n) = (left.dims()[1], right.dims()[1]);
                left.reshape([self.batch, m, 1])
                    .matmul(&right.reshape([self.batch, 1, n]))
                    .reshape(dims.clone())
            }
            Part::Rows(rows) => rows.clone(),
        };
        match self.parts[i].split_first() {
            Some((first, rest)) => rest
                .iter()
                .fold(stack(first), |total, part| total.accumulate(&stack(part))),
            None => Tensor::zeros(dims),
        }
    }

    /// Example b's squared gradient norm for parameter `i`, for every b (`[B]`), from the
    /// factors: `|x_b|^2 |g_b|^2` for a matmul's weight, without forming the outer product.
    pub fn squared_norms(&self, i: usize) -> Tensor<T> {
        if let [Part::Outer { left, right }] = self.parts[i].as_slice() {
            let rows = |t: &Tensor<T>| t.square().sum(&[1], false);
            return rows(left).mul(&rows(right));
        }
        if self.parts[i].is_empty() {
            return Tensor::zeros([self.batch]);
        }
        let stack = self.get(i);
        let axes: Vec<usize> = (1..stack.shape().rank()).collect();
        stack.square().sum(&axes, false)
    }

    /// Each example's gradient norm over all parameters together (`[B]`).
    pub fn norms(&self) -> Tensor<T> {
        let mut total = Tensor::zeros([self.batch]);
        for i in 0..self.len() {
            total = total.accumulate(&self.squared_norms(i));
        }
        total.sqrt()
    }

    /// Differentially private SGD's aggregate: the sum over examples of each example's
    /// gradient scaled by `min(1, max_norm / (norm_b + 1e-6))` (Opacus's clipping factor), one
    /// tensor per parameter, each with the parameter's shape. For a matmul's weight this is one
    /// product `x^T (c g)`, never B outer products.
    pub fn clipped_sum(&self, max_norm: T) -> Vec<Tensor<T>> {
        let eps = T::from_f64(1e-6);
        let factors = self
            .norms()
            .map(|norm| (max_norm / (norm + eps)).min_propagate_nan(T::ONE));
        let column = factors.reshape([self.batch, 1]);
        (0..self.len())
            .map(|i| {
                let mut total = Tensor::zeros(self.shapes[i].clone());
                for part in &self.parts[i] {
                    let contribution = match part {
                        Part::Outer { left, right } => left
                            .t()
                            .matmul(&right.mul(&column))
                            .reshape(self.shapes[i].clone()),
                        Part::Rows(rows) => {
                            let mut dims = vec![self.batch];
                            dims.extend(std::iter::repeat_n(1, self.shapes[i].rank()));
                            rows.mul(&factors.reshape(dims)).sum(&[0], false)
                        }
                    };
                    total = total.accumulate(&contribution);
                }
                total
            })
            .collect()
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The per-sample gradients of `params` for per-example losses `self` (shape `[B]`, one
    /// loss per example: use a loss without the batch mean, such as
    /// `nn::cross_entropy_per_example`), from one backward pass. See the
    /// [module docs](crate::per_sample) for the method and the errors.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    /// let w = tape.leaf(Tensor::from_vec(vec![0.5, -1.0], [2, 1]).unwrap());
    /// let losses = x.matmul(w).square().sum(&[1], false); // l_b = (x_b . w)^2
    /// let per_sample = losses.try_per_sample_gradients(&[w]).unwrap();
    /// // d l_b / d w = 2 (x_b . w) x_b: example 0 has x_b . w = -1.5, example 1 has -2.5
    /// assert_eq!(per_sample.get(0).to_vec(), vec![-3.0, -6.0, -15.0, -20.0]);
    /// ```
    pub fn try_per_sample_gradients(self, params: &[Var<'t, T>]) -> Result<PerSampleGradients<T>> {
        let tape = self.tape;
        for param in params {
            tape.check_owns("per_sample_gradients", param)?;
        }
        let shape = self.shape();
        let &[batch] = shape.dims() else {
            return Err(refuse(format!(
                "the losses must have shape [batch], one per example, got {shape}"
            )));
        };
        if !self.requires_grad() {
            return Err(refuse(
                "the losses do not depend on any parameter that requires a gradient".to_string(),
            ));
        }
        let roles = batch_roles(tape, self.index(), batch)?;
        if roles[self.index()] != Role::Rows {
            return Err(refuse(
                "the losses are computed from parameters alone, not from a batch of examples"
                    .to_string(),
            ));
        }
        let boundaries = boundaries(tape, self.index(), &roles, params)?;
        let keep: Vec<Var<'t, T>> = boundaries
            .iter()
            .map(|b| Var {
                tape,
                index: b.node,
            })
            .collect();
        let grads = self.try_backward_keeping(Tensor::ones([batch]), &keep)?;
        let mut parts: Vec<Vec<Part<T>>> = vec![Vec::new(); params.len()];
        for boundary in &boundaries {
            let Some(g) = grads.retained(boundary.node as usize) else {
                continue;
            };
            let part = match &boundary.left {
                Some(left) => Part::Outer {
                    left: left.clone(),
                    right: g.clone(),
                },
                None => {
                    let param_shape = params[boundary.param].shape();
                    Part::Rows(rows_of_broadcast(g, batch, &param_shape)?)
                }
            };
            parts[boundary.param].push(part);
        }
        Ok(PerSampleGradients {
            batch,
            shapes: params.iter().map(Var::shape).collect(),
            parts,
        })
    }
}

/// The per-example gradient of a parameter broadcast over the batch, from the gradient of the
/// broadcast: row b summed to the parameter's shape.
fn rows_of_broadcast<T: Float>(g: &Tensor<T>, batch: usize, param: &Shape) -> Result<Tensor<T>> {
    let mut target = vec![batch];
    let rank = g.shape().rank();
    let dims = param.dims();
    // The parameter's axes, aligned right against the broadcast's non-batch axes.
    let trailing = if dims.len() == rank && dims.first() == Some(&1) {
        &dims[1..]
    } else {
        dims
    };
    target.extend(std::iter::repeat_n(
        1,
        (rank - 1).saturating_sub(trailing.len()),
    ));
    target.extend_from_slice(trailing);
    let mut out = vec![batch];
    out.extend_from_slice(dims);
    Ok(g.try_sum_to(Shape::from(target))?.try_reshape(out)?)
}

/// True if broadcasting `input` to `output` creates the leading (batch) axis: a new leading
/// axis, or a size-1 one grown.
fn creates_batch_axis(input: &[usize], output: &[usize]) -> bool {
    output.len() > input.len() || input.first() == Some(&1)
}

/// Where a parameter meets the batch: the boundary node, the parameter's position, and for a
/// matmul the left operand's value.
struct Boundary<T: Float> {
    node: u32,
    param: usize,
    left: Option<Tensor<T>>,
}

/// Classifies every node up to `root` (see [`Role`]), refusing any op that would let one
/// example's rows influence another's loss.
fn batch_roles<T: Float>(tape: &Tape<T>, root: usize, batch: usize) -> Result<Vec<Role>> {
    let nodes = tape.nodes();
    let mut roles = vec![Role::Constant; root + 1];
    let place = |index: usize| {
        let (location, scope) = tape.provenance().of(index);
        let mut place = format!("node #{index}");
        if let Some(scope) = scope {
            place.push_str(&format!(" in '{scope}'"));
        }
        if let Some(location) = location {
            place.push_str(&format!(" at {location}"));
        }
        place
    };
    // Only what the losses depend on is checked (the tape may hold other computations).
    let mut needed = vec![false; root + 1];
    needed[root] = true;
    for index in (0..=root).rev() {
        if !needed[index] {
            continue;
        }
        if let Some(op) = nodes[index].op() {
            for &input in op.input_indices(&nodes[index].inputs) {
                needed[input as usize] = true;
            }
        }
    }
    for index in 0..=root {
        if !needed[index] {
            continue;
        }
        let node = &nodes[index];
        let Some(op) = node.op() else {
            // Data with a leading batch axis (inputs, masks, one-hot labels) is rows: it
            // carries no gradient, so whatever produced it cannot mix examples' gradients.
            roles[index] = if node.is_leaf() {
                Role::Shared
            } else if node.value.dims().first() == Some(&batch) {
                Role::Rows
            } else {
                Role::Constant
            };
            continue;
        };
        let inputs = op.input_indices(&node.inputs);
        let input_roles: Vec<Role> = inputs.iter().map(|&i| roles[i as usize]).collect();
        let any_rows = input_roles.contains(&Role::Rows);
        let leads_with_batch = node.value.dims().first() == Some(&batch);
        let mixes = |what: &str| {
            refuse(format!(
                "'{}' ({}) {what}, so one example's values would reach another's loss",
                op.name(),
                place(index)
            ))
        };
        roles[index] = if !any_rows {
            match op {
                // A parameter (or a value of parameters) broadcast over the batch: row b is
                // the copy example b uses.
                Primitive::Expand { .. }
                    if leads_with_batch
                        && input_roles[0] == Role::Shared
                        && creates_batch_axis(
                            nodes[inputs[0] as usize].value.dims(),
                            node.value.dims(),
                        ) =>
                {
                    Role::Rows
                }
                _ if input_roles.contains(&Role::Shared) => Role::Shared,
                _ => Role::Constant,
            }
        } else {
            let rows_axis_kept = |axis: usize, what: &str| {
                if axis == 0 {
                    Err(mixes(what))
                } else {
                    Ok(Role::Rows)
                }
            };
            match op {
                Primitive::Sum { axes, .. } | Primitive::Max { axes, .. } => {
                    if axes & 1 != 0 {
                        return Err(mixes(
                            "reduces over the batch axis (as batch norm in training mode does)",
                        ));
                    }
                    Role::Rows
                }
                Primitive::Matmul {} => {
                    let rank = node.value.shape().rank();
                    match (input_roles[0], input_roles[1]) {
                        (Role::Rows, Role::Rows) if rank == 3 => Role::Rows,
                        (Role::Rows, Role::Constant | Role::Shared) if leads_with_batch => {
                            Role::Rows
                        }
                        _ => return Err(mixes("multiplies across the batch axis")),
                    }
                }
                Primitive::Reshape { .. } => {
                    // Regrouping the other axes keeps each example's elements in its row.
                    let input_dims = nodes[inputs[0] as usize].value.dims();
                    if leads_with_batch && input_dims.first() == Some(&batch) {
                        Role::Rows
                    } else {
                        return Err(mixes("regroups the batch axis"));
                    }
                }
                Primitive::Expand { .. } => {
                    let input_rank = nodes[inputs[0] as usize].value.shape().rank();
                    if leads_with_batch && input_rank == node.value.shape().rank() {
                        Role::Rows
                    } else {
                        return Err(mixes("moves the batch axis"));
                    }
                }
                Primitive::Permute { order } => {
                    if order[0] == 0 {
                        Role::Rows
                    } else {
                        return Err(mixes("moves the batch axis"));
                    }
                }
                Primitive::Narrow { range } => rows_axis_kept(range.axis, "slices the batch axis")?,
                Primitive::Pad { padding } => rows_axis_kept(padding.axis, "pads the batch axis")?,
                Primitive::Gather { arg } => {
                    rows_axis_kept(arg.axis, "gathers along the batch axis")?
                }
                Primitive::ScatterAdd { arg } => {
                    rows_axis_kept(arg.axis, "scatters along the batch axis")?
                }
                Primitive::Custom(_) => {
                    return Err(mixes("is a custom op, which may mix examples"));
                }
                _ => {
                    // Element-wise: with equal shapes, rows stay rows; a shared operand that
                    // needs a gradient and is not broadcast over the batch would be one value
                    // for the whole batch (refused below, where parameters are matched).
                    if input_roles.contains(&Role::Shared) {
                        return Err(mixes(
                            "combines a batch row with a parameter value of the batch's shape",
                        ));
                    }
                    Role::Rows
                }
            }
        };
    }
    Ok(roles)
}

/// Every node where a parameter meets the batch, checking that each parameter reaches the
/// batch only through a matmul (as its right operand) or broadcasting.
fn boundaries<T: Float>(
    tape: &Tape<T>,
    root: usize,
    roles: &[Role],
    params: &[Var<'_, T>],
) -> Result<Vec<Boundary<T>>> {
    let nodes = tape.nodes();
    let mut found = Vec::new();
    for (position, param) in params.iter().enumerate() {
        if !nodes[param.index()].is_leaf() {
            return Err(refuse(format!(
                "parameter {position} (node #{}) is not a trainable leaf",
                param.index()
            )));
        }
    }
    for index in param_floor(params)..=root {
        let node = &nodes[index];
        let Some(op) = node.op() else { continue };
        let inputs = op.input_indices(&node.inputs);
        for (slot, &input) in inputs.iter().enumerate() {
            let Some(position) = params.iter().position(|p| p.index == input) else {
                continue;
            };
            if roles[index] != Role::Rows {
                // A use that stays shared (a penalty, a transpose): allowed only if it never
                // reaches the losses, which the roles pass saw as Shared-to-Rows boundaries.
                if reaches_rows(&nodes, roles, index, root) {
                    return Err(refuse(format!(
                        "parameter {position} reaches the batch through '{}' (node #{index}); per-sample gradients need each parameter used directly, as the right operand of a matmul or broadcast over the batch",
                        op.name()
                    )));
                }
                continue;
            }
            let left = match (op, slot) {
                (Primitive::Matmul {}, 1) if node.value.shape().rank() == 2 => {
                    Some(nodes[inputs[0] as usize].value.clone())
                }
                (Primitive::Expand { .. }, 0) => None,
                _ => {
                    return Err(refuse(format!(
                        "parameter {position} is used by '{}' (node #{index}) on batch rows; per-sample gradients need it as the right operand of a matmul or broadcast over the batch",
                        op.name()
                    )));
                }
            };
            found.push(Boundary {
                node: index as u32,
                param: position,
                left,
            });
        }
    }
    Ok(found)
}

/// The lowest parameter index (no node before it can use a parameter).
fn param_floor<T: Float>(params: &[Var<'_, T>]) -> usize {
    params.iter().map(Var::index).min().unwrap_or(usize::MAX)
}

/// True if a Shared node's value flows into a Rows node on the way to `root`.
fn reaches_rows<T: Float>(
    nodes: &crate::tape::NodeStore<T>,
    roles: &[Role],
    from: usize,
    root: usize,
) -> bool {
    let mut reached = vec![false; root + 1];
    reached[from] = true;
    for index in from + 1..=root {
        let node = &nodes[index];
        let Some(op) = node.op() else { continue };
        if op
            .input_indices(&node.inputs)
            .iter()
            .any(|&i| reached[i as usize])
        {
            if roles[index] == Role::Rows {
                return true;
            }
            reached[index] = true;
        }
    }
    false
}
