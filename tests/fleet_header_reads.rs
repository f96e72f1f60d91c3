//! `migration_status` and `migrate_all` read an up-to-date tenant's
//! version from its database header without opening SQLite, and that
//! shortcut never gives a wrong answer or breaks anything:
//!
//! - a version committed to a WAL and not yet checkpointed (the header
//!   still says the old one) is seen, whether the WAL's writer is another
//!   process or this one holds the tenant open too;
//! - reading a header never drops the SQLite locks this process holds on
//!   the file (closing any descriptor of a file drops all of a process's
//!   POSIX locks on it): another process still sees them afterwards;
//! - damaged files are still reported damaged, and what is not a database
//!   file is still not a tenant.

mod common;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};

use common::child;
use rustix::process::{Flock, FlockOffsetType, FlockType, fcntl_getlk};
use tenanted::{Error, MigrateOptions, Migrations, RootConfig, TenantManager};

fn at_version(root: &Path, version: usize) -> TenantManager {
    let some = common::three_migrations()
        .into_iter()
        .take(version)
        .collect();
    TenantManager::builder(RootConfig::new(root), Migrations::new(some))
        .build()
        .unwrap()
}

/// `user_version` as the database file's header says it.
fn header_version(path: &Path) -> i32 {
    let mut header = [0u8; 100];
    File::open(path).unwrap().read_exact(&mut header).unwrap();
    i32::from_be_bytes(header[60..64].try_into().unwrap())
}

fn version_in_status(m: &TenantManager, tenant: &str) -> usize {
    let mut version = None;
    m.migration_status_each(|row| {
        if row.tenant.as_str() == tenant {
            version = row.version.as_ref().ok().copied();
        }
    })
    .unwrap();
    version.unwrap()
}

/// The child: applies the third migration to `acme` in one transaction,
/// with automatic checkpoints off, so the commit stays in the WAL; then
/// keeps its connection open (the WAL is not checkpointed on close either)
/// until its standard input closes.
#[test]
#[ignore = "child process of the header-read tests"]
fn child_commits_to_the_wal_and_holds_it() {
    let Some(root) = child::root() else {
        return;
    };
    let path = RootConfig::new(&root).database_path("acme").unwrap();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(common::three_migrations()[2].up_sql())
        .unwrap();
    tx.pragma_update(None, "user_version", 3).unwrap();
    tx.commit().unwrap();
    println!("COMMITTED");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn spawn_wal_writer(root: &Path, out: &Path) -> Child {
    let log = File::create(out).unwrap();
    let child = child::command("child_commits_to_the_wal_and_holds_it", root)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    child::wait_for_word(out, "COMMITTED");
    child
}

#[test]
fn a_version_still_in_another_process_s_wal_is_seen_with_or_without_this_process_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let old = at_version(&root, 2);
    for name in ["acme", "quiet"] {
        old.create_tenant(name).unwrap();
    }
    let m = common::manager(&root);
    let out = dir.path().join("child.out");
    let mut writer = spawn_wal_writer(&root, &out);
    let acme = m.root().database_path("acme").unwrap();
    assert_eq!(header_version(&acme), 2, "the commit is only in the WAL");

    // Only the other process has it open.
    let status = m.migration_status().unwrap();
    assert_eq!((status.current(), status.behind()), (1, 1), "{status}");
    assert_eq!(status.tenants[0].tenant.as_str(), "quiet");
    assert_eq!(version_in_status(&m, "acme"), 3);

    // This process holds it open too, through a pool.
    let conn = m.connection("acme").unwrap();
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(version_in_status(&m, "acme"), 3);
    let noop = m
        .migrate_all(&MigrateOptions::new().only(["acme"]))
        .unwrap();
    assert_eq!((noop.up_to_date(), noop.migrated()), (1, 0), "{noop}");
    drop(conn);
    // Moving the fleet to 2 must see acme at 3, not the header's 2.
    let (down, lines) = common::migrate_all_changed(&m, MigrateOptions::new().to_version(2));
    assert!(down.is_success(), "{down}");
    assert_eq!((down.migrated(), lines.len()), (1, 1), "{down}");
    assert_eq!(lines[0].applied, ["0003_index_tags"]);
    assert_eq!(version_in_status(&m, "acme"), 2);

    drop(writer.stdin.take());
    assert!(writer.wait().unwrap().success());
}

