//! The supervisor registers written tenants while idle ones are still
//! being let go of (review R5): letting go waits for the replica (`sync
//! -wait`), which a slow or stalled store can hold for its whole 30 s
//! timeout, and a scan that waited for it before registering kept every
//! newly written tenant unreplicated that long: under a backlog of idle
//! tenants the RPO did not hold.
//!
//! Litestream is played by `tests/fixtures/fake_litestream.py`, which
//! holds the sync of `stuck` for as long as the test wants and logs every
//! request, so that the test asserts an order of events, not a time.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::manager;
use tenanted::RootConfig;
use tenanted::replication::{ReplicateOptions, ReplicationSettings, Replicator};

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The fake's events so far, one per line.
fn events(state: &Path) -> Vec<String> {
    let text = fs::read_to_string(state.join("events.log")).unwrap_or_default();
    text.lines().map(str::to_owned).collect()
}

/// Waits until `wanted` is among the events, failing if `never` comes
/// first.
fn wait_for(state: &Path, wanted: &dyn Fn(&str) -> bool, never: &dyn Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = events(state);
        if let Some(bad) = seen.iter().find(|e| never(e)) {
            panic!("{bad} came first:\n{}", seen.join("\n"));
        }
        if seen.iter().any(|e| wanted(e)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never came:\n{}",
            seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_written_tenant_is_registered_while_an_idle_one_waits_for_its_replica() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("TENANTED_REQUIRE_LITESTREAM").is_none(),
            "python3 is required here"
        );
        eprintln!("SKIPPED: python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let config = RootConfig::new(&root);
    let url = format!("file://{}", dir.path().join("replica").display());
    ReplicationSettings::new(url).record(&config).unwrap();
    let m = manager(&root);
    m.create_tenant("stuck").unwrap();
    m.create_tenant("fresh").unwrap();
    let fake = dir.path().join("litestream");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_litestream.py");
    fs::copy(script, &fake).unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let state = root.join(".tenanted/replication.d");
    fs::create_dir_all(&state).unwrap();
    // stuck's replica never completes while HOLD is there.
    fs::write(state.join("HOLD"), b"").unwrap();

    let options = ReplicateOptions::new()
        .litestream(&fake)
        .scan_interval(Duration::from_millis(100))
        .idle_after(Duration::from_secs(1));
    let replicator = Replicator::start(&config, options).unwrap();
    let stop = AtomicBool::new(false);
    let about = |what: &'static str, tenant: &'static str| {
        move |e: &str| e.starts_with(&format!("{what} ")) && e.contains(&format!("/{tenant}/"))
    };
    std::thread::scope(|s| {
        let running = s.spawn(|| replicator.run(&stop, |_| {}));
        let _stop = StopOnDrop(&stop);
        // Both are looked at once: fresh is let go of, stuck's sync held.
        wait_for(&state, &about("unregister", "fresh"), &|_| false);
        wait_for(&state, &about("sync-held", "stuck"), &|_| false);
        let registered = events(&state)
            .iter()
            .filter(|e| about("register", "fresh")(e))
            .count();
        m.connection("fresh")
            .unwrap()
            .execute_batch("CREATE TABLE w (x); INSERT INTO w VALUES (1);")
            .unwrap();
        // fresh is registered again while stuck's sync is still held:
        // before, the scan waited for it until the client gave up.
        let again = |e: &str| {
            about("register", "fresh")(e)
                && events(&state)
                    .iter()
                    .filter(|x| about("register", "fresh")(x))
                    .count()
                    > registered
        };
        wait_for(&state, &again, &about("sync-abandoned", "stuck"));
        fs::remove_file(state.join("HOLD")).unwrap();
        stop.store(true, Ordering::SeqCst);
        running.join().unwrap().unwrap();
    });
}
