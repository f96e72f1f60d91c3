//! Bucketed paths are part of the on-disk format: pinned by golden vectors,
//! and `tenants()` inverts them while skipping everything that is not a
//! ready tenant.

mod common;

use std::fs;
use std::path::Path;

use tenanted::{Error, RootConfig, bucket_of};

#[test]
fn golden_bucket_vectors() {
    // 64-bit FNV-1a of the name's bytes, modulo the bucket count.
    for (name, b256, b1000, b16) in [
        ("acme", 15, 87, 15),
        ("globex", 46, 750, 14),
        ("initech", 65, 841, 1),
        ("42", 35, 691, 3),
        ("a.b", 44, 4, 12),
        ("acme-corp_2", 143, 415, 15),
        ("tenant-00001", 11, 11, 11),
    ] {
        assert_eq!(bucket_of(name, 256), b256, "{name}");
        assert_eq!(bucket_of(name, 1000), b1000, "{name}");
        assert_eq!(bucket_of(name, 16), b16, "{name}");
        assert_eq!(bucket_of(name, 1), 0);
    }
}

#[test]
fn golden_paths() {
    let root = RootConfig::new("/srv/t");
    assert_eq!(
        root.database_path("acme").unwrap(),
        Path::new("/srv/t/0f/acme/main.sqlite3")
    );
    assert_eq!(
        root.database_path("acme-corp_2").unwrap(),
        Path::new("/srv/t/8f/acme-corp_2/main.sqlite3")
    );
    let wide = RootConfig::new("/srv/t")
        .template("%{bucket}/%{tenant}.db")
        .buckets(1000);
    assert_eq!(
        wide.database_path("globex").unwrap(),
        Path::new("/srv/t/2ee/globex.db")
    );
    let flat = RootConfig::new("/srv/t")
        .template("%{tenant}.sqlite3")
        .buckets(1);
    assert_eq!(
        flat.database_path("a.b").unwrap(),
        Path::new("/srv/t/a.b.sqlite3")
    );
}

#[test]
fn bad_templates_are_reported_with_the_reason() {
    for (template, buckets, reason) in [
        ("%{tenant}", 256, "fixed suffix"),
        ("%{tenant}/%{tenant}.db", 256, "exactly once"),
        ("../%{tenant}.db", 256, "not allowed"),
        ("/abs/%{tenant}.db", 256, "relative"),
        ("%{tenant}.db", 0, "at least 1"),
    ] {
        let config = RootConfig::new("/srv/t")
            .template(template)
            .buckets(buckets);
        match config.database_path("acme") {
            Err(Error::BadTemplate { reason: r, .. }) => {
                assert!(r.contains(reason), "{template}: {r}")
            }
            other => panic!("{template}: expected BadTemplate, got {other:?}"),
        }
        assert!(config.validate().is_err());
    }
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"").unwrap();
}

#[test]
fn tenants_skips_what_is_not_a_ready_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootConfig::new(dir.path());
    for name in ["acme", "globex"] {
        touch(&root.database_path(name).unwrap());
    }
    let acme = root.database_path("acme").unwrap();
    let acme_dir = acme.parent().unwrap();
    // SQLite sidecars, lock and temporary files, a tenant being created.
    touch(&acme_dir.join("main.sqlite3-wal"));
    touch(&acme_dir.join("main.sqlite3-shm"));
    touch(&acme_dir.join(".main.sqlite3.lock"));
    touch(&acme_dir.join(".main.sqlite3.tmp-1-1"));
    // A tenant being created: its directory is built under a hidden name
    // beside where it goes, and published whole (see `storage/lifecycle/stage.rs`).
    let creating = root.database_path("creating").unwrap();
    let staged = creating
        .parent()
        .unwrap()
        .with_file_name(".creating.creating");
    touch(&staged.join(".main.sqlite3.tmp-9-9"));
    // A file in the wrong bucket, a stray file, a non-hex bucket, a hidden dir.
    touch(&dir.path().join("00/acme/main.sqlite3"));
    touch(&dir.path().join("0f/acme/notes.txt"));
    touch(&dir.path().join("zz/evil/main.sqlite3"));
    touch(&dir.path().join(".tenanted/templates/abc.sqlite3"));
    touch(&dir.path().join("README"));
    // (A tenant directory holding no database is listed: listings trust
    // tenant directories; see tests/directory_in_place_of_a_tenant.rs.)

    let mut names: Vec<String> = root
        .tenants()
        .unwrap()
        .map(|t| t.unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["acme", "globex"]);
}

#[test]
fn tenants_of_a_missing_root_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        RootConfig::new(dir.path().join("nope"))
            .tenants()
            .unwrap()
            .count(),
        0
    );
}

#[cfg(unix)]
#[test]
fn tenants_does_not_follow_symlinks_out_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    touch(&outside.path().join("main.sqlite3"));
    let root = RootConfig::new(dir.path());
    let link = root.database_path("linked").unwrap();
    fs::create_dir_all(link.parent().unwrap().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(outside.path(), link.parent().unwrap()).unwrap();
    assert_eq!(root.tenants().unwrap().count(), 0);
}
