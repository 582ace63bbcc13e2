//! The one place this workspace uses `unsafe`: the call into matrixmultiply.
//!
//! matrixmultiply's `sgemm`/`dgemm` take raw pointers plus strides, which is what lets a
//! transposed or sliced view reach the kernel without a copy (W5t in the benchmarks). The best
//! safe loop (i-k-j order, its inner loop vectorised) reaches 27 GFLOP/s on a 1024 x 1024 f32
//! product on our benchmark machine, against 217 GFLOP/s for the packed kernel (W5,
//! `docs/benchmarks.md`): eight times slower. So the call stays, behind the bounds checks below.
//!
//! Safety argument, in one place: [`MatrixView`] can only be built by [`MatrixView::new`], which
//! proves that every element the kernel can read, `offset + i * row_stride + j * col_stride` for
//! `i < rows`, `j < cols`, lies inside the borrowed slice. The output is a `&mut [T]` of exactly
//! `rows * cols` elements written row-major, so it cannot alias the inputs (the borrow checker
//! forbids it) and every write is in bounds. Every product and sum in that proof is checked:
//! `rows * cols` is computed with `checked_mul`, because a wrapped product (274,177 x
//! 67,280,421,310,721 is 2^64 + 1) would let a one-element output pass for a huge matrix.
//!
//! The module is private to the crate: [`Tensor::matmul`](crate::Tensor::matmul) is the only
//! way in, and it builds the views from layouts that are already known to be in bounds.
#![allow(unsafe_code)]

