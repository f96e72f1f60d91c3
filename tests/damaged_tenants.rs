//! A tenant file that holds no database (empty, which tenanted never
//! publishes, shorter than a page, or not SQLite) is reported as damaged by `connection`,
//! `migration_status`, `migrate_all` and `migrate_tenant`, naming tenant,
//! path and what to do, and is left exactly as it was; it can still be
//! destroyed. Something that is not a regular file at the name of a file
//! SQLite keeps beside a database (a named pipe, a link, a directory at
//! its `-journal`, `-wal` or `-shm`) keeps the tenant from being opened,
//! said at once, where SQLite would fail on it or wait forever.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use tenanted::{Error, MigrateOptions, TenantManager};

const NOT_SQLITE: &[u8] = b"these are somebody's notes, not a SQLite database\n";

struct Damaged {
    _dir: tempfile::TempDir,
    m: TenantManager,
    /// (tenant, path, contents) of each damaged tenant.
    files: Vec<(&'static str, PathBuf, Vec<u8>)>,
}

fn damaged_root(auto_migrate: bool) -> Damaged {
    let dir = tempfile::tempdir().unwrap();
    let m = common::builder(dir.path())
        .auto_migrate(auto_migrate)
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    // A database cut down to its header's first 50 bytes (SQLite counts
    // no page in it, and read it as a new database at version 0).
    let cut = fs::read(m.root().database_path("acme").unwrap()).unwrap()[..50].to_vec();
    let mut files = Vec::new();
    for (tenant, contents) in [
        ("empty", Vec::new()),
        ("garbage", NOT_SQLITE.to_vec()),
        ("cut", cut),
    ] {
        let path = m.root().database_path(tenant).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &contents).unwrap();
        files.push((tenant, path, contents));
    }
    Damaged {
        _dir: dir,
        m,
        files,
    }
}

fn assert_damaged(e: &Error, tenant: &str, path: &Path) {
    match e {
        Error::DamagedTenant {
            tenant: t,
            path: p,
            reason,
        } => {
            assert_eq!((t.as_str(), p.as_path()), (tenant, path));
            assert!(!reason.is_empty());
        }
        other => panic!("{tenant}: expected DamagedTenant, got {other:?}"),
    }
    let msg = e.to_string();
    for needle in [tenant, &path.display().to_string(), "backup", "destroy"] {
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
}

/// The file is byte for byte what was planted, and nothing was made
/// beside it (no -wal, -shm, lock or scratch file).
fn assert_untouched(path: &Path, contents: &[u8]) {
    assert_eq!(fs::read(path).unwrap(), contents, "{}", path.display());
    let beside: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, [path.file_name().unwrap()], "{}", path.display());
}

#[test]
fn connection_reports_a_damaged_tenant_and_leaves_it_alone() {
    for auto_migrate in [false, true] {
        let d = damaged_root(auto_migrate);
        for (tenant, path, contents) in &d.files {
            let e = d.m.connection(tenant).unwrap_err();
            assert_damaged(&e, tenant, path);
            assert_untouched(path, contents);
        }
        assert!(d.m.connection("acme").is_ok());
    }
}

#[test]
fn migration_status_reports_damaged_tenants_as_unreadable() {
    let d = damaged_root(false);
    let status = d.m.migration_status().unwrap();
    assert_eq!(status.unreadable(), 3, "{status:?}");
    for (tenant, path, contents) in &d.files {
        let line = status.tenants.iter().find(|t| t.tenant == *tenant).unwrap();
        assert_damaged(line.version.as_ref().unwrap_err(), tenant, path);
        assert_untouched(path, contents);
    }
}

#[test]
fn migrate_all_reports_damaged_tenants_as_failures_and_never_writes_them() {
    let d = damaged_root(false);
    // Back to version 0 everywhere healthy, so migrate_all has work to do.
    d.m.migrate_tenant_to("acme", 0).unwrap();
    let report = d.m.migrate_all(&MigrateOptions::default()).unwrap();
    assert_eq!((report.migrated(), report.failed()), (1, 3), "{report:?}");
    for (tenant, path, contents) in &d.files {
        let failure = report
            .failures
            .iter()
            .find(|r| r.tenant == *tenant)
            .unwrap();
        assert_damaged(failure.error.as_ref().unwrap(), tenant, path);
        assert_damaged(&d.m.migrate_tenant(tenant).unwrap_err(), tenant, path);
        assert_untouched(path, contents);
    }
}

