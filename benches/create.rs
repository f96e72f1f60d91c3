//! Area 4 of BENCHMARKS.md. Creating a tenant with 50 migrations: `create_tenant` (template copy,
//! sync, atomic publish) against replaying the 50 migrations into a new
//! file, and against a raw copy of the template file (with and without
//! fsync).

mod support;

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};

fn create(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let migrations = support::migrations(50);
    let m = support::builder(&dir.path().join("root"), migrations.clone())
        .build()
        .unwrap();
    m.create_tenant("warm-up").unwrap();
    let template = std::fs::read_dir(dir.path().join("root/.tenanted/templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite3"))
        .unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let n = AtomicUsize::new(0);
    let next = || n.fetch_add(1, Ordering::Relaxed);

    let mut group = c.benchmark_group("create_50_migrations");
    group.sample_size(20);
    group.bench_function("baseline: raw file copy", |b| {
        b.iter(|| std::fs::copy(&template, scratch.join(format!("raw-{}", next()))).unwrap())
    });
    group.bench_function("baseline: raw file copy + fsync", |b| {
        b.iter(|| {
            let to = scratch.join(format!("raw-sync-{}", next()));
            std::fs::copy(&template, &to).unwrap();
            File::open(&to).unwrap().sync_all().unwrap();
        })
    });
    group.bench_function("baseline: replay 50 migrations", |b| {
        b.iter(|| {
            let mut conn =
                rusqlite::Connection::open(scratch.join(format!("replay-{}", next()))).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            let list: Vec<_> = migrations
                .iter()
                .map(|m| rusqlite_migration::M::up(m.up_sql()))
                .collect();
            rusqlite_migration::Migrations::new(list)
                .to_latest(&mut conn)
                .unwrap();
        })
    });
    group.bench_function("tenanted: create_tenant (template)", |b| {
        b.iter(|| m.create_tenant(&support::tenant(next())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, create);
criterion_main!(benches);
