//! A tenant destroyed, re-created or held open by another *process* is
//! never served stale, and no write another process was told had committed
//! is lost without its tenant's destroy having been reported successful.
//!
//! Each test runs a real second process (this test binary re-run as a
//! child): a "server" that keeps a pool on the tenant, like a service would,
//! while the parent destroys, re-creates or waits on it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::child;
use tenanted::{Error, Migration, Migrations, RootConfig, TenantManager};

/// How often the child's watcher looks at its pools.
const WATCH: Duration = Duration::from_millis(100);

fn migrations() -> Migrations {
    Migrations::new(vec![Migration::new(
        "0001_log",
        "CREATE TABLE incarnation (id INTEGER NOT NULL);
         CREATE TABLE log (seq INTEGER PRIMARY KEY, incarnation INTEGER NOT NULL, started_ns INTEGER NOT NULL);",
    )])
}

fn manager(root: &Path, destroy_timeout: Duration) -> TenantManager {
    TenantManager::builder(RootConfig::new(root), migrations())
        .watch_interval(WATCH)
        .destroy_timeout(destroy_timeout)
        .build()
        .unwrap()
}

fn create_incarnation(m: &TenantManager, incarnation: i64) {
    m.create_tenant_with("acme", |tx| {
        tx.execute("INSERT INTO incarnation (id) VALUES (?1)", [incarnation])
            .map(drop)
    })
    .unwrap();
}

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// The child: writes to `acme` as fast as it can, each write in one
/// transaction that reads the tenant's incarnation and logs a sequence
/// number, until the stop file appears. Prints `ACK seq incarnation
/// started_ns` for each commit it was told succeeded, `GONE seq started_ns`
/// for the errors a destroy may cause, and `BAD ...` for anything else.
#[test]
#[ignore = "child process of the cross-process tests"]
fn child_writer() {
    let Some(root) = child::root() else {
        return;
    };
    let m = manager(&root, Duration::from_secs(10));
    let stop = child::stop_file(&root);
    let mut seq: i64 = 0;
    while !stop.exists() {
        seq += 1;
        let started = child::now_ns();
        match m.connection("acme") {
            Ok(mut conn) => match write_once(&mut conn, seq, started) {
                Ok(incarnation) => println!("ACK {seq} {incarnation} {started}"),
                Err(e) => println!("BAD {seq} {e}"),
            },
            Err(Error::TenantDoesNotExist { .. } | Error::TenantBeingDestroyed { .. }) => {
                println!("GONE {seq} {started}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => println!("BAD {seq} {e}"),
        }
    }
}

fn write_once(conn: &mut rusqlite::Connection, seq: i64, started: u128) -> rusqlite::Result<i64> {
    let tx = conn.transaction()?;
    let incarnation: i64 = tx.query_row("SELECT id FROM incarnation", [], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO log (seq, incarnation, started_ns) VALUES (?1, ?2, ?3)",
        (seq, incarnation, started as i64),
    )?;
    tx.commit()?;
    Ok(incarnation)
}

struct Ack {
    seq: i64,
    incarnation: i64,
    started: u128,
}

fn parse_acks(out: &str) -> Vec<Ack> {
    let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("BAD")).collect();
    assert!(bad.is_empty(), "undocumented errors in the server: {bad:?}");
    out.lines()
        .filter_map(|l| l.split_once("ACK ").map(|(_, ack)| ack))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Ack {
                seq: f[0].parse().unwrap(),
                incarnation: f[1].parse().unwrap(),
                started: f[2].parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_twenty_destroys_and_recreates_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, Duration::from_secs(10));
    create_incarnation(&m, 1);
    let out = dir.path().join("child.out");
    let server = child::spawn_logged("child_writer", &root, &out);
    // incarnation -> when its destroy returned
    let mut destroyed: BTreeMap<i64, u128> = BTreeMap::new();
    let mut destroy_times = Vec::new();
    for incarnation in 1..=20 {
        std::thread::sleep(Duration::from_millis(150));
        let started = Instant::now();
        m.destroy_tenant("acme").unwrap();
        destroy_times.push(started.elapsed());
        destroyed.insert(incarnation, child::now_ns());
        create_incarnation(&m, incarnation + 1);
    }
    // Long past the watch interval: the server sees the last incarnation.
    std::thread::sleep(WATCH * 10);
    std::fs::write(child::stop_file(&root), "").unwrap();
    let acks = parse_acks(&child::wait_logged(server, &out));

    let path = m.root().database_path("acme").unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut kept = conn
        .prepare("SELECT incarnation FROM log WHERE seq = ?1")
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for ack in &acks {
        seen.insert(ack.incarnation);
        match destroyed.get(&ack.incarnation) {
            // A destroyed incarnation: the write began before its destroy
            // returned (so the destroy, reported successful, took it).
            Some(&at) => assert!(
                ack.started < at,
                "write {} to incarnation {} began {} ns after its destroy returned",
                ack.seq,
                ack.incarnation,
                ack.started - at
            ),
            // The live incarnation: every acknowledged write is there.
            None => {
                let found: i64 = kept
                    .query_row([ack.seq], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("acknowledged write {} is lost: {e}", ack.seq));
                assert_eq!(found, ack.incarnation);
            }
        }
    }
    assert!(
        seen.contains(&21),
        "the server never saw the last incarnation"
    );
    assert!(seen.len() >= 3, "too few incarnations served: {seen:?}");
    assert_eq!(integrity(&path), "ok");
    let slowest = destroy_times.iter().max().unwrap();
    println!(
        "{} writes acknowledged across {} incarnations; slowest destroy {slowest:?}",
        acks.len(),
        seen.len()
    );
}

/// The child: holds `acme` in a write transaction for two seconds, then
/// commits, waits, and writes again through a fresh checkout.
#[test]
#[ignore = "child process of the cross-process tests"]
fn child_long_transaction() {
    let Some(root) = child::root() else {
        return;
    };
    let m = manager(&root, Duration::from_secs(10));
    let mut conn = m.connection("acme").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO log VALUES (1, 1, 0)", []).unwrap();
    println!("READY");
    std::thread::sleep(Duration::from_secs(2));
    tx.commit().unwrap();
    drop(conn);
    println!("COMMITTED");
    std::thread::sleep(WATCH * 5);
    let conn = m.connection("acme").unwrap();
    conn.execute("INSERT INTO log VALUES (2, 1, 0)", [])
        .unwrap();
    println!("WROTE-AGAIN");
}

#[test]
fn a_long_transaction_in_another_process_makes_destroy_busy_and_leaves_the_tenant_intact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, Duration::from_millis(800));
    create_incarnation(&m, 1);
    let out = dir.path().join("child.out");
    let server = child::spawn_logged("child_long_transaction", &root, &out);
    child::wait_for_word(&out, "READY");

    let err = m.destroy_tenant("acme").unwrap_err();
    match &err {
        Error::TenantBusy {
            other_process: Some(other),
            ..
        } => assert_eq!(other.pid, Some(server.id())),
        other => panic!("expected TenantBusy naming the other process, got {other}"),
    }
    assert!(err.to_string().contains("another process"), "{err}");
    assert!(
        m.tenant_exists("acme").unwrap(),
        "the tenant was not left intact"
    );

    let log = child::wait_logged(server, &out);
    assert!(log.contains("WROTE-AGAIN"), "{log}");
    let conn = m.connection("acme").unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2, "both of the other process's commits are kept");
    conn.execute("INSERT INTO log VALUES (3, 1, 0)", [])
        .unwrap();
    drop(conn);
    assert_eq!(integrity(&m.root().database_path("acme").unwrap()), "ok");
}

