//! Reductions over one, several or all axes: sum, mean, variance, max, min, argmax,
//! logsumexp, and `sum_to` (the reverse of broadcasting).
//!
//! Determinism: see the crate docs ("Determinism"), which this module's kernels guarantee.

use smallvec::SmallVec;

use crate::error::{Result, TensorError, or_panic};
use crate::float::Float;
use crate::layout::for_each_row;
use crate::shape::{Dims, Shape};
use crate::tensor::Tensor;

/// One row of a strided walk: start position (relative), length, stride.
type Row = (usize, usize, usize);

/// The rows of a walk over `dims` with `strides`, relative to position 0.
fn rows_of(dims: &[usize], strides: &[usize]) -> SmallVec<[Row; 4]> {
    let mut rows = SmallVec::new();
    for_each_row(dims, [strides], [0], |[start], len, [stride]| {
        rows.push((start, len, stride))
    });
    rows
}

/// The walks of a reduction: the rows of the kept axes (one output each element) and of the
/// reduced axes (the elements each output combines), and how many outputs there are.
struct ReductionWalk {
    kept_rows: SmallVec<[Row; 4]>,
    reduced_rows: SmallVec<[Row; 4]>,
    outputs: usize,
}

impl ReductionWalk {
    fn new<T: Float>(source: &Tensor<T>, mask: u64) -> Self {
        let (mut kept_dims, mut kept_strides, mut reduced_dims, mut reduced_strides) =
            (Dims::new(), Dims::new(), Dims::new(), Dims::new());
        let dims = source.shape().dims();
        for (axis, (&d, &s)) in dims.iter().zip(source.strides()).enumerate() {
            if mask & (1 << axis) == 0 {
                kept_dims.push(d);
                kept_strides.push(s);
            } else {
                reduced_dims.push(d);
                reduced_strides.push(s);
            }
        }
        ReductionWalk {
            kept_rows: rows_of(&kept_dims, &kept_strides),
            reduced_rows: rows_of(&reduced_dims, &reduced_strides),
            outputs: kept_dims.iter().product(),
        }
    }
}

/// Reduces the axes in `mask` with `combine`, starting every output at `init`.
fn reduce_kernel<T: Float>(
    source: &Tensor<T>,
    mask: u64,
    keepdim: bool,
    init: T,
    combine: impl Fn(T, T) -> T,
) -> Tensor<T> {
    let shape = source.shape();
    let out_shape = shape.reduced(mask, keepdim);
    let ReductionWalk {
        kept_rows,
        reduced_rows,
        ..
    } = ReductionWalk::new(source, mask);
    let data = source.storage();
    let base = source.layout().offset();
    let outputs_contiguous = kept_rows
        .first()
        .is_some_and(|&(_, len, stride)| stride == 1 && len > 1);
    let reduction_contiguous = reduced_rows
        .first()
        .is_some_and(|&(_, _, stride)| stride == 1);
    Tensor::from_overwrite(out_shape, |out| {
        out.fill(init);
        if outputs_contiguous && !reduction_contiguous {
            // Reduction-major: one pass over the inputs per reduced position, vectorised across
            // contiguous outputs.
            for &(r_start, r_len, r_stride) in &reduced_rows {
                for i in 0..r_len {
                    let position = base + r_start + i * r_stride;
                    let mut next = 0;
                    for &(o_start, o_len, o_stride) in &kept_rows {
                        let row = &mut out[next..next + o_len];
                        let start = position + o_start;
                        if o_stride == 1 {
                            for (o, &x) in row.iter_mut().zip(&data[start..start + o_len]) {
                                *o = combine(*o, x);
                            }
                        } else {
                            for (j, o) in row.iter_mut().enumerate() {
                                *o = combine(*o, data[start + j * o_stride]);
                            }
                        }
                        next += o_len;
                    }
                }
            }
        } else {
            // Output-major: each output accumulates its reduced elements in one go.
            let mut next = 0;
            for &(o_start, o_len, o_stride) in &kept_rows {
                for j in 0..o_len {
                    // Wrapping: when the reduced axes are empty (nothing is read) an empty
                    // input's strides may be anything; otherwise every position is in bounds.
                    let position =
                        base.wrapping_add(o_start.wrapping_add(j.wrapping_mul(o_stride)));
                    let mut accumulator = init;
                    for &(r_start, r_len, r_stride) in &reduced_rows {
                        let start = position + r_start;
                        if r_stride == 1 {
                            for &x in &data[start..start + r_len] {
                                accumulator = combine(accumulator, x);
                            }
                        } else {
                            for i in 0..r_len {
                                accumulator = combine(accumulator, data[start + i * r_stride]);
                            }
                        }
                    }
                    out[next] = accumulator;
                    next += 1;
                }
            }
        }
    })
}