#[test]
fn a_damaged_tenant_can_be_destroyed_and_created_again() {
    let d = damaged_root(false);
    for (tenant, path, _) in &d.files {
        d.m.destroy_tenant(tenant).unwrap();
        assert!(!path.exists());
        d.m.create_tenant(tenant).unwrap();
        d.m.connection(tenant).unwrap();
    }
}

#[test]
fn a_pipe_link_or_directory_at_a_sidecar_name_is_refused_before_sqlite_opens() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary");
    fs::write(&canary, b"untouched").unwrap();
    let root = dir.path().join("root");
    common::manager(&root).create_tenant("acme").unwrap();
    let db = common::manager(&root).root().database_path("acme").unwrap();
    for suffix in ["-journal", "-wal", "-shm"] {
        let planted = PathBuf::from(format!("{}{suffix}", db.display()));
        for kind in ["a named pipe", "a link", "a directory"] {
            match kind {
                "a named pipe" => {
                    let made = std::process::Command::new("mkfifo").arg(&planted).status();
                    assert!(made.unwrap().success());
                }
                "a link" => std::os::unix::fs::symlink(&canary, &planted).unwrap(),
                _ => fs::create_dir(&planted).unwrap(),
            }
            let what = format!("{kind} at {suffix}");
            // A manager of its own: nothing of the tenant is open yet.
            let m = common::manager(&root);
            let backups = dir.path().join(format!("backup{suffix}-{}", kind.len()));
            let (checkout, backup) = common::within_a_minute(&what, move || {
                let checkout = m.connection("acme").map(drop);
                (checkout, m.backup_tenant("acme", backups).map(drop))
            });
            for result in [checkout, backup] {
                match result {
                    Err(Error::PlantedSidecar {
                        ref tenant,
                        ref path,
                        ..
                    }) => {
                        assert_eq!((tenant.as_str(), path), ("acme", &planted), "{what}");
                        let said = result.unwrap_err().to_string();
                        assert!(said.contains("remove it"), "{what}: {said}");
                    }
                    other => panic!("{what}: expected PlantedSidecar, got {other:?}"),
                }
            }
            match kind {
                "a directory" => fs::remove_dir(&planted).unwrap(),
                _ => fs::remove_file(&planted).unwrap(),
            }
        }
    }
    assert_eq!(fs::read(&canary).unwrap(), b"untouched");
    // Removed, the tenant opens as before.
    common::manager(&root).connection("acme").unwrap();
}

/// A negative `user_version`, which no migration sets (a stray PRAGMA,
/// a damaged header), is a damaged tenant to every read alike. An
/// outside probe: read as 0, a status said every migration was pending,
/// and a backup run verified and kept a copy that every restore refuses,
/// so `--keep 1` pruned the last copy that restored.
#[test]
fn a_negative_schema_version_is_damage_to_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(&dir.path().join("root"));
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let path = m.root().database_path("acme").unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", -1)
        .unwrap();
    let damaged = |e: &Error| {
        assert_damaged(e, "acme", &path);
        assert!(e.to_string().contains("user_version"), "{e}");
    };
    damaged(&m.connection("acme").map(drop).unwrap_err());
    match m.tenant_status("acme") {
        Err(e) => damaged(&e),
        Ok(row) => damaged(row.version.as_ref().unwrap_err()),
    }
    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.unreadable()), (2, 1), "{status:?}");
    damaged(status.tenants[0].version.as_ref().unwrap_err());
    let backups = dir.path().join("backups");
    let report = m
        .backup_all(&backups, &tenanted::BackupOptions::new())
        .unwrap();
    assert_eq!(report.succeeded(), 1, "{report}");
    damaged(report.failures[0].error.as_deref().unwrap());
    let copy = tenanted::RootConfig::new(&backups).database_path("acme");
    assert!(!copy.unwrap().exists(), "no copy of acme is kept");
    let migrated = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!(migrated.failed(), 1, "{migrated}");
}
