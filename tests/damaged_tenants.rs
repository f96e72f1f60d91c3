//! A tenant file that holds no database (empty, which tenanted never
//! publishes, or not SQLite) is reported as damaged by `connection`,
//! `migration_status`, `migrate_all` and `migrate_tenant`, naming tenant,
//! path and what to do, and is left exactly as it was; it can still be
//! destroyed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use tenanted::{Error, MigrateOptions, TenantManager};

const NOT_SQLITE: &[u8] = b"these are somebody's notes, not a SQLite database\n";

struct Damaged {
    _dir: tempfile::TempDir,
    m: TenantManager,
    /// (tenant, path, contents) of each damaged tenant.
    files: Vec<(&'static str, PathBuf, &'static [u8])>,
}

fn damaged_root(auto_migrate: bool) -> Damaged {
    let dir = tempfile::tempdir().unwrap();
    let m = common::builder(dir.path())
        .auto_migrate(auto_migrate)
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let mut files = Vec::new();
    for (tenant, contents) in [("empty", &b""[..]), ("garbage", NOT_SQLITE)] {
        let path = m.root().database_path(tenant).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
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
    assert_eq!(status.unreadable(), 2, "{status:?}");
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
    assert_eq!((report.migrated(), report.failed()), (1, 2), "{report:?}");
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
