//! A short tour of the library, until the worked examples land.

use autograd::Tape;
use tensor::Tensor;

fn main() {
    let x = Tensor::from_vec(vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).expect("six values");
    println!("x = {x}");
    println!("x^T (a view, no copy) = {}", x.t());
    println!("x @ x^T = {}", x.matmul(&x.t()));
    println!("row sums = {}", x.sum(&[1], false));

    let tape = Tape::<f32>::new();
    let w = tape.leaf(Tensor::full([3, 2], 0.1));
    let input = tape.constant(x);
    let loss = input.matmul(w).tanh().square().mean_all();
    let grads = loss.backward();
    println!("loss = {}", loss.value());
    println!("d loss / d w = {}", grads.wrt(w));
}
