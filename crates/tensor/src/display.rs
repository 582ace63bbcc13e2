//! `Display` and `Debug` for tensors, in the style of NumPy and PyTorch: nested brackets,
//! aligned columns, shape and dtype, and `...` in place of the middle of long axes.

use std::fmt;

use crate::float::Float;
use crate::tensor::Tensor;

/// Tensors with more elements than this are summarised.
const SUMMARY_THRESHOLD: usize = 1000;
/// Elements shown at each end of a summarised axis.
const EDGE_ITEMS: usize = 3;

/// How the numbers of one tensor are written: all in the same style and width.
#[derive(Clone, Copy)]
enum Style {
    /// Integral values: `3.`
    Integer,
    /// `0.1235`
    Fixed,
    /// `1.2346e-5`
    Scientific,
}

struct Printer<'a, T: Float> {
    tensor: &'a Tensor<T>,
    summarise: bool,
    style: Style,
    width: usize,
}

impl<T: Float> Printer<'_, T> {
    fn format(&self, value: T) -> String {
        let v = value.to_f64();
        if !v.is_finite() {
            return format!("{v}");
        }
        match self.style {
            Style::Integer => format!("{v:.0}."),
            Style::Fixed => format!("{v:.4}"),
            Style::Scientific => format!("{v:.4e}"),
        }
    }

    /// Indices shown along an axis of size `n`: all, or both ends with `None` for the gap.
    fn shown(&self, n: usize) -> Vec<Option<usize>> {
        if self.summarise && n > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain([None])
                .chain((n - EDGE_ITEMS..n).map(Some))
                .collect()
        } else {
            (0..n).map(Some).collect()
        }
    }

    fn write_axis(
        &self,
        f: &mut fmt::Formatter<'_>,
        index: &mut Vec<usize>,
        indent: usize,
    ) -> fmt::Result {
        let axis = index.len();
        let dims = self.tensor.dims();
        f.write_str("[")?;
        let entries = self.shown(dims[axis]);
        let last_axis = axis + 1 == dims.len();
        for (position, entry) in entries.iter().enumerate() {
            if position > 0 {
                if last_axis {
                    f.write_str(", ")?;
                } else {
                    f.write_str(",")?;
                    for _ in 0..(dims.len() - axis - 1) {
                        f.write_str("\n")?;
                    }
                    write!(f, "{:indent$}", "", indent = indent + axis + 1)?;
                }
            }
            match entry {
                None => f.write_str("...")?,
                Some(i) => {
                    index.push(*i);
                    if last_axis {
                        write!(
                            f,
                            "{:>width$}",
                            self.format(self.tensor.get(index)),
                            width = self.width
                        )?;
                    } else {
                        self.write_axis(f, index, indent)?;
                    }
                    index.pop();
                }
            }
        }
        f.write_str("]")
    }

    /// The shown values, for choosing the style and column width.
    fn shown_values(&self) -> Vec<T> {
        let mut values = Vec::new();
        let mut index = Vec::new();
        self.collect(&mut index, &mut values);
        values
    }

    fn collect(&self, index: &mut Vec<usize>, values: &mut Vec<T>) {
        if index.len() == self.tensor.rank() {
            values.push(self.tensor.get(index));
            return;
        }
        for i in self
            .shown(self.tensor.dims()[index.len()])
            .into_iter()
            .flatten()
        {
            index.push(i);
            self.collect(index, values);
            index.pop();
        }
    }
}

fn choose_style<T: Float>(values: &[T]) -> Style {
    let finite: Vec<f64> = values
        .iter()
        .map(|v| v.to_f64())
        .filter(|v| v.is_finite())
        .collect();
    let largest = finite.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let smallest_nonzero = finite
        .iter()
        .filter(|v| **v != 0.0)
        .fold(f64::INFINITY, |m, v| m.min(v.abs()));
    if finite.iter().all(|v| v.fract() == 0.0) && largest < 1e8 {
        Style::Integer
    } else if largest >= 1e8 || smallest_nonzero < 1e-4 {
        Style::Scientific
    } else {
        Style::Fixed
    }
}

impl<T: Float> fmt::Display for Tensor<T> {
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0_f32, 2.5, -3.0, 4.0], [2, 2]).unwrap();
    /// assert_eq!(
    ///     t.to_string(),
    ///     "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], shape=[2, 2], dtype=f32)"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer {
            tensor: self,
            summarise: self.numel() > SUMMARY_THRESHOLD,
            style: Style::Fixed,
            width: 0,
        };
        let values = printer.shown_values();
        printer.style = choose_style(&values);
        printer.width = values
            .iter()
            .map(|&v| printer.format(v).len())
            .max()
            .unwrap_or(0);
        f.write_str("tensor(")?;
        if self.rank() == 0 {
            return write!(
                f,
                "{}, dtype={})",
                printer.format(self.item()),
                self.dtype()
            );
        }
        if self.numel() == 0 {
            f.write_str("[]")?;
        } else {
            printer.write_axis(f, &mut Vec::new(), "tensor(".len())?;
        }
        write!(f, ", shape={}, dtype={})", self.shape(), self.dtype())
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_integers_and_scientific_values() {
        assert_eq!(Tensor::scalar(2.0_f64).to_string(), "tensor(2., dtype=f64)");
        let ints = Tensor::from_vec(vec![1.0_f32, -20.0, 3.0], [3]).unwrap();
        assert_eq!(
            ints.to_string(),
            "tensor([  1., -20.,   3.], shape=[3], dtype=f32)"
        );
        let tiny = Tensor::from_vec(vec![1e-6_f64, 0.5], [2]).unwrap();
        assert_eq!(
            tiny.to_string(),
            "tensor([1.0000e-6, 5.0000e-1], shape=[2], dtype=f64)"
        );
        assert_eq!(
            Tensor::<f32>::zeros([0, 2]).to_string(),
            "tensor([], shape=[0, 2], dtype=f32)"
        );
    }

    #[test]
    fn large_tensors_are_summarised_with_ellipses() {
        let big = Tensor::<f32>::arange(0.0, 2000.0, 1.0)
            .unwrap()
            .reshape([2, 1000]);
        let text = big.to_string();
        assert!(
            text.contains("[   0.,    1.,    2., ...,  997.,  998.,  999.]"),
            "{text}"
        );
        assert!(text.ends_with("shape=[2, 1000], dtype=f32)"));
        assert!(text.len() < 200);
    }

    #[test]
    fn rank_three_separates_matrices_with_a_blank_line() {
        let t = Tensor::<f64>::arange(0.0, 8.0, 1.0)
            .unwrap()
            .reshape([2, 2, 2]);
        assert_eq!(
            t.to_string(),
            "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]], shape=[2, 2, 2], dtype=f64)"
        );
    }
}
