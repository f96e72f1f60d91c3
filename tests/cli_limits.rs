//! `tenanted limit set|show|clear`, `suspend`, `resume`, and `list`
//! showing suspensions; each command is a process of its own, so a
//! serving manager in this process sees its changes within its
//! `watch_interval`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tenanted::{Error, Migrations, RootConfig, SuspendMode, TenantManager};

fn tenanted(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tenanted").unwrap();
    cmd.env_remove("RUST_LOG").arg("--root").arg(root);
    cmd
}

fn serving(root: &Path) -> TenantManager {
    TenantManager::builder(RootConfig::new(root), Migrations::new(vec![]))
        .watch_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn until(mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(30), "never seen");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn limits_set_shown_and_cleared_at_the_command_line_hold_in_a_serving_process() {
    let dir = tempfile::tempdir().unwrap();
    let m = serving(dir.path());
    m.create_tenant("acme").unwrap();
    let pages = || -> i64 {
        let conn = m.connection("acme").unwrap();
        conn.query_row("PRAGMA max_page_count", [], |r| r.get(0))
            .unwrap()
    };
    assert!(pages() > 1 << 30);
    tenanted(dir.path())
        .args(["limit", "set", "acme", "64K"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "acme: size limit 64K (65536 bytes)",
        ));
    until(|| pages() == 16);
    let out = tenanted(dir.path())
        .args(["limit", "show", "acme", "--json"])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["limits"]["max_size"], 65536);
    assert_eq!(json["limits"]["overridden"], true);
    tenanted(dir.path())
        .args(["limit", "clear", "acme"])
        .assert()
        .success();
    until(|| pages() > 1 << 30);
    tenanted(dir.path())
        .args(["limit", "show", "acme"])
        .assert()
        .success()
        .stdout("acme: size limit unlimited (default)\n");
    // Bad input is said in the command line's words, exit code 2.
    tenanted(dir.path())
        .args(["limit", "set", "acme", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid size \"lots\""));
    tenanted(dir.path())
        .args(["limit", "set", "nobody", "1M"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tenant nobody does not exist"));
}

#[test]
fn suspend_and_resume_at_the_command_line_hold_in_a_serving_process_and_list_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let m = serving(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    drop(m.connection("acme").unwrap());
    tenanted(dir.path())
        .args(["suspend", "acme", "--blocked", "--reason", "invoice unpaid"])
        .assert()
        .success()
        .stdout("suspended acme (blocked): invoice unpaid\n");
    until(
        || matches!(m.connection("acme"), Err(Error::TenantSuspended { ref reason, mode: SuspendMode::Blocked, .. }) if reason == "invoice unpaid"),
    );
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("acme  (suspended, blocked: invoice unpaid)\nglobex\n");
    let out = tenanted(dir.path())
        .args(["list", "--json"])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["tenants"], serde_json::json!(["acme", "globex"]));
    assert_eq!(json["suspended"]["acme"]["mode"], "blocked");
    assert_eq!(json["suspended"]["acme"]["reason"], "invoice unpaid");
    tenanted(dir.path())
        .args(["suspend", "acme", "--read-only", "--reason", "audit"])
        .assert()
        .success();
    until(|| {
        m.connection("acme")
            .is_ok_and(|c| c.is_readonly(rusqlite::MAIN_DB).unwrap())
    });
    tenanted(dir.path())
        .args(["resume", "acme"])
        .assert()
        .success();
    until(|| {
        m.connection("acme")
            .is_ok_and(|c| !c.is_readonly(rusqlite::MAIN_DB).unwrap())
    });
    tenanted(dir.path())
        .args(["suspend", "acme", "--reason", "no mode"])
        .assert()
        .code(2);
}
