//! Tape::checkpoint: the same gradients as the plain segment, bit for bit; what it does not
//! support is a named error.

use autograd::gradcheck::{GradcheckOptions, gradcheck};
use autograd::{AutogradError, Tape, jvp};
use tensor::Tensor;

fn block<'s>(v: &[autograd::Var<'s, f64>]) -> autograd::Result<autograd::Var<'s, f64>> {
    let hidden = v[0].try_matmul(v[1])?.try_tanh()?;
    Ok((hidden * hidden).sum(&[1], false).exp())
}

fn inputs() -> [Tensor<f64>; 2] {
    [
        Tensor::from_fn([3, 4], |i| (i as f64 * 0.37).sin()),
        Tensor::from_fn([4, 2], |i| (i as f64 * 0.91).cos()),
    ]
}

#[test]
fn a_checkpointed_segment_has_the_plain_segments_values_and_gradients_bit_for_bit() {
    let [x, w] = inputs();
    let tape = Tape::new();
    let (x, w) = (tape.leaf(x), tape.leaf(w));
    let plain = block(&[x, w]).unwrap().sum_all();
    let nodes = tape.len();
    let checkpointed = tape.checkpoint(&[x, w], block).unwrap().sum_all();
    // One node for the segment (and one for the sum), whatever the segment's length.
    assert_eq!(tape.len(), nodes + 2);
    assert_eq!(plain.value(), checkpointed.value());
    let (a, b) = (plain.backward(), checkpointed.backward());
    assert_eq!(a.wrt(x), b.wrt(x));
    assert_eq!(a.wrt(w), b.wrt(w));
    gradcheck(
        |v| v[0].tape().checkpoint(v, block).unwrap(),
        &inputs(),
        &GradcheckOptions::strict("checkpoint"),
    )
    .unwrap();
}

#[test]
fn higher_order_and_forward_mode_through_a_checkpoint_are_named_errors() {
    let tape = Tape::new();
    let [x, w] = inputs().map(|t| tape.leaf(t));
    let y = tape.checkpoint(&[x, w], block).unwrap().sum_all();
    let error = y.try_backward_create_graph().unwrap_err();
    assert!(
        matches!(error, AutogradError::HigherOrderUnsupported { .. }),
        "{error}"
    );
    let error = jvp(
        |v| v[0].tape().checkpoint(v, block).unwrap(),
        &inputs(),
        &inputs().map(|t| Tensor::ones(t.shape().clone())),
    )
    .unwrap_err();
    assert_eq!(
        error,
        AutogradError::TangentUnsupported {
            op: "custom op 'checkpoint'".to_string()
        }
    );
}

#[test]
fn a_failing_segment_returns_its_error_and_records_nothing() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::ones([3, 4]));
    let before = tape.len();
    let error = tape
        .checkpoint(&[x, x], |v| v[0].try_matmul(v[1]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "matmul: inner dimensions differ: [3, 4] x [3, 4]"
    );
    assert_eq!(tape.len(), before);
}
