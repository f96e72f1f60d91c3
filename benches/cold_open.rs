//! Area 2 of BENCHMARKS.md. Cold open: `connection(t)` on a tenant not in
//! the cache, against the floor of issue #29: open the file read-write
//! without create, the PRAGMAs a pool's first connection runs
//! (`busy_timeout`, `foreign_keys`, `journal_mode`), read `user_version`,
//! close.
//!
//! Both sides do the same file work on the same kind of file, in the same
//! process: tenanted goes through `TENANTS` tenants in turn under
//! `max_pools(1)`, so every call opens one tenant's file (creating its
//! `-wal` and `-shm`) and closes the one evicted (a checkpoint, and the
//! `-wal` deleted); the floor goes through `TENANTS` other tenants' files
//! in the same layout, each opened alone and closed after. (The bench
//! before #29 flipped between two tenants and opened one floor file again
//! and again; see BENCHMARKS.md for what that left out.)
//!
//! Criterion's medians come from separate phases; the ratio reported is
//! the median of per-round ratios, each round calling the two sides in
//! turn one call at a time, in wall time and in the thread's CPU time
//! (which a loaded machine stretches less). `COLD_OPEN_DIR` puts the root elsewhere than
//! the temporary directory (a `tmpfs` leaves out the file system's inode
//! allocation, which on a shared machine swings with what other processes
//! create and delete there).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags};
use tenanted::TenantManager;

/// Tenants each side goes through in turn.
const TENANTS: usize = 100;
/// Interleaved rounds, and calls of each side per round.
const ROUNDS: usize = 31;
const PER_ROUND: u32 = 100;

fn cold_open(c: &mut Criterion) {
    let dir = match std::env::var("COLD_OPEN_DIR") {
        Ok(at) => tempfile::tempdir_in(at).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let m = support::builder(dir.path(), support::migrations(3))
        .max_pools(1)
        .build()
        .unwrap();
    for i in 0..2 * TENANTS {
        m.create_tenant(&support::tenant(i)).unwrap();
    }
    let ours = Cold::new(&m);
    let floor = Floor::new(&m);

    if let Ok(only) = std::env::var("COLD_OPEN_ONLY") {
        // For a profiler: one side alone.
        let count: usize = std::env::var("COLD_OPEN_COUNT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(4000);
        for _ in 0..count {
            if only == "floor" {
                floor.next();
            } else {
                ours.next();
            }
        }
        return;
    }
    let mut group = c.benchmark_group("cold_open");
    group.bench_function("floor: open + PRAGMAs + user_version, close", |b| {
        b.iter(|| floor.next())
    });
    group.bench_function("tenanted: connection(t) uncached, evicting", |b| {
        b.iter(|| ours.next())
    });
    group.finish();

    let (fl, ou, wall, cpu) = support::paired(
        ROUNDS,
        PER_ROUND,
        || {
            floor.next();
        },
        || ours.next(),
    );
    println!(
        "cold connection() over {TENANTS} tenants, max_pools(1): {:?} (CPU {:?}) vs floor {:?} (CPU {:?}): \
         {wall:.2}x wall, {cpu:.2}x CPU (medians of {ROUNDS} per-round ratios, calls alternating; load {})",
        ou.wall,
        ou.cpu,
        fl.wall,
        fl.cpu,
        support::load()
    );
    let stats = m.stats();
    assert!(
        stats.hits < stats.misses / 100,
        "the cold bench must miss: {stats:?}"
    );
}

/// tenanted's side: tenants `0..TENANTS` in turn.
struct Cold<'a> {
    m: &'a TenantManager,
    names: Vec<String>,
    next: std::cell::Cell<usize>,
}

impl<'a> Cold<'a> {
    fn new(m: &'a TenantManager) -> Self {
        let names = (0..TENANTS).map(support::tenant).collect();
        Cold {
            m,
            names,
            next: Default::default(),
        }
    }

    fn next(&self) {
        let i = (self.next.get() + 1) % TENANTS;
        self.next.set(i);
        drop(self.m.connection(&self.names[i]).unwrap());
    }
}

/// The floor's side: the files of tenants `TENANTS..2 * TENANTS` in turn,
/// which tenanted never opens here.
struct Floor {
    paths: Vec<PathBuf>,
    next: std::cell::Cell<usize>,
}

impl Floor {
    fn new(m: &TenantManager) -> Self {
        let paths = (TENANTS..2 * TENANTS)
            .map(|i| m.root().database_path(&support::tenant(i)).unwrap())
            .collect();
        Floor {
            paths,
            next: Default::default(),
        }
    }

    fn next(&self) -> i64 {
        let i = (self.next.get() + 1) % TENANTS;
        self.next.set(i);
        open_with_pragmas(&self.paths[i])
    }
}

/// What a pool's first connection does, as plain rusqlite: open, the
/// PRAGMAs tenanted sets (busy_timeout, foreign_keys, journal_mode), and
/// the schema version; the connection closes on drop.
fn open_with_pragmas(path: &Path) -> i64 {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .unwrap()
}

criterion_group!(benches, cold_open);
criterion_main!(benches);
