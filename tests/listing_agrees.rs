//! `tenants()` lists every tenant directory without looking inside (which
//! keeps a listing at the cost of reading the bucket directories), and
//! every other answer agrees with it: a directory made by hand in a
//! bucket, or one holding only a file of the user's, is listed, and
//! `tenant_exists`, `connection`, `migrate_tenant`, `destroy_tenant`,
//! `migration_status`, `migrate_all`, `backup_tenant` and `backup_all`
//! all report it as a damaged tenant (`MissingDatabase`, naming the
//! directory and the missing database); a backup does not call it gone.
//! `remove_debris` removes such a directory when nothing of anyone's is in
//! it, and leaves one holding someone's file; `create_tenant` makes the
//! tenant again in it.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use tenanted::{BackupOptions, Error, MigrateOptions, TenantManager};

/// Makes `name`'s directory by hand, holding `files`; returns it.
fn hand_made(m: &TenantManager, name: &str, files: &[&str]) -> PathBuf {
    let db = m.root().database_path(name).unwrap();
    let dir = db.parent().unwrap().to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    for file in files {
        fs::write(dir.join(file), b"the user's").unwrap();
    }
    dir
}

fn is_missing(result: tenanted::Result<()>, dir: &std::path::Path) -> bool {
    match result {
        Err(e @ Error::MissingDatabase { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&dir.display().to_string()), "{msg}");
            assert!(msg.contains("main.sqlite3"), "{msg}");
            true
        }
        other => panic!("expected MissingDatabase, got {other:?}"),
    }
}

#[test]
fn a_listed_directory_without_a_database_is_one_damaged_tenant_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let stray = hand_made(&m, "stray", &[]);
    let kept = hand_made(&m, "kept", &["main.sqlite3.bak"]);
    assert_eq!(common::sorted_tenants(&m), ["acme", "kept", "stray"]);

    for (name, at) in [("stray", &stray), ("kept", &kept)] {
        assert!(is_missing(m.tenant_exists(name).map(drop), at), "{name}");
        assert!(is_missing(m.connection(name).map(drop), at), "{name}");
        assert!(is_missing(m.migrate_tenant(name).map(drop), at), "{name}");
        assert!(
            is_missing(m.rollback_tenant(name, 1).map(drop), at),
            "{name}"
        );
        assert!(is_missing(m.destroy_tenant(name), at), "{name}");
        // Its status row says it too (as migration_status's does).
        let row = m.tenant_status(name).unwrap();
        assert!(
            matches!(&row.version, Err(e) if matches!(**e, Error::MissingDatabase { .. })),
            "{name}: {row:?}"
        );
    }
    // One stray directory does not hide what is wrong in a loop.
    let looped = m.with_each_tenant(|t| m.connection(t.as_str()).map(drop));
    assert!(matches!(looped, Err(Error::MissingDatabase { .. })));

    let status = m.migration_status().unwrap();
    assert_eq!(status.total(), 3, "{status}");
    let failed: Vec<_> = status
        .tenants
        .iter()
        .filter(
            |row| matches!(&row.version, Err(e) if matches!(**e, Error::MissingDatabase { .. })),
        )
        .map(|row| row.tenant.to_string())
        .collect();
    assert_eq!(failed.len(), 2, "{status}");
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!(report.failed(), 2, "{report}");
    for line in &report.failures {
        assert!(
            matches!(line.error.as_deref(), Some(Error::MissingDatabase { .. })),
            "{report}"
        );
    }
    let only = m
        .migrate_all(&MigrateOptions::new().only(["stray"]))
        .unwrap();
    assert_eq!(only.failed(), 1, "{only}");

    // Nothing of anyone's in `stray`: removed. `kept` holds the user's
    // file: left as it is, and still reported.
    m.remove_debris().unwrap();
    assert!(!stray.exists());
    assert!(kept.join("main.sqlite3.bak").exists());
    assert_eq!(common::sorted_tenants(&m), ["acme", "kept"]);
    assert!(!m.tenant_exists("stray").unwrap());
    assert!(is_missing(m.tenant_exists("kept").map(drop), &kept));

    // Made again in place, beside the user's file.
    m.create_tenant("kept").unwrap();
    assert!(m.tenant_exists("kept").unwrap());
    m.connection("kept").unwrap();
    assert_eq!(
        fs::read(kept.join("main.sqlite3.bak")).unwrap(),
        b"the user's"
    );
    assert!(m.migration_status().unwrap().all_current());
}

