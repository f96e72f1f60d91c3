//! A process killed with SIGKILL at random points of create, migrate and
//! destroy never leaves a half-made tenant: every listed tenant opens and
//! passes `PRAGMA integrity_check`, retried operations succeed, and
//! `remove_debris` sweeps up what the dead process left.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use tenanted::{Error, TenantManager};

const NAMES: [&str; 4] = ["crash-a", "crash-b", "crash-c", "crash-d"];
const ROUNDS: usize = 50;

/// The victim: loops over create (with a seed big enough to take time),
/// write, rollback, migrate and destroy until it is killed.
#[test]
#[ignore = "child process of sigkill_at_random_points_never_leaves_a_half_made_tenant"]
fn child_victim_loop() {
    let Some(root) = child::root() else {
        return;
    };
    let m = manager(&root);
    println!("READY");
    for round in 0.. {
        let name = NAMES[round % NAMES.len()];
        let _ = m.create_tenant_with(name, |tx| {
            for i in 0..300 {
                tx.execute(
                    "INSERT INTO notes (body) VALUES (?1)",
                    [format!("seed {i} {}", "x".repeat(200))],
                )?;
            }
            Ok::<_, rusqlite::Error>(())
        });
        if let Ok(conn) = m.connection(name) {
            let _ = conn.execute("INSERT INTO notes (body) VALUES ('live')", []);
        }
        let _ = m.rollback_tenant(name, 2);
        let _ = m.migrate_tenant(name);
        m.prune_idle(Duration::ZERO);
        if round % 3 == 0 {
            let _ = m.destroy_tenant(name);
        }
    }
}

fn integrity_ok(path: &Path) -> bool {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
    let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    result == "ok"
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

#[test]
fn sigkill_at_random_points_never_leaves_a_half_made_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed();
    let started = Instant::now();
    let mut rounds_with_debris = 0;
    for round in 0..ROUNDS {
        let mut victim = child::command("child_victim_loop", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 120));
        victim.kill().unwrap(); // SIGKILL on Unix
        victim.wait().unwrap();

        let debris = tenant_files_under(dir.path())
            .iter()
            .filter(|f| f.contains(".tmp-") || f.contains(".deleted-") || f.ends_with(".lock"))
            .count();
        if debris > 0 {
            rounds_with_debris += 1;
        }
        let m = manager(dir.path());
        for tenant in m.tenants().unwrap() {
            let tenant = tenant.unwrap();
            let path = m.root().database_path(tenant.as_str()).unwrap();
            assert!(
                integrity_ok(&path),
                "round {round}: {tenant} fails integrity_check"
            );
            // Retried operations succeed on whatever the crash left.
            m.migrate_tenant(tenant.as_str()).unwrap();
            m.connection(&tenant)
                .unwrap()
                .execute("INSERT INTO notes (body) VALUES ('after')", [])
                .unwrap();
        }
        // Every name can be created (or is there) and destroyed again.
        let name = NAMES[round % NAMES.len()];
        match m.create_tenant(name) {
            Ok(()) | Err(Error::TenantExists { .. }) => {}
            Err(e) => panic!("round {round}: create after crash failed: {e}"),
        }
        if round % 2 == 0 {
            m.destroy_tenant(name).unwrap();
        }
    }
    let m: TenantManager = manager(dir.path());
    m.remove_debris().unwrap();
    let leftovers: Vec<String> = tenant_files_under(dir.path())
        .into_iter()
        .filter(|f| f.contains(".tmp-") || f.contains(".deleted-") || f.ends_with(".lock"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    // Every directory that remains belongs to a live tenant.
    let live: Vec<String> = sorted_tenants(&m);
    for f in tenant_files_under(dir.path()) {
        let path = dir.path().join(&f);
        if path.is_file() {
            assert!(
                live.iter().any(|t| f.contains(t.as_str())),
                "orphan file {f} (live: {live:?})"
            );
        }
    }
    eprintln!(
        "{ROUNDS} kill rounds in {:?}, {rounds_with_debris} left debris",
        started.elapsed()
    );
    // The kills must land inside operations, or this test proves nothing.
    assert!(
        rounds_with_debris >= 3,
        "only {rounds_with_debris} of {ROUNDS} kills interrupted an operation"
    );
}

#[test]
fn remove_debris_cleans_what_a_crash_leaves_and_skips_busy_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("alive").unwrap();
    let alive = m.root().database_path("alive").unwrap();
    let gone = m.root().database_path("gone").unwrap();
    std::fs::create_dir_all(gone.parent().unwrap()).unwrap();
    // A crashed create of "gone" in its directory (made by hand, without
    // its database), a crashed operation on "alive": their entry locks
    // (beside their directories) left behind.
    for f in [
        ".main.sqlite3.tmp-1-1",
        ".main.sqlite3.tmp-1-1-wal",
        "main.sqlite3-wal",
        "main.sqlite3-shm",
    ] {
        std::fs::write(gone.with_file_name(f), b"x").unwrap();
    }
    let entry_lock = |db: &std::path::Path, name: &str| {
        db.parent().unwrap().with_file_name(format!(".{name}.lock"))
    };
    std::fs::write(entry_lock(&gone, "gone"), b"").unwrap();
    std::fs::write(entry_lock(&alive, "alive"), b"").unwrap();
    // Not ours: left alone.
    std::fs::write(alive.with_file_name("notes.txt"), b"keep").unwrap();

    // A create in progress holds its lock: its scratch file is not debris.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
    let creator = {
        let m = m.clone();
        std::thread::spawn(move || {
            m.create_tenant_with("busy", move |_tx| {
                started_tx.send(()).unwrap();
                finish_rx.recv().unwrap();
                Ok::<_, rusqlite::Error>(())
            })
        })
    };
    started_rx.recv().unwrap();

    // gone: 2 scratch files, 2 orphan sidecars, its lock file; alive: its
    // lock file.
    assert_eq!(m.remove_debris().unwrap(), 6);
    // The create builds busy's directory under a hidden name beside where
    // it goes (see `storage/lifecycle/stage.rs`), and nobody listed it meanwhile.
    let busy_db = m.root().database_path("busy").unwrap();
    let busy_dir = busy_db.parent().unwrap();
    assert!(!busy_dir.exists());
    assert_eq!(sorted_tenants(&m), ["alive"]);
    let staged = busy_dir.with_file_name(".busy.creating");
    let in_progress: Vec<_> = std::fs::read_dir(&staged)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        in_progress
            .iter()
            .any(|f| f.to_string_lossy().contains(".tmp-")),
        "{in_progress:?}"
    );
    finish_tx.send(()).unwrap();
    creator.join().unwrap().unwrap();
    let left = tenant_files_under(dir.path());
    assert!(!left.iter().any(|f| f.contains("gone")), "{left:?}");
    assert!(left.iter().any(|f| f.ends_with("alive/main.sqlite3")));
    assert!(left.iter().any(|f| f.ends_with("alive/notes.txt")));
    assert!(!left.iter().any(|f| f.ends_with(".lock")), "{left:?}");
    assert_eq!(m.remove_debris().unwrap(), 0);
    assert_eq!(sorted_tenants(&m), ["alive", "busy"]);
}
