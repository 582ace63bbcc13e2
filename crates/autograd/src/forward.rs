//! Forward mode; the docs are on [`Tape::forward_mode`].

use std::cell::Cell;

use smallvec::SmallVec;
use tensor::{Float, Tensor};

use crate::error::{AutogradError, Result, or_panic};
use crate::ops::{self, Primitive};
use crate::tape::{Tape, Var};

/// One level's tangents, by node index (nodes past the end have none).
#[derive(Clone, Default)]
pub(crate) struct Level {
    slots: Vec<Slot>,
}

/// A node's tangent at one level.
#[derive(Clone, Default)]
enum Slot {
    /// Zero: the node does not depend on this level's seeds.
    #[default]
    Zero,
    /// The node holding the tangent.
    Of(u32),
    /// The node depends on an op without a tangent rule (named): reading it is an error.
    Unsupported(String),
}

impl Level {
    pub(crate) fn truncate(&mut self, len: usize) {
        self.slots.truncate(len);
    }

    fn get(&self, node: u32) -> &Slot {
        self.slots.get(node as usize).unwrap_or(&Slot::Zero)
    }

    fn set(&mut self, node: u32, slot: Slot) {
        let node = node as usize;
        if self.slots.len() <= node {
            self.slots.resize(node + 1, Slot::Zero);
        }
        self.slots[node] = slot;
    }
}

/// Restores a `Cell` when dropped (so a panic inside a level leaves the tape consistent).
struct Restore<'a>(&'a Cell<usize>, usize);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

impl<T: Float> Tape<T> {
    /// Opens a forward-mode level for the duration of `f` (PyTorch's
    /// `torch.autograd.forward_ad.dual_level`): inside, [`DualLevel::dual`] attaches a tangent to
    /// a value, and every op recorded afterwards carries its tangent, read with
    /// [`DualLevel::tangent`]. Levels nest (forward over forward); a create-graph backward inside
    /// a level gives the tangents of the gradients (forward over reverse).
    ///
    /// Each node's tangent (the directional derivative `J v` of its value along the seeded input
    /// tangents) is computed as the node is recorded, by the primitive's tangent rule. Tangents
    /// live beside the tape, one table per open level, and each tangent is itself a node of the
    /// tape: the tangent rules are evaluated on [`Var`]s, the same way the create-graph
    /// backward evaluates the backward rules. That is what makes the transforms compose:
    ///
    /// - **forward over reverse** (Hessian-vector products, [`hessian`](crate::hessian)): a
    ///   create-graph backward inside a level records its gradient computation with ops, each of
    ///   which gets its tangent, so the tangent of a gradient is `H v`;
    /// - **reverse over forward**: a tangent is an ordinary node, so `backward` from it works;
    /// - **forward over forward**: a level opened inside another computes its tangents with ops
    ///   that get the outer level's tangents, so the outer tangent of an inner tangent is a mixed
    ///   second derivative. While a level's tangent is computed, new nodes get tangents only for
    ///   the levels outside it (this is what keeps two levels' perturbations apart).
    ///
    /// When forward mode is off the recording path pays one `Cell` read.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    /// let v = tape.constant(Tensor::from_vec(vec![1.0, 0.5], [2]).unwrap());
    /// let (y, dy) = tape.forward_mode(|level| {
    ///     let x = level.dual(x, v);
    ///     let y = (x * x).sum_all(); // y = sum x^2
    ///     (y, level.tangent(y))
    /// });
    /// assert_eq!(y.value().item(), 5.0);
    /// assert_eq!(dy.value().item(), 2.0 * 1.0 * 1.0 + 2.0 * 2.0 * 0.5); // 2 x . v
    /// // The tangent is a node of the tape: differentiate it (reverse over forward).
    /// assert_eq!(dy.backward().wrt(x).to_vec(), vec![2.0, 1.0]); // d(2 x . v)/dx = 2 v
    /// ```
    pub fn forward_mode<'t, R>(&'t self, f: impl FnOnce(&DualLevel<'t, T>) -> R) -> R {
        let level = {
            let mut levels = self.levels.borrow_mut();
            levels.push(Level::default());
            levels.len() - 1
        };
        struct Close<'a, T: Float>(&'a Tape<T>, usize);
        impl<T: Float> Drop for Close<'_, T> {
            fn drop(&mut self) {
                if let Ok(mut levels) = self.0.levels.try_borrow_mut() {
                    levels.truncate(self.1);
                }
            }
        }
        let _close = Close(self, level);
        let _restore = Restore(&self.propagating, self.propagating.replace(level + 1));
        f(&DualLevel { tape: self, level })
    }

    /// The number of forward-mode levels open (0 outside [`forward_mode`](Tape::forward_mode)).
    pub fn open_levels(&self) -> usize {
        self.levels.borrow().len()
    }

    /// `apply_primitive` in forward mode: the same checks and forward, then the tangents. Kept
    /// out of line, so that the recording path of ordinary ops only pays the test of
    /// `propagating` (W4 measures it).
    #[track_caller]
    #[inline(never)]
    pub(crate) fn apply_primitive_with_tangents<const N: usize>(
        &self,
        op: Primitive<T>,
        inputs: [Var<'_, T>; N],
    ) -> Result<Var<'_, T>> {
        for input in &inputs {
            self.check_owns(op.kind().name(), input)?;
        }
        let value = {
            let nodes = self.nodes();
            let values = inputs.map(|v| &nodes[v.index as usize].value);
            op.forward(&values)?
        };
        self.push_op_with_tangents(op, &inputs.map(|v| v.index), value)
    }

    /// Records an op whose value is computed, then its tangent at each level it propagates to;
    /// if a tangent rule fails, nothing stays recorded.
    #[track_caller]
    pub(crate) fn push_op_with_tangents(
        &self,
        op: Primitive<T>,
        inputs: &[u32],
        value: Tensor<T>,
    ) -> Result<Var<'_, T>> {
        let guard = self.rollback_guard();
        let rule = op.clone();
        let output = {
            let mut nodes = self.nodes_mut();
            self.push_op(&mut nodes, op, inputs, value)?
        };
        self.propagate_tangents(&rule, inputs, output)?;
        Ok(guard.commit(output))
    }

    fn propagate_tangents(
        &self,
        op: &Primitive<T>,
        inputs: &[u32],
        output: Var<'_, T>,
    ) -> Result<()> {
        let input_vars: SmallVec<[Var<'_, T>; 2]> = inputs
            .iter()
            .map(|&index| Var { tape: self, index })
            .collect();
        for level in 0..self.propagating.get() {
            let mut unsupported = None;
            let tangents: SmallVec<[Option<Var<'_, T>>; 2]> = {
                let levels = self.levels.borrow();
                inputs
                    .iter()
                    .map(|&input| match levels[level].get(input) {
                        Slot::Zero => None,
                        Slot::Of(index) => Some(Var {
                            tape: self,
                            index: *index,
                        }),
                        Slot::Unsupported(name) => {
                            unsupported = Some(name.clone());
                            None
                        }
                    })
                    .collect()
            };
            let slot = if let Some(name) = unsupported {
                Slot::Unsupported(name)
            } else if tangents.iter().all(Option::is_none) {
                continue;
            } else {
                match self.within_level(level, || ops::tangent(op, &tangents, &input_vars, output))
                {
                    Ok(tangent) => Slot::Of(tangent.index),
                    Err(AutogradError::TangentUnsupported { op }) => Slot::Unsupported(op),
                    Err(error) => return Err(error),
                }
            };
            self.levels.borrow_mut()[level].set(output.index, slot);
        }
        Ok(())
    }

    /// Runs `f`, which computes level `level`'s tangent: the nodes it records get tangents for
    /// the levels outside this one only, and their non-finite values are not reported as
    /// forward anomalies of the op.
    fn within_level<R>(&self, level: usize, f: impl FnOnce() -> R) -> R {
        let _restore = Restore(&self.propagating, self.propagating.replace(level));
        self.recording_gradients(f)
    }
}

