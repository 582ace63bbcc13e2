//! `einsum`: Einstein summation over subscripted operands, a composite lowered to permute,
//! reshape, `index_select` (diagonals), sum, broadcasting mul and the (batched) matmul, so it
//! has no backward code of its own.
//!
//! The lowering, for operands taken left to right:
//! 1. a subscript repeated within one operand takes that operand's diagonal: the two axes are
//!    moved last, flattened into one of n * n elements, and elements `0, n + 1, 2 (n + 1), ...`
//!    are picked with `index_select` (an exact copy, whose gradient is scattered back);
//! 2. a subscript that neither the output nor any operand still to come needs, and that the
//!    other side of the current contraction does not have, is summed out first;
//! 3. two operands are contracted by grouping their subscripts into batch (in both, kept),
//!    contracted (in both, not kept), left-free and right-free ones, permuting and reshaping
//!    them to `[batch, m, k] x [batch, k, n]` for the matmul (or, with nothing to contract,
//!    to broadcasting shapes for an element-wise mul), and reshaping the product back;
//! 4. the result is permuted into the output's order.

use tensor::{Float, Shape, TensorError};

use crate::error::{AutogradError, Result, or_panic};
use crate::tape::Var;

/// A parsed equation: the subscripts of each operand and of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Equation {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

/// Parses `spec` (whitespace ignored). Without `->`, the output is every subscript that occurs
/// exactly once among the inputs, in alphabetical (ASCII) order, as NumPy and PyTorch do.
fn parse(spec: &str) -> std::result::Result<Equation, String> {
    let compact: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains('.') {
        return Err(
            "an ellipsis ('...') is not supported: name every axis with a letter".to_string(),
        );
    }
    let (lhs, rhs) = match compact.split_once("->") {
        Some((_, rhs)) if rhs.contains("->") => {
            return Err(format!("more than one '->' in '{compact}'"));
        }
        Some((lhs, rhs)) => (lhs, Some(rhs)),
        None => (compact.as_str(), None),
    };
    let subscripts = |term: &str| -> std::result::Result<Vec<char>, String> {
        term.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    Ok(c)
                } else {
                    Err(format!(
                        "'{c}' is not a subscript (subscripts are ASCII letters, operands are separated by ',')"
                    ))
                }
            })
            .collect()
    };
    let inputs = lhs
        .split(',')
        .map(subscripts)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let output = match rhs {
        Some(rhs) => {
            let output = subscripts(rhs)?;
            for (i, c) in output.iter().enumerate() {
                if output[..i].contains(c) {
                    return Err(format!("output subscript '{c}' appears more than once"));
                }
                if !inputs.iter().any(|term| term.contains(c)) {
                    return Err(format!("output subscript '{c}' appears in no operand"));
                }
            }
            output
        }
        None => {
            let all: Vec<char> = inputs.iter().flatten().copied().collect();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    Ok(Equation { inputs, output })
}

/// An operand during the lowering: its Var and one subscript per axis.
#[derive(Clone, Debug)]
struct Term<'t, T: Float> {
    var: Var<'t, T>,
    subscripts: Vec<char>,
}

/// The checked sizes of every subscript, and the context for error messages.
struct Context<'a> {
    spec: &'a str,
    shapes: Vec<Shape>,
    sizes: Vec<(char, usize)>,
}

impl Context<'_> {
    fn error(&self, message: impl std::fmt::Display) -> AutogradError {
        einsum_error(self.spec, &self.shapes, message)
    }

    fn size(&self, c: char) -> usize {
        self.sizes
            .iter()
            .find(|(d, _)| *d == c)
            .map(|&(_, n)| n)
            .expect("every subscript was sized")
    }

    /// The product of the sizes of `subscripts`, or an error if it overflows.
    fn product(&self, subscripts: &[char]) -> Result<usize> {
        subscripts
            .iter()
            .try_fold(1usize, |p, &c| p.checked_mul(self.size(c)))
            .ok_or_else(|| self.error("a grouped size overflows usize"))
    }

    fn dims(&self, subscripts: &[char]) -> Vec<usize> {
        subscripts.iter().map(|&c| self.size(c)).collect()
    }
}

fn einsum_error(spec: &str, shapes: &[Shape], message: impl std::fmt::Display) -> AutogradError {
    let shapes: Vec<String> = shapes.iter().map(ToString::to_string).collect();
    TensorError::InvalidArgument {
        op: "einsum",
        message: format!("'{spec}' on shapes [{}]: {message}", shapes.join(", ")),
    }
    .into()
}

