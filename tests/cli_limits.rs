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

/// `resume` of a tenant that is not suspended says so (it said
/// "resumed"); `suspend` refuses a reason that tells callers nothing, and
/// without a mode names both (the probe's misc findings).
#[test]
fn suspend_and_resume_refuse_or_say_what_tells_nothing() {
    let dir = tempfile::tempdir().unwrap();
    serving(dir.path()).create_tenant("acme").unwrap();
    tenanted(dir.path())
        .args(["resume", "acme"])
        .assert()
        .success()
        .stdout("acme was not suspended: nothing to resume\n");
    for reason in ["", "  \t"] {
        tenanted(dir.path())
            .args(["suspend", "acme", "--blocked", "--reason", reason])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--reason is empty"));
    }
    tenanted(dir.path())
        .args(["suspend", "acme", "--reason", "no mode"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--read-only").and(predicate::str::contains("--blocked")));
    tenanted(dir.path())
        .args(["limit", "show", "acme"])
        .assert()
        .success()
        .stdout("acme: size limit unlimited (default)\n");
}

/// `usage`'s totals count a tenant over its limit among those near it (as
/// `UsageReport::near_limit` documents): the sentence says so, rather than
/// reading "1 at or over ..., 1 near it" as two tenants (the probe's
/// misc_findings).
#[test]
fn usage_says_that_the_tenants_near_their_limit_include_those_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = serving(dir.path());
    for name in ["a", "b", "c"] {
        m.create_tenant(name).unwrap();
    }
    tenanted(dir.path())
        .args(["limit", "set", "b", "4K"])
        .assert()
        .success();
    tenanted(dir.path())
        .arg("usage")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "3 tenant(s), ",
        ))
        .stdout(predicate::str::contains(
            "; 1 at or over their size limit, 1 at 90% of it or more (those over included); 0 suspended",
        ));
}

/// `tenanted usage` and `status`, run as processes of their own against a
/// root this process serves (its pools open, a write of its in a `-wal`).
#[test]
fn usage_streams_every_tenant_or_sorts_the_top_and_status_flags_limits_and_suspensions() {
    let dir = tempfile::tempdir().unwrap();
    let m = serving(dir.path());
    for name in ["acme", "globex", "initech"] {
        m.create_tenant(name).unwrap();
    }
    let conn = m.connection("initech").unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000));")
        .unwrap();
    tenanted(dir.path())
        .args(["limit", "set", "acme", "4K"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["suspend", "globex", "--blocked", "--reason", "unpaid"])
        .assert()
        .success();
    let out = tenanted(dir.path())
        .args(["usage", "--json"])
        .assert()
        .success();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "three tenants and the summary: {lines:?}");
    let summary = &lines[3]["summary"];
    assert_eq!(
        (&summary["tenants"], &summary["suspended"]),
        (&3.into(), &1.into())
    );
    assert_eq!(summary["over_limit"], 1, "{summary}");
    let row = |name: &str| lines.iter().find(|l| l["tenant"] == name).unwrap();
    assert_eq!(row("acme")["max_size"], 4096);
    assert_eq!(row("acme")["over_limit"], true);
    assert!(row("acme")["page_count"].as_u64().unwrap() > 0);
    assert!(
        row("initech")["wal_bytes"].as_u64().unwrap() > 100_000,
        "the serving process's write"
    );
    assert_eq!(row("globex")["suspension"]["reason"], "unpaid");
    let out = tenanted(dir.path())
        .args(["usage", "--sort", "limit", "--top", "5", "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let top: Vec<&Value> = report["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["tenant"])
        .collect();
    assert_eq!(top, ["acme"], "only acme has a limit");
    tenanted(dir.path())
        .args(["usage", "--sort", "size", "--top", "1"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("initech  "))
        .stdout(predicate::str::contains("3 tenant(s)"));
    tenanted(dir.path())
        .arg("usage")
        .assert()
        .success()
        .stdout(predicate::str::contains("suspended (blocked): unpaid"));
    // status: a default limit every tenant is over, from the command line.
    let status = |args: &[&str]| {
        let out = tenanted(dir.path())
            .arg("--migrations")
            .arg(common::schema_dir())
            .args(args)
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    let text = status(&["--default-max-size", "4K", "status"]);
    for name in ["acme", "globex", "initech"] {
        let flagged = format!("at or over its size limit: {name}  ");
        assert!(text.contains(&flagged), "{name}: {text}");
    }
    assert!(
        text.contains("suspended: globex (blocked: unpaid)"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&status(&["status", "--json"])).unwrap();
    assert_eq!(json["near_limit"][0]["tenant"], "acme", "{json}");
    assert_eq!(
        (&json["near_limit_count"], &json["over_limit_count"]),
        (&1.into(), &1.into())
    );
    assert_eq!(json["suspended"]["globex"], "blocked: unpaid");
    drop(conn);
    tenanted(dir.path())
        .args(["resume", "globex"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["limit", "clear", "acme"])
        .assert()
        .success();
    let json: Value = serde_json::from_str(&status(&["status", "--json"])).unwrap();
    assert!(
        json.get("near_limit").is_none() && json.get("suspended").is_none(),
        "{json}"
    );
}

/// A suspension's reason with a newline in it is printed on its tenant's
/// line, escaped, by `list`, `limit show` and `suspend`: each tenant one
/// line (an outside probe: the reason's second line read as a tenant).
#[test]
fn a_reason_with_a_newline_stays_on_its_tenants_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = serving(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    tenanted(dir.path())
        .args(["suspend", "acme", "--blocked", "--reason", "unpaid\nglobex"])
        .assert()
        .success()
        .stdout("suspended acme (blocked): unpaid\\nglobex\n");
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("acme  (suspended, blocked: unpaid\\nglobex)\nglobex\n");
    tenanted(dir.path())
        .args(["limit", "show", "acme"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("unpaid\\nglobex")
                .and(predicate::str::contains("\nglobex").not()),
        );
    // A backslash is escaped too: `\n` in a reason is not a newline.
    tenanted(dir.path())
        .args(["suspend", "globex", "--blocked", "--reason", "path C:\\new"])
        .assert()
        .success()
        .stdout("suspended globex (blocked): path C:\\\\new\n");
}
