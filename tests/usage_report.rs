//! The fleet usage report: sizes, pages and free pages as SQLite counts
//! them, WAL bytes, last writes, limits and suspensions; the top rows in
//! each order; every row streamed to a callback; damaged tenants
//! reported, not fatal; a process with pools open reads through the
//! descriptor it already parked.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tenanted::{Error, SuspendMode, TenantManager, TenantUsage, UsageOrder};

const KIB: u64 = 1024;

fn pragma(m: &TenantManager, name: &str, pragma: &str) -> u64 {
    let conn = m.connection(name).unwrap();
    let n: i64 = conn
        .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
        .unwrap();
    n.try_into().unwrap()
}

fn checkpoint(m: &TenantManager, name: &str) {
    let conn = m.connection(name).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// `small`, `medium` and `large` (1, 40 and 100 rows of ~4 KB), every
/// tenant with a default limit of 512 KiB.
fn fleet(root: &Path) -> TenantManager {
    let m = common::builder(root)
        .default_max_size(Some(512 * KIB))
        .build()
        .unwrap();
    for (name, rows) in [("small", 1), ("medium", 40), ("large", 100)] {
        m.create_tenant(name).unwrap();
        let conn = m.connection(name).unwrap();
        for _ in 0..rows {
            conn.execute(
                "INSERT INTO notes (body) VALUES (hex(randomblob(2000)))",
                [],
            )
            .unwrap();
        }
        drop(conn);
        checkpoint(&m, name);
    }
    m
}

/// Sets the database's and its `-wal`'s modification time to `age` ago.
fn written_ago(m: &TenantManager, name: &str, age: Duration) {
    let db = m.root().database_path(name).unwrap();
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    for path in [db, PathBuf::from(wal)] {
        if let Ok(file) = File::options().write(true).open(&path) {
            file.set_modified(SystemTime::now() - age).unwrap();
        }
    }
}

fn names(rows: &[TenantUsage]) -> Vec<&str> {
    rows.iter().map(|r| r.tenant.as_str()).collect()
}

#[test]
fn rows_count_as_sqlite_does_and_the_top_rows_come_in_each_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    m.set_tenant_max_size("medium", Some(64 * KIB)).unwrap();
    m.suspend_tenant("small", SuspendMode::ReadOnly, "audit")
        .unwrap();
    // Free pages on `large`, as of a checkpoint.
    let conn = m.connection("large").unwrap();
    conn.execute("DELETE FROM notes WHERE id % 2 = 0", [])
        .unwrap();
    drop(conn);
    checkpoint(&m, "large");
    let (pages, free) = (
        pragma(&m, "large", "page_count"),
        pragma(&m, "large", "freelist_count"),
    );
    assert!(free > 10, "{free}");
    // Then a write in its WAL, not in the header yet.
    let conn = m.connection("large").unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('in the wal')", [])
        .unwrap();
    drop(conn);
    for (name, days) in [("small", 3), ("medium", 2), ("large", 1)] {
        written_ago(&m, name, Duration::from_secs(days * 86_400));
    }
    let mut rows = HashMap::new();
    let report = m
        .usage_each(UsageOrder::Largest, 2, |row| {
            rows.insert(row.tenant.to_string(), row.clone());
        })
        .unwrap();
    assert_eq!((report.tenants, rows.len()), (3, 3));
    assert_eq!(names(&report.top), ["large", "medium"]);
    let large = &rows["large"];
    assert_eq!((large.page_count, large.free_pages), (pages, free));
    assert!(large.wal_bytes > 0, "{large:?}");
    assert_eq!(large.database_bytes, pages * u64::from(large.page_size));
    assert_eq!(rows["medium"].max_size, Some(64 * KIB));
    assert!(rows["medium"].is_over_limit(), "{:?}", rows["medium"]);
    assert_eq!(rows["small"].max_size, Some(512 * KIB));
    assert_eq!(rows["small"].suspension.as_ref().unwrap().reason, "audit");
    assert_eq!((report.over_limit, report.suspended), (1, 1));
    let total: u64 = rows.values().map(TenantUsage::bytes_on_disk).sum();
    assert_eq!(report.total_bytes, total);
    let closest = m.usage(UsageOrder::ClosestToLimit, 10).unwrap();
    assert_eq!(names(&closest.top), ["medium", "large", "small"]);
    let idle = m.usage(UsageOrder::LeastRecentlyWritten, 2).unwrap();
    assert_eq!(names(&idle.top), ["small", "medium"]);
    m.set_tenant_max_size("large", None).unwrap();
    let closest = m.usage(UsageOrder::ClosestToLimit, 10).unwrap();
    assert_eq!(
        names(&closest.top),
        ["medium", "small"],
        "no limit, no rank"
    );
}

/// A tenant that filled its limit since its last checkpoint: its header
/// still counts the pages it had then, and the report called it far from
/// its limit while its writes were refused.
#[test]
fn a_tenant_that_filled_its_limit_since_its_last_checkpoint_is_reported_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::builder(dir.path()).build().unwrap();
    m.create_tenant("acme").unwrap();
    m.set_tenant_max_size("acme", Some(256 * KIB)).unwrap();
    checkpoint(&m, "acme");
    let conn = m.connection("acme").unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    let insert = "INSERT INTO notes (body) VALUES (hex(randomblob(2000)))";
    let refused = (0..1000).find_map(|_| conn.execute(insert, []).err());
    assert!(refused.is_some(), "the limit stopped the writes");
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let report = m.usage(UsageOrder::ClosestToLimit, 1).unwrap();
    let row = &report.top[0];
    assert!(row.wal_bytes > 0, "the writes are in the -wal: {row:?}");
    assert_eq!(row.page_count, u64::try_from(pages).unwrap(), "{row:?}");
    assert!(row.is_over_limit() && row.is_near_limit(), "{row:?}");
    assert_eq!((report.over_limit, report.near_limit), (1, 1));
    drop(conn);
}

