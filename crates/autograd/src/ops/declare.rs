//! The `primitives!` macro: from the one table in `ops/mod.rs`, where each primitive is
//! declared once (its name, parameters, arity, forward, backward rule and documentation row),
//! it generates everything that used to be written in four lists:
//!
//! - the `Primitive` enum, whose variants carry the parameters inline;
//! - `PrimitiveKind`, with `ALL`, `name`, `arity` and the documentation row;
//! - `Primitive::{kind, name, input_indices, forward}`, the last running the table's forward;
//! - `backward`, the dispatch from a node to its rule, with the arity fixed by the rule's array
//!   types (a rule of the wrong arity does not compile);
//! - `for_each_primitive!`, which hands the list of primitives to another macro (the test suite
//!   generates one test module per primitive from it).
//!
//! A primitive without a rule, or with a rule of the wrong arity, is a compile error; one
//! without a registry entry is too (`testing::registry` matches on every kind).

/// See the module documentation. The first argument is a `$` token, which lets this macro
/// define `for_each_primitive!` with metavariables of its own.
macro_rules! primitives {
    (
        ($d:tt)
        $(
            $(#[doc = $doc:literal])*
            $variant:ident $snake:ident { $($field:ident : $field_type:ty),* } [$arity:literal] {
                forward: $forward:path,
                backward: $backward:path,
                tangent: $tangent:path,
                docs: [$doc_forward:literal, $doc_gradient:literal, $doc_tangent:literal, $doc_convention:literal, $doc_file:literal] $(,)?
            }
        )*
    ) => {
        /// One primitive op with its parameters (inline, so a node stays small).
        #[derive(Clone)]
        pub enum Primitive<T: Float> {
            $(
                $(#[doc = $doc])*
                $variant { $($field: $field_type),* },
            )*
            /// A user-defined op (any number of inputs).
            Custom(Box<CustomNode<T>>),
        }

        /// The kind of a primitive op, without its parameters: for inspection, anomaly reports
        /// and the gradcheck registry ([`PrimitiveKind::ALL`] lists every one).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum PrimitiveKind {
            $(
                $(#[doc = $doc])*
                $variant,
            )*
            /// A user-defined op.
            Custom,
        }

        impl PrimitiveKind {
            /// Every primitive kind, in declaration order.
            pub const ALL: &'static [PrimitiveKind] = &[$(PrimitiveKind::$variant,)* PrimitiveKind::Custom];

            /// The op's name as it appears in messages, tests and `docs/derivatives.md`.
            pub fn name(self) -> &'static str {
                match self {
                    $(PrimitiveKind::$variant => stringify!($snake),)*
                    PrimitiveKind::Custom => "custom",
                }
            }

            /// Number of inputs (`None` for custom ops, which take any number).
            pub fn arity(self) -> Option<usize> {
                match self {
                    $(PrimitiveKind::$variant => Some($arity),)*
                    PrimitiveKind::Custom => None,
                }
            }

            /// The op's row of `docs/derivatives.md`: forward value, gradient for each input,
            /// tangent (forward mode), kink or special convention, and the family file holding
            /// its rules.
            pub fn derivative_row(self) -> [&'static str; 5] {
                match self {
                    $(PrimitiveKind::$variant => [$doc_forward, $doc_gradient, $doc_tangent, $doc_convention, $doc_file],)*
                    PrimitiveKind::Custom => [
                        "the user's forward",
                        "the user's rule; count and shapes are checked",
                        "the user's `CustomOp::tangent`; without one, a named error",
                        "higher order only with `backward_on_vars`",
                        "custom.rs",
                    ],
                }
            }
        }

        impl<T: Float> Primitive<T> {
            /// The kind, without parameters.
            pub(crate) fn kind(&self) -> PrimitiveKind {
                match self {
                    $(Primitive::$variant { .. } => PrimitiveKind::$variant,)*
                    Primitive::Custom(_) => PrimitiveKind::Custom,
                }
            }

            /// Indices of the input nodes, given the node's two inline input slots.
            #[inline]
            pub(crate) fn input_indices<'a>(&'a self, slots: &'a [u32; 2]) -> &'a [u32] {
                match self {
                    $(Primitive::$variant { .. } => &slots[..$arity],)*
                    Primitive::Custom(node) => &node.inputs,
                }
            }

            /// The op's value on tensors, from the table's forward (a custom op runs its own).
            /// Inlined into each op's recording, where the variant is known and the match folds.
            #[inline(always)]
            pub(crate) fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
                match self {
                    $(
                        Primitive::$variant { $($field),* } => {
                            Ok($forward(fixed::<_, $arity, T>(inputs, self)? $(, $field)*)?)
                        }
                    )*
                    Primitive::Custom(node) => node.op.forward(inputs),
                }
            }
        }

        /// The backward table's dispatch: the gradients of a node's inputs from the gradient of
        /// its output, each handed to `emit(input position, gradient)` as soon as it exists.
        ///
        /// `grad` is moved in, so a rule may transform it in place. `inputs` and `output` are
        /// the node's forward values as operands; `needs[i]` says whether input `i` wants a
        /// gradient, so rules skip work nobody reads. Every rule returns one `Option` per input
        /// in a fixed-size array, so its arity is checked by the compiler.
        // Inlined into the two sweeps, so that the per-node dispatch costs what one `match`
        // costs (W4 measures it).
        #[inline(always)]
        pub(crate) fn backward<T: Float, O: Operand<T>>(
            op: &Primitive<T>,
            grad: O,
            inputs: &[&O],
            output: &O,
            needs: &[bool],
            mut emit: impl FnMut(usize, O) -> Result<()>,
        ) -> Result<()> {
            if !needs.iter().any(|&n| n) {
                return Ok(());
            }
            match op {
                $(
                    Primitive::$variant { $($field),* } => {
                        let gradients: [Option<O>; $arity] = $backward(
                            grad,
                            node_inputs::<_, $arity>(inputs),
                            output,
                            node_inputs::<_, $arity>(needs)
                            $(, $field)*
                        );
                        HandOut::hand_out(gradients, &mut emit)
                    }
                )*
                Primitive::Custom(node) => {
                    let gradients = O::custom_backward(&*node.op, &grad, inputs, output, needs)?;
                    hand_out_all(gradients, &mut emit)
                }
            }
        }

        /// The tangent table's dispatch (forward mode): the tangent of a node's output from the
        /// tangents of its inputs (`None` for an input without one; at least one is `Some`),
        /// evaluated on Vars so that the tangent is itself recorded and can be differentiated
        /// again, in either mode. A custom op runs its own tangent rule, if it has one.
        pub(crate) fn tangent<'t, T: Float>(
            op: &Primitive<T>,
            tangents: &[Option<Var<'t, T>>],
            inputs: &[Var<'t, T>],
            output: Var<'t, T>,
        ) -> Result<Var<'t, T>> {
            match op {
                $(
                    Primitive::$variant { $($field),* } => {
                        let inputs: [Var<'t, T>; $arity] = node_inputs(inputs);
                        Ok($tangent(node_inputs(tangents), inputs.each_ref(), &output $(, $field)*))
                    }
                )*
                Primitive::Custom(node) => crate::custom::custom_tangent(&*node.op, tangents, inputs, output),
            }
        }

        /// Calls `$m! { add sub ... custom }` with every primitive's name: for generating code
        /// per primitive elsewhere (the test suite makes one test module per primitive).
        #[doc(hidden)]
        #[macro_export]
        macro_rules! for_each_primitive {
            ($d m:ident) => {
                $d m! { $($snake)* custom }
            };
        }
    };
}
