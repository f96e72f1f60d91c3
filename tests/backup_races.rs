//! A backup copies a tenant whole or not at all, even when the tenant is
//! destroyed or replaced in the middle of its copy: the copy is checked to
//! be of the file its read transaction is on, start to end.
//!
//! The other party acts at a chosen step of the backup (a fault plan's
//! interruption, on the backup's own thread): just before it opens the
//! tenant's `-wal`, after it has opened the database file. Before this was
//! checked, a destroy there made the backup copy the database file without
//! the frames of its `-wal` (a copy missing its last commits, reported as
//! backed up), and one just before made `backup_all` report a failure
//! (CI, `tenants_created_and_destroyed_during_backup_all_...`).

mod common;

use std::path::Path;

use common::{manager, tenant_with_rows_in_its_wal};
use tenanted::testing::faults::{FaultPlan, Step};
use tenanted::{Error, RestoreOptions, TenantManager};

/// The step (counting from 1) at which a backup of `name` to `dest` first
/// opens the tenant's file called `file`, from a recorded run.
fn step_opening(m: &TenantManager, name: &str, dest: &Path, file: &str) -> usize {
    let plan = FaultPlan::record();
    m.backup_tenant(name, dest).unwrap();
    let steps = plan.steps();
    drop(plan);
    std::fs::remove_file(dest).unwrap();
    let at = steps
        .iter()
        .position(|s| s.step == Step::Open && s.name.file_name().is_some_and(|n| n == file));
    at.expect("the backup opens the file") + 1
}

fn notes(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{path:?}");
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_tenant_destroyed_while_its_copy_is_made_is_gone_and_leaves_no_backup() {
    for file in ["main.sqlite3", "main.sqlite3-wal"] {
        destroyed_before_the_backup_opens(file);
    }
}

fn destroyed_before_the_backup_opens(file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    tenant_with_rows_in_its_wal(&m, "acme", 50);
    let dest = dir.path().join("acme.sqlite3");
    let step = step_opening(&m, "acme", &dest, file);

    // Another manager of this process destroys it at that step.
    let destroyer = manager(&root);
    let plan = FaultPlan::interrupt_step(step, move || {
        destroyer.destroy_tenant("acme").unwrap();
    });
    let result = m.backup_tenant("acme", &dest);
    drop(plan);
    let error = result.expect_err(file);
    assert!(
        matches!(error, Error::TenantDoesNotExist { .. }),
        "destroyed before {file} was opened: {error:?}"
    );
    assert!(error.to_string().contains("acme"), "{error}");
    assert!(!m.tenant_exists("acme").unwrap());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "root")
        .collect();
    assert!(left.is_empty(), "the backup left {left:?}");
}

#[test]
fn a_tenant_replaced_while_its_copy_is_made_is_copied_as_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    tenant_with_rows_in_its_wal(&m, "acme", 50);
    let smaller = dir.path().join("smaller.sqlite3");
    tenant_with_rows_in_its_wal(&m, "small", 7);
    m.backup_tenant("small", &smaller).unwrap();
    let dest = dir.path().join("acme.sqlite3");
    let step = step_opening(&m, "acme", &dest, "main.sqlite3-wal");

    let replacer = manager(&root);
    let plan = FaultPlan::interrupt_step(step, move || {
        let replace = RestoreOptions::new().replace(true);
        replacer
            .restore_tenant_opts("acme", &smaller, &replace)
            .unwrap();
    });
    let outcome = m.backup_tenant("acme", &dest);
    drop(plan);
    outcome.expect("the backup starts again on the new file");
    assert_eq!(notes(&dest), 7, "the backup is not the tenant as replaced");
    assert_eq!(notes(&m.root().database_path("acme").unwrap()), 7);
}

#[test]
fn a_pipe_put_in_place_of_a_tenants_file_mid_backup_fails_it_without_waiting() {
    for file in ["main.sqlite3", "main.sqlite3-wal"] {
        piped_before_the_backup_opens(file);
    }
}

/// Just before the backup opens `file`, a named pipe takes its place: an
/// open for reading of a pipe waits for a writer, and nobody writes it.
fn piped_before_the_backup_opens(file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    if file == "main.sqlite3" {
        // No connection of this process on it (its maker is gone): the
        // backup opens the file itself, where one would lend it the
        // descriptor parked beside it.
        manager(&root).create_tenant("acme").unwrap();
    }
    let m = manager(&root);
    if file != "main.sqlite3" {
        tenant_with_rows_in_its_wal(&m, "acme", 50);
    }
    let dest = dir.path().join("acme.sqlite3");
    // Recorded twice: the second run is the one the run below repeats (a
    // first backup may open what later ones find parked).
    step_opening(&m, "acme", &dest, file);
    let step = step_opening(&m, "acme", &dest, file);
    let at = m.root().database_path("acme").unwrap().with_file_name(file);

    let what = format!("a backup with a pipe at {file}");
    let (result, copied) = common::within_a_minute(&what, move || {
        let piped = at.clone();
        let plan = FaultPlan::interrupt_step(step, move || {
            std::fs::rename(&piped, piped.with_extension("moved")).unwrap();
            let made = std::process::Command::new("mkfifo").arg(&piped).status();
            assert!(made.unwrap().success());
        });
        let result = m.backup_tenant("acme", &dest);
        drop(plan);
        (result.map(drop), dest.exists())
    });
    let error = result.expect_err(file);
    assert!(error.to_string().contains("acme"), "{file}: {error}");
    assert!(!copied, "{file}: a backup was left");
}
