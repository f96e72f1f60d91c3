//! A tenant that a restore with replace or a re-key is replacing exists
//! throughout: the operation puts the old database back or swaps the new
//! one in, never neither. So while one runs (in another process, here its
//! marks on disk and its entry lock held as it holds them), the tenant is
//! still listed, and a backup run waits for the operation and copies the
//! tenant, instead of leaving it out and reporting success without it.
//! One that died (killed between its fence and its swap) leaves the
//! tenant listed too, and a fleet run, in another process, puts it back
//! before it reads it.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tenanted::{BackupOptions, Error, Migrations, RootConfig, TenantManager, UsageOrder};

fn manager(root: &Path) -> TenantManager {
    TenantManager::builder(
        RootConfig::new(root),
        Migrations::new(common::three_migrations()),
    )
    .build()
    .unwrap()
}

/// An operation replacing `acme`, midway, as another process leaves it on
/// disk: the entry lock held, the restore's mark beside the tenant's
/// directory, its database moved to the fence's name. Undone on drop, as
/// an operation that gives up puts the tenant back.
struct ReplaceMidway {
    _lock: File,
    lock: PathBuf,
    mark: PathBuf,
    db: PathBuf,
    fenced: PathBuf,
}

impl ReplaceMidway {
    fn begin(root: &Path, tenant: &str) -> Self {
        Self::held_for(root, tenant, "restore")
    }

    /// The marks of a replace, with the entry lock held by a holder that
    /// says it is doing `word`.
    fn held_for(root: &Path, tenant: &str, word: &str) -> Self {
        let db = RootConfig::new(root).database_path(tenant).unwrap();
        let dir = db.parent().unwrap();
        let bucket = dir.parent().unwrap();
        let lock = bucket.join(format!(".{tenant}.lock"));
        let held = File::create(&lock).unwrap();
        held.lock().unwrap();
        // What the holder writes there once it holds the lock.
        std::fs::write(&lock, format!("{word}\n")).unwrap();
        let mark = bucket.join(format!(".{tenant}.restoring"));
        File::create(&mark).unwrap();
        let fenced = dir.join(".main.sqlite3.destroying");
        std::fs::rename(&db, &fenced).unwrap();
        ReplaceMidway {
            _lock: held,
            lock,
            mark,
            db,
            fenced,
        }
    }
}

impl Drop for ReplaceMidway {
    fn drop(&mut self) {
        std::fs::rename(&self.fenced, &self.db).unwrap();
        std::fs::remove_file(&self.mark).unwrap();
        std::fs::remove_file(&self.lock).unwrap();
    }
}

fn names(m: &TenantManager) -> Vec<String> {
    let listed = m.tenants().unwrap().map(|t| t.unwrap().to_string());
    listed.collect()
}

#[test]
fn a_tenant_being_replaced_is_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let midway = ReplaceMidway::begin(dir.path(), "acme");
    assert_eq!(names(&m), ["acme", "globex"]);
    drop(midway);
    assert_eq!(names(&m), ["acme", "globex"]);
}

/// What a replace killed between its fence and its swap leaves of
/// `tenant`: its mark beside the tenant's directory, the database under
/// the fence's name, and no lock held.
fn plant_dead_replace(root: &Path, tenant: &str) -> PathBuf {
    let db = RootConfig::new(root).database_path(tenant).unwrap();
    let dir = db.parent().unwrap();
    File::create(dir.parent().unwrap().join(format!(".{tenant}.restoring"))).unwrap();
    std::fs::rename(&db, dir.join(".main.sqlite3.destroying")).unwrap();
    db
}

/// A replace that died leaves its marks: the tenant is still there, old
/// or new, once what it left is put back, so it is listed and exists,
/// and another holder of its lock (a migration waiting to put it back, a
/// read) changes nothing. It was left out of listings until a checkout
/// or a sweep put it back, and a backup run reported success without it.
#[test]
fn a_dead_replace_leaves_the_tenant_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let midway = ReplaceMidway::held_for(dir.path(), "acme", "migration");
    assert_eq!(names(&m), ["acme", "globex"]);
    assert!(m.tenant_exists("acme").unwrap());
    drop(midway);
    plant_dead_replace(dir.path(), "acme");
    assert_eq!(names(&m), ["acme", "globex"]);
    assert!(m.tenant_exists("acme").unwrap());
}

/// Backs the child's root up into `ROOT/../backup`, and prints the
/// report's counts.
#[test]
#[ignore = "child process of the test below"]
fn child_backs_up() {
    let Some(root) = common::child::root() else {
        return;
    };
    let report = manager(&root)
        .backup_all(root.with_file_name("backup"), &BackupOptions::new())
        .unwrap();
    println!(
        "counts {} {} {}",
        report.succeeded(),
        report.failed(),
        report.gone()
    );
}

