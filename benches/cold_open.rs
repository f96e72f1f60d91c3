//! Area 2 of BENCHMARKS.md. Cold open: `connection(t)` on a tenant not in the cache (file check,
//! schema check, pool build, first connection), against
//! `Connection::open_with_flags` + `PRAGMA user_version`. With
//! `max_pools(1)` and two tenants, every call evicts (and closes) the other
//! pool, as the baseline closes its connection.

mod support;

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
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;

    let mut group = c.benchmark_group("cold_open");
    group.bench_function("baseline: open_with_flags + PRAGMA user_version", |b| {
        b.iter(|| {
            let conn = Connection::open_with_flags(&path, flags).unwrap();
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    let mut flip = false;
    group.bench_function("tenanted: connection(t) uncached + SELECT 1", |b| {
        b.iter(|| {
            flip = !flip;
            let conn = m.connection(if flip { "a" } else { "b" }).unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.finish();
    let stats = m.stats();
    assert!(
        stats.hits < stats.misses / 100,
        "the cold bench must miss: {stats:?}"
    );
}

criterion_group!(benches, cold_open);
criterion_main!(benches);
