//! Fleet migrations: parallel, one transaction per tenant, continuing past
//! failures, safe when several threads or processes migrate at once.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tenanted::{Error, MigrateOptions, Migrations, RootConfig, TenantManager};

/// A manager over the example schema cut to its first `n` migrations.
fn at_version(root: &Path, n: usize) -> TenantManager {
    let list: Vec<_> = schema().iter().take(n).cloned().collect();
    TenantManager::builder(RootConfig::new(root).buckets(16), Migrations::new(list))
        .build()
        .unwrap()
}

fn full(root: &Path) -> TenantManager {
    at_version(root, schema().latest_version())
}

/// `count` tenants, tenant i at version i % (latest + 1), each with one user.
fn mixed_fleet(root: &Path, count: usize) {
    let latest = schema().latest_version();
    let managers: Vec<_> = (0..=latest).map(|v| at_version(root, v)).collect();
    for i in 0..count {
        let v = i % (latest + 1);
        let name = format!("t{i:03}");
        managers[v].create_tenant(&name).unwrap();
        if v >= 1 {
            let conn = rusqlite::Connection::open(managers[v].root().database_path(&name).unwrap())
                .unwrap();
            conn.execute(
                "INSERT INTO users (email, name) VALUES (?1, 'x')",
                [format!("{name}@x")],
            )
            .unwrap();
        }
    }
}

fn version_of(m: &TenantManager, name: &str) -> usize {
    let conn = rusqlite::Connection::open(m.root().database_path(name).unwrap()).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

#[test]
fn two_hundred_tenants_at_mixed_versions_all_reach_latest() {
    let dir = tempfile::tempdir().unwrap();
    mixed_fleet(dir.path(), 200);
    let m = full(dir.path());
    let latest = m.migrations().latest_version();

    let mut current_before = 0;
    let before = m
        .migration_status_each(|t| current_before += usize::from(t.is_current(latest)))
        .unwrap();
    assert_eq!(before.total(), 200);
    assert_eq!(
        before.tenants.len(),
        160,
        "only the tenants behind are listed"
    );
    assert_eq!(before.current(), current_before);
    assert_eq!(before.current(), 40);
    assert_eq!(before.behind(), 160);
    assert_eq!(before.pending_migrations(), 40 * (4 + 3 + 2 + 1));
    assert!(
        before
            .to_string()
            .contains("Overall: 40/200 tenants current, 400 migration(s) pending"),
        "{before}"
    );

    let progress = Arc::new(AtomicUsize::new(0));
    let hooks = Arc::new(AtomicUsize::new(0));
    let seen_applied = Arc::new(AtomicUsize::new(0));
    let applied = Arc::clone(&seen_applied);
    let (p, hb, ha) = (
        Arc::clone(&progress),
        Arc::clone(&hooks),
        Arc::clone(&hooks),
    );
    let report = m
        .migrate_all(
            &MigrateOptions::new()
                .jobs(4)
                .on_progress(move |pr| {
                    assert_eq!(pr.total, 200);
                    p.fetch_add(1, Ordering::SeqCst);
                })
                .before_each(move |_| {
                    hb.fetch_add(1, Ordering::SeqCst);
                })
                .after_each(move |line| {
                    ha.fetch_add(1, Ordering::SeqCst);
                    applied.fetch_add(line.applied.len(), Ordering::SeqCst);
                }),
        )
        .unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        (
            report.succeeded(),
            report.migrated(),
            report.up_to_date(),
            report.failed()
        ),
        (200, 160, 40, 0)
    );
    assert_eq!(progress.load(Ordering::SeqCst), 200);
    assert_eq!(hooks.load(Ordering::SeqCst), 400);
    assert_eq!(seen_applied.load(Ordering::SeqCst), 400);
    assert!(
        report.failures.is_empty(),
        "a tenant migrated is only counted"
    );
    assert!(
        report
            .to_string()
            .contains("200/200 tenants migrated to version 4 (160 changed, 40 already there)"),
        "{report}"
    );

    let after = m.migration_status().unwrap();
    assert!(after.all_current(), "{after}");
    // A second run is a no-op.
    let again = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!((again.migrated(), again.up_to_date()), (0, 200));
}

