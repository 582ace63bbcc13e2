//! [`Tensor`]: shared immutable storage plus a [`Layout`]; constructors, accessors and views.

use std::ops::Range;
use std::sync::Arc;

use rand::Rng;

use crate::error::{Result, TensorError, or_panic};
use crate::float::{DType, Float};
use crate::layout::{Layout, for_each_row};
use crate::shape::{Dims, Shape};
use crate::storage;

/// An n-dimensional array of `f32` or `f64`.
///
/// A tensor is a reference-counted buffer plus a [`Layout`] (shape, strides, offset). Cloning
/// is cheap (one atomic increment); views such as [`transpose`](Tensor::transpose),
/// [`broadcast_to`](Tensor::broadcast_to) and [`narrow`](Tensor::narrow) share the buffer and
/// never copy. Tensors are `Send + Sync`.
///
/// Operations check their arguments and panic with a message naming the operation and the
/// shapes (`add: cannot broadcast [3, 4] with [5]`); each has a `try_` form that returns a
/// [`TensorError`] instead. Nothing is allocated or written before all checks pass.
///
/// ```
/// use tensor::Tensor;
/// let a = Tensor::from_vec(vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
/// let b = Tensor::from_vec(vec![10.0_f32, 20.0, 30.0], [3]).unwrap();
/// let c = &a + &b; // broadcasts b over the rows of a
/// assert_eq!(c.to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// let t = a.t(); // a transposed view: no copy
/// assert!(t.shares_storage_with(&a));
/// assert_eq!(t.dims(), &[3, 2]);
/// ```
#[derive(Clone)]
pub struct Tensor<T: Float> {
    data: Arc<[T]>,
    layout: Layout,
}

impl<T: Float> Tensor<T> {
    // ----- internal construction -------------------------------------------------------

    /// A tensor over existing storage. The layout must address only positions inside `data`.
    pub(crate) fn from_parts(data: Arc<[T]>, layout: Layout) -> Self {
        debug_assert!(layout.storage_extent() <= data.len());
        Tensor { data, layout }
    }

    /// A contiguous tensor over a buffer holding exactly `shape.numel()` elements.
    pub(crate) fn from_buffer(data: Arc<[T]>, shape: Shape) -> Self {
        debug_assert_eq!(data.len(), shape.numel());
        Tensor {
            data,
            layout: Layout::contiguous(shape),
        }
    }

    /// A contiguous tensor whose zeroed buffer is filled in row-major order by `fill`.
    pub(crate) fn from_fill(shape: Shape, fill: impl FnOnce(&mut [T])) -> Self {
        let mut data = storage::zeroed(shape.numel());
        fill(Arc::get_mut(&mut data).expect("a new buffer has one owner"));
        Tensor::from_buffer(data, shape)
    }

    /// Like [`from_fill`](Tensor::from_fill) for kernels that write **every** element: the
    /// buffer may be a recycled one holding stale values (see `storage`).
    pub(crate) fn from_overwrite(shape: Shape, fill: impl FnOnce(&mut [T])) -> Self {
        let mut data = storage::for_overwrite(shape.numel());
        fill(Arc::get_mut(&mut data).expect("a new buffer has one owner"));
        Tensor::from_buffer(data, shape)
    }

    /// The same storage under another layout (a view).
    pub(crate) fn with_layout(&self, layout: Layout) -> Self {
        Tensor::from_parts(self.data.clone(), layout)
    }

    /// The whole storage buffer (views address part of it through the layout).
    pub(crate) fn storage(&self) -> &[T] {
        &self.data
    }

    // ----- constructors ----------------------------------------------------------------

