//! Area 3 of BENCHMARKS.md. Churn: 10,000 tenants, `max_pools(100)`, uniform and Zipf-like access
//! from 2 threads: operations per second and hit rate; beside a naive
//! `Mutex<HashMap<String, Pool>>` with no cap, whose pool, thread and
//! file-descriptor counts are reported after its run.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r2d2_sqlite::SqliteConnectionManager;
use support::Rng;
use tenanted::TenantManager;

const TENANTS: usize = 10_000;
const THREADS: u64 = 2;
/// The naive cache stops here: 6,000 pools hold ~18,000 descriptors, near
/// the 20,000 limit of the benchmark machine.
const NAIVE_POOL_LIMIT: usize = 6_000;

type Pick = fn(&mut Rng, usize) -> usize;

/// Runs `iters` operations split over 2 threads; returns the wall time.
fn run(iters: u64, op: impl Fn(&mut Rng) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let op = &op;
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1) ^ iters);
                for _ in 0..iters / THREADS {
                    op(&mut rng);
                }
            });
        }
    });
    started.elapsed()
}

fn tenanted_op(m: &TenantManager, pick: Pick) -> impl Fn(&mut Rng) + Sync + '_ {
    move |rng| {
        let conn = m.connection(support::tenant(pick(rng, TENANTS))).unwrap();
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .unwrap();
    }
}

type NaiveMap = Mutex<HashMap<String, r2d2::Pool<SqliteConnectionManager>>>;

fn churn(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let setup = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    support::populate(&setup, TENANTS);
    drop(setup);

    let mut group = c.benchmark_group("churn_10k_tenants_2_threads");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (label, pick) in [
        ("uniform", Rng::uniform as Pick),
        ("zipf", Rng::zipf as Pick),
    ] {
        let m = support::builder(dir.path(), support::migrations(3))
            .max_pools(100)
            .build()
            .unwrap();
        group.bench_function(format!("tenanted max_pools=100, {label}"), |b| {
            b.iter_custom(|iters| run(iters, tenanted_op(&m, pick)))
        });
        let s = m.stats();
        eprintln!(
            "tenanted {label}: hit rate {:.1}%, {} open pools, {} evictions, {} threads, {} fds",
            100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64,
            s.open_pools,
            s.evictions,
            support::threads(),
            support::fds()
        );
    }

    // The naive cache: one pool per tenant ever seen, never closed. Pools
    // share a thread pool here (with r2d2's default, 3 threads per pool,
    // it would start 30,000 threads); descriptors still grow without bound.
    let root = tenanted::RootConfig::new(dir.path());
    let shared = Arc::new(scheduled_thread_pool::ScheduledThreadPool::new(2));
    let naive: NaiveMap = Mutex::new(HashMap::new());
    let failures = std::sync::atomic::AtomicU64::new(0);
    let (fds_before, threads_before) = (support::fds(), support::threads());
    group.bench_function("baseline: naive HashMap of pools, no cap, uniform", |b| {
        b.iter_custom(|iters| {
            run(iters, |rng| {
                let name = support::tenant(rng.uniform(TENANTS));
                let pool = {
                    let mut map = naive.lock().unwrap();
                    // Each pool keeps ~3 descriptors: past this many the
                    // process is at its limit and r2d2 would wait out its
                    // timeout on every new tenant. Count those as failures.
                    if map.len() >= NAIVE_POOL_LIMIT && !map.contains_key(&name) {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    map.entry(name.clone())
                        .or_insert_with(|| {
                            let path = root.database_path(&name).unwrap();
                            r2d2::Pool::builder()
                                .max_size(4)
                                .min_idle(Some(0))
                                .connection_timeout(Duration::from_secs(1))
                                .thread_pool(Arc::clone(&shared))
                                .build(SqliteConnectionManager::file(path))
                                .unwrap()
                        })
                        .clone()
                };
                match pool.get() {
                    Ok(conn) => {
                        if conn
                            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                            .is_err()
                        {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
    });
    eprintln!(
        "naive: {} pools open, {} more fds, {} more threads, {} operations refused at the descriptor limit",
        naive.lock().unwrap().len(),
        support::fds().saturating_sub(fds_before),
        support::threads().saturating_sub(threads_before),
        failures.into_inner()
    );
    group.finish();
}

criterion_group!(benches, churn);
criterion_main!(benches);
