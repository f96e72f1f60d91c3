//! The watcher looks only at tenants that tenanted announced as changed
//! (in any process: see `tests/cross_process_safety.rs` and
//! `tests/multiprocess_tests.rs` for real separate processes), and finds
//! changes made behind tenanted's back by its slower sweep.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tenanted::TenantManager;

const WATCH: Duration = Duration::from_millis(20);

fn watcher(root: &std::path::Path, sweep: Duration) -> TenantManager {
    builder(root)
        .watch_interval(WATCH)
        .sweep_interval(sweep)
        .build()
        .unwrap()
}

/// Whether `m`'s cache drops to `pools` open pools within `limit`.
fn drops_to(m: &TenantManager, pools: usize, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if m.stats().open_pools == pools {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Sets `tenant`'s `user_version` with plain SQLite, as the `sqlite3`
/// shell would: nothing is announced.
fn set_version_behind_its_back(m: &TenantManager, tenant: &str, version: i64) {
    let path = m.root().database_path(tenant).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
}

#[test]
fn an_unannounced_change_waits_for_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let m = watcher(dir.path(), Duration::from_secs(3600));
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    drop(m.connection("acme").unwrap());
    drop(m.connection("globex").unwrap());
    // Let the first sweep (which starts with the first pass) go by.
    std::thread::sleep(WATCH * 10);
    set_version_behind_its_back(&m, "acme", 1);
    // Fifty passes later, nobody has looked at acme's pool: an idle pass
    // reads the change log only.
    assert!(!drops_to(&m, 1, WATCH * 50), "{:?}", m.stats());

    // With a short sweep, the same change is found within it.
    let dir = tempfile::tempdir().unwrap();
    let m = watcher(dir.path(), Duration::from_millis(300));
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    drop(m.connection("acme").unwrap());
    drop(m.connection("globex").unwrap());
    set_version_behind_its_back(&m, "acme", 1);
    assert!(drops_to(&m, 1, Duration::from_secs(3)), "{:?}", m.stats());
    assert!(m.connection("acme").is_err(), "acme is behind now");
}

#[test]
fn an_announced_rollback_is_noticed_within_the_watch_interval() {
    let dir = tempfile::tempdir().unwrap();
    let serving = watcher(dir.path(), Duration::from_secs(3600));
    serving.create_tenant("acme").unwrap();
    serving.create_tenant("globex").unwrap();
    drop(serving.connection("acme").unwrap());
    drop(serving.connection("globex").unwrap());
    // Another manager on the same root (as another process would be).
    let other = common::manager(dir.path());
    other.rollback_tenant("acme", 1).unwrap();
    assert!(drops_to(&serving, 1, WATCH * 25), "{:?}", serving.stats());
    let again = serving.connection("acme");
    assert!(again.is_err(), "acme is behind now");
    // globex was not announced: still cached, never looked at.
    assert_eq!(serving.stats().open_pools, 1);
}

#[test]
fn an_announced_destroy_lets_the_destroy_through_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let serving = watcher(dir.path(), Duration::from_secs(3600));
    serving.create_tenant("acme").unwrap();
    drop(serving.connection("acme").unwrap());
    let other = builder(dir.path())
        .destroy_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    other.destroy_tenant("acme").unwrap();
    // The serving manager let go within a few passes, not after a sweep.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(drops_to(&serving, 0, WATCH * 25));
}
