//! One tenant migrated by one long migration (`TENANTED_BENCH_STATEMENTS`
//! INSERT statements, default 40,000), beside two floors, interleaved, as
//! ratios:
//!
//! - the loop a user of `rusqlite_migration` gets: the script run by
//!   `rusqlite_migration` (rusqlite's `execute_batch`) on the file, in one
//!   transaction;
//! - the same script, ended by a NUL, run by `execute_batch` in one
//!   transaction: what SQLite costs when it reads the script in place.
//!
//! Given a length that does not count a NUL, SQLite copies what is left of
//! a script before each statement it prepares, so the first floor grows
//! with the square of the statements. `migrate_tenant` also runs the
//! migrations once on an empty database first (once per `Migrations`), a
//! cost the floors do not have; each round builds `Migrations` anew, so it
//! is paid in every round.
//!
//! `cargo bench --bench large_migration`

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::Connection;
use tenanted::{Migration, Migrations, RootConfig, TenantManager};

fn script(statements: usize) -> String {
    let mut sql = String::from("CREATE TABLE big (x INTEGER);\n");
    for i in 0..statements {
        sql.push_str(&format!("INSERT INTO big VALUES ({i});\n"));
    }
    sql
}

fn migrations(up: Option<&str>) -> Migrations {
    let mut list: Vec<Migration> = support::migrations(1).iter().cloned().collect();
    if let Some(up) = up {
        list.push(Migration::new("0002_big", up));
    }
    Migrations::new(list)
}

/// A fresh tenant at version 1 under a new root in `dir`: its file.
fn fresh(dir: &Path, round: usize) -> (PathBuf, PathBuf) {
    let root = dir.join(format!("root-{round}"));
    let m = TenantManager::builder(RootConfig::new(&root), migrations(None))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    (root, db)
}

fn plain(db: &Path, up: &str) -> Duration {
    let mut conn = Connection::open(db).unwrap();
    let started = Instant::now();
    let list = migrations(Some(up));
    let engine = rusqlite_migration::Migrations::new(
        list.iter()
            .map(|m| rusqlite_migration::M::up(m.up_sql()))
            .collect(),
    );
    engine.to_latest(&mut conn).unwrap();
    started.elapsed()
}

fn in_place(db: &Path, up: &str) -> Duration {
    let mut conn = Connection::open(db).unwrap();
    let terminated = format!("{up}\0");
    let started = Instant::now();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(&terminated).unwrap();
    tx.pragma_update(None, "user_version", 2).unwrap();
    tx.commit().unwrap();
    started.elapsed()
}

fn tenanted(root: &Path, up: &str) -> Duration {
    let started = Instant::now();
    let m = TenantManager::builder(RootConfig::new(root), migrations(Some(up)))
        .build()
        .unwrap();
    let outcome = m.migrate_tenant("acme").unwrap();
    assert_eq!(outcome.to, 2);
    started.elapsed()
}

fn large_migration(_c: &mut Criterion) {
    let statements: usize = std::env::var("TENANTED_BENCH_STATEMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40_000);
    let up = script(statements);
    let dir = tempfile::tempdir().unwrap();
    let (mut plains, mut places, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let (_, db) = fresh(dir.path(), 3 * round);
        plains.push(plain(&db, &up));
        let (_, db) = fresh(dir.path(), 3 * round + 1);
        places.push(in_place(&db, &up));
        let (root, _) = fresh(dir.path(), 3 * round + 2);
        ours.push(tenanted(&root, &up));
    }
    let (plain, place, ours) = (
        support::median(plains),
        support::median(places),
        support::median(ours),
    );
    let ratio = |d: Duration| ours.as_secs_f64() / d.as_secs_f64();
    println!(
        "one migration of {statements} statements (load {}): migrate_tenant {ours:.1?}; \
         rusqlite_migration {plain:.1?} ({:.2}x); execute_batch in place {place:.1?} ({:.2}x)",
        support::load(),
        ratio(plain),
        ratio(place)
    );
}

criterion_group!(benches, large_migration);
criterion_main!(benches);
