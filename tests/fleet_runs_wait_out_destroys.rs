//! A fleet run that meets a tenant whose destroy is still running (it
//! waits for another process to let go) waits for the destroy to decide:
//! a destroy that gives up leaves the tenant in the run, one that goes
//! through leaves it out as gone. Before, the walk skipped every tenant a
//! destroy had marked, so a backup run taken during a destroy that then
//! gave up reported success without a tenant that lived on (an outside
//! probe: `tenanted backup` exited 0 while `destroy` failed `TenantBusy`).
//!
//! The holder is a separate process with a plain SQLite connection, as a
//! `sqlite3` shell or another program would hold the file.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::child;
use tenanted::{
    BackupOptions, Error, MigrateOptions, Migrations, RestoreOptions, RootConfig, TenantManager,
    UsageOrder,
};

/// Long enough for the run to start inside the destroy's wait.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(3);

fn manager(root: &Path, destroy_timeout: Duration) -> TenantManager {
    common::builder(root)
        .destroy_timeout(destroy_timeout)
        .build()
        .unwrap()
}

/// `keep` and `other`, each with a row, and a child process holding
/// `keep`'s database open (until the stop file, or for `hold`).
fn fleet_with_a_held_tenant(root: &Path, m: &TenantManager) -> (std::process::Child, PathBuf) {
    for name in ["keep", "other"] {
        m.create_tenant(name).unwrap();
        let conn = m.connection(name).unwrap();
        conn.execute("INSERT INTO notes (body) VALUES (?1)", [name])
            .unwrap();
    }
    let out = root.with_extension("holder.out");
    let holder = child::spawn_logged("child_holds_keep_open", root, &out);
    child::wait_for_word(&out, "HELD");
    (holder, out)
}

/// [`fleet_with_a_held_tenant`], made by a manager one migration behind
/// the tests' (`migrate_all` has work on both tenants).
fn a_migration_behind_with_a_held_tenant(root: &Path) -> (std::process::Child, PathBuf) {
    let two: Vec<_> = common::three_migrations().into_iter().take(2).collect();
    let older = TenantManager::builder(RootConfig::new(root), Migrations::new(two))
        .build()
        .unwrap();
    fleet_with_a_held_tenant(root, &older)
}

/// Waits (a minute at most) until a destroy of `keep` has marked it.
fn wait_for_the_destroy_mark(root: &Path) {
    let entry = RootConfig::new(root).database_path("keep").unwrap();
    let entry = entry.parent().unwrap();
    let mark = entry.with_file_name(".keep.destroying");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::symlink_metadata(&mark).is_err() {
        assert!(Instant::now() < deadline, "no destroy mark at {mark:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn notes_in(copy: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(copy).unwrap();
    let mut stmt = conn.prepare("SELECT body FROM notes").unwrap();
    let rows = stmt.query_map([], |row| row.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_backup_during_a_destroy_that_gives_up_keeps_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, DESTROY_TIMEOUT);
    let (holder, out) = fleet_with_a_held_tenant(&root, &m);
    let backups = dir.path().join("backups");
    let (destroyed, report) = std::thread::scope(|s| {
        let destroying = s.spawn(|| m.destroy_tenant("keep"));
        wait_for_the_destroy_mark(&root);
        let report = m.backup_all(&backups, &BackupOptions::new()).unwrap();
        (destroying.join().unwrap(), report)
    });
    std::fs::write(child::stop_file(&root), b"").unwrap();
    child::wait_logged(holder, &out);
    assert!(
        matches!(destroyed, Err(Error::TenantBusy { .. })),
        "the holder outlasts the destroy: {destroyed:?}"
    );
    assert!(m.tenant_exists("keep").unwrap());
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(report.succeeded(), 2, "both tenants copied: {report}");
    let layout = RootConfig::new(&backups);
    assert_eq!(notes_in(&layout.database_path("keep").unwrap()), ["keep"]);
    assert_eq!(notes_in(&layout.database_path("other").unwrap()), ["other"]);
}

#[test]
fn a_backup_during_a_destroy_that_goes_through_leaves_the_tenant_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, Duration::from_secs(60));
    let (holder, out) = fleet_with_a_held_tenant(&root, &m);
    let backups = dir.path().join("backups");
    let (destroyed, report, usage) = std::thread::scope(|s| {
        let destroying = s.spawn(|| m.destroy_tenant("keep"));
        wait_for_the_destroy_mark(&root);
        // The holder lets go while the runs wait for the destroy (or
        // before they walk: either way the tenant is gone, and that is no
        // failure, nor a tenant; a usage run reported it failed).
        let letting_go = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(child::stop_file(&root), b"").unwrap();
        });
        let usage = s.spawn(|| m.usage(UsageOrder::Largest, 10).unwrap());
        let report = m.backup_all(&backups, &BackupOptions::new()).unwrap();
        letting_go.join().unwrap();
        (destroying.join().unwrap(), report, usage.join().unwrap())
    });
    child::wait_logged(holder, &out);
    destroyed.unwrap();
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(report.succeeded(), 1, "only other copied: {report}");
    assert!(usage.failed.is_empty(), "{:?}", usage.failed);
    assert_eq!(usage.tenants, 1, "{usage:?}");
    let layout = RootConfig::new(&backups);
    assert!(!layout.database_path("keep").unwrap().exists());
    assert_eq!(notes_in(&layout.database_path("other").unwrap()), ["other"]);
}

