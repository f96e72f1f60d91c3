//! Area 7 of BENCHMARKS.md. Resources with 1,000 pools cached: OS threads and resident memory of
//! tenanted against 1,000 bare r2d2 pools built with r2d2's defaults, and
//! a round-robin checkout over the 1,000 cached tenants for both.

mod support;

use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use r2d2_sqlite::SqliteConnectionManager;

const POOLS: usize = 1_000;

fn resources(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .max_pools(POOLS)
        .build()
        .unwrap();
    support::populate(&m, POOLS);
    let (threads0, rss0, fds0) = (
        support::threads(),
        support::status_kb("VmRSS"),
        support::fds(),
    );
    for i in 0..POOLS {
        drop(m.connection(support::tenant(i)).unwrap());
    }
    eprintln!(
        "tenanted, {} pools cached: +{} threads, +{} fds, +{} kB RSS",
        m.stats().open_pools,
        support::threads() - threads0,
        support::fds() - fds0,
        support::status_kb("VmRSS").saturating_sub(rss0)
    );

    let (threads1, rss1, fds1) = (
        support::threads(),
        support::status_kb("VmRSS"),
        support::fds(),
    );
    let bare: HashMap<String, r2d2::Pool<SqliteConnectionManager>> = (0..POOLS)
        .map(|i| {
            let name = support::tenant(i);
            let path = m.root().database_path(&name).unwrap();
            // r2d2's defaults: max_size 10, min_idle = max_size (ten eager
            // connections), 3 threads per pool.
            let pool = r2d2::Pool::builder()
                .build(SqliteConnectionManager::file(path))
                .unwrap();
            drop(pool.get().unwrap());
            (name, pool)
        })
        .collect();
    eprintln!(
        "bare r2d2 defaults, {} pools: +{} threads, +{} fds, +{} kB RSS",
        bare.len(),
        support::threads() - threads1,
        support::fds() - fds1,
        support::status_kb("VmRSS").saturating_sub(rss1)
    );

    let mut group = c.benchmark_group("round_robin_1000_cached_pools");
    let mut i = 0;
    group.bench_function("baseline: HashMap lookup + r2d2 get + SELECT 1", |b| {
        b.iter(|| {
            i = (i + 1) % POOLS;
            let conn = bare[&support::tenant(i)].get().unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.bench_function("tenanted: connection(t) + SELECT 1", |b| {
        b.iter(|| {
            i = (i + 1) % POOLS;
            let conn = m.connection(support::tenant(i)).unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, resources);
criterion_main!(benches);