/// A backup run in another process meets a tenant a dead replace left
/// fenced off: it puts the old database back (with the commits of its
/// `-wal`) and copies it; status and usage then count it. Before, the
/// run left the tenant out and reported success.
#[test]
fn fleet_runs_put_back_and_read_what_a_dead_replace_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    // By a manager that lets go of the tenant (a fenced database this
    // process has open is never put back by it).
    (manager(&root).connection("acme").unwrap())
        .execute("INSERT INTO notes (body) VALUES ('kept')", [])
        .unwrap();
    m.prune_idle(Duration::ZERO);
    let db = plant_dead_replace(&root, "acme");
    let out = common::child::command("child_backs_up", &root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("counts 2 0 0"), "{said}");
    assert!(db.is_file(), "the old database is back in place");
    let copies = manager(&dir.path().join("backup"));
    let body: String = (copies.connection("acme").unwrap())
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "kept");
    // A run over named tenants reads it the same way (it was "gone").
    plant_dead_replace(&root, "acme");
    let named = BackupOptions::new().only(["acme"]);
    let report = m.backup_all(dir.path().join("named"), &named).unwrap();
    assert_eq!((report.succeeded(), report.gone()), (1, 0), "{report}");
    // The same for status and usage, in this process.
    plant_dead_replace(&root, "acme");
    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.current()), (2, 2), "{status:?}");
    plant_dead_replace(&root, "acme");
    let usage = m.usage(UsageOrder::Largest, 10).unwrap();
    assert_eq!((usage.tenants, usage.top.len()), (2, 2), "{usage:?}");
    assert!(usage.failed.is_empty(), "{usage:?}");
}

#[test]
fn a_tenant_being_destroyed_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let db = RootConfig::new(dir.path()).database_path("acme").unwrap();
    let bucket = db.parent().unwrap().parent().unwrap();
    File::create(bucket.join(".acme.destroying")).unwrap();
    let fenced = db.parent().unwrap().join(".main.sqlite3.destroying");
    std::fs::rename(&db, fenced).unwrap();
    assert_eq!(names(&m), ["globex"]);
}

#[test]
fn a_backup_run_waits_for_a_replace_and_copies_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path().join("root").as_path());
    let root = dir.path().join("root");
    m.create_tenant("acme").unwrap();
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES ('kept')", [])
        .unwrap();
    m.create_tenant("globex").unwrap();
    let midway = ReplaceMidway::begin(&root, "acme");
    std::thread::scope(|s| {
        let backup = s.spawn(|| m.backup_all(dir.path().join("backup"), &BackupOptions::new()));
        // The run meets the tenant fenced off, and waits.
        std::thread::sleep(Duration::from_millis(300));
        drop(midway);
        let report = backup.join().unwrap().unwrap();
        assert!(report.is_success(), "{report}");
        assert_eq!((report.succeeded(), report.gone()), (2, 0), "{report}");
    });
    let copies = manager(&dir.path().join("backup"));
    let conn = copies.connection("acme").unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "kept");
}

#[test]
fn a_backup_of_a_tenant_held_past_the_wait_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let _midway = ReplaceMidway::begin(&root, "acme");
    let err = m
        .backup_tenant("acme", dir.path().join("acme.sqlite3"))
        .unwrap_err();
    assert!(matches!(err, Error::TenantBusy { .. }), "{err:?}");
}

#[test]
fn status_and_usage_wait_for_a_replace_and_count_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let midway = ReplaceMidway::begin(dir.path(), "acme");
    std::thread::scope(|s| {
        let status = s.spawn(|| m.migration_status().unwrap());
        let usage = s.spawn(|| m.usage(UsageOrder::Largest, 10).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        drop(midway);
        let status = status.join().unwrap();
        assert_eq!((status.total(), status.current()), (2, 2), "{status:?}");
        let usage = usage.join().unwrap();
        assert_eq!((usage.tenants, usage.top.len()), (2, 2), "{usage:?}");
        assert!(usage.failed.is_empty(), "{usage:?}");
    });
}

/// A limit or a suspension set while a replace runs waits for it and
/// holds on the tenant it leaves (a review: refused, "does not exist",
/// though the tenant was listed).
#[test]
fn a_limit_set_during_a_replace_waits_for_it_and_holds() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    let midway = ReplaceMidway::begin(dir.path(), "acme");
    std::thread::scope(|s| {
        let setting = s.spawn(|| m.set_tenant_max_size("acme", Some(1 << 20)));
        std::thread::sleep(Duration::from_millis(300));
        drop(midway);
        setting.join().unwrap().unwrap();
    });
    assert_eq!(m.tenant_limits("acme").unwrap().max_size, Some(1 << 20));
}

/// A tenant a dead replace left fenced off while a connection of this
/// process is still on the fenced file is not put back under it (the
/// connection's locks would be lost): a backup run says it failed, and
/// why, never that the tenant is gone.
#[test]
fn a_tenant_that_cannot_be_put_back_yet_is_a_failure_not_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let held = m.connection("acme").unwrap();
    plant_dead_replace(&root, "acme");
    let report = m
        .backup_all(dir.path().join("backup"), &BackupOptions::new())
        .unwrap();
    assert_eq!((report.failed(), report.gone()), (1, 0), "{report}");
    assert!(report.to_string().contains("tenanted cleanup"), "{report}");
    drop(held);
    m.prune_idle(Duration::ZERO);
    let again = m
        .backup_all(dir.path().join("again"), &BackupOptions::new())
        .unwrap();
    assert_eq!((again.succeeded(), again.gone()), (1, 0), "{again}");
}