/// A read-only strided matrix inside a borrowed slice, checked to lie within it.
// `pub` inside a private module: nameable by the sealed `Float` machinery, unreachable from
// outside the crate.
#[derive(Clone, Copy, Debug)]
pub struct MatrixView<'a, T> {
    data: &'a [T],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatrixView<'a, T> {
    /// Returns `None` if some element of the `rows x cols` matrix would fall outside `data`.
    pub(crate) fn new(
        data: &'a [T],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Option<Self> {
        if rows == 0 || cols == 0 {
            // An empty view reads nothing: its strides (which may be anything, an empty axis's
            // stride means nothing) are replaced by 0 so they are always valid isize values.
            return Some(MatrixView {
                data,
                offset: 0,
                rows,
                cols,
                row_stride: 0,
                col_stride: 0,
            });
        }
        // A size-1 axis's stride is never used to step, and may be anything a layout allows:
        // it is replaced by 0 (found by fuzzing: a valid [1, n] view with a huge row stride).
        let row_stride = if rows == 1 { 0 } else { row_stride };
        let col_stride = if cols == 1 { 0 } else { col_stride };
        // Strides are passed to matrixmultiply as isize.
        isize::try_from(row_stride).ok()?;
        isize::try_from(col_stride).ok()?;
        let last = (rows - 1)
            .checked_mul(row_stride)?
            .checked_add((cols - 1).checked_mul(col_stride)?)?
            .checked_add(offset)?;
        if last >= data.len() {
            return None;
        }
        Some(MatrixView {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Number of rows.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    #[cfg(test)]
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    fn start_pointer(&self) -> *const T {
        // `wrapping_add` keeps this safe even for an empty view whose offset is past the end;
        // the kernel never dereferences it in that case.
        self.data.as_ptr().wrapping_add(self.offset)
    }
}

macro_rules! checked_gemm {
    ($name:ident, $t:ty, $kernel:path) => {
        /// C = alpha * A B + beta * C with C row-major and contiguous.
        ///
        /// Panics if the shapes disagree (or `m * n` overflows); callers check shapes first and
        /// report them by name.
        pub(crate) fn $name(
            alpha: $t,
            a: MatrixView<'_, $t>,
            b: MatrixView<'_, $t>,
            beta: $t,
            c: &mut [$t],
        ) {
            let (m, k, n) = (a.rows, a.cols, b.cols);
            assert_eq!(b.rows, k, "gemm: inner dimensions differ");
            assert_eq!(
                Some(c.len()),
                m.checked_mul(n),
                "gemm: output buffer has the wrong length for a {m} x {n} product"
            );
            if m == 0 || n == 0 {
                return;
            }
            // SAFETY: `a` and `b` were bounds-checked by `MatrixView::new` for exactly these
            // rows, columns and strides; `c` holds m * n elements written with row stride n and
            // column stride 1, all in bounds; `c` is a unique borrow, so it aliases neither input.
            unsafe {
                $kernel(
                    m,
                    k,
                    n,
                    alpha,
                    a.start_pointer(),
                    a.row_stride as isize,
                    a.col_stride as isize,
                    b.start_pointer(),
                    b.row_stride as isize,
                    b.col_stride as isize,
                    beta,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
    };
}

checked_gemm!(sgemm, f32, matrixmultiply::sgemm);
checked_gemm!(dgemm, f64, matrixmultiply::dgemm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_outside_the_slice_is_refused() {
        let data = [0.0_f32; 6];
        assert!(MatrixView::new(&data, 0, 2, 3, 3, 1).is_some());
        assert!(MatrixView::new(&data, 1, 2, 3, 3, 1).is_none());
        assert!(MatrixView::new(&data, 0, 3, 3, 3, 1).is_none());
        assert!(MatrixView::new(&data, 100, 0, 3, 3, 1).is_some());
    }

    #[test]
    #[should_panic(expected = "gemm: output buffer has the wrong length")]
    fn an_output_length_that_only_matches_after_overflow_is_refused() {
        // 274,177 x 67,280,421,310,721 = 2^64 + 1, which wraps to 1 in release builds: before the
        // check was made with checked_mul, this product wrote far past the one-element output
        // (valgrind: invalid write).
        let (rows, cols) = (274_177_usize, 67_280_421_310_721_usize);
        assert_eq!(rows.wrapping_mul(cols), 1);
        let one = [1.0_f32];
        let a = MatrixView::new(&one, 0, rows, 1, 0, 0).unwrap();
        let b = MatrixView::new(&one, 0, 1, cols, 0, 0).unwrap();
        let mut c = [0.0_f32; 1];
        sgemm(1.0, a, b, 0.0, &mut c);
    }

    #[test]
    fn view_bounds_are_checked_without_overflow() {
        let data = [0.0_f64; 4];
        assert!(MatrixView::new(&data, 0, 2, usize::MAX, 1, 1).is_none());
        assert!(MatrixView::new(&data, usize::MAX, 1, 1, 0, 0).is_none());
        assert!(MatrixView::new(&data, 0, 3, 1, usize::MAX / 2 + 1, 0).is_none());
        // Strides beyond isize::MAX cannot be passed to the kernel; an empty view's, and a
        // size-1 axis's, can be anything (they are never stepped), and are normalised to 0.
        assert!(MatrixView::new(&data, 0, 2, 1, usize::MAX, 0).is_none());
        let row = MatrixView::new(&data, 0, 1, 2, usize::MAX, 1).unwrap();
        assert_eq!((row.row_stride, row.col_stride), (0, 1));
        let empty = MatrixView::new(&data, 7, 4, 0, usize::MAX, usize::MAX).unwrap();
        assert_eq!(
            (empty.row_stride, empty.col_stride, empty.offset),
            (0, 0, 0)
        );
        let view = MatrixView::new(&data, 0, 2, 2, 2, 1).unwrap();
        assert_eq!((view.rows(), view.cols()), (2, 2));
    }

    #[test]
    fn gemm_with_transposed_strides_matches_hand_product() {
        // A = [[1, 2], [3, 4]] stored column-major, B = identity scaled by 2.
        let a_col_major = [1.0_f64, 3.0, 2.0, 4.0];
        let b = [2.0_f64, 0.0, 0.0, 2.0];
        let mut c = [0.0_f64; 4];
        let a = MatrixView::new(&a_col_major, 0, 2, 2, 1, 2).unwrap();
        let b = MatrixView::new(&b, 0, 2, 2, 2, 1).unwrap();
        dgemm(1.0, a, b, 0.0, &mut c);
        assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
    }
}
