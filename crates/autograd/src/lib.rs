//! Reverse-mode automatic differentiation on a tape.
//!
//! A [`Tape`] records every op applied to its [`Var`]s as one node of an append-only list (a
//! Wengert list). [`Var::backward`] sweeps that list from the output down: creation order is a
//! topological order, so the sweep is one loop with no recursion, and a graph a million nodes
//! deep backpropagates on the default stack.
//!
//! ```
//! use autograd::Tape;
//! use tensor::Tensor;
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap());
//! let w = tape.leaf(Tensor::from_vec(vec![0.5, -0.5, 0.25, 1.0], [2, 2]).unwrap());
//! let b = tape.leaf(Tensor::zeros([2]));
//! let loss = (x.matmul(w) + b).relu().square().mean_all();
//! let grads = loss.backward();
//! assert_eq!(grads.wrt(w).dims(), &[2, 2]);
//! assert_eq!(grads.wrt(b).dims(), &[2]);
//! ```
//!
//! # Layout
//! - A small set of primitives ([`PrimitiveKind::ALL`]), each declared once, as one row of the
//!   table in `ops/mod.rs` (name, parameters, arity, forward, rule, documentation line); the
//!   `Primitive` enum, its kinds, arities, input lists and both dispatches are generated from
//!   that row. Forward kernels and rules live in one file per family under `ops/`, and
//!   `docs/derivatives.md` is checked against the table.
//! - Rules are written once over [`Operand`], evaluated on tensors for ordinary gradients and on
//!   Vars for higher-order ones ([`Var::backward_create_graph`]).
//! - Composites (mean, variance, logsumexp, softmax, log_softmax, softplus, maximum, concat,
//!   split, stack, clamp, masked_fill, [`einsum`](Var::einsum)...) have no backward code: their
//!   gradients are derived.
//! - [`CustomOp`] records a user-defined op with its own rule; [`gradcheck`] checks any of them.
//! - Forward mode ([`Tape::forward_mode`]): each primitive's tangent rule sits beside its
//!   backward rule; tangents are nodes of the tape, so the modes compose. The function
//!   transforms ([`jvp`], [`vjp`], [`grad`], [`jacobian`], [`hessian`]), per-sample gradients
//!   ([`per_sample`]), gradient hooks ([`Var::register_hook`]) and checkpointing
//!   ([`Tape::checkpoint`]) are built on the tape; `docs/transforms.md` is the guide.
//!
//! # Errors: one contract for `tensor`, `autograd` and `nn`
//! - **Programmer errors panic**, in the plain form of a call (`matmul`, `+`, `slice`,
//!   `backward`): shapes that do not fit, an axis out of range, an argument outside its domain.
//!   The message names the op and the shapes or values and points at the caller's line.
//! - **Each of those calls has a `try_` form** returning the same condition as an
//!   [`AutogradError`]. A `try_` form never panics, not even on a size too large to allocate,
//!   and a failed call changes nothing: all checks run before a node is recorded, and a
//!   composite that fails half-way removes the nodes it had recorded, so the tape is exactly as
//!   it was.
//! - **What comes from outside the program only returns `Result`** (tensors from data, files,
//!   parameter loading, optimizer steps): there is no panicking form to reach for.
//!
//! Two styles follow. Operators read like the maths and are the right choice where shapes are
//! fixed by construction: scripts, examples, tests, a layer that checked its input shape once
//! on entry (`nn`'s `Layer` example does this). Chains of `?` over `try_` forms are the right
//! choice where the shapes come from a caller who must get the error back as a value:
//!
//! ```
//! use autograd::{AutogradError, Tape, Var};
//! use tensor::Tensor;
//!
//! // Operators: the shapes are known to fit.
//! let tape = Tape::<f64>::new();
//! let x = tape.constant(Tensor::ones([2, 3]));
//! let w = tape.leaf(Tensor::ones([3, 4]));
//! let b = tape.leaf(Tensor::zeros([4]));
//! let y = (x.matmul(w) + b).relu();
//! assert_eq!(y.shape().dims(), &[2, 4]);
//!
//! // `?`: the caller's shapes may not fit, and the caller gets the error.
//! fn affine<'t>(x: Var<'t, f64>, w: Var<'t, f64>, b: Var<'t, f64>) -> Result<Var<'t, f64>, AutogradError> {
//!     Ok(x.try_matmul(w)?.try_add(b)?.relu())
//! }
//! let nodes = tape.len();
//! let wrong = tape.leaf(Tensor::ones([2, 4]));
//! let error = affine(x, wrong, b).unwrap_err();
//! assert!(error.to_string().contains("matmul"), "{error}");
//! assert_eq!(tape.len(), nodes + 1); // only the leaf `wrong`: the failed call recorded nothing
//! ```
#![forbid(unsafe_code)]

mod backward;
mod checkpoint;
mod composite;
mod custom;
mod diagnostics;
mod einsum;
mod error;
mod forward;
pub mod gradcheck;
mod higher_order;
mod hooks;
mod inspect;
mod operand;
mod ops;
pub mod per_sample;
mod tape;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transforms;

pub use backward::{GradientVars, Gradients};
pub use custom::CustomOp;
pub use diagnostics::{AnomalyMode, AnomalyPhase, AnomalyReport, ValueSummary};
pub use error::{AutogradError, Result};
pub use forward::DualLevel;
pub use higher_order::hessian_vector_product;
pub use hooks::GradientHook;
pub use inspect::{NodeSummary, TapeSummary};
pub use operand::Operand;
pub use ops::PrimitiveKind;
pub use per_sample::PerSampleGradients;
pub use tape::{Tape, Var};
pub use transforms::{JacobianMode, function, grad, hessian, jacobian, jvp, vjp};

/// The README's code, compiled and run as a doctest so the tour cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
