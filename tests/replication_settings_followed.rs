//! A change of the root's recorded replication settings reaches the
//! processes already running on it (review R8): a manager built before
//! replication was configured (or before it changed) erases a destroyed
//! tenant's replica in the store recorded now, with the retention
//! recorded now; a running `tenanted replicate` moves to a new replica
//! URL without being restarted.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::litestream::binary;
use common::{files_under, manager};
use tenanted::RootConfig;
use tenanted::replication::{GRAVEYARD, ReplicateOptions, ReplicationSettings, Replicator};

fn relative(root: &Path, tenant: &str) -> PathBuf {
    let db = RootConfig::new(root).database_path(tenant).unwrap();
    db.strip_prefix(root).unwrap().to_path_buf()
}

/// What Litestream would have written of `tenant` in `replica`.
fn fake_replica(replica: &Path, root: &Path, tenant: &str) -> PathBuf {
    let place = replica.join(relative(root, tenant));
    fs::create_dir_all(place.join("ltx/0")).unwrap();
    fs::write(place.join("ltx/0/0000000001-0000000001.ltx"), b"rows").unwrap();
    place
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_manager_follows_the_settings_recorded_after_it_was_built() {
    let dir = tempfile::tempdir().unwrap();
    let (root, replica) = (dir.path().join("root"), dir.path().join("replica"));
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    m.create_tenant("beta").unwrap();
    assert!(m.replication().unwrap().is_none());

    // The operator configures replication while the service runs.
    let url = format!("file://{}", replica.display());
    let config = RootConfig::new(&root);
    ReplicationSettings::new(&url).record(&config).unwrap();
    let seen = m.replication().unwrap().expect("the new settings are seen");
    assert_eq!(seen.replica_url(), url);
    let acme = fake_replica(&replica, &root, "acme");
    m.destroy_tenant("acme").unwrap();
    assert!(
        !acme.exists(),
        "the destroy did not erase the replica: {:?}",
        files_under(&acme)
    );

    // Then a retention: the next destroy moves the replica aside.
    ReplicationSettings::new(&url)
        .retention(Duration::from_secs(3600))
        .record(&config)
        .unwrap();
    let beta = fake_replica(&replica, &root, "beta");
    m.destroy_tenant("beta").unwrap();
    assert!(!beta.exists());
    let buried = files_under(&replica.join(GRAVEYARD));
    let buried: Vec<_> = buried.iter().filter(|f| f.ends_with(".ltx")).collect();
    assert_eq!(buried.len(), 1, "{buried:?}");
    assert_eq!(m.erase_destroyed_replicas().unwrap(), 1);
}

/// `tenanted replicate` (in this process, real Litestream) moves to the
/// replica URL recorded while it runs: a tenant written after the change
/// reaches the new replica.
#[test]
fn a_running_supervisor_follows_a_new_replica_url() {
    let Some(bin) = binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    fs::create_dir_all(&root).unwrap();
    let config = RootConfig::new(&root);
    ReplicationSettings::new(format!("file://{}", first.display()))
        .record(&config)
        .unwrap();
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let write = |n: i64| {
        let conn = m.connection("acme").unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS w (x)")
            .unwrap();
        conn.execute("INSERT INTO w VALUES (?1)", [n]).unwrap();
    };
    let options = ReplicateOptions::new()
        .litestream(&bin)
        .scan_interval(Duration::from_millis(100))
        .idle_after(Duration::from_secs(1))
        .env_remove("AWS_CA_BUNDLE");
    let replicator = Replicator::start(&config, options).unwrap();
    let stop = AtomicBool::new(false);
    let log = root.join(".tenanted/replication.d/litestream-0.log");
    let wait_for = |replica: &Path| {
        let place = replica.join(relative(&root, "acme"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while files_under(&place).is_empty() {
            let said = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "acme never reached {}:\n{said}",
                replica.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::thread::scope(|s| {
        let running = s.spawn(|| replicator.run(&stop, |_| {}));
        let _stop = StopOnDrop(&stop);
        write(1);
        wait_for(&first);
        ReplicationSettings::new(format!("file://{}", second.display()))
            .record(&config)
            .unwrap();
        write(2);
        wait_for(&second);
        stop.store(true, Ordering::SeqCst);
        running.join().unwrap().unwrap();
    });
}