#[test]
fn a_sabotaged_tenant_fails_alone_and_keeps_its_version_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let old = at_version(dir.path(), 2);
    for name in ["alpha", "beta", "gamma"] {
        old.create_tenant(name).unwrap();
        old.connection(name)
            .unwrap()
            .execute("INSERT INTO items (title) VALUES ('keep')", [])
            .unwrap();
    }
    // Migration 0003 creates table `changes`: make it fail in beta only.
    old.connection("beta")
        .unwrap()
        .execute_batch("CREATE TABLE changes (x);")
        .unwrap();
    drop(old);

    let m = full(dir.path());
    let report = m.migrate_all(&MigrateOptions::new().jobs(2)).unwrap();
    assert_eq!((report.succeeded(), report.failed()), (2, 1), "{report}");
    let failures: Vec<_> = report.failures.iter().collect();
    assert_eq!(failures[0].tenant, "beta");
    let err = failures[0].error.as_ref().unwrap();
    let msg = err.to_string();
    assert!(matches!(**err, Error::Migration { .. }), "{msg}");
    assert!(
        msg.contains("beta")
            && msg.contains("0003_create_changes")
            && msg.contains("already exists"),
        "{msg}"
    );
    // The script is run ended by a NUL (read in place by SQLite); no
    // message or source in the chain carries it.
    let mut chain: Option<&dyn std::error::Error> = Some(&**err);
    while let Some(e) = chain {
        assert!(!e.to_string().contains('\0'), "{e}");
        assert!(!format!("{e:?}").contains("\\0"), "{e:?}");
        chain = e.source();
    }
    assert_eq!(failures[0].to, Some(2));
    let text = report.to_string();
    assert!(
        text.contains("2/3 tenants migrated") && text.contains("1 failed: beta"),
        "{text}"
    );

    assert_eq!(version_of(&m, "alpha"), 4);
    assert_eq!(version_of(&m, "gamma"), 4);
    assert_eq!(
        version_of(&m, "beta"),
        2,
        "the failed tenant stays at its old version"
    );
    let conn = rusqlite::Connection::open(m.root().database_path("beta").unwrap()).unwrap();
    let kept: String = conn
        .query_row("SELECT title FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "keep");
    let has_position: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'position'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        has_position, 0,
        "no part of the failed transaction may stick"
    );
}

#[test]
fn fail_fast_stops_starting_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let old = at_version(dir.path(), 2);
    for i in 0..20 {
        old.create_tenant(&format!("t{i:02}")).unwrap();
    }
    // Every tenant would fail (the run's order is the file system's, not
    // the listing's): the first one taken stops the run.
    for i in 0..20 {
        old.connection(format!("t{i:02}"))
            .unwrap()
            .execute_batch("CREATE TABLE changes (x);")
            .unwrap();
    }
    drop(old);
    let report = full(dir.path())
        .migrate_all(&MigrateOptions::new().jobs(1).fail_fast(true))
        .unwrap();
    assert_eq!(report.failed(), 1, "{report}");
    assert_eq!(report.skipped.len(), 19, "{report}");
    assert!(!report.skipped.contains(&report.failures[0].tenant));
    assert!(!report.is_success());
}

/// Workers walk buckets of their own; a run stopped part way (by a
/// cancel, with buckets and tenants still in workers' hands) still
/// accounts for every tenant exactly once: done, or skipped.
#[test]
fn a_cancelled_run_accounts_for_every_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    let old = at_version(dir.path(), 2);
    let mut all: Vec<String> = (0..80).map(|i| format!("t{i:02}")).collect();
    for name in &all {
        old.create_tenant(name).unwrap();
    }
    drop(old);
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, done) = (Arc::clone(&cancel), Arc::new(AtomicUsize::new(0)));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let each = Arc::clone(&lines);
    let options = MigrateOptions::new()
        .jobs(3)
        .cancel_on(Arc::clone(&cancel))
        .after_each(move |line| {
            each.lock().unwrap().push(line.tenant.to_string());
            if done.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                flag.store(true, Ordering::SeqCst);
            }
        });
    let report = full(dir.path()).migrate_all(&options).unwrap();
    assert!(report.cancelled, "{report}");
    let lines = lines.lock().unwrap().clone();
    let mut seen: Vec<String> = (lines.into_iter())
        .chain(report.skipped.iter().map(|t| t.to_string()))
        .collect();
    seen.sort();
    all.sort();
    assert_eq!(seen, all, "{report}");
    assert!(
        report.total() >= 10 && !report.skipped.is_empty(),
        "{report}"
    );
    assert_eq!(report.total() + report.skipped.len(), 80, "{report}");
}

