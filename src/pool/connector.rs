//! The connector threads every pool of a manager shares (r2d2 would
//! otherwise start 3 per pool), and the wait for them to end when the
//! manager goes.
//!
//! They are a `ScheduledThreadPool`'s: they end when the last reference to
//! it goes, and nothing joins them. A process that exits while one of its
//! threads is still ending (glibc frees the thread's caches as it ends,
//! while `exit` runs the C library's and SQLCipher's teardown) can corrupt
//! its heap: an outside probe saw the CLI crash so as it exited, 3 times in
//! 19,300 runs under load. So the manager learns each thread's id as it
//! starts them, and its drop, when it lets go of the last reference, waits
//! (within [`ENDING`]) until the kernel lists them no more.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use scheduled_thread_pool::{OnPoolDropBehavior, ScheduledThreadPool};

use super::cache::PoolCache;
use crate::fs::sys;

/// How long a manager's drop waits for its connector threads to end: they
/// are idle, or finishing one open (SQLite's part of it is bounded by
/// `busy_timeout`; a `connection_init` hook is the caller's own); past
/// this they are left to end by themselves.
const ENDING: Duration = Duration::from_secs(1);

/// How often the drop looks again.
const POLL: Duration = Duration::from_micros(200);

/// The manager's hold on its connector threads: dropped last, it waits for
/// them to end.
pub(crate) struct ConnectorThreads {
    pool: Option<Arc<ScheduledThreadPool>>,
    /// Each thread's kernel id.
    ids: Vec<i32>,
    /// The manager's pools: let go of here, after the manager's own hold,
    /// so that it is known whether connections outlive the manager.
    cache: Option<Arc<PoolCache>>,
}

/// Starts `threads` connector threads (at least one): the pool every
/// tenant's r2d2 pool in `cache` is given, and the hold that waits for them
/// to end. Scheduled jobs of dropped pools are discarded.
pub(crate) fn start_connector(
    threads: usize,
    cache: &Arc<PoolCache>,
) -> (Arc<ScheduledThreadPool>, ConnectorThreads) {
    let threads = threads.max(1);
    let pool = Arc::new(
        ScheduledThreadPool::builder()
            .num_threads(threads)
            .thread_name_pattern("tenanted-connector-{}")
            .on_drop_behavior(OnPoolDropBehavior::DiscardPendingScheduled)
            .build(),
    );
    // One job per thread, each held at the barrier until all have begun:
    // no thread can take two, so every thread says its id once.
    let ids = Arc::new(Mutex::new(Vec::with_capacity(threads)));
    let all_began = Arc::new(Barrier::new(threads + 1));
    for _ in 0..threads {
        let (ids, all_began) = (Arc::clone(&ids), Arc::clone(&all_began));
        pool.execute(move || {
            ids.lock().push(sys::thread_id());
            all_began.wait();
        });
    }
    all_began.wait();
    let ids = std::mem::take(&mut *ids.lock());
    let hold = ConnectorThreads {
        pool: Some(Arc::clone(&pool)),
        ids,
        cache: Some(Arc::clone(cache)),
    };
    (pool, hold)
}

impl Drop for ConnectorThreads {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let cache = self.cache.take();
        let connections_out = cache.as_ref().is_some_and(|c| c.stats().checked_out > 0);
        // The last hold on the pools: they close here.
        drop(cache);
        // A connection checked out past the manager holds its pool, and
        // so the threads: they end with it, not now.
        if connections_out {
            return;
        }
        // An open in progress on a connector thread holds them a moment.
        let deadline = Instant::now() + ENDING;
        while Arc::strong_count(&pool) > 1 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        drop(pool);
        for &id in &self.ids {
            while sys::thread_is_listed(id) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
    }
}
