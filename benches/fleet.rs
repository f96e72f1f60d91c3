//! Area 5 of BENCHMARKS.md. Fleet operations. `migrate_all` with one pending migration per tenant
//! (jobs 1 and 2) beside a sequential loop of `rusqlite_migration`; and,
//! over 10,000 up-to-date tenants, `migration_status` and a no-op
//! `migrate_all` beside a sequential loop reading `user_version`; and, over
//! 2,000 up-to-date tenants, both beside the header-read floor (issue #13):
//! a plain loop on as many threads that opens each file, reads its first
//! 100 bytes and closes it. That group prints the ratios of interleaved
//! medians, and how much `migration_status` and a no-op `migrate_all`
//! grow the resident set, before criterion's own runs.
//!
//! The fleet usage report (issue #27: `usage_each` with every row to a
//! callback, and `usage` keeping the 20 largest) is measured the same way
//! beside the same floor, with how much each grows the resident set.
//!
//! `TENANTED_BENCH_FLOOR_TENANTS=1000000` runs those groups on a million
//! tenants (about 12 GB of disk: each tenant after the first is a copy of
//! its file), and `TENANTED_BENCH_FLOOR_ROOT=/some/dir` keeps that fleet
//! there for the next run instead of a temporary directory.

mod support;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags};
use tenanted::{MigrateOptions, TenantManager, UsageOrder};

const PENDING_TENANTS: usize = 2_000;
const CURRENT_TENANTS: usize = 10_000;
const FLOOR_TENANTS: usize = 2_000;
/// Past this many, the floor group's tenants are copies of the first.
const CREATED_TENANTS: usize = 10_000;

/// The tenants' database files in the order a walk meets them, which is
/// the order a fleet run visits them (not sorted: names made one after
/// another sort in creation order, whose neighbouring inodes give a loop
/// an advantage no walk has; see BENCHMARKS.md, "The floor's order").
fn paths(m: &TenantManager) -> Vec<std::path::PathBuf> {
    let names: Vec<_> = m.tenants().unwrap().map(|t| t.unwrap()).collect();
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

/// The floor: `threads` threads take the files in turn, each opened, its
/// 100-byte header read and closed; returns the sum of the `user_version`s.
fn header_floor(files: &[PathBuf], threads: usize) -> i64 {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut sum = 0i64;
                    let mut header = [0u8; 100];
                    while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let f = File::open(file).unwrap();
                        f.read_exact_at(&mut header, 0).unwrap();
                        let v: [u8; 4] = header[60..64].try_into().unwrap();
                        sum += i64::from(i32::from_be_bytes(v));
                    }
                    sum
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Interleaved rounds of the floor, `migration_status` and a no-op
/// `migrate_all` (so a busy moment of the machine hits all three), and
/// the ratios of their medians.
fn print_floor_ratios(m: &TenantManager, files: &[PathBuf], threads: usize) {
    let tenants = files.len();
    let rounds = if tenants > 100_000 { 5 } else { 15 };
    let (mut floor, mut status, mut noop) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        assert_eq!(header_floor(files, threads), tenants as i64);
        floor.push(started.elapsed());
        let started = Instant::now();
        assert!(m.migration_status().unwrap().all_current());
        status.push(started.elapsed());
        let started = Instant::now();
        let report = m.migrate_all(&MigrateOptions::new().jobs(threads)).unwrap();
        noop.push(started.elapsed());
        assert_eq!(report.up_to_date(), tenants);
    }
    let (floor, status, noop) = (median(floor), median(status), median(noop));
    let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
    println!(
        "{tenants} tenants, {threads} thread(s): floor {floor:.1?}, \
         migration_status {status:.1?} ({:.2}x), no-op migrate_all {noop:.1?} ({:.2}x)",
        ratio(status),
        ratio(noop)
    );
}

/// How much `run` grows the resident set at its peak, in kB, when the
/// kernel lets the peak be reset (`/proc/self/clear_refs`).
fn rss_growth_kb(run: impl FnOnce()) -> Option<usize> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = support::status_kb("VmRSS");
    run();
    Some(support::status_kb("VmHWM").saturating_sub(before))
}

fn print_rss_growth(m: &TenantManager, tenants: usize) {
    let status = rss_growth_kb(|| assert!(m.migration_status().unwrap().all_current()));
    let noop = rss_growth_kb(|| {
        let report = m.migrate_all(&MigrateOptions::new()).unwrap();
        assert_eq!(report.up_to_date(), tenants);
    });
    if let (Some(status), Some(noop)) = (status, noop) {
        println!(
            "{tenants} tenants: RSS growth: migration_status +{status} kB, no-op migrate_all +{noop} kB"
        );
    }
}