#[test]
fn jobs_one_and_four_give_the_same_results() {
    type Line = (String, Option<usize>, Option<usize>, Vec<String>, bool);
    let results: Vec<Vec<Line>> = [1, 4]
        .iter()
        .map(|&jobs| {
            let dir = tempfile::tempdir().unwrap();
            mixed_fleet(dir.path(), 40);
            let m = full(dir.path());
            m.connection("t002").ok();
            rusqlite::Connection::open(m.root().database_path("t007").unwrap())
                .unwrap()
                .execute_batch("CREATE TABLE changes (x);")
                .unwrap();
            // Every tenant's line, as `after_each` sees them.
            let lines = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&lines);
            let options = MigrateOptions::new().jobs(jobs).after_each(move |t| {
                seen.lock().unwrap().push((
                    t.tenant.to_string(),
                    t.from,
                    t.to,
                    t.applied.clone(),
                    t.error.is_some(),
                ))
            });
            let report = m.migrate_all(&options).unwrap();
            assert_eq!(report.total(), 40);
            let mut lines = std::mem::take(&mut *lines.lock().unwrap());
            lines.sort();
            lines
        })
        .collect();
    assert_eq!(results[0].len(), 40);
    assert_eq!(results[0], results[1]);
}

#[test]
fn only_migrates_the_canary_subset() {
    let dir = tempfile::tempdir().unwrap();
    let old = at_version(dir.path(), 1);
    for name in ["a", "b", "c"] {
        old.create_tenant(name).unwrap();
    }
    let m = full(dir.path());
    let (report, lines) = migrate_all_changed(&m, MigrateOptions::new().only(["b", "missing"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        (
            version_of(&m, "a"),
            version_of(&m, "b"),
            version_of(&m, "c")
        ),
        (1, 4, 1)
    );
    assert!(matches!(
        report.failures[0].error.as_deref(),
        Some(Error::TenantDoesNotExist { .. })
    ));
    assert!(matches!(
        m.migrate_all(&MigrateOptions::new().only(["../x"])),
        Err(Error::BadTenantName { .. })
    ));
}

#[test]
fn many_threads_migrating_one_tenant_run_it_once() {
    let dir = tempfile::tempdir().unwrap();
    at_version(dir.path(), 1).create_tenant("acme").unwrap();
    let m = full(dir.path());
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (m, outcomes) = (m.clone(), Arc::clone(&outcomes));
            std::thread::spawn(move || {
                outcomes
                    .lock()
                    .unwrap()
                    .push(m.migrate_tenant("acme").unwrap())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.iter().filter(|o| !o.applied.is_empty()).count(), 1);
    assert!(outcomes.iter().all(|o| o.to == 4));
}

#[test]
fn rollback_then_migrate_round_trip_and_migrate_to_down_and_up() {
    let dir = tempfile::tempdir().unwrap();
    let m = full(dir.path());
    m.create_tenant("acme").unwrap();
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO users (email, name) VALUES ('a@x', 'A')", [])
        .unwrap();

    let back = m.rollback_tenant("acme", 2).unwrap();
    assert_eq!((back.from, back.to), (4, 2));
    assert_eq!(
        back.applied,
        ["0004_add_item_position", "0003_create_changes"]
    );
    // The cached pool was dropped: opening now sees the pending migrations.
    assert!(matches!(
        m.connection("acme"),
        Err(Error::PendingMigration(_))
    ));

    let up = m.migrate_tenant("acme").unwrap();
    assert_eq!((up.from, up.to, up.applied.len()), (2, 4, 2));
    let down = m.migrate_tenant_to("acme", 1).unwrap();
    assert_eq!(down.to, 1);
    let users: i64 = rusqlite::Connection::open(m.root().database_path("acme").unwrap())
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1, "rolling back later migrations keeps earlier data");
    assert_eq!(m.migrate_tenant_to("acme", 4).unwrap().to, 4);
    assert!(matches!(
        m.migrate_tenant_to("acme", 9),
        Err(Error::VersionOutOfRange {
            requested: 9,
            latest: 4,
            ..
        })
    ));

    // The fleet can be moved down too.
    let (report, lines) = migrate_all_changed(&m, MigrateOptions::new().to_version(3));
    assert_eq!(lines[0].to, Some(3), "{report}");
}

#[test]
fn a_migration_without_down_cannot_be_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let list = vec![
        tenanted::Migration::new("0001_a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
        tenanted::Migration::new("0002_b", "CREATE TABLE b (x);"),
    ];
    let m = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(list))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let err = m.rollback_tenant("acme", 1).unwrap_err();
    assert!(
        matches!(&err, Error::MissingDownMigration { migration, .. } if migration == "0002_b"),
        "{err}"
    );
    assert!(err.to_string().contains("0002_b") && err.to_string().contains("down.sql"));
    assert_eq!(version_of(&m, "acme"), 2);
}

#[test]
fn unreadable_and_ahead_tenants_show_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let m = full(dir.path());
    m.create_tenant("good").unwrap();
    let junk = m.root().database_path("junk").unwrap();
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let status = at_version(dir.path(), 2).migration_status().unwrap();
    assert_eq!(
        (status.tenants.len(), status.ahead(), status.unreadable()),
        (2, 1, 1)
    );
    let text = status.to_string();
    assert!(
        text.contains("junk: ✗ unreadable") && text.contains("ahead of the code"),
        "{text}"
    );
}