/// The child: whether another process holds a lock on the shared-lock
/// bytes of `acme`'s database file (where every SQLite connection in WAL
/// mode holds a read lock while it is open), asked with `F_GETLK`.
#[test]
#[ignore = "child process of the header-read tests"]
fn child_probes_the_database_lock() {
    let Some(root) = child::root() else {
        return;
    };
    let path = RootConfig::new(&root).database_path("acme").unwrap();
    let file = File::open(path).unwrap();
    let exclusive = Flock {
        start: 0x4000_0002,
        length: 510,
        pid: None,
        typ: FlockType::WriteLock,
        offset_type: FlockOffsetType::Set,
    };
    match fcntl_getlk(&file, &exclusive).unwrap() {
        Some(lock) => println!(
            "HELD-BY {}",
            lock.pid.map_or(0, |p| p.as_raw_nonzero().get())
        ),
        None => println!("FREE"),
    }
}

fn probe(root: &Path) -> String {
    let out = child::run(&mut child::command("child_probes_the_database_lock", root));
    let word = |w: &str| w == "FREE" || w == "HELD-BY";
    let mut words = out.split_whitespace().skip_while(|w| !word(w));
    let first = words.next().unwrap_or_default();
    match first {
        "HELD-BY" => format!("HELD-BY {}", words.next().unwrap_or_default()),
        other => other.to_owned(),
    }
}

#[test]
fn fleet_runs_never_drop_the_sqlite_locks_this_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = common::manager(&root);
    for name in ["acme", "globex", "initech"] {
        m.create_tenant(name).unwrap();
    }
    let conn = m.connection("acme").unwrap();
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        .unwrap();
    // Back in the pool, idle and open: it keeps its lock.
    drop(conn);
    let held = format!("HELD-BY {}", std::process::id());
    assert_eq!(probe(&root), held);
    // The WAL is empty: only knowing the file is open here protects it.
    let wal = m
        .root()
        .database_path("acme")
        .unwrap()
        .with_extension("sqlite3-wal");
    assert_eq!(std::fs::metadata(wal).unwrap().len(), 0);

    let other = common::manager(&root);
    for _ in 0..3 {
        assert!(m.migration_status().unwrap().all_current());
        assert_eq!(
            m.migrate_all(&MigrateOptions::new()).unwrap().up_to_date(),
            3
        );
        assert!(other.migration_status().unwrap().all_current());
        assert_eq!(
            other
                .migrate_all(&MigrateOptions::new())
                .unwrap()
                .up_to_date(),
            3
        );
    }
    assert_eq!(probe(&root), held, "a fleet run dropped the pool's lock");
    assert_eq!(m.stats().open_pools, 1);
    drop(m);
    drop(other);
    assert_eq!(probe(&root), "FREE");
}

fn plant(m: &TenantManager, name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = m.root().database_path(name).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}

/// A database header that is valid but for its page size (1000).
fn bad_page_size() -> Vec<u8> {
    let mut file = vec![0u8; 4096];
    file[..16].copy_from_slice(b"SQLite format 3\0");
    file[16..24].copy_from_slice(&[0x03, 0xe8, 2, 2, 0, 64, 32, 32]);
    file
}

