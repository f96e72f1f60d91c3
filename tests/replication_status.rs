//! Operators can see replication: `replication_status` and `tenanted
//! replication-status --json` say which tenants are replicated (being
//! streamed, or idle with a complete replica), each one's last sync and
//! lag, and fail with a clear error when replication is configured but
//! Litestream is not running, or not configured at all. With the real
//! Litestream under `tenanted replicate`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{litestream, schema, schema_dir};
use serde_json::Value;
use tenanted::replication::{ControlSocket, ReplicaState, ReplicationSettings};
use tenanted::{Error, RootConfig, TenantManager};

fn manager(root: &Path) -> TenantManager {
    TenantManager::builder(RootConfig::new(root), schema())
        .build()
        .unwrap()
}

fn cli(bin: &Path, root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenanted"));
    command
        .arg("--root")
        .arg(root)
        .arg("--migrations")
        .arg(schema_dir())
        .env("TENANTED_LITESTREAM", bin)
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null());
    command
}

/// `tenanted replicate`, quick to notice and to let go; killed on drop.
struct Supervisor(Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        litestream::stop(&mut self.0);
    }
}

fn supervise(bin: &Path, root: &Path, log: &Path) -> Supervisor {
    supervise_idle_after(bin, root, log, "1")
}

/// [`supervise`], letting go of a tenant unwritten for `idle` seconds.
fn supervise_idle_after(bin: &Path, root: &Path, log: &Path, idle: &str) -> Supervisor {
    let log = std::fs::File::create(log).unwrap();
    let child = cli(bin, root)
        .args(["replicate", "--scan-interval", "100", "--idle-after", idle])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let socket = ReplicationSettings::socket_path(&RootConfig::new(root), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ControlSocket::new(&socket).is_running() {
        assert!(
            Instant::now() < deadline,
            "tenanted replicate never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Supervisor(child)
}

fn status_json(bin: &Path, root: &Path) -> (Option<i32>, Value) {
    let out = cli(bin, root)
        .args(["replication-status", "--json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json)
}

#[test]
fn operators_see_which_tenants_are_replicated_and_a_clear_error_without_litestream() {
    let Some(bin) = litestream::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("busy").unwrap();
    m.create_tenant("quiet").unwrap();

    // Not configured: said, with what to run.
    let err = m.replication_status().unwrap_err();
    assert!(
        matches!(err, tenanted::Error::ReplicationNotConfigured { .. }),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("no replication configured") && err.contains("tenanted replicate"),
        "{err}"
    );
    assert!(err.contains(&root.display().to_string()), "{err}");
    assert!(!err.contains("replica  "), "an empty replica URL: {err}");

    let replica: PathBuf = dir.path().join("replica");
    ReplicationSettings::new(format!("file://{}", replica.display()))
        .record(&RootConfig::new(&root))
        .unwrap();
    // Configured, but no Litestream: a clear error, at the CLI too.
    let err = m.replication_status().unwrap_err();
    assert!(matches!(err, Error::LitestreamNotRunning { .. }), "{err}");
    let (code, json) = status_json(&bin, &root);
    assert_eq!(code, Some(1), "{json}");
    let said = json["error"].as_str().unwrap_or_default();
    assert!(
        said.contains("Litestream is not running") && said.contains("tenanted replicate"),
        "{json}"
    );

    let mut supervisor = supervise(&bin, &root, &dir.path().join("replicate.log"));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (writing, root) = (Arc::clone(&writing), root.clone());
        std::thread::spawn(move || {
            let m = manager(&root);
            let mut i = 0;
            while writing.load(Ordering::SeqCst) {
                let conn = m.connection("busy").unwrap();
                conn.execute(
                    "INSERT INTO users (email, name) VALUES (?1, 'b')",
                    [format!("{i}@b")],
                )
                .unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // `busy` is streamed with a small lag; `quiet`, unchanged, was
    // replicated once and let go of: idle with a complete replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = m.replication_status().unwrap();
        let state = |t: &str| {
            status
                .tenants
                .iter()
                .find(|l| l.tenant.as_str() == t)
                .map(|l| l.state)
        };
        if state("busy") == Some(ReplicaState::Replicating)
            && state("quiet") == Some(ReplicaState::Idle)
        {
            break status;
        }
        assert!(Instant::now() < deadline, "never converged:\n{status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("{status}");
    // By name, not by sort order; the lag is printed above, not asserted
    // (a timing figure on a loaded machine).
    let line = |t: &str| status.tenants.iter().find(|l| l.tenant.as_str() == t);
    assert!(line("busy").unwrap().last_sync.is_some(), "{status}");
    assert!(line("quiet").unwrap().last_sync.is_some(), "{status}");
    assert_eq!(status.processes.len(), 1);

    let (code, json) = status_json(&bin, &root);
    let state = |name: &str| {
        let tenants = json["tenants"].as_array().unwrap();
        let line = tenants.iter().find(|t| t["tenant"] == name);
        line.and_then(|t| t["state"].as_str()).map(str::to_owned)
    };
    assert_eq!(state("quiet").as_deref(), Some("idle"), "{json}");
    assert_eq!(state("busy").as_deref(), Some("replicating"), "{json}");
    // Nothing at risk: exit 0.
    assert_eq!(code, Some(0), "{json}");
    assert!(json["max_lag_ms"].as_f64().is_some(), "{json}");
    assert_eq!(json["supervised"], true, "{json}");
    writing.store(false, Ordering::SeqCst);
    writer.join().unwrap();

    // The supervisor killed: its Litestream still answers and every
    // tenant looks replicated, but nothing written from now on would be
    // registered. Said, exit 1 (it was 0 at risk, exit 0: an outside
    // probe).
    let orphan =
        std::fs::read_to_string(root.join(".tenanted/replication.d/litestream-0.pid")).unwrap();
    let _ = supervisor.0.kill();
    let _ = supervisor.0.wait();
    let (code, json) = status_json(&bin, &root);
    let said = m.replication_status().map(|s| s.to_string());
    let _ = Command::new("kill").arg(orphan.trim()).status();
    assert_eq!(
        (code, &json["supervised"]),
        (Some(1), &Value::Bool(false)),
        "{json}"
    );
    let said = said.unwrap();
    assert!(said.contains("no `tenanted replicate` runs"), "{said}");
}

/// `replication-status` on an S3-compatible store (SeaweedFS): the
/// endpoint and path style recorded in the URL's query reach the listing
/// (review R11: before, it listed AWS with `p?endpoint=...` as the prefix,
/// and failed).
#[test]
fn status_lists_an_s3_compatible_store_named_by_the_recorded_query() {
    let (Some(bin), Some(weed)) = (litestream::binary(), common::object_store::binary()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = common::object_store::start(&weed, &dir.path().join("s3"), "status-test");
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let url = format!(
        "{}?endpoint={}&forcePathStyle=true",
        store.url("fleet"),
        store.endpoint
    );
    ReplicationSettings::new(url)
        .record(&RootConfig::new(&root))
        .unwrap();
    let log = std::fs::File::create(dir.path().join("replicate.log")).unwrap();
    let mut command = cli(&bin, &root);
    store.credentials(&mut command);
    let child = command
        .args(["replicate", "--scan-interval", "100", "--idle-after", "1"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _supervisor = Supervisor(child);
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO users (email, name) VALUES ('a@x', 'a')", [])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut command = cli(&bin, &root);
        store.credentials(&mut command);
        let out = command
            .args(["replication-status", "--json"])
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let state = json["tenants"][0]["state"].as_str().map(str::to_owned);
        if out.status.code() == Some(0) && state.as_deref() == Some("idle") {
            break;
        }
        let log = std::fs::read_to_string(dir.path().join("replicate.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "never idle with a complete replica: {json}\n{}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A stalled store (it accepts and answers nothing): the status fails
    // within its listing's 15 s, not after each request's own 60 s.
    store.signal("STOP");
    let started = Instant::now();
    let mut command = cli(&bin, &root);
    store.credentials(&mut command);
    let out = command.args(["replication-status"]).output().unwrap();
    let took = started.elapsed();
    store.signal("CONT");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        took < Duration::from_secs(45),
        "the status took {took:?}: {said}"
    );
    assert!(said.contains("did not answer"), "{said}");
}

/// `chattr +i` on every directory beneath `dir` (nothing can be made in
/// them, even by root); undone on drop, so the temp dir can go.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let done = Command::new("chattr").arg("-R").arg("+i").arg(dir).status();
        done.is_ok_and(|s| s.success())
            .then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// A registered tenant whose changes cannot reach the replica (here its
/// replica's directories made immutable: every upload fails, as on a full
/// disk or a store that refuses) is reported with the lag of its oldest
/// change not in the replica, and so as stalled past 30 s; it was
/// "replicating, lag 0.0 s" with exit 0, because Litestream's own last
/// sync (a local one) goes on advancing while its uploads fail (an
/// outside probe, 2 of 2).
#[test]
fn a_tenant_whose_uploads_fail_shows_its_lag() {
    let Some(bin) = litestream::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let replica: PathBuf = dir.path().join("replica");
    ReplicationSettings::new(format!("file://{}", replica.display()))
        .record(&RootConfig::new(&root))
        .unwrap();
    let log = dir.path().join("replicate.log");
    let _supervisor = supervise_idle_after(&bin, &root, &log, "600");
    let write = |email: &str| {
        let conn = m.connection("acme").unwrap();
        conn.execute("INSERT INTO users (email, name) VALUES (?1, 'a')", [email])
            .unwrap();
    };
    write("first@a");
    let line = || {
        let status = m.replication_status().unwrap();
        status
            .tenants
            .into_iter()
            .find(|l| l.tenant.as_str() == "acme")
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(line().state == ReplicaState::Replicating && line().lag.is_zero()) {
        assert!(Instant::now() < deadline, "never replicated: {:?}", line());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past the 2 s after the replica's last write that are taken as
    // Litestream's own bookkeeping.
    std::thread::sleep(Duration::from_secs(3));
    let relative = RootConfig::new(&root).database_path("acme").unwrap();
    let relative = relative.strip_prefix(&root).unwrap();
    let Some(_frozen) = Immutable::set(&replica.join(relative)) else {
        eprintln!("chattr +i is not available here: skipped");
        return;
    };
    write("second@a");
    let written = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let waited = written.elapsed();
    let seen = line();
    assert_eq!(seen.state, ReplicaState::Replicating, "{seen:?}");
    // The change waits from when Litestream captured it (its local sync,
    // a second or so after the write; allow 5 s for a loaded machine):
    // never "lag 0" while it is not in the replica.
    assert!(
        seen.lag + Duration::from_secs(5) >= waited,
        "a change that never reached the replica, lag {:?}: {seen:?}\n{}",
        seen.lag,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