#[test]
fn a_status_during_a_destroy_that_gives_up_lists_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, DESTROY_TIMEOUT);
    let (holder, out) = fleet_with_a_held_tenant(&root, &m);
    let (destroyed, status) = std::thread::scope(|s| {
        let destroying = s.spawn(|| m.destroy_tenant("keep"));
        wait_for_the_destroy_mark(&root);
        let status = m.migration_status();
        (destroying.join().unwrap(), status.unwrap())
    });
    std::fs::write(child::stop_file(&root), b"").unwrap();
    child::wait_logged(holder, &out);
    assert!(matches!(destroyed, Err(Error::TenantBusy { .. })));
    assert_eq!(
        (status.total(), status.current()),
        (2, 2),
        "keep is read once its destroy gave up: {status:?}"
    );
}

#[test]
fn a_migration_run_during_a_destroy_that_gives_up_migrates_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (holder, out) = a_migration_behind_with_a_held_tenant(&root);
    let m = manager(&root, DESTROY_TIMEOUT);
    let (destroyed, report) = std::thread::scope(|s| {
        let destroying = s.spawn(|| m.destroy_tenant("keep"));
        wait_for_the_destroy_mark(&root);
        let report = m.migrate_all(&MigrateOptions::new()).unwrap();
        (destroying.join().unwrap(), report)
    });
    std::fs::write(child::stop_file(&root), b"").unwrap();
    child::wait_logged(holder, &out);
    assert!(matches!(destroyed, Err(Error::TenantBusy { .. })));
    assert!(report.is_success(), "{report}");
    assert_eq!(report.migrated(), 2, "both tenants migrated: {report}");
    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.current()), (2, 2), "{status:?}");
}

#[test]
fn a_migration_run_during_a_destroy_that_goes_through_skips_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (holder, out) = a_migration_behind_with_a_held_tenant(&root);
    let m = manager(&root, Duration::from_secs(60));
    let (destroyed, report) = std::thread::scope(|s| {
        let destroying = s.spawn(|| m.destroy_tenant("keep"));
        wait_for_the_destroy_mark(&root);
        let letting_go = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(child::stop_file(&root), b"").unwrap();
        });
        let report = m.migrate_all(&MigrateOptions::new()).unwrap();
        letting_go.join().unwrap();
        (destroying.join().unwrap(), report)
    });
    child::wait_logged(holder, &out);
    destroyed.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.migrated(), 1, "only other migrated: {report}");
}

/// The same wait in a layout without a directory per tenant, where the
/// marks are beside the database file: a read of a tenant that a restore
/// replaces waits for the restore's lock, not a bucket's nobody holds (a
/// review: the tenant was said to be gone at once).
#[test]
fn a_backup_during_a_replace_in_a_flat_layout_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let flat = || RootConfig::new(&root).template(FLAT);
    let m = TenantManager::builder(flat(), common::schema())
        .destroy_timeout(DESTROY_TIMEOUT)
        .build()
        .unwrap();
    m.create_tenant("keep").unwrap();
    let conn = m.connection("keep").unwrap();
    conn.execute("INSERT INTO users (email, name) VALUES ('a@b', 'kept')", [])
        .unwrap();
    drop(conn);
    let backup = dir.path().join("keep.bak");
    m.backup_tenant("keep", &backup).unwrap();
    let out = root.with_extension("holder.out");
    let holder = child::spawn_logged("child_holds_flat_keep_open", &root, &out);
    child::wait_for_word(&out, "HELD");
    let db = flat().database_path("keep").unwrap();
    let mark = db.with_file_name(".keep.sqlite3.restoring");
    let copy = dir.path().join("during.bak");
    let replace = RestoreOptions::new().replace(true);
    let (restored, copied) = std::thread::scope(|s| {
        let restoring = s.spawn(|| m.restore_tenant_opts("keep", &backup, &replace));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::symlink_metadata(&mark).is_err() || db.exists() {
            assert!(Instant::now() < deadline, "the restore never fenced keep");
            std::thread::sleep(Duration::from_millis(2));
        }
        let copied = m.backup_tenant("keep", &copy);
        (restoring.join().unwrap(), copied)
    });
    std::fs::write(child::stop_file(&root), b"").unwrap();
    child::wait_logged(holder, &out);
    assert!(
        matches!(restored, Err(Error::TenantBusy { .. })),
        "{restored:?}"
    );
    copied.expect("copied once the restore gave up");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "kept");
}

const FLAT: &str = "%{bucket}/%{tenant}.sqlite3";

/// Waiting out a destroy costs a fleet run nothing where none runs: its
/// walk looks at no tenant's lock file unless a mark says to (the first
/// version probed one per tenant: a status of 2,000 tenants opened 2,000
/// lock files that were not there).
#[cfg(feature = "testing")]
#[test]
fn a_fleet_walk_looks_at_no_lock_of_an_unmarked_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), DESTROY_TIMEOUT);
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    for name in &names {
        m.create_tenant(name).unwrap();
    }
    let plan = tenanted::testing::faults::FaultPlan::record();
    let status = m.migration_status().unwrap();
    let usage = m.usage(UsageOrder::Largest, 5).unwrap();
    let steps = plan.steps();
    drop(plan);
    assert_eq!((status.total(), usage.tenants), (20, 20));
    let lock_probes: Vec<_> = steps
        .iter()
        .filter(|s| s.name.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(lock_probes.is_empty(), "{lock_probes:?}");
}

#[test]
#[ignore = "child process of the tests above"]
fn child_holds_flat_keep_open() {
    let Some(root) = child::root() else { return };
    let path = RootConfig::new(&root).template(FLAT).database_path("keep");
    hold(&path.unwrap(), &root);
}

#[test]
#[ignore = "child process of the tests above"]
fn child_holds_keep_open() {
    let Some(root) = child::root() else { return };
    let path = RootConfig::new(&root).database_path("keep").unwrap();
    hold(&path, &root);
}

/// Holds the database at `path` open until the stop file of `root`.
fn hold(path: &Path, root: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    println!("HELD {tables}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !child::stop_file(root).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(conn);
    println!("LET GO");
}
