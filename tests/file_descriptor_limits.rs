//! Under a low RLIMIT_NOFILE: a sane `max_pools` serves 2,000 tenants, and
//! a cap far too high gives a distinct TooManyOpenFiles error, never a
//! panic, and the manager keeps serving afterwards.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use tenanted::Error;

/// Re-runs this binary's test `name` under `ulimit -n 128`.
fn run_limited(name: &str, root: &Path) -> String {
    child::run(&mut child::command_after("ulimit -n 128", name, root))
}

fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "child process of two_thousand_tenants_with_128_descriptors"]
fn child_many_tenants_small_cap() {
    let Some(root) = child::root() else {
        return;
    };
    if cfg!(target_os = "linux") {
        assert_eq!(fd_limit(), 128, "the limit was not applied");
    }
    let m = builder(&root).max_pools(16).build().unwrap();
    for i in 0..2000 {
        m.create_tenant(&format!("t{i:04}")).unwrap();
    }
    for i in 0..2000 {
        let name = format!("t{i:04}");
        let conn = m.connection(&name).unwrap();
        conn.execute("INSERT INTO notes (body) VALUES (?1)", [&name])
            .unwrap();
    }
    assert!(m.stats().open_pools <= 16);
    println!("SERVED-2000");
}

#[test]
#[ignore = "child process of a_cap_too_high_gives_too_many_open_files_and_recovers"]
fn child_cap_far_too_high() {
    let Some(root) = child::root() else {
        return;
    };
    let m = builder(&root)
        .max_pools(1000)
        .connection_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..200 {
        m.create_tenant(&format!("t{i:03}")).unwrap();
    }
    let mut held = Vec::new();
    let mut exhausted = None;
    for i in 0..200 {
        match m.connection(format!("t{i:03}")) {
            Ok(conn) => {
                match conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0)) {
                    Ok(_) => held.push(i),
                    Err(e) => println!("query failed at {i}: {e}"),
                }
            }
            Err(e @ Error::TooManyOpenFiles { .. }) => {
                exhausted = Some(e);
                break;
            }
            Err(e) => panic!("a generic error instead of TooManyOpenFiles at tenant {i}: {e}"),
        }
    }
    let err = exhausted.expect("128 descriptors cannot hold 200 tenant pools");
    let msg = err.to_string();
    assert!(msg.contains("max_pools") && msg.contains("ulimit"), "{msg}");
    assert!(err.tenant().is_some());
    // Still serving: cached tenants work, and freeing pools lets new ones in.
    m.connection(format!("t{:03}", held[0])).unwrap();
    assert!(m.prune_idle(Duration::ZERO) > 0);
    m.connection("t199")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        .unwrap();
    println!("EXHAUSTED-CLEANLY after {} pools", held.len());
}

#[test]
fn two_thousand_tenants_with_128_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_limited("child_many_tenants_small_cap", dir.path());
    assert!(out.contains("SERVED-2000"), "{out}");
}

#[test]
fn a_cap_too_high_gives_too_many_open_files_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_limited("child_cap_far_too_high", dir.path());
    assert!(out.contains("EXHAUSTED-CLEANLY"), "{out}");
}
