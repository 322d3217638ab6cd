//! nil's own rayon pool: sized by NIL_NUM_THREADS (default: all cores), rebuilt after fork so that
//! forked children (DataLoader workers) never wait on threads that do not exist in them; in a forked
//! child it runs single-threaded unless NIL_NUM_THREADS says otherwise, as tokenizers does.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, Mutex};

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);
static FIRST_PID: Mutex<Option<u32>> = Mutex::new(None);

fn threads(forked: bool) -> usize {
    match std::env::var("NIL_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) if n > 0 => n,
        _ if forked => 1,
        _ => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    }
}

fn current() -> Arc<ThreadPool> {
    let pid = std::process::id();
    let first = *FIRST_PID
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(pid);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = guard.as_ref() {
        if *owner == pid {
            return pool.clone();
        }
    }
    // First use, or first use after fork: the parent's worker threads do not exist here. Leak the
    // stale pool rather than dropping it (its drop would signal threads that are gone).
    if let Some(old) = guard.take() {
        std::mem::forget(old);
    }
    let pool = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads(pid != first))
            .thread_name(|i| format!("nil-{i}"))
            .build()
            .expect("building nil's thread pool"),
    );
    *guard = Some((pid, pool.clone()));
    pool
}

/// Runs `f` on nil's pool (so rayon and faer parallelism use it).
pub fn with_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    current().install(f)
}

/// Releases the interpreter and runs `f` on nil's pool: every rayon use inside (faer, blake3,
/// par_iter) then stays off rayon's global pool, whose threads do not survive a fork.
pub fn detached<R: Send>(py: pyo3::Python<'_>, f: impl FnOnce() -> R + Send) -> R {
    py.detach(|| with_pool(f))
}
