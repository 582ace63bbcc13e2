//! Independent training runs spread over the machine's cores.
//!
//! Each run is a pure function of its settings and seeds, so running several at once changes
//! nothing but the wall time: the results come back in the order of the inputs, identical to a
//! sequential loop.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Result;

/// `f` applied to every item, on up to `std::thread::available_parallelism()` threads; the
/// results in the items' order. The first error (in item order) is returned.
pub fn map<T, R, F>(items: Vec<T>, f: F) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> Result<R> + Sync,
{
    let count = items.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count.max(1));
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<R>>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let item = queue[i]
                        .lock()
                        .expect("no worker panics while holding it")
                        .take()
                        .expect("each item is taken once");
                    let result = f(item);
                    *results[i]
                        .lock()
                        .expect("no worker panics while holding it") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("no worker panicked")
                .expect("every item was run")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_the_order_of_the_items() {
        let squares = super::map((0..50_u64).collect(), |i| Ok(i * i)).unwrap();
        assert_eq!(squares, (0..50_u64).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_in_item_order_is_returned() {
        let result = super::map(vec![1, 2, 3, 4], |i: i32| {
            if i % 2 == 0 {
                Err(format!("item {i}").into())
            } else {
                Ok(i)
            }
        });
        assert_eq!(result.unwrap_err().to_string(), "item 2");
    }
}
