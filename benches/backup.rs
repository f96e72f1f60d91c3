//! Backing up a tenant with 10 MB of data while another thread writes to
//! it: `backup_tenant` (SQLite's online backup API in one step, then
//! `journal_mode = DELETE`, fsync, rename) against `VACUUM INTO` + fsync of
//! the same tenant, and against the baseline, a plain `fs::copy` + fsync of
//! its database file (not a consistent copy while it is written: the
//! floor, not an alternative). Also `restore_tenant` against
//! `create_tenant` for the same database, and `backup_all` of 1,000 small
//! tenants with 1 and 2 jobs.

mod support;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tenanted::{Migration, Migrations, TenantManager};

/// 2,560 rows of 4 KiB: 10 MiB of data.
fn fill(m: &TenantManager) {
    m.create_tenant("big").unwrap();
    let conn = m.connection("big").unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2560)
         INSERT INTO blobs (data) SELECT randomblob(4096) FROM n;",
    )
    .unwrap();
}

/// Writes small rows to `big` until `stop`, a few hundred a second.
fn writer(m: &TenantManager, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let conn = m.connection("big").unwrap();
        conn.execute("INSERT INTO log (at) VALUES (datetime('now'))", [])
            .unwrap();
        drop(conn);
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sync(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

fn backup(c: &mut Criterion) {
    // On the disk the crate is built on, not a tmpfs: fsyncs are real.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let migrations = Migrations::new(vec![Migration::new(
        "0001_blobs",
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         CREATE TABLE log (id INTEGER PRIMARY KEY, at TEXT NOT NULL);",
    )]);
    let m = support::builder(&dir.path().join("root"), migrations)
        .build()
        .unwrap();
    fill(&m);
    let source = m.root().database_path("big").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let n = AtomicUsize::new(0);
    let next = || n.fetch_add(1, Ordering::Relaxed);
    let stop = AtomicBool::new(false);

    std::thread::scope(|scope| {
        scope.spawn(|| writer(&m, &stop));
        let mut group = c.benchmark_group("backup_10MB_while_writing");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.bench_function("baseline: fs::copy + fsync", |b| {
            b.iter(|| {
                let to = out.join(format!("copy-{}", next()));
                std::fs::copy(&source, &to).unwrap();
                sync(&to);
                std::fs::remove_file(&to).unwrap();
            })
        });
        group.bench_function("VACUUM INTO + fsync", |b| {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = rusqlite::Connection::open_with_flags(&source, flags).unwrap();
            b.iter(|| {
                let to = out.join(format!("vacuum-{}", next()));
                conn.execute("VACUUM INTO ?1", [to.to_str().unwrap()])
                    .unwrap();
                sync(&to);
                std::fs::remove_file(&to).unwrap();
            })
        });
        group.bench_function("online backup API (one step) + fsync", |b| {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = rusqlite::Connection::open_with_flags(&source, flags).unwrap();
            b.iter(|| {
                let to = out.join(format!("api-{}", next()));
                let mut copy = rusqlite::Connection::open(&to).unwrap();
                copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
                    .unwrap();
                let backup = rusqlite::backup::Backup::new(&conn, &mut copy).unwrap();
                while backup.step(-1).unwrap() != rusqlite::backup::StepResult::Done {}
                drop(backup);
                drop(copy);
                sync(&to);
                std::fs::remove_file(&to).unwrap();
            })
        });
        group.bench_function("tenanted: backup_tenant (online backup API)", |b| {
            b.iter(|| {
                let to = out.join(format!("backup-{}", next()));
                m.backup_tenant("big", &to).unwrap();
                std::fs::remove_file(&to).unwrap();
            })
        });
        group.finish();
        stop.store(true, Ordering::Relaxed);
    });
}

/// `restore_tenant` of a backup of a new tenant against `create_tenant`
/// (a copy of the template database): the same database, the same size.
fn restore(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let m = support::builder(&dir.path().join("root"), support::migrations(50))
        .build()
        .unwrap();
    m.create_tenant("model").unwrap();
    let backup = dir.path().join("model.sqlite3");
    m.backup_tenant("model", &backup).unwrap();
    let n = AtomicUsize::new(0);
    let next = || n.fetch_add(1, Ordering::Relaxed);
    let mut group = c.benchmark_group("restore_vs_create_50_migrations");
    group.sample_size(20);
    group.bench_function("baseline: create_tenant", |b| {
        b.iter(|| m.create_tenant(&support::tenant(next())).unwrap())
    });
    group.bench_function("tenanted: restore_tenant", |b| {
        b.iter(|| m.restore_tenant(&support::tenant(next()), &backup).unwrap())
    });
    group.finish();
}

/// `backup_all` of 1,000 small tenants with 1 and 2 jobs.
fn backup_all(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let m = support::builder(&dir.path().join("root"), support::migrations(5))
        .build()
        .unwrap();
    support::populate(&m, 1000);
    let n = AtomicUsize::new(0);
    let next = || n.fetch_add(1, Ordering::Relaxed);
    let mut group = c.benchmark_group("backup_all_1000_tenants");
    group.sample_size(10);
    for jobs in [1, 2] {
        group.bench_function(format!("jobs {jobs}"), |b| {
            b.iter(|| {
                let to = dir.path().join(format!("backup-{}", next()));
                let options = tenanted::BackupOptions::new().jobs(jobs);
                assert!(m.backup_all(&to, &options).unwrap().is_success());
                std::fs::remove_dir_all(&to).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, backup, restore, backup_all);
criterion_main!(benches);