/// The floor group's fleet: `FLOOR_TENANTS`, or as many as
/// `TENANTED_BENCH_FLOOR_TENANTS` says, at version 1.
fn floor_fleet(root: &std::path::Path) -> (TenantManager, Vec<PathBuf>) {
    let tenants = std::env::var("TENANTED_BENCH_FLOOR_TENANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(FLOOR_TENANTS);
    let m = support::builder(root, support::migrations(1))
        .build()
        .unwrap();
    support::populate(&m, tenants.min(CREATED_TENANTS));
    if tenants > CREATED_TENANTS {
        support::populate_by_copy(&m, tenants);
    }
    let files = paths(&m);
    assert_eq!(files.len(), tenants, "the fleet at {}", root.display());
    (m, files)
}

fn header_read_floor(c: &mut Criterion) {
    let temporary = tempfile::tempdir().unwrap();
    let root = std::env::var_os("TENANTED_BENCH_FLOOR_ROOT")
        .map_or_else(|| temporary.path().to_path_buf(), PathBuf::from);
    let (m, files) = floor_fleet(&root);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_floor_ratios(&m, &files, threads);
    print_rss_growth(&m, files.len());

    let mut group = c.benchmark_group(format!("{}_up_to_date_tenants_header_floor", files.len()));
    group.sample_size(if files.len() > 100_000 { 10 } else { 20 });
    group.bench_function(
        format!("floor: open + read 100 bytes + close, {threads} thread(s)"),
        |b| b.iter(|| header_floor(&files, threads)),
    );
    group.bench_function("tenanted: migration_status", |b| {
        b.iter(|| assert!(m.migration_status().unwrap().all_current()))
    });
    group.bench_function(format!("tenanted: no-op migrate_all jobs={threads}"), |b| {
        b.iter(|| {
            let report = m.migrate_all(&MigrateOptions::new().jobs(threads)).unwrap();
            assert_eq!(report.up_to_date(), files.len())
        })
    });
    group.finish();
}

/// Interleaved rounds of the floor, `usage_each` (every row to a
/// callback) and `usage` keeping the top 20, the ratios of their medians,
/// and how much each grows the resident set (flat: no row is kept).
fn print_usage_ratios(m: &TenantManager, files: &[PathBuf], threads: usize) {
    let tenants = files.len();
    let each = || {
        let mut bytes = 0u64;
        let report = m.usage_each(UsageOrder::Largest, 0, |row| bytes += row.database_bytes);
        assert_eq!(report.unwrap().tenants, tenants);
        assert!(bytes > 0);
    };
    let top = || assert_eq!(m.usage(UsageOrder::Largest, 20).unwrap().top.len(), 20);
    let rounds = if tenants > 100_000 { 5 } else { 15 };
    let (mut floor, mut streamed, mut ranked) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        assert_eq!(header_floor(files, threads), tenants as i64);
        floor.push(started.elapsed());
        let started = Instant::now();
        each();
        streamed.push(started.elapsed());
        let started = Instant::now();
        top();
        ranked.push(started.elapsed());
    }
    let (floor, streamed, ranked) = (median(floor), median(streamed), median(ranked));
    let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
    println!(
        "{tenants} tenants, {threads} thread(s): floor {floor:.1?}, usage_each {streamed:.1?} ({:.2}x), \
         usage top 20 {ranked:.1?} ({:.2}x)",
        ratio(streamed),
        ratio(ranked)
    );
    if let (Some(grew_each), Some(grew_top)) = (rss_growth_kb(each), rss_growth_kb(top)) {
        println!(
            "{tenants} tenants: RSS growth: usage_each +{grew_each} kB, usage top 20 +{grew_top} kB"
        );
    }
}

/// The fleet usage report beside the header-read floor, on the floor
/// group's fleet.
fn usage_report(c: &mut Criterion) {
    let temporary = tempfile::tempdir().unwrap();
    let root = std::env::var_os("TENANTED_BENCH_FLOOR_ROOT")
        .map_or_else(|| temporary.path().to_path_buf(), PathBuf::from);
    let (m, files) = floor_fleet(&root);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_usage_ratios(&m, &files, threads);
    let mut group = c.benchmark_group(format!("{}_tenants_usage_report", files.len()));
    group.sample_size(if files.len() > 100_000 { 10 } else { 20 });
    group.bench_function(
        format!("floor: open + read 100 bytes + close, {threads} thread(s)"),
        |b| b.iter(|| header_floor(&files, threads)),
    );
    group.bench_function("tenanted: usage_each", |b| {
        b.iter(|| m.usage_each(UsageOrder::Largest, 0, |_| {}).unwrap())
    });
    group.bench_function("tenanted: usage, top 20 largest", |b| {
        b.iter(|| m.usage(UsageOrder::Largest, 20).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    pending,
    up_to_date,
    header_read_floor,
    usage_report
);
criterion_main!(benches);
