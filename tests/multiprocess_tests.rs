//! Four processes creating, destroying and migrating overlapping tenants at
//! once: no spurious error, and a consistent fleet afterwards.

mod common;

use common::*;
use tenanted::Error;

const NAMES: [&str; 6] = ["mp-a", "mp-b", "mp-c", "mp-d", "mp-e", "mp-f"];
const OPS: usize = 400;

/// One of the four workers; the only errors it accepts are the ones the
/// operation's contract promises under contention.
#[test]
#[ignore = "child process of four_processes_on_overlapping_tenants"]
fn child_worker() {
    let Some(root) = child::root() else {
        return;
    };
    let m = manager(&root);
    let mut x = std::process::id() as u64 * 2654435761 + 1;
    for _ in 0..OPS {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let name = NAMES[(x >> 33) as usize % NAMES.len()];
        let result = match (x >> 40) % 4 {
            0 | 1 => m.create_tenant(name).map(|_| ()),
            2 => m.destroy_tenant(name),
            _ => m
                .migrate_tenant_to(name, 1 + (x >> 50) as usize % 3)
                .map(|_| ()),
        };
        match result {
            Ok(()) | Err(Error::TenantExists { .. }) | Err(Error::TenantDoesNotExist { .. }) => {}
            Err(e) => panic!("spurious error on {name}: {e}"),
        }
    }
    println!("WORKER-DONE");
}

#[test]
fn four_processes_on_overlapping_tenants() {
    let dir = tempfile::tempdir().unwrap();
    // Build the shared template first so every worker races on tenants.
    manager(dir.path()).create_tenant("warm-up").unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| child::spawn(&mut child::command("child_worker", dir.path())))
        .collect();
    for worker in workers {
        let stdout = child::wait(worker);
        assert!(stdout.contains("WORKER-DONE"), "worker failed:\n{stdout}");
    }
    let m = manager(dir.path());
    for tenant in sorted_tenants(&m) {
        let path = m.root().database_path(&tenant).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{tenant}");
        assert!((1..=3).contains(&version), "{tenant} at {version}");
    }
    // Clean runs leave nothing behind: no scratch, tombstone or lock file.
    let debris: Vec<String> = tenant_files_under(dir.path())
        .into_iter()
        .filter(|f| f.contains(".tmp-") || f.contains(".deleted-") || f.ends_with(".lock"))
        .collect();
    assert_eq!(debris, Vec::<String>::new());
    let orphans: Vec<String> = tenant_files_under(dir.path())
        .into_iter()
        .filter(|f| {
            ["-wal", "-shm", "-journal"].iter().any(|s| {
                f.strip_suffix(s)
                    .is_some_and(|db| !dir.path().join(db).exists())
            })
        })
        .collect();
    eprintln!("orphan sidecars: {orphans:?}");
    assert_eq!(m.remove_debris().unwrap(), orphans.len());
}