/// Child half of `two_processes_migrating_at_once_both_succeed`, which
/// re-runs this test binary to run it.
#[test]
#[ignore = "child process of two_processes_migrating_at_once_both_succeed"]
fn child_process_migrate_all() {
    let Some(root) = child::root() else {
        return;
    };
    let report = full(&root)
        .migrate_all(&MigrateOptions::new().jobs(2))
        .unwrap();
    println!(
        "CHILD-REPORT failed={} succeeded={}",
        report.failed(),
        report.succeeded()
    );
    assert!(report.is_success(), "{report}");
}

#[test]
fn two_processes_migrating_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    mixed_fleet(dir.path(), 120);
    let migrators: Vec<_> = (0..2)
        .map(|_| child::spawn(&mut child::command("child_process_migrate_all", dir.path())))
        .collect();
    for migrator in migrators {
        let stdout = child::wait(migrator);
        assert!(
            stdout.contains("CHILD-REPORT failed=0 succeeded=120"),
            "{stdout}"
        );
    }
    assert!(full(dir.path()).migration_status().unwrap().all_current());
}

#[test]
fn status_sees_a_version_still_in_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let m = full(dir.path());
    m.create_tenant("acme").unwrap();
    // Keep a connection open so the change stays in the WAL, un-checkpointed:
    // the database header still says 4.
    let conn = rusqlite::Connection::open(m.root().database_path("acme").unwrap()).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    let status = m.migration_status().unwrap();
    assert_eq!(
        status.tenants[0].version.as_ref().ok(),
        Some(&2),
        "{status}"
    );
    assert_eq!(status.behind(), 1);
    drop(conn);
    assert_eq!(
        m.migration_status().unwrap().tenants[0]
            .version
            .as_ref()
            .ok(),
        Some(&2)
    );
    // The migrator's unlocked pre-read sees it too: moving to 2 is a no-op.
    let outcome = m.migrate_tenant_to("acme", 2).unwrap();
    assert_eq!((outcome.from, outcome.to, outcome.applied.len()), (2, 2, 0));
}

#[test]
fn rolling_back_more_steps_than_applied_is_an_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = full(dir.path());
    m.create_tenant("acme").unwrap();
    let err = m.rollback_tenant("acme", 100).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RollbackTooFar {
                steps: 100,
                applied: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("only 4 migration(s) applied"),
        "{err}"
    );
    assert!(
        m.connection("acme").is_ok(),
        "the tenant stays at version 4"
    );
    m.rollback_tenant("acme", 4).unwrap();
    let err = m.rollback_tenant("acme", 1).unwrap_err();
    assert!(err.to_string().contains("nothing to roll back"), "{err}");
}