#[test]
fn a_damaged_tenant_or_one_without_its_database_is_reported_and_the_rest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    std::fs::write(m.root().database_path("small").unwrap(), vec![b'x'; 4096]).unwrap();
    std::fs::remove_file(m.root().database_path("medium").unwrap()).unwrap();
    let report = m.usage(UsageOrder::Largest, 10).unwrap();
    assert_eq!(names(&report.top), ["large"]);
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|(t, e)| (t.as_str(), &**e))
        .collect();
    assert!(
        matches!(
            failed[..],
            [
                ("medium", Error::MissingDatabase { .. }),
                ("small", Error::DamagedTenant { .. })
            ]
        ),
        "{failed:?}"
    );
}

/// A socket where a tenant's database should be is said as the status
/// says it (a special file, not a regular one), not as "No such device
/// or address", which is what opening one gives (an outside probe).
#[test]
fn a_socket_in_place_of_a_database_is_said_as_a_special_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    let db = m.root().database_path("medium").unwrap();
    std::fs::remove_file(&db).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(&db).unwrap();
    let report = m.usage(UsageOrder::Largest, 10).unwrap();
    let failed: Vec<_> = (report.failed.iter())
        .map(|(t, e)| (t.as_str(), e.to_string()))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "medium");
    assert!(failed[0].1.contains("special file"), "{failed:?}");
}

#[test]
fn a_database_shorter_than_its_header_says_is_reported_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let m = common::builder(dir.path()).build().unwrap();
    let path = m.root().database_path("large").unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let file = File::options().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let report = m.usage(UsageOrder::Largest, 10).unwrap();
    assert_eq!(names(&report.top), ["medium", "small"]);
    let failed: Vec<_> = (report.failed.iter())
        .map(|(t, e)| (t.as_str(), e.to_string()))
        .collect();
    assert!(
        matches!(&failed[..], [("large", said)] if said.contains("large") && said.contains("main.sqlite3")),
        "{failed:?}"
    );
    // As status says.
    assert_eq!(m.migration_status().unwrap().unreadable(), 1);
}

#[test]
fn a_large_fleet_streams_every_row_and_keeps_only_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    let all: Vec<String> = (0..300).map(|i| format!("t{i:04}")).collect();
    m.create_tenants(&all).unwrap();
    let conn = m.connection("t0150").unwrap();
    conn.execute(
        "INSERT INTO notes (body) VALUES (hex(randomblob(50000)))",
        [],
    )
    .unwrap();
    drop(conn);
    checkpoint(&m, "t0150");
    let mut seen = Vec::new();
    let report = m
        .usage_each(UsageOrder::Largest, 3, |row| {
            seen.push(row.tenant.to_string())
        })
        .unwrap();
    seen.sort();
    assert_eq!((seen, report.tenants, report.top.len()), (all, 300, 3));
    assert_eq!(report.top[0].tenant.as_str(), "t0150");
    // Ties (the rest are the same size) go by name.
    assert_eq!(names(&report.top[1..]), ["t0000", "t0001"]);
}

/// Descriptors of this process open on `path`.
fn descriptors_on(path: &Path) -> usize {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap();
    let on = |e: std::fs::DirEntry| std::fs::read_link(e.path()).ok();
    fds.filter_map(|e| on(e.ok()?))
        .filter(|t| t == path)
        .count()
}

#[test]
fn a_process_with_a_pool_open_parks_one_descriptor_however_often_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    let conn = m.connection("large").unwrap();
    let db = m
        .root()
        .database_path("large")
        .unwrap()
        .canonicalize()
        .unwrap();
    let before = descriptors_on(&db);
    for _ in 0..5 {
        let report = m.usage(UsageOrder::Largest, 1).unwrap();
        assert_eq!(report.top[0].tenant.as_str(), "large");
    }
    // The first read parks its descriptor (closing it would drop the
    // connection's locks); the next ones read through it.
    assert_eq!(descriptors_on(&db), before + 1);
    drop(conn);
}

/// An encrypted tenant (SQLCipher, its first 64 header bytes plaintext):
/// the report reads its pages and free pages from them, as SQLite counts
/// them with the key, without the key.
#[cfg(feature = "encryption")]
#[test]
fn an_encrypted_tenant_is_read_from_its_plaintext_header() {
    use tenanted::{MasterKey, RootKeyStore};
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let m = common::builder(dir.path())
        .encryption(RootKeyStore::new(dir.path(), master))
        .build()
        .unwrap();
    m.create_tenant("secret").unwrap();
    let conn = m.connection("secret").unwrap();
    for _ in 0..20 {
        conn.execute(
            "INSERT INTO notes (body) VALUES (hex(randomblob(2000)))",
            [],
        )
        .unwrap();
    }
    conn.execute("DELETE FROM notes WHERE id % 2 = 0", [])
        .unwrap();
    drop(conn);
    checkpoint(&m, "secret");
    let report = m.usage(UsageOrder::Largest, 1).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let row = &report.top[0];
    assert_eq!(
        row.page_count,
        pragma(&m, "secret", "page_count"),
        "{row:?}"
    );
    assert_eq!(
        row.free_pages,
        pragma(&m, "secret", "freelist_count"),
        "{row:?}"
    );
    assert!(row.free_pages > 0, "{row:?}");
}
