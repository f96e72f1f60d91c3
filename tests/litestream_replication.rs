//! Continuous replication with the real Litestream binary, beside a
//! library process that creates, writes and destroys tenants: every row
//! committed before Litestream's last sync comes back with
//! `litestream restore`, intact, into a root tenanted opens as current;
//! and destroy works while Litestream holds every database open.
//!
//! Needs `litestream` (see `common/litestream.rs`); the S3 test needs
//! SeaweedFS too (`common/object_store.rs`). `.ci/run` installs both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{litestream, object_store, schema, sorted_tenants};
use tenanted::{RootConfig, TenantManager};

fn manager(root: &Path) -> TenantManager {
    TenantManager::builder(RootConfig::new(root), schema())
        .watch_interval(Duration::from_millis(100))
        .destroy_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Litestream replicating `m`'s root into `replica` (its config and log
/// in `dir`), once it replicates the two tenants there: the process and
/// its log.
fn replicate(bin: &Path, dir: &Path, m: &TenantManager, replica: &Path) -> (Child, PathBuf) {
    let config = dir.join("litestream.yml");
    let url = format!("file://{}", replica.display());
    std::fs::write(&config, m.root().litestream_config(&url).unwrap()).unwrap();
    let log = dir.join("litestream.log");
    let litestream = litestream::replicate(bin, &config, &log);
    litestream::wait_for_log(&log, "replicating to", 2);
    (litestream, log)
}

fn insert_users(m: &TenantManager, tenant: &str, n: usize) {
    let conn = m.connection(tenant).unwrap();
    for i in 0..n {
        conn.execute(
            "INSERT INTO users (email, name) VALUES (?1, ?2)",
            (format!("{tenant}-{i}@example.com"), tenant),
        )
        .unwrap();
    }
}

/// Restores `tenant` from the replica into `into` with `litestream restore`.
fn restore(bin: &Path, replica: &Path, relative: &Path, into: &Path) {
    if let Err(e) = try_restore(bin, replica, relative, into) {
        panic!("{e}");
    }
}

fn try_restore(bin: &Path, replica: &Path, relative: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into.parent().unwrap()).unwrap();
    let url = format!("file://{}", replica.join(relative).display());
    let out = litestream::command(bin)
        .arg("restore")
        .arg("-o")
        .arg(into)
        .arg(&url)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "litestream restore {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

fn users_in(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

/// The time until a restore from the replica has `rows` users: the
/// replication lag as a reader of the replica sees it.
fn lag_until(bin: &Path, replica: &Path, relative: &Path, scratch: &Path, rows: i64) -> Duration {
    let started = Instant::now();
    loop {
        let _ = std::fs::remove_file(scratch);
        // Before the first sync there is nothing to restore yet.
        if try_restore(bin, replica, relative, scratch).is_ok() && users_in(scratch) == rows {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica never caught up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn litestream_replicates_every_tenant_and_restore_brings_them_back() {
    let Some(bin) = litestream::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, replica, restored) = (
        dir.path().join("root"),
        dir.path().join("replica"),
        dir.path().join("restored"),
    );
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let (mut litestream, log) = replicate(&bin, dir.path(), &m, &replica);

    // A tenant created while Litestream runs is picked up too.
    m.create_tenant("initech").unwrap();
    litestream::wait_for_log(&log, "added database to replication", 1);
    for tenant in ["acme", "globex", "initech"] {
        insert_users(&m, tenant, 25);
    }
    // Destroy while Litestream holds every database open.
    let started = Instant::now();
    m.destroy_tenant("globex").unwrap();
    let destroy_took = started.elapsed();
    let globex_dir = m.root().database_path("globex").unwrap();
    assert!(
        !globex_dir.parent().unwrap().exists(),
        "the destroyed tenant's directory stays"
    );

    let relative = |t: &str| {
        m.root()
            .database_path(t)
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .to_path_buf()
    };
    let lag: Vec<Duration> = ["acme", "initech"]
        .iter()
        .map(|t| {
            lag_until(
                &bin,
                &replica,
                &relative(t),
                &dir.path().join("lag.sqlite3"),
                25,
            )
        })
        .collect();
    litestream::stop(&mut litestream);

    for tenant in ["acme", "initech"] {
        let into = RootConfig::new(&restored).database_path(tenant).unwrap();
        restore(&bin, &replica, &relative(tenant), &into);
        assert_eq!(users_in(&into), 25, "{tenant}: rows lost in replication");
    }
    let back = manager(&restored);
    assert_eq!(sorted_tenants(&back), ["acme", "initech"]);
    let status = back.migration_status().unwrap();
    assert!(status.all_current(), "{status}");
    back.connection("acme").unwrap();
    println!(
        "litestream: destroy took {destroy_took:?} while it replicated; replica caught up {lag:?} after the last write"
    );
}

/// In a flat layout the written configuration is recursive with a
/// pattern such as `[^.]*.sqlite3`: Litestream replicates the tenants and
/// never tenanted's template database (hidden, in `.tenanted/templates`),
/// which it would otherwise change (its tables, WAL mode), so that every
/// tenant created after would carry Litestream's tables.
#[test]
fn litestream_in_a_flat_layout_leaves_the_template_database_alone() {
    let Some(bin) = litestream::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, replica) = (dir.path().join("root"), dir.path().join("replica"));
    let config = RootConfig::new(&root).template("%{bucket}/%{tenant}.sqlite3");
    let m = TenantManager::builder(config, schema()).build().unwrap();
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let templates = root.join(".tenanted/templates");
    let listing = || common::files_under(&templates);
    let before = listing();
    let (mut litestream, log) = replicate(&bin, dir.path(), &m, &replica);
    m.create_tenant("initech").unwrap();
    litestream::wait_for_log(&log, "added database to replication", 1);
    litestream::stop(&mut litestream);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains(".tenanted"), "{said}");
    assert_eq!(listing(), before, "Litestream touched the template");
    m.create_tenant("later").unwrap();
    let conn = rusqlite::Connection::open(m.root().database_path("later").unwrap()).unwrap();
    let foreign: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '_litestream%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(foreign, 0, "a new tenant carries Litestream's tables");
    let replicated = common::files_under(&replica);
    assert!(
        replicated.iter().all(|f| !f.contains(".tenanted")),
        "{replicated:?}"
    );
}

/// A destroy that has to wait for a slow process (here a child holding the
/// tenant open for two seconds) while Litestream replicates the root: the
/// fenced database matches no Litestream pattern, so Litestream lets go of
/// it at once and never replicates it; the destroy finishes as soon as the
/// slow process lets go, and the replica holds nothing of the fence.
#[test]
fn a_destroy_waiting_for_a_slow_process_is_not_held_up_by_litestream() {
    let Some(bin) = litestream::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, replica) = (dir.path().join("root"), dir.path().join("replica"));
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    insert_users(&m, "globex", 5);
    let (mut litestream, log) = replicate(&bin, dir.path(), &m, &replica);
    m.prune_idle(Duration::ZERO);

    let mut holder = common::child::spawn(&mut common::child::command(
        "child_holds_globex_for_two_seconds",
        &root,
    ));
    // Past the test harness's own lines, to the child's word.
    let out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut lines = std::io::BufRead::lines(out);
    let holding = lines.find(|line| line.as_ref().is_ok_and(|l| l.contains("holding")));
    assert!(holding.is_some(), "the child never held globex");
    let started = Instant::now();
    let destroyed = m.destroy_tenant("globex");
    let took = started.elapsed();
    holder.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    litestream::stop(&mut litestream);
    let said = std::fs::read_to_string(&log).unwrap();
    destroyed.unwrap_or_else(|e| panic!("{e} after {took:?}; Litestream said:\n{said}"));
    assert!(
        took >= Duration::from_millis(500),
        "the destroy waited: {took:?}"
    );
    assert!(
        took < Duration::from_secs(9),
        "the destroy waited for Litestream: {took:?}"
    );
    assert!(!said.contains(".destroying"), "{said}");
    let replicated = common::files_under(&replica);
    assert!(
        replicated.iter().all(|f| !f.contains(".destroying")),
        "{replicated:?}"
    );
    assert_eq!(sorted_tenants(&m), ["acme"]);
}

#[test]
#[ignore = "child process of a_destroy_waiting_for_a_slow_process_is_not_held_up_by_litestream"]
fn child_holds_globex_for_two_seconds() {
    let Some(root) = common::child::root() else {
        return;
    };
    let db = RootConfig::new(&root).database_path("globex").unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    println!("holding globex ({users} users)");
    std::thread::sleep(Duration::from_secs(2));
}

/// The configuration `litestream_config_for` writes for an S3-compatible
/// store (endpoint, path-style addressing) works as it is: Litestream
/// replicates a tenant to a real SeaweedFS and restores it from there.
#[test]
fn litestream_replicates_to_a_real_s3_store_with_the_written_config() {
    let (Some(bin), Some(weed)) = (litestream::binary(), object_store::binary()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::start(&weed, &dir.path().join("s3"), "tenants-test");
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    insert_users(&m, "acme", 7);
    let target = tenanted::ReplicaTarget::new(store.url("fleet"))
        .endpoint(&store.endpoint)
        .force_path_style(true);
    let config = dir.path().join("litestream.yml");
    std::fs::write(&config, m.root().litestream_config_for(&target).unwrap()).unwrap();
    let log = dir.path().join("litestream.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut replicating = store
        .credentials(&mut litestream::command(&bin))
        .args(["replicate", "-config"])
        .arg(&config)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    litestream::wait_for_log(&log, "replicating to", 1);
    let relative = m.root().database_path("acme").unwrap();
    let relative = relative
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let into = dir.path().join("restored.sqlite3");
    let started = Instant::now();
    loop {
        let _ = std::fs::remove_file(&into);
        let restored = store
            .credentials(&mut litestream::command(&bin))
            .arg("restore")
            .arg("-o")
            .arg(&into)
            .arg(target.tenant_url(&relative))
            .output()
            .unwrap();
        if restored.status.success() && users_in(&into) == 7 {
            break;
        }
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the S3 replica never had the rows: {}\nLitestream said:\n{said}",
            String::from_utf8_lossy(&restored.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    litestream::stop(&mut replicating);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("level=ERROR"), "{said}");
}
