//! Composite ops: built only from primitives, so they have no backward code of their own and
//! their gradients (and higher-order gradients) are derived by the tape.

use tensor::{Float, Tensor, TensorError};

use crate::error::{Result, or_panic};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// x * x (the gradient 2x arrives as two contributions of x).
    #[track_caller]
    pub fn square(self) -> Var<'t, T> {
        or_panic(self.try_square())
    }

    /// Fallible [`square`](Var::square) (fails only in anomaly mode).
    #[track_caller]
    pub fn try_square(self) -> Result<Var<'t, T>> {
        self.try_mul(self)
    }

    /// The sum of x^2 over `axes` (`keepdim` keeps them as size-1 axes): a squared norm, as
    /// `square` then `sum` (gradient 2x), without keeping the squares on the tape: they are
    /// freed as soon as they are summed (for W2's weights, 2.7 MB a step), since the sum's rule
    /// needs only their shape.
    #[track_caller]
    pub fn sum_of_squares(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_sum_of_squares(axes, keepdim))
    }

    /// Fallible [`sum_of_squares`](Var::sum_of_squares).
    #[track_caller]
    pub fn try_sum_of_squares(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        self.shape().axis_mask("sum_of_squares", axes)?;
        let guard = self.tape.rollback_guard();
        let squares = self.try_square()?;
        let total = squares.try_sum(axes, keepdim)?;
        self.tape.release_value(squares);
        Ok(guard.commit(total))
    }

    /// -x.
    #[track_caller]
    pub fn try_neg(self) -> Result<Var<'t, T>> {
        self.try_mul_scalar(-T::ONE)
    }

    /// Mean over `axes`: the sum times 1/n (a multiplication, so the last bit may differ from
    /// a division by n). NaN over an empty axis.
    #[track_caller]
    pub fn mean(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_mean(axes, keepdim))
    }

    /// Fallible [`mean`](Var::mean).
    #[track_caller]
    pub fn try_mean(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let shape = self.shape();
        shape.axis_mask("mean", axes)?;
        // Tensor::mean's formula, to the bit: the sum times 1/n.
        let scale = T::ONE / T::from_usize(shape.reduced_count(axes));
        let guard = self.tape.rollback_guard();
        let mean = self.try_sum(axes, keepdim)?.try_mul_scalar(scale)?;
        Ok(guard.commit(mean))
    }

    /// Mean of all elements (a rank-0 result).
    #[track_caller]
    pub fn mean_all(self) -> Var<'t, T> {
        or_panic(self.try_mean_all())
    }

    /// Fallible [`mean_all`](Var::mean_all).
    #[track_caller]
    pub fn try_mean_all(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_mean(&axes, false)
    }

    /// Variance over `axes`: mean squared deviation from the mean, divided by n (`unbiased =
    /// false`, as batch norm uses) or by n - 1 (`unbiased = true`, Bessel's correction).
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [4]).unwrap());
    /// assert_eq!(x.variance(&[0], false, false).value().item(), 1.25);
    /// assert!((x.variance(&[0], false, true).value().item() - 5.0 / 3.0).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn variance(self, axes: &[usize], keepdim: bool, unbiased: bool) -> Var<'t, T> {
        or_panic(self.try_variance(axes, keepdim, unbiased))
    }

    /// Fallible [`variance`](Var::variance).
    #[track_caller]
    pub fn try_variance(self, axes: &[usize], keepdim: bool, unbiased: bool) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let mask = shape.axis_mask("variance", axes)?;
        let guard = self.tape.rollback_guard();
        let (_, _, mut variance) = self.try_moments(axes, unbiased)?;
        if !keepdim {
            variance = variance.try_reshape(shape.reduced(mask, false))?;
        }
        Ok(guard.commit(variance))
    }

    /// The pieces of a variance over `axes`, each keeping the reduced axes as size 1: the mean,
    /// the deviation `x - mean`, and the variance `sum(deviation^2) / d` with `d` = n, or
    /// n - 1 when `unbiased` (Tensor::variance's formula, to the bit). Batch norm takes all
    /// three from here, so variance is written once.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], [2, 2]).unwrap());
    /// let (mean, deviation, variance) = x.try_moments(&[0], false).unwrap();
    /// assert_eq!(mean.value().to_vec(), vec![2.0, 4.0]);
    /// assert_eq!(deviation.value().to_vec(), vec![-1.0, -2.0, 1.0, 2.0]);
    /// assert_eq!(variance.value().to_vec(), vec![1.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn try_moments(
        self,
        axes: &[usize],
        unbiased: bool,
    ) -> Result<(Var<'t, T>, Var<'t, T>, Var<'t, T>)> {
        let shape = self.shape();
        shape.axis_mask("variance", axes)?;
        let count = shape.reduced_count(axes);
        let divisor = if unbiased {
            count.saturating_sub(1)
        } else {
            count
        };
        let guard = self.tape.rollback_guard();
        let mean = self.try_mean(axes, true)?;
        let deviation = self.try_sub(mean)?;
        let variance = deviation
            .try_sum_of_squares(axes, true)?
            .try_mul_scalar(T::ONE / T::from_usize(divisor))?;
        Ok(guard.commit((mean, deviation, variance)))
    }

    /// Minimum over `axes`, as -max(-x) (ties share the gradient equally).
    #[track_caller]
    pub fn min(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_min(axes, keepdim))
    }

    /// Fallible [`min`](Var::min).
    #[track_caller]
    pub fn try_min(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        // Validate before recording the negation.
        self.value().try_min(axes, keepdim)?;
        let guard = self.tape.rollback_guard();
        let min = self.try_neg()?.try_max(axes, keepdim)?.try_neg()?;
        Ok(guard.commit(min))
    }

    /// Minimum of all elements (a rank-0 result).
    #[track_caller]
    pub fn min_all(self) -> Var<'t, T> {
        or_panic(self.try_min_all())
    }

    /// Fallible [`min_all`](Var::min_all).
    #[track_caller]
    pub fn try_min_all(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_min(&axes, false)
    }

    /// log(sum(exp(x))) over `axes`, stable at any magnitude: the maximum m is subtracted
    /// before `exp` and added back after `log`. m enters as a constant, which is exact: the
    /// result does not depend on the shift, so neither does its gradient (softmax).
    #[track_caller]
    pub fn logsumexp(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_logsumexp(axes, keepdim))
    }

    /// Fallible [`logsumexp`](Var::logsumexp).
    #[track_caller]
    pub fn try_logsumexp(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let mask = shape.axis_mask("logsumexp", axes)?;
        // Tensor::logsumexp's shift and formula, to the bit.
        let shift = self.value().try_logsumexp_shift(axes)?;
        let guard = self.tape.rollback_guard();
        let shift = self.tape.constant(shift);
        let total = self.try_sub(shift)?.try_exp()?.try_sum(axes, true)?;
        let mut result = total.try_log()?.try_add(shift)?;
        if !keepdim {
            result = result.try_reshape(shape.reduced(mask, false))?;
        }
        Ok(guard.commit(result))
    }

    /// x - logsumexp(x) along `axis`: log-probabilities, finite for logits of any magnitude.
    #[track_caller]
    pub fn log_softmax(self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_log_softmax(axis))
    }

    /// Fallible [`log_softmax`](Var::log_softmax).
    #[track_caller]
    pub fn try_log_softmax(self, axis: usize) -> Result<Var<'t, T>> {
        let guard = self.tape.rollback_guard();
        let normaliser = self.try_logsumexp(&[axis], true)?;
        let result = self.try_sub(normaliser)?;
        Ok(guard.commit(result))
    }

    /// exp(log_softmax(x)) along `axis`: probabilities summing to 1.
    #[track_caller]
    pub fn softmax(self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_softmax(axis))
    }

    /// Fallible [`softmax`](Var::softmax).
    #[track_caller]
    pub fn try_softmax(self, axis: usize) -> Result<Var<'t, T>> {
        let guard = self.tape.rollback_guard();
        let result = self.try_log_softmax(axis)?.try_exp()?;
        Ok(guard.commit(result))
    }

    /// ln(1 + e^x), stable at any magnitude: logsumexp over the pair (0, x), so its derivative
    /// is sigmoid(x) everywhere, including x = 0.
    #[track_caller]
    pub fn softplus(self) -> Var<'t, T> {
        or_panic(self.try_softplus())
    }

    /// Fallible [`softplus`](Var::softplus).
    #[track_caller]
    pub fn try_softplus(self) -> Result<Var<'t, T>> {
        let shift = self.value().map(|x| if x > T::ZERO { x } else { T::ZERO });
        let guard = self.tape.rollback_guard();
        let shift = self.tape.constant(shift);
        // e^(0 - m) + e^(x - m) with m = max(0, x): both exponents are <= 0.
        let total = shift
            .try_neg()?
            .try_exp()?
            .try_add(self.try_sub(shift)?.try_exp()?)?;
        let result = total.try_log()?.try_add(shift)?;
        Ok(guard.commit(result))
    }

    /// Element-wise maximum with broadcasting. Where a = b the gradient is split in half.
    /// The max over the pair (a, b) stacked on a new last axis: the value is exactly
    /// `Tensor::maximum`'s (ties, infinities, signed zeros and NaN included) and the max
    /// reduction's rule splits a tie.
    #[track_caller]
    pub fn maximum(self, other: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_maximum(other))
    }

    /// Fallible [`maximum`](Var::maximum).
    #[track_caller]
    pub fn try_maximum(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        let guard = self.tape.rollback_guard();
        let (pair, axis) = self.try_stack_pair(other, "maximum")?;
        let result = pair.try_max(&[axis], false)?;
        Ok(guard.commit(result))
    }

    /// Element-wise minimum with broadcasting. Where a = b the gradient is split in half
    /// (as for [`maximum`](Var::maximum), through `min = -max(-x)`).
    #[track_caller]
    pub fn minimum(self, other: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_minimum(other))
    }

    /// Fallible [`minimum`](Var::minimum).
    #[track_caller]
    pub fn try_minimum(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        let guard = self.tape.rollback_guard();
        let (pair, axis) = self.try_stack_pair(other, "minimum")?;
        let result = pair.try_min(&[axis], false)?;
        Ok(guard.commit(result))
    }

    /// `self` and `other`, broadcast together, stacked along a new last axis.
    #[track_caller]
    fn try_stack_pair(self, other: Var<'t, T>, op: &'static str) -> Result<(Var<'t, T>, usize)> {
        self.tape.check_owns(op, &other)?;
        let (a, b) = self.broadcast_pair(other, op)?;
        let axis = a.shape().rank();
        let pair = Var::try_concat(&[a.try_unsqueeze(axis)?, b.try_unsqueeze(axis)?], axis)?;
        Ok((pair, axis))
    }

    /// Joins Vars along an existing `axis` (all other axes equal), composed of `pad` and
    /// `select`: each part is copied exactly (as `Tensor::concat`) and its gradient is its
    /// slice of the output's.
    #[track_caller]
    pub fn concat(parts: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        or_panic(Var::try_concat(parts, axis))
    }

    /// Fallible [`concat`](Var::concat).
    #[track_caller]
    pub fn try_concat(parts: &[Var<'t, T>], axis: usize) -> Result<Var<'t, T>> {
        let Some(first) = parts.first() else {
            return Err(TensorError::InvalidArgument {
                op: "concat",
                message: "needs at least one Var".to_string(),
            }
            .into());
        };
        let shapes: Vec<_> = parts.iter().map(Var::shape).collect();
        for part in parts {
            first.tape.check_owns("concat", part)?;
        }
        let reference = &shapes[0];
        reference.check_axis("concat", axis)?;
        for shape in &shapes {
            let compatible = shape.rank() == reference.rank()
                && (0..reference.rank())
                    .all(|d| d == axis || shape.dims()[d] == reference.dims()[d]);
            if !compatible {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: reference.clone(),
                    rhs: shape.clone(),
                }
                .into());
            }
        }
        let total = shapes
            .iter()
            .try_fold(0usize, |sum, s| sum.checked_add(s.dims()[axis]))
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "concat",
                message: format!("the sizes along axis {axis} overflow"),
            })?;
        let guard = first.tape.rollback_guard();
        let mut before = 0;
        let mut joined: Option<Var<'t, T>> = None;
        for (part, shape) in parts.iter().zip(&shapes) {
            let len = shape.dims()[axis];
            let after = total - before - len;
            let placed = part.try_pad(axis, before, after)?;
            joined = Some(match joined {
                None => placed,
                // Selected, not added to the zero padding: -0 + 0 would give +0, and concat
                // copies its parts exactly (as Tensor::concat).
                Some(joined) => {
                    let region = Tensor::try_full(shape, T::ONE)?.try_pad(axis, before, after)?;
                    Var::try_select(&region, placed, joined)?
                }
            });
            before += len;
        }
        Ok(guard.commit(joined.expect("at least one part")))
    }

    /// Splits along `axis` into consecutive parts of the given `sizes`, which must sum to the
    /// axis's length (zero sizes give empty parts), each a [`narrow`](Var::narrow) view whose
    /// gradient is its slice of the input's.
    ///
    /// PyTorch: `torch.split(x, sizes, dim)` with a list of sizes.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], [5]).unwrap());
    /// let parts = x.split(&[2, 3], 0);
    /// assert_eq!(parts[0].value().to_vec(), vec![1.0, 2.0]);
    /// assert_eq!(parts[1].value().to_vec(), vec![3.0, 4.0, 5.0]);
    /// let loss = parts[0].sum_all() + parts[1].sum_all() * 10.0;
    /// assert_eq!(loss.backward().wrt(x).to_vec(), vec![1.0, 1.0, 10.0, 10.0, 10.0]);
    /// assert!(x.try_split(&[2, 2], 0).is_err()); // 2 + 2 is not 5
    /// ```
    #[track_caller]
    pub fn split(self, sizes: &[usize], axis: usize) -> Vec<Var<'t, T>> {
        or_panic(self.try_split(sizes, axis))
    }

    /// Fallible [`split`](Var::split): an axis out of range, or sizes that do not sum to its
    /// length, is an error naming the sizes and the shape.
    #[track_caller]
    pub fn try_split(self, sizes: &[usize], axis: usize) -> Result<Vec<Var<'t, T>>> {
        let shape = self.shape();
        shape.check_axis("split", axis)?;
        let len = shape.dims()[axis];
        let total = sizes.iter().try_fold(0usize, |sum, &n| sum.checked_add(n));
        if total != Some(len) {
            let total = total.map_or_else(|| "more than usize::MAX".to_string(), |t| t.to_string());
            return Err(TensorError::InvalidArgument {
                op: "split",
                message: format!(
                    "sizes {sizes:?} sum to {total}, but axis {axis} of shape {shape} has length {len}"
                ),
            }
            .into());
        }
        let mut parts = Vec::new();
        parts
            .try_reserve_exact(sizes.len())
            .map_err(|_| TensorError::InvalidArgument {
                op: "split",
                message: format!("{} parts cannot be allocated", sizes.len()),
            })?;
        let guard = self.tape.rollback_guard();
        let mut start = 0;
        for &size in sizes {
            parts.push(self.try_narrow(axis, start, size)?);
            start += size;
        }
        Ok(guard.commit(parts))
    }

    /// Splits along `axis` into parts of ceil(n / `chunks`) elements, the last one smaller
    /// when `chunks` does not divide the length n. As in PyTorch, this may give **fewer than
    /// `chunks` parts**: a length of 5 in 4 chunks gives parts of 2, 2 and 1. An empty axis
    /// gives `chunks` empty parts. Built from [`split`](Var::split).
    ///
    /// PyTorch: `torch.chunk(x, chunks, dim)`.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], [5]).unwrap());
    /// let lengths: Vec<usize> = x.chunk(4, 0).iter().map(|p| p.shape().dims()[0]).collect();
    /// assert_eq!(lengths, vec![2, 2, 1]);
    /// assert!(x.try_chunk(0, 0).is_err());
    /// ```
    #[track_caller]
    pub fn chunk(self, chunks: usize, axis: usize) -> Vec<Var<'t, T>> {
        or_panic(self.try_chunk(chunks, axis))
    }

    /// Fallible [`chunk`](Var::chunk): `chunks` = 0 or an axis out of range is an error.
    #[track_caller]
    pub fn try_chunk(self, chunks: usize, axis: usize) -> Result<Vec<Var<'t, T>>> {
        let shape = self.shape();
        shape.check_axis("chunk", axis)?;
        if chunks == 0 {
            return Err(TensorError::InvalidArgument {
                op: "chunk",
                message: format!("needs at least 1 chunk, got 0 (shape {shape}, axis {axis})"),
            }
            .into());
        }
        let len = shape.dims()[axis];
        let mut sizes = Vec::new();
        let count = if len == 0 {
            chunks
        } else {
            len.div_ceil(len.div_ceil(chunks))
        };
        sizes
            .try_reserve_exact(count)
            .map_err(|_| TensorError::InvalidArgument {
                op: "chunk",
                message: format!("{chunks} chunks of shape {shape} cannot be allocated"),
            })?;
        if len == 0 {
            sizes.resize(chunks, 0);
        } else {
            let size = len.div_ceil(chunks);
            sizes.extend((0..len).step_by(size).map(|start| size.min(len - start)));
        }
        self.try_split(&sizes, axis)
    }

    /// Joins Vars of one shape along a new `axis` (0 to their rank): each part is unsqueezed
    /// there, then joined by [`concat`](Var::concat), so the values are copied exactly and each
    /// part's gradient is its slice of the output's.
    ///
    /// PyTorch: `torch.stack(tensors, dim)`.
    ///
    /// ```
    /// use autograd::{Tape, Var};
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    /// let b = tape.leaf(Tensor::from_vec(vec![3.0, 4.0], [2]).unwrap());
    /// let rows = Var::stack(&[a, b], 0);
    /// assert_eq!((rows.shape().dims().to_vec(), rows.value().to_vec()), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    /// let columns = Var::stack(&[a, b], 1);
    /// assert_eq!(columns.value().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn stack(parts: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        or_panic(Var::try_stack(parts, axis))
    }

    /// Fallible [`stack`](Var::stack): no parts, parts of different shapes, or an axis above
    /// their rank is an error naming the shapes.
    #[track_caller]
    pub fn try_stack(parts: &[Var<'t, T>], axis: usize) -> Result<Var<'t, T>> {
        let Some(first) = parts.first() else {
            return Err(TensorError::InvalidArgument {
                op: "stack",
                message: "needs at least one Var".to_string(),
            }
            .into());
        };
        for part in parts {
            first.tape.check_owns("stack", part)?;
        }
        let shape = first.shape();
        if let Some(other) = parts.iter().map(Var::shape).find(|s| s != &shape) {
            return Err(TensorError::ShapeMismatch {
                op: "stack",
                lhs: shape,
                rhs: other,
            }
            .into());
        }
        if axis > shape.rank() {
            return Err(TensorError::InvalidArgument {
                op: "stack",
                message: format!(
                    "axis {axis} is out of range 0..={} for parts of shape {shape}",
                    shape.rank()
                ),
            }
            .into());
        }
        let guard = first.tape.rollback_guard();
        let unsqueezed = parts
            .iter()
            .map(|part| part.try_unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        let stacked = Var::try_concat(&unsqueezed, axis)?;
        Ok(guard.commit(stacked))
    }

    /// Each element limited to `[min, max]`: the value is exactly `Tensor::clamp`'s (NaN stays
    /// NaN), and the gradient is 1 where `min <= x <= max`, **bounds included**, and 0 strictly
    /// outside (and at NaN), as PyTorch's. (A clamp built as `minimum(maximum(x, min), max)`
    /// gives 1/2 at the bounds instead.) At a bound the one-sided derivatives are 0 and 1, so
    /// 1 is a valid subgradient. Built as `select(min <= x <= max, x, clamp(x))` with the mask
    /// and the clamped values computed from x's value as constants. A NaN bound, or
    /// `min > max`, is an error (PyTorch gives `max` everywhere for the latter).
    ///
    /// PyTorch: `torch.clamp(x, min, max)` (alias `torch.clip`).
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![-2.0, -1.0, 0.5, 1.0, 3.0], [5]).unwrap());
    /// let y = x.clamp(-1.0, 1.0);
    /// assert_eq!(y.value().to_vec(), vec![-1.0, -1.0, 0.5, 1.0, 1.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).to_vec(), vec![0.0, 1.0, 1.0, 1.0, 0.0]);
    /// assert!(x.try_clamp(1.0, -1.0).is_err());
    /// ```
    #[doc(alias = "clip")]
    #[track_caller]
    pub fn clamp(self, min: T, max: T) -> Var<'t, T> {
        or_panic(self.try_clamp(min, max))
    }

    /// Fallible [`clamp`](Var::clamp).
    #[track_caller]
    pub fn try_clamp(self, min: T, max: T) -> Result<Var<'t, T>> {
        self.clamp_between("clamp", min, max)
    }

    /// Each element raised to at least `min`: [`clamp`](Var::clamp) with no upper bound
    /// (gradient 1 where `x >= min`, the bound included, 0 below it). A NaN bound is an error.
    ///
    /// PyTorch: `torch.clamp_min(x, min)`, `torch.clamp(x, min=min)`.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![-1.0, 0.0, 2.0], [3]).unwrap());
    /// let y = x.clamp_min(0.0);
    /// assert_eq!(y.value().to_vec(), vec![0.0, 0.0, 2.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).to_vec(), vec![0.0, 1.0, 1.0]); // relu'(0) is 0
    /// ```
    #[track_caller]
    pub fn clamp_min(self, min: T) -> Var<'t, T> {
        or_panic(self.try_clamp_min(min))
    }

    /// Fallible [`clamp_min`](Var::clamp_min).
    #[track_caller]
    pub fn try_clamp_min(self, min: T) -> Result<Var<'t, T>> {
        self.clamp_between("clamp_min", min, T::INFINITY)
    }

    /// Each element lowered to at most `max`: [`clamp`](Var::clamp) with no lower bound
    /// (gradient 1 where `x <= max`, the bound included, 0 above it). A NaN bound is an error.
    ///
    /// PyTorch: `torch.clamp_max(x, max)`, `torch.clamp(x, max=max)`.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![-1.0, 1.0, 2.0], [3]).unwrap());
    /// let y = x.clamp_max(1.0);
    /// assert_eq!(y.value().to_vec(), vec![-1.0, 1.0, 1.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).to_vec(), vec![1.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn clamp_max(self, max: T) -> Var<'t, T> {
        or_panic(self.try_clamp_max(max))
    }

    /// Fallible [`clamp_max`](Var::clamp_max).
    #[track_caller]
    pub fn try_clamp_max(self, max: T) -> Result<Var<'t, T>> {
        self.clamp_between("clamp_max", T::NEG_INFINITY, max)
    }

    /// `select(min <= x <= max, x, Tensor::clamp(x))`: both the mask and the clamped values
    /// are constants computed from x's value, so the gradient is exactly 1 inside the closed
    /// interval and exactly 0 outside.
    #[track_caller]
    fn clamp_between(self, op: &'static str, min: T, max: T) -> Result<Var<'t, T>> {
        if min.is_nan() || max.is_nan() {
            return Err(TensorError::InvalidArgument {
                op,
                message: format!("a bound is NaN (min {min}, max {max})"),
            }
            .into());
        }
        if min > max {
            return Err(TensorError::InvalidArgument {
                op,
                message: format!("min {min} is greater than max {max}"),
            }
            .into());
        }
        let value = self.value();
        let inside = value.map(|x| {
            if min <= x && x <= max {
                T::ONE
            } else {
                T::ZERO
            }
        });
        let guard = self.tape.rollback_guard();
        let clamped = self.tape.constant(value.clamp(min, max));
        let result = Var::try_select(&inside, self, clamped)?;
        Ok(guard.commit(result))
    }

    /// `value` where `mask` is non-zero, x elsewhere; `mask` broadcasts to x's shape (and the
    /// result has x's shape). The mask is data: x's gradient is the output's where x was kept
    /// and exactly 0 where it was filled. Built as `select(mask, value, x)`.
    ///
    /// PyTorch: `x.masked_fill(mask, value)` (a bool mask there; here a 0/1 tensor such as the
    /// comparisons `Tensor::greater` and friends return, as for [`select`](Var::select)).
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    /// let mask = Tensor::from_vec(vec![0.0, 1.0], [2]).unwrap(); // the second column
    /// let y = x.masked_fill(&mask, -1.0);
    /// assert_eq!(y.value().to_vec(), vec![1.0, -1.0, 3.0, -1.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).to_vec(), vec![1.0, 0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn masked_fill(self, mask: &Tensor<T>, value: T) -> Var<'t, T> {
        or_panic(self.try_masked_fill(mask, value))
    }

    /// Fallible [`masked_fill`](Var::masked_fill): a mask that does not broadcast to x's shape
    /// is an error naming both shapes.
    #[track_caller]
    pub fn try_masked_fill(self, mask: &Tensor<T>, value: T) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let fits = mask
            .shape()
            .broadcast_with("masked_fill", &shape)
            .is_ok_and(|out| out == shape);
        if !fits {
            return Err(TensorError::BroadcastTo {
                op: "masked_fill",
                from: mask.shape().clone(),
                to: shape,
            }
            .into());
        }
        let guard = self.tape.rollback_guard();
        let fill = self.tape.constant(Tensor::scalar(value));
        let result = Var::try_select(mask, fill, self)?;
        Ok(guard.commit(result))
    }

    /// `on_true` where `condition` is non-zero, the scalar `on_false` elsewhere; the condition
    /// and `on_true` broadcast together. `on_true`'s gradient is the output's where it was
    /// chosen and exactly 0 elsewhere. For a scalar in the true branch,
    /// `torch.where(condition, value, x)`, use [`masked_fill`](Var::masked_fill). Built as
    /// [`select`](Var::select) with a constant branch.
    ///
    /// PyTorch: `torch.where(condition, x, value)` with a scalar `value`.
    ///
    /// ```
    /// use autograd::{Tape, Var};
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![-1.0, 2.0, 3.0], [3]).unwrap());
    /// let positive = x.value().greater(&Tensor::scalar(0.0));
    /// let y = Var::where_scalar(&positive, x * 2.0, 0.5);
    /// assert_eq!(y.value().to_vec(), vec![0.5, 4.0, 6.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).to_vec(), vec![0.0, 2.0, 2.0]);
    /// ```
    #[doc(alias = "where")]
    #[track_caller]
    pub fn where_scalar(condition: &Tensor<T>, on_true: Var<'t, T>, on_false: T) -> Var<'t, T> {
        or_panic(Var::try_where_scalar(condition, on_true, on_false))
    }

    /// Fallible [`where_scalar`](Var::where_scalar): shapes that do not broadcast are an
    /// error naming them.
    #[track_caller]
    pub fn try_where_scalar(
        condition: &Tensor<T>,
        on_true: Var<'t, T>,
        on_false: T,
    ) -> Result<Var<'t, T>> {
        // Checked before the constant is recorded; select checks it again.
        condition
            .shape()
            .broadcast_with("where_scalar", &on_true.shape())?;
        let guard = on_true.tape.rollback_guard();
        let fill = on_true.tape.constant(Tensor::scalar(on_false));
        let result = Var::try_select(condition, on_true, fill)?;
        Ok(guard.commit(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;
    use tensor::Tensor;

    fn grid() -> Tensor<f64> {
        Tensor::from_vec(
            (0..12)
                .map(|v| ((v * 5) % 12) as f64 * 0.43 - 2.1)
                .collect(),
            [3, 4],
        )
        .unwrap()
    }

    #[test]
    fn composite_gradients() {
        assert_gradcheck(|x| x[0].mean(&[1], false), &[grid()]);
        assert_gradcheck(|x| x[0].variance(&[0], true, false), &[grid()]);
        assert_gradcheck(|x| x[0].variance(&[0, 1], false, true), &[grid()]);
        assert_gradcheck(|x| x[0].min(&[1], false), &[grid()]);
        assert_gradcheck(|x| x[0].logsumexp(&[1], false), &[grid()]);
        assert_gradcheck(|x| x[0].log_softmax(0), &[grid()]);
        assert_gradcheck(|x| x[0].softmax(1), &[grid()]);
        assert_gradcheck(|x| x[0].softplus(), &[grid()]);
        let other = grid().map(|v| -v * 0.8 + 0.1);
        assert_gradcheck(|x| x[0].maximum(x[1]), &[grid(), other.clone()]);
        assert_gradcheck(|x| x[0].minimum(x[1]), &[grid(), other]);
        assert_gradcheck(
            |x| Var::concat(&[x[0], x[1].t(), x[0]], 0),
            &[grid().narrow(0, 0, 2), grid().t()],
        );
    }

    #[test]
    fn softmax_gradient_matches_closed_form() {
        // d/dx_i sum_j w_j softmax(x)_j = s_i (w_i - sum_j w_j s_j)
        let tape = Tape::<f64>::new();
        let values = [0.2, -1.0, 2.5, 0.7];
        let weights = [1.0, -2.0, 0.5, 3.0];
        let x = tape.leaf(Tensor::from_vec(values.to_vec(), [4]).unwrap());
        let w = tape.constant(Tensor::from_vec(weights.to_vec(), [4]).unwrap());
        let grad = (x.softmax(0) * w).sum_all().backward().wrt(x).to_vec();
        let exps: Vec<f64> = values.iter().map(|v| v.exp()).collect();
        let total: f64 = exps.iter().sum();
        let s: Vec<f64> = exps.iter().map(|e| e / total).collect();
        let mean_w: f64 = weights.iter().zip(&s).map(|(w, s)| w * s).sum();
        for i in 0..4 {
            assert!((grad[i] - s[i] * (weights[i] - mean_w)).abs() < 1e-15);
        }
    }

    #[test]
    fn logsumexp_and_softplus_stay_finite_at_large_magnitudes() {
        let tape = Tape::<f32>::new();
        let x = tape.leaf(Tensor::from_vec(vec![1e4_f32, -1e4, 0.0], [3]).unwrap());
        let lse = x.logsumexp(&[0], false);
        assert_eq!(lse.value().item(), 1e4);
        let softplus = x.softplus();
        assert_eq!(softplus.value().to_vec(), vec![1e4, 0.0, 2.0_f32.ln()]);
        let grads = (lse + softplus.sum_all()).backward().wrt(x).to_vec();
        assert!(grads.iter().all(|g| g.is_finite()), "{grads:?}");
        assert_eq!(grads, vec![2.0, 0.0, 0.5]);
    }

    #[test]
    fn maximum_splits_ties_in_half() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap());
        let b = tape.leaf(Tensor::from_vec(vec![1.0, 5.0, 0.0], [3]).unwrap());
        let m = a.maximum(b);
        assert_eq!(m.value().to_vec(), vec![1.0, 5.0, 3.0]);
        let grads = m.sum_all().backward();
        assert_eq!(grads.wrt(a).to_vec(), vec![0.5, 0.0, 1.0]);
        assert_eq!(grads.wrt(b).to_vec(), vec![0.5, 1.0, 0.0]);
    }

    #[test]
    fn composite_errors_record_nothing() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid());
        let before = tape.len();
        assert!(x.try_mean(&[2], false).is_err());
        assert!(x.try_variance(&[0, 0], false, false).is_err());
        assert!(x.try_logsumexp(&[5], false).is_err());
        assert!(x.try_softmax(2).is_err());
        assert!(x.try_min(&[3], false).is_err());
        let y = tape.leaf(Tensor::zeros([2, 5]));
        assert_eq!(
            Var::try_concat(&[x, y], 0).unwrap_err().to_string(),
            "concat: shapes differ: [3, 4] vs [2, 5]"
        );
        assert_eq!(tape.len(), before + 1);
    }

    fn vector(values: &[f64]) -> Tensor<f64> {
        Tensor::from_vec(values.to_vec(), [values.len()]).unwrap()
    }

    #[test]
    fn split_gives_consecutive_parts_and_their_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid().t().contiguous()); // [4, 3]
        let parts = x.split(&[1, 0, 3], 0);
        let dims: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().dims().to_vec()).collect();
        assert_eq!(dims, vec![vec![1, 3], vec![0, 3], vec![3, 3]]);
        let value = x.value();
        assert_eq!(parts[0].value().to_vec(), value.narrow(0, 0, 1).to_vec());
        assert_eq!(parts[2].value().to_vec(), value.narrow(0, 1, 3).to_vec());
        // Along axis 1, weighted: each element's gradient is its part's weight.
        let columns = x.split(&[2, 1], 1);
        assert_eq!(columns[1].value().to_vec(), value.narrow(1, 2, 1).to_vec());
        let loss = columns[0].sum_all() + columns[1].sum_all() * 5.0;
        let grad = loss.backward().wrt(x).to_vec();
        assert_eq!(grad, [1.0, 1.0, 5.0].repeat(4));
        // An empty axis splits into no parts, or into empty ones.
        let empty = tape.leaf(Tensor::zeros([0, 2]));
        assert!(empty.split(&[], 0).is_empty());
        assert_eq!(empty.split(&[0, 0], 0).len(), 2);
    }

    #[test]
    fn chunk_follows_torch_chunk() {
        let tape = Tape::<f64>::new();
        let lengths = |len: usize, chunks: usize| -> Vec<usize> {
            let x = tape.leaf(Tensor::zeros([2, len]));
            x.chunk(chunks, 1)
                .iter()
                .map(|p| p.shape().dims()[1])
                .collect()
        };
        assert_eq!(lengths(5, 4), vec![2, 2, 1]); // fewer parts than chunks
        assert_eq!(lengths(6, 4), vec![2, 2, 2]);
        assert_eq!(lengths(6, 3), vec![2, 2, 2]);
        assert_eq!(lengths(7, 3), vec![3, 3, 1]);
        assert_eq!(lengths(3, 5), vec![1, 1, 1]);
        assert_eq!(lengths(4, 1), vec![4]);
        assert_eq!(lengths(0, 3), vec![0, 0, 0]); // an empty axis: `chunks` empty parts
        let x = tape.leaf(vector(&[1.0, 2.0, 3.0, 4.0, 5.0]));
        let parts = x.chunk(2, 0);
        assert_eq!(parts[0].value().to_vec(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parts[1].value().to_vec(), vec![4.0, 5.0]);
        let loss = parts[0].sum_all() * 2.0 + parts[1].sum_all() * 3.0;
        assert_eq!(
            loss.backward().wrt(x).to_vec(),
            vec![2.0, 2.0, 2.0, 3.0, 3.0]
        );
    }

    #[test]
    fn stack_matches_tensor_stack_on_every_axis() {
        let tape = Tape::<f64>::new();
        let (a_value, b_value) = (grid(), grid().map(|v| v * -3.0 + 1.0));
        let a = tape.leaf(a_value.clone());
        let b = tape.leaf(b_value.clone());
        for axis in 0..=2 {
            let stacked = Var::stack(&[a, b, a], axis);
            let expected = Tensor::stack(&[&a_value, &b_value, &a_value], axis).unwrap();
            assert_eq!(stacked.shape(), *expected.shape());
            assert_eq!(stacked.value().to_vec(), expected.to_vec());
        }
        // a appears twice: gradient 2 per element, b's 1, with weights 1, 2, 3 on the parts.
        let weights = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3, 1, 1]).unwrap());
        let grads = (Var::stack(&[a, b, a], 0) * weights).sum_all().backward();
        assert_eq!(grads.wrt(a).to_vec(), vec![4.0; 12]);
        assert_eq!(grads.wrt(b).to_vec(), vec![2.0; 12]);
        let scalar = tape.leaf(Tensor::scalar(2.0));
        assert_eq!(
            Var::stack(&[scalar, scalar], 0).value().to_vec(),
            vec![2.0, 2.0]
        );
    }

    #[test]
    fn clamp_value_is_tensor_clamp_and_its_gradient_includes_the_bounds() {
        let tape = Tape::<f64>::new();
        let values = vector(&[
            -3.0,
            -1.0,
            -0.0,
            0.5,
            1.0,
            2.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]);
        let x = tape.leaf(values.clone());
        let y = x.clamp(-1.0, 1.0);
        let expected = values.clamp(-1.0, 1.0).to_vec();
        let actual = y.value().to_vec();
        for (a, e) in actual.iter().zip(&expected) {
            assert!(a.to_bits() == e.to_bits(), "{actual:?} vs {expected:?}");
        }
        assert!(actual[6].is_nan());
        assert!(actual[2].is_sign_negative(), "-0 stays -0");
        let grad = y.sum_all().backward().wrt(x).to_vec();
        assert_eq!(grad, vec![0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // One-sided forms: the bound included, the infinities on the open side kept.
        let low = x.clamp_min(-1.0);
        assert_eq!(low.value().to_vec()[..6], [-1.0, -1.0, -0.0, 0.5, 1.0, 2.0]);
        let grad = low.sum_all().backward().wrt(x).to_vec();
        assert_eq!(grad, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        let high = x.clamp_max(1.0);
        assert_eq!(
            high.value().to_vec()[..6],
            [-3.0, -1.0, -0.0, 0.5, 1.0, 1.0]
        );
        let grad = high.sum_all().backward().wrt(x).to_vec();
        assert_eq!(grad, vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // Equal bounds: everything becomes the bound; only an element on it keeps gradient 1.
        let pinned = x.clamp(1.0, 1.0);
        assert_eq!(pinned.value().to_vec()[..6], [1.0; 6]);
        let grad = pinned.sum_all().backward().wrt(x).to_vec();
        assert_eq!(grad, vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn masked_fill_and_where_scalar_choose_and_route_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid()); // [3, 4]
        let rows = Tensor::from_vec(vec![1.0, 0.0, 1.0], [3, 1]).unwrap();
        let filled = x.masked_fill(&rows, 7.5);
        let value = grid();
        let expected: Vec<f64> = (0..12)
            .map(|i| if i / 4 == 1 { value.to_vec()[i] } else { 7.5 })
            .collect();
        assert_eq!(filled.value().to_vec(), expected);
        let grad = (filled * 2.0).sum_all().backward().wrt(x).to_vec();
        let kept: Vec<f64> = (0..12)
            .map(|i| if i / 4 == 1 { 2.0 } else { 0.0 })
            .collect();
        assert_eq!(grad, kept);
        // where_scalar: x where the condition holds, the scalar elsewhere; broadcasting the
        // condition up to x's shape and x up to the condition's.
        let chosen = Var::where_scalar(&rows, x, -2.0);
        let expected: Vec<f64> = (0..12)
            .map(|i| if i / 4 == 1 { -2.0 } else { value.to_vec()[i] })
            .collect();
        assert_eq!(chosen.value().to_vec(), expected);
        let grad = chosen.sum_all().backward().wrt(x).to_vec();
        let kept: Vec<f64> = (0..12)
            .map(|i| if i / 4 == 1 { 0.0 } else { 1.0 })
            .collect();
        assert_eq!(grad, kept);
        let v = tape.leaf(vector(&[1.0, 2.0]));
        let grid_condition = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], [2, 2]).unwrap();
        let broadcast = Var::where_scalar(&grid_condition, v, 0.0);
        assert_eq!(broadcast.value().to_vec(), vec![1.0, 0.0, 0.0, 2.0]);
        assert_eq!(
            broadcast.sum_all().backward().wrt(v).to_vec(),
            vec![1.0, 1.0]
        );
        // A NaN in the filled part does not reach the gradient.
        let poisoned = tape.leaf(vector(&[f64::NAN, 1.0]));
        let mask = vector(&[1.0, 0.0]);
        let grad = poisoned
            .masked_fill(&mask, 0.0)
            .sum_all()
            .backward()
            .wrt(poisoned);
        assert_eq!(grad.to_vec(), vec![0.0, 1.0]);
    }

    #[test]
    fn new_composite_gradients() {
        assert_gradcheck(
            |x| {
                let parts = x[0].split(&[1, 2], 1);
                parts[0].square().sum_all() + parts[1].sum_all() * 3.0
            },
            &[grid().narrow(1, 0, 3)],
        );
        assert_gradcheck(
            |x| {
                let parts = x[0].chunk(3, 1);
                parts[0].square().sum_all() + (parts[1] * parts[2]).sum_all()
            },
            &[grid().narrow(1, 0, 3)],
        );
        assert_gradcheck(
            |x| Var::stack(&[x[0], x[1].t()], 1).square(),
            &[grid(), grid().t()],
        );
        // Away from the bounds (the kinks are tested in tests/gradcheck_tools.rs).
        assert_gradcheck(
            |x| x[0].clamp(-1.0, 1.0).square(),
            &[grid().map(|v| v + 0.05)],
        );
        let rows = Tensor::from_vec(vec![1.0, 0.0, 1.0], [3, 1]).unwrap();
        let mask = rows.clone();
        assert_gradcheck(move |x| x[0].masked_fill(&mask, 2.0).square(), &[grid()]);
        assert_gradcheck(
            move |x| Var::where_scalar(&rows, x[0], 2.0).square(),
            &[grid()],
        );
    }

    #[test]
    fn new_composite_errors_are_named_and_record_nothing() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(grid());
        let y = tape.leaf(Tensor::zeros([4, 3]));
        let empty = tape.leaf(Tensor::zeros([0]));
        let before = tape.len();
        let error = |result: Result<Vec<Var<'_, f64>>>| result.unwrap_err().to_string();
        assert_eq!(
            error(x.try_split(&[2, 3], 1)),
            "split: sizes [2, 3] sum to 5, but axis 1 of shape [3, 4] has length 4"
        );
        assert_eq!(
            error(x.try_split(&[usize::MAX, 5], 1)),
            "split: sizes [18446744073709551615, 5] sum to more than usize::MAX, but axis 1 of shape [3, 4] has length 4"
        );
        assert!(error(x.try_split(&[3], 2)).starts_with("split: axis 2"));
        assert_eq!(
            error(x.try_chunk(0, 1)),
            "chunk: needs at least 1 chunk, got 0 (shape [3, 4], axis 1)"
        );
        assert!(error(x.try_chunk(2, 2)).starts_with("chunk: axis 2"));
        // usize::MAX empty parts of an empty axis cannot be listed: an error, not a panic.
        assert_eq!(
            error(empty.try_chunk(usize::MAX, 0)),
            "chunk: 18446744073709551615 chunks of shape [0] cannot be allocated"
        );
        assert_eq!(
            Var::try_stack(&[x, y], 0).unwrap_err().to_string(),
            "stack: shapes differ: [3, 4] vs [4, 3]"
        );
        assert_eq!(
            Var::try_stack(&[x, x], 3).unwrap_err().to_string(),
            "stack: axis 3 is out of range 0..=2 for parts of shape [3, 4]"
        );
        assert!(Var::<'_, f64>::try_stack(&[], 0).is_err());
        assert_eq!(
            x.try_clamp(1.0, -1.0).unwrap_err().to_string(),
            "clamp: min 1 is greater than max -1"
        );
        assert_eq!(
            x.try_clamp(f64::NAN, 1.0).unwrap_err().to_string(),
            "clamp: a bound is NaN (min NaN, max 1)"
        );
        assert!(
            x.try_clamp_min(f64::NAN)
                .unwrap_err()
                .to_string()
                .starts_with("clamp_min: a bound is NaN")
        );
        assert!(
            x.try_clamp_max(f64::NAN)
                .unwrap_err()
                .to_string()
                .starts_with("clamp_max: a bound is NaN")
        );
        let wide = Tensor::zeros([2, 3, 4]);
        assert!(
            x.try_masked_fill(&wide, 0.0)
                .unwrap_err()
                .to_string()
                .starts_with("masked_fill:")
        );
        assert!(x.try_masked_fill(&Tensor::zeros([3]), 0.0).is_err());
        assert!(Var::try_where_scalar(&Tensor::zeros([3]), x, 0.0).is_err());
        assert_eq!(tape.len(), before);
        let other = Tape::<f64>::new();
        let foreign = other.leaf(grid());
        assert!(matches!(
            Var::try_stack(&[x, foreign], 0),
            Err(crate::AutogradError::ForeignVar { op: "stack" })
        ));
        assert_eq!(tape.len(), before);
    }
}
