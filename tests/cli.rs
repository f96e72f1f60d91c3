//! The `tenanted` command line: every subcommand, exit codes 0/1/2, and
//! `--json` parsed back.

mod common;

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// `tenanted` with `--root` and `--migrations` pointing into `dir`.
fn tenanted(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tenanted").unwrap();
    cmd.env_remove("RUST_LOG")
        .arg("--root")
        .arg(dir.join("tenants"))
        .arg("--migrations")
        .arg(dir.join("migrations"));
    cmd
}

/// A temp dir with the example schema cut to its first `n` migrations.
fn workspace(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    set_migrations(dir.path(), n);
    dir
}

fn set_migrations(dir: &Path, n: usize) {
    let target = dir.join("migrations");
    let _ = std::fs::remove_dir_all(&target);
    let mut entries: Vec<_> = std::fs::read_dir(common::schema_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for src in entries.into_iter().take(n) {
        let dst = target.join(src.file_name().unwrap());
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap()
}

#[test]
fn create_list_exists_and_json() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "globex", "acme"])
        .assert()
        .success()
        .stdout(predicate::str::contains("created acme"));
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("acme\nglobex\n");
    let out = tenanted(dir.path())
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        json_of(&out.stdout),
        serde_json::json!({ "tenants": ["acme", "globex"] })
    );
    tenanted(dir.path())
        .args(["exists", "acme"])
        .assert()
        .code(0);
    tenanted(dir.path())
        .args(["exists", "nobody"])
        .assert()
        .code(1);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("acme already exists"));
}

#[test]
fn a_bad_name_exits_2_with_the_reason() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "../evil"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("path separator"));
    tenanted(dir.path())
        .args(["exists", "a/b"])
        .assert()
        .code(2);
    tenanted(dir.path()).args(["frobnicate"]).assert().code(2);
    assert!(!dir.path().join("evil").exists());
}

#[test]
fn destroy_needs_yes_off_a_terminal_and_names_missing_tenants() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["destroy", "acme"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    tenanted(dir.path())
        .args(["exists", "acme"])
        .assert()
        .code(0);
    tenanted(dir.path())
        .args(["destroy", "acme", "--yes"])
        .assert()
        .success()
        .stdout("destroyed acme\n");
    tenanted(dir.path())
        .args(["destroy", "acme", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tenant acme does not exist"));
}

#[test]
fn status_check_migrate_and_rollback() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("acme: ⚠ 2 pending")
                .and(predicate::str::contains("0/2 tenants current")),
        );
    let out = tenanted(dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "--json without --check exits 0");
    let status = json_of(&out.stdout);
    assert_eq!(status["latest_version"], 4);
    assert_eq!(status["totals"]["pending_migrations"], 4);
    assert_eq!(status["tenants"][0]["tenant"], "acme");
    assert_eq!(status["tenants"][0]["state"], "pending");
    assert_eq!(
        status["tenants"][0]["pending"],
        serde_json::json!(["0003_create_changes", "0004_add_item_position"])
    );

    tenanted(dir.path())
        .args(["migrate", "--tenant", "acme", "--jobs", "1"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("acme: 2 → 4")
                .and(predicate::str::contains("1/1 tenants migrated")),
        );
    tenanted(dir.path())
        .args(["migrate", "--to", "3"])
        .assert()
        .success();
    tenanted(dir.path()).args(["migrate"]).assert().success();
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .success();

    tenanted(dir.path())
        .args(["rollback", "acme", "--steps", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("from 4 to 2"));
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .code(1);
}

#[test]
fn a_failed_migration_exits_1_and_names_the_tenant() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "beta"])
        .assert()
        .success();
    let beta = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("beta")
        .unwrap();
    rusqlite::Connection::open(beta)
        .unwrap()
        .execute_batch("CREATE TABLE changes (x);")
        .unwrap();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["migrate"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("1 failed: beta")
                .and(predicate::str::contains("0003_create_changes")),
        );
    tenanted(dir.path())
        .args(["migrate", "--fail-fast", "--jobs", "1"])
        .assert()
        .code(1);
}

#[test]
fn schema_dump_matches_the_committed_schema() {
    let dir = workspace(4);
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/schema.sql"))
            .unwrap();
    tenanted(dir.path())
        .args(["schema", "dump"])
        .assert()
        .success()
        .stdout(committed);
}

#[test]
fn a_bad_migrations_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    tenanted(dir.path())
        .arg("list")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("migrations"));
}

#[test]
fn cleanup_and_completions() {
    let dir = workspace(4);
    tenanted(dir.path())
        .arg("cleanup")
        .assert()
        .success()
        .stdout("removed 0 leftover file(s)\n");
    tenanted(dir.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("tenanted"));
}

#[test]
fn root_comes_from_the_environment() {
    let dir = workspace(4);
    let mut cmd = Command::cargo_bin("tenanted").unwrap();
    cmd.env("TENANTED_ROOT", dir.path().join("env-root"))
        .env("TENANTED_MIGRATIONS", dir.path().join("migrations"))
        .args(["create", "acme"])
        .assert()
        .success();
    assert!(dir.path().join("env-root").exists());
}