    /// A tensor from row-major values. Errors if `data.len()` is not the product of `shape`.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0_f64, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    /// assert_eq!(t.get(&[1, 0]), 3.0);
    /// let err = Tensor::from_vec(vec![1.0_f64; 5], [2, 2]).unwrap_err();
    /// assert_eq!(err.to_string(), "from_vec: shape [2, 2] needs 4 values but 5 were given");
    /// ```
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let numel = shape.checked_numel("from_vec")?;
        if data.len() != numel {
            return Err(TensorError::DataLength {
                op: "from_vec",
                shape,
                len: data.len(),
            });
        }
        Ok(Tensor::from_buffer(storage::copied(&data), shape))
    }

    /// A tensor from a row-major slice (copied). Errors like [`from_vec`](Tensor::from_vec).
    pub fn from_slice(data: &[T], shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let numel = shape.checked_numel("from_slice")?;
        if data.len() != numel {
            return Err(TensorError::DataLength {
                op: "from_slice",
                shape,
                len: data.len(),
            });
        }
        Ok(Tensor::from_buffer(storage::copied(data), shape))
    }

    /// A tensor whose element at row-major position `i` is `f(i)`, written straight into its
    /// buffer (no intermediate `Vec`). `f` is called once per element, in order.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::<f32>::from_fn([2, 3], |i| i as f32 * 0.5);
    /// assert_eq!(t.to_vec(), vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    /// ```
    pub fn from_fn(shape: impl Into<Shape>, mut f: impl FnMut(usize) -> T) -> Self {
        Tensor::from_overwrite(shape.into(), |out| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(i);
            }
        })
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor::from_buffer(storage::filled(1, value), Shape::scalar())
    }

    /// A tensor filled with `value`.
    pub fn full(shape: impl Into<Shape>, value: T) -> Self {
        let shape = shape.into();
        Tensor::from_buffer(storage::filled(shape.numel(), value), shape)
    }

    /// [`full`](Tensor::full) for a shape that comes from data: errors, instead of aborting,
    /// when the element count overflows or cannot be allocated.
    ///
    /// ```
    /// use tensor::Tensor;
    /// assert_eq!(Tensor::try_full([2], 1.5_f32).unwrap().to_vec(), vec![1.5, 1.5]);
    /// assert!(Tensor::<f64>::try_full([1 << 40, 1 << 40], 0.0).is_err());
    /// ```
    pub fn try_full(shape: impl Into<Shape>, value: T) -> Result<Self> {
        let shape = shape.into();
        let numel = shape.checked_numel("full")?;
        storage::check_allocation::<T>("full", numel)?;
        Ok(Tensor::from_buffer(storage::filled(numel, value), shape))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        Tensor::full(shape, T::ZERO)
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>) -> Self {
        Tensor::full(shape, T::ONE)
    }

    /// Zeros with the shape of `other`.
    pub fn zeros_like(other: &Tensor<T>) -> Self {
        Tensor::zeros(other.shape())
    }

    /// Ones with the shape of `other`.
    pub fn ones_like(other: &Tensor<T>) -> Self {
        Tensor::ones(other.shape())
    }

    /// The values `start, start + step, ...` below `end` (above it for a negative step), as
    /// a rank-1 tensor. Errors if `step` is zero or not finite.
    ///
    /// ```
    /// use tensor::Tensor;
    /// assert_eq!(Tensor::arange(0.0_f32, 1.0, 0.25).unwrap().to_vec(), vec![0.0, 0.25, 0.5, 0.75]);
    /// ```
    pub fn arange(start: T, end: T, step: T) -> Result<Self> {
        if step == T::ZERO || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(TensorError::InvalidArgument {
                op: "arange",
                message: format!(
                    "needs finite start, end and a non-zero finite step, got {start}, {end}, {step}"
                ),
            });
        }
        let span = (end.to_f64() - start.to_f64()) / step.to_f64();
        let count = if span > 0.0 { span.ceil() } else { 0.0 };
        // A count beyond what a buffer can hold is an error, not an allocation failure.
        if count > (isize::MAX as usize / std::mem::size_of::<T>()) as f64 {
            return Err(TensorError::InvalidArgument {
                op: "arange",
                message: format!(
                    "{start:?}..{end:?} by {step:?} has {count:e} values, more than fit in memory"
                ),
            });
        }
        let count = count as usize;
        let values: Vec<T> = (0..count)
            .map(|i| start + T::from_usize(i) * step)
            .collect();
        Tensor::from_vec(values, [count])
    }

    /// `count` evenly spaced values from `start` to `end`, both included (one value: `start`).
    pub fn linspace(start: T, end: T, count: usize) -> Self {
        let values: Vec<T> = match count {
            0 => Vec::new(),
            1 => vec![start],
            _ => {
                let step = (end - start) / T::from_usize(count - 1);
                (0..count)
                    .map(|i| {
                        if i + 1 == count {
                            end
                        } else {
                            start + T::from_usize(i) * step
                        }
                    })
                    .collect()
            }
        };
        Tensor::from_buffer(storage::copied(&values), Shape::from([count]))
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize) -> Self {
        Tensor::from_fill(Shape::from([n, n]), |buffer| {
            for i in 0..n {
                buffer[i * n + i] = T::ONE;
            }
        })
    }

    /// Values drawn from N(mean, std^2) using `rng`. Errors if `std` is negative or either
    /// parameter is not finite.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tensor::Tensor;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let w = Tensor::<f32>::random_normal([3, 4], 0.0, 0.1, &mut rng).unwrap();
    /// assert_eq!(w.dims(), &[3, 4]);
    /// ```
    pub fn random_normal<R: Rng + ?Sized>(
        shape: impl Into<Shape>,
        mean: T,
        std: T,
        rng: &mut R,
    ) -> Result<Self> {
        if std < T::ZERO || !std.is_finite() || !mean.is_finite() {
            return Err(TensorError::InvalidArgument {
                op: "random_normal",
                message: format!(
                    "needs a finite mean and a finite std >= 0, got mean {mean}, std {std}"
                ),
            });
        }
        let shape = shape.into();
        let numel = shape.checked_numel("random_normal")?;
        storage::check_allocation::<T>("random_normal", numel)?;
        Ok(Tensor::from_overwrite(shape, |out| {
            for o in out {
                *o = mean + std * T::sample_standard_normal(rng);
            }
        }))
    }

    /// Values drawn uniformly from [low, high) using `rng`. Errors unless `low < high`, both
    /// finite.
    pub fn random_uniform<R: Rng + ?Sized>(
        shape: impl Into<Shape>,
        low: T,
        high: T,
        rng: &mut R,
    ) -> Result<Self> {
        if low >= high || !low.is_finite() || !high.is_finite() {
            return Err(TensorError::InvalidArgument {
                op: "random_uniform",
                message: format!("needs finite low < high, got low {low}, high {high}"),
            });
        }
        let shape = shape.into();
        let numel = shape.checked_numel("random_uniform")?;
        storage::check_allocation::<T>("random_uniform", numel)?;
        let width = high - low;
        Ok(Tensor::from_overwrite(shape, |out| {
            for o in out {
                let value = low + width * T::sample_unit_uniform(rng);
                // Rounding can land exactly on `high`; keep the interval half-open.
                *o = if value < high { value } else { low };
            }
        }))
    }

    /// A tensor over `data` with explicit strides and offset (NumPy's `as_strided`, checked):
    /// element `index` is `data[offset + sum(index[i] * strides[i])]`. Strides may be 0
    /// (broadcast) and may repeat positions. Errors, with every value, if the rank of `strides`
    /// differs from the shape's or some element would fall outside `data` (all arithmetic is
    /// checked, so no overflow can make a bad layout look valid).
    ///
    /// ```
    /// use tensor::Tensor;
    /// // The transpose of a row-major [2, 3] buffer.
    /// let t = Tensor::from_strided(vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2], &[1, 3], 0).unwrap();
    /// assert_eq!(t.to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// assert!(Tensor::from_strided(vec![1.0_f32; 4], [3, 2], &[1, 3], 0).is_err());
    /// ```
    pub fn from_strided(
        data: Vec<T>,
        shape: impl Into<Shape>,
        strides: &[usize],
        offset: usize,
    ) -> Result<Self> {
        let shape = shape.into();
        let layout = Layout::strided("from_strided", shape, strides, offset, data.len())?;
        Ok(Tensor::from_parts(storage::copied(&data), layout))
    }

    // ----- accessors -------------------------------------------------------------------

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    /// Axis sizes, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.layout.shape().dims()
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.layout.shape().rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.layout.shape().numel()
    }

    /// The layout: shape, strides and offset into storage.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Strides in elements (0 on broadcast axes).
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// True when the elements sit in storage in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Number of elements in the underlying buffer, which views share (so it can exceed
    /// [`numel`](Tensor::numel) for a slice, and be smaller for a broadcast).
    pub fn storage_len(&self) -> usize {
        self.data.len()
    }

    /// True when both tensors view the same buffer (views never copy).
    pub fn shares_storage_with(&self, other: &Tensor<T>) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// The elements in row-major order, if the tensor is contiguous (no copy).
    pub fn as_contiguous_slice(&self) -> Option<&[T]> {
        self.layout
            .contiguous_range()
            .map(|range| &self.data[range])
    }

    /// The elements in row-major logical order (a copy).
    pub fn to_vec(&self) -> Vec<T> {
        if let Some(slice) = self.as_contiguous_slice() {
            return slice.to_vec();
        }
        let mut out = Vec::with_capacity(self.numel());
        for_each_row(
            self.dims(),
            [self.strides()],
            [self.layout.offset()],
            |[start], len, [stride]| {
                out.extend((0..len).map(|i| self.data[start + i * stride]));
            },
        );
        out
    }

    /// The element at a multi-index. Panics with the index and shape if it is out of bounds.
    pub fn get(&self, index: &[usize]) -> T {
        or_panic(self.try_get(index))
    }

    /// The element at a multi-index, or an error naming the index and shape.
    pub fn try_get(&self, index: &[usize]) -> Result<T> {
        let in_bounds =
            index.len() == self.rank() && index.iter().zip(self.dims()).all(|(&i, &d)| i < d);
        if !in_bounds {
            return Err(TensorError::ElementIndex {
                op: "get",
                index: index.to_vec(),
                shape: self.shape().clone(),
            });
        }
        Ok(self.data[self.layout.position(index)])
    }

    /// The value of a one-element tensor (any rank). Panics otherwise.
    pub fn item(&self) -> T {
        or_panic(self.try_item())
    }

    /// The value of a one-element tensor, or an error naming its shape.
    pub fn try_item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(TensorError::InvalidArgument {
                op: "item",
                message: format!(
                    "needs exactly one element, shape {} has {}",
                    self.shape(),
                    self.numel()
                ),
            });
        }
        Ok(self.data[self.layout.offset()])
    }

    /// The elements in row-major order as a uniquely owned, mutable slice. Copy-on-write: if
    /// the buffer is shared with another tensor or the layout is not contiguous, the elements
    /// are first copied into a fresh buffer, so no other tensor ever observes the change.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::<f32>::zeros([3]);
    /// let mut b = a.clone();
    /// b.make_mut()[0] = 5.0;
    /// assert_eq!(a.to_vec(), vec![0.0, 0.0, 0.0]);
    /// assert_eq!(b.to_vec(), vec![5.0, 0.0, 0.0]);
    /// ```
    pub fn make_mut(&mut self) -> &mut [T] {
        if self.unique_contiguous_mut().is_none() {
            *self = self.contiguous_copy();
        }
        self.unique_contiguous_mut()
            .expect("a fresh contiguous copy has one owner")
    }

    /// The elements as a mutable row-major slice, if the tensor is contiguous and the sole
    /// owner of its buffer (never copies).
    pub(crate) fn unique_contiguous_mut(&mut self) -> Option<&mut [T]> {
        let range = self.layout.contiguous_range()?;
        Arc::get_mut(&mut self.data).map(|data| &mut data[range])
    }

    /// The same tensor with `f64` or `f32` elements.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        let source = self.contiguous();
        let values = source.as_contiguous_slice().expect("contiguous");
        Tensor::from_overwrite(self.shape().clone(), |out| {
            for (o, &x) in out.iter_mut().zip(values) {
                *o = U::from_f64(x.to_f64());
            }
        })
    }

    /// True when shapes are equal and every pair satisfies `|a - b| <= atol + rtol * |b|`
    /// (NaN is never close). Meant for tests.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0_f64, 2.0], [2]).unwrap();
    /// let b = Tensor::from_vec(vec![1.0_f64, 2.0 + 1e-9], [2]).unwrap();
    /// assert!(a.allclose(&b, 1e-6, 0.0));
    /// ```
    pub fn allclose(&self, other: &Tensor<T>, rtol: f64, atol: f64) -> bool {
        self.shape() == other.shape()
            && self.to_vec().iter().zip(other.to_vec()).all(|(a, b)| {
                let (a, b) = (a.to_f64(), b.to_f64());
                (a - b).abs() <= atol + rtol * b.abs() || (a == b)
            })
    }

    // ----- views ----------------------------------------------------------------------

    /// A contiguous tensor with the same elements: `self` (shared) if already contiguous, a
    /// row-major copy otherwise.
    pub fn contiguous(&self) -> Tensor<T> {
        if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous_copy()
        }
    }

    /// A row-major copy into a fresh buffer of exactly `numel` elements.
    pub(crate) fn contiguous_copy(&self) -> Tensor<T> {
        if let Some(slice) = self.as_contiguous_slice() {
            return Tensor::from_overwrite(self.shape().clone(), |out| out.copy_from_slice(slice));
        }
        Tensor::from_overwrite(self.shape().clone(), |out| {
            let mut next = 0;
            for_each_row(
                self.dims(),
                [self.strides()],
                [self.layout.offset()],
                |[start], len, [stride]| {
                    for (i, slot) in out[next..next + len].iter_mut().enumerate() {
                        *slot = self.data[start + i * stride];
                    }
                    next += len;
                },
            );
        })
    }

    /// Reorders the axes (a view): axis `i` of the result is axis `permutation[i]`.
    /// Panics if `permutation` is not a permutation of `0..rank`.
    pub fn permute(&self, permutation: &[usize]) -> Tensor<T> {
        or_panic(self.try_permute(permutation))
    }

    /// Fallible [`permute`](Tensor::permute).
    pub fn try_permute(&self, permutation: &[usize]) -> Result<Tensor<T>> {
        Ok(self.with_layout(self.layout.permute("permute", permutation)?))
    }

    /// Swaps two axes (a view).
    pub fn transpose(&self, axis_a: usize, axis_b: usize) -> Tensor<T> {
        or_panic(self.try_transpose(axis_a, axis_b))
    }

    /// Fallible [`transpose`](Tensor::transpose).
    pub fn try_transpose(&self, axis_a: usize, axis_b: usize) -> Result<Tensor<T>> {
        self.shape().check_axis("transpose", axis_a)?;
        self.shape().check_axis("transpose", axis_b)?;
        let mut order: Dims = (0..self.rank()).collect();
        order.swap(axis_a, axis_b);
        Ok(self.with_layout(self.layout.permute("transpose", &order)?))
    }

    /// Swaps the last two axes (the matrix transpose of a rank-2 tensor, per-matrix for a batch).
    /// Panics below rank 2.
    pub fn t(&self) -> Tensor<T> {
        if self.rank() < 2 {
            panic!("t: needs rank >= 2, got shape {}", self.shape());
        }
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    /// Views the tensor as `shape` by NumPy broadcasting (stride 0 on repeated axes, no copy).
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor<T> {
        or_panic(self.try_broadcast_to(shape))
    }

    /// Fallible [`broadcast_to`](Tensor::broadcast_to).
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout.broadcast_to("broadcast_to", &shape)?))
    }

    /// The elements `start..start + len` along `axis` (a view).
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::<f32>::arange(0.0, 6.0, 1.0).unwrap().reshape([2, 3]);
    /// assert_eq!(t.narrow(1, 1, 2).to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
    /// ```
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor<T> {
        or_panic(self.try_narrow(axis, start, len))
    }

    /// Fallible [`narrow`](Tensor::narrow).
    pub fn try_narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor<T>> {
        Ok(self.with_layout(self.layout.narrow("narrow", axis, start, len)?))
    }

    /// The elements in `range` along `axis` (a view); the same as
    /// [`narrow`](Tensor::narrow)`(axis, range.start, range.len())`.
    pub fn slice(&self, axis: usize, range: Range<usize>) -> Tensor<T> {
        or_panic(self.try_slice(axis, range))
    }

    /// Fallible [`slice`](Tensor::slice).
    pub fn try_slice(&self, axis: usize, range: Range<usize>) -> Result<Tensor<T>> {
        let len =
            range
                .end
                .checked_sub(range.start)
                .ok_or_else(|| TensorError::InvalidArgument {
                    op: "slice",
                    message: format!("range {}..{} is reversed", range.start, range.end),
                })?;
        Ok(self.with_layout(self.layout.narrow("slice", axis, range.start, len)?))
    }

    /// The same elements under a new shape with equal element count. A view when the tensor is
    /// contiguous; a non-contiguous tensor (a transposed or sliced view) is first **copied**
    /// into row-major order.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::<f32>::zeros([2, 6]);
    /// assert!(t.reshape([3, 4]).shares_storage_with(&t));
    /// assert!(!t.t().reshape([12]).shares_storage_with(&t)); // copied
    /// ```
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor<T> {
        or_panic(self.try_reshape(shape))
    }

    /// Fallible [`reshape`](Tensor::reshape).
    pub fn try_reshape(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let shape = shape.into();
        if shape.checked_numel("reshape")? != self.numel() {
            return Err(TensorError::ReshapeElementCount {
                from: self.shape().clone(),
                to: shape,
            });
        }
        let source = self.contiguous();
        let layout = source.layout.reshaped_contiguous(shape);
        Ok(source.with_layout(layout))
    }

    /// The elements as a rank-1 tensor (a view when contiguous, like [`reshape`](Tensor::reshape)).
    pub fn flatten(&self) -> Tensor<T> {
        self.reshape([self.numel()])
    }

    /// Removes `axis`, which must have size 1 (a view).
    pub fn squeeze(&self, axis: usize) -> Tensor<T> {
        or_panic(self.try_squeeze(axis))
    }

    /// Fallible [`squeeze`](Tensor::squeeze).
    pub fn try_squeeze(&self, axis: usize) -> Result<Tensor<T>> {
        Ok(self.with_layout(self.layout.squeeze("squeeze", axis)?))
    }

    /// Inserts an axis of size 1 before `axis`; `axis == rank` appends (a view).
    pub fn unsqueeze(&self, axis: usize) -> Tensor<T> {
        or_panic(self.try_unsqueeze(axis))
    }

    /// Fallible [`unsqueeze`](Tensor::unsqueeze).
    pub fn try_unsqueeze(&self, axis: usize) -> Result<Tensor<T>> {
        Ok(self.with_layout(self.layout.unsqueeze("unsqueeze", axis)?))
    }
}

