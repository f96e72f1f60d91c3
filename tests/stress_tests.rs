//! Eight threads of mixed operations for ten seconds on 200 tenants, with
//! a watchdog against deadlock: no panic, pools within the cap, and every
//! committed write is read back.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::*;
use tenanted::Error;

const STABLE: usize = 180;
const VOLATILE: usize = 20;
const THREADS: usize = 8;
const MAX_POOLS: usize = 32;

fn stress_duration() -> Duration {
    let secs = std::env::var("TENANTED_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

#[test]
fn eight_threads_of_mixed_operations_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .max_pools(MAX_POOLS)
        .destroy_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for i in 0..STABLE {
        m.create_tenant(&format!("s{i:03}")).unwrap();
    }
    let committed: Arc<Vec<AtomicU64>> = Arc::new((0..STABLE).map(|_| AtomicU64::new(0)).collect());
    let ops = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + stress_duration();
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..THREADS {
        let (m, committed, ops, done_tx) = (
            m.clone(),
            Arc::clone(&committed),
            Arc::clone(&ops),
            done_tx.clone(),
        );
        std::thread::spawn(move || {
            let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut max_open = 0;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let stable = (x >> 20) as usize % STABLE;
                let name = format!("s{stable:03}");
                match x % 100 {
                    0..=59 => match m.connection(&name) {
                        Ok(conn) => match conn.execute("INSERT INTO notes (body) VALUES ('w')", [])
                        {
                            Ok(1) => {
                                committed[stable].fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(n) => panic!("inserted {n} rows"),
                            // Another thread's migration held the write lock past busy_timeout.
                            Err(e)
                                if e.sqlite_error_code()
                                    == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
                            Err(e) => panic!("write to {name} failed: {e}"),
                        },
                        // A concurrent rollback left it behind for a moment.
                        Err(Error::PendingMigration(_)) => {}
                        Err(e) => panic!("connection to {name} failed: {e}"),
                    },
                    60..=69 => {
                        if let Ok(conn) = m.connection(&name) {
                            conn.query_row("SELECT count(*) FROM notes", [], |r| {
                                r.get::<_, i64>(0)
                            })
                            .unwrap();
                        }
                    }
                    70..=84 => {
                        let name = format!("v{:02}", (x >> 30) as usize % VOLATILE);
                        let result = if m.tenant_exists(&name).unwrap() {
                            m.destroy_tenant(&name)
                        } else {
                            m.create_tenant(&name)
                        };
                        match result {
                            Ok(())
                            | Err(Error::TenantExists { .. })
                            | Err(Error::TenantDoesNotExist { .. })
                            | Err(Error::TenantBusy { .. }) => {}
                            Err(e) => panic!("create/destroy {name}: {e}"),
                        }
                        if let Ok(conn) = m.connection(&name) {
                            let _ = conn.execute("INSERT INTO notes (body) VALUES ('v')", []);
                        }
                    }
                    85..=94 => {
                        // Down to version 2 and up again: the last
                        // migration's down and up race the writes. (Not
                        // `rollback_tenant(1)`: three threads' one-step
                        // rollbacks in a row would, correctly, undo
                        // `notes` itself and the test would count that
                        // as lost writes.)
                        m.migrate_tenant_to(&name, 2).unwrap();
                        m.migrate_tenant(&name).unwrap();
                    }
                    _ => {
                        m.prune_idle(Duration::ZERO);
                    }
                }
                max_open = max_open.max(m.stats().open_pools);
                ops.fetch_add(1, Ordering::Relaxed);
            }
            done_tx.send(max_open).unwrap();
        });
    }
    drop(done_tx);
    // The watchdog: every worker must report within a minute of the end.
    let watchdog = deadline + Duration::from_secs(60);
    for _ in 0..THREADS {
        let left = watchdog.saturating_duration_since(Instant::now());
        let max_open = done_rx
            .recv_timeout(left)
            .expect("a worker deadlocked or panicked");
        assert!(max_open <= MAX_POOLS, "open_pools reached {max_open}");
    }
    let stats = m.stats();
    assert!(
        stats.open_pools <= MAX_POOLS && stats.checked_out == 0,
        "{stats:?}"
    );
    let mut written = 0;
    for (i, expected) in committed.iter().enumerate() {
        let name = format!("s{i:03}");
        let rows: i64 = m
            .connection(&name)
            .unwrap()
            .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows as u64,
            expected.load(Ordering::SeqCst),
            "{name} lost writes"
        );
        written += rows;
    }
    eprintln!(
        "{} operations, {written} committed writes all read back, {stats:?}",
        ops.load(Ordering::Relaxed)
    );
    assert!(written > 0);
}
