//! n-dimensional arrays for the autograd library.
//!
//! A [`Tensor`] is shared, immutable storage (`Arc<[T]>`) plus a [`Layout`] (shape, strides,
//! offset; inline for up to four axes). Views — [`permute`](Tensor::permute),
//! [`transpose`](Tensor::transpose), [`broadcast_to`](Tensor::broadcast_to),
//! [`narrow`](Tensor::narrow), [`reshape`](Tensor::reshape) of contiguous data,
//! [`squeeze`](Tensor::squeeze), [`unsqueeze`](Tensor::unsqueeze) — only make a new layout.
//! Kernels take a contiguous fast path when they can and a strided path that is correct for
//! every view; the two agree bit for bit. [`matmul`](Tensor::matmul) hands the views' strides
//! straight to matrixmultiply, so a transposed operand is never copied.
//!
//! The crate knows nothing of gradients; `autograd` builds on it.
//!
//! ```
//! use tensor::Tensor;
//! let x = Tensor::from_vec(vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
//! let w = Tensor::<f32>::ones([3, 2]);
//! let y = (x.matmul(&w) + 1.0).relu();
//! assert_eq!(y.to_vec(), vec![7.0, 7.0, 16.0, 16.0]);
//! println!("{y}");
//! ```
//!
//! # Errors: one contract for `tensor`, `autograd` and `nn`
//! - **Programmer errors panic**, in the plain form of a call: shapes that do not fit, an axis
//!   out of range, an argument outside its domain. The message names the op and the shapes or
//!   values (`matmul: inner dimensions differ: [3, 4] x [5, 2]`) and points at the caller's line.
//! - **Each of those calls has a `try_` form** returning the same condition as a named error. A
//!   `try_` form never panics, not even on a size too large to allocate, and a failed call
//!   changes nothing: no tensor half written.
//! - **What comes from outside the program only returns `Result`**: constructors from data,
//!   files, CSV, parameter loading, optimizer steps. There is no panicking form to reach for.
//!
//! Two styles follow. Operators (`(x.matmul(&w) + 1.0).relu()`) read like the maths and are the
//! right choice where shapes are fixed by construction: scripts, examples, tests, a layer that
//! checked its input shape once on entry. Chains of `?` over `try_` forms are the right choice
//! where the shapes come from a caller who must get the error back as a value (library code, a
//! service that must not panic):
//!
//! ```
//! use tensor::{Tensor, TensorError};
//!
//! fn affine(x: &Tensor<f64>, w: &Tensor<f64>, b: &Tensor<f64>) -> Result<Tensor<f64>, TensorError> {
//!     x.try_matmul(w)?.try_add(b)
//! }
//! let x = Tensor::<f64>::ones([2, 3]);
//! assert!(affine(&x, &Tensor::ones([3, 4]), &Tensor::zeros([4])).is_ok());
//! let error = affine(&x, &Tensor::ones([2, 4]), &Tensor::zeros([4])).unwrap_err();
//! assert!(error.to_string().contains("matmul"), "{error}");
//! ```
//!
//! # Determinism
//! Every result is a function of the values alone, never of the memory layout: the contiguous
//! and strided paths of a kernel apply the same scalar function to the same pairs, and a
//! reduction ([`sum`](Tensor::sum), [`mean`](Tensor::mean), variance, max, min, argmax,
//! logsumexp, `sum_to`) accumulates every output element sequentially over its reduced
//! elements in row-major logical order, whatever the layout. The kernel may run the loops in
//! either nesting (output-major, or reduction-major when outputs are contiguous so the inner
//! loop vectorises across outputs), but each output sees the same additions in the same order,
//! so a strided view reduces to exactly the same bits as its contiguous copy.
//!
//! # rand
//! `tensor::rand` is the `rand` crate this one is built on, version 0.10, re-exported:
//! [`Tensor::random_normal`], [`Tensor::random_uniform`] and [`Float`]'s samplers take any
//! `R: rand::Rng` of this version.
//! A generator from another major version of rand does not implement it (the compiler reports
//! an unsatisfied `Rng` bound and two versions of `rand`); `use tensor::rand::SeedableRng;`
//! (or `nn::rand`) avoids the mismatch.
//!
//! ```
//! use tensor::Tensor;
//! use tensor::rand::SeedableRng;
//!
//! let mut rng = tensor::rand::rngs::StdRng::seed_from_u64(0);
//! let x = Tensor::<f32>::random_uniform([2, 3], -1.0, 1.0, &mut rng).unwrap();
//! assert!(x.to_vec().iter().all(|v| (-1.0..1.0).contains(v)));
//! ```
//!
//! # Threads
//! With the default feature `threading`, large matrix products run on
//! `MATMUL_NUM_THREADS` threads (an environment variable read once, at the first large product;
//! unset means 1). Small products, and every other kernel, stay on the calling thread.
// `deny`, not `forbid`: the one audited exception is the call into matrixmultiply in `gemm.rs`
// (see that module for its safety argument and the benchmark that requires it).
#![deny(unsafe_code)]

mod display;
mod elementwise;
mod error;
mod float;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gemm;
mod index;
mod layout;
mod matmul;
mod reduce;
mod shape;
mod storage;
mod tensor;

pub use error::{Result, TensorError, or_panic};
pub use float::{DType, Float};
pub use index::Indices;
pub use layout::Layout;
pub use shape::{Dims, Shape};
pub use storage::{CACHE_LIMIT_BYTES, DIRECT_MAX_LEN, SMALL_CACHE_LIMIT_BYTES, cached_bytes};
pub use tensor::Tensor;

// The rand version the API takes; the crate docs ("rand") say why to use it.
pub use rand;
