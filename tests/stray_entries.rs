//! An entry put in the root by hand where its layout has tenants, which
//! tenanted does not take for one (a symbolic link where a bucket or a
//! tenant's directory belongs, a file there, a name that is no tenant
//! name, a tenant moved into a bucket not its own), is never followed or
//! read, and every fleet run (`migration_status`, `migrate_all`,
//! `backup_all`, `usage`) reports it among its listing errors, naming it
//! and what to do, so that a run that left it out does not call itself
//! complete; every real tenant is still done. `tenants()` lists the real
//! tenants and only warns (`tests/invalid_entries_warn.rs`).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tenanted::{
    BackupOptions, Error, MigrateOptions, Migrations, RootConfig, TenantManager, UsageOrder,
};

fn bucket(tenant: &str) -> String {
    format!("{:02x}", tenanted::bucket_of(tenant, 256))
}

/// A bucket no real tenant of these tests uses.
fn free_bucket(taken: &[&str]) -> String {
    (0..256)
        .map(|b| format!("{b:02x}"))
        .find(|b| taken.iter().all(|t| bucket(t) != *b))
        .unwrap()
}

/// The listing errors each fleet run reports, as text; asserts that the
/// runs did every real tenant.
fn reported_by_every_run(m: &TenantManager, real: usize, backups: &Path) -> Vec<Vec<String>> {
    let texts = |errors: &[Arc<Error>]| -> Vec<String> {
        for e in errors {
            assert!(
                matches!(**e, Error::StrayEntry { .. }),
                "expected StrayEntry, got {e:?}"
            );
        }
        let mut texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        texts.sort();
        texts
    };
    let status = m.migration_status().unwrap();
    assert_eq!(status.total(), real, "{status}");
    assert!(!status.all_current(), "{status}");
    let migrated = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!(migrated.succeeded(), real, "{migrated}");
    assert!(!migrated.is_success(), "{migrated}");
    let backup = m.backup_all(backups, &BackupOptions::new()).unwrap();
    assert_eq!(backup.succeeded(), real, "{backup}");
    assert!(!backup.is_success(), "{backup}");
    let usage = m.usage(UsageOrder::Largest, 10).unwrap();
    assert_eq!(usage.tenants, real, "{usage:?}");
    vec![
        texts(&status.listing_errors),
        texts(&migrated.listing_errors),
        texts(&backup.listing_errors),
        texts(&usage.listing_errors),
    ]
}

/// A tenant's tree outside the root, one migration behind: what a link
/// into it would show. Returns its database.
fn outside_tenant(outside: &Path, name: &str) -> PathBuf {
    let m = TenantManager::builder(
        RootConfig::new(outside),
        Migrations::new(common::three_migrations()[..2].to_vec()),
    )
    .build()
    .unwrap();
    m.create_tenant(name).unwrap();
    m.root().database_path(name).unwrap()
}

#[test]
fn every_fleet_run_reports_stray_entries_and_does_every_real_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    for t in ["acme", "globex", "initech"] {
        m.create_tenant(t).unwrap();
    }
    // A tenant tree outside, one version behind, which no link may lead
    // a migration or a backup into.
    let linked_db = outside_tenant(outside.path(), "hooli");
    let before = fs::read(&linked_db).unwrap();
    let root = dir.path();
    let free = free_bucket(&["acme", "globex", "initech", "hooli"]);
    fs::remove_dir(root.join(&free)).ok();
    // A bucket that is a link to the outside's bucket of hooli.
    symlink(outside.path().join(bucket("hooli")), root.join(&free)).unwrap();
    // A tenant's directory that is a link; a file where one belongs.
    let linked_dir = root.join(bucket("umbrella")).join("umbrella");
    fs::create_dir_all(linked_dir.parent().unwrap()).unwrap();
    symlink(linked_db.parent().unwrap(), &linked_dir).unwrap();
    let file = root.join(bucket("stark")).join("stark");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, b"a file where a directory belongs").unwrap();
    // No tenant name; a tenant moved by hand into acme's bucket.
    let bad_name = root.join(bucket("acme")).join("Not A Name");
    fs::create_dir_all(&bad_name).unwrap();
    let moved = root.join(bucket("acme")).join("globex");
    fs::rename(root.join(bucket("globex")).join("globex"), &moved).unwrap();

    assert_eq!(common::sorted_tenants(&m), ["acme", "initech"]);
    let backups = tempfile::tempdir().unwrap();
    let reported = reported_by_every_run(&m, 2, &backups.path().join("bk"));
    let free_path = root.join(&free).display().to_string();
    let expected: [(&str, &str); 5] = [
        (
            &free_path,
            "a symbolic link where the layout has a directory",
        ),
        (
            linked_dir.to_str().unwrap(),
            "a symbolic link where the layout has a directory",
        ),
        (
            file.to_str().unwrap(),
            "some other kind of file where the layout has a directory",
        ),
        (bad_name.to_str().unwrap(), "not a valid tenant name"),
        (
            moved.to_str().unwrap(),
            &format!("tenant globex belongs in bucket {}", bucket("globex")),
        ),
    ];
    for errors in &reported {
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (path, why) in expected {
            let named = format!("{path} was skipped");
            assert!(
                errors.iter().any(|e| e.contains(&named) && e.contains(why)),
                "no error says {named:?} and {why:?}: {errors:#?}"
            );
        }
        assert!(
            errors
                .iter()
                .all(|e| e.contains("move it") || e.contains("rename")),
            "each says what to do: {errors:#?}"
        );
    }
    assert_eq!(reported[0], reported[3], "every run says the same");
    // Nothing was followed: the tenant outside is as it was.
    assert_eq!(fs::read(&linked_db).unwrap(), before);
    let backup = RootConfig::recorded(backups.path().join("bk")).unwrap();
    let mut backed_up: Vec<String> = (backup.tenants().unwrap())
        .map(|t| t.unwrap().to_string())
        .collect();
    backed_up.sort();
    assert_eq!(
        backed_up,
        ["acme", "initech"],
        "the backup holds the real tenants only"
    );
}

#[test]
fn a_link_in_place_of_a_database_in_a_flat_layout_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let flat = RootConfig::new(dir.path()).template("%{bucket}/%{tenant}.sqlite3");
    let m = TenantManager::builder(flat, Migrations::new(common::three_migrations()))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let linked_db = outside_tenant(outside.path(), "hooli");
    let before = fs::read(&linked_db).unwrap();
    let link = m.root().database_path("hooli").unwrap();
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(&linked_db, &link).unwrap();

    assert_eq!(common::sorted_tenants(&m), ["acme"]);
    let backups = tempfile::tempdir().unwrap();
    let reported = reported_by_every_run(&m, 1, &backups.path().join("bk"));
    for errors in &reported {
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains(&format!("{} was skipped", link.display()))
                && errors[0]
                    .contains("a symbolic link where the layout has a tenant's database file"),
            "{errors:#?}"
        );
    }
    assert_eq!(fs::read(&linked_db).unwrap(), before);
}