impl<T: Float> Drop for Tensor<T> {
    /// A large buffer this tensor owns alone is recycled for the next one of its length (see
    /// `storage`); everything else is freed as usual.
    fn drop(&mut self) {
        storage::recycle(&mut self.data);
    }
}

impl<T: Float> PartialEq for Tensor<T> {
    /// Equal shapes and equal elements (so NaN makes a tensor unequal to itself, as for floats).
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape() && self.to_vec() == other.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn constructors_fill_as_documented() {
        assert_eq!(Tensor::<f32>::full([2], 3.5).to_vec(), vec![3.5, 3.5]);
        assert_eq!(Tensor::<f64>::eye(2).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            Tensor::<f64>::linspace(0.0, 1.0, 5).to_vec(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(Tensor::<f64>::linspace(2.0, 3.0, 1).to_vec(), vec![2.0]);
        assert_eq!(
            Tensor::<f64>::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
            vec![3.0, 2.0, 1.0]
        );
        assert_eq!(Tensor::<f64>::arange(0.0, 0.0, 1.0).unwrap().numel(), 0);
        assert!(
            Tensor::<f64>::arange(0.0, 1e300, 1.0)
                .unwrap_err()
                .to_string()
                .starts_with("arange: 0.0..1e300 by 1.0 has 1e300 values")
        );
        assert_eq!(Tensor::scalar(2.0_f32).rank(), 0);
        assert_eq!(Tensor::scalar(2.0_f32).item(), 2.0);
    }

    #[test]
    fn constructor_errors_name_the_op_and_values() {
        assert_eq!(
            Tensor::<f32>::arange(0.0, 1.0, 0.0)
                .unwrap_err()
                .to_string(),
            "arange: needs finite start, end and a non-zero finite step, got 0, 1, 0"
        );
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            Tensor::<f32>::random_normal([2], 0.0, -1.0, &mut rng)
                .unwrap_err()
                .to_string(),
            "random_normal: needs a finite mean and a finite std >= 0, got mean 0, std -1"
        );
        assert_eq!(
            Tensor::<f32>::random_uniform([2], 1.0, 1.0, &mut rng)
                .unwrap_err()
                .to_string(),
            "random_uniform: needs finite low < high, got low 1, high 1"
        );
        assert_eq!(
            Tensor::<f32>::from_slice(&[1.0], [2, 3])
                .unwrap_err()
                .to_string(),
            "from_slice: shape [2, 3] needs 6 values but 1 were given"
        );
    }

    #[test]
    fn random_draws_are_reproducible_and_in_range() {
        let draw = |seed| {
            Tensor::<f64>::random_uniform([100], -2.0, 3.0, &mut StdRng::seed_from_u64(seed))
                .unwrap()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        assert!(draw(5).to_vec().iter().all(|&x| (-2.0..3.0).contains(&x)));
    }

    #[test]
    fn views_share_storage_and_index_logically() {
        let t = Tensor::from_vec((0..24).map(f64::from).collect(), [2, 3, 4]).unwrap();
        let p = t.permute(&[2, 0, 1]);
        assert!(p.shares_storage_with(&t));
        assert_eq!(p.dims(), &[4, 2, 3]);
        assert_eq!(p.get(&[3, 1, 2]), t.get(&[1, 2, 3]));
        let n = t.narrow(2, 1, 2);
        assert_eq!(n.get(&[1, 2, 1]), t.get(&[1, 2, 2]));
        let b = Tensor::from_vec(vec![1.0, 2.0], [2, 1])
            .unwrap()
            .broadcast_to([3, 2, 5]);
        assert_eq!(b.get(&[2, 1, 4]), 2.0);
        assert_eq!(b.strides(), &[0, 1, 0]);
    }

    #[test]
    fn view_errors_name_the_op_and_shape() {
        let t = Tensor::<f32>::zeros([2, 3]);
        assert_eq!(
            t.try_permute(&[0, 0]).unwrap_err().to_string(),
            "permute: [0, 0] is not a permutation of the axes of shape [2, 3]"
        );
        assert_eq!(
            t.try_narrow(1, 2, 2).unwrap_err().to_string(),
            "narrow: range 2..4 along axis 1 exceeds shape [2, 3]"
        );
        assert_eq!(
            t.try_reshape([4]).unwrap_err().to_string(),
            "reshape: cannot reshape [2, 3] (6 elements) to [4] (4 elements)"
        );
        assert_eq!(
            t.try_broadcast_to([3, 3]).unwrap_err().to_string(),
            "broadcast_to: cannot broadcast [2, 3] to [3, 3]"
        );
        assert_eq!(
            t.try_squeeze(0).unwrap_err().to_string(),
            "squeeze: axis 0 of shape [2, 3] has size 2, not 1"
        );
        assert_eq!(
            t.try_get(&[2, 0]).unwrap_err().to_string(),
            "get: index [2, 0] is out of bounds for shape [2, 3]"
        );
        assert_eq!(
            t.try_item().unwrap_err().to_string(),
            "item: needs exactly one element, shape [2, 3] has 6"
        );
        assert_eq!(
            t.try_transpose(0, 2).unwrap_err().to_string(),
            "transpose: axis 2 is out of range for shape [2, 3] (rank 2)"
        );
    }

    #[test]
    fn strided_constructor_checks_every_position_without_overflow() {
        let data: Vec<f64> = (0..6).map(f64::from).collect();
        let broadcast = Tensor::from_strided(data.clone(), [2, 3], &[0, 1], 3).unwrap();
        assert_eq!(broadcast.to_vec(), vec![3.0, 4.0, 5.0, 3.0, 4.0, 5.0]);
        let error = |shape: &[usize], strides: &[usize], offset: usize| {
            Tensor::from_strided(data.clone(), shape, strides, offset)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[2, 3], &[3, 1], 1),
            "from_strided: shape [2, 3] with strides [3, 1] at offset 1 reaches past a buffer of 6 elements"
        );
        assert_eq!(
            error(&[2, 3], &[1], 0),
            "from_strided: 1 strides [1] for shape [2, 3] of rank 2"
        );
        // Products that wrap around usize must not look small.
        assert!(error(&[274_177, 2], &[67_280_421_310_721, 0], 0).contains("reaches past"));
        assert!(error(&[2, 2], &[usize::MAX, 1], 0).contains("reaches past"));
        assert!(error(&[1 << 40, 1 << 40], &[0, 0], 0).contains("more elements than fit"));
        // An empty view may sit at the very end of its buffer, not past it.
        assert_eq!(
            Tensor::from_strided(data.clone(), [0, 3], &[3, 1], 6)
                .unwrap()
                .numel(),
            0
        );
        assert!(Tensor::from_strided(data, [0], &[1], 7).is_err());
    }

    #[test]
    fn sizes_from_data_that_cannot_be_allocated_are_errors_not_aborts() {
        let mut rng = StdRng::seed_from_u64(0);
        assert!(Tensor::<f32>::random_normal([1 << 46], 0.0, 1.0, &mut rng).is_err());
        assert!(Tensor::<f32>::random_uniform([1 << 46], 0.0, 1.0, &mut rng).is_err());
        assert!(Tensor::<f64>::try_full([1 << 20, 1 << 26], 0.0).is_err());
        assert!(Tensor::<f64>::one_hot(&[0], 1 << 46).is_err());
        let empty = Tensor::<f32>::zeros([1 << 24, 0]);
        assert!(empty.try_matmul(&Tensor::zeros([0, 1 << 24])).is_err());
        assert!(empty.try_matmul(&empty.t()).is_err());
        assert!(Tensor::<f32>::zeros([2]).try_pad(0, usize::MAX, 0).is_err());
        assert!(Tensor::<f32>::zeros([2]).try_pad(0, 1 << 46, 0).is_err());
    }

    #[test]
    fn make_mut_copies_shared_or_strided_buffers_only() {
        let mut unique = Tensor::<f32>::zeros([4]);
        let before = unique.storage().as_ptr();
        unique.make_mut()[1] = 1.0;
        assert_eq!(unique.storage().as_ptr(), before);
        let base = Tensor::from_vec(vec![1.0_f32, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        let mut transposed = base.t();
        transposed.make_mut()[1] = 9.0;
        assert_eq!(transposed.to_vec(), vec![1.0, 9.0, 2.0, 4.0]);
        assert_eq!(base.to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn cast_round_trips_exact_values() {
        let t = Tensor::from_vec(vec![0.5_f32, -2.0, 3.25], [3]).unwrap();
        assert_eq!(t.cast::<f64>().cast::<f32>(), t);
        assert_eq!(t.cast::<f64>().dtype(), DType::F64);
    }
}
