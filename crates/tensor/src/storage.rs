//! Tensor buffers and their per-thread cache; the docs are on [`cached_bytes`].

use std::sync::Arc;

use crate::error::{Result, TensorError};
use crate::float::Float;

/// Buffers of up to this many elements have directly indexed free lists.
pub const DIRECT_MAX_LEN: usize = 4096;

/// Upper bound on the memory (as the allocator holds it) of cached buffers longer than
/// [`DIRECT_MAX_LEN`] elements, per element type and thread.
pub const CACHE_LIMIT_BYTES: usize = 128 << 20;

/// Upper bound on the memory (as the allocator holds it) of cached buffers of at most
/// [`DIRECT_MAX_LEN`] elements, per element type and thread.
pub const SMALL_CACHE_LIMIT_BYTES: usize = 8 << 20;

/// The memory a buffer of `len` elements really occupies: the `Arc` header (two counts) and the
/// elements, in glibc's chunk (an 8-byte header, 16-byte rounding, 32 bytes at least; requests of
/// 128 KiB and more are whole pages of their own), plus the 16-byte slot that lists it.
pub(crate) fn footprint<T>(len: usize) -> usize {
    let request = 2 * std::mem::size_of::<usize>() + len * std::mem::size_of::<T>();
    let chunk = if request >= 128 << 10 {
        (request + 16).next_multiple_of(4096)
    } else {
        (request + 8).next_multiple_of(16).max(32)
    };
    chunk + 2 * std::mem::size_of::<usize>()
}

/// Recycled buffers of one element type on one thread.
#[doc(hidden)]
#[derive(Debug)]
pub struct BufferCache<T> {
    /// `direct[n - 1]`: free buffers of `n` elements, for `n <= DIRECT_MAX_LEN`.
    direct: Vec<Vec<Arc<[T]>>>,
    direct_bytes: usize,
    /// Free buffers longer than `DIRECT_MAX_LEN`, one list per length, with the time of its last
    /// use (for eviction).
    large: Vec<LargeList<T>>,
    large_bytes: usize,
    clock: u64,
    /// Left in a dropped tensor in place of its recycled buffer (a clone: no allocation).
    empty: Arc<[T]>,
}

#[derive(Debug)]
struct LargeList<T> {
    len: usize,
    buffers: Vec<Arc<[T]>>,
    last_used: u64,
}

impl<T> Default for BufferCache<T> {
    fn default() -> Self {
        BufferCache {
            direct: Vec::new(),
            direct_bytes: 0,
            large: Vec::new(),
            large_bytes: 0,
            clock: 0,
            empty: Arc::from(Vec::new()),
        }
    }
}

impl<T> BufferCache<T> {
    fn take(&mut self, len: usize) -> Option<Arc<[T]>> {
        if len <= DIRECT_MAX_LEN {
            let buffer = self.direct.get_mut(len.checked_sub(1)?)?.pop()?;
            self.direct_bytes -= footprint::<T>(len);
            return Some(buffer);
        }
        self.clock += 1;
        let list = self.large.iter_mut().find(|l| l.len == len)?;
        list.last_used = self.clock;
        let buffer = list.buffers.pop()?;
        self.large_bytes -= footprint::<T>(len);
        Some(buffer)
    }

    /// Keeps `buffer` for reuse, or hands it back (to be freed) when the cache is full.
    fn keep(&mut self, buffer: Arc<[T]>) -> Option<Arc<[T]>> {
        let len = buffer.len();
        let size = footprint::<T>(len);
        if len <= DIRECT_MAX_LEN {
            if self.direct_bytes + size > SMALL_CACHE_LIMIT_BYTES {
                return Some(buffer);
            }
            self.direct
                .resize_with(self.direct.len().max(len), Vec::new);
            self.direct_bytes += size;
            self.direct[len - 1].push(buffer);
            return None;
        }
        if size > CACHE_LIMIT_BYTES {
            return Some(buffer);
        }
        self.clock += 1;
        // Lengths with no buffer left are forgotten, so the list stays as short as the set of
        // lengths in use (and eviction below only ever sees non-empty lists).
        self.large.retain(|l| !l.buffers.is_empty() || l.len == len);
        // Make room by evicting the least recently used lengths (never the one being kept).
        while self.large_bytes + size > CACHE_LIMIT_BYTES {
            let oldest = self
                .large
                .iter_mut()
                .filter(|l| l.len != len)
                .min_by_key(|l| l.last_used);
            let Some(oldest) = oldest else {
                return Some(buffer);
            };
            let evicted = oldest.buffers.pop().expect("only non-empty lists are kept");
            self.large_bytes -= footprint::<T>(evicted.len());
            if oldest.buffers.is_empty() {
                let gone = oldest.len;
                self.large.retain(|l| l.len != gone);
            }
        }
        self.large_bytes += size;
        let clock = self.clock;
        match self.large.iter_mut().find(|l| l.len == len) {
            Some(list) => {
                list.last_used = clock;
                list.buffers.push(buffer);
            }
            None => self.large.push(LargeList {
                len,
                buffers: vec![buffer],
                last_used: clock,
            }),
        }
        None
    }

