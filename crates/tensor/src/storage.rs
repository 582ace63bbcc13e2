//! Tensor buffers, and the per-thread cache that recycles large ones.
//!
//! Why a cache: a training step allocates and frees the same large buffers every time
//! (activations, gradients, a 784 x 512 weight gradient). glibc hands buffers that size back to
//! the operating system on free, so the next step page-faults every one of them in again and the
//! kernel zeroes each page: measured at 24,720 page faults and about a fifth of W1's CPU time.
//! When a tensor that is the sole owner of a large buffer is dropped, the buffer goes into a
//! small cache on its thread instead, and the next request for a buffer of exactly that length
//! takes it back.
//!
//! Small buffers (up to [`SMALL_MAX_LEN`] elements) are recycled too, through per-length free
//! lists: a graph of small tensors (W4: 3,000 ops on 16 elements) otherwise spends a quarter of
//! its instructions in malloc and free, inflated by glibc consolidating thousands of freed small
//! chunks every time a larger request arrives.
//!
//! The cache changes no result: buffers handed out for overwriting are written in full by their
//! kernel before anything reads them, and buffers handed out zeroed are zeroed. It holds at most
//! [`CACHE_LIMIT_BYTES`] of large buffers and [`SMALL_CACHE_LIMIT_BYTES`] of small ones per
//! element type and thread.

use std::sync::Arc;

use crate::float::Float;

/// Buffers shorter than this are left to the allocator, which serves them from its free lists
/// without page faults (and the check stays off the per-op path of small tensors).
pub(crate) const RECYCLED_MIN_LEN: usize = 8192;

/// Upper bound on the bytes of large buffers one thread keeps cached per element type.
pub const CACHE_LIMIT_BYTES: usize = 256 << 20;

/// Buffers up to this many elements are recycled through per-length free lists.
pub const SMALL_MAX_LEN: usize = 256;

/// Upper bound on the bytes of small buffers one thread keeps cached per element type.
pub const SMALL_CACHE_LIMIT_BYTES: usize = 16 << 20;

/// Recycled buffers of one element type on one thread.
#[doc(hidden)]
#[derive(Debug)]
pub struct BufferCache<T> {
    buffers: Vec<Arc<[T]>>,
    bytes: usize,
    /// `small[n - 1]`: free buffers of `n` elements.
    small: Vec<Vec<Arc<[T]>>>,
    small_bytes: usize,
    /// Left in a dropped tensor in place of its recycled buffer (a clone: no allocation).
    empty: Arc<[T]>,
}

impl<T> Default for BufferCache<T> {
    fn default() -> Self {
        BufferCache {
            buffers: Vec::new(),
            bytes: 0,
            small: Vec::new(),
            small_bytes: 0,
            empty: Arc::from(Vec::new()),
        }
    }
}

/// Bytes a small buffer of `len` elements occupies, counting the reference counts.
fn small_footprint<T>(len: usize) -> usize {
    len * std::mem::size_of::<T>() + 2 * std::mem::size_of::<usize>()
}

impl<T> BufferCache<T> {
    fn take_small(&mut self, len: usize) -> Option<Arc<[T]>> {
        let buffer = self.small.get_mut(len.checked_sub(1)?)?.pop()?;
        self.small_bytes -= small_footprint::<T>(len);
        Some(buffer)
    }

    fn keep_small(&mut self, buffer: Arc<[T]>) {
        let len = buffer.len();
        let footprint = small_footprint::<T>(len);
        if self.small_bytes + footprint > SMALL_CACHE_LIMIT_BYTES {
            return;
        }
        if self.small.len() < len {
            self.small.resize_with(len, Vec::new);
        }
        self.small_bytes += footprint;
        self.small[len - 1].push(buffer);
    }

    fn take(&mut self, len: usize) -> Option<Arc<[T]>> {
        let position = self.buffers.iter().rposition(|b| b.len() == len)?;
        let buffer = self.buffers.swap_remove(position);
        self.bytes -= len * std::mem::size_of::<T>();
        Some(buffer)
    }

    fn keep(&mut self, buffer: Arc<[T]>) {
        let bytes = buffer.len() * std::mem::size_of::<T>();
        if bytes > CACHE_LIMIT_BYTES {
            return;
        }
        // Evict the oldest until the newest fits.
        while self.bytes + bytes > CACHE_LIMIT_BYTES {
            let oldest = self.buffers.remove(0);
            self.bytes -= oldest.len() * std::mem::size_of::<T>();
        }
        self.bytes += bytes;
        self.buffers.push(buffer);
    }
}