/// Independent partial sums a long sum keeps (see [`sum_kernel`]).
const SUM_LANES: usize = 16;

/// Sums shorter than this are accumulated sequentially; longer ones in [`SUM_LANES`] lanes.
const LANE_SUM_MIN: usize = 2 * SUM_LANES;

/// Lane buffers the reduction-major sum may allocate (elements); above, it runs output-major.
const LANE_BUFFER_MAX: usize = 1 << 20;

/// Adds lane `l + width / 2` into lane `l`, halving the width until one lane is left: the
/// fixed tree every long sum ends with.
#[inline]
fn combine_lanes<T: Float>(mut lanes: [T; SUM_LANES]) -> T {
    let mut width = SUM_LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    lanes[0]
}

/// Sums the axes in `mask`. The order of the additions is a function of the logical shape only
/// (so a strided view sums to the same bits as its contiguous copy): with n reduced elements
/// per output, in row-major logical order, a sum of fewer than [`LANE_SUM_MIN`] adds them one
/// after the other from 0; a longer one adds element i into lane `i % 16` for the first
/// `16 * (n / 16)` elements, combines the 16 lanes by a fixed halving tree, and then adds the
/// last `n % 16` elements one after the other. Independent lanes let the loop vectorise (a
/// sequential sum waits on every addition), and the error bound of each lane is that of a sum
/// 16 times shorter.
fn sum_kernel<T: Float>(source: &Tensor<T>, mask: u64, keepdim: bool) -> Tensor<T> {
    let shape = source.shape();
    let count: usize = (0..shape.rank())
        .filter(|axis| mask & (1 << axis) != 0)
        .map(|axis| shape.dims()[axis])
        .product();
    if count < LANE_SUM_MIN {
        return reduce_kernel(source, mask, keepdim, T::ZERO, |a, b| a + b);
    }
    let out_shape = shape.reduced(mask, keepdim);
    let ReductionWalk {
        kept_rows,
        reduced_rows,
        outputs,
    } = ReductionWalk::new(source, mask);
    let data = source.storage();
    let base = source.layout().offset();
    let full = count - count % SUM_LANES;
    let outputs_contiguous = kept_rows
        .first()
        .is_some_and(|&(_, len, stride)| stride == 1 && len > 1);
    let reduction_contiguous = reduced_rows
        .first()
        .is_some_and(|&(_, _, stride)| stride == 1);
    Tensor::from_overwrite(out_shape, |out| {
        if outputs_contiguous
            && !reduction_contiguous
            && SUM_LANES.saturating_mul(outputs) <= LANE_BUFFER_MAX
        {
            // Reduction-major: one pass over the inputs per reduced position, vectorised across
            // contiguous outputs; lane l of output j lives at lanes[l * outputs + j].
            let mut lanes = vec![T::ZERO; SUM_LANES * outputs];
            let mut index = 0;
            for &(r_start, r_len, r_stride) in &reduced_rows {
                for i in 0..r_len {
                    let position = base + r_start + i * r_stride;
                    if index == full {
                        for (j, o) in out.iter_mut().enumerate() {
                            *o = combine_lanes(std::array::from_fn(|l| lanes[l * outputs + j]));
                        }
                    }
                    let target: &mut [T] = if index < full {
                        let lane = index % SUM_LANES;
                        &mut lanes[lane * outputs..(lane + 1) * outputs]
                    } else {
                        out
                    };
                    let mut next = 0;
                    // Every row of a walk has the innermost stride, 1 here (outputs_contiguous).
                    for &(o_start, o_len, _) in &kept_rows {
                        let row = &mut target[next..next + o_len];
                        let start = position + o_start;
                        for (o, &x) in row.iter_mut().zip(&data[start..start + o_len]) {
                            *o += x;
                        }
                        next += o_len;
                    }
                    index += 1;
                }
            }
            if index == full {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = combine_lanes(std::array::from_fn(|l| lanes[l * outputs + j]));
                }
            }
        } else {
            // Output-major: each output accumulates its reduced elements in one go.
            let mut next = 0;
            for &(o_start, o_len, o_stride) in &kept_rows {
                for j in 0..o_len {
                    let position = base + o_start + j * o_stride;
                    // One contiguous reduced run (a single row of a walk starts at 0).
                    out[next] = if let [(_, _, 1)] = reduced_rows[..] {
                        lane_sum(&data[position..position + count])
                    } else {
                        let mut lanes = [T::ZERO; SUM_LANES];
                        let mut total = T::ZERO;
                        let mut index = 0;
                        for &(r_start, r_len, r_stride) in &reduced_rows {
                            for i in 0..r_len {
                                let x = data[position + r_start + i * r_stride];
                                if index < full {
                                    lanes[index % SUM_LANES] += x;
                                } else {
                                    if index == full {
                                        total = combine_lanes(lanes);
                                    }
                                    total += x;
                                }
                                index += 1;
                            }
                        }
                        if full == count {
                            combine_lanes(lanes)
                        } else {
                            total
                        }
                    };
                    next += 1;
                }
            }
        }
    })
}