/// An open forward-mode level (see [`Tape::forward_mode`]): attach tangents with
/// [`dual`](DualLevel::dual), read them with [`tangent`](DualLevel::tangent).
pub struct DualLevel<'t, T: Float> {
    tape: &'t Tape<T>,
    level: usize,
}

impl<T: Float> std::fmt::Debug for DualLevel<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DualLevel")
            .field("level", &self.level)
            .finish()
    }
}

impl<'t, T: Float> DualLevel<'t, T> {
    /// `primal` with `tangent` attached at this level (PyTorch's `make_dual`): a new node with
    /// `primal`'s value (a view, no copy) whose tangent is `tangent`. Ops on the result carry
    /// their tangents. Panics if the shapes differ or a Var is from another tape.
    #[track_caller]
    pub fn dual(&self, primal: Var<'t, T>, tangent: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_dual(primal, tangent))
    }

    /// Fallible [`dual`](DualLevel::dual): [`AutogradError::Transform`] if the shapes differ.
    #[track_caller]
    pub fn try_dual(&self, primal: Var<'t, T>, tangent: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.check_owns("dual", &primal)?;
        self.tape.check_owns("dual", &tangent)?;
        let (shape, tangent_shape) = (primal.shape(), tangent.shape());
        if shape != tangent_shape {
            return Err(AutogradError::Transform {
                op: "dual",
                message: format!(
                    "the tangent has shape {tangent_shape}, the primal {shape}; they must be equal"
                ),
            });
        }
        // A view of the primal, so that earlier uses of `primal` keep their own tangents.
        let dual = primal.try_reshape(&shape)?;
        self.tape.levels.borrow_mut()[self.level].set(dual.index, Slot::Of(tangent.index));
        Ok(dual)
    }

    /// The tangent of `var` at this level (PyTorch's `unpack_dual(var).tangent`): zeros of its
    /// shape if it does not depend on any dual of this level. Panics where
    /// [`try_tangent`](DualLevel::try_tangent) errs.
    #[track_caller]
    pub fn tangent(&self, var: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_tangent(var))
    }

    /// Fallible [`tangent`](DualLevel::tangent): [`AutogradError::TangentUnsupported`] naming
    /// the op if `var` depends on this level's duals through an op without a tangent rule.
    pub fn try_tangent(&self, var: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.check_owns("tangent", &var)?;
        let slot = self.tape.levels.borrow()[self.level].get(var.index).clone();
        match slot {
            Slot::Of(index) => Ok(Var {
                tape: self.tape,
                index,
            }),
            Slot::Zero => Ok(self
                .tape
                .constant(Tensor::scalar(T::ZERO).broadcast_to(var.shape()))),
            Slot::Unsupported(op) => Err(AutogradError::TangentUnsupported { op }),
        }
    }
}