/// The child: writes once, keeps its (now idle) pool, and after the stop
/// file appears says what a new checkout gets.
#[test]
#[ignore = "child process of the cross-process tests"]
fn child_idle_pool() {
    let Some(root) = child::root() else {
        return;
    };
    let m = manager(&root, Duration::from_secs(10));
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO log VALUES (1, 1, 0)", [])
        .unwrap();
    println!("READY");
    while !child::stop_file(&root).exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    match m.connection("acme") {
        Err(Error::TenantDoesNotExist { .. }) => println!("GONE"),
        Ok(_) => println!("STILL-SERVED"),
        Err(e) => println!("BAD {e}"),
    }
}

#[test]
fn an_idle_pool_in_another_process_lets_go_and_destroy_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root, Duration::from_secs(20));
    create_incarnation(&m, 1);
    let out = dir.path().join("child.out");
    let server = child::spawn_logged("child_idle_pool", &root, &out);
    child::wait_for_word(&out, "READY");

    let started = Instant::now();
    m.destroy_tenant("acme").unwrap();
    let took = started.elapsed();
    assert!(!m.tenant_exists("acme").unwrap());
    std::fs::write(child::stop_file(&root), "").unwrap();
    let log = child::wait_logged(server, &out);
    assert!(log.split_whitespace().any(|w| w == "GONE"), "{log}");
    println!(
        "destroy with an idle pool in another process took {took:?} (watch interval {WATCH:?})"
    );
}
