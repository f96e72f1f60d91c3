//! The watcher looks only at tenants that tenanted announced as changed
//! (in any process: see `tests/cross_process_safety.rs` and
//! `tests/multiprocess_tests.rs` for real separate processes), and finds
//! changes made behind tenanted's back by its slower sweep.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tenanted::{Error, TenantManager};

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

/// In a child process: rolls `acme` back to version 1, as an operator's
/// `tenanted rollback` on the same root would.
#[test]
#[ignore = "child process of the tests below"]
fn child_rolls_acme_back() {
    let Some(root) = child::root() else { return };
    manager(&root).rollback_tenant("acme", 1).unwrap();
}

/// A serving manager whose one connection to `acme` stays checked out
/// (a tenant busy all the time), and the connection.
fn busy_acme(
    root: &std::path::Path,
    sweep: Duration,
) -> (TenantManager, tenanted::TenantConnection) {
    let serving = builder(root)
        .watch_interval(WATCH)
        .sweep_interval(sweep)
        .max_connections(1)
        .connection_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    serving.create_tenant("acme").unwrap();
    let held = serving.connection("acme").unwrap();
    (serving, held)
}

/// What `m.connection("acme")` says within `limit`, once it says more
/// than that the pool's one connection is out.
fn answer_beyond_busy(m: &TenantManager, limit: Duration) -> Option<Error> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match m.connection("acme") {
            Err(Error::Pool { .. }) => {}
            Ok(_) => panic!("acme's one connection is held"),
            Err(e) => return Some(e),
        }
    }
    None
}

/// The busiest tenants were never looked at: the watcher read the
/// version on an idle connection only, and code of the last version went
/// on writing to a schema another process had changed.
#[test]
fn a_busy_pool_whose_tenant_another_process_rolled_back_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let (serving, held) = busy_acme(dir.path(), Duration::from_secs(3600));
    child::run(&mut child::command("child_rolls_acme_back", dir.path()));
    // Announced: looked at the next pass, busy or not. The bound is only
    // there to end the test if it never is.
    let answer = answer_beyond_busy(&serving, Duration::from_secs(30));
    assert!(
        matches!(answer, Some(Error::PendingMigration { .. })),
        "{answer:?}"
    );
    // The held connection still works; it closes when it comes back.
    held.query_row("SELECT 1", [], |_| Ok(())).unwrap();
}

#[test]
fn a_busy_pool_changed_behind_tenanteds_back_is_retired_by_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (serving, _held) = busy_acme(dir.path(), Duration::from_millis(300));
    // Unchanged, a busy pool stays: its version is read beside it, so its
    // tenant never has more than max_connections open.
    std::thread::sleep(Duration::from_secs(1));
    let stats = serving.stats();
    assert_eq!((stats.open_pools, stats.misses), (1, 1), "{stats:?}");
    set_version_behind_its_back(&serving, "acme", 1);
    // Found by the sweep, its version read with a one-off read: retired.
    let answer = answer_beyond_busy(&serving, Duration::from_secs(30));
    assert!(
        matches!(answer, Some(Error::PendingMigration { .. })),
        "{answer:?}"
    );
}

/// In a child process: holds acme's open gate exclusively, as a destroy
/// stopped at its barrier holds it, until the stop file appears.
#[test]
#[ignore = "child process of the test below"]
fn child_holds_acmes_open_gate() {
    let Some(root) = child::root() else { return };
    let db = manager(&root).root().database_path("acme").unwrap();
    let gate = std::fs::File::open(db.parent().unwrap()).unwrap();
    gate.lock().unwrap();
    println!("HOLDING");
    let started = Instant::now();
    while !child::stop_file(&root).exists() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One thread looks at every pool: a look at a busy pool whose tenant
/// another process holds (here its open gate, as a stopped destroy does)
/// waited 30 s for it, and no other tenant's change was noticed
/// meanwhile. It now waits for nobody, and looks again next pass.
#[test]
fn a_busy_pool_whose_tenant_another_process_holds_holds_up_no_other_pool() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (serving, held) = busy_acme(&root, Duration::from_millis(100));
    // Frames in the WAL: the header alone does not tell acme's version.
    held.execute("CREATE TABLE frames (x)", []).unwrap();
    serving.create_tenant("globex").unwrap();
    drop(serving.connection("globex").unwrap());
    let out = dir.path().join("holder.out");
    let holder = child::spawn_logged("child_holds_acmes_open_gate", &root, &out);
    child::wait_for_word(&out, "HOLDING");
    // Sweeps look at acme meanwhile (one each 100 ms).
    std::thread::sleep(Duration::from_millis(500));
    common::manager(&root).rollback_tenant("globex", 1).unwrap();
    let noticed = drops_to(&serving, 1, Duration::from_secs(10));
    std::fs::write(child::stop_file(&root), "").unwrap();
    child::wait_logged(holder, &out);
    assert!(noticed, "{:?}", serving.stats());
    assert!(
        serving.connection("globex").is_err(),
        "globex is behind now"
    );
    // acme, busy and unchanged, is still served.
    held.query_row("SELECT count(*) FROM frames", [], |_| Ok(()))
        .unwrap();
    assert_eq!(serving.stats().open_pools, 1);
}

/// The watcher's place in the change log is taken while the manager is
/// built, on the caller's thread: an announcement made once `build()`
/// has returned is news to it. (Taken on the watcher's own thread, after
/// `build()` returned, the log's end could be read after a pool was
/// cached and another process announced a change to it: that change was
/// then left to the sweep, a review.)
#[cfg(feature = "testing")]
#[test]
fn the_watcher_reads_the_change_log_from_where_it_was_at_build() {
    use tenanted::testing::faults::{FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    common::manager(dir.path()).create_tenant("acme").unwrap();
    let plan = FaultPlan::record();
    let m = watcher(dir.path(), Duration::from_secs(3600));
    let steps = plan.steps();
    drop(plan);
    assert!(
        steps
            .iter()
            .any(|s| s.step == Step::Open && s.name == std::path::Path::new("changes")),
        "{steps:?}"
    );
    drop(m);
}