impl<'t, T: Float> Var<'t, T> {
    /// Einstein summation: `spec` names each operand's axes with one letter each, separated
    /// by commas, and optionally the output's after `->`; a letter shared by two axes ties
    /// them (equal sizes), and a letter missing from the output is summed over. Without `->`
    /// the output is every letter that occurs exactly once, in alphabetical order (NumPy's
    /// and PyTorch's implicit rule), so `"ij,jk"` is a matrix product and `"ii"` a trace.
    ///
    /// Supported: any number of operands (contracted left to right), repeated letters within
    /// one operand (a diagonal: `"ii->i"`, a trace: `"ii->"`), permutations, sums and
    /// broadcasting-free products (`"i,j->ij"`). Not supported: the ellipsis `...` (an error)
    /// and broadcasting of size-1 axes (every axis a letter names must have that letter's
    /// size). It is a composite (see the module notes in the source), so gradients of every
    /// order follow from its primitives; its values agree with an explicit loop to rounding
    /// (the sums run in a different order), and are exact for pure movements and diagonals.
    ///
    /// PyTorch: `torch.einsum(spec, *operands)`.
    ///
    /// ```
    /// use autograd::{Tape, Var};
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    /// let b = tape.leaf(Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], [2, 2]).unwrap());
    /// let product = Var::einsum("ij,jk->ik", &[a, b]);
    /// assert_eq!(product.value().to_vec(), a.matmul(b).value().to_vec());
    /// assert_eq!(Var::einsum("ii", &[a]).value().item(), 5.0); // the trace, implicitly
    /// assert_eq!(Var::einsum("ii->i", &[a]).value().to_vec(), vec![1.0, 4.0]);
    /// assert_eq!(Var::einsum("ij->ji", &[a]).value().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
    /// let grads = Var::einsum("ij,ij->", &[a, b]).backward(); // sum of a * b
    /// assert_eq!(grads.wrt(a).to_vec(), vec![5.0, 6.0, 7.0, 8.0]);
    /// assert!(Var::try_einsum("ij,jk->ik", &[a]).is_err()); // two subscript lists, one operand
    /// ```
    #[track_caller]
    pub fn einsum(spec: &str, operands: &[Var<'t, T>]) -> Var<'t, T> {
        or_panic(Var::try_einsum(spec, operands))
    }

    /// Fallible [`einsum`](Var::einsum). The error names the equation and the operands' shapes:
    /// bad syntax, an ellipsis, a number of operands other than the equation's, an operand
    /// whose rank differs from its number of subscripts, a letter given two sizes, an output
    /// letter that no operand has or that appears twice. Nothing is recorded on an error.
    #[track_caller]
    pub fn try_einsum(spec: &str, operands: &[Var<'t, T>]) -> Result<Var<'t, T>> {
        let shapes: Vec<Shape> = operands.iter().map(Var::shape).collect();
        let Some(first) = operands.first() else {
            return Err(einsum_error(spec, &shapes, "needs at least one operand"));
        };
        let tape = first.tape;
        for operand in operands {
            tape.check_owns("einsum", operand)?;
        }
        let equation = parse(spec).map_err(|message| einsum_error(spec, &shapes, message))?;
        let mut context = Context {
            spec,
            shapes,
            sizes: Vec::new(),
        };
        if equation.inputs.len() != operands.len() {
            return Err(context.error(format!(
                "the equation has {} operand(s) but {} were given",
                equation.inputs.len(),
                operands.len()
            )));
        }
        for (k, subscripts) in equation.inputs.iter().enumerate() {
            let dims = context.shapes[k].dims().to_vec();
            if dims.len() != subscripts.len() {
                let written: String = subscripts.iter().collect();
                return Err(context.error(format!(
                    "operand {k} has rank {} but {} subscript(s) '{written}'",
                    dims.len(),
                    subscripts.len()
                )));
            }
            for (&c, &n) in subscripts.iter().zip(&dims) {
                match context.sizes.iter().find(|(d, _)| *d == c) {
                    Some(&(_, size)) if size != n => {
                        return Err(context.error(format!(
                            "subscript '{c}' has size {size} and size {n} (operand {k})"
                        )));
                    }
                    Some(_) => {}
                    None => context.sizes.push((c, n)),
                }
            }
        }
        let guard = tape.rollback_guard();
        let result = lower(&context, &equation, operands)?;
        Ok(guard.commit(result))
    }
}

/// Records the contraction of the checked `equation`.
#[track_caller]
fn lower<'t, T: Float>(
    context: &Context<'_>,
    equation: &Equation,
    operands: &[Var<'t, T>],
) -> Result<Var<'t, T>> {
    let mut terms = Vec::with_capacity(operands.len());
    for (&var, subscripts) in operands.iter().zip(&equation.inputs) {
        let term = Term {
            var,
            subscripts: subscripts.clone(),
        };
        terms.push(diagonal(context, term)?);
    }
    let output = &equation.output;
    let mut terms = terms.into_iter();
    let mut acc = terms.next().expect("at least one operand");
    let rest: Vec<Term<'t, T>> = terms.collect();
    for (j, next) in rest.iter().enumerate() {
        // Needed after this contraction: the output's subscripts and the later operands'.
        let later: Vec<char> = rest[j + 1..]
            .iter()
            .flat_map(|t| t.subscripts.iter().copied())
            .collect();
        let keep = |c: &char| output.contains(c) || later.contains(c);
        let a = sum_out(acc, |c| keep(c) || next.subscripts.contains(c))?;
        let b = sum_out(next.clone(), |c| keep(c) || a.subscripts.contains(c))?;
        acc = contract(context, a, b, keep)?;
    }
    let acc = sum_out(acc, |c| output.contains(c))?;
    let order: Vec<usize> = output
        .iter()
        .map(|c| {
            acc.subscripts
                .iter()
                .position(|d| d == c)
                .expect("every output subscript survives")
        })
        .collect();
    permuted(acc.var, &order)
}

/// `var` permuted by `order`, or `var` itself if `order` is the identity.
#[track_caller]
fn permuted<'t, T: Float>(var: Var<'t, T>, order: &[usize]) -> Result<Var<'t, T>> {
    if order.iter().enumerate().all(|(i, &a)| i == a) {
        Ok(var)
    } else {
        var.try_permute(order)
    }
}

/// `var` reshaped to `dims`, or `var` itself if it has that shape.
#[track_caller]
fn reshaped<'t, T: Float>(var: Var<'t, T>, dims: Vec<usize>) -> Result<Var<'t, T>> {
    if var.shape().dims() == dims.as_slice() {
        Ok(var)
    } else {
        var.try_reshape(dims)
    }
}

