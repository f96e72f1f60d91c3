//! Replication follows no link planted in the root or in the replica
//! store (review R7). A hostile root may hold a tenant whose database is
//! a symbolic link to a database elsewhere, or links in place of the
//! files `tenanted replicate` keeps in `.tenanted/replication.d/`; a
//! replica store may hold a link in place of a bucket. None of them is
//! registered with Litestream, replicated, written through or erased
//! through: what they point at stays exactly as it was, and is never in
//! the replica.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::litestream::binary;
use common::{files_under, manager};
use tenanted::replication::{ControlSocket, ReplicateOptions, ReplicationSettings, Replicator};
use tenanted::{Error, RootConfig};

/// Every file under `dir` with a digest of its contents: any change
/// outside shows (by name, in a failure's message).
fn snapshot(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<_> = files_under(dir)
        .into_iter()
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).unwrap_or_default();
            let mut hash = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&bytes, &mut hash);
            (name, std::hash::Hasher::finish(&hash))
        })
        .collect();
    files.sort();
    files
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A real database with a secret row, outside any root.
fn outside_database(outside: &Path) -> PathBuf {
    let db = outside.join("secret.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE secret (x); INSERT INTO secret VALUES ('s3cr3t');",
    )
    .unwrap();
    drop(conn);
    db
}

fn relative(root: &Path, tenant: &str) -> PathBuf {
    let db = RootConfig::new(root).database_path(tenant).unwrap();
    db.strip_prefix(root).unwrap().to_path_buf()
}

/// `tenanted replicate` (in this process, real Litestream) on a root
/// where `evil`'s database is a link to a database outside, and
/// Litestream's configuration, log and pid files and the quiet
/// signatures are links to files outside: `acme` is replicated, `evil`
/// never is, and nothing outside changes.
#[test]
fn the_supervisor_registers_and_writes_through_no_link() {
    let Some(bin) = binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, replica, outside) = (
        dir.path().join("root"),
        dir.path().join("replica"),
        dir.path().join("outside"),
    );
    fs::create_dir_all(&outside).unwrap();
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    m.create_tenant("evil").unwrap();
    let config = RootConfig::new(&root);
    let evil_db = config.database_path("evil").unwrap();
    fs::remove_file(&evil_db).unwrap();
    symlink(outside_database(&outside), &evil_db).unwrap();
    let url = format!("file://{}", replica.display());
    ReplicationSettings::new(url).record(&config).unwrap();
    let state = root.join(".tenanted/replication.d");
    fs::create_dir_all(&state).unwrap();
    for name in [
        "litestream-0.yml",
        "litestream-0.log",
        "litestream-0.pid",
        "replicate.lock",
        "quiet",
    ] {
        let target = outside.join(format!("{name}.target"));
        fs::write(&target, b"not yours").unwrap();
        symlink(&target, state.join(name)).unwrap();
    }
    let before = snapshot(&outside);

    let options = ReplicateOptions::new()
        .litestream(&bin)
        .scan_interval(Duration::from_millis(100))
        .idle_after(Duration::from_secs(1))
        .env_remove("AWS_CA_BUNDLE");
    let replicator = Replicator::start(&config, options).unwrap();
    let (stop, scans) = (AtomicBool::new(false), AtomicUsize::new(0));
    std::thread::scope(|s| {
        let running = s.spawn(|| {
            replicator.run(&stop, |_| {
                scans.fetch_add(1, Ordering::SeqCst);
            })
        });
        // Stops the supervisor however this scope ends (a failed
        // assertion too), so that the scope can end.
        let _stop = StopOnDrop(&stop);
        m.connection("acme")
            .unwrap()
            .execute_batch("CREATE TABLE written (x); INSERT INTO written VALUES (1);")
            .unwrap();
        // acme reaches the replica; then a few more scans, each of which
        // would have registered evil.
        let acme = replica.join(relative(&root, "acme"));
        let socket = ControlSocket::new(ReplicationSettings::socket_path(&config, 0));
        let evil_path = std::path::absolute(&evil_db).unwrap();
        let mut registered_evil = false;
        let mut look = || {
            let listed = socket.list().unwrap_or_default();
            registered_evil |= listed.iter().any(|r| r.path == evil_path);
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while files_under(&acme).is_empty() {
            look();
            let log = fs::read_to_string(state.join("litestream-0.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "acme was never replicated:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = scans.load(Ordering::SeqCst);
        while scans.load(Ordering::SeqCst) < seen + 20 {
            look();
            assert!(Instant::now() < deadline, "the supervisor stopped scanning");
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        running.join().unwrap().unwrap();
        assert!(!registered_evil, "the linked database was registered");
    });
    let evil = replica.join(relative(&root, "evil"));
    assert!(
        files_under(&evil).is_empty(),
        "the linked database was replicated: {:?}",
        files_under(&evil)
    );
    assert_eq!(snapshot(&outside), before, "a file outside was written");
    for name in ["litestream-0.yml", "quiet"] {
        let meta = fs::symlink_metadata(state.join(name)).unwrap();
        assert!(meta.is_file(), "{name} was not made in place of its link");
    }
}

/// A replica store whose bucket directory is a link to a directory
/// outside: the destroy of a tenant in that bucket erases nothing through
/// the link (it succeeds, its erase is queued and fails naming the link),
/// and what the link points at stays.
#[test]
fn an_erase_never_goes_through_a_link_in_the_replica_store() {
    let dir = tempfile::tempdir().unwrap();
    let (root, replica, outside) = (
        dir.path().join("root"),
        dir.path().join("replica"),
        dir.path().join("outside"),
    );
    fs::create_dir_all(&root).unwrap();
    let url = format!("file://{}", replica.display());
    ReplicationSettings::new(url)
        .record(&RootConfig::new(&root))
        .unwrap();
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    // acme's bucket in the store is a link to a directory outside holding
    // what looks like acme's replica.
    let place = relative(&root, "acme");
    let bucket = place.components().next().unwrap().as_os_str().to_owned();
    let below_bucket = place.strip_prefix(&bucket).unwrap();
    let kept = outside.join(below_bucket).join("ltx/0");
    fs::create_dir_all(&kept).unwrap();
    fs::write(kept.join("0000000001-0000000001.ltx"), b"not yours").unwrap();
    fs::create_dir_all(&replica).unwrap();
    symlink(&outside, replica.join(&bucket)).unwrap();
    let before = snapshot(&outside);

    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
    assert_eq!(snapshot(&outside), before, "erased through the link");
    let e = m.erase_destroyed_replicas().unwrap_err();
    let link = replica.join(&bucket).display().to_string();
    assert!(
        matches!(e, Error::Replica { .. }) && e.to_string().contains(&link),
        "{e}"
    );
    assert_eq!(snapshot(&outside), before, "erased through the link");
}
