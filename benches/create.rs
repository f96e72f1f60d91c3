//! Area 4 of BENCHMARKS.md. Creating a tenant with 50 migrations: `create_tenant` (template copy,
//! sync, atomic publish) against replaying the 50 migrations into a new
//! file, and against a raw copy of the template file (with and without
//! fsync). Creating 200 tenants: `create_tenant` each and one
//! `create_tenants`, against a plain loop of durable creates.

mod support;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tenanted::TenantManager;

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

/// A plain loop of durable creates in the default layout, the floor a
/// create is measured against: make the tenant's directory, copy the
/// template into it, fsync the copy, link it as the database, fsync the
/// tenant's directory (the link) and its bucket (the new directory).
fn durable_create_floor(template: &Path, root: &Path, names: &[String]) {
    for name in names {
        let bucket = root.join(&name[name.len() - 2..]);
        std::fs::create_dir_all(&bucket).unwrap();
        let dir = bucket.join(name);
        std::fs::create_dir(&dir).unwrap();
        let scratch = dir.join(".scratch");
        std::fs::copy(template, &scratch).unwrap();
        File::open(&scratch).unwrap().sync_all().unwrap();
        std::fs::hard_link(&scratch, dir.join("main.sqlite3")).unwrap();
        std::fs::remove_file(&scratch).unwrap();
        File::open(&dir).unwrap().sync_all().unwrap();
        File::open(&bucket).unwrap().sync_all().unwrap();
    }
}

/// 200 tenants: the floor loop, 200 `create_tenant` calls, and one
/// `create_tenants` call, each into a fresh root; prints the ratios.
fn create_many(c: &mut Criterion) {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let migrations = support::migrations(5);
    let round = AtomicUsize::new(0);
    let fresh = || {
        let root = dir
            .path()
            .join(format!("root-{}", round.fetch_add(1, Ordering::Relaxed)));
        let m = support::builder(&root, migrations.clone()).build().unwrap();
        m.create_tenant("warm-up").unwrap();
        (root, m)
    };
    let (_, warm) = fresh();
    let template = warm.root().root_dir().join(".tenanted/templates");
    let template = std::fs::read_dir(template)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite3"))
        .unwrap();
    let names: Vec<String> = (0..N).map(support::tenant).collect();
    let floor = |root: &Path| durable_create_floor(&template, &root.join("floor"), &names);
    let single = |m: &TenantManager| names.iter().for_each(|n| m.create_tenant(n).unwrap());
    let batch = |m: &TenantManager| assert!(m.create_tenants(&names).unwrap().is_success());

    let mut group = c.benchmark_group("create_200_tenants");
    group.sample_size(10);
    group.bench_function("floor: plain loop of durable creates", |b| {
        b.iter_custom(|iters| timed(iters, fresh, |(root, _)| floor(root)))
    });
    group.bench_function("tenanted: 200 x create_tenant", |b| {
        b.iter_custom(|iters| timed(iters, fresh, |(_, m)| single(m)))
    });
    group.bench_function("tenanted: create_tenants(200)", |b| {
        b.iter_custom(|iters| timed(iters, fresh, |(_, m)| batch(m)))
    });
    group.finish();

    // The same three, interleaved and repeated, for the ratios.
    let (mut f, mut s, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        f.push(timed(1, fresh, |(root, _)| floor(root)));
        s.push(timed(1, fresh, |(_, m)| single(m)));
        t.push(timed(1, fresh, |(_, m)| batch(m)));
    }
    let (f, s, t) = (median(f), median(s), median(t));
    println!(
        "create 200 tenants: floor {f:?}, create_tenant {s:?} ({:.2}x the floor), create_tenants {t:?} ({:.2}x faster than create_tenant, {:.2}x the floor)",
        s.as_secs_f64() / f.as_secs_f64(),
        s.as_secs_f64() / t.as_secs_f64(),
        t.as_secs_f64() / f.as_secs_f64(),
    );
}

/// Times `run` on `iters` fresh setups (the setup is not timed).
fn timed<S>(iters: u64, setup: impl Fn() -> S, run: impl Fn(&S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = setup();
        let started = Instant::now();
        run(&state);
        total += started.elapsed();
    }
    total
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

criterion_group!(benches, create, create_many);
criterion_main!(benches);
