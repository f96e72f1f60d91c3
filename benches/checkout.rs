//! Area 1 of BENCHMARKS.md. Warm checkout: `connection(t)` on a cached tenant + `SELECT 1`,
//! against a bare r2d2 pool `get()` + `SELECT 1` on the same file.

mod support;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use r2d2_sqlite::SqliteConnectionManager;

fn warm_checkout(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    let path = m.root().database_path("acme").unwrap();
    let bare = r2d2::Pool::builder()
        .max_size(4)
        .min_idle(Some(0))
        .thread_pool(Arc::new(scheduled_thread_pool::ScheduledThreadPool::new(1)))
        .build(SqliteConnectionManager::file(&path))
        .unwrap();
    drop(bare.get().unwrap());
    // The same pool with tenanted's settings: no validation on checkout.
    let tuned = r2d2::Pool::builder()
        .max_size(4)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .thread_pool(Arc::new(scheduled_thread_pool::ScheduledThreadPool::new(1)))
        .build(SqliteConnectionManager::file(&path))
        .unwrap();
    drop(tuned.get().unwrap());

    let mut group = c.benchmark_group("warm_checkout");
    group.bench_function("baseline: r2d2 get + SELECT 1", |b| {
        b.iter(|| {
            let conn = bare.get().unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.bench_function("baseline: r2d2 get (no checkout test) + SELECT 1", |b| {
        b.iter(|| {
            let conn = tuned.get().unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.bench_function("tenanted: connection(t) + SELECT 1", |b| {
        b.iter(|| {
            let conn = m.connection("acme").unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, warm_checkout);
criterion_main!(benches);
