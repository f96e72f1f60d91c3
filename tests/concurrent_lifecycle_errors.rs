//! Sixteen threads racing connections and writes against creates,
//! destroys and pruning of the same four tenants (with room for only two
//! pools, so cold opens race destroys) get only the documented errors:
//! `TenantExists`, `TenantDoesNotExist`, `TenantBeingDestroyed`,
//! `TenantBusy`. Never a raw `disk I/O error`, never an I/O error from a
//! directory removed under a create, never a write lost in a deleted file.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::builder;
use tenanted::Error;

const THREADS: usize = 16;
const OPS: usize = 300;
const TENANTS: [&str; 4] = ["c0", "c1", "c2", "c3"];

fn documented(e: &Error) -> bool {
    matches!(
        e,
        Error::TenantExists { .. }
            | Error::TenantDoesNotExist { .. }
            | Error::TenantBeingDestroyed { .. }
            | Error::TenantBusy { .. }
    )
}

#[test]
fn racing_opens_writes_creates_and_destroys_give_only_documented_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .max_pools(2)
        .destroy_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let writes = AtomicUsize::new(0);
    let undocumented = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (m, writes, undocumented) = (&m, &writes, &undocumented);
            s.spawn(move || {
                let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let name = TENANTS[(x >> 8) as usize % TENANTS.len()];
                    if let Err(e) = one_op(m, name, x % 10, writes) {
                        undocumented.lock().unwrap().push(format!("{name}: {e}"));
                    }
                }
            });
        }
    });
    let undocumented = undocumented.into_inner().unwrap();
    assert!(
        undocumented.is_empty(),
        "{} undocumented errors, first ones: {:#?}",
        undocumented.len(),
        &undocumented[..undocumented.len().min(5)]
    );
    assert!(
        writes.load(Ordering::Relaxed) > 0,
        "no write ever succeeded"
    );
    for name in common::sorted_tenants(&m) {
        let conn = m.connection(&name).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{name}");
    }
}

/// One operation; `Err` only for an undocumented error.
fn one_op(
    m: &tenanted::TenantManager,
    name: &str,
    op: u64,
    writes: &AtomicUsize,
) -> Result<(), String> {
    let result = match op {
        0..=4 => match m.connection(name) {
            Ok(conn) => {
                // Checked out: a destroy waits for it, so the write lands.
                conn.execute("INSERT INTO notes (body) VALUES ('x')", [])
                    .map_err(|e| format!("write through a checked-out connection: {e}"))?;
                writes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        },
        5 | 6 => m.create_tenant_if_not_exists(name).map(drop),
        7 | 8 => m.destroy_tenant(name),
        _ => {
            m.prune_idle(Duration::ZERO);
            Ok(())
        }
    };
    match result {
        Err(e) if !documented(&e) => Err(e.to_string()),
        _ => Ok(()),
    }
}
