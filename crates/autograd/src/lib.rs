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
//! - A small set of primitives ([`PrimitiveKind::ALL`]), each with its forward and backward
//!   rule in one file per family under `ops/`; `ops/mod.rs` holds the one `match` that maps
//!   each primitive to its rule (mirrored in `docs/derivatives.md`).
//! - Rules are written once over [`Operand`], evaluated on tensors for ordinary gradients and on
//!   Vars for higher-order ones ([`Var::backward_create_graph`]).
//! - Composites (mean, variance, logsumexp, softmax, log_softmax, softplus, maximum, concat...)
//!   have no backward code: their gradients are derived.
//! - [`CustomOp`] records a user-defined op with its own rule; [`gradcheck`] checks any of them.
//!
//! # Errors
//! Shape mismatches panic with a message naming the op and the shapes; every op has a `try_`
//! form returning [`AutogradError`]. All checks run before a node is recorded, so a failed
//! call leaves the tape exactly as it was.
#![forbid(unsafe_code)]

mod backward;
mod composite;
mod custom;
mod diagnostics;
mod error;
pub mod gradcheck;
mod higher_order;
mod inspect;
mod operand;
mod ops;
mod tape;
#[cfg(feature = "testing")]
pub mod testing;

pub use backward::{GradientVars, Gradients};
pub use custom::CustomOp;
pub use diagnostics::{AnomalyMode, AnomalyPhase, AnomalyReport, ValueSummary};
pub use error::{AutogradError, Result};
pub use higher_order::hessian_vector_product;
pub use inspect::{NodeSummary, TapeSummary};
pub use operand::Operand;
pub use ops::PrimitiveKind;
pub use tape::{Tape, Var};

/// The README's code, compiled and run as a doctest so the tour cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