/// The positions of `subscripts` in `term`'s.
fn positions<T: Float>(term: &Term<'_, T>, subscripts: &[char]) -> Vec<usize> {
    subscripts
        .iter()
        .map(|c| {
            term.subscripts
                .iter()
                .position(|d| d == c)
                .expect("a subscript of the term")
        })
        .collect()
}

/// The term with every repeated subscript reduced to one axis, its diagonal.
#[track_caller]
fn diagonal<'t, T: Float>(context: &Context<'_>, mut term: Term<'t, T>) -> Result<Term<'t, T>> {
    loop {
        let subscripts = &term.subscripts;
        let repeat = (0..subscripts.len()).find_map(|q| {
            subscripts[..q]
                .iter()
                .position(|c| *c == subscripts[q])
                .map(|p| (p, q))
        });
        let Some((p, q)) = repeat else {
            return Ok(term);
        };
        let c = subscripts[p];
        let n = context.size(c);
        let rank = subscripts.len();
        let mut order: Vec<usize> = (0..rank).filter(|&a| a != p && a != q).collect();
        let mut kept: Vec<char> = order.iter().map(|&a| subscripts[a]).collect();
        order.extend([p, q]);
        let moved = permuted(term.var, &order)?;
        let mut dims = context.dims(&kept);
        let diagonal = if moved.shape().numel() == 0 {
            // No element to pick: the diagonal is empty too, and a reshape gives its shape
            // without listing n indices.
            dims.push(n);
            reshaped(moved, dims)?
        } else {
            let flat = n
                .checked_mul(n)
                .ok_or_else(|| context.error("a diagonal's size overflows usize"))?;
            dims.push(flat);
            let rows = reshaped(moved, dims)?;
            let picks: Vec<usize> = (0..n).map(|i| i * (n + 1)).collect();
            rows.try_index_select(rank - 2, &picks)?
        };
        kept.push(c);
        term = Term {
            var: diagonal,
            subscripts: kept,
        };
    }
}

/// The term with the subscripts for which `keep` is false summed over.
#[track_caller]
fn sum_out<'t, T: Float>(term: Term<'t, T>, keep: impl Fn(&char) -> bool) -> Result<Term<'t, T>> {
    let axes: Vec<usize> = (0..term.subscripts.len())
        .filter(|&a| !keep(&term.subscripts[a]))
        .collect();
    if axes.is_empty() {
        return Ok(term);
    }
    let var = term.var.try_sum(&axes, false)?;
    let subscripts = term.subscripts.into_iter().filter(|c| keep(c)).collect();
    Ok(Term { var, subscripts })
}

