//! Per-tenant size limits, enforced by SQLite (`PRAGMA max_page_count` on
//! every pooled connection): a write over the limit is `QuotaExceeded`
//! naming the tenant, the limit and the size; a full file system is
//! `DiskFull` naming it; reads, deletes and writes that fit keep working;
//! a tenant's own limit persists and holds in another process within its
//! `watch_interval`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::child;
use tenanted::{Error, Migration, Migrations, RootConfig, TenantConnection, TenantManager};

const KIB: u64 = 1024;
const WATCH: Duration = Duration::from_millis(50);

fn migrations() -> Vec<Migration> {
    vec![Migration::new(
        "0001_blobs",
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )]
}

fn manager(root: &Path, default: Option<u64>) -> TenantManager {
    TenantManager::builder(RootConfig::new(root), Migrations::new(migrations()))
        .default_max_size(default)
        .watch_interval(WATCH)
        .max_connections(3)
        .build()
        .unwrap()
}

fn insert(conn: &TenantConnection, bytes: usize) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO blobs (body) VALUES (randomblob(?1))",
        [i64::try_from(bytes).unwrap()],
    )
    .map(drop)
    .map_err(|e| conn.diagnose(e))
}

/// Inserts 8 KiB rows until a write fails; returns that error.
fn fill(conn: &TenantConnection) -> Error {
    for _ in 0..10_000 {
        if let Err(e) = insert(conn, 8 * 1024) {
            return e;
        }
    }
    panic!("never reached a limit");
}

fn pragma(conn: &TenantConnection, name: &str) -> u64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
        .unwrap()
        .try_into()
        .unwrap()
}

fn rows(conn: &TenantConnection) -> i64 {
    conn.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_write_over_the_default_limit_is_quota_exceeded_and_what_fits_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), Some(256 * KIB));
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    match fill(&conn) {
        Error::QuotaExceeded {
            ref tenant,
            limit,
            size,
            ..
        } if tenant.as_str() == "acme" => {
            assert_eq!(limit, 256 * KIB);
            assert!(size <= limit && size > limit - 32 * KIB, "size {size}");
            let text = Error::QuotaExceeded {
                tenant: tenant.clone(),
                path: conn.path().to_path_buf(),
                limit,
                size,
            }
            .to_string();
            assert!(text.contains("acme") && text.contains("262144"), "{text}");
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // At the limit: reads, updates that fit, deletes, and writes into the
    // pages deletes freed all work; the file does not grow.
    let before = rows(&conn);
    let pages = pragma(&conn, "page_count");
    // An update that needs no new page (smaller than the row was).
    conn.execute("UPDATE blobs SET body = randomblob(100) WHERE id = 1", [])
        .unwrap();
    conn.execute("DELETE FROM blobs WHERE id % 2 = 0", [])
        .unwrap();
    // And one that needs pages, once deletes freed some.
    conn.execute("UPDATE blobs SET body = randomblob(8192) WHERE id = 1", [])
        .unwrap();
    for _ in 0..before / 3 {
        insert(&conn, 8 * 1024).unwrap();
    }
    assert!(rows(&conn) > before / 2);
    assert!(pragma(&conn, "page_count") <= pages);
    // A transaction that goes over is rolled back whole.
    let in_tx = (|| {
        conn.execute_batch("BEGIN")?;
        insert(&conn, 1024).map_err(|_| rusqlite::Error::InvalidQuery)?;
        insert(&conn, 1024 * 1024).map_err(|_| rusqlite::Error::InvalidQuery)
    })();
    assert!(in_tx.is_err());
    assert!(
        conn.is_autocommit(),
        "the failed transaction is not left open"
    );
}

#[test]
fn every_pooled_connection_carries_the_limit_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), Some(256 * KIB));
    m.create_tenant("acme").unwrap();
    let held: Vec<_> = (0..3).map(|_| m.connection("acme").unwrap()).collect();
    for conn in &held {
        assert_eq!(
            pragma(conn, "max_page_count") * pragma(conn, "page_size"),
            256 * KIB
        );
    }
    // The setting is the connection's: one opened outside the pools has
    // SQLite's default.
    let raw = rusqlite::Connection::open(held[0].path()).unwrap();
    let default: i64 = raw
        .query_row("PRAGMA max_page_count", [], |r| r.get(0))
        .unwrap();
    assert!(u64::try_from(default).unwrap() > 1 << 30);
}

