//! Replication stays right through every lifecycle operation, in this
//! process and from the CLI in another, with `tenanted replicate` (the
//! real Litestream) running the whole time and never restarted: after
//! each operation a `litestream restore` of the tenant's replica holds
//! exactly what the live tenant holds; a destroyed tenant's replica is
//! gone when the destroy returns; a tenant created again under its name
//! starts a history of its own (no point-in-time restore yields the old
//! incarnation's rows); with a retention, the destroyed replica is moved
//! aside at once and erased by `tenanted erase-replicas`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::litestream::{binary, content, restore};
use common::{files_under, schema, schema_dir};
use tenanted::replication::{ControlSocket, ReplicationSettings};
use tenanted::{RestoreOptions, RootConfig, TenantManager};

struct Setup {
    bin: PathBuf,
    dir: tempfile::TempDir,
    root: PathBuf,
    replica: PathBuf,
    settings: ReplicationSettings,
}

impl Setup {
    fn new(retention: Duration) -> Option<Setup> {
        let bin = binary()?;
        let dir = tempfile::tempdir().unwrap();
        let (root, replica) = (dir.path().join("root"), dir.path().join("replica"));
        std::fs::create_dir_all(&root).unwrap();
        let url = format!("file://{}", replica.display());
        let settings = ReplicationSettings::new(url).retention(retention);
        settings.record(&RootConfig::new(&root)).unwrap();
        Some(Setup {
            bin,
            dir,
            root,
            replica,
            settings,
        })
    }