/// [`sum_kernel`]'s order over one contiguous run of at least [`LANE_SUM_MIN`] elements.
fn lane_sum<T: Float>(values: &[T]) -> T {
    let mut lanes = [T::ZERO; SUM_LANES];
    let chunks = values.chunks_exact(SUM_LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    rest.iter()
        .fold(combine_lanes(lanes), |total, &x| total + x)
}

/// Checks the axes of a reduction and, for reductions without an identity, that no reduced
/// axis is empty while outputs exist.
fn reduction_mask<T: Float>(
    source: &Tensor<T>,
    op: &'static str,
    axes: &[usize],
    needs_elements: bool,
) -> Result<u64> {
    let mask = source.shape().axis_mask(op, axes)?;
    // The output keeps the other axes; over an empty axis of an empty tensor it can be larger
    // than the input (which holds nothing), so its size is checked before anything allocates.
    let output = source.shape().reduced(mask, false);
    crate::storage::check_allocation::<T>(op, output.checked_numel(op)?)?;
    if needs_elements {
        let empty_reduced = source
            .dims()
            .iter()
            .enumerate()
            .any(|(axis, &d)| d == 0 && mask & (1 << axis) != 0);
        let outputs_exist = source
            .dims()
            .iter()
            .enumerate()
            .all(|(axis, &d)| d != 0 || mask & (1 << axis) != 0);
        if empty_reduced && outputs_exist {
            return Err(TensorError::EmptyReduction {
                op,
                shape: source.shape().clone(),
            });
        }
    }
    Ok(mask)
}

/// What a variance over `axes` divides by: n, or n - 1 (Bessel's correction) when `unbiased`.
pub(crate) fn variance_divisor(shape: &Shape, axes: &[usize], unbiased: bool) -> usize {
    let count = shape.reduced_count(axes);
    if unbiased {
        count.saturating_sub(1)
    } else {
        count
    }
}

fn all_axes(rank: usize) -> Dims {
    (0..rank).collect()
}

impl<T: Float> Tensor<T> {
    /// Sum over `axes`; `keepdim` keeps them as size-1 axes. An empty `axes` returns a copy.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::<f32>::arange(0.0, 6.0, 1.0).unwrap().reshape([2, 3]);
    /// assert_eq!(t.sum(&[0], false).to_vec(), vec![3.0, 5.0, 7.0]);
    /// assert_eq!(t.sum(&[1], true).dims(), &[2, 1]);
    /// ```
    #[track_caller]
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_sum(axes, keepdim))
    }

    /// Fallible [`sum`](Tensor::sum).
    pub fn try_sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let mask = reduction_mask(self, "sum", axes, false)?;
        Ok(sum_kernel(self, mask, keepdim))
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Tensor<T> {
        self.sum(&all_axes(self.rank()), false)
    }

    /// Mean over `axes` (NaN over an empty axis, as 0/0).
    #[track_caller]
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_mean(axes, keepdim))
    }

    /// Fallible [`mean`](Tensor::mean).
    pub fn try_mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        reduction_mask(self, "mean", axes, false)?;
        // The formula autograd's mean uses too: the sum times 1/n (a multiplication), so the
        // two agree to the bit.
        let scale = T::ONE / T::from_usize(self.shape().reduced_count(axes));
        Ok(self.try_sum(axes, keepdim)?.map_owned(|x| x * scale))
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean_all(&self) -> Tensor<T> {
        self.mean(&all_axes(self.rank()), false)
    }

    /// Variance over `axes`: the mean squared deviation from the mean, divided by `n` when
    /// `unbiased` is false and by `n - 1` (Bessel's correction) when it is true.
    #[track_caller]
    pub fn variance(&self, axes: &[usize], keepdim: bool, unbiased: bool) -> Tensor<T> {
        or_panic(self.try_variance(axes, keepdim, unbiased))
    }

    /// Fallible [`variance`](Tensor::variance).
    pub fn try_variance(&self, axes: &[usize], keepdim: bool, unbiased: bool) -> Result<Tensor<T>> {
        reduction_mask(self, "variance", axes, false)?;
        // The formula autograd's variance uses too: sum((x - mean)^2) times 1/divisor.
        let deviation = self.try_sub(&self.try_mean(axes, true)?)?;
        let squares = deviation.try_mul(&deviation)?;
        let scale = T::ONE / T::from_usize(variance_divisor(self.shape(), axes, unbiased));
        Ok(squares.try_sum(axes, keepdim)?.map_owned(|x| x * scale))
    }

    /// Maximum over `axes` (NaN if any reduced element is NaN). Errors on an empty axis.
    #[track_caller]
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_max(axes, keepdim))
    }

    /// Fallible [`max`](Tensor::max).
    pub fn try_max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let mask = reduction_mask(self, "max", axes, true)?;
        Ok(reduce_kernel(
            self,
            mask,
            keepdim,
            T::NEG_INFINITY,
            T::max_propagate_nan,
        ))
    }

    /// Maximum of all elements, as a rank-0 tensor. Panics on an empty tensor.
    pub fn max_all(&self) -> Tensor<T> {
        self.max(&all_axes(self.rank()), false)
    }

    /// Minimum over `axes` (NaN if any reduced element is NaN). Errors on an empty axis.
    #[track_caller]
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_min(axes, keepdim))
    }

    /// Fallible [`min`](Tensor::min).
    pub fn try_min(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let mask = reduction_mask(self, "min", axes, true)?;
        Ok(reduce_kernel(
            self,
            mask,
            keepdim,
            T::INFINITY,
            T::min_propagate_nan,
        ))
    }

    /// Minimum of all elements, as a rank-0 tensor. Panics on an empty tensor.
    pub fn min_all(&self) -> Tensor<T> {
        self.min(&all_axes(self.rank()), false)
    }

    /// log(sum(exp(x))) over `axes`, computed stably: the maximum is subtracted before `exp` and
    /// added back after `log`, so logits of ±1e4 give finite results.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1e4_f32, 1e4], [2]).unwrap();
    /// let lse = x.logsumexp(&[0], false).item();
    /// assert!((lse - (1e4 + 2.0_f32.ln())).abs() < 1e-2);
    /// ```
    #[track_caller]
    pub fn logsumexp(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_logsumexp(axes, keepdim))
    }

    /// Fallible [`logsumexp`](Tensor::logsumexp).
    pub fn try_logsumexp(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let mask = reduction_mask(self, "logsumexp", axes, true)?;
        let shift = self.try_logsumexp_shift(axes)?;
        let total = (self - &shift).exp().try_sum(axes, true)?;
        let result = &total.log() + &shift;
        Ok(if keepdim {
            result
        } else {
            result.reshape(self.shape().reduced(mask, false))
        })
    }

    /// The shift logsumexp subtracts before `exp` and adds back after `log` (here and in
    /// `autograd`): the maximum over `axes`, kept as size-1 axes, with an infinite maximum (all
    /// -inf, or some +inf) replaced by 0, which gives the right limits, -inf and +inf.
    pub fn try_logsumexp_shift(&self, axes: &[usize]) -> Result<Tensor<T>> {
        let mask = reduction_mask(self, "logsumexp", axes, true)?;
        Ok(
            reduce_kernel(self, mask, true, T::NEG_INFINITY, T::max_propagate_nan)
                .map_owned(|m| if m.is_finite() { m } else { T::ZERO }),
        )
    }

    /// Index of the largest element along `axis`, for every position of the other axes, in
    /// row-major order of the remaining axes. Ties go to the first occurrence; NaN counts as the
    /// largest value (as PyTorch does).
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![0.1_f32, 0.7, 0.2, 0.9, 0.05, 0.05], [2, 3]).unwrap();
    /// assert_eq!(t.argmax(1), vec![1, 0]);
    /// ```
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Vec<usize> {
        or_panic(self.try_argmax(axis))
    }

    /// Fallible [`argmax`](Tensor::argmax).
    pub fn try_argmax(&self, axis: usize) -> Result<Vec<usize>> {
        self.arg_extreme("argmax", axis, |candidate, best| candidate > best)
    }

    /// Index of the smallest element along `axis` (see [`argmax`](Tensor::argmax)).
    #[track_caller]
    pub fn argmin(&self, axis: usize) -> Vec<usize> {
        or_panic(self.try_argmin(axis))
    }

    /// Fallible [`argmin`](Tensor::argmin).
    pub fn try_argmin(&self, axis: usize) -> Result<Vec<usize>> {
        self.arg_extreme("argmin", axis, |candidate, best| candidate < best)
    }

    fn arg_extreme(
        &self,
        op: &'static str,
        axis: usize,
        better: impl Fn(T, T) -> bool,
    ) -> Result<Vec<usize>> {
        reduction_mask(self, op, &[axis], true)?;
        // Move `axis` last with the other axes in their order (a transpose would reorder them
        // at rank 3 and up), so lanes come out in row-major order of the remaining axes.
        let order: Dims = (0..self.rank())
            .filter(|&a| a != axis)
            .chain([axis])
            .collect();
        let moved = self.permute(&order);
        let length = self.dims()[axis];
        let values = moved.to_vec();
        if length == 0 {
            return Ok(Vec::new());
        }
        Ok(values
            .chunks(length)
            .map(|lane| {
                let mut best = 0;
                for (i, &x) in lane.iter().enumerate().skip(1) {
                    if !lane[best].is_nan() && (x.is_nan() || better(x, lane[best])) {
                        best = i;
                    }
                }
                best
            })
            .collect())
    }

    /// Sums over the axes that broadcasting `shape` to `self.shape()` would have repeated, so
    /// the result has `shape`: the reverse of [`broadcast_to`](Tensor::broadcast_to), and the
    /// gradient rule of every broadcast.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let g = Tensor::<f32>::ones([4, 3]);
    /// assert_eq!(g.sum_to([3]).to_vec(), vec![4.0, 4.0, 4.0]);
    /// assert_eq!(g.sum_to([4, 1]).to_vec(), vec![3.0; 4]);
    /// ```
    #[track_caller]
    pub fn sum_to(&self, shape: impl Into<Shape>) -> Tensor<T> {
        or_panic(self.try_sum_to(shape))
    }

    /// Fallible [`sum_to`](Tensor::sum_to).
    pub fn try_sum_to(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let target = shape.into();
        if &target == self.shape() {
            return Ok(self.clone());
        }
        let axes = self.shape().sum_to_axes("sum_to", &target)?;
        let mask = self.shape().axis_mask("sum_to", &axes)?;
        crate::storage::check_allocation::<T>("sum_to", target.checked_numel("sum_to")?)?;
        Ok(sum_kernel(self, mask, true).reshape(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Tensor<f64> {
        Tensor::from_vec((0..24).map(f64::from).collect(), [2, 3, 4]).unwrap()
    }

    /// The documented order of a sum over n values, written out independently of the kernels:
    /// under 32 values one after the other; else lanes i % 16 for the first 16 * (n / 16),
    /// the halving tree, then the rest one after the other.
    fn documented_sum(values: &[f32]) -> f32 {
        if values.len() < 32 {
            return values.iter().fold(0.0, |a, &x| a + x);
        }
        let full = values.len() / 16 * 16;
        let mut lanes = [0.0_f32; 16];
        for (i, &x) in values[..full].iter().enumerate() {
            lanes[i % 16] += x;
        }
        for width in [8, 4, 2, 1] {
            for lane in 0..width {
                lanes[lane] += lanes[lane + width];
            }
        }
        values[full..].iter().fold(lanes[0], |a, &x| a + x)
    }

    /// Values whose sum depends on the order of the additions (1e8 swallows a 1 in f32).
    fn order_sensitive(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 7 {
                0 => 1e8,
                3 => -1e8,
                _ => 1.0 + i as f32 * 0.001,
            })
            .collect()
    }

    #[test]
    fn long_sums_add_in_sixteen_lanes_then_a_fixed_tree_then_the_rest() {
        for n in [5, 31, 32, 33, 47, 48, 100, 1000, 4097] {
            let values = order_sensitive(n);
            let t = Tensor::from_vec(values.clone(), [n]).unwrap();
            let expected = documented_sum(&values);
            assert_eq!(t.sum_all().item().to_bits(), expected.to_bits(), "n = {n}");
            // The same sum, reached through a strided view (every other element of a wider
            // buffer) and as one row of a sum over the last axis.
            let spaced: Vec<f32> = values.iter().flat_map(|&x| [x, 7.0]).collect();
            let view = Tensor::from_vec(spaced, [n, 2]).unwrap().narrow(1, 0, 1);
            assert_eq!(
                view.sum_all().item().to_bits(),
                expected.to_bits(),
                "n = {n}"
            );
            let rows = Tensor::from_vec([values.clone(), values.clone()].concat(), [2, n]).unwrap();
            let per_row = rows.sum(&[1], false).to_vec();
            assert!(
                per_row.iter().all(|r| r.to_bits() == expected.to_bits()),
                "n = {n}"
            );
        }
    }

    #[test]
    fn a_sum_is_the_same_bits_in_either_loop_nesting() {
        // Summing axis 0 of a row-major [n, 5] runs reduction-major (outputs contiguous);
        // summing axis 1 of its transpose's contiguous copy runs output-major over contiguous
        // runs. Both must follow the one documented order, for short and long sums, with and
        // without a remainder.
        for n in [3, 31, 32, 40, 64, 101] {
            let values = order_sensitive(n * 5);
            let x = Tensor::from_vec(values, [n, 5]).unwrap();
            let reduction_major = x.sum(&[0], false).to_vec();
            let output_major = x.t().contiguous().sum(&[1], false).to_vec();
            let through_view = x.t().sum(&[1], false).to_vec();
            for column in 0..5 {
                let own: Vec<f32> = (0..n).map(|r| x.get(&[r, column])).collect();
                let expected = documented_sum(&own).to_bits();
                assert_eq!(
                    reduction_major[column].to_bits(),
                    expected,
                    "n {n} col {column}"
                );
                assert_eq!(
                    output_major[column].to_bits(),
                    expected,
                    "n {n} col {column}"
                );
                assert_eq!(
                    through_view[column].to_bits(),
                    expected,
                    "n {n} col {column}"
                );
            }
            // sum_to (the reverse of broadcasting) is the same sum.
            let to = x.sum_to([1, 5]).to_vec();
            assert_eq!(to, reduction_major);
        }
        // Views that start inside their buffer, whose kept rows start at different places:
        // [n, 3, 4] cut from [n + 2, 4, 6], summed over axis 0 (three kept rows per reduced
        // position) and over axes 0 and 1 (axes that do not merge: n reduced rows of 3, each
        // starting elsewhere), both reduction-major.
        for n in [20, 40, 47] {
            let big = Tensor::from_vec(order_sensitive((n + 2) * 24), [n + 2, 4, 6]).unwrap();
            let view = big.narrow(0, 1, n).narrow(1, 0, 3).narrow(2, 1, 4);
            let over_rows = view.sum(&[0], false).to_vec();
            let over_two = view.sum(&[0, 1], false).to_vec();
            for (j, k) in (0..3).flat_map(|j| (0..4).map(move |k| (j, k))) {
                let own: Vec<f32> = (0..n).map(|r| view.get(&[r, j, k])).collect();
                assert_eq!(
                    over_rows[j * 4 + k].to_bits(),
                    documented_sum(&own).to_bits()
                );
            }
            for (k, sum) in over_two.iter().enumerate() {
                let own: Vec<f32> = (0..n * 3).map(|i| view.get(&[i / 3, i % 3, k])).collect();
                assert_eq!(sum.to_bits(), documented_sum(&own).to_bits());
            }
        }
        // Output-major over views that start inside their buffer: rows of 40 cut from rows of
        // 50 (one contiguous reduced run per output), and [3, 12] blocks cut from [3, 14] (three
        // reduced runs per output).
        let big = Tensor::from_vec(order_sensitive(150), [3, 50]).unwrap();
        let view = big.narrow(1, 5, 40);
        for (row, sum) in view.sum(&[1], false).to_vec().iter().enumerate() {
            let own: Vec<f32> = (0..40).map(|c| view.get(&[row, c])).collect();
            assert_eq!(sum.to_bits(), documented_sum(&own).to_bits());
        }
        // Kept axes that do not merge (two kept rows, the second starting at 160).
        let big = Tensor::from_vec(order_sensitive(2 * 4 * 40), [2, 4, 40]).unwrap();
        let view = big.narrow(1, 0, 3).narrow(2, 2, 36);
        let sums = view.sum(&[2], false).to_vec();
        for (i, sum) in sums.iter().enumerate() {
            let own: Vec<f32> = (0..36).map(|c| view.get(&[i / 3, i % 3, c])).collect();
            assert_eq!(sum.to_bits(), documented_sum(&own).to_bits());
        }
        let big = Tensor::from_vec(order_sensitive(2 * 3 * 14), [2, 3, 14]).unwrap();
        let view = big.narrow(2, 1, 12);
        for (block, sum) in view.sum(&[1, 2], false).to_vec().iter().enumerate() {
            let own: Vec<f32> = (0..36)
                .map(|i| view.get(&[block, i / 12, i % 12]))
                .collect();
            assert_eq!(sum.to_bits(), documented_sum(&own).to_bits());
        }
        // Several reduced axes: [4, 9, 5] over axes 0 and 1 is 36 values per output, in
        // row-major order of (axis 0, axis 1), whatever the layout.
        let x = Tensor::from_vec(order_sensitive(180), [4, 9, 5]).unwrap();
        let sums = x.sum(&[0, 1], false).to_vec();
        let permuted = x
            .permute(&[2, 0, 1])
            .contiguous()
            .sum(&[1, 2], false)
            .to_vec();
        for column in 0..5 {
            let own: Vec<f32> = (0..36).map(|i| x.get(&[i / 9, i % 9, column])).collect();
            assert_eq!(sums[column].to_bits(), documented_sum(&own).to_bits());
            assert_eq!(permuted[column].to_bits(), documented_sum(&own).to_bits());
        }
    }

    #[test]
    fn lanes_make_a_long_f32_sum_more_accurate() {
        // 2^20 copies of 0.1: one running f32 sum stalls once its ulp outgrows 0.1 (it ends
        // near 1.0e5 off by hundreds); sixteen lanes each sum 2^16 copies, whose error is
        // about 16 times smaller.
        let n = 1 << 20;
        let sequential = (0..n).fold(0.0_f32, |a, _| a + 0.1);
        let lanes = Tensor::from_vec(vec![0.1_f32; n], [n])
            .unwrap()
            .sum_all()
            .item();
        let exact = n as f64 * f64::from(0.1_f32);
        let lane_error = (f64::from(lanes) - exact).abs();
        let sequential_error = (f64::from(sequential) - exact).abs();
        assert!(
            lane_error * 8.0 < sequential_error,
            "{lane_error} vs {sequential_error}"
        );
    }

    #[test]
    fn sums_over_axes_match_hand_sums() {
        let t = grid();
        assert_eq!(t.sum_all().item(), 276.0);
        let over_middle = t.sum(&[1], false);
        assert_eq!(over_middle.dims(), &[2, 4]);
        assert_eq!(over_middle.get(&[1, 2]), 14.0 + 18.0 + 22.0);
        let outer = t.sum(&[0, 2], true);
        assert_eq!(outer.dims(), &[1, 3, 1]);
        assert_eq!(
            outer.get(&[0, 1, 0]),
            (4..8).sum::<i32>() as f64 + (16..20).sum::<i32>() as f64
        );
        assert_eq!(t.sum(&[], false), t);
    }

    #[test]
    fn mean_variance_max_min() {
        let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        assert_eq!(t.mean(&[0], false).to_vec(), vec![2.0, 3.0]);
        assert_eq!(t.variance(&[1], false, false).to_vec(), vec![0.25, 0.25]);
        assert_eq!(t.variance(&[1], false, true).to_vec(), vec![0.5, 0.5]);
        assert_eq!(t.max(&[1], false).to_vec(), vec![2.0, 4.0]);
        assert_eq!(t.min_all().item(), 1.0);
        assert!(
            Tensor::from_vec(vec![1.0, f64::NAN], [2])
                .unwrap()
                .max_all()
                .item()
                .is_nan()
        );
    }

    #[test]
    fn empty_reductions() {
        let empty = Tensor::<f32>::zeros([0, 3]);
        assert_eq!(empty.sum(&[0], false).to_vec(), vec![0.0; 3]);
        assert_eq!(
            empty.try_max(&[0], false).unwrap_err().to_string(),
            "max: cannot reduce over an empty axis of shape [0, 3]"
        );
        assert_eq!(empty.max(&[1], false).numel(), 0);
    }

    #[test]
    fn logsumexp_is_finite_at_large_magnitudes() {
        let x = Tensor::from_vec(vec![1e4_f32, -1e4, 0.0, -1e4], [2, 2]).unwrap();
        let lse = x.logsumexp(&[1], false).to_vec();
        assert_eq!(lse[0], 1e4);
        assert!((lse[1] - 0.0).abs() < 1e-6);
        let all_minus_inf = Tensor::from_vec(vec![f64::NEG_INFINITY; 2], [2]).unwrap();
        assert_eq!(
            all_minus_inf.logsumexp(&[0], false).item(),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn argmax_takes_first_tie_and_nan() {
        let t = Tensor::from_vec(vec![1.0, 3.0, 3.0, f64::NAN, 0.0, 5.0], [2, 3]).unwrap();
        assert_eq!(t.argmax(1), vec![1, 0]);
        assert_eq!(t.argmax(0), vec![1, 0, 1]);
        assert_eq!(t.argmin(1), vec![0, 0]);
    }

    #[test]
    fn sum_to_reverses_broadcast() {
        let g = grid();
        assert_eq!(g.sum_to([3, 1]).to_vec(), g.sum(&[0, 2], false).to_vec());
        assert_eq!(
            g.try_sum_to([5]).unwrap_err().to_string(),
            "sum_to: cannot broadcast [5] to [2, 3, 4]"
        );
    }
}