#[test]
fn a_backup_fails_a_listed_tenant_without_a_database_instead_of_calling_it_gone() {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let stray = hand_made(&m, "stray", &[]);
    // In the database's place: a named pipe (an open for reading would
    // wait for a writer) and a link out of the root.
    let piped = hand_made(&m, "piped", &[]);
    let made = std::process::Command::new("mkfifo")
        .arg(piped.join("main.sqlite3"))
        .status()
        .unwrap();
    assert!(made.success());
    let linked = hand_made(&m, "linked", &[]);
    let outside = backups.path().join("outside.sqlite3");
    fs::copy(m.root().database_path("acme").unwrap(), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("main.sqlite3")).unwrap();
    let damaged = [("stray", &stray), ("piped", &piped), ("linked", &linked)];

    let to = backups.path().join("one");
    for (name, at) in damaged {
        let copied = m.backup_tenant(name, to.join(name)).map(drop);
        assert!(is_missing(copied, at), "{name}");
    }

    let report = m
        .backup_all(backups.path().join("all"), &BackupOptions::new())
        .unwrap();
    assert_eq!(
        (report.succeeded(), report.failed(), report.gone()),
        (1, 3, 0),
        "{report}"
    );
    assert!(!report.is_success(), "{report}");
    for line in &report.failures {
        assert!(
            matches!(line.error.as_deref(), Some(Error::MissingDatabase { .. })),
            "{report}"
        );
    }
    // Nothing in them was touched, and nothing was read through the link.
    assert!(
        fs::symlink_metadata(piped.join("main.sqlite3"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        fs::symlink_metadata(linked.join("main.sqlite3"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        !dir.path()
            .join("all")
            .join(below_root(&m, "linked"))
            .exists()
    );
}

/// Where `name`'s database goes below a directory laid out like the root.
fn below_root(m: &TenantManager, name: &str) -> PathBuf {
    let db = m.root().database_path(name).unwrap();
    db.strip_prefix(m.root().root_dir()).unwrap().to_path_buf()
}

#[test]
fn a_directory_being_destroyed_is_not_reported_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    let tenant_dir = db.parent().unwrap();
    // A destroy's mark and fence, as one that died waiting leaves them.
    fs::File::create(tenant_dir.with_file_name(".acme.destroying")).unwrap();
    fs::rename(&db, tenant_dir.join(".main.sqlite3.destroying")).unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
    let refused = m.connection("acme").map(drop);
    assert!(matches!(refused, Err(Error::TenantBeingDestroyed { .. })));
    // Nobody is destroying it: the answer says how to finish it.
    let said = refused.unwrap_err().to_string();
    assert!(
        said.contains("remove_debris") && said.contains("acme"),
        "{said}"
    );
    assert!(common::sorted_tenants(&m).is_empty());
    // A checkout leaves a destroy's fenced database to remove_debris: a
    // destroy whose put-back failed said the tenant is intact there.
    assert!(tenant_dir.join(".main.sqlite3.destroying").exists());
}

#[test]
fn cleanup_keeps_a_wal_holding_commits_whose_database_was_moved_away() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    let (wal, aside) = (
        db.with_file_name("main.sqlite3-wal"),
        db.with_extension("bak"),
    );
    {
        // 50 commits left in the `-wal` alone, as by a process killed
        // before it checkpointed: copied while the connection is open.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE kept (n);")
            .unwrap();
        for n in 0..50 {
            conn.execute("INSERT INTO kept VALUES (?1)", [n]).unwrap();
        }
        fs::copy(&db, &aside).unwrap();
        fs::copy(&wal, dir.path().join("wal")).unwrap();
    }
    // The database moved away by hand; its commits beside its name.
    fs::remove_file(&db).unwrap();
    fs::rename(dir.path().join("wal"), &wal).unwrap();
    // Debris of crashed creates beside other tenants, swept all the same.
    let others: Vec<PathBuf> = (0..8)
        .map(|i| {
            let name = format!("other-{i}");
            m.create_tenant(&name).unwrap();
            let db = m.root().database_path(&name).unwrap();
            let scratch = db.with_file_name(".main.sqlite3.tmp-999999-1");
            fs::write(&scratch, b"half a copy").unwrap();
            scratch
        })
        .collect();

    let kept = m.remove_debris();
    match &kept {
        Err(e @ Error::OrphanedCommits { path, .. }) => {
            assert_eq!(path, &wal, "{e}");
            let said = e.to_string();
            assert!(
                said.contains("acme") && said.contains("main.sqlite3-wal"),
                "{said}"
            );
        }
        other => panic!("expected OrphanedCommits, got {other:?}"),
    }
    assert!(wal.exists(), "the commits were removed");
    for scratch in &others {
        assert!(
            !scratch.exists(),
            "{scratch:?} left: one tenant stopped the sweep"
        );
    }

    // Put back, the database has every commit.
    fs::rename(&aside, &db).unwrap();
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM kept", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 50);
    assert_eq!(m.remove_debris().unwrap(), 0);
}
