//! Area 2 of BENCHMARKS.md. Cold open: `connection(t)` on a tenant not in the cache (file check,
//! schema check, pool build, first connection), against
//! `Connection::open_with_flags` + `PRAGMA user_version`. With
//! `max_pools(1)` and two tenants, every call evicts (and closes) the other
//! pool, as the baseline closes its connection. The floor adds the PRAGMAs
//! a pool's first connection runs; the ratio against it is printed from
//! interleaved rounds.

mod support;

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags};

fn cold_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .max_pools(1)
        .build()
        .unwrap();
    m.create_tenant("a").unwrap();
    m.create_tenant("b").unwrap();
    let path = m.root().database_path("a").unwrap();
    // The floor's own file: open and closed alone each time, as the cold
    // path's file is (a file some other connection holds open skips the
    // WAL set-up and the checkpoint on close).
    m.create_tenant("c").unwrap();
    let alone = m.root().database_path("c").unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;

    let mut group = c.benchmark_group("cold_open");
    group.bench_function("baseline: open_with_flags + PRAGMA user_version", |b| {
        b.iter(|| {
            let conn = Connection::open_with_flags(&path, flags).unwrap();
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.bench_function("floor: open + tenanted's PRAGMAs + user_version", |b| {
        b.iter(|| open_with_pragmas(&alone))
    });
    let mut flip = false;
    let mut cold = || {
        flip = !flip;
        let conn = m.connection(if flip { "a" } else { "b" }).unwrap();
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    group.bench_function("tenanted: connection(t) uncached + SELECT 1", |b| {
        b.iter(&mut cold)
    });
    group.finish();

    // Interleaved rounds of both, for the ratio on a noisy machine.
    let (mut floor, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        floor.push(support::per_call(200, || {
            open_with_pragmas(&alone);
        }));
        ours.push(support::per_call(200, || {
            cold();
        }));
    }
    let (floor, ours) = (support::median(floor), support::median(ours));
    println!(
        "cold connection(): {ours:?} vs floor {floor:?} (open + PRAGMAs + user_version): {:.2}x",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    let stats = m.stats();
    assert!(
        stats.hits < stats.misses / 100,
        "the cold bench must miss: {stats:?}"
    );
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