/// A recycled buffer of exactly `len` elements holding stale values, if one is cached: the
/// caller overwrites every element (or falls back to allocating when there is none).
#[inline]
pub(crate) fn recycled<T: Float>(len: usize) -> Option<Arc<[T]>> {
    if len == 0 || (len > SMALL_MAX_LEN && len < RECYCLED_MIN_LEN) {
        return None;
    }
    T::with_buffer_cache(|cache| {
        if len <= SMALL_MAX_LEN {
            cache.take_small(len)
        } else {
            cache.take(len)
        }
    })
    .flatten()
}

/// A buffer of `len` elements whose every element the caller will overwrite before reading:
/// recycled (holding stale values) when possible, fresh and zeroed otherwise.
pub(crate) fn for_overwrite<T: Float>(len: usize) -> Arc<[T]> {
    recycled(len).unwrap_or_else(|| std::iter::repeat_n(T::ZERO, len).collect())
}

/// A zeroed buffer of `len` elements.
pub(crate) fn zeroed<T: Float>(len: usize) -> Arc<[T]> {
    filled(len, T::ZERO)
}

/// A buffer of `len` copies of `value`.
pub(crate) fn filled<T: Float>(len: usize, value: T) -> Arc<[T]> {
    if len >= RECYCLED_MIN_LEN {
        if let Some(mut buffer) = T::with_buffer_cache(|cache| cache.take(len)).flatten() {
            Arc::get_mut(&mut buffer)
                .expect("cached buffers have one owner")
                .fill(value);
            return buffer;
        }
    }
    std::iter::repeat_n(value, len).collect()
}

/// Moves a buffer this tensor owns alone into its thread's cache, if it is small or large
/// enough to be recycled (called on drop).
#[inline]
pub(crate) fn recycle<T: Float>(buffer: &mut Arc<[T]>) {
    let len = buffer.len();
    if len == 0 || (len > SMALL_MAX_LEN && len < RECYCLED_MIN_LEN) || Arc::get_mut(buffer).is_none()
    {
        return;
    }
    T::with_buffer_cache(|cache| {
        let owned = std::mem::replace(buffer, cache.empty.clone());
        if len <= SMALL_MAX_LEN {
            cache.keep_small(owned)
        } else {
            cache.keep(owned)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn a_dropped_large_buffer_is_reused_and_a_shared_one_is_not() {
        let len = RECYCLED_MIN_LEN + 17;
        let first = Tensor::<f32>::zeros([len]);
        let address = first.as_contiguous_slice().unwrap().as_ptr();
        drop(first);
        let second = Tensor::<f32>::ones([len]);
        assert_eq!(second.as_contiguous_slice().unwrap().as_ptr(), address);
        assert!(
            second.to_vec().iter().all(|&x| x == 1.0),
            "a recycled buffer is refilled"
        );
        // A buffer still shared by another tensor stays where it is.
        let keep = second.clone();
        drop(second);
        let third = Tensor::<f32>::zeros([len]);
        assert_ne!(third.as_contiguous_slice().unwrap().as_ptr(), address);
        assert_eq!(keep.to_vec()[0], 1.0);
    }

    #[test]
    fn small_buffers_are_recycled_per_length() {
        let first = Tensor::<f32>::full([5], 2.0);
        let address = first.as_contiguous_slice().unwrap().as_ptr();
        drop(first);
        // Another length does not take it; the same length does, and is fully rewritten.
        let other = Tensor::<f32>::full([6], 1.0);
        assert_ne!(other.as_contiguous_slice().unwrap().as_ptr(), address);
        let same = Tensor::<f32>::from_vec(vec![1.0; 5], [5])
            .unwrap()
            .map(|x| x * 3.0);
        assert_eq!(same.as_contiguous_slice().unwrap().as_ptr(), address);
        assert_eq!(same.to_vec(), vec![3.0; 5]);
    }

    #[test]
    fn recycled_buffers_never_leak_stale_values() {
        let len = RECYCLED_MIN_LEN * 2;
        drop(Tensor::<f64>::full([len], 7.0));
        assert!(
            Tensor::<f64>::zeros([len])
                .to_vec()
                .iter()
                .all(|&x| x == 0.0)
        );
        drop(Tensor::<f64>::full([len], 7.0));
        let a = Tensor::<f64>::ones([2, len / 2]);
        assert!(a.t().contiguous().to_vec().iter().all(|&x| x == 1.0));
        drop(Tensor::<f64>::full([len], 7.0));
        assert!(Tensor::<f64>::eye(len.isqrt()).sum_all().item() == len.isqrt() as f64);
    }
}
