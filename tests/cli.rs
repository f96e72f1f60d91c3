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

/// `tenanted` with `args` on `dir`'s root, run by a user whom file
/// permissions stop: this test's own, or, when it runs as root (as CI
/// does, where permissions stop nothing), `nobody` through `setpriv`
/// (with `dir` opened to it for reading).
fn unprivileged(dir: &Path, args: &[&str]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("tenanted");
    let mut cmd = if rustix::process::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        setpriv.arg(bin);
        setpriv
    } else {
        std::process::Command::new(bin)
    };
    cmd.env_remove("RUST_LOG")
        .arg("--root")
        .arg(dir.join("tenants"))
        .arg("--migrations")
        .arg(dir.join("migrations"))
        .args(args);
    cmd.output()
        .expect("setpriv (util-linux) or the binary runs")
}

/// A temp dir with the example schema cut to its first `n` migrations and
/// an empty root, `tenants` (what `tenanted init` makes; no other command
/// creates a root but `rebuild`).
fn workspace(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    set_migrations(dir.path(), n);
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    dir
}

/// A `workspace(4)` whose root holds `tenants`, made by `tenanted create`.
fn workspace_with(tenants: &[&str]) -> tempfile::TempDir {
    let dir = workspace(4);
    tenanted(dir.path())
        .arg("create")
        .args(tenants)
        .assert()
        .success();
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

/// `tenanted ARGS | head -c 16`: the output goes into a pipe that holds
/// 4 KiB, and its reader goes away after 16 bytes.
fn into_a_pipe_closed_early(dir: &Path, args: &[&str]) -> std::process::Output {
    use std::io::Read;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    rustix::pipe::fcntl_setpipe_size(&writer, 4096).unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tenanted"))
        .env_remove("RUST_LOG")
        .arg("--root")
        .arg(dir.join("tenants"))
        .arg("--migrations")
        .arg(dir.join("migrations"))
        .args(args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::fs::File::from(reader).read_exact(&mut first).unwrap();
    child.wait_with_output().unwrap()
}

/// A reader that stops early (`| head`) ends the printing, not the
/// command: no panic on the closed pipe, and the command's own exit code.
#[test]
fn a_reader_gone_early_ends_the_printing_not_the_command() {
    let dir = workspace(2);
    let names: Vec<String> = (0..2000).map(|i| format!("t{i:05}")).collect();
    let create: Vec<&str> = std::iter::once("create")
        .chain(names.iter().map(String::as_str))
        .collect();
    let lists: [&[&str]; 5] = [
        &create,
        &["list"],
        &["list", "--json"],
        &["status", "--all"],
        &["status", "--json"],
    ];
    for args in lists {
        let out = into_a_pipe_closed_early(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // Every tenant was created, though most of `create`'s lines went
    // unread.
    let listed = tenanted(dir.path()).args(["list"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        2000
    );
}

/// A log reader gone (`tenanted replicate 2>&1 >/dev/null | head -c 1`)
/// ends the logging, not the command: the log's writer panicked on the
/// closed pipe (exit 101), which stopped a `replicate` and its Litestream
/// at its first warning (an outside probe).
#[test]
fn a_log_reader_gone_ends_the_logging_not_the_command() {
    let dir = workspace_with(&["acme"]);
    // Read by every command that reads the migrations: a warning each time.
    std::fs::write(dir.path().join("migrations/notes.txt"), "not a migration").unwrap();
    let said = tenanted(dir.path()).arg("status").output().unwrap();
    let warned = String::from_utf8_lossy(&said.stderr);
    assert!(warned.contains("not a migration"), "{warned}");
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    drop(reader);
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("tenanted"))
        .env_remove("RUST_LOG")
        .arg("--root")
        .arg(dir.path().join("tenants"))
        .arg("--migrations")
        .arg(dir.path().join("migrations"))
        .arg("status")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(writer))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
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
        .code(2)
        .stderr(predicate::str::contains("takes 1 tenant(s) down"));
    tenanted(dir.path())
        .args(["migrate", "--to", "3", "--yes"])
        .assert()
        .success();
    tenanted(dir.path()).args(["migrate"]).assert().success();
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .success();

    tenanted(dir.path())
        .args(["rollback", "acme", "--steps", "2", "--yes"])
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
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    tenanted(dir.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad migrations at"));
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
    for args in [&["init"][..], &["create", "acme"]] {
        let mut cmd = Command::cargo_bin("tenanted").unwrap();
        cmd.env("TENANTED_ROOT", dir.path().join("env-root"))
            .env("TENANTED_MIGRATIONS", dir.path().join("migrations"))
            .args(args)
            .assert()
            .success();
    }
    assert!(dir.path().join("env-root").exists());
}

// ----- issue 15: the CLI never reports false success -------------------------

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything a command printed, standard output then standard error.
fn said_by(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr_of(out))
}

#[test]
fn a_missing_root_fails_every_fleet_command_with_the_reason() {
    let dir = workspace(4);
    std::fs::remove_dir(dir.path().join("tenants")).unwrap();
    for args in [
        &["status", "--check"][..],
        &["status"],
        &["migrate"],
        &["list"],
        &["cleanup"],
        &["exists", "acme"],
    ] {
        tenanted(dir.path())
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("does not exist; pass --root"));
    }
    let out = tenanted(dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error = json_of(&out.stdout)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn a_root_that_is_a_file_fails_with_the_reason() {
    let dir = workspace(4);
    std::fs::remove_dir(dir.path().join("tenants")).unwrap();
    std::fs::write(dir.path().join("tenants"), "not a directory").unwrap();
    for args in [&["status"][..], &["migrate"], &["list", "--json"]] {
        tenanted(dir.path())
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("is not a directory"));
    }
}

#[test]
fn status_json_carries_listing_errors_and_exits_1() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // A bucket directory that cannot be listed.
    let bucket = dir.path().join("tenants/ff");
    std::fs::create_dir_all(bucket.join("inside")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bucket, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = unprivileged(dir.path(), &["status", "--json"]);
    std::fs::set_permissions(&bucket, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let status = json_of(&out.stdout);
    assert_eq!(status["totals"]["listing_errors"], 1);
    assert!(status["listing_errors"][0].as_str().unwrap().contains("ff"));
}

/// `status` says a damaged tenant's way out with commands, as every other
/// command does, not with the library's methods (an outside probe).
#[test]
fn status_says_a_damaged_tenants_way_out_in_commands() {
    let dir = workspace_with(&["acme"]);
    let root = dir.path().join("tenants");
    let db = common::files_under(&root)
        .into_iter()
        .find(|f| f.ends_with("acme/main.sqlite3"))
        .unwrap();
    std::fs::write(root.join(db), vec![b'x'; 4096]).unwrap();
    for args in [
        &["status"][..],
        &["status", "--all"],
        &["status", "--tenant", "acme"],
    ] {
        let out = tenanted(dir.path()).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}");
        assert!(
            stdout.contains("▸ acme: ✗ unreadable: tenant acme is damaged"),
            "{args:?}: {stdout}"
        );
        assert!(
            stdout.contains("`tenanted restore acme --from FILE --replace --yes`"),
            "{args:?}: {stdout}"
        );
        assert!(
            !stdout.contains("restore_tenant_opts"),
            "{args:?}: {stdout}"
        );
    }
}

#[test]
fn commands_that_need_no_migrations_do_not_load_them() {
    let dir = workspace_with(&["acme", "globex"]);
    std::fs::remove_dir_all(dir.path().join("migrations")).unwrap();
    tenanted(dir.path()).arg("list").assert().success();
    tenanted(dir.path())
        .args(["exists", "acme"])
        .assert()
        .code(0);
    tenanted(dir.path()).arg("cleanup").assert().success();
    tenanted(dir.path())
        .args(["destroy", "globex", "--yes"])
        .assert()
        .success();
    tenanted(dir.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad migrations"));
}

#[test]
fn rollback_needs_yes_off_a_terminal_and_refuses_too_many_steps() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["rollback", "acme"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    tenanted(dir.path())
        .args(["rollback", "acme", "--steps", "100", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only 4 migration(s) applied"));
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["rollback", "acme", "--steps", "4", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("from 4 to 0"));
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to roll back"));
    tenanted(dir.path())
        .args(["rollback", "acme", "--steps", "0", "--yes"])
        .assert()
        .code(2);
}

#[test]
fn an_impossible_migrate_target_is_a_usage_error_before_any_tenant() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["migrate", "--to", "99"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--to 99 is out of range")
                .and(predicate::str::contains("0 to 4")),
        );
    let out = tenanted(dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(json_of(&out.stdout)["tenants"][0]["version"], 2);
}

#[test]
fn every_argument_is_validated_before_anything_is_done() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "initech", "bad name", "ok2"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("\"bad name\"")
                .and(predicate::str::contains("nothing was done")),
        );
    let made = std::fs::read_dir(dir.path().join("tenants"))
        .unwrap()
        .count();
    assert_eq!(made, 0, "nothing was created, not even the root's records");
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // The bad name is reported before --yes is asked for.
    tenanted(dir.path())
        .args(["destroy", "acme", "../etc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("path separator"));
    tenanted(dir.path())
        .args(["migrate", "--tenant", "a/b"])
        .assert()
        .code(2);
}

#[test]
fn off_a_terminal_there_is_no_colour_and_a_failure_is_printed_once() {
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
    let out = tenanted(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    let all = format!("{stdout}{stderr}");
    assert!(!all.contains('\u{1b}'), "no ANSI escapes: {all:?}");
    assert_eq!(all.matches("FAILED").count(), 1, "{all}");
    assert_eq!(
        all.matches("table changes already exists").count(),
        1,
        "{all}"
    );
}

#[test]
fn quiet_migrate_prints_only_failures_and_the_summary_and_json_works() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 3);
    tenanted(dir.path())
        .args(["-q", "migrate"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "2/2 tenants migrated to version 3",
        ))
        .stdout(predicate::str::contains("✓").not());
    set_migrations(dir.path(), 4);
    let out = tenanted(dir.path())
        .args(["migrate", "--json", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report = json_of(&out.stdout);
    assert_eq!(report["target_version"], 4);
    assert_eq!(report["tenants"][0]["tenant"], "acme");
    assert_eq!(
        (
            report["tenants"][0]["from"].clone(),
            report["tenants"][0]["to"].clone()
        ),
        (3.into(), 4.into())
    );
    assert_eq!(
        report["tenants"][0]["applied"],
        serde_json::json!(["0004_add_item_position"])
    );
    assert_eq!(report["totals"]["migrated"], 1);
    assert_eq!(report["cancelled"], false);
}

#[test]
fn status_lists_only_tenants_that_are_not_current_unless_all() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["migrate", "--tenant", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("globex: ⚠ 2 pending")
                .and(predicate::str::contains("acme").not())
                .and(predicate::str::contains("1/2 tenants current")),
        );
    tenanted(dir.path())
        .args(["status", "--all"])
        .assert()
        .success()
        .stdout(predicate::str::contains("acme: ✓ up to date"));
}

#[test]
fn help_separates_global_options_and_describes_arguments() {
    let dir = workspace(4);
    let out = tenanted(dir.path())
        .args(["rollback", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let global = help.find("Global options").expect("a global section");
    assert!(help.find("--steps").unwrap() < global, "{help}");
    assert!(help.find("--root").unwrap() > global, "{help}");
    assert!(help.contains("How many migrations to undo"), "{help}");
    assert!(help.contains("Tenant name"), "{help}");
}

#[test]
fn error_texts_give_cli_advice() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("pass --if-not-exists")
                .and(predicate::str::contains("create_tenant_if_not_exists").not()),
        );
    tenanted(dir.path())
        .args(["create", "--if-not-exists", "acme", "globex"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("acme already exists")
                .and(predicate::str::contains("created globex")),
        );
}

#[test]
fn the_tenant_can_come_from_tenanted_tenant() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .env("TENANTED_TENANT", "acme")
        .arg("exists")
        .assert()
        .code(0);
    tenanted(dir.path())
        .env("TENANTED_TENANT", "nobody")
        .arg("exists")
        .assert()
        .code(1);
}

/// Ctrl-C during a destroy that waits for another process (its tenant
/// fenced off) lets that destroy finish, destroys no other tenant, and
/// exits 130; nothing is left fenced.
#[test]
fn ctrl_c_during_a_destroy_finishes_the_tenant_in_hand_and_starts_no_other() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    let root = dir.path().join("tenants");
    let db = tenanted::RootConfig::new(&root)
        .database_path("acme")
        .unwrap();
    // This process holds acme open: the destroy fences it and waits.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenanted"))
        .arg("--root")
        .arg(&root)
        .args(["destroy", "acme", "globex", "--yes"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fence = db.with_file_name(".main.sqlite3.destroying");
    let waited = std::time::Instant::now();
    while !fence.exists() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "never fenced"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Let go only once the command has said it was interrupted.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut said).unwrap();
    assert!(
        said.starts_with("interrupted: finishing the tenant in hand"),
        "{said}"
    );
    drop(holder);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("destroyed acme"), "{stdout}");
    assert!(stdout.contains("not started globex"), "{stdout}");
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("globex\n");
    let files = common::tenant_files_under(&root);
    assert!(files.iter().all(|f| !f.contains("/.")), "{files:?}");
}

#[test]
fn ctrl_c_stops_starting_tenants_prints_the_summary_and_exits_130() {
    let dir = workspace(2);
    let names: Vec<String> = (0..400).map(|i| format!("t{i:03}")).collect();
    tenanted(dir.path())
        .arg("create")
        .args(&names)
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenanted"))
        .arg("--root")
        .arg(dir.path().join("tenants"))
        .arg("--migrations")
        .arg(dir.path().join("migrations"))
        .args(["migrate", "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    // Tenants are taken in the order the files sit on disk (a few buckets
    // at a time, by inode), not by name: any tenant's line says the run
    // has started.
    assert!(
        first.starts_with("✓ t") && first.contains(": 2 → 4"),
        "{first}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("not started: cancelled"), "{rest}");
    assert!(
        rest.contains(" of 400 tenants migrated"),
        "the summary counts the whole run, not only the tenants started: {rest}"
    );
    let out = tenanted(dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let status = json_of(&out.stdout);
    let pending = status["totals"]["pending_tenants"].as_u64().unwrap();
    assert!(pending > 0, "the run stopped before the end");
    assert_eq!(status["totals"]["unreadable"], 0, "no tenant half-migrated");
    let leftovers = tenanted(dir.path()).arg("cleanup").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&leftovers.stdout),
        "removed 0 leftover file(s)\n",
        "no lock file left behind"
    );
}

// ----- issue 15: features operators expect -----------------------------------

#[test]
fn migration_new_creates_the_next_numbered_up_and_down() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["migration", "new", "add_tags"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0003_add_tags"));
    let created = dir.path().join("migrations/0003_add_tags");
    assert!(created.join("up.sql").is_file() && created.join("down.sql").is_file());
    tenanted(dir.path())
        .args(["migration", "new", "Bad Name"])
        .assert()
        .code(2);
    let empty = tempfile::tempdir().unwrap();
    tenanted(empty.path())
        .args(["migration", "new", "first"])
        .assert()
        .success();
    assert!(empty.path().join("migrations/0001_first/up.sql").is_file());
    // A folder that is there but holds no migration yet (made by hand,
    // or with its README) gets its first too (an outside probe: refused,
    // "no migrations found", even with --timestamp).
    for timestamp in [false, true] {
        let fresh = tempfile::tempdir().unwrap();
        std::fs::create_dir(fresh.path().join("migrations")).unwrap();
        std::fs::write(fresh.path().join("migrations/README.md"), "# ours").unwrap();
        let mut new = tenanted(fresh.path());
        new.args(["migration", "new", "first"]);
        if timestamp {
            new.arg("--timestamp");
        }
        new.assert().success();
        let made: Vec<_> = std::fs::read_dir(fresh.path().join("migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with("_first"))
            .collect();
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(made[0].len() == "0001_first".len(), !timestamp, "{made:?}");
    }
    // A folder with a gap, which every other command refuses, gets no new
    // migration after it (the third outside probe: 0010_y was made after
    // 0006 and 0009_x, and exit 0).
    std::fs::create_dir(dir.path().join("migrations/0009_x")).unwrap();
    std::fs::write(dir.path().join("migrations/0009_x/up.sql"), "SELECT 1;").unwrap();
    tenanted(dir.path())
        .args(["migration", "new", "y"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("0004"));
    assert!(!dir.path().join("migrations/0010_y").exists());
}

#[test]
fn migrate_dry_run_shows_what_would_run_and_touches_nothing() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["migrate", "--dry-run"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(
                "acme: 2 → 4: would apply 0003_create_changes, 0004_add_item_position",
            )
            .and(predicate::str::contains("2/2 tenant(s) would change")),
        );
    tenanted(dir.path())
        .args([
            "migrate",
            "--dry-run",
            "--to",
            "1",
            "--tenant",
            "acme",
            "--json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            r#""migrations":["0002_create_items"]"#,
        ));
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("0/2 tenants current"));
}

/// `-q` prints only failures and summaries: `create -q` and `prepare -q`
/// printed a line for every tenant made (an outside probe).
#[test]
fn quiet_create_and_prepare_print_no_line_a_tenant() {
    let dir = workspace(4);
    let created = tenanted(dir.path())
        .args(["-q", "create", "acme", "globex"])
        .assert()
        .success();
    assert_eq!(String::from_utf8_lossy(&created.get_output().stdout), "");
    let prepared = tenanted(dir.path())
        .args(["-q", "prepare", "acme", "hooli"])
        .assert()
        .success();
    let said = String::from_utf8_lossy(&prepared.get_output().stdout).into_owned();
    assert!(!said.contains("created hooli"), "{said}");
    assert!(said.contains("1 created"), "{said}");
    tenanted(dir.path())
        .args(["-q", "create", "acme"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
}

/// An older binary's dry run says a tenant ahead of its migrations would
/// fail, as the run then refuses it, and counts it as such (an outside
/// probe: "3 → 1: would undo (2 steps down)" with no migration listed,
/// exit 0, while the run failed the tenant; failures were summed up as
/// "unreadable").
#[test]
fn a_dry_run_of_an_older_binary_says_a_tenant_ahead_of_it_would_fail() {
    let dir = workspace(3);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 2);
    tenanted(dir.path())
        .args(["migrate", "--dry-run", "--to", "1"])
        .assert()
        .stdout(
            predicate::str::contains("acme: would fail")
                .and(predicate::str::contains("only knows 2 migration"))
                .and(predicate::str::contains("2 would fail"))
                .and(predicate::str::contains("would undo").not())
                // The CLI's way out, not the library's call (a probe).
                .and(predicate::str::contains("--migrations NEWER_FOLDER"))
                .and(predicate::str::contains("migrate_tenant_to").not()),
        );
    tenanted(dir.path())
        .args(["migrate", "--to", "1", "--yes"])
        .assert()
        .code(1);
}

/// A tenant a newer release migrated is said to an older `tenanted` with
/// the commands that deal with it, not the library's "deploy the newer
/// code" (an outside probe).
#[test]
fn a_tenant_ahead_of_the_migrations_is_said_with_the_commands_out() {
    let dir = workspace(3);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    set_migrations(dir.path(), 1);
    let way_out = || {
        predicate::str::contains("at schema version 3")
            .and(predicate::str::contains("only knows 1 migration"))
            .and(predicate::str::contains(
                "`tenanted rollback acme --steps 2 --migrations NEWER_FOLDER`",
            ))
            .and(predicate::str::contains("deploy the newer code").not())
    };
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes"])
        .assert()
        .code(1)
        .stderr(way_out());
    tenanted(dir.path())
        .args(["migrate", "--tenant", "acme"])
        .assert()
        .code(1)
        .stdout(way_out());
}

#[test]
fn redo_runs_the_last_migration_down_and_up() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["redo", "acme"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    tenanted(dir.path())
        .args(["redo", "acme", "--yes"])
        .assert()
        .success()
        .stdout("redid acme's 0004_add_item_position: 4 → 3 → 4\n");
}

#[test]
fn status_for_one_tenant() {
    let dir = workspace_with(&["acme", "globex"]);
    tenanted(dir.path())
        .args(["status", "--tenant", "acme"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("acme: ✓ up to date")
                .and(predicate::str::contains("globex").not())
                .and(predicate::str::contains("1/1 tenants current")),
        );
    tenanted(dir.path())
        .env("TENANTED_TENANT", "nobody")
        .arg("status")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tenant nobody does not exist"));
}

#[test]
fn prepare_creates_the_missing_and_migrates_the_rest() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .args(["prepare", "acme", "globex"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("created globex")
                .and(predicate::str::contains("✓ acme: 2 → 4"))
                .and(predicate::str::contains("1 created; 2/2 tenants migrated")),
        );
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .success();
}

#[test]
fn a_root_laid_out_otherwise_is_refused_not_listed_empty() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["--buckets", "16", "list"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--buckets 256"));
    tenanted(dir.path())
        .args(["--buckets", "16", "create", "acme"])
        .assert()
        .failure();
    // No second acme was made under the other layout.
    let acmes = common::files_under(&dir.path().join("tenants"))
        .into_iter()
        .filter(|f| f.ends_with("acme/main.sqlite3"))
        .count();
    assert_eq!(acmes, 1);
}

/// A root made with another layout is opened with it when no
/// `--template` or `--buckets` is given: the CLI reads the layout the root
/// records. One given otherwise is still refused.
#[test]
fn commands_without_a_layout_use_the_roots_recorded_one() {
    let dir = workspace(4);
    let flat = [
        "--template",
        "%{bucket}/%{tenant}.sqlite3",
        "--buckets",
        "16",
    ];
    tenanted(dir.path())
        .args(flat)
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("acme\nglobex\n");
    tenanted(dir.path())
        .args(["create", "initech"])
        .assert()
        .success();
    assert!(
        common::files_under(&dir.path().join("tenants"))
            .iter()
            .any(|f| f.ends_with("/initech.sqlite3")),
        "initech was made in the recorded layout"
    );
    tenanted(dir.path())
        .args(["status", "--check"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["--buckets", "8", "list"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--buckets 16"));
}

#[test]
fn an_edited_migration_is_refused_until_accepted_at_the_cli() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let up = dir.path().join("migrations/0004_add_item_position/up.sql");
    let sql = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, format!("-- reviewed\n{sql}")).unwrap();
    tenanted(dir.path())
        .args(["status"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--accept-migration-changes"));
    tenanted(dir.path())
        .args(["--accept-migration-changes", "create", "globex"])
        .assert()
        .success();
    tenanted(dir.path()).args(["status"]).assert().success();
    // `migrate` over a fleet already current records an accepted change
    // too (it wrote nothing, and so recorded nothing: an outside probe).
    std::fs::write(&up, format!("-- reviewed twice\n{sql}")).unwrap();
    tenanted(dir.path())
        .args(["--accept-migration-changes", "migrate"])
        .assert()
        .success();
    tenanted(dir.path()).args(["status"]).assert().success();
}

#[test]
fn backup_restore_and_replace_at_the_cli() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let root = dir.path().join("tenants");
    let migrations = tenanted::Migrations::from_dir(dir.path().join("migrations")).unwrap();
    let m = tenanted::TenantManager::builder(tenanted::RootConfig::new(&root), migrations)
        .build()
        .unwrap();
    let add_user = |email: &str| {
        m.connection("acme")
            .unwrap()
            .execute("INSERT INTO users (email, name) VALUES (?1, 'x')", [email])
            .unwrap();
    };
    add_user("kept@example.com");
    let backups = dir.path().join("backups");
    let out = tenanted(dir.path())
        .args(["backup", "--json", "--to"])
        .arg(&backups)
        .assert()
        .success();
    assert_eq!(
        json_of(&out.get_output().stdout)["tenants"][0]["tenant"],
        "acme"
    );
    let file = tenanted::RootConfig::new(&backups)
        .database_path("acme")
        .unwrap();
    add_user("lost@example.com");

    // Refused without --replace; --replace needs --yes off a terminal.
    tenanted(dir.path())
        .args(["restore", "acme", "--from"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    tenanted(dir.path())
        .args(["restore", "acme", "--replace", "--from"])
        .arg(&file)
        .assert()
        .code(2);
    tenanted(dir.path())
        .args(["restore", "acme", "--replace", "--yes", "--from"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("replaced acme"));
    let emails: Vec<String> = m
        .connection("acme")
        .unwrap()
        .prepare("SELECT email FROM users")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(emails, ["kept@example.com"]);
}

#[test]
fn litestream_config_describes_the_roots_layout() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let out = tenanted(dir.path())
        .args(["litestream-config", "--replica-url", "s3://backups/tenants"])
        .assert()
        .success();
    let yaml = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(yaml.contains("pattern: \"main.sqlite3\""), "{yaml}");
    // Where to run it, in the file and on stderr: a Litestream run from
    // the root or above stops replicating when a tenant is created.
    assert!(yaml.contains("working directory"), "{yaml}");
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        said.contains("working directory outside the root"),
        "{said}"
    );
    // Recorded in the root: encryption is refused there from now on.
    assert!(
        dir.path()
            .join("tenants/.tenanted/litestream-directory-mode")
            .is_file()
    );
    assert!(
        yaml.contains("recursive: true") && yaml.contains("watch: true"),
        "{yaml}"
    );
    assert!(yaml.contains("url: \"s3://backups/tenants\""), "{yaml}");
    let root = dir.path().join("tenants");
    assert!(
        yaml.contains(&format!("dir: \"{}\"", root.display())),
        "{yaml}"
    );
    assert!(!yaml.contains("endpoint"), "{yaml}");
    // An S3-compatible store: endpoint, path-style addressing, region.
    let out = tenanted(dir.path())
        .args(["litestream-config", "--replica-url", "s3://backups/tenants"])
        .args(["--endpoint", "http://127.0.0.1:8333", "--force-path-style"])
        .args(["--region", "eu-west-1"])
        .assert()
        .success();
    let yaml = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for line in [
        "endpoint: \"http://127.0.0.1:8333\"",
        "force-path-style: true",
        "region: \"eu-west-1\"",
    ] {
        assert!(yaml.contains(line), "{line} missing:\n{yaml}");
    }
    // A root that is not there is refused, as by every other command.
    tenanted(&dir.path().join("nonexistent"))
        .args(["litestream-config", "--replica-url", "s3://backups/tenants"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
}

// ----- issue 26: operator safety and the first hour --------------------------

/// Each tenant's version, as `status --json` reads it.
fn versions(dir: &Path) -> Vec<(String, u64)> {
    let out = tenanted(dir).args(["status", "--json"]).output().unwrap();
    let status = json_of(&out.stdout);
    let rows = status["tenants"].as_array().unwrap();
    let row = |t: &Value| {
        (
            t["tenant"].as_str().unwrap().to_owned(),
            t["version"].as_u64().unwrap(),
        )
    };
    rows.iter().map(row).collect()
}

#[test]
fn migrating_below_the_current_version_asks_and_dry_run_shows_who_goes_down() {
    let dir = workspace_with(&["acme", "globex"]);
    tenanted(dir.path())
        .args(["migrate", "--to", "0"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(
                "migrate --to 0 takes 2 tenant(s) down (8 down migration(s) in all)",
            )
            .and(predicate::str::contains("pass --yes")),
        );
    assert_eq!(
        versions(dir.path()),
        [("acme".into(), 4), ("globex".into(), 4)],
        "nothing ran"
    );
    tenanted(dir.path())
        .args(["migrate", "--to", "2", "--dry-run"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(
                "acme: 4 → 2: would undo 0004_add_item_position, 0003_create_changes (2 steps down)",
            )
            .and(predicate::str::contains("2 down by 4 step(s)")),
        );
    let out = tenanted(dir.path())
        .args(["migrate", "--to", "2", "--dry-run", "--json"])
        .output()
        .unwrap();
    let plan = json_of(&out.stdout);
    assert_eq!(plan["totals"]["down"], 2);
    assert_eq!(plan["totals"]["steps_down"], 4);
    assert_eq!(plan["tenants"][1]["would"], "undo");
    tenanted(dir.path())
        .args(["migrate", "--to", "2", "--yes"])
        .assert()
        .success();
    assert_eq!(
        versions(dir.path()),
        [("acme".into(), 2), ("globex".into(), 2)]
    );
    // Nothing goes down: nothing to confirm.
    tenanted(dir.path())
        .args(["migrate", "--to", "3"])
        .assert()
        .success();
}

/// A dry run that would undo a migration without a down script says
/// the tenant would fail, as the run then does (an outside probe: the
/// dry run said "would undo", the run failed every tenant).
#[test]
fn a_dry_run_down_through_a_migration_without_down_sql_says_it_would_fail() {
    let dir = workspace_with(&["acme"]);
    let down = dir
        .path()
        .join("migrations/0004_add_item_position/down.sql");
    std::fs::remove_file(down).unwrap();
    let out = tenanted(dir.path())
        .args(["migrate", "--to", "3", "--dry-run", "--json"])
        .output()
        .unwrap();
    let plan = json_of(&out.stdout);
    assert_eq!(plan["tenants"][0]["would"], "fail", "{plan}");
    tenanted(dir.path())
        .args(["migrate", "--to", "3", "--dry-run"])
        .assert()
        .stdout(
            predicate::str::contains("acme: would fail")
                .and(predicate::str::contains("0004_add_item_position")),
        );
    tenanted(dir.path())
        .args(["migrate", "--to", "3", "--yes"])
        .assert()
        .failure();
    assert_eq!(versions(dir.path()), [("acme".into(), 4)]);
}

#[test]
fn tenanted_tenant_scopes_migrate_and_backup_and_every_help_shows_it() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    set_migrations(dir.path(), 4);
    tenanted(dir.path())
        .env("TENANTED_TENANT", "acme")
        .args(["migrate", "--dry-run"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("acme: 2 → 4").and(predicate::str::contains("globex").not()),
        );
    tenanted(dir.path())
        .env("TENANTED_TENANT", "acme")
        .arg("migrate")
        .assert()
        .success()
        .stdout(predicate::str::contains("1/1 tenants migrated"));
    assert_eq!(
        versions(dir.path()),
        [("acme".into(), 4), ("globex".into(), 2)]
    );
    // A canary the Rails way cannot roll back the fleet.
    tenanted(dir.path())
        .env("TENANTED_TENANT", "acme")
        .args(["migrate", "--to", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("takes 1 tenant(s) down"));
    let backups = dir.path().join("backups");
    tenanted(dir.path())
        .env("TENANTED_TENANT", "globex")
        .args(["backup", "--to"])
        .arg(&backups)
        .assert()
        .success();
    let copies = tenanted::RootConfig::new(&backups).tenants().unwrap();
    let names: Vec<String> = copies.map(|t| t.unwrap().as_str().to_owned()).collect();
    assert_eq!(names, ["globex"]);
    for command in [
        "create", "destroy", "exists", "migrate", "status", "rollback", "redo", "prepare",
        "backup", "restore",
    ] {
        tenanted(dir.path())
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("[env: TENANTED_TENANT="));
    }
}

/// A workspace at version 2 with `good` tenants and `bad` ones on which
/// migration 3 fails (a table it creates is there already).
fn fleet_with_bad_tenants(good: &[&str], bad: &[&str]) -> tempfile::TempDir {
    let dir = workspace(2);
    tenanted(dir.path())
        .arg("create")
        .args(good)
        .args(bad)
        .assert()
        .success();
    let root = tenanted::RootConfig::new(dir.path().join("tenants"));
    for name in bad {
        rusqlite::Connection::open(root.database_path(name).unwrap())
            .unwrap()
            .execute_batch("CREATE TABLE changes (x);")
            .unwrap();
    }
    set_migrations(dir.path(), 4);
    dir
}

#[test]
fn a_failed_canary_stops_the_rollout_before_the_fleet() {
    let dir = fleet_with_bad_tenants(&["a1", "a2", "a3"], &["bad"]);
    tenanted(dir.path())
        .args(["migrate", "--canary", "bad", "--canary", "a1"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("canary: 1/2 tenants migrated"))
        .stderr(predicate::str::contains(
            "a canary failed: the rest of the fleet was not started",
        ));
    let at: Vec<u64> = versions(dir.path()).into_iter().map(|(_, v)| v).collect();
    assert_eq!(at, [4, 2, 2, 2], "only the good canary a1 moved");
    // Canaries that pass: then the fleet.
    let out = tenanted(dir.path())
        .args(["migrate", "--sample", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad still fails in the fleet stage"
    );
    let report = json_of(&out.stdout);
    if report["stopped_at_canary"] == true {
        // The sample took bad: nothing beyond the canaries ran.
        assert_eq!(report["totals"]["tenants"], 2);
    } else {
        assert_eq!(report["canary"]["totals"]["tenants"], 2);
        assert_eq!(report["totals"]["failed"], 1);
    }
}

#[test]
fn max_failures_stops_the_run_and_says_how_much_ran() {
    let dir = fleet_with_bad_tenants(&["good"], &["b1", "b2", "b3", "b4"]);
    tenanted(dir.path())
        .args([
            "migrate",
            "--canary",
            "good",
            "--max-failures",
            "2",
            "--jobs",
            "1",
        ])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("canary: 1/1 tenants migrated")
                // Taken in walk order: `good` (already there) may come
                // before the failures or be among the unstarted.
                .and(predicate::str::contains(
                    " of 5 tenants migrated to version 4",
                ))
                .and(predicate::str::contains("2 failed"))
                .and(predicate::str::contains(
                    "not started: stopped after 2 failures",
                )),
        );
    let out = tenanted(dir.path())
        .args(["migrate", "--max-failures", "1", "--jobs", "1", "--json"])
        .output()
        .unwrap();
    let report = json_of(&out.stdout);
    assert_eq!(report["stopped_by_failures"], true);
    assert_eq!(report["totals"]["failed"], 1);
    tenanted(dir.path())
        .args(["migrate", "--max-failures", "0"])
        .assert()
        .code(2);
}

#[test]
fn an_edited_down_script_blocks_nothing_and_accepting_records_on_every_command() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // A down script is not what was applied: editing it changes nothing.
    let down = dir.path().join("migrations/0002_create_items/down.sql");
    let sql = std::fs::read_to_string(&down).unwrap();
    std::fs::write(&down, format!("-- reviewed: drops the table\n{sql}")).unwrap();
    tenanted(dir.path()).arg("status").assert().success();
    tenanted(dir.path()).arg("migrate").assert().success();
    // An edited up script is a change; accepting it at `status` records it
    // as it does at `migrate`: the next plain run passes.
    let up = dir.path().join("migrations/0004_add_item_position/up.sql");
    let sql = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, format!("-- reviewed\n{sql}")).unwrap();
    tenanted(dir.path()).arg("status").assert().code(1).stderr(
        predicate::str::contains("its up.sql was edited")
            .and(predicate::str::contains("--accept-migration-changes"))
            .and(predicate::str::contains("TenantManagerBuilder").not()),
    );
    tenanted(dir.path())
        .args(["--accept-migration-changes", "status"])
        .assert()
        .success();
    tenanted(dir.path()).arg("status").assert().success();
    // Where it could record nothing, it is refused, not ignored.
    tenanted(dir.path())
        .args(["--accept-migration-changes", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not read them"));
}

#[test]
fn limit_suspend_and_resume_refuse_the_accept_flag_and_change_nothing() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["suspend", "acme", "--read-only", "--reason", "audit"])
        .assert()
        .success();
    // None of them reads the migrations: the flag could record nothing,
    // so it is refused as on `list`, and the command is not run.
    for args in [
        &["limit", "set", "acme", "64K"][..],
        &["limit", "show", "acme"],
        &["limit", "clear", "acme"],
        &["suspend", "acme", "--blocked", "--reason", "unpaid"],
        &["resume", "acme"],
    ] {
        tenanted(dir.path())
            .arg("--accept-migration-changes")
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("does not read them"));
    }
    tenanted(dir.path())
        .args(["limit", "show", "acme"])
        .assert()
        .success()
        .stdout("acme: size limit unlimited (default), suspended (read-only): audit\n");
}

#[test]
fn the_replication_commands_refuse_the_accept_flag_and_do_nothing() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let replica = dir.path().join("replica");
    let url = format!("file://{}", replica.display());
    for args in [
        &["replicate", "--replica-url", url.as_str()][..],
        &["erase-replicas"],
        &["replication-status"],
    ] {
        tenanted(dir.path())
            .arg("--accept-migration-changes")
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("does not read them"));
    }
    // Nothing recorded, nothing replicated.
    assert!(!replica.exists());
}

/// Writes a migration directory `name` with `up` (and a down script).
fn add_migration(dir: &Path, name: &str, up: &str) {
    let target = dir.join("migrations").join(name);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("up.sql"), up).unwrap();
    std::fs::write(target.join("down.sql"), "SELECT 1;").unwrap();
}

#[test]
fn timestamped_migrations_run_in_order_and_stray_files_are_skipped_with_a_warning() {
    let dir = workspace(2);
    std::fs::write(dir.path().join("migrations/README.md"), "# our migrations").unwrap();
    std::fs::create_dir(dir.path().join("migrations/notes")).unwrap();
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("README.md").and(predicate::str::contains("not a migration")),
        );
    add_migration(
        dir.path(),
        "20261205120000_add_tags",
        "CREATE TABLE tags (x);",
    );
    tenanted(dir.path())
        .arg("migrate")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "acme: 2 → 3 (20261205120000_add_tags)",
        ));
    // `migration new` follows the folder's style: the last is timestamped.
    let out = tenanted(dir.path())
        .args(["migration", "new", "add_colour"])
        .output()
        .unwrap();
    let created = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = created
        .split('/')
        .next_back()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (digits, rest) = name.split_once('_').unwrap();
    assert_eq!((digits.len(), rest), (14, "add_colour"), "{created}");
    assert!(digits > "20261205120000", "{created}");
    std::fs::remove_dir_all(dir.path().join("migrations").join(&name)).unwrap();
    // A branch brings an older timestamp after a newer one ran: refused,
    // saying how to fix it, never run out of order.
    add_migration(
        dir.path(),
        "20261201090000_add_notes",
        "CREATE TABLE notes (x);",
    );
    tenanted(dir.path()).arg("migrate").assert().code(1).stderr(
        predicate::str::contains("migration 3 in --migrations is 20261201090000_add_notes")
            .and(predicate::str::contains("inserted before it")),
    );
    std::fs::remove_dir_all(dir.path().join("migrations/20261201090000_add_notes")).unwrap();
    // Two migrations with one timestamp (two branches, one second).
    add_migration(
        dir.path(),
        "20261205120000_add_labels",
        "CREATE TABLE labels (x);",
    );
    tenanted(dir.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has the number of"));
}

#[test]
fn migration_new_can_start_a_folder_with_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    tenanted(dir.path())
        .args(["migration", "new", "first", "--timestamp"])
        .assert()
        .success();
    let names: Vec<String> = std::fs::read_dir(dir.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].ends_with("_first") && names[0].len() == 14 + "_first".len(),
        "{names:?}"
    );
    let migrations = tenanted::Migrations::from_dir(dir.path().join("migrations")).unwrap();
    assert_eq!(migrations.latest_version(), 1);
}

#[test]
fn restore_onto_an_existing_tenant_names_the_flags_restore_has() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let backups = dir.path().join("backups");
    backup_to(dir.path(), &backups);
    let file = tenanted::RootConfig::new(&backups)
        .database_path("acme")
        .unwrap();
    tenanted(dir.path())
        .args(["restore", "acme", "--from"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("pass --replace (and --yes off a terminal)")
                .and(predicate::str::contains("--if-not-exists").not()),
        );
}

#[test]
fn no_command_but_init_creates_a_root() {
    let dir = tempfile::tempdir().unwrap();
    set_migrations(dir.path(), 4);
    let root = dir.path().join("tenants");
    for args in [&["create", "acme"][..], &["prepare", "acme"]] {
        tenanted(dir.path())
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("tenanted init"));
        assert!(!root.exists(), "{args:?} made no root");
    }
    tenanted(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("created the root"));
    assert!(root.join(tenanted::INTERNAL_DIR).join("layout").is_file());
    tenanted(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("the root is ready"));
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // init on a root laid out otherwise is refused, as any command is.
    tenanted(dir.path())
        .args(["--buckets", "16", "init"])
        .assert()
        .code(2);
}

#[test]
fn exit_codes_follow_one_rule() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // 2: cannot be done as asked; nothing done.
    for args in [
        &["migrate", "--jobs", "0"][..],
        &[
            "backup",
            "--jobs",
            "0",
            "--to",
            "/tmp/never-made-by-tenanted",
        ],
        &[
            "rebuild",
            "--replica-url",
            "file:///tmp/never-read-by-tenanted",
            "--jobs",
            "0",
        ],
        &["migrate", "--to", "9"],
        &["rollback", "acme", "--steps", "99", "--yes"],
        &["rollback", "acme", "--yes", "--steps", "0"],
        &["create", "bad name"],
        &["--buckets", "16", "status"],
        &["destroy", "acme"],
    ] {
        tenanted(dir.path()).args(args).assert().code(2);
    }
    assert!(!Path::new("/tmp/never-made-by-tenanted").exists());
    // A backup inside the root, a restore from no backup.
    let inside = dir.path().join("tenants/bk");
    tenanted(dir.path())
        .args(["backup", "--to"])
        .arg(&inside)
        .assert()
        .code(2);
    assert!(!inside.exists());
    // Nor the directories it would have made on the way (an outside
    // probe found `--into ROOT/nightly/deep` left them in the root).
    let deep = dir.path().join("tenants/nightly/deep");
    tenanted(dir.path())
        .args(["backup", "--keep", "1", "--into"])
        .arg(&deep)
        .assert()
        .code(2);
    assert!(!dir.path().join("tenants/nightly").exists());
    let not_a_backup = dir.path().join("not-a-backup");
    std::fs::write(&not_a_backup, b"no database").unwrap();
    tenanted(dir.path())
        .args(["restore", "acme", "--replace", "--yes", "--from"])
        .arg(&not_a_backup)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot restore tenant acme"));
    std::fs::write(dir.path().join("migrations/0009_gap"), "").unwrap();
    tenanted(dir.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad migrations"));
    std::fs::remove_file(dir.path().join("migrations/0009_gap")).unwrap();
    // 1: the command ran and something failed.
    tenanted(dir.path())
        .args(["destroy", "nobody", "--yes"])
        .assert()
        .code(1);
    std::fs::remove_dir_all(dir.path().join("tenants")).unwrap();
    tenanted(dir.path()).arg("list").assert().code(1);
}

#[test]
fn create_destroy_and_prepare_speak_json() {
    let dir = workspace(4);
    let out = tenanted(dir.path())
        .args(["create", "acme", "globex", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let created = json_of(&out.stdout);
    assert_eq!(
        created["totals"],
        serde_json::json!({ "created": 2, "existed": 0, "failed": 0 })
    );
    assert_eq!(created["tenants"][0]["tenant"], "acme");
    assert_eq!(created["tenants"][0]["result"], "created");
    let out = tenanted(dir.path())
        .args(["create", "acme", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let again = json_of(&out.stdout);
    assert_eq!(again["tenants"][0]["result"], "failed");
    assert!(
        again["tenants"][0]["error"]
            .as_str()
            .unwrap()
            .contains("--if-not-exists")
    );
    let out = tenanted(dir.path())
        .args(["prepare", "acme", "initech", "--json"])
        .output()
        .unwrap();
    let prepared = json_of(&out.stdout);
    assert_eq!(prepared["created"], serde_json::json!(["initech"]));
    assert_eq!(prepared["migration"]["totals"]["tenants"], 2);
    // A name that does not exist refuses the whole destroy, said as JSON.
    let out = tenanted(dir.path())
        .args(["destroy", "globex", "nobody", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let refused = json_of(&out.stdout);
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("tenant nobody does not exist"), "{refused}");
    tenanted(dir.path())
        .args(["exists", "globex"])
        .assert()
        .code(0);
    let out = tenanted(dir.path())
        .args(["destroy", "globex", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let destroyed = json_of(&out.stdout);
    assert_eq!(
        destroyed["totals"],
        serde_json::json!({ "destroyed": 1, "failed": 0 })
    );
    assert_eq!(destroyed["tenants"][0]["result"], "destroyed");
}

/// The lines `migrate` and `backup` print for a failed tenant give the
/// CLI's advice, not the library's (the probe saw `migrate --tenant nosuch`
/// say "create it with create_tenant").
#[test]
fn failed_tenants_lines_advise_commands_not_library_calls() {
    let dir = workspace_with(&["acme", "globex"]);
    tenanted(dir.path())
        .args(["migrate", "--tenant", "nosuch"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("✗ nosuch: FAILED: tenant nosuch does not exist")
                .and(predicate::str::contains("`tenanted create nosuch`"))
                .and(predicate::str::contains("create_tenant").not()),
        );
    let db = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("globex")
        .unwrap();
    std::fs::write(&db, vec![7u8; 8192]).unwrap();
    tenanted(dir.path())
        .args(["backup", "--to"])
        .arg(dir.path().join("backup"))
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("✗ globex: tenant globex is damaged")
                .and(predicate::str::contains(
                    "`tenanted restore globex --from FILE --replace --yes`",
                ))
                .and(predicate::str::contains("restore_tenant_opts").not()),
        );
}

/// A tenant named on the command line that does not exist is an error
/// before anything is asked or done (the probe's misc_findings): `destroy
/// a nosuch c` destroyed a and c, and `backup --tenant nosuch` exited 0
/// calling it "gone: destroyed during the run".
#[test]
fn a_named_tenant_that_does_not_exist_is_refused_before_anything_is_done() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "a", "b", "c"])
        .assert()
        .success();
    let missing = || {
        predicate::str::contains("tenant nosuch does not exist")
            .and(predicate::str::contains("`tenanted list`"))
    };
    tenanted(dir.path())
        .args(["destroy", "a", "nosuch", "c", "--yes"])
        .assert()
        .code(1)
        .stderr(missing().and(predicate::str::contains("nothing was destroyed")));
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("a\nb\nc\n");
    for tenants in [&["nosuch"][..], &["a", "nosuch"]] {
        let to = dir.path().join(format!("backup-{}", tenants.len()));
        let mut cmd = tenanted(dir.path());
        cmd.arg("backup");
        for t in tenants {
            cmd.args(["--tenant", t]);
        }
        cmd.arg("--to")
            .arg(&to)
            .assert()
            .code(1)
            .stderr(missing().and(predicate::str::contains("nothing was backed up")));
        assert!(!to.exists(), "no backup directory for a refused run");
    }
}

/// `tenanted backup --to to` of `dir`'s root, which must succeed.
fn backup_to(dir: &Path, to: &Path) {
    tenanted(dir)
        .args(["backup", "--to"])
        .arg(to)
        .assert()
        .success();
}

/// The runs `backup --into` made under `dir`, sorted.
fn runs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn backups_rotate_and_never_prune_the_only_good_copy_of_a_tenant() {
    let dir = workspace_with(&["acme", "globex"]);
    let to = dir.path().join("once");
    backup_to(dir.path(), &to);
    tenanted(dir.path())
        .args(["backup", "--to"])
        .arg(&to)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "exists already: a backup never overwrites one",
        ));

    let into = dir.path().join("backups");
    // Three old runs, as earlier days left them: the oldest holds the only
    // copy of a tenant since destroyed.
    for (stamp, tenants) in [
        ("20200101T000000Z", &["acme", "globex", "gone"][..]),
        ("20200102T000000Z", &["acme", "globex"]),
        ("20200103T000000Z", &["acme"]),
    ] {
        let run = into.join(stamp);
        tenanted(dir.path())
            .args(["create"])
            .args(tenants.iter().filter(|t| **t == "gone"))
            .arg("--if-not-exists")
            .arg("acme")
            .assert()
            .success();
        let mut backup = tenanted(dir.path());
        backup.args(["backup", "--to"]).arg(&run);
        for t in tenants {
            backup.args(["--tenant", t]);
        }
        backup.assert().success();
        if tenants.contains(&"gone") {
            tenanted(dir.path())
                .args(["destroy", "gone", "--yes"])
                .assert()
                .success();
        }
    }
    let out = tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .args(["--keep", "2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report = json_of(&out.stdout);
    let kept = &report["pruned"]["kept"];
    assert_eq!(
        kept[0]["only_copy_of"],
        serde_json::json!(["gone"]),
        "{report}"
    );
    let left = runs(&into);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], "20200101T000000Z", "the only copy of gone is kept");
    assert_eq!(
        left[1], "20200103T000000Z",
        "the newest old run is kept (--keep 2)"
    );
    assert!(left[2].as_str() > "2026", "this run: {left:?}");
    assert_eq!(report["pruned"]["removed"].as_array().unwrap().len(), 1);
    // --keep-days keeps the young; nothing here is younger than a day but
    // this run, which is always kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .args(["--keep-days", "1"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("kept")
                .and(predicate::str::contains("only good copy of gone")),
        );
    let left = runs(&into);
    assert_eq!(left.len(), 3, "the two runs of today and gone's: {left:?}");
    assert_eq!(left[0], "20200101T000000Z");
    tenanted(dir.path())
        .args(["backup", "--to"])
        .arg(dir.path().join("x"))
        .args(["--keep", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("rotate the runs of --into"));
    assert!(!dir.path().join("x").exists());
}

/// What an outside probe of rotation found, each refused or mended: a
/// `--no-verify` run's unchecked copies took the place of a damaged
/// tenant's last good one; a root inside `--into` was pruned as a run; a
/// link named like a run covered its target's copies, and the target was
/// pruned; a FIFO as a run's record held the prune for good; a huge
/// `--keep-days` kept nothing; anything named `.pruning-*` was removed.
#[test]
fn rotation_refuses_unchecked_copies_and_prunes_only_what_it_made() {
    let dir = workspace_with(&["acme", "globex"]);
    let into = dir.path().join("backups");
    let backup_into = |extra: &[&str]| {
        let mut cmd = tenanted(dir.path());
        cmd.args(["backup", "--into"]).arg(&into).args(extra);
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    };
    backup_into(&["--keep", "1", "--no-verify"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--no-verify cannot be combined"));
    assert!(!into.exists(), "nothing made");
    // A root named like a run inside --into (the root beside the runs,
    // as `dir`'s root is beside `backups`, stays allowed).
    let outer = dir.path().join("outer");
    let named_like_a_run = outer.join("20200101T000000Z");
    let on = |root: &Path, args: &[&str]| {
        let mut cmd = Command::cargo_bin("tenanted").unwrap();
        cmd.env_remove("RUST_LOG").arg("--root").arg(root);
        cmd.arg("--migrations").arg(dir.path().join("migrations"));
        cmd.args(args);
        cmd
    };
    on(&named_like_a_run, &["init"]).assert().success();
    on(&named_like_a_run, &["create", "initech"])
        .assert()
        .success();
    let outer_arg = outer.display().to_string();
    on(
        &named_like_a_run,
        &["backup", "--into", &outer_arg, "--keep", "1"],
    )
    .assert()
    .code(2)
    .stderr(predicate::str::contains("is inside"));
    assert!(named_like_a_run.join(".tenanted/layout").is_file());
    // An old run holding acme, which is then destroyed; a link named like
    // the newest run pointing at it covers nothing.
    let old = into.join("20200101T000000Z");
    backup_to(dir.path(), &old);
    let link = into.join("29991231T235959Z");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    std::fs::create_dir(into.join(".pruning-mine")).unwrap();
    tenanted(dir.path())
        .args(["destroy", "acme", "--yes"])
        .assert()
        .success();
    backup_into(&["--keep", "1"]).assert().success();
    assert!(old.join(".tenanted").is_dir(), "acme's only copy is kept");
    assert!(link.symlink_metadata().is_ok(), "the link is no run");
    assert!(into.join(".pruning-mine").is_dir(), "not a prune's");
    // Every run kept by a --keep-days beyond the clock.
    let before = runs(&into).len();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup_into(&["--keep-days", "18446744073709551615"])
        .assert()
        .success();
    assert_eq!(runs(&into).len(), before + 1, "{:?}", runs(&into));
    // A FIFO as a run's record of incarnations: that run is not judged
    // (exit 1, said), and the prune ends.
    let lineage = old.join(".tenanted/lineage");
    std::fs::remove_file(&lineage).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&lineage)
        .status()
        .unwrap();
    assert!(made.success());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup_into(&["--keep", "1"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("not a regular file"));
    assert!(old.is_dir());
}

/// A run cut short (Ctrl-C, a kill) holds some tenants only: it is not
/// one of the newest N, so the whole runs before it stay (an outside
/// probe saw `--keep 2` keep the partial run and prune a whole one). Runs
/// made before runs recorded this (no record at all) still count (a
/// review: read as cut short, all of them went at the first prune).
#[test]
fn a_run_cut_short_is_not_one_of_the_runs_kept() {
    let dir = workspace_with(&["acme", "globex"]);
    let into = dir.path().join("backups");
    let stamps = ["20210101T000000Z", "20210102T000000Z", "20210103T000000Z"];
    for stamp in stamps {
        backup_to(dir.path(), &into.join(stamp));
    }
    // As a run killed midway leaves it: its record, and some tenants only.
    let cut = into.join(stamps[2]);
    std::fs::write(cut.join(".tenanted/unfinished"), b"").unwrap();
    std::fs::remove_dir_all(cut.join(runs(&cut)[0].as_str())).unwrap();
    tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .args(["--keep", "3"])
        .assert()
        .success();
    let left = runs(&into);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[..2], stamps[..2], "the whole runs are kept");
    assert!(
        !left[2].starts_with("2021"),
        "the cut run is pruned: {left:?}"
    );
    assert!(!into.join(&left[2]).join(".tenanted/unfinished").exists());
}

/// Backups started in the same second get runs of their own at once
/// (`…Z`, `…Z-2`, ...): each used to wait for a second no other run had
/// taken, and after about five of them the rest failed with "every name
/// was taken" (an outside probe). The newest N counts them in the order
/// they were made.
#[test]
fn backups_started_together_each_get_a_run() {
    let dir = workspace_with(&["acme"]);
    let into = dir.path().join("backups");
    let bin = assert_cmd::cargo::cargo_bin("tenanted");
    let started: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(&bin)
                .env_remove("RUST_LOG")
                .arg("--root")
                .arg(dir.path().join("tenants"))
                .args(["backup", "--into"])
                .arg(&into)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in started {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
    }
    let made = runs(&into);
    assert_eq!(made.len(), 8, "{made:?}");
    for run in &made {
        assert!(
            into.join(run)
                .join(runs(&into.join(run))[0].as_str())
                .is_dir()
        );
    }
    // A later run of a second sorts after the earlier ones: `--keep 3`
    // keeps the three newest (this one and two of the eight).
    tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .args(["--keep", "3"])
        .assert()
        .success();
    assert_eq!(runs(&into).len(), 3, "{:?}", runs(&into));
    // A run takes a place after the last one of its second, never one a
    // removed run freed (it would sort before runs made earlier: a
    // review). Planted for this second and the next few: the 70th (the
    // eight runs above took at most the 8th of theirs).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for second in now..now + 10 {
        let out = std::process::Command::new("date")
            .args(["-u", &format!("-d@{second}"), "+%Y%m%dT%H%M%SZ"])
            .output()
            .unwrap();
        let stamp = String::from_utf8(out.stdout).unwrap();
        std::fs::create_dir(into.join(format!("{}-70", stamp.trim()))).unwrap();
    }
    let before = runs(&into);
    tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .assert()
        .success();
    let made: Vec<String> = (runs(&into).into_iter())
        .filter(|r| !before.contains(r))
        .collect();
    assert!(made.len() == 1 && made[0].ends_with("Z-71"), "{made:?}");
}

/// `tenant` of `dir`'s root grown past 8 pages, nobody on it, then its
/// pages 3 to 5 overwritten behind an intact header: SQLite opens and
/// copies the file without an error.
fn damage_pages_of(dir: &Path, tenant: &str) {
    let path = tenanted::RootConfig::new(dir.join("tenants"))
        .database_path(tenant)
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE filler (b);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO filler SELECT randomblob(100) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096);
    bytes[2 * 4096..5 * 4096].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_rotation_keeps_the_older_run_when_a_tenants_copy_fails_its_check() {
    let dir = workspace_with(&["acme", "big"]);
    let into = dir.path().join("backups");
    let first = into.join("20200101T000000Z");
    backup_to(dir.path(), &first);
    damage_pages_of(dir.path(), "big");

    let (code, report) = rotate_keeping_one(dir.path(), &into);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["totals"]["succeeded"], 1, "{report}");
    let failure = &report["tenants"][1];
    assert_eq!(failure["tenant"], "big", "{report}");
    assert_eq!(failure["state"], "failed", "{report}");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("integrity_check"), "{error}");
    assert!(error.contains("tenanted restore big"), "{error}");
    // The run before is kept: it holds big's only good copy.
    let kept = &report["pruned"]["kept"];
    assert_eq!(
        kept[0]["only_copy_of"],
        serde_json::json!(["big"]),
        "{report}"
    );
    assert_eq!(runs(&into).len(), 2, "{report}");
    tenanted(dir.path())
        .args(["restore", "big", "--replace", "--yes", "--from"])
        .arg(
            tenanted::RootConfig::new(&first)
                .database_path("big")
                .unwrap(),
        )
        .assert()
        .success();

    // Without the check the copy is kept as written.
    damage_pages_of(dir.path(), "acme");
    let unchecked = dir.path().join("unchecked");
    tenanted(dir.path())
        .args(["backup", "--no-verify", "--to"])
        .arg(&unchecked)
        .assert()
        .success();
    assert!(
        tenanted::RootConfig::new(&unchecked)
            .database_path("acme")
            .unwrap()
            .is_file()
    );
}

/// `backup --into INTO --keep 1 --json` on `dir`'s root: its exit code,
/// and its report (or what it said instead).
fn rotate_keeping_one(dir: &Path, into: &Path) -> (Option<i32>, serde_json::Value) {
    let out = tenanted(dir)
        .args(["backup", "--into"])
        .arg(into)
        .args(["--keep", "1", "--json"])
        .output()
        .unwrap();
    let report = match out.stdout.is_empty() {
        true => serde_json::Value::String(stderr_of(&out)),
        false => json_of(&out.stdout),
    };
    (out.status.code(), report)
}

#[test]
fn a_prune_that_cannot_read_a_run_keeps_it_says_so_and_still_reports_the_backup() {
    let dir = workspace_with(&["acme", "globex"]);
    let into = dir.path().join("backups");
    for stamp in ["20200101T000000Z", "20200102T000000Z"] {
        backup_to(dir.path(), &into.join(stamp));
    }
    // The older run's layout record damaged by hand.
    let damaged = into.join("20200101T000000Z");
    std::fs::write(damaged.join(".tenanted/layout"), "garbage\n").unwrap();
    let (code, report) = rotate_keeping_one(dir.path(), &into);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["totals"]["succeeded"], 2, "{report}");
    let pruned = &report["pruned"];
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{report}");
    let unjudged = &pruned["unjudged"][0];
    assert_eq!(unjudged["dir"], damaged.display().to_string(), "{report}");
    assert!(
        unjudged["error"].as_str().unwrap().contains("damaged"),
        "{report}"
    );
    let left = runs(&into);
    assert_eq!(left.len(), 2, "the damaged run and this one: {left:?}");
    assert_eq!(left[0], "20200101T000000Z");
}

/// A run one of whose directories cannot be read is kept by a prune, not
/// removed with the copies it could not list (a review: a tenant's only
/// copy went with it). Run as a user whom the directory's mode stops.
#[test]
fn a_prune_keeps_a_run_it_cannot_list_whole() {
    let dir = workspace_with(&["acme", "globex"]);
    let into = dir.path().join("backups");
    let old = into.join("20200101T000000Z");
    backup_to(dir.path(), &old);
    tenanted(dir.path())
        .args(["destroy", "globex", "--yes"])
        .assert()
        .success();
    // The old run holds globex's only copy, in a bucket nobody may read.
    let copy = tenanted::RootConfig::new(&old)
        .database_path("globex")
        .unwrap();
    let bucket = copy.parent().unwrap().parent().unwrap().to_path_buf();
    if rustix::process::geteuid().is_root() {
        give_to_nobody(dir.path());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bucket, std::fs::Permissions::from_mode(0o000)).unwrap();
    let into_arg = into.display().to_string();
    let args = ["backup", "--into", &into_arg, "--keep", "1", "--json"];
    let out = unprivileged(dir.path(), &args);
    // Gone if the run was removed (what this test catches).
    let _ = std::fs::set_permissions(&bucket, std::fs::Permissions::from_mode(0o755));
    let report = json_of(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report} {}", stderr_of(&out));
    let pruned = &report["pruned"];
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        pruned["unjudged"][0]["dir"],
        old.display().to_string(),
        "{report}"
    );
    assert!(copy.is_file(), "{report}");
    assert_eq!(runs(&into).len(), 2, "{report}");
}

/// A prune that cannot list the runs (a directory this user may write
/// but not read) fails the command after the report of the run it made:
/// the error alone was said, as if nothing had been backed up (an
/// outside probe).
#[test]
fn a_prune_that_cannot_list_the_runs_still_reports_the_run_it_made() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workspace_with(&["acme"]);
    if rustix::process::geteuid().is_root() {
        give_to_nobody(dir.path());
    }
    // Whoever owns it, no one but root may list it.
    let into = dir.path().join("backups");
    std::fs::create_dir(&into).unwrap();
    std::fs::set_permissions(&into, std::fs::Permissions::from_mode(0o333)).unwrap();
    let into_arg = into.display().to_string();
    let out = unprivileged(dir.path(), &["backup", "--into", &into_arg, "--keep", "1"]);
    // With --json the failure is in the JSON too (it was only on stderr).
    let args = ["backup", "--into", &into_arg, "--keep", "1", "--json"];
    let json_out = unprivileged(dir.path(), &args);
    std::fs::set_permissions(&into, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (said, err) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    assert_eq!(out.status.code(), Some(1), "{said} {err}");
    assert!(said.contains("1/1 tenants backed up"), "{said} {err}");
    assert!(err.contains("older runs were not pruned"), "{err}");
    assert_eq!(json_out.status.code(), Some(1), "{}", stderr_of(&json_out));
    let report: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(report["totals"]["succeeded"], 1, "{report}");
    let why = report["prune_error"].as_str().unwrap_or_default();
    assert!(why.contains("cannot read"), "{report}");
    assert_eq!(runs(&into).len(), 2);
}

/// A pruned run that cannot be removed whole (a bucket this user may not
/// change) is said as such, and the command fails: it was said "kept"
/// although it had already left the runs (an outside probe), and later
/// prunes failed to remove it without a word.
#[test]
fn a_pruned_run_left_half_removed_is_said_not_called_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workspace_with(&["acme"]);
    let into = dir.path().join("backups");
    let old = into.join("20200101T000000Z");
    backup_to(dir.path(), &old);
    let copy = tenanted::RootConfig::new(&old)
        .database_path("acme")
        .unwrap();
    let bucket = copy.parent().unwrap().parent().unwrap().to_path_buf();
    if rustix::process::geteuid().is_root() {
        give_to_nobody(dir.path());
        std::os::unix::fs::chown(&bucket, Some(0), Some(0)).unwrap();
    }
    std::fs::set_permissions(&bucket, std::fs::Permissions::from_mode(0o555)).unwrap();
    let into_arg = into.display().to_string();
    let args = ["backup", "--into", &into_arg, "--keep", "1"];
    let outs = [unprivileged(dir.path(), &args), {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        unprivileged(dir.path(), &args)
    }];
    let hidden = into.join(".pruning-20200101T000000Z");
    let bucket_name = bucket.file_name().unwrap();
    let _ = std::fs::set_permissions(
        hidden.join(bucket_name),
        std::fs::Permissions::from_mode(0o755),
    );
    for out in outs {
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said} {}", stderr_of(&out));
        assert!(said.contains("could not be removed"), "{said}");
        assert!(!said.contains("✗ kept"), "{said}");
    }
    assert!(!old.exists(), "out of the runs");
}

/// A backup made by a newer release (more migrations) is refused as such,
/// exit 2, without advice to roll back a tenant this root does not have
/// (an outside probe saw `tenanted rollback NAME --steps 2` advised).
#[test]
fn a_backup_newer_than_the_code_is_refused_with_what_to_run() {
    let newer = workspace_with(&["acme"]);
    let file = newer.path().join("acme.bak");
    let backup = tenanted(newer.path())
        .args(["backup", "--to"])
        .arg(newer.path().join("run"))
        .output()
        .unwrap();
    assert!(backup.status.success(), "{}", stderr_of(&backup));
    let copy = tenanted::RootConfig::new(newer.path().join("run"))
        .database_path("acme")
        .unwrap();
    std::fs::copy(copy, &file).unwrap();
    let older = workspace(2);
    let out = tenanted(older.path())
        .args(["restore", "acme", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a newer release made it"), "{err}");
    assert!(!err.contains("rollback"), "{err}");
}

/// Every file under `dir`, and `dir`, owned by `nobody` (as `unprivileged`
/// runs the binary when the tests run as root).
fn give_to_nobody(dir: &Path) {
    let nobody = Some(65534);
    std::os::unix::fs::lchown(dir, nobody, nobody).unwrap();
    for relative in common::files_under(dir) {
        std::os::unix::fs::lchown(dir.join(relative), nobody, nobody).unwrap();
    }
}

/// A run of `backup --into` another command is still writing (it holds
/// its run's lock, as a long run does) is kept by a prune, not removed
/// under it: an outside probe saw a `--keep 1` run prune a slower run
/// that then reported 32 tenants backed up into a directory gone.
#[test]
fn a_prune_keeps_a_run_another_backup_is_still_writing() {
    let dir = workspace_with(&["acme", "globex"]);
    let into = dir.path().join("backups");
    let writing = into.join("20200101T000000Z");
    backup_to(dir.path(), &writing);
    // Its writer's lock, taken as a run takes it (flock on the directory).
    let held = std::fs::File::open(&writing).unwrap();
    held.lock().unwrap();
    let (code, report) = rotate_keeping_one(dir.path(), &into);
    assert_eq!(code, Some(0), "{report}");
    let pruned = &report["pruned"];
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        pruned["in_progress"][0],
        writing.display().to_string(),
        "{report}"
    );
    assert!(writing.join(".tenanted/layout").is_file());
    // Once it is let go, the next prune may judge it.
    drop(held);
    let out = tenanted(dir.path())
        .args(["backup", "--into"])
        .arg(&into)
        .args(["--keep", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!runs(&into).contains(&"20200101T000000Z".to_string()));
}

#[test]
fn a_tenant_in_the_wrong_bucket_is_warned_about_by_every_walk_and_fails_fleet_runs_and_status_takes_several()
 {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme", "globex", "initech"])
        .assert()
        .success();
    let root = dir.path().join("tenants");
    let bucket = |t: &str| format!("{:02x}", tenanted::bucket_of(t, 256));
    std::fs::rename(
        root.join(bucket("globex")).join("globex"),
        root.join(bucket("acme")).join("globex"),
    )
    .unwrap();
    let warned = predicate::str::contains(format!(
        "tenant globex belongs in bucket {}",
        bucket("globex")
    ));
    // A listing and a sweep warn; a fleet run reports it as a listing
    // error and exits 1, its other tenants done (tests/stray_entries.rs).
    for args in [&["list"][..], &["cleanup"]] {
        tenanted(dir.path())
            .args(args)
            .assert()
            .success()
            .stderr(warned.clone());
    }
    let skipped = format!(
        "{} was skipped",
        root.join(bucket("acme")).join("globex").display()
    );
    for args in [&["status"][..], &["migrate"]] {
        tenanted(dir.path()).args(args).assert().code(1).stdout(
            warned
                .clone()
                .and(predicate::str::contains(skipped.as_str())),
        );
    }
    // status --tenant is repeatable, as migrate --tenant is.
    tenanted(dir.path())
        .args(["status", "--tenant", "initech", "--tenant", "acme"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("initech")
                .and(predicate::str::contains("acme"))
                .and(predicate::str::contains("globex").not()),
        );
}

/// `tenanted rebuild`: the root's tenants back from a Litestream replica
/// into a fresh root, with `--json`; run again, nothing is restored twice;
/// a bad `--at` is refused with the form it wants.
#[test]
fn rebuild_brings_a_root_back_from_its_replica() {
    let Some(bin) = common::litestream::binary() else {
        return;
    };
    let dir = workspace_with(&["acme", "globex"]);
    let replica = format!("file://{}", dir.path().join("replica").display());
    let config = dir.path().join("litestream.yml");
    tenanted(dir.path())
        .args(["litestream-config", "--replica-url", &replica, "--output"])
        .arg(&config)
        .assert()
        .success();
    let log = dir.path().join("litestream.log");
    let mut replicating = common::litestream::replicate(&bin, &config, &log);
    common::litestream::wait_for_log(&log, "replicating to", 2);
    // Each tenant's first sync (its snapshot) is in the replica.
    let root = tenanted::RootConfig::new(dir.path().join("tenants"));
    let synced = |t: &str| {
        let db = root.database_path(t).unwrap();
        let relative = db.strip_prefix(root.root_dir()).unwrap();
        dir.path()
            .join("replica")
            .join(relative)
            .join("ltx/0")
            .is_dir()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(synced("acme") && synced("globex")) {
        assert!(std::time::Instant::now() < deadline, "never synced");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    common::litestream::stop(&mut replicating);

    let fresh = dir.path().join("fresh");
    let rebuild_into = |root: &Path| {
        let mut cmd = Command::cargo_bin("tenanted").unwrap();
        cmd.arg("--root").arg(root);
        cmd.arg("--migrations").arg(dir.path().join("migrations"));
        cmd.args(["rebuild", "--replica-url", &replica, "--json"])
            .arg("--litestream")
            .arg(&bin)
            .arg("--staging")
            .arg(dir.path().join("staging"));
        cmd
    };
    let rebuild = || rebuild_into(&fresh);
    let out = rebuild().assert().success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["restored"], 2, "{report}");
    assert_eq!(report["tenants"][0]["state"], "restored", "{report}");
    let out = rebuild().assert().success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        (
            report["restored"].as_u64(),
            report["already_present"].as_u64()
        ),
        (Some(0), Some(2)),
        "{report}"
    );
    Command::cargo_bin("tenanted")
        .unwrap()
        .arg("--root")
        .arg(&fresh)
        .arg("list")
        .assert()
        .success()
        .stdout("acme\nglobex\n");
    tenanted(dir.path())
        .args(["rebuild", "--replica-url", &replica, "--at", "yesterday"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2026-12-05T05:00:00Z"));
    // Less than asked for is a failure: a name the replica does not hold
    // (exit 0 before, an outside probe), or a time before every tenant.
    let other = dir.path().join("other");
    rebuild_into(&other)
        .args(["--tenant", "nosuch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("holds nothing of nosuch"));
    rebuild_into(&other)
        .args(["--at", "2020-01-01T00:00:00Z"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "none of the replica's 2 tenants existed at 2020-01-01T00:00:00",
        ));
    // A replica URL with a typo in its path holds nothing: said, exit 1.
    let typo = format!("file://{}", dir.path().join("replica-typo").display());
    std::fs::create_dir_all(dir.path().join("replica-typo")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    Command::cargo_bin("tenanted")
        .unwrap()
        .arg("--root")
        .arg(&elsewhere)
        .arg("--migrations")
        .arg(dir.path().join("migrations"))
        .args(["rebuild", "--replica-url", &typo, "--litestream"])
        .arg(&bin)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("the replica holds no tenant"));
}

/// A `--json` command whose arguments clap refuses still prints
/// `{"error": ...}` on stdout (it printed nothing there: the third outside
/// probe), with the usual exit 2; and a damaged tenant's backup line
/// advises commands, not the library's calls.
#[test]
fn refused_arguments_speak_json_and_a_damaged_tenants_line_advises_commands() {
    let dir = workspace(4);
    let out = tenanted(dir.path())
        .args(["migrate", "--json", "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = json_of(&out.stdout);
    let error = said["error"].as_str().unwrap_or_default();
    assert!(error.contains("--jobs"), "{said}");
    tenanted(dir.path())
        .args(["create", "acme", "globex"])
        .assert()
        .success();
    let db = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("acme")
        .unwrap();
    std::fs::remove_file(&db).unwrap();
    tenanted(dir.path())
        .args(["backup", "--to"])
        .arg(dir.path().join("bk"))
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("`tenanted cleanup`")
                .and(predicate::str::contains("remove_debris").not())
                .and(predicate::str::contains("create_tenant").not()),
        );
}

/// The last copy of a destroyed tenant is kept by a prune after a tenant
/// is made again under its name and backed up: the runs record which
/// incarnation of each tenant they copied (`tenanted::LINEAGE_RECORD`),
/// and the new one's copies do not cover the old one's (the third outside
/// probe: with `--keep 1` the run holding the destroyed tenant's rows was
/// pruned, exit 0, once the new tenant of that name was backed up).
#[test]
fn a_prune_keeps_a_destroyed_tenants_last_copy_after_its_name_is_reused() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme", "other"])
        .assert()
        .success();
    let root = tenanted::RootConfig::new(dir.path().join("tenants"));
    let db = root.database_path("acme").unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO users (email, name) VALUES ('ceo@acme', 'ceo')",
            [],
        )
        .unwrap();
    let into = dir.path().join("backups");
    let run = || {
        // Run names are to the second: a new run waits for the next.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        tenanted(dir.path())
            .args(["backup", "--into"])
            .arg(&into)
            .args(["--keep", "1"])
            .assert()
            .success();
    };
    run();
    tenanted(dir.path())
        .args(["destroy", "acme", "--yes"])
        .assert()
        .success();
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    run();
    run();
    // The oldest run, with the destroyed acme's row, is still there.
    let mut runs: Vec<std::path::PathBuf> = std::fs::read_dir(&into)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let old_copy = tenanted::RootConfig::new(&runs[0])
        .database_path("acme")
        .unwrap();
    let rows: i64 = rusqlite::Connection::open(&old_copy)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM users WHERE email = 'ceo@acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1, "the destroyed acme's last copy was pruned");
}

/// A build without the `encryption` feature cannot use a master key: one
/// set in the environment made plaintext tenants, exit 0, with no word.
#[cfg(not(feature = "encryption"))]
#[test]
fn a_master_key_set_for_a_build_without_encryption_stops_the_command() {
    let dir = workspace(4);
    for variable in ["TENANTED_MASTER_KEY", "TENANTED_MASTER_KEY_FILE"] {
        tenanted(dir.path())
            .env(variable, "ab".repeat(32))
            .args(["create", "acme"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("built without encryption"));
        let root = dir.path().join("tenants");
        assert!(
            !root.join(".tenanted").exists(),
            "{variable}: the root was written"
        );
    }
}

/// The root itself may be a link (README: where it lives is the user's
/// to choose); every command read its recorded layout without following
/// it, and failed with "Not a directory".
#[test]
fn a_root_that_is_a_link_is_followed() {
    let dir = workspace(3);
    let real = dir.path().join("real");
    std::fs::rename(dir.path().join("tenants"), &real).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("tenants")).unwrap();
    tenanted(dir.path()).arg("init").assert().success();
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    tenanted(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout("acme\n");
    tenanted(dir.path()).arg("status").assert().success();
    assert!(real.join(".tenanted/layout").is_file());
}

/// A name given twice on the command line is one tenant, done once: an
/// outside probe saw `create d d --json` count two creates, and `destroy
/// d d` destroy d, then fail on d.
#[test]
fn a_name_given_twice_is_one_tenant() {
    let dir = workspace(3);
    let out = tenanted(dir.path())
        .args(["create", "d", "d", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = json_of(&out.stdout);
    assert_eq!(report["totals"]["created"], 1, "{report}");
    tenanted(dir.path())
        .args(["destroy", "d", "d", "--yes"])
        .assert()
        .success();
    tenanted(dir.path()).args(["exists", "d"]).assert().code(1);
}

/// The CLI sets the same deadline (`rebuild --timeout`): an outside probe
/// found a rebuild held 30 minutes a tenant by a store that stalled
/// mid-download, with no way to shorten it from the command line.
#[test]
fn the_cli_kills_a_hung_litestream_restore_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fake = common::litestream::hanging(dir.path());
    let replica = format!("file://{}", dir.path().join("r").display());
    let started = std::time::Instant::now();
    let out = Command::cargo_bin("tenanted")
        .unwrap()
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--migrations")
        .arg(common::schema_dir())
        .args(["rebuild", "--replica-url", &replica, "--tenant", "acme"])
        .args(["--timeout", "1", "--staging"])
        .arg(dir.path().join("staging"))
        .arg("--litestream")
        .arg(&fake)
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("killed"), "{said}");
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    // Said once, in the report (it was also logged as a warning: an
    // outside probe saw each failed tenant printed twice).
    let all = format!("{said}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(all.matches("killed").count(), 1, "{all}");
}

/// A migration whose `up.sql` ends tenanted's transaction (COMMIT, END,
/// ROLLBACK), or that cannot build a new tenant (it needs rows), is
/// refused before any tenant is changed, naming its script, exit 2 (an
/// outside probe: `ROLLBACK;` left a tenant without a table while status
/// called it current; a data-dependent one migrated the fleet, and then
/// no tenant could be created).
#[test]
fn a_migration_that_ends_its_transaction_or_needs_rows_is_refused_before_any_tenant() {
    let cases = [
        (
            "0005_commit",
            "CREATE TABLE t1 (x); COMMIT; CREATE TABLE t2 (x);",
            "ends the transaction",
        ),
        (
            "0005_end",
            "CREATE TABLE t1 (x); END; CREATE TABLE t2 (x);",
            "ends the transaction",
        ),
        (
            "0005_commit_begin",
            "CREATE TABLE t1 (x); COMMIT; BEGIN; CREATE TABLE t2 (x);",
            "ends the transaction",
        ),
        (
            "0005_rollback",
            "CREATE TABLE t1 (x); ROLLBACK; CREATE TABLE t2 (x);",
            "ends the transaction",
        ),
        (
            "0005_needs_rows",
            "CREATE TABLE firsts (id INTEGER NOT NULL); INSERT INTO firsts SELECT max(id) FROM users;",
            "fails on an empty database",
        ),
    ];
    for (name, up, said) in cases {
        let dir = workspace_with(&["acme", "globex"]);
        tenanted(dir.path())
            .args(["create", "initech"])
            .assert()
            .success();
        add_migration(dir.path(), name, up);
        tenanted(dir.path())
            .arg("migrate")
            .assert()
            .code(2)
            .stderr(predicate::str::contains(said).and(predicate::str::contains(name)));
        let db = tenanted::RootConfig::new(dir.path().join("tenants"))
            .database_path("acme")
            .unwrap();
        let conn = rusqlite::Connection::open(db).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('t1', 't2', 'firsts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((version, tables), (4, 0), "{name}");
    }
}

/// The version, the `position` column's values and the number of
/// triggers of `acme` in `dir`'s root.
fn acme_schema(dir: &Path) -> (i64, Option<Vec<i64>>, i64) {
    let db = tenanted::RootConfig::new(dir.join("tenants"))
        .database_path("acme")
        .unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let positions = conn
        .prepare("SELECT position FROM items")
        .ok()
        .map(|mut s| {
            let rows = s.query_map([], |r| r.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        });
    let triggers = one("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'");
    (one("PRAGMA user_version"), positions, triggers)
}

/// A `down.sql` that ends tenanted's transaction is refused before any
/// tenant is changed even when it then fails (`COMMIT; BEGIN;` and a
/// typo), and even below a `down.sql` that needs rows (which fails on an
/// empty database, as it may). An outside probe: the first dropped a
/// column and its values for good while the error said the tenant stayed
/// at version 4; the second, in a `migrate --to 2`, dropped a column and
/// a trigger. A migration without a `down.sql` is named too: the run
/// called every tenant one that had moved after its confirmation.
#[test]
fn a_down_script_that_ends_its_transaction_is_refused_even_when_it_fails() {
    let dir = workspace_with(&["acme"]);
    tenanted(dir.path())
        .args(["create", "globex"])
        .assert()
        .success();
    let db = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("acme")
        .unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO items (title, position) VALUES ('keep me', 42)",
            [],
        )
        .unwrap();
    let before = acme_schema(dir.path());
    assert_eq!(before, (4, Some(vec![42]), 3));
    let migrations = dir.path().join("migrations");
    let down4 = migrations.join("0004_add_item_position/down.sql");
    std::fs::write(
        &down4,
        "DROP INDEX items_position; ALTER TABLE items DROP COLUMN position; \
         COMMIT; BEGIN; DELET FROM items;",
    )
    .unwrap();
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("ends the transaction")
                .and(predicate::str::contains("0004_add_item_position")),
        );
    assert_eq!(acme_schema(dir.path()), before);
    // Needs rows (NOT NULL of an empty max): allowed, and fails on an
    // empty database; the down.sql below it ends the transaction.
    std::fs::write(
        &down4,
        "CREATE TABLE kept_positions (position INTEGER NOT NULL); \
         INSERT INTO kept_positions SELECT max(position) FROM items; \
         DROP INDEX items_position; ALTER TABLE items DROP COLUMN position;",
    )
    .unwrap();
    let down3 = migrations.join("0003_create_changes/down.sql");
    let kept = std::fs::read_to_string(&down3).unwrap();
    std::fs::write(&down3, format!("COMMIT; BEGIN; {kept}")).unwrap();
    tenanted(dir.path())
        .args(["migrate", "--to", "2", "--yes"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("ends the transaction")
                .and(predicate::str::contains("0003_create_changes")),
        );
    assert_eq!(acme_schema(dir.path()), before);
    // No down.sql at all: said so, not blamed on a tenant that moved
    // after the confirmation (whose advice, to run again, led to the same).
    std::fs::remove_file(&down3).unwrap();
    tenanted(dir.path())
        .args(["migrate", "--to", "2", "--yes"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("has no down.sql")
                .and(predicate::str::contains("0003_create_changes"))
                .and(predicate::str::contains("and 1 other tenant(s)"))
                .and(predicate::str::contains("--tenant"))
                .and(predicate::str::contains("after the run was confirmed").not()),
        );
    assert_eq!(acme_schema(dir.path()), before);
    // With that down.sql mended, the one that needs rows runs.
    std::fs::write(&down3, kept).unwrap();
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes"])
        .assert()
        .success();
    assert_eq!(acme_schema(dir.path()).0, 3);
}

/// A failed `down.sql` is said as one (what to fix, and that no
/// `--accept-migration-changes` is needed), and a `redo` whose up step
/// fails after its down step ran says the down step ran (an outside
/// probe: both were told "migrating tenant a failed ... run migrate
/// again", the redo hiding that the table had been dropped).
#[test]
fn a_failed_down_script_and_a_half_done_redo_say_what_ran() {
    let dir = workspace(2);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    let down = dir.path().join("migrations/0002_create_items/down.sql");
    let kept = std::fs::read_to_string(&down).unwrap();
    std::fs::write(&down, "DROP TABLE no_such_table;").unwrap();
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("undoing migration 0002_create_items")
                .and(predicate::str::contains("fix that down.sql"))
                .and(predicate::str::contains("stays at version 2")),
        );
    std::fs::write(&down, kept).unwrap();
    let up = dir.path().join("migrations/0002_create_items/up.sql");
    let original = std::fs::read_to_string(&up).unwrap();
    // Fails on acme's rows (a user: a title of NULL), not on an empty
    // database (no user, no row).
    let db = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("acme")
        .unwrap();
    rusqlite::Connection::open(db)
        .unwrap()
        .execute("INSERT INTO users (email, name) VALUES ('a@x', 'a')", [])
        .unwrap();
    std::fs::write(
        &up,
        format!("{original}\nINSERT INTO items (owner_id, title) SELECT id, NULL FROM users;"),
    )
    .unwrap();
    tenanted(dir.path())
        .args(["redo", "acme", "--yes", "--accept-migration-changes"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("redo undid acme's 0002_create_items (2 → 1)")
                .and(predicate::str::contains("applying it again failed")),
        );
}

/// A folder named as a migration but misnumbered (no name after its
/// number, more digits than a timestamp has, a `-` or a blank instead of
/// the `_`) is refused, naming it, not skipped with a warning while
/// `status` calls every tenant current without it (outside probes).
#[test]
fn a_misnumbered_migration_folder_is_refused_not_skipped() {
    for name in [
        "0005_",
        "202612051200001_add_tags",
        "0005-add_tags",
        "0005 add tags",
    ] {
        let dir = workspace_with(&["acme"]);
        let folder = dir.path().join("migrations").join(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), "CREATE TABLE t (x);").unwrap();
        tenanted(dir.path())
            .arg("status")
            .assert()
            .code(2)
            .stderr(predicate::str::contains(name));
    }
}

/// A named pipe as a migration's script, or a link to a device, is
/// refused at once, naming it: the pipe kept every command that reads
/// the migrations waiting for good, and `/dev/zero` was read until memory
/// ran out (an outside probe).
#[test]
fn a_pipe_or_a_device_as_a_migration_script_is_refused_not_read() {
    for (script, plant) in [("up.sql", "fifo"), ("down.sql", "fifo"), ("up.sql", "zero")] {
        let dir = workspace_with(&["acme"]);
        let folder = dir.path().join("migrations").join("0005_planted");
        std::fs::create_dir(&folder).unwrap();
        if script == "down.sql" {
            std::fs::write(folder.join("up.sql"), "CREATE TABLE t (x);").unwrap();
        }
        let path = folder.join(script);
        match plant {
            "fifo" => assert!(
                std::process::Command::new("mkfifo")
                    .arg(&path)
                    .status()
                    .unwrap()
                    .success()
            ),
            _ => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
        }
        tenanted(dir.path())
            .arg("status")
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(path.display().to_string()))
            .stderr(predicate::str::contains("not a regular file"));
    }
}

/// A migration refused on an empty database (it needs rows) does not
/// stop a rollback that only runs the down scripts above it, and a dry
/// run says what the run would refuse (a review: a rollback was refused
/// for a migration it does not run; the dry run said "would apply" and
/// exited 0 where the run was refused).
#[test]
fn a_migration_refused_on_an_empty_database_does_not_stop_a_rollback_above_it() {
    let dir = workspace(4);
    tenanted(dir.path())
        .args(["create", "acme"])
        .assert()
        .success();
    // 0002 now needs rows (an edit, accepted as the root's record allows).
    let up = dir.path().join("migrations/0002_create_items/up.sql");
    let original = std::fs::read_to_string(&up).unwrap();
    std::fs::write(
        &up,
        format!("{original}\nCREATE TABLE firsts (id INTEGER NOT NULL);\nINSERT INTO firsts SELECT max(id) FROM users;"),
    )
    .unwrap();
    tenanted(dir.path())
        .args(["migrate", "--dry-run", "--accept-migration-changes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("0002_create_items/up.sql"));
    tenanted(dir.path())
        .args(["rollback", "acme", "--yes", "--accept-migration-changes"])
        .assert()
        .success();
}

/// A user who may read the root but not write it is told so, not to look
/// at the disk: SQLite opens the file read-only, and its lock (which it
/// takes even to read a WAL database) fails with `SQLITE_IOERR_LOCK`,
/// "disk I/O error" (an outside probe's read-only backup account).
#[test]
fn a_user_who_may_only_read_the_root_is_told_it_is_permissions() {
    let dir = workspace_with(&["acme"]);
    let backup = dir.path().join("backup");
    let db = tenanted::RootConfig::new(dir.path().join("tenants"))
        .database_path("acme")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The tenant's files read-only to whoever runs the command (as root,
    // `nobody`, to whom the root's files are read-only as made).
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let tenant_dir = db.parent().unwrap();
    std::fs::set_permissions(tenant_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::create_dir(&backup).unwrap();
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o777)).unwrap();
    let to = backup.join("run").display().to_string();
    let out = unprivileged(dir.path(), &["backup", "--to", &to]);
    std::fs::set_permissions(tenant_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let said = said_by(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("this user may read the tenant but not write it")
            && !said.contains("the disk failed the read or write"),
        "{said}"
    );
}

/// `cleanup` sweeps every part of the root it can read: one bucket this
/// user may not read is reported (exit 1), and the debris of the others
/// is removed all the same (an outside probe: the sweep stopped at the
/// unreadable bucket and left the rest).
#[test]
fn cleanup_sweeps_what_it_can_read_and_reports_the_rest() {
    let dir = workspace_with(&["acme", "hooli"]);
    let root = tenanted::RootConfig::new(dir.path().join("tenants"));
    let acme = root.database_path("acme").unwrap();
    let debris = acme.with_file_name(".main.sqlite3.tmp-99999-0");
    std::fs::write(&debris, b"left by a create that died").unwrap();
    let hooli_bucket = root.database_path("hooli").unwrap();
    let hooli_bucket = hooli_bucket.parent().unwrap().parent().unwrap();
    assert_ne!(Some(hooli_bucket), acme.parent().unwrap().parent());
    if rustix::process::geteuid().is_root() {
        give_to_nobody(dir.path());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(hooli_bucket, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = unprivileged(dir.path(), &["cleanup"]);
    std::fs::set_permissions(hooli_bucket, std::fs::Permissions::from_mode(0o755)).unwrap();
    let said = said_by(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        !debris.exists(),
        "the readable bucket was not swept: {said}"
    );
    assert!(said.contains(&hooli_bucket.display().to_string()), "{said}");
}