    fn manager(&self) -> TenantManager {
        TenantManager::builder(RootConfig::new(&self.root), schema())
            .watch_interval(Duration::from_millis(100))
            .destroy_timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    fn cli(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenanted"));
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--migrations")
            .arg(schema_dir())
            .env("TENANTED_LITESTREAM", &self.bin)
            .stdin(Stdio::null());
        command
    }

    fn run_cli(&self, args: &[&str]) {
        let out = self.cli().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tenanted {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `tenanted replicate`, quick to notice and to let go.
    fn replicate(&self) -> Supervisor {
        self.replicate_idle_after("1")
    }

    /// `tenanted replicate`, letting go of a tenant unwritten for `idle`
    /// seconds.
    fn replicate_idle_after(&self, idle: &str) -> Supervisor {
        self.replicate_with(idle, |_| {})
    }

    /// `tenanted replicate` (`idle` as above), its command set up by
    /// `more` first.
    fn replicate_with(&self, idle: &str, more: impl FnOnce(&mut Command)) -> Supervisor {
        let log = std::fs::File::create(self.dir.path().join("replicate.log")).unwrap();
        let mut command = self.cli();
        more(&mut command);
        let child = command
            .args([
                "replicate",
                "--scan-interval",
                "100",
                "--idle-after",
                idle,
                "--json",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let socket = ControlSocket::new(ReplicationSettings::socket_path(
            &RootConfig::new(&self.root),
            0,
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.is_running() {
            assert!(
                Instant::now() < deadline,
                "tenanted replicate never started Litestream"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Supervisor(child)
    }

    fn relative(&self, tenant: &str) -> PathBuf {
        let db = RootConfig::new(&self.root).database_path(tenant).unwrap();
        db.strip_prefix(&self.root).unwrap().to_path_buf()
    }

    fn url(&self, tenant: &str) -> String {
        self.settings.replica_url_of(&self.relative(tenant))
    }

    /// Waits until a restore of `tenant`'s replica holds what the live
    /// tenant holds.
    fn converges(&self, tenant: &str) {
        self.converges_at(tenant, &self.url(tenant));
    }

    /// The same, from the replica at `url` (`tenant`'s own URL in it).
    fn converges_at(&self, tenant: &str, url: &str) {
        let live = RootConfig::new(&self.root).database_path(tenant).unwrap();
        let scratch = self
            .dir
            .path()
            .join("scratch")
            .join(format!("{tenant}.sqlite3"));
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let _ = std::fs::remove_file(&scratch);
            let want = content(&live);
            let last = match restore(&self.bin, url, &scratch, None) {
                Ok(()) if content(&scratch) == want => return,
                Ok(()) => format!("restored {:?}\nlive {want:?}", content(&scratch)),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{tenant}'s replica never converged: {last}\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// No restore of `tenant`'s replica, at any point in time, finds data.
    fn nothing_restorable(&self, tenant: &str) {
        let place = self.replica.join(self.relative(tenant));
        assert!(
            !place.exists(),
            "{tenant}'s replica stays: {:?}",
            files_under(&place)
        );
        let scratch = self
            .dir
            .path()
            .join("scratch")
            .join(format!("{tenant}-gone.sqlite3"));
        let _ = std::fs::remove_file(&scratch);
        let restored = restore(&self.bin, &self.url(tenant), &scratch, None);
        assert!(
            restored.is_err(),
            "a restore of destroyed {tenant} succeeded"
        );
    }

    fn said(&self) -> String {
        let dir = self.root.join(".tenanted/replication.d");
        let litestream = std::fs::read_to_string(dir.join("litestream-0.log")).unwrap_or_default();
        let tail: Vec<&str> = litestream.lines().rev().take(30).collect();
        format!(
            "litestream (last lines, newest first):\n{}",
            tail.join("\n")
        )
    }
}

struct Supervisor(Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn write_users(m: &TenantManager, tenant: &str, from: usize, n: usize) {
    let conn = m.connection(tenant).unwrap();
    for i in from..from + n {
        conn.execute(
            "INSERT INTO users (email, name) VALUES (?1, ?2)",
            (format!("{tenant}-{i}@example.com"), tenant),
        )
        .unwrap();
    }
}

/// A signal to the supervisor's whole process group (`kill -TERM --
/// -PGID`, as a terminal's Ctrl-C or a service manager sends it) reaches
/// Litestream too; the rows written just before are in the replica once
/// both have stopped. (An outside probe saw 0 of 40 there against an S3
/// store, not reproduced here: against a directory Litestream's own
/// shutdown syncs them.)
#[test]
fn a_signal_to_the_supervisors_group_lets_litestream_sync_first() {
    use std::os::unix::process::CommandExt;
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 0, 5);
    let mut supervisor = s.replicate_with("600", |command| {
        command.process_group(0);
    });
    s.converges("acme");
    write_users(&m, "acme", 5, 40);
    let group = rustix::process::Pid::from_raw(supervisor.0.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while supervisor.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the supervisor did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(m);
    // Nothing runs now: the replica holds the last rows, or never will.
    s.converges("acme");
}

/// A SIGTERM while `tenanted replicate` starts Litestream (its pid file
/// written, its socket not yet answering) stops Litestream too: the
/// handler was installed only once the start returned, so the signal
/// ended the supervisor by default and left Litestream running, its root
/// gone (two were left after a CI run).
#[test]
fn a_signal_while_the_supervisor_starts_leaves_no_litestream_running() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let log = std::fs::File::create(s.dir.path().join("replicate.log")).unwrap();
    let mut supervisor = s
        .cli()
        .arg("replicate")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid_file = s.root.join(".tenanted/replication.d/litestream-0.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    let litestream = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            && !pid.trim().is_empty()
        {
            break pid.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "Litestream was never started");
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = Command::new("kill")
        .arg(supervisor.id().to_string())
        .status();
    let _ = supervisor.wait();
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{litestream}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{litestream}/stat"))
            .is_ok_and(|stat| stat.contains(") Z "));
        if zombie {
            break;
        }
        if Instant::now() > gone {
            let _ = Command::new("kill").args(["-9", &litestream]).status();
            panic!("Litestream {litestream} still runs after its supervisor stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_lifecycle_operation_keeps_the_replica_right() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    m.create_tenant("before").unwrap();
    write_users(&m, "before", 0, 5);
    let _replicate = s.replicate();
    s.converges("before");

    // Create, create with a seed, create_tenants.
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 0, 30);
    m.create_tenant_with("seeded", |conn| {
        conn.execute(
            "INSERT INTO users (email, name) VALUES ('seed@example.com', 'seed')",
            [],
        )?;
        Ok::<(), rusqlite::Error>(())
    })
    .unwrap();
    m.create_tenants(["b1", "b2", "b3"]).unwrap();
    write_users(&m, "b2", 0, 3);
    for t in ["acme", "seeded", "b1", "b2", "b3"] {
        s.converges(t);
    }

    // Destroy: the replica is gone when the destroy returns; re-create.
    m.destroy_tenant("b2").unwrap();
    s.nothing_restorable("b2");
    m.create_tenant("b2").unwrap();
    write_users(&m, "b2", 100, 2);
    s.converges("b2");

    // Restore (new tenant), then restore replacing one (the failing case
    // of the issue): 9 rows replace 30, then 5 more are written.
    let backup = s.dir.path().join("acme-backup.sqlite3");
    let small = s.dir.path().join("small.sqlite3");
    m.create_tenant("small").unwrap();
    write_users(&m, "small", 500, 9);
    m.backup_tenant("small", &small).unwrap();
    m.backup_tenant("acme", &backup).unwrap();
    m.restore_tenant("restored", &backup).unwrap();
    s.converges("restored");
    m.restore_tenant_opts("acme", &small, &RestoreOptions::new().replace(true))
        .unwrap();
    write_users(&m, "acme", 1000, 5);
    s.converges("acme");
    assert_eq!(
        content(&m.root().database_path("acme").unwrap())
            .iter()
            .filter(|r| r.starts_with("users "))
            .count(),
        14
    );
    write_users(&m, "acme", 2000, 1);
    s.converges("acme");

    // Rollback and migrate.
    m.rollback_tenant("seeded", 2).unwrap();
    s.converges("seeded");
    m.migrate_tenant("seeded").unwrap();
    s.converges("seeded");

    // From the CLI, in other processes.
    s.run_cli(&["create", "cli1"]);
    s.converges("cli1");
    s.run_cli(&["destroy", "b1", "--yes"]);
    s.nothing_restorable("b1");
    s.run_cli(&[
        "restore",
        "b3",
        "--from",
        backup.to_str().unwrap(),
        "--replace",
        "--yes",
    ]);
    s.converges("b3");
    s.run_cli(&["rollback", "b3", "--yes"]);
    s.converges("b3");
    write_users(&m, "before", 5, 1);
    s.converges("before");
    println!("{}", s.said());
}

/// The measured case: a tenant re-created under a destroyed one's
/// name. With one replica history per name, a point-in-time restore of a
/// moment before the new incarnation's first sync brought back the
/// destroyed tenant's rows; here the old history is gone, so no restore
/// at any moment finds them.
#[test]
fn a_recreated_tenant_starts_a_history_of_its_own() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    let _replicate = s.replicate();
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 0, 20);
    s.converges("acme");
    let old_rows_at = chrono_now();
    m.destroy_tenant("acme").unwrap();
    s.nothing_restorable("acme");
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 900, 2);
    s.converges("acme");
    // Every moment since before the first incarnation was written.
    for at in [old_rows_at.clone(), chrono_now()] {
        let scratch = s.dir.path().join("scratch/pit.sqlite3");
        let _ = std::fs::remove_file(&scratch);
        if restore(&s.bin, &s.url("acme"), &scratch, Some(&at)).is_ok() {
            let rows = content(&scratch);
            assert!(
                rows.iter().all(|r| !r.contains("acme-1@")),
                "a restore at {at} brought back the destroyed incarnation: {rows:?}"
            );
        }
    }
}

/// A supervisor restarted onto an emptied replica, or onto another
/// replica URL recorded while it was stopped, trusted its record of which
/// tenants' replicas were complete and never uploaded an idle tenant
/// again: a rebuild from that replica left it out with no word (an
/// outside probe).
#[test]
fn a_restart_onto_an_emptied_or_moved_replica_uploads_every_idle_tenant() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    for tenant in ["alpha", "beta"] {
        m.create_tenant(tenant).unwrap();
        write_users(&m, tenant, 0, 5);
    }
    drop(m);
    let quiet = s.root.join(".tenanted/replication.d/quiet");
    let replicate = s.replicate();
    s.converges("alpha");
    s.converges("beta");
    // Let go of as idle, and recorded as complete, by the time it stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&quiet)
        .is_ok_and(|q| q.contains("alpha ") && q.contains("beta "))
    {
        assert!(
            Instant::now() < deadline,
            "never quiet: {:?}",
            std::fs::read_to_string(&quiet)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(replicate);

    // The replica emptied (a wiped disk, a lost bucket) while stopped.
    std::fs::remove_dir_all(&s.replica).unwrap();
    let replicate = s.replicate();
    s.converges("alpha");
    s.converges("beta");
    drop(replicate);

    // Another replica recorded while stopped.
    let moved = s.dir.path().join("moved");
    let settings = ReplicationSettings::new(format!("file://{}", moved.display()));
    settings.record(&RootConfig::new(&s.root)).unwrap();
    let _replicate = s.replicate();
    for tenant in ["alpha", "beta"] {
        s.converges_at(tenant, &settings.replica_url_of(&s.relative(tenant)));
    }
}

/// An erase queued for one replica (the store refused it) was finished
/// against whatever replica the root used by then: after a move to
/// another URL the destroyed tenant's data stayed in the first, and a
/// rebuild from it brought the tenant back (the third probe). Nor may
/// the intent, while the old replica cannot be reached, hold the name
/// back from the new one.
#[test]
fn a_queued_erase_is_finished_in_the_replica_it_was_queued_for() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    m.create_tenant("gone").unwrap();
    write_users(&m, "gone", 0, 5);
    let replicate = s.replicate();
    s.converges("gone");
    drop(replicate);
    // The replica's bucket behind a link: the erase refuses it, and the
    // destroy leaves it queued.
    let relative = s.relative("gone");
    let bucket = s.replica.join(relative.iter().next().unwrap());
    let real = bucket.with_extension("real");
    std::fs::rename(&bucket, &real).unwrap();
    std::os::unix::fs::symlink(&real, &bucket).unwrap();
    m.destroy_tenant("gone").unwrap();
    let intents = s.root.join(".tenanted/replication.d/erase");
    assert_eq!(
        std::fs::read_dir(&intents).unwrap().count(),
        1,
        "the erase is queued"
    );

    // The root moves to another replica, and the name is used again:
    // replicated there while the old replica still refuses the erase.
    let moved = s.dir.path().join("moved");
    let settings = ReplicationSettings::new(format!("file://{}", moved.display()));
    settings.record(&RootConfig::new(&s.root)).unwrap();
    m.create_tenant("gone").unwrap();
    write_users(&m, "gone", 100, 3);
    let replicate = s.replicate();
    s.converges_at("gone", &settings.replica_url_of(&relative));
    drop(replicate);

    // The old replica answers again: the queued erase is finished there.
    std::fs::remove_file(&bucket).unwrap();
    std::fs::rename(&real, &bucket).unwrap();
    assert!(s.replica.join(&relative).exists());
    s.run_cli(&["erase-replicas"]);
    assert_eq!(std::fs::read_dir(&intents).unwrap().count(), 0);
    s.nothing_restorable("gone");
    assert!(moved.join(&relative).exists(), "the new replica is kept");
}

/// With a retention, a destroyed tenant's replica leaves the tenant's
/// place at once (nothing restorable there, a new incarnation starts
/// fresh) and is kept in the graveyard until `tenanted erase-replicas`.
#[test]
fn retention_keeps_a_destroyed_replica_aside_until_erased() {
    let Some(s) = Setup::new(Duration::from_secs(3600)) else {
        return;
    };
    let m = s.manager();
    let _replicate = s.replicate();
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 0, 4);
    s.converges("acme");
    s.run_cli(&["destroy", "acme", "--yes"]);
    s.nothing_restorable("acme");
    let yard = s.replica.join(tenanted::replication::GRAVEYARD);
    let kept = files_under(&yard);
    assert!(kept.iter().any(|f| f.ends_with(".ltx")), "{kept:?}");
    s.run_cli(&["erase-replicas"]);
    assert!(files_under(&yard).is_empty(), "{:?}", files_under(&yard));
}

/// Now as `litestream restore -timestamp` takes it (RFC 3339, UTC).
fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Service processes come and go, one is killed with SIGKILL in the
/// middle of its writes, and the supervisor itself is killed and started
/// again (its orphaned Litestream is stopped, not left replicating beside
/// the new one): every tenant's replica still converges to the live
/// tenant, with no Litestream restarted by hand.
#[test]
fn processes_come_and_go_and_are_killed() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    m.create_tenants(["w1", "w2"]).unwrap();
    let mut replicate = s.replicate();
    let writer = |tenant: &str| {
        let mut command = common::child::command("child_writes_for_a_while", &s.root);
        command.env("TENANTED_TEST_WRITE_TENANT", tenant);
        common::child::spawn(&mut command)
    };
    let (mut a, mut b) = (writer("w1"), writer("w2"));
    std::thread::sleep(Duration::from_millis(1500));
    let _ = a.kill();
    let _ = a.wait();
    s.converges("w1");
    let _ = b.wait();
    s.converges("w2");

    // The supervisor dies; its Litestream is orphaned. A new supervisor
    // stops the orphan and carries on.
    let orphan =
        std::fs::read_to_string(s.root.join(".tenanted/replication.d/litestream-0.pid")).unwrap();
    let _ = Command::new("kill")
        .args(["-9", &replicate.0.id().to_string()])
        .status();
    let _ = replicate.0.wait();
    write_users(&m, "w2", 5000, 3);
    let _again = s.replicate();
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", orphan.trim())).exists() {
        assert!(
            Instant::now() < gone,
            "the orphaned Litestream {orphan} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(replicate);
    s.converges("w2");
    let mut c = writer("w1");
    let _ = c.wait();
    s.converges("w1");
}

/// A supervisor killed while its tenants are written, and started again
/// 3 s later: the new one has the orphaned Litestream let go of every
/// tenant (each synced) before it stops it, and every replica restores
/// whole. Before, it killed the orphan as it was, and each tenant's
/// replica failed `integrity_check` from the new Litestream's first
/// transaction on, for good ("wrong # of entries in index"), while every
/// status said it replicated (an outside probe: 3 runs of 4, and 6 of 6
/// in a shell harness of the same steps, the example service written to
/// over HTTP or this test's writer; let go of first, 0 of 3). Under
/// `cargo test` Litestream's failure did not show before the fix either
/// (6 runs): its timing differs here, so this test guards the handover as
/// a whole rather than reproducing that failure every time.
#[test]
fn a_supervisor_killed_while_its_tenants_are_written_leaves_sound_replicas() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let tenants = ["k1", "k2", "k3", "k4"];
    s.run_cli(&["create", "k1", "k2", "k3", "k4"]);
    let replicate = s.replicate();
    // One process writes them all, in turn, as the example service does.
    let writer = common::child::spawn(&mut common::child::command(
        "child_writes_items_for_30_s",
        &s.root,
    ));
    std::thread::sleep(Duration::from_secs(12));
    let _ = Command::new("kill")
        .args(["-9", &replicate.0.id().to_string()])
        .status();
    drop(replicate);
    std::thread::sleep(Duration::from_secs(3));
    let _again = s.replicate();
    common::child::wait(writer);
    for tenant in tenants {
        s.converges(tenant);
    }
}

/// A supervisor killed while it ran 2 Litestream processes, then started
/// again with 1: both of its processes are stopped (before, the one of
/// the shard the new run no longer has kept its tenants open for good,
/// and their destroys busy: the outside probe's finding 2).
#[test]
fn a_killed_supervisors_litestream_of_every_shard_is_stopped() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let root = RootConfig::new(&s.root);
    s.settings.clone().shards(2).record(&root).unwrap();
    let m = s.manager();
    m.create_tenants(["o1", "o2", "o3", "o4"]).unwrap();
    let replicate = s.replicate();
    let pid = |shard: usize| {
        let path = s
            .root
            .join(format!(".tenanted/replication.d/litestream-{shard}.pid"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(pid) = std::fs::read_to_string(&path) {
                break pid.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no {}", path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let orphans = [pid(0), pid(1)];
    let _ = Command::new("kill")
        .args(["-9", &replicate.0.id().to_string()])
        .status();
    drop(replicate);
    s.settings.clone().shards(1).record(&root).unwrap();
    let _again = s.replicate();
    let gone = Instant::now() + Duration::from_secs(10);
    for orphan in &orphans {
        while Path::new(&format!("/proc/{orphan}")).exists() {
            assert!(
                Instant::now() < gone,
                "the orphaned Litestream {orphan} still runs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for tenant in ["o1", "o2", "o3", "o4"] {
        m.destroy_tenant(tenant).unwrap();
    }
}

/// `tenanted replicate` refused because another one replicates the root
/// changes nothing: the settings it was given are not recorded, and the
/// running one keeps its replica (before, they were recorded first and
/// the running supervisor switched to them: the probe's finding 4).
#[test]
fn a_refused_replicate_records_nothing() {
    let Some(s) = Setup::new(Duration::from_secs(60)) else {
        return;
    };
    let root = RootConfig::new(&s.root);
    let _running = s.replicate();
    let other = format!("file://{}", s.dir.path().join("other").display());
    let out = s
        .cli()
        .args(["replicate", "--replica-url", &other, "--retention", "5"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("already replicates") && said.contains("nothing was changed"),
        "{said}"
    );
    assert_eq!(
        ReplicationSettings::recorded(&root).unwrap(),
        Some(s.settings.clone())
    );
}

#[test]
#[ignore = "child process of processes_come_and_go_and_are_killed"]
fn child_writes_for_a_while() {
    let Some(root) = common::child::root() else {
        return;
    };
    let tenant = std::env::var("TENANTED_TEST_WRITE_TENANT").unwrap();
    let m = TenantManager::builder(RootConfig::new(&root), schema())
        .build()
        .unwrap();
    let pid = std::process::id();
    for i in 0..150 {
        write_users(&m, &tenant, pid as usize * 1000 + i, 1);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "child process of a_supervisor_killed_while_its_tenants_are_written_leaves_sound_replicas"]
fn child_writes_items_for_30_s() {
    let Some(root) = common::child::root() else {
        return;
    };
    let m = TenantManager::builder(RootConfig::new(&root), schema())
        .build()
        .unwrap();
    // As the example service is written to by one client: one request at
    // a time, the tenants in turn, each on whichever of its 4 threads
    // takes it (a checkout each).
    let next = std::sync::Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while started.elapsed() < Duration::from_secs(30) {
                    let mut n = next.lock().unwrap();
                    let tenant = ["k1", "k2", "k3", "k4"][*n % 4];
                    let conn = m.connection(tenant).unwrap();
                    conn.execute(
                        "INSERT INTO items (title) VALUES (?1)",
                        [format!("{tenant}-{n}")],
                    )
                    .unwrap();
                    drop(conn);
                    *n += 1;
                    if n.is_multiple_of(4) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
    });
}

/// A root replicated to a real S3 store (SeaweedFS, started for it).
#[cfg(feature = "s3")]
struct S3Root {
    bin: PathBuf,
    store: common::object_store::ObjectStore,
    root: PathBuf,
    settings: ReplicationSettings,
    dir: tempfile::TempDir,
}

#[cfg(feature = "s3")]
impl S3Root {
    /// `None` (the test skips) where Litestream or SeaweedFS is missing.
    fn new() -> Option<S3Root> {
        let (bin, weed) = (binary()?, common::object_store::binary()?);
        let dir = tempfile::tempdir().unwrap();
        let store = common::object_store::start(&weed, &dir.path().join("weed"), "replicas");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let url = format!(
            "{}?endpoint={}&forcePathStyle=true",
            store.url("tenants"),
            store.endpoint
        );
        let settings = ReplicationSettings::new(&url);
        settings.record(&RootConfig::new(&root)).unwrap();
        Some(S3Root {
            bin,
            store,
            root,
            settings,
            dir,
        })
    }

    /// `tenanted replicate ARGS`, logging to `replicate.log`.
    fn replicate(&self, args: &[&str]) -> Supervisor {
        let log = std::fs::File::create(self.dir.path().join("replicate.log")).unwrap();
        let child = (self.cli(&[&["replicate"], args].concat()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Supervisor(child)
    }

    /// `tenanted ARGS` on the root, with the store's keys.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenanted"));
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--migrations")
            .arg(schema_dir())
            .args(args)
            .env("TENANTED_LITESTREAM", &self.bin)
            .stdin(Stdio::null());
        self.store.credentials(&mut command);
        command
    }
}

/// The same erasure against a real S3 store (SeaweedFS): `tenanted
/// replicate` replicates a tenant there, and once `tenanted destroy`
/// returns nothing of it is left to restore.
#[cfg(feature = "s3")]
#[test]
fn a_destroyed_tenants_replica_is_erased_from_s3() {
    let Some(s3) = S3Root::new() else {
        return;
    };
    let (bin, dir, store, root, settings) = (&s3.bin, &s3.dir, &s3.store, &s3.root, &s3.settings);
    let cli = |args: &[&str]| s3.cli(args);
    let _supervisor = s3.replicate(&["--scan-interval", "100", "--idle-after", "1"]);
    let m = TenantManager::builder(RootConfig::new(root), schema())
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    write_users(&m, "acme", 0, 7);
    let db = m.root().database_path("acme").unwrap();
    let tenant_url = settings.replica_url_of(db.strip_prefix(root).unwrap());
    let restore_acme = |into: &Path| {
        let mut command = Command::new(bin);
        command.args(["restore", "-o"]).arg(into).arg(&tenant_url);
        store.credentials(&mut command);
        command.output().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // A path of its own for each try: `litestream restore` refuses one that
    // exists (a deadline's `elapsed()` is zero until it passes).
    for attempt in 0.. {
        let into = dir.path().join(format!("try-{attempt}.sqlite3"));
        if restore_acme(&into).status.success() && content(&into) == content(&db) {
            break;
        }
        assert!(Instant::now() < deadline, "acme never reached S3");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = cli(&["destroy", "acme", "--yes"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = restore_acme(&dir.path().join("after.sqlite3"));
    assert!(
        !after.status.success(),
        "a restore of destroyed acme from S3 succeeded"
    );
}

/// A tenant destroyed while the store stalls (its Litestream cannot
/// make its last sync, and lets go of it uncleanly) and made again under
/// its name while a service keeps writing to it: once the store is back,
/// the new tenant's replica restores at every transaction it holds, and
/// its latest state is the live tenant's. Before, that Litestream process
/// kept state of the old database, and the new replica failed
/// `integrity_check` from some transaction on (3 runs of 3; also when the
/// store took in the old database's last uploads after the erase, the new
/// replica continued the old one's transactions and could not be restored).
#[cfg(feature = "s3")]
#[test]
fn a_tenant_made_again_after_a_destroy_during_a_stalled_store_has_a_sound_replica() {
    let Some(s3) = S3Root::new() else {
        return;
    };
    let (bin, dir, store, root, settings) = (&s3.bin, &s3.dir, &s3.store, &s3.root, &s3.settings);
    let cli = |args: &[&str]| s3.cli(args);
    let run = |args: &[&str]| {
        let out = cli(args).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "tenanted {args:?}: {said}");
    };
    run(&["create", "acme"]);
    let _supervisor = s3.replicate(&["--scan-interval", "200"]);
    // A service writes to acme every 20 ms, through every step below.
    let m = TenantManager::builder(RootConfig::new(root), schema())
        .watch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (m, stop) = (m.clone(), std::sync::Arc::clone(&stop));
        move || {
            let mut written = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let wrote = m.connection("acme").map(|c| {
                    c.execute(
                        "INSERT INTO users (email, name) VALUES (?1, 'service')",
                        [format!("u{written}@example.com")],
                    )
                });
                written += usize::from(matches!(wrote, Ok(Ok(_))));
                std::thread::sleep(Duration::from_millis(20));
            }
            written
        }
    });
    let db = m.root().database_path("acme").unwrap();
    let tenant_url = settings.replica_url_of(db.strip_prefix(root).unwrap());
    let litestream = |args: &[&str]| {
        let mut command = Command::new(bin);
        command.args(args).arg(&tenant_url).stdin(Stdio::null());
        store.credentials(&mut command);
        command.output().unwrap()
    };
    let synced = |name: &str| {
        let into = dir.path().join(name);
        litestream(&["restore", "-o", into.to_str().unwrap()])
            .status
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        if synced(&format!("first-{attempt}.sqlite3")) {
            break;
        }
        assert!(Instant::now() < deadline, "acme never reached the store");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    store.signal("STOP");
    run(&["destroy", "acme", "--yes"]);
    run(&["create", "acme"]);
    std::thread::sleep(Duration::from_secs(5));
    store.signal("CONT");
    std::thread::sleep(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.join().unwrap() > 100, "the service hardly wrote");
    // The replica catches up with the live tenant, whole.
    let live = content(&db);
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let into = dir.path().join(format!("latest-{attempt}.sqlite3"));
        let restored = litestream(&["restore", "-o", into.to_str().unwrap()]);
        if restored.status.success() && sound(&into) && content(&into) == live {
            break;
        }
        let said = String::from_utf8_lossy(&restored.stderr).into_owned();
        assert!(
            Instant::now() < deadline,
            "the new acme's replica never held it whole: {said}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // And every transaction in it restores to a sound database.
    let listed = litestream(&["ltx", "-level", "0"]);
    let txids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    assert!(
        !txids.is_empty(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let bad: Vec<String> = txids
        .iter()
        .filter(|txid| {
            let into = dir.path().join(format!("tx-{txid}.sqlite3"));
            let out = litestream(&["restore", "-txid", txid, "-o", into.to_str().unwrap()]);
            !out.status.success() || !sound(&into)
        })
        .cloned()
        .collect();
    assert!(
        bad.is_empty(),
        "transactions {bad:?} of {} do not restore whole",
        txids.len()
    );
    // Because the Litestream that could not let go was started afresh.
    let said = std::fs::read_to_string(dir.path().join("replicate.log")).unwrap();
    assert!(said.contains("starting Litestream afresh"), "{said}");
}

/// A destroy whose erase finds the S3 store stalled (it accepts and
/// answers nothing) returns within its `destroy_timeout` plus a margin,
/// the erase left queued, instead of waiting out each request's own 60 s
/// (the probe saw 61 s a tenant); once the store answers again,
/// `erase_destroyed_replicas` erases it.
#[cfg(feature = "s3")]
#[test]
fn a_destroy_with_a_stalled_store_returns_within_its_timeout_and_queues_the_erase() {
    let Some(s3) = S3Root::new() else {
        return;
    };
    let run = |args: &[&str]| s3.cli(args).output().unwrap();
    assert!(run(&["create", "acme"]).status.success());
    s3.store.signal("STOP");
    let started = Instant::now();
    let destroyed = run(&["destroy", "acme", "--yes"]);
    let took = started.elapsed();
    s3.store.signal("CONT");
    let said = String::from_utf8_lossy(&destroyed.stderr);
    assert!(destroyed.status.success(), "{said}");
    // Its destroy_timeout is 5 s (the CLI's default).
    assert!(
        took < Duration::from_secs(30),
        "the destroy took {took:?}: {said}"
    );
    assert!(said.contains("stays queued"), "{said}");
    let erased = run(&["erase-replicas"]);
    let said = String::from_utf8_lossy(&erased.stdout);
    assert!(
        erased.status.success() && said.contains("erased 1"),
        "{said}"
    );
}

/// Whether the database at `path` passes `integrity_check`.
#[cfg(feature = "s3")]
fn sound(path: &Path) -> bool {
    let conn = rusqlite::Connection::open(path).unwrap();
    let said: rusqlite::Result<String> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    said.is_ok_and(|s| s == "ok")
}

/// `tenanted replicate` on a store that refuses (a bucket that does not
/// exist, keys it does not take) stops at once saying so, in the store's
/// words and with what to check; before, it ran on quietly ("registered
/// 3") while every sync failed in Litestream's own log.
#[cfg(feature = "s3")]
#[test]
fn replicate_refuses_to_start_on_a_store_that_refuses() {
    let Some(s3) = S3Root::new() else {
        return;
    };
    let url = format!(
        "s3://no-such-bucket/tenants?endpoint={}&forcePathStyle=true",
        s3.store.endpoint
    );
    ReplicationSettings::new(&url)
        .record(&RootConfig::new(&s3.root))
        .unwrap();
    let said = refused(s3.cli(&["replicate"]));
    assert!(
        said.contains("NoSuchBucket") && said.contains("no-such-bucket does not exist at"),
        "{said}"
    );
    s3.settings.record(&RootConfig::new(&s3.root)).unwrap();
    let mut wrong_keys = s3.cli(&["replicate"]);
    wrong_keys.env("AWS_SECRET_ACCESS_KEY", "not-the-key");
    let said = refused(wrong_keys);
    assert!(said.contains("refused the credentials"), "{said}");
    // Given on the command line, a refused store is not recorded: the
    // root keeps the settings it had (before, every later destroy queued
    // its erase against the bucket that does not exist).
    let root = RootConfig::new(&s3.root);
    let said = refused(s3.cli(&["replicate", "--replica-url", &url]));
    assert!(said.contains("NoSuchBucket"), "{said}");
    assert_eq!(
        ReplicationSettings::recorded(&root).unwrap(),
        Some(s3.settings.clone())
    );
    // Nor is a retention, which S3 cannot keep (before, every destroyed
    // tenant's replica stayed, and came back on a rebuild).
    let said = refused(s3.cli(&["replicate", "--retention", "60"]));
    assert!(
        said.contains("local-directory replicas only") && said.contains("--retention 0"),
        "{said}"
    );
    assert_eq!(
        ReplicationSettings::recorded(&root).unwrap(),
        Some(s3.settings.clone())
    );
    let refused_in_code = s3
        .settings
        .clone()
        .retention(Duration::from_secs(60))
        .record(&root);
    assert!(
        matches!(
            refused_in_code,
            Err(tenanted::Error::ReplicationRefused { .. })
        ),
        "{refused_in_code:?}"
    );
}

/// What `command` said on stderr, once it exited unsuccessfully within
/// 60 s (killed and failed if it still runs: it did not refuse).
#[cfg(feature = "s3")]
fn refused(mut command: Command) -> String {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 60 s: it did not refuse the store");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{said}");
    said
}

/// A destroy that happened returns Ok even when the replica cannot be
/// erased afterwards (the caller must not retry it, or think the tenant is
/// still there); the erase stays queued and a later pass finishes it.
/// The root may be reached through a link. A destroy through the link
/// tells the supervisor's Litestream (started on the real path) to let go
/// of the tenant by the path it registered, and returns at once; it
/// named the link's path, which Litestream did not know, and waited out
/// its timeout for a Litestream that still held the tenant (an outside
/// probe: `TenantBusy` after 5 s, every time).
#[test]
fn a_destroy_through_a_link_to_the_root_lets_litestream_go() {
    let Some(s) = Setup::new(Duration::ZERO) else {
        return;
    };
    let m = s.manager();
    m.create_tenant("acme").unwrap();
    // Registered, and held for a minute after its last write.
    let _replicate = s.replicate_idle_after("60");
    write_users(&m, "acme", 0, 3);
    s.converges("acme");
    drop(m);
    let link = s.dir.path().join("link");
    std::os::unix::fs::symlink(&s.root, &link).unwrap();
    let through_link = TenantManager::builder(RootConfig::new(&link), schema())
        .destroy_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    through_link.destroy_tenant("acme").unwrap();
    s.nothing_restorable("acme");
}

/// Needs no Litestream: none running is "nothing to let go of".
#[test]
fn a_destroy_whose_replica_cannot_be_erased_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (root, replica) = (dir.path().join("root"), dir.path().join("replica"));
    std::fs::create_dir_all(&root).unwrap();
    let url = format!("file://{}", replica.display());
    ReplicationSettings::new(url)
        .record(&RootConfig::new(&root))
        .unwrap();
    let manager = TenantManager::builder(RootConfig::new(&root), schema())
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    // The replica store is a file: nothing can be erased in it.
    std::fs::write(&replica, b"not a directory").unwrap();
    manager.destroy_tenant("acme").unwrap();
    assert!(!manager.tenant_exists("acme").unwrap());
    let e = manager.erase_destroyed_replicas().unwrap_err();
    assert!(e.to_string().contains("tenant acme"), "{e}");
    // Once the store is right, the queued erase is finished.
    std::fs::remove_file(&replica).unwrap();
    std::fs::create_dir_all(&replica).unwrap();
    assert_eq!(manager.erase_destroyed_replicas().unwrap(), 1);
    assert_eq!(manager.erase_destroyed_replicas().unwrap(), 0);
}

/// A Litestream that never answers its control socket (a last sync to a
/// stalled store) does not hold a destroy past its destroy_timeout: the
/// let-go shares the destroy's deadline (it had 35 s of its own).
#[test]
fn a_stalled_litestream_does_not_outlast_the_destroy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let config = RootConfig::new(&root);
    let url = format!("file://{}", dir.path().join("replica").display());
    ReplicationSettings::new(url).record(&config).unwrap();
    let socket = ReplicationSettings::socket_path(&config, 0);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Accepts, reads nothing, answers nothing, until the test ends.
    let stalled = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let manager = TenantManager::builder(config, schema())
        .destroy_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    let started = Instant::now();
    manager.destroy_tenant("acme").unwrap();
    let took = started.elapsed();
    assert!(!manager.tenant_exists("acme").unwrap());
    // Generous against load; the fixed wait it replaces was 35 s.
    assert!(took < Duration::from_secs(20), "the destroy took {took:?}");
    drop(stalled.join().unwrap());
}

/// The child: holds a connection of its own to `acme`, after one read,
/// until the stop file; prints `HOLDING`.
#[test]
#[ignore = "child process of a_destroy_refused_for_a_held_tenant_leaves_no_unclean_mark"]
fn child_holds_acme() {
    let Some(root) = common::child::root() else {
        return;
    };
    let path = RootConfig::new(&root).database_path("acme").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    println!("HOLDING {n}");
    while !common::child::stop_file(&root).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A destroy whose Litestream did not answer (stalled), and which then
/// found the tenant held by another process and put it back, leaves the
/// tenant as it was: no mark that its Litestream let go uncleanly (which
/// starts that Litestream afresh before the name is registered again, for
/// a new incarnation), and no promise of an erase. An outside probe saw
/// both, for a live tenant.
#[test]
fn a_destroy_refused_for_a_held_tenant_leaves_no_unclean_mark() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let config = RootConfig::new(&root);
    let url = format!("file://{}", dir.path().join("replica").display());
    ReplicationSettings::new(url).record(&config).unwrap();
    let socket = ReplicationSettings::socket_path(&config, 0);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Accepts, reads nothing, answers nothing, until the test ends.
    let stalled = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let manager = TenantManager::builder(config, schema())
        .destroy_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    let out = dir.path().join("holder.out");
    let holder = common::child::spawn_logged("child_holds_acme", &root, &out);
    common::child::wait_for_word(&out, "HOLDING");
    let refused = manager.destroy_tenant("acme");
    assert!(
        matches!(refused, Err(tenanted::Error::TenantBusy { .. })),
        "{refused:?}"
    );
    std::fs::write(common::child::stop_file(&root), b"").unwrap();
    common::child::wait_logged(holder, &out);
    assert!(manager.tenant_exists("acme").unwrap());
    let marks = root.join(".tenanted/replication.d/unclean");
    assert!(
        !marks.join("acme").exists(),
        "a live tenant marked unclean: {:?}",
        files_under(&marks)
    );
    drop(stalled.join().unwrap());
}

/// The supervisor outlives a failing scan (its Litestream exits and cannot
/// be started again for a while): it logs, backs off and carries on, and
/// starts Litestream again once it can. Dropped, it stops its Litestream.
#[test]
fn the_supervisor_survives_a_failing_scan_and_stops_litestream_when_dropped() {
    let Some(setup) = Setup::new(Duration::ZERO) else {
        return;
    };
    let config = RootConfig::new(&setup.root);
    // A copy of Litestream the test can take away and give back.
    let bin = setup.dir.path().join("litestream");
    std::fs::copy(&setup.bin, &bin).unwrap();
    let options = tenanted::replication::ReplicateOptions::new()
        .litestream(&bin)
        .scan_interval(Duration::from_millis(100));
    let replicator = tenanted::replication::Replicator::start(&config, options).unwrap();
    let socket = ControlSocket::new(ReplicationSettings::socket_path(&config, 0));
    let pid_file = ReplicationSettings::socket_path(&config, 0).with_extension("pid");
    let pid = || std::fs::read_to_string(&pid_file).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let running = s.spawn(|| replicator.run(&stop, |_| {}));
        // Litestream dies and cannot be started again: scans fail.
        std::fs::rename(&bin, bin.with_extension("away")).unwrap();
        let first = pid();
        Command::new("kill")
            .args(["-9", first.trim()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            !running.is_finished(),
            "the supervisor ended on a failing scan"
        );
        std::fs::rename(bin.with_extension("away"), &bin).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(socket.is_running() && pid() != first) {
            assert!(
                Instant::now() < deadline,
                "Litestream was not started again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        running.join().unwrap().unwrap();
    });
    // Dropped without run: its Litestream goes with it.
    let options = tenanted::replication::ReplicateOptions::new().litestream(&bin);
    let replicator = tenanted::replication::Replicator::start(&config, options).unwrap();
    let live = pid();
    assert!(Path::new(&format!("/proc/{}", live.trim())).exists());
    drop(replicator);
    assert!(
        !socket.is_running(),
        "a dropped supervisor left Litestream running"
    );
    assert!(!Path::new(&format!("/proc/{}", live.trim())).exists());
}

/// The variable the environment test follows. Not PATH, as it was: the
/// `litestream` a PATH finds is often a pyenv shim, a script that puts
/// PATH back before it execs the real binary in the same process, so the
/// process whose environment was read had PATH whatever the supervisor
/// gave it (failing wherever the shim ran, passing with the binary
/// itself, as `.ci/run` names it). No wrapper sets this one.
const PROBE: &str = "TENANTED_TEST_ENV_PROBE";

/// Litestream gets the supervisor's environment (a private CA bundle for
/// an S3 endpoint included) unless told to go without a variable. The
/// supervisor runs in a child process whose environment has [`PROBE`]
/// (this process's environment is left alone).
#[test]
fn litestream_keeps_the_environment_unless_told_otherwise() {
    let Some(setup) = Setup::new(Duration::ZERO) else {
        return;
    };
    let mut command = common::child::command("child_reports_litestreams_environment", &setup.root);
    command
        .env(PROBE, "kept")
        .env("TENANTED_LITESTREAM", &setup.bin);
    let said = common::child::run(&mut command);
    assert!(said.contains("by default: kept"), "{said}");
    assert!(said.contains("without it: removed"), "{said}");
}

/// The child of `litestream_keeps_the_environment_unless_told_otherwise`:
/// starts the supervisor twice, with and without [`PROBE`], and says
/// whether the Litestream it started (the pid it recorded) has it.
#[test]
#[ignore = "child process of litestream_keeps_the_environment_unless_told_otherwise"]
fn child_reports_litestreams_environment() {
    let Some(root) = common::child::root() else {
        return;
    };
    let bin = binary().expect("the parent found Litestream");
    let config = RootConfig::new(&root);
    let pid_file = ReplicationSettings::socket_path(&config, 0).with_extension("pid");
    let has = |options, name: &str| {
        let replicator = tenanted::replication::Replicator::start(&config, options).unwrap();
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
        drop(replicator);
        let set = format!("{name}=");
        environ
            .split(|b| *b == 0)
            .any(|v| v.starts_with(set.as_bytes()))
    };
    let options = || tenanted::replication::ReplicateOptions::new().litestream(&bin);
    assert!(std::env::var_os(PROBE).is_some(), "the parent sets {PROBE}");
    let kept = has(options(), PROBE);
    println!("by default: {}", if kept { "kept" } else { "lost" });
    let removed = !has(options().env_remove(PROBE), PROBE);
    println!("without it: {}", if removed { "removed" } else { "kept" });
    // Where this machine names a CA bundle, Litestream gets it too.
    if std::env::var_os("AWS_CA_BUNDLE").is_some() {
        assert!(has(options(), "AWS_CA_BUNDLE"), "AWS_CA_BUNDLE was dropped");
    }
}