/// The product of two terms (each with distinct subscripts, and every subscript in only one
/// of them already kept), summed over the shared subscripts that `keep` rejects. The result's
/// subscripts are the batch ones, then `a`'s free ones, then `b`'s.
#[track_caller]
fn contract<'t, T: Float>(
    context: &Context<'_>,
    a: Term<'t, T>,
    b: Term<'t, T>,
    keep: impl Fn(&char) -> bool,
) -> Result<Term<'t, T>> {
    let shared = |c: &char| b.subscripts.contains(c);
    let batch: Vec<char> = a
        .subscripts
        .iter()
        .copied()
        .filter(|c| shared(c) && keep(c))
        .collect();
    let summed: Vec<char> = a
        .subscripts
        .iter()
        .copied()
        .filter(|c| shared(c) && !keep(c))
        .collect();
    let left: Vec<char> = a
        .subscripts
        .iter()
        .copied()
        .filter(|c| !shared(c))
        .collect();
    let right: Vec<char> = b
        .subscripts
        .iter()
        .copied()
        .filter(|c| !a.subscripts.contains(c))
        .collect();
    let a_order = positions(&a, &[&batch[..], &left, &summed].concat());
    let b_order = positions(&b, &[&batch[..], &summed, &right].concat());
    let (a_var, b_var) = (permuted(a.var, &a_order)?, permuted(b.var, &b_order)?);
    let subscripts = [&batch[..], &left, &right].concat();
    let var = if summed.is_empty() {
        // Nothing to sum: an element-wise product, broadcasting the free axes against each
        // other (exact, one multiplication per element).
        let ones = |count: usize| vec![1; count];
        let a_dims = [context.dims(&batch), context.dims(&left), ones(right.len())].concat();
        let b_dims = [context.dims(&batch), ones(left.len()), context.dims(&right)].concat();
        reshaped(a_var, a_dims)?.try_mul(reshaped(b_var, b_dims)?)?
    } else {
        let (m, k, n) = (
            context.product(&left)?,
            context.product(&summed)?,
            context.product(&right)?,
        );
        let product = if batch.is_empty() {
            reshaped(a_var, vec![m, k])?.try_matmul(reshaped(b_var, vec![k, n])?)?
        } else {
            let count = context.product(&batch)?;
            reshaped(a_var, vec![count, m, k])?.try_matmul(reshaped(b_var, vec![count, k, n])?)?
        };
        reshaped(product, context.dims(&subscripts))?
    };
    Ok(Term { var, subscripts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;
    use tensor::Tensor;

    /// Distinct, irregular values of `dims` (seeded).
    fn tensor(dims: &[usize], seed: f64) -> Tensor<f64> {
        let count: usize = dims.iter().product();
        Tensor::from_vec(
            (0..count)
                .map(|i| ((i as f64 + 1.0) * 0.737 + seed).sin() * 1.9)
                .collect(),
            dims.to_vec(),
        )
        .unwrap()
    }

    fn einsum_value(spec: &str, inputs: &[&Tensor<f64>]) -> Tensor<f64> {
        let tape = Tape::<f64>::new();
        let vars: Vec<Var<'_, f64>> = inputs.iter().map(|&x| tape.leaf(x.clone())).collect();
        Var::einsum(spec, &vars).value()
    }

    fn assert_close(actual: &Tensor<f64>, expected: &[f64], dims: &[usize]) {
        assert_eq!(actual.dims(), dims);
        let actual = actual.to_vec();
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-12 * (1.0 + e.abs()),
                "element {i}: {a} vs {e}"
            );
        }
    }

    #[test]
    fn parse_reads_explicit_and_implicit_outputs() {
        let eq = parse("ij, jk -> ik").unwrap();
        assert_eq!(eq.inputs, vec![vec!['i', 'j'], vec!['j', 'k']]);
        assert_eq!(eq.output, vec!['i', 'k']);
        // Implicit: letters occurring once, sorted (uppercase first, as ASCII).
        assert_eq!(parse("kj,ji").unwrap().output, vec!['i', 'k']);
        assert_eq!(parse("ii").unwrap().output, Vec::<char>::new());
        assert_eq!(parse("bA,Ac").unwrap().output, vec!['b', 'c']);
        assert_eq!(parse("ba").unwrap().output, vec!['a', 'b']);
        assert_eq!(parse("Ba").unwrap().output, vec!['B', 'a']);
        assert_eq!(parse("i,i").unwrap().output, Vec::<char>::new());
        assert_eq!(parse("ij->").unwrap().output, Vec::<char>::new());
        assert_eq!(parse("->").unwrap().inputs, vec![Vec::<char>::new()]);
    }

    #[test]
    fn two_operand_patterns_match_explicit_loops() {
        let a = tensor(&[2, 3], 0.1);
        let b = tensor(&[3, 4], 0.7);
        let mut expected = vec![0.0; 8];
        for i in 0..2 {
            for k in 0..4 {
                for j in 0..3 {
                    expected[i * 4 + k] += a.get(&[i, j]) * b.get(&[j, k]);
                }
            }
        }
        assert_close(&einsum_value("ij,jk->ik", &[&a, &b]), &expected, &[2, 4]);
        assert_close(&einsum_value("ij,jk", &[&a, &b]), &expected, &[2, 4]);
        // The transposed product: out[k, i].
        let transposed: Vec<f64> = (0..8).map(|n| expected[(n % 2) * 4 + n / 2]).collect();
        assert_close(&einsum_value("ij,jk->ki", &[&a, &b]), &transposed, &[4, 2]);

        // Batched: out[b, i, k] = sum_j x[b, i, j] y[b, j, k].
        let x = tensor(&[2, 3, 2], 0.3);
        let y = tensor(&[2, 2, 4], 1.1);
        let mut batched = vec![0.0; 24];
        for bb in 0..2 {
            for i in 0..3 {
                for k in 0..4 {
                    for j in 0..2 {
                        batched[(bb * 3 + i) * 4 + k] += x.get(&[bb, i, j]) * y.get(&[bb, j, k]);
                    }
                }
            }
        }
        assert_close(
            &einsum_value("bij,bjk->bik", &[&x, &y]),
            &batched,
            &[2, 3, 4],
        );

        // Outer product.
        let u = tensor(&[3], 0.2);
        let v = tensor(&[2], 0.9);
        let outer: Vec<f64> = (0..6).map(|n| u.get(&[n / 2]) * v.get(&[n % 2])).collect();
        assert_close(&einsum_value("i,j->ij", &[&u, &v]), &outer, &[3, 2]);
        // Dot product.
        let w = tensor(&[3], 1.3);
        let dot: f64 = (0..3).map(|i| u.get(&[i]) * w.get(&[i])).sum();
        assert_close(&einsum_value("i,i->", &[&u, &w]), &[dot], &[]);
        // bn,bm->nm: sum over the shared batch of outer products.
        let p = tensor(&[4, 2], 0.5);
        let q = tensor(&[4, 3], 1.7);
        let mut gram = vec![0.0; 6];
        for bb in 0..4 {
            for n in 0..2 {
                for m in 0..3 {
                    gram[n * 3 + m] += p.get(&[bb, n]) * q.get(&[bb, m]);
                }
            }
        }
        assert_close(&einsum_value("bn,bm->nm", &[&p, &q]), &gram, &[2, 3]);
        // Hadamard (kept shared subscripts, nothing summed) and a summed Hadamard.
        let c = tensor(&[2, 3], 2.3);
        let hadamard: Vec<f64> = a
            .to_vec()
            .iter()
            .zip(c.to_vec())
            .map(|(x, y)| x * y)
            .collect();
        assert_close(&einsum_value("ij,ij->ij", &[&a, &c]), &hadamard, &[2, 3]);
        let frobenius: f64 = hadamard.iter().sum();
        assert_close(&einsum_value("ij,ij->", &[&a, &c]), &[frobenius], &[]);
        // A subscript only in one operand is summed first: out[i] = (sum_j a[i, j]) (sum_k w[k]).
        let row_sums: Vec<f64> = (0..2)
            .map(|i| (0..3).map(|j| a.get(&[i, j])).sum())
            .collect();
        let w_sum: f64 = w.to_vec().iter().sum();
        let expected: Vec<f64> = row_sums.iter().map(|r| r * w_sum).collect();
        assert_close(&einsum_value("ij,k->i", &[&a, &w]), &expected, &[2]);
    }

    #[test]
    fn one_operand_patterns_match_explicit_loops() {
        let m = tensor(&[3, 3], 0.4);
        let trace: f64 = (0..3).map(|i| m.get(&[i, i])).sum();
        assert_close(&einsum_value("ii->", &[&m]), &[trace], &[]);
        assert_close(&einsum_value("ii", &[&m]), &[trace], &[]);
        let diagonal: Vec<f64> = (0..3).map(|i| m.get(&[i, i])).collect();
        // A diagonal is a copy: exact.
        assert_eq!(einsum_value("ii->i", &[&m]).to_vec(), diagonal);
        let a = tensor(&[2, 3], 0.8);
        let transposed: Vec<f64> = (0..6).map(|n| a.get(&[n % 2, n / 2])).collect();
        assert_eq!(einsum_value("ij->ji", &[&a]).to_vec(), transposed);
        assert_eq!(einsum_value("ba", &[&a]).to_vec(), transposed);
        let total: f64 = a.to_vec().iter().sum();
        assert_close(&einsum_value("ij->", &[&a]), &[total], &[]);
        let column_sums: Vec<f64> = (0..3)
            .map(|j| (0..2).map(|i| a.get(&[i, j])).sum())
            .collect();
        assert_close(&einsum_value("ij->j", &[&a]), &column_sums, &[3]);
        assert_eq!(einsum_value("ij->ij", &[&a]).to_vec(), a.to_vec());
        // A rank-3 diagonal over axes 0 and 2, and a triple repeat.
        let t = tensor(&[3, 2, 3], 1.9);
        let mut expected = vec![0.0; 6];
        for i in 0..3 {
            for j in 0..2 {
                expected[j * 3 + i] = t.get(&[i, j, i]);
            }
        }
        assert_eq!(einsum_value("iji->ji", &[&t]).to_vec(), expected);
        let cube = tensor(&[2, 2, 2], 0.6);
        let cube_diagonal = vec![cube.get(&[0, 0, 0]), cube.get(&[1, 1, 1])];
        assert_eq!(einsum_value("iii->i", &[&cube]).to_vec(), cube_diagonal);
    }

    #[test]
    fn three_operands_contract_left_to_right() {
        // out[i, l] = sum_jk a[i, j] b[j, k] c[k, l].
        let a = tensor(&[2, 3], 0.1);
        let b = tensor(&[3, 4], 0.2);
        let c = tensor(&[4, 2], 0.3);
        let mut expected = vec![0.0; 4];
        for i in 0..2 {
            for l in 0..2 {
                for j in 0..3 {
                    for k in 0..4 {
                        expected[i * 2 + l] += a.get(&[i, j]) * b.get(&[j, k]) * c.get(&[k, l]);
                    }
                }
            }
        }
        assert_close(
            &einsum_value("ij,jk,kl->il", &[&a, &b, &c]),
            &expected,
            &[2, 2],
        );
        // A subscript shared by the first and the third operand only: out[] = sum a[i,j] b[j,k] c[k,i].
        let mut cyclic = 0.0;
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    cyclic += a.get(&[i, j]) * b.get(&[j, k]) * c.get(&[k, i]);
                }
            }
        }
        assert_close(&einsum_value("ij,jk,ki->", &[&a, &b, &c]), &[cyclic], &[]);
        // Three vectors, one kept subscript: out[i] = u[i] v[i] w[i].
        let (u, v, w) = (tensor(&[3], 0.4), tensor(&[3], 0.5), tensor(&[3], 0.6));
        let triple: Vec<f64> = (0..3)
            .map(|i| u.get(&[i]) * v.get(&[i]) * w.get(&[i]))
            .collect();
        assert_close(&einsum_value("i,i,i->i", &[&u, &v, &w]), &triple, &[3]);
    }

    #[test]
    fn a_diagonal_and_a_contraction_in_one_operand_pair() {
        // out[i, k] = sum_j a[i, i, j] b[j, k].
        let a = tensor(&[2, 2, 3], 0.9);
        let b = tensor(&[3, 2], 1.4);
        let mut expected = vec![0.0; 4];
        for i in 0..2 {
            for k in 0..2 {
                for j in 0..3 {
                    expected[i * 2 + k] += a.get(&[i, i, j]) * b.get(&[j, k]);
                }
            }
        }
        assert_close(&einsum_value("iij,jk->ik", &[&a, &b]), &expected, &[2, 2]);
        // Implicitly, i occurs twice and is summed too: out[k] = sum_i out[i, k].
        let summed: Vec<f64> = (0..2).map(|k| expected[k] + expected[2 + k]).collect();
        assert_close(&einsum_value("iij,jk", &[&a, &b]), &summed, &[2]);
    }

    #[test]
    fn empty_axes_give_empty_or_zero_results() {
        let a = Tensor::<f64>::zeros([2, 0]);
        let b = Tensor::<f64>::zeros([0, 3]);
        assert_eq!(einsum_value("ij,jk->ik", &[&a, &b]).to_vec(), vec![0.0; 6]);
        assert_eq!(einsum_value("ij->j", &[&a]).dims(), &[0]);
        let m = Tensor::<f64>::zeros([0, 0]);
        assert_eq!(einsum_value("ii->i", &[&m]).dims(), &[0]);
        assert_eq!(einsum_value("ii->", &[&m]).to_vec(), vec![0.0]);
    }

    #[test]
    fn einsum_gradients() {
        let a = tensor(&[2, 3], 0.1);
        let b = tensor(&[3, 4], 0.7);
        assert_gradcheck(
            |x| Var::einsum("ij,jk->ik", &[x[0], x[1]]),
            &[a.clone(), b.clone()],
        );
        assert_gradcheck(
            |x| Var::einsum("ij,jk->ki", &[x[0], x[1]]),
            &[a.clone(), b.clone()],
        );
        assert_gradcheck(
            |x| Var::einsum("bij,bjk->bik", &[x[0], x[1]]),
            &[tensor(&[2, 3, 2], 0.3), tensor(&[2, 2, 4], 1.1)],
        );
        assert_gradcheck(
            |x| Var::einsum("i,j->ij", &[x[0], x[1]]),
            &[tensor(&[3], 0.2), tensor(&[2], 0.4)],
        );
        assert_gradcheck(|x| Var::einsum("ii->", &[x[0]]), &[tensor(&[3, 3], 0.5)]);
        assert_gradcheck(
            |x| Var::einsum("ii->i", &[x[0]]).square(),
            &[tensor(&[3, 3], 0.5)],
        );
        assert_gradcheck(
            |x| Var::einsum("iji->ij", &[x[0]]).square(),
            &[tensor(&[3, 2, 3], 0.5)],
        );
        assert_gradcheck(
            |x| Var::einsum("bn,bm->nm", &[x[0], x[1]]),
            &[tensor(&[4, 2], 0.6), tensor(&[4, 3], 0.8)],
        );
        assert_gradcheck(
            |x| Var::einsum("ij,jk,kl->il", &[x[0], x[1], x[0]]),
            &[tensor(&[3, 3], 0.1), tensor(&[3, 3], 0.2)],
        );
        assert_gradcheck(
            |x| Var::einsum("iij,jk->ik", &[x[0], x[1]]),
            &[tensor(&[2, 2, 3], 0.9), tensor(&[3, 2], 1.4)],
        );
        // a[i, j] used twice: its gradient is the sum of both contributions, 2 a.
        let tape = Tape::<f64>::new();
        let x = tape.leaf(a.clone());
        let grad = Var::einsum("ij,ij->", &[x, x]).backward().wrt(x);
        assert_eq!(grad.to_vec(), a.map(|v| 2.0 * v).to_vec());
    }

    #[test]
    fn the_trace_gradient_is_the_identity() {
        let tape = Tape::<f64>::new();
        let m = tape.leaf(tensor(&[3, 3], 0.5));
        let grad = Var::einsum("ii->", &[m]).backward().wrt(m);
        assert_eq!(grad.to_vec(), Tensor::<f64>::eye(3).to_vec());
    }

    #[test]
    fn errors_name_the_equation_and_the_shapes_and_record_nothing() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::zeros([2, 3]));
        let b = tape.leaf(Tensor::zeros([4, 5]));
        let before = tape.len();
        let message = |spec: &str, operands: &[Var<'_, f64>]| {
            Var::try_einsum(spec, operands).unwrap_err().to_string()
        };
        assert_eq!(
            message("ij,jk->ik", &[a, b]),
            "einsum: 'ij,jk->ik' on shapes [[2, 3], [4, 5]]: subscript 'j' has size 3 and size 4 (operand 1)"
        );
        assert_eq!(
            message("ij,jk->ik", &[a]),
            "einsum: 'ij,jk->ik' on shapes [[2, 3]]: the equation has 2 operand(s) but 1 were given"
        );
        assert_eq!(
            message("ijk->i", &[a]),
            "einsum: 'ijk->i' on shapes [[2, 3]]: operand 0 has rank 2 but 3 subscript(s) 'ijk'"
        );
        assert!(message("ij->ik", &[a]).ends_with("output subscript 'k' appears in no operand"));
        assert!(message("ij->ii", &[a]).ends_with("output subscript 'i' appears more than once"));
        assert!(message("...ij->ij", &[a]).contains("ellipsis"));
        assert!(message("i1->i", &[a]).contains("'1' is not a subscript"));
        assert!(message("ij->i->j", &[a]).contains("more than one '->'"));
        assert!(message("ii->i", &[a]).contains("subscript 'i' has size 2 and size 3 (operand 0)"));
        assert_eq!(
            Var::<'_, f64>::try_einsum("->", &[])
                .unwrap_err()
                .to_string(),
            "einsum: '->' on shapes []: needs at least one operand"
        );
        assert_eq!(tape.len(), before);
        let other = Tape::<f64>::new();
        let foreign = other.leaf(Tensor::zeros([3, 4]));
        assert!(matches!(
            Var::try_einsum("ij,jk->ik", &[a, foreign]),
            Err(AutogradError::ForeignVar { op: "einsum" })
        ));
        assert_eq!(tape.len(), before);
    }

    /// An independent einsum: loops over every assignment of every subscript, multiplying the
    /// operands' elements into the output's (no permute, reshape or matmul involved).
    fn brute_force(inputs: &[&str], output: &str, operands: &[Tensor<f64>]) -> Tensor<f64> {
        let mut letters: Vec<char> = inputs.iter().flat_map(|t| t.chars()).collect();
        letters.sort_unstable();
        letters.dedup();
        let size = |c: char| {
            inputs
                .iter()
                .zip(operands)
                .find_map(|(t, x)| t.chars().position(|d| d == c).map(|a| x.dims()[a]))
                .unwrap()
        };
        let sizes: Vec<usize> = letters.iter().map(|&c| size(c)).collect();
        let out_dims: Vec<usize> = output.chars().map(size).collect();
        let mut out = vec![0.0; out_dims.iter().product()];
        let mut assignment = vec![0usize; letters.len()];
        let value_of = |c: char, assignment: &[usize]| {
            assignment[letters.iter().position(|&d| d == c).unwrap()]
        };
        if sizes.iter().all(|&n| n > 0) {
            loop {
                let mut product = 1.0;
                for (term, x) in inputs.iter().zip(operands) {
                    let index: Vec<usize> =
                        term.chars().map(|c| value_of(c, &assignment)).collect();
                    product *= x.get(&index);
                }
                let flat = output
                    .chars()
                    .zip(&out_dims)
                    .fold(0, |f, (c, &n)| f * n + value_of(c, &assignment));
                out[flat] += product;
                // The next assignment (odometer order).
                let mut axis = letters.len();
                loop {
                    if axis == 0 {
                        return Tensor::from_vec(out, out_dims).unwrap();
                    }
                    axis -= 1;
                    assignment[axis] += 1;
                    if assignment[axis] < sizes[axis] {
                        break;
                    }
                    assignment[axis] = 0;
                }
            }
        }
        Tensor::from_vec(out, out_dims).unwrap()
    }

    #[test]
    fn many_patterns_match_a_brute_force_sum() {
        // (equation, explicit output for the brute force, operand shapes)
        let cases: [(&str, &str, &[&[usize]]); 16] = [
            ("ij,jk->ik", "ik", &[&[2, 3], &[3, 4]]),
            ("bij,bjk->bik", "bik", &[&[2, 3, 2], &[2, 2, 3]]),
            ("i,j->ij", "ij", &[&[3], &[4]]),
            ("i,i->", "", &[&[5], &[5]]),
            ("bn,bm->nm", "nm", &[&[3, 2], &[3, 4]]),
            ("ii,j->j", "j", &[&[3, 3], &[2]]),
            ("ii,i->i", "i", &[&[3, 3], &[3]]),
            ("ij,kl->ji", "ji", &[&[2, 3], &[2, 2]]),
            ("ijk,jl->lik", "lik", &[&[2, 3, 2], &[3, 4]]),
            ("iij,jk", "k", &[&[2, 2, 3], &[3, 2]]),
            ("ba,ca", "bc", &[&[2, 3], &[4, 3]]),
            ("ij,jk,kl->il", "il", &[&[2, 3], &[3, 3], &[3, 2]]),
            ("ij,ij,ij->j", "j", &[&[2, 3], &[2, 3], &[2, 3]]),
            ("abc,cd,bd->da", "da", &[&[2, 3, 2], &[2, 3], &[3, 3]]),
            ("ijj,kj->ki", "ki", &[&[2, 3, 3], &[2, 3]]),
            ("bij,jk->bki", "bki", &[&[2, 2, 3], &[3, 2]]),
        ];
        for (n, (spec, output, shapes)) in cases.iter().enumerate() {
            let lhs = spec.split("->").next().unwrap();
            let terms: Vec<&str> = lhs.split(',').collect();
            let operands: Vec<Tensor<f64>> = shapes
                .iter()
                .enumerate()
                .map(|(k, dims)| tensor(dims, n as f64 + 0.3 * k as f64))
                .collect();
            let expected = brute_force(&terms, output, &operands);
            let refs: Vec<&Tensor<f64>> = operands.iter().collect();
            let actual = einsum_value(spec, &refs);
            assert_close(&actual, &expected.to_vec(), expected.dims());
        }
    }
}