    /// Bytes held, as the allocator counts them: (small buffers, large buffers).
    pub fn held_bytes(&self) -> (usize, usize) {
        (self.direct_bytes, self.large_bytes)
    }

    /// Lengths above `DIRECT_MAX_LEN` with a free list (for tests).
    #[cfg(test)]
    fn large_lengths(&self) -> usize {
        self.large.len()
    }
}

/// A recycled buffer of exactly `len` elements holding stale values, if one is cached: the
/// caller overwrites every element (or falls back to allocating when there is none).
#[inline]
pub(crate) fn recycled<T: Float>(len: usize) -> Option<Arc<[T]>> {
    if len == 0 {
        return None;
    }
    T::with_buffer_cache(|cache| cache.take(len)).flatten()
}

/// A buffer of `len` elements whose every element the caller will overwrite before reading:
/// recycled (holding stale values) when possible, fresh and zeroed otherwise.
pub(crate) fn for_overwrite<T: Float>(len: usize) -> Arc<[T]> {
    recycled(len).unwrap_or_else(|| fresh(len, T::ZERO))
}

/// A new buffer of `len` copies of `value`. A length the machine cannot hold panics with a
/// message (the allocator would abort the process): fallible operations check their output's
/// size with [`check_allocation`] before they get here, so only panicking forms can.
fn fresh<T: Float>(len: usize, value: T) -> Arc<[T]> {
    if let Err(error) = check_allocation::<T>("allocate", len) {
        panic!("{error}");
    }
    std::iter::repeat_n(value, len).collect()
}

/// A zeroed buffer of `len` elements.
pub(crate) fn zeroed<T: Float>(len: usize) -> Arc<[T]> {
    filled(len, T::ZERO)
}

/// A buffer of `len` copies of `value`.
pub(crate) fn filled<T: Float>(len: usize, value: T) -> Arc<[T]> {
    match recycled(len) {
        Some(mut buffer) => {
            Arc::get_mut(&mut buffer)
                .expect("cached buffers have one owner")
                .fill(value);
            buffer
        }
        None => fresh(len, value),
    }
}

/// A buffer holding a copy of `values`.
pub(crate) fn copied<T: Float>(values: &[T]) -> Arc<[T]> {
    match recycled(values.len()) {
        Some(mut buffer) => {
            Arc::get_mut(&mut buffer)
                .expect("cached buffers have one owner")
                .copy_from_slice(values);
            buffer
        }
        None => Arc::from(values),
    }
}

