//! Area 1 of BENCHMARKS.md. Warm checkout: `connection(t)` on a cached tenant + `SELECT 1`,
//! against a bare r2d2 pool `get()` + `SELECT 1` on the same file; two threads on two
//! cached tenants against two independent r2d2 pools; and a hot set of exactly
//! `max_pools` tenants in turn against as many r2d2 pools (every one must stay cached).
//! Each comparison also prints the median of per-round ratios from interleaved rounds.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

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

    let select = |conn: &rusqlite::Connection| {
        std::hint::black_box(
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap(),
        );
    };
    let (floor, ours, ratio) = support::interleaved(
        31,
        || support::per_call(20_000, || select(&tuned.get().unwrap())),
        || support::per_call(20_000, || select(&m.connection("acme").unwrap())),
    );
    println!(
        "warm checkout, 1 thread: tenanted {ours:?} vs r2d2 (same settings) {floor:?}: {ratio:.2}x (median of 31 interleaved rounds; load {})",
        support::load()
    );
}

/// The same file's r2d2 pool with tenanted's settings.
fn tuned_pool(path: &std::path::Path) -> r2d2::Pool<SqliteConnectionManager> {
    r2d2::Pool::builder()
        .max_size(4)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .thread_pool(Arc::new(scheduled_thread_pool::ScheduledThreadPool::new(1)))
        .build(SqliteConnectionManager::file(path))
        .unwrap()
}

/// Runs `op` `iters` times on each of two threads; the wall time.
fn on_two_threads(iters: u64, op: impl Fn(usize) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let op = &op;
            s.spawn(move || (0..iters).for_each(|_| op(t)));
        }
    });
    started.elapsed()
}

fn two_threads_two_tenants(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // The cache's lookups are in 8 shards by the names' FNV-1a hash, the
    // same hash as the bucket: pick two names in different shards.
    let names: Vec<String> = (0..).map(support::tenant).take(20).collect();
    let first = &names[0];
    let second = names
        .iter()
        .find(|n| tenanted::bucket_of(n, 8) != tenanted::bucket_of(first, 8))
        .unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    let tenants = [first.as_str(), second.as_str()];
    let pools: Vec<_> = tenants
        .iter()
        .map(|t| {
            m.create_tenant(t).unwrap();
            drop(m.connection(t).unwrap());
            tuned_pool(&m.root().database_path(t).unwrap())
        })
        .collect();
    let select = |conn: &rusqlite::Connection| {
        std::hint::black_box(
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap(),
        );
    };
    let mut group = c.benchmark_group("two_threads_two_tenants");
    group.bench_function("baseline: two independent r2d2 pools", |b| {
        b.iter_custom(|iters| on_two_threads(iters, |t| select(&pools[t].get().unwrap())))
    });
    group.bench_function("tenanted: connection(t) on its own tenant", |b| {
        b.iter_custom(|iters| on_two_threads(iters, |t| select(&m.connection(tenants[t]).unwrap())))
    });
    group.finish();

    let (floor, ours, ratio) = support::interleaved(
        31,
        || on_two_threads(10_000, |t| select(&pools[t].get().unwrap())) / 10_000,
        || on_two_threads(10_000, |t| select(&m.connection(tenants[t]).unwrap())) / 10_000,
    );
    println!(
        "warm checkout, 2 threads on 2 tenants: tenanted {ours:?} vs two r2d2 pools {floor:?} (wall time per checkout pair): {ratio:.2}x (median of 31 interleaved rounds; load {})",
        support::load()
    );
}

/// `max_pools` hot tenants used in turn: with an exact LRU every one stays
/// cached (no misses after the first round); against as many r2d2 pools.
fn hot_set_of_max_pools(c: &mut Criterion) {
    const HOT: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .max_pools(HOT)
        .build()
        .unwrap();
    support::populate(&m, HOT);
    let pools: Vec<_> = (0..HOT)
        .map(|i| tuned_pool(&m.root().database_path(&support::tenant(i)).unwrap()))
        .collect();
    let names: Vec<String> = (0..HOT).map(support::tenant).collect();
    for name in &names {
        drop(m.connection(name).unwrap());
    }
    let before = m.stats();
    let select = |conn: &rusqlite::Connection| {
        std::hint::black_box(
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap(),
        );
    };
    let mut group = c.benchmark_group("hot_set_of_max_pools_50");
    let mut i = 0;
    group.bench_function("baseline: 50 r2d2 pools in turn", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            select(&pools[i].get().unwrap())
        })
    });
    group.bench_function("tenanted max_pools(50): 50 tenants in turn", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            select(&m.connection(&names[i]).unwrap())
        })
    });
    group.finish();
    let (mut a, mut b) = (0, 0);
    let (floor, ours, ratio) = support::interleaved(
        21,
        || {
            support::per_call(5_000, || {
                a = (a + 1) % HOT;
                select(&pools[a].get().unwrap())
            })
        },
        || {
            support::per_call(5_000, || {
                b = (b + 1) % HOT;
                select(&m.connection(&names[b]).unwrap())
            })
        },
    );
    let after = m.stats();
    println!(
        "50 tenants in turn under max_pools(50): tenanted {ours:?} vs 50 r2d2 pools {floor:?}: {ratio:.2}x; {} misses and {} evictions after the first round, {} pools cached (load {})",
        after.misses - before.misses,
        after.evictions - before.evictions,
        after.open_pools,
        support::load()
    );
}

criterion_group!(
    benches,
    warm_checkout,
    two_threads_two_tenants,
    hot_set_of_max_pools
);
criterion_main!(benches);