#[test]
fn an_override_persists_and_a_change_reopens_the_pools_but_not_the_connections_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), Some(256 * KIB));
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let out = m.connection("acme").unwrap();
    let pages = |conn: &TenantConnection| pragma(conn, "max_page_count");
    assert_eq!(pages(&out), 64);
    m.set_tenant_max_size("acme", Some(128 * KIB)).unwrap();
    assert_eq!(pages(&out), 64, "a connection out finishes under its limit");
    assert_eq!(pages(&m.connection("acme").unwrap()), 32);
    assert_eq!(pages(&m.connection("globex").unwrap()), 64);
    drop(out);
    let limits = m.tenant_limits("acme").unwrap();
    assert_eq!(
        (limits.max_size, limits.overridden),
        (Some(128 * KIB), true)
    );
    drop(m);
    // Another manager of the root (a restart) sees the override.
    let m = manager(dir.path(), Some(256 * KIB));
    assert_eq!(pages(&m.connection("acme").unwrap()), 32);
    m.set_tenant_max_size("acme", None).unwrap();
    let unlimited = m.connection("acme").unwrap();
    assert!(
        pages(&unlimited) > 1 << 30,
        "an override can lift the default"
    );
    drop(unlimited);
    m.clear_tenant_max_size("acme").unwrap();
    assert_eq!(pages(&m.connection("acme").unwrap()), 64);
    assert!(!m.tenant_limits("acme").unwrap().overridden);
    assert!(matches!(
        m.set_tenant_max_size("nobody", Some(KIB)),
        Err(Error::TenantDoesNotExist { .. })
    ));
}

#[test]
fn a_limit_below_the_size_keeps_the_tenant_at_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), None);
    m.create_tenant("acme").unwrap();
    {
        let conn = m.connection("acme").unwrap();
        for _ in 0..24 {
            insert(&conn, 8 * 1024).unwrap();
        }
    }
    m.set_tenant_max_size("acme", Some(64 * KIB)).unwrap();
    let conn = m.connection("acme").unwrap();
    match insert(&conn, 64 * 1024) {
        Err(Error::QuotaExceeded { limit, size, .. }) => {
            assert_eq!(limit, 64 * KIB);
            assert!(size > limit, "over its limit: {size}");
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    conn.execute("DELETE FROM blobs WHERE id <= 12", [])
        .unwrap();
    insert(&conn, 8 * 1024).unwrap();
}

#[test]
fn migrations_are_not_held_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), Some(64 * KIB));
    m.create_tenant("acme").unwrap();
    assert!(matches!(
        fill(&m.connection("acme").unwrap()),
        Error::QuotaExceeded { .. }
    ));
    drop(m);
    let mut grown = migrations();
    grown.push(Migration::new(
        "0002_padding",
        "CREATE TABLE padding AS SELECT zeroblob(200000) AS pad;",
    ));
    let m = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(grown))
        .default_max_size(Some(64 * KIB))
        .build()
        .unwrap();
    m.migrate_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    assert!(pragma(&conn, "page_count") * pragma(&conn, "page_size") > 200_000);
    assert!(rows(&conn) > 0);
    assert!(matches!(
        insert(&conn, 1024),
        Err(Error::QuotaExceeded { .. })
    ));
}

/// The child of the cross-process test: sets `acme`'s limit to 64 KiB.
#[test]
#[ignore = "child process of a_limit_set_in_another_process_holds_here"]
fn child_sets_a_limit() {
    let Some(root) = child::root() else { return };
    let m = manager(&root, None);
    m.set_tenant_max_size("acme", Some(64 * KIB)).unwrap();
    println!("SET");
}