/// Errors (instead of aborting the process) when `len` elements of `T` cannot be allocated:
/// used by constructors whose size comes from data, before they allocate.
pub(crate) fn check_allocation<T: Float>(op: &'static str, len: usize) -> Result<()> {
    let too_large = || TensorError::InvalidArgument {
        op,
        message: format!(
            "{len} elements of {} ({:.3e} bytes) cannot be allocated",
            T::DTYPE,
            len as f64 * std::mem::size_of::<T>() as f64
        ),
    };
    let bytes = len
        .checked_mul(std::mem::size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    // Small requests cannot fail short of the allocator failing for everyone; large ones are
    // probed, so a request larger than the machine's memory is refused instead of aborting.
    if bytes >= 64 << 20 {
        let mut probe: Vec<T> = Vec::new();
        probe.try_reserve_exact(len).map_err(|_| too_large())?;
    }
    Ok(())
}

/// Moves a buffer this tensor owns alone into its thread's cache (called on drop).
#[inline]
pub(crate) fn recycle<T: Float>(buffer: &mut Arc<[T]>) {
    if buffer.is_empty() || Arc::get_mut(buffer).is_none() {
        return;
    }
    // A buffer the cache refuses is freed here, outside the cache's borrow.
    let _refused = T::with_buffer_cache(|cache| {
        let owned = std::mem::replace(buffer, cache.empty.clone());
        cache.keep(owned)
    });
}

/// Bytes this thread's cache holds for element type `T`, as the allocator counts them:
/// (buffers of at most [`DIRECT_MAX_LEN`] elements, longer ones).
///
/// Every tensor buffer is recycled through this per-thread cache. Why a cache: a training step allocates and frees the same buffers every time (activations,
/// gradients, a 784 x 512 weight gradient, the dropout masks). glibc hands large buffers back to
/// the operating system on free, so without the cache the next step page-faults every one of them
/// in again and the kernel zeroes each page (measured at 24,720 page faults and about a fifth of
/// W1's CPU time); and a graph of small tensors (W4: 3,000 ops on 16 elements) spends a quarter
/// of its instructions in malloc and free.
///
/// The rule that keeps the cache honest: **every** buffer the crate allocates is first asked of
/// the cache (`from_vec`, `from_slice`, `scalar`, `full`, `zeros`, every kernel's output), and a
/// buffer enters the cache only when the tensor that owned it alone is dropped. So a buffer in
/// the cache is one that the next request of its length takes back, and a loop that makes and
/// drops tensors of one shape cycles through the same few buffers instead of filling the cache
/// (100,000 drops of a 16,384-element `from_vec` leave one buffer cached, not 256 MiB).
///
/// Free lists are kept per exact length: directly indexed up to [`DIRECT_MAX_LEN`] elements (a
/// bounds-checked index on the per-op path of small tensors), in a short list of lengths above it.
/// The caps count the memory the allocator really holds for each buffer (its chunk, with the
/// reference counts, malloc's header and rounding), not the nominal element bytes: at most
/// [`SMALL_CACHE_LIMIT_BYTES`] for buffers up to [`DIRECT_MAX_LEN`] elements (a full small cache
/// refuses new entries: small buffers are cheap to allocate again) and [`CACHE_LIMIT_BYTES`] for
/// larger ones (the least recently used length is evicted first), per element type and thread.
///
/// The cache changes no result: buffers handed out for overwriting are written in full by their
/// kernel before anything reads them, and buffers handed out filled are filled.
pub fn cached_bytes<T: Float>() -> (usize, usize) {
    T::with_buffer_cache(|cache| cache.held_bytes()).unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn a_dropped_large_buffer_is_reused_and_a_shared_one_is_not() {
        let len = DIRECT_MAX_LEN + 17;
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
    fn buffers_are_recycled_per_length_at_every_size() {
        // Lengths between the old small and large ranges (W3's 1,024) are recycled too.
        for len in [1, 5, 1024, DIRECT_MAX_LEN, 3 * DIRECT_MAX_LEN] {
            let first = Tensor::<f64>::full([len], 2.0);
            let address = first.as_contiguous_slice().unwrap().as_ptr();
            drop(first);
            // Another length does not take it; the same length does, and is fully rewritten.
            let other = Tensor::<f64>::full([len + 1], 1.0);
            assert_ne!(other.as_contiguous_slice().unwrap().as_ptr(), address);
            let same = Tensor::<f64>::from_vec(vec![3.0; len], [len]).unwrap();
            assert_eq!(
                same.as_contiguous_slice().unwrap().as_ptr(),
                address,
                "{len}"
            );
            assert!(same.to_vec().iter().all(|&x| x == 3.0));
        }
    }

    #[test]
    fn constructors_from_data_take_from_the_cache_so_it_stays_small() {
        // The reproduction: buffers made by `from_vec` and dropped used to pile up to the cap.
        let len = 16_384;
        for _ in 0..1000 {
            drop(Tensor::<f32>::from_vec(vec![1.0; len], [len]).unwrap());
            drop(Tensor::<f32>::scalar(1.0));
            drop(Tensor::<f32>::ones([3]));
        }
        let (small, large) = cached_bytes::<f32>();
        assert!(large <= footprint::<f32>(len), "{large} bytes cached");
        assert!(small <= 4 * footprint::<f32>(3), "{small} bytes cached");
    }

    #[test]
    fn the_caps_count_real_memory() {
        // One-element f32 buffers: 4 nominal bytes, 48 real (32-byte chunk + the list slot).
        assert_eq!(footprint::<f32>(1), 48);
        // Three: 16 + 12 requested, + 8 of header is 36, rounded to 48, + the 16-byte slot.
        assert_eq!(footprint::<f32>(3), 64);
        // 32,768 f32 (128 KiB): a mapping of its own, 16 + 131,072 + 16 rounded to pages.
        assert_eq!(footprint::<f32>(32_768), 135_168 + 16);
        // 4,096 f64: 16 + 32,768 bytes requested, an 8-byte header, rounded to 16, plus the slot.
        assert_eq!(footprint::<f64>(DIRECT_MAX_LEN), 32_800 + 16);
        // Three-element buffers take 64 bytes each, which divides the cap: it fills exactly.
        let keep: Vec<Tensor<f32>> = (0..SMALL_CACHE_LIMIT_BYTES / 64 + 100)
            .map(|_| Tensor::from_vec(vec![0.0; 3], [3]).unwrap())
            .collect();
        drop(keep);
        let (small, _) = cached_bytes::<f32>();
        assert_eq!(small, SMALL_CACHE_LIMIT_BYTES);
        // Taking one back gives its bytes back to the count.
        let taken = Tensor::<f32>::zeros([3]);
        assert_eq!(cached_bytes::<f32>().0, SMALL_CACHE_LIMIT_BYTES - 64);
        drop(taken);
        assert_eq!(cached_bytes::<f32>().0, SMALL_CACHE_LIMIT_BYTES);
    }

    #[test]
    fn the_large_cache_evicts_the_least_recently_used_length() {
        let len = |i: usize| (CACHE_LIMIT_BYTES / 9) / 4 + i;
        // Nine lengths of a ninth of the cap each (plus page rounding): the oldest goes.
        let tensors: Vec<Tensor<f32>> = (0..9).map(|i| Tensor::zeros([len(i)])).collect();
        drop(tensors);
        assert!(cached_bytes::<f32>().1 <= CACHE_LIMIT_BYTES);
        // (Asked of the cache directly: a fresh allocation may land at a freed address.)
        assert!(
            recycled::<f32>(len(0)).is_none(),
            "the oldest length was evicted"
        );
        for i in 1..9 {
            assert!(
                recycled::<f32>(len(i)).is_some(),
                "length {i} is still cached"
            );
        }
    }

    #[test]
    fn keeping_or_taking_a_length_counts_as_using_it() {
        // Lengths a, b, c of 0.3 of the cap each. a is kept, then b, then a second buffer of a:
        // b is now the least recently used, and a fourth length evicts it, not a.
        let len = |i: usize| (CACHE_LIMIT_BYTES * 3 / 10) / 4 + i;
        let (a, b, c, d) = (len(0), len(1), len(2), len(3));
        let first_a = Tensor::<f32>::zeros([a]);
        let second_a = Tensor::<f32>::zeros([a]);
        drop(first_a);
        drop(Tensor::<f32>::zeros([b]));
        drop(second_a);
        drop(Tensor::<f32>::zeros([c])); // 4 x 0.3 of the cap: b, the oldest, goes
        assert!(
            recycled::<f32>(b).is_none(),
            "the least recently kept length went"
        );
        // Taking counts as using: take and return c, then d evicts a (one buffer), not c.
        drop(Tensor::<f32>::zeros([c]));
        drop(Tensor::<f32>::zeros([d]));
        assert!(recycled::<f32>(c).is_some());
        assert!(recycled::<f32>(d).is_some());
        assert!(recycled::<f32>(a).is_some(), "one buffer of a was left");
        assert!(recycled::<f32>(a).is_none());
        assert_eq!(cached_bytes::<f32>().1, 0);
        // Lengths emptied by taking are forgotten at the next keep.
        fn lengths<T: Float>() -> usize {
            T::with_buffer_cache(|cache| cache.large_lengths()).unwrap()
        }
        assert_eq!(lengths::<f32>(), 3);
        drop(Tensor::<f32>::zeros([len(4)]));
        assert_eq!(lengths::<f32>(), 1);
    }

    #[test]
    fn a_buffer_larger_than_the_cap_is_freed_and_evicts_nothing() {
        let small = Tensor::<f32>::zeros([DIRECT_MAX_LEN + 1]);
        drop(small);
        drop(Tensor::<f32>::zeros([CACHE_LIMIT_BYTES / 4 + 1]));
        assert!(recycled::<f32>(DIRECT_MAX_LEN + 1).is_some());
        assert!(recycled::<f32>(CACHE_LIMIT_BYTES / 4 + 1).is_none());
    }

    #[test]
    fn recycled_buffers_never_leak_stale_values() {
        let len = DIRECT_MAX_LEN * 2;
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
        drop(Tensor::<f64>::full([4], 7.0));
        assert_eq!(Tensor::<f64>::scalar(1.5).to_vec(), vec![1.5]);
    }

    #[test]
    fn allocations_larger_than_memory_are_refused() {
        let error = check_allocation::<f64>("one_hot", 1 << 60).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("one_hot: 1152921504606846976 elements of f64"),
            "{error}"
        );
        // 256 TiB: more than the whole user address space of x86-64 and aarch64 (128 TiB), so
        // refused under every overcommit setting.
        assert!(check_allocation::<f64>("test", 1 << 45).is_err());
        assert!(check_allocation::<f64>("test", 1 << 10).is_ok());
    }
}