#[test]
fn damaged_files_are_still_reported_damaged_by_fleet_runs() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let damaged = [
        ("empty", Vec::new()),
        ("garbage", vec![b'x'; 4096]),
        ("pagesize", bad_page_size()),
    ];
    for (name, contents) in &damaged {
        plant(&m, name, contents);
    }
    let status = m.migration_status().unwrap();
    assert_eq!((status.current(), status.unreadable()), (1, 3), "{status}");
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!((report.up_to_date(), report.failed()), (1, 3), "{report}");
    for (name, contents) in &damaged {
        let row = status
            .tenants
            .iter()
            .find(|t| t.tenant.as_str() == *name)
            .unwrap();
        let failure = report
            .failures
            .iter()
            .find(|t| t.tenant.as_str() == *name)
            .unwrap();
        for e in [
            row.version.as_ref().unwrap_err(),
            failure.error.as_ref().unwrap(),
        ] {
            assert!(matches!(**e, Error::DamagedTenant { .. }), "{name}: {e}");
        }
        let path = m.root().database_path(name).unwrap();
        assert_eq!(&std::fs::read(path).unwrap(), contents, "{name} untouched");
    }
}

#[test]
fn a_truncated_database_is_not_given_the_version_its_header_holds() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let whole = std::fs::read(m.root().database_path("acme").unwrap()).unwrap();
    assert!(whole.len() > 4096);
    plant(&m, "cut", &whole[..4096]);
    assert_eq!(header_version(&m.root().database_path("cut").unwrap()), 3);

    let status = m.migration_status().unwrap();
    assert_eq!((status.current(), status.unreadable()), (1, 1), "{status}");
    assert_eq!(status.tenants[0].tenant.as_str(), "cut");
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!((report.up_to_date(), report.failed()), (1, 1), "{report}");
}

/// A directory or a symbolic link where a tenant's database should be is
/// no database; its tenant's directory is listed (listings trust tenant
/// directories), so the fleet runs report it as damaged, as every other
/// call does (`MissingDatabase`), and never read through the link.
#[test]
fn a_directory_or_a_symlink_in_place_of_a_database_is_reported_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let real = m.root().database_path("acme").unwrap();
    let folder = m.root().database_path("folder").unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    let link = m.root().database_path("link").unwrap();
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let damaged = |e: &Error| matches!(e, Error::MissingDatabase { .. });

    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.current()), (3, 1), "{status}");
    assert_eq!(status.unreadable(), 2, "{status}");
    for row in &status.tenants {
        assert!(damaged(row.version.as_ref().unwrap_err()), "{status}");
    }
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!((report.total(), report.up_to_date()), (3, 1), "{report}");
    let named = m
        .migrate_all(&MigrateOptions::new().only(["folder", "link"]))
        .unwrap();
    for line in &named.failures {
        let e = line.error.as_deref().unwrap();
        assert!(damaged(e), "{e}");
    }
    assert_eq!(named.failed(), 2);
}

/// The state a crash in the middle of a rollback-journal commit leaves:
/// the database file already holds the new page 1 (`user_version` 99) and
/// a hot `-journal` beside it holds the old one (version 2). SQLite rolls
/// the journal back on its next open, so 99 was never committed.
fn crashed_mid_commit(path: &Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    // Without syncs the journal's header counts its pages by its size, so
    // a copy taken mid-transaction plays back whole.
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.pragma_update(None, "user_version", 99).unwrap();
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    let hot = std::fs::read(&journal).unwrap();
    tx.commit().unwrap();
    drop(conn);
    std::fs::write(&journal, hot).unwrap();
}

#[test]
fn a_version_a_hot_journal_rolls_back_is_never_reported() {
    let dir = tempfile::tempdir().unwrap();
    at_version(dir.path(), 2).create_tenant("acme").unwrap();
    let m = common::manager(dir.path());
    let acme = m.root().database_path("acme").unwrap();
    crashed_mid_commit(&acme);
    assert_eq!(
        header_version(&acme),
        99,
        "the file holds the rolled-back page"
    );

    let status = m.migration_status().unwrap();
    assert_eq!(status.behind(), 1, "{status}");
    assert_eq!(
        status.tenants[0].version.as_ref().ok(),
        Some(&2),
        "{status}"
    );
    assert_eq!(header_version(&acme), 2, "SQLite rolled the journal back");
}
