//! Area 5 of BENCHMARKS.md. Fleet operations. `migrate_all` with one pending migration per tenant
//! (jobs 1 and 2) beside a sequential loop of `rusqlite_migration`; and,
//! over 10,000 up-to-date tenants, `migration_status` and a no-op
//! `migrate_all` beside a sequential loop reading `user_version`.

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags};
use tenanted::{MigrateOptions, TenantManager};

const PENDING_TENANTS: usize = 2_000;
const CURRENT_TENANTS: usize = 10_000;

fn paths(m: &TenantManager) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = m.tenants().unwrap().map(|t| t.unwrap()).collect();
    names.sort();
    names
        .iter()
        .map(|t| m.root().database_path(t.as_str()).unwrap())
        .collect()
}

fn pending(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let old = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    support::populate(&old, PENDING_TENANTS);
    let new = support::builder(dir.path(), support::migrations(4))
        .build()
        .unwrap();
    let files = paths(&new);
    let back = MigrateOptions::new().to_version(3);

    let mut group = c.benchmark_group("migrate_2k_tenants_1_pending");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("baseline: sequential rusqlite_migration loop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                assert!(new.migrate_all(&back).unwrap().is_success());
                let started = Instant::now();
                let list: Vec<_> = new
                    .migrations()
                    .iter()
                    .map(|m| rusqlite_migration::M::up(m.up_sql()))
                    .collect();
                let engine = rusqlite_migration::Migrations::new(list);
                for file in &files {
                    let mut conn = Connection::open(file).unwrap();
                    engine.to_latest(&mut conn).unwrap();
                }
                total += started.elapsed();
            }
            total
        })
    });
    for jobs in [1, 2] {
        group.bench_function(format!("tenanted: migrate_all jobs={jobs}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    assert!(new.migrate_all(&back).unwrap().is_success());
                    let started = Instant::now();
                    let report = new.migrate_all(&MigrateOptions::new().jobs(jobs)).unwrap();
                    total += started.elapsed();
                    assert_eq!(report.migrated(), PENDING_TENANTS);
                }
                total
            })
        });
    }
    group.finish();
}

fn up_to_date(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(4))
        .build()
        .unwrap();
    support::populate(&m, CURRENT_TENANTS);
    let files = paths(&m);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;

    let mut group = c.benchmark_group("10k_up_to_date_tenants");
    group.sample_size(10);
    group.bench_function("baseline: sequential open + PRAGMA user_version", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|f| {
                    Connection::open_with_flags(f, flags)
                        .unwrap()
                        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                        .unwrap()
                })
                .sum::<i64>()
        })
    });
    group.bench_function("tenanted: migration_status", |b| {
        b.iter(|| assert!(m.migration_status().unwrap().all_current()))
    });
    group.bench_function("tenanted: no-op migrate_all", |b| {
        b.iter(|| {
            assert_eq!(
                m.migrate_all(&MigrateOptions::new()).unwrap().up_to_date(),
                CURRENT_TENANTS
            )
        })
    });
    group.finish();
}

criterion_group!(benches, pending, up_to_date);
criterion_main!(benches);