#[test]
fn a_limit_set_in_another_process_holds_here() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), None);
    m.create_tenant("acme").unwrap();
    // A pool cached here, as a serving process has.
    assert!(pragma(&m.connection("acme").unwrap(), "max_page_count") > 1 << 30);
    child::run(&mut child::command("child_sets_a_limit", dir.path()));
    let set = Instant::now();
    loop {
        let conn = m.connection("acme").unwrap();
        if pragma(&conn, "max_page_count") == 16 {
            assert!(matches!(
                fill(&conn),
                Error::QuotaExceeded { limit: 65536, .. }
            ));
            break;
        }
        assert!(set.elapsed() < Duration::from_secs(30), "never seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("seen after {:?} (watch_interval {WATCH:?})", set.elapsed());
}

/// The child of the full-disk test: inside its own mount namespace with a
/// 1 MiB file system mounted on the root, fills a tenant with a limit
/// larger than the disk, and one without a limit.
#[test]
#[ignore = "child process of a_full_file_system_is_disk_full_naming_it"]
fn child_on_a_tiny_file_system() {
    let Some(root) = child::root() else { return };
    let m = manager(&root, Some(64 << 20));
    let tenants = [("acme", Some(64 << 20)), ("globex", None)];
    for (name, limit) in tenants {
        m.create_tenant(name).unwrap();
        m.set_tenant_max_size(name, limit).unwrap();
    }
    // Opened before the disk fills: a full disk leaves no room for a new
    // connection's -shm.
    let conns: Vec<_> = tenants
        .iter()
        .map(|(name, _)| m.connection(name).unwrap())
        .collect();
    for ((name, _), conn) in tenants.iter().zip(&conns) {
        match fill(conn) {
            Error::DiskFull {
                tenant,
                file_system,
                ..
            } => {
                assert_eq!(tenant.unwrap().as_str(), *name);
                assert_eq!(file_system, root);
            }
            other => panic!("expected DiskFull, got {other:?}"),
        }
        // Nothing lost: the tenant still reads.
        rows(conn);
    }
    // A migration opens the tenant afresh (its -wal and -shm made anew
    // once every connection closed): on the full disk that open is said
    // to be one, not a bare "disk I/O error" (an outside probe).
    drop(conns);
    m.prune_idle(Duration::ZERO);
    match m.rollback_tenant("globex", 1) {
        Err(Error::DiskFull { tenant, .. }) => {
            assert_eq!(tenant.unwrap().as_str(), "globex");
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    println!("FULL");
}

#[test]
fn a_full_file_system_is_disk_full_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = root.display();
    let Some(mut command) = child::in_mount_namespace(
        &format!("mount -t tmpfs -o size=1m tmpfs '{r}'"),
        "child_on_a_tiny_file_system",
        &root,
        "a_full_file_system_is_disk_full_naming_it",
    ) else {
        return;
    };
    assert!(child::run(&mut command).contains("FULL"));
}

/// A limit set while the tenant is being destroyed does not outlive the
/// destroy onto the next tenant of the name (an outside probe: 3 of 200
/// incarnations created again were born with the old one's limit; the
/// same path set suspensions). The change takes the tenant's lock, which
/// a destroy holds until the tenant and its limits are gone, and looks
/// at the tenant again under it. Here the destroy holding the lock is
/// played by hand: its lock held, the tenant's files removed under it.
#[test]
fn a_limit_set_during_a_destroy_does_not_pass_to_the_next_tenant_of_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), None);
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    let tenant_dir = db.parent().unwrap().to_path_buf();
    let lock_file = tenant_dir.with_file_name(".acme.lock");
    let held = std::fs::File::create(&lock_file).unwrap();
    held.lock().unwrap();
    let set = std::thread::scope(|s| {
        let setting = s.spawn(|| m.set_tenant_max_size("acme", Some(12345)));
        std::thread::sleep(Duration::from_millis(300));
        std::fs::remove_dir_all(&tenant_dir).unwrap();
        std::fs::remove_file(&lock_file).unwrap();
        drop(held);
        setting.join().unwrap()
    });
    assert!(
        matches!(set, Err(Error::TenantDoesNotExist { .. })),
        "{set:?}"
    );
    m.create_tenant("acme").unwrap();
    assert_eq!(m.tenant_limits("acme").unwrap().max_size, None);
}

