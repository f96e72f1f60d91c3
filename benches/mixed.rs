//! Issue #29 item 1: what the cold open costs a service. Requests over
//! 10,000 tenants (100,000 with `MIXED_TENANTS=100000`) with Zipf-like
//! popularity (rank r with probability ∝ 1/r), from 2 threads; each request
//! is `connection(t)` + `SELECT 1`. tenanted under `max_pools(50)` and
//! `max_pools(1000)`, beside the fair floor: a capped LRU (the `lru` crate)
//! of bare `rusqlite::Connection`s with the same cap, opened with the same
//! flags and PRAGMAs and `user_version` read, evicted ones closed outside
//! the LRU's lock, which does only what must be done.
//!
//! The two sides work on disjoint sets of tenants with the same popularity
//! (a file one side holds open would spare the other the `-wal` set-up and
//! the checkpoint on close), interleaved: tenanted's tenant of rank r is
//! the root's tenant 2r, the floor's 2r + 1, so that both sides' files
//! were made at the same times and sit in the same places on disk. (Until
//! 2026-12-05 tenanted had the first half of the root and the floor the
//! second: on ext4 at 100,000 tenants the half decided up to a third of
//! the ratio, 1.27-1.56× one way round and 0.99-1.30× the other.) Each
//! thread alternates between the sides one
//! request at a time, so that both meet the same machine at the same
//! moments; the time printed is the mean time of one request (its
//! latency), and the ratio the median of the per-round ratios.
//! `MIXED_DIR` puts the root elsewhere than the temporary directory.

mod support;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lru::LruCache;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use support::Rng;
use tenanted::{RootConfig, TenantManager};

const THREADS: u64 = 2;
/// Requests per side per round (both threads together).
const PER_ROUND: u64 = 2_000;
const ROUNDS: usize = 21;

/// The floor: a capped LRU of bare connections.
struct BareLru {
    root: RootConfig,
    cache: Mutex<LruCache<String, Arc<Mutex<Connection>>>>,
    misses: AtomicU64,
    requests: AtomicU64,
}

impl BareLru {
    fn new(root: &Path, cap: usize) -> Self {
        BareLru {
            root: RootConfig::new(root),
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(cap).unwrap())),
            misses: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn request(&self, name: String) {
        let hit = self.cache.lock().get(&name).cloned();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let conn = match hit {
            Some(conn) => conn,
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let path = self.root.database_path(&name).unwrap();
                let conn = Arc::new(Mutex::new(open_with_pragmas(&path)));
                // Closed (if nobody uses it) after the lock is released.
                let evicted = self.cache.lock().push(name, Arc::clone(&conn));
                drop(evicted);
                conn
            }
        };
        let conn = conn.lock();
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .unwrap();
    }
}

/// What a pool's first connection does, as plain rusqlite.
fn open_with_pragmas(path: &Path) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .unwrap();
    conn
}

/// One round: each thread makes `PER_ROUND / THREADS` requests on each
/// side, alternating one by one (which side goes first alternates too),
/// each for the tenant of rank `zipf(tenants)`: tenant `2 * rank` on
/// tenanted's side, tenant `2 * rank + 1` on the floor's. Returns the mean time of
/// a request on each side: floor, then tenanted.
fn round(
    seed: u64,
    tenants: usize,
    floor: impl Fn(String) + Sync,
    ours: impl Fn(String) + Sync,
) -> (Duration, Duration) {
    let totals = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (floor, ours) = (&floor, &ours);
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1) ^ seed);
                    let (mut f, mut o) = (Duration::ZERO, Duration::ZERO);
                    for k in 0..PER_ROUND / THREADS {
                        let rank = rng.zipf(tenants);
                        let time_floor = || timed(|| floor(support::tenant(2 * rank + 1)));
                        let time_ours = || timed(|| ours(support::tenant(2 * rank)));
                        if k % 2 == 0 {
                            f += time_floor();
                            o += time_ours();
                        } else {
                            o += time_ours();
                            f += time_floor();
                        }
                    }
                    (f, o)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((Duration::ZERO, Duration::ZERO), |a, b| {
                (a.0 + b.0, a.1 + b.1)
            })
    });
    (totals.0 / PER_ROUND as u32, totals.1 / PER_ROUND as u32)
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn mixed(_: &mut Criterion) {
    let tenants: usize = std::env::var("MIXED_TENANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = match std::env::var("MIXED_DIR") {
        Ok(at) => tempfile::tempdir_in(at).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let setup = support::builder(dir.path(), support::migrations(1))
        .build()
        .unwrap();
    support::populate_by_copy(&setup, 2 * tenants);
    drop(setup);
    for cap in [50, 1000] {
        let m: TenantManager = support::builder(dir.path(), support::migrations(1))
            .max_pools(cap)
            .build()
            .unwrap();
        let floor = BareLru::new(dir.path(), cap);
        let bare = |name| floor.request(name);
        let ours = |name: String| {
            let conn = m.connection(name).unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap();
        };
        // Both caches filled first.
        for seed in 0..4 {
            round(u64::MAX - seed, tenants, bare, ours);
        }
        let (mut o, mut f, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 0..ROUNDS as u64 {
            let (a, b) = round(seed, tenants, bare, ours);
            f.push(a);
            o.push(b);
            ratios.push(b.as_secs_f64() / a.as_secs_f64());
        }
        let s = m.stats();
        println!(
            "mixed, {tenants} tenants, Zipf, {THREADS} threads, cap {cap}: tenanted {:?} a request \
             (hit rate {:.1}%), bare-connection LRU {:?} (hit rate {:.1}%): {:.2}x \
             (median of {ROUNDS} per-round ratios, requests alternating; load {})",
            support::median(o),
            100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64,
            support::median(f),
            100.0
                - 100.0 * floor.misses.load(Ordering::Relaxed) as f64
                    / floor.requests.load(Ordering::Relaxed).max(1) as f64,
            support::median(ratios),
            support::load()
        );
    }
}

criterion_group!(benches, mixed);
criterion_main!(benches);