/// A run takes tenants in the order their files sit on disk: each worker
/// walks a window of buckets (here 8 of the 16, then the other 8) and
/// takes their tenants by the inode number of each tenant's directory,
/// not in name or directory order: the run's order is at most two
/// ascending stretches of inode numbers, one a window (bucket by bucket,
/// it would be up to 16).
#[test]
fn a_worker_takes_its_buckets_tenants_in_inode_order() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let list = |n| schema().iter().take(n).cloned().collect::<Vec<_>>();
    let build = |n| {
        TenantManager::builder(
            RootConfig::new(dir.path()).buckets(16),
            Migrations::new(list(n)),
        )
        .build()
        .unwrap()
    };
    let old = build(2);
    for i in 0..120 {
        old.create_tenant(&format!("t{i:03}")).unwrap();
    }
    drop(old);
    let m = build(schema().latest_version());
    let taken = Arc::new(Mutex::new(Vec::new()));
    let each = Arc::clone(&taken);
    let options = MigrateOptions::new().jobs(1).after_each(move |line| {
        each.lock().unwrap().push(line.tenant.to_string());
    });
    assert!(m.migrate_all(&options).unwrap().is_success());
    let taken = taken.lock().unwrap().clone();
    assert_eq!(taken.len(), 120);
    let inodes: Vec<u64> = (taken.iter())
        .map(|t| {
            let db = m.root().database_path(t).unwrap();
            std::fs::metadata(db.parent().unwrap()).unwrap().ino()
        })
        .collect();
    let stretches = 1 + inodes.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        stretches <= 2,
        "{stretches} stretches: {taken:?}: {inodes:?}"
    );
}

/// A status of more tenants a migration behind than a report keeps lists
/// the first `KEPT_FAILURES` by name and counts every one; the text says
/// how many more there are, and `migration_status_each` still sees all.
#[test]
fn a_status_lists_at_most_a_thousand_tenants_behind_and_counts_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let count = tenanted::KEPT_FAILURES + 20;
    let names: Vec<String> = (0..count).map(|i| format!("t{i:04}")).collect();
    let created = at_version(dir.path(), 2).create_tenants(&names).unwrap();
    assert!(created.failed.is_empty());
    let m = full(dir.path());
    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.behind()), (count, count));
    assert_eq!(status.tenants.len(), tenanted::KEPT_FAILURES);
    assert_eq!(status.not_listed(), 20);
    assert!(status.tenants.is_sorted_by(|a, b| a.tenant < b.tenant));
    let text = status.to_string();
    assert!(
        text.contains("… and 20 more tenant(s) not current"),
        "{text}"
    );
    let mut seen = 0;
    m.migration_status_each(|_| seen += 1).unwrap();
    assert_eq!(seen, count);
}

/// A run that may take down only the tenants its user confirmed, each
/// from the version it was confirmed at, leaves every other tenant above
/// the target alone: one migrated up by another process after the
/// confirmation, whether it was listed or not (an outside probe: `migrate
/// --to 3 --yes` rolled back, unconfirmed, tenants another `migrate` took
/// to 4 during the run, dropping a table's rows).
#[test]
fn only_the_confirmed_tenants_go_down_and_only_from_their_confirmed_version() {
    let dir = tempfile::tempdir().unwrap();
    let latest = schema().latest_version();
    let below = at_version(dir.path(), latest - 1);
    for name in ["listed", "moved", "unlisted"] {
        below.create_tenant(name).unwrap();
    }
    let m = full(dir.path());
    m.migrate_tenant("listed").unwrap();
    // Confirmed at the latest: "listed" and "moved" (moved is listed at
    // latest - 1, its version when the plan was shown).
    let confirmed = [("listed", latest), ("moved", latest - 1)];
    // After the confirmation, another process migrates both others up.
    m.migrate_tenant("moved").unwrap();
    m.migrate_tenant("unlisted").unwrap();
    let options = MigrateOptions::new()
        .to_version(latest - 1)
        .allow_down_only(confirmed);
    let report = m.migrate_all(&options).unwrap();
    assert_eq!((report.migrated(), report.failed()), (1, 2), "{report}");
    for failure in &report.failures {
        let error = failure.error.as_deref();
        assert!(
            matches!(error, Some(Error::DownNotAllowed { .. })),
            "{error:?}"
        );
    }
    assert_eq!(version_of(&m, "listed"), latest - 1);
    assert_eq!(version_of(&m, "moved"), latest);
    assert_eq!(version_of(&m, "unlisted"), latest);
}