/// A way to make tenant `acme` again.
type MakeTenant<'a> = dyn Fn(&TenantManager) -> tenanted::Result<()> + 'a;

/// A destroy killed after the tenant's files went, before it forgot the
/// tenant's limits, leaves its line in the limits record (played here by
/// hand: the directory removed, the line kept). The next tenant of the
/// name, made by a create, a batch create or a restore, starts from the
/// defaults, unsuspended: the line is dropped under the new tenant's lock
/// once the name is known to be free.
#[test]
fn a_limit_left_by_a_destroy_that_died_does_not_pass_to_the_next_tenant_of_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, Some(1 << 20));
    let backup = dir.path().join("fresh.sqlite3");
    m.create_tenant("fresh").unwrap();
    m.backup_tenant("fresh", &backup).unwrap();
    let make: [(&str, &MakeTenant<'_>); 3] = [
        ("create_tenant", &|m| m.create_tenant("acme")),
        ("create_tenants", &|m| {
            let report = m.create_tenants(["acme"])?;
            assert!(report.is_success(), "{report:?}");
            Ok(())
        }),
        ("restore_tenant", &|m| {
            m.restore_tenant("acme", &backup).map(drop)
        }),
    ];
    for (how, make) in make {
        m.create_tenant("acme").unwrap();
        m.set_tenant_max_size("acme", Some(12345)).unwrap();
        let reason = "unpaid";
        m.suspend_tenant("acme", tenanted::SuspendMode::Blocked, reason)
            .unwrap();
        let db = m.root().database_path("acme").unwrap();
        std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
        // Another process (a fresh manager) makes the tenant again.
        let other = manager(&root, Some(1 << 20));
        make(&other).unwrap_or_else(|e| panic!("{how}: {e}"));
        let limits = other.tenant_limits("acme").unwrap();
        assert_eq!(limits.max_size, Some(1 << 20), "{how}: the default");
        assert!(limits.suspension.is_none(), "{how}: {limits:?}");
        other.connection("acme").unwrap();
        other.destroy_tenant("acme").unwrap();
    }
}

/// A tenant over its limit (the limit was lowered below its size) is held
/// at the size it has; once it shrinks (`DELETE` and `VACUUM`), it is
/// held to the limit itself, on every connection of its pool, not at the
/// size it had when they were opened (an outside probe: a tenant shrunk
/// from 310 pages to 8 under a limit of 64 grew back to 310).
#[test]
fn a_tenant_shrunk_below_its_limit_is_held_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), None);
    m.create_tenant("v").unwrap();
    {
        let conn = m.connection("v").unwrap();
        for _ in 0..300 {
            insert(&conn, 4000).unwrap();
        }
    }
    m.set_tenant_max_size("v", Some(256 * KIB)).unwrap();
    // Connections opened over the limit: all three of the pool's.
    let held: Vec<_> = (0..3).map(|_| m.connection("v").unwrap()).collect();
    assert!(matches!(
        insert(&held[0], 4000),
        Err(Error::QuotaExceeded { .. })
    ));
    held[1].execute_batch("DELETE FROM blobs; VACUUM;").unwrap();
    let shrunk = pragma(&held[1], "page_count");
    assert!(shrunk < 64, "VACUUM left {shrunk} pages");
    drop(held);
    // Whichever connection comes, the limit is the limit again.
    for _ in 0..6 {
        let conn = m.connection("v").unwrap();
        let e = fill(&conn);
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e}");
        let pages = pragma(&conn, "page_count");
        assert!(pages <= 64, "grew back to {pages} pages past a limit of 64");
        conn.execute_batch("DELETE FROM blobs; VACUUM;").unwrap();
    }
}
