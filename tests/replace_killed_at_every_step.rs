//! A restore that replaces a tenant, killed at each of its file-system
//! steps in turn (a child process that exits on the spot, running no
//! destructor), leaves the old tenant or the new one: never neither, and
//! never a tenant that is half of each. `remove_debris` then settles what
//! the dead process left, for the default layout (a directory per tenant,
//! swapped whole) and for a flat one (`%{bucket}/%{tenant}.sqlite3`, the
//! database file replaced in place). So does a replace that fails at each
//! step. In every round a dead fence's `-wal` (another database's) lies
//! where a replace in place sets the old `-wal` aside: it must never be
//! put back as the tenant's.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tenanted::testing::faults::FaultPlan;

/// Linux's EIO.
const EIO: i32 = 5;
use tenanted::{RestoreOptions, RootConfig, TenantManager};

const FLAT: &str = "%{bucket}/%{tenant}.sqlite3";
const STEP_VAR: &str = "TENANTED_TEST_KILL_AT_STEP";
const TEMPLATE_VAR: &str = "TENANTED_TEST_TEMPLATE";

fn manager_with(root: &Path, template: Option<&str>) -> TenantManager {
    let config = match template {
        Some(template) => RootConfig::new(root).template(template),
        None => RootConfig::new(root),
    };
    TenantManager::builder(config, tenanted::Migrations::new(three_migrations()))
        .build()
        .unwrap()
}

fn backup_path(root: &Path, letter: &str) -> PathBuf {
    root.with_file_name(format!("backup-{letter}.sqlite3"))
}

fn replace(m: &TenantManager, root: &Path, letter: &str) -> tenanted::Result<()> {
    let opts = RestoreOptions::new().replace(true);
    m.restore_tenant_opts("acme", backup_path(root, letter), &opts)
        .map(drop)
}

/// The victim: replaces `acme` with backup `b`, exiting on the spot
/// (no destructor runs, as after SIGKILL) at the step `STEP_VAR` names.
#[test]
#[ignore = "child process of a_replacing_restore_killed_at_any_step_leaves_one_whole_tenant"]
fn child_replace_and_die() {
    let Some(root) = child::root() else {
        return;
    };
    let step: usize = std::env::var(STEP_VAR).unwrap().parse().unwrap();
    let template = std::env::var(TEMPLATE_VAR).ok();
    let m = manager_with(&root, template.as_deref());
    let plan = FaultPlan::interrupt_step(step, || std::process::exit(0));
    replace(&m, &root, "b").unwrap();
    drop(plan);
    println!("finished");
}

/// Commits one more note to `acme` and exits on the spot: the commit is
/// left in the `-wal` (no checkpoint on close), as after a crash.
#[test]
#[ignore = "child process of a_replacing_restore_killed_at_any_step_leaves_one_whole_tenant"]
fn child_write_and_die() {
    let Some(root) = child::root() else {
        return;
    };
    let template = std::env::var(TEMPLATE_VAR).ok();
    let m = manager_with(&root, template.as_deref());
    let conn = m.connection("acme").unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('a')", [])
        .unwrap();
    std::process::exit(0);
}

/// Backups `a` and `b` of a tenant with notes whose body is the letter.
fn make_backups(dir: &Path, root: &Path) {
    for letter in ["a", "b"] {
        let m = manager(&dir.join(format!("source-{letter}")));
        m.create_tenant_with("t", |tx| {
            tx.execute(
                "INSERT INTO notes (body) SELECT ?1 FROM (SELECT 1 UNION ALL SELECT 2)",
                [letter],
            )
            .map(drop)
        })
        .unwrap();
        m.backup_tenant("t", backup_path(root, letter)).unwrap();
    }
}

/// The letter of every note in `acme`, which must be one whole backup
/// (`b`), or the old tenant with the note its `-wal` holds (`a`).
fn acme_letter(m: &TenantManager, what: &str) -> String {
    let conn = m
        .connection("acme")
        .unwrap_or_else(|e| panic!("{what}: acme does not open: {e}"));
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{what}");
    let (rows, letters, letter): (i64, i64, String) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT body), min(body) FROM notes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let whole = if letter == "a" { 3 } else { 2 };
    assert_eq!(
        (rows, letters),
        (whole, 1),
        "{what}: acme ({letter}) is not whole"
    );
    letter
}

/// A `-wal` of another database (backup `b` with a note `c`), whose
/// frames, replayed into `acme`, would show.
fn foreign_wal(dir: &Path, root: &Path) -> Vec<u8> {
    let db = dir.join("foreign.sqlite3");
    std::fs::copy(backup_path(root, "b"), &db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('c')", [])
        .unwrap();
    let mut wal = db.into_os_string();
    wal.push("-wal");
    std::fs::read(wal).unwrap()
}

/// Lays `wal` where a dead fence of `acme` would have left its `-wal`.
fn plant_dead_fence_wal(m: &TenantManager, wal: &[u8]) {
    let db = m.root().database_path("acme").unwrap();
    let name = db.file_name().unwrap().to_str().unwrap();
    std::fs::write(db.with_file_name(format!(".{name}.destroying-wal")), wal).unwrap();
}

/// Hidden files a replace makes while it runs.
fn debris(root: &Path) -> Vec<String> {
    tenant_files_under(root)
        .into_iter()
        .filter(|f| {
            f.contains(".tmp-")
                || f.contains(".destroying")
                || f.contains(".restoring")
                || f.contains(".creating")
        })
        .collect()
}

fn killed_at_every_step(template: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    make_backups(dir.path(), &root);
    let foreign = foreign_wal(dir.path(), &root);
    let m = manager_with(&root, template);
    m.restore_tenant("acme", backup_path(&root, "a")).unwrap();
    let rehearsal = FaultPlan::record();
    replace(&m, &root, "a").unwrap();
    let steps = rehearsal.steps().len();
    drop(rehearsal);
    assert!(steps > 5, "only {steps} steps recorded");
    let (mut old, mut new) = (0, 0);
    let child = |test: &str, step: usize| {
        let mut child = child::command(test, &root);
        child.env(STEP_VAR, step.to_string());
        if let Some(template) = template {
            child.env(TEMPLATE_VAR, template);
        }
        child::run(&mut child)
    };
    // Each step in turn, until a replace runs to its end (the writer's
    // -wal makes the run longer than the rehearsal).
    for step in 1.. {
        assert!(step <= 2 * steps, "the replace never finished");
        replace(&m, &root, "a").unwrap();
        child("child_write_and_die", step);
        let wal = tenant_files_under(&root)
            .into_iter()
            .filter(|f| f.ends_with("-wal"));
        assert_eq!(wal.count(), 1, "the writer left its commit in the -wal");
        plant_dead_fence_wal(&m, &foreign);
        let out = child("child_replace_and_die", step);
        let what = format!("killed at step {step} of {steps} ({template:?})");
        let m = manager_with(&root, template);
        m.remove_debris()
            .unwrap_or_else(|e| panic!("{what}: remove_debris: {e}"));
        let listed: Vec<String> = m
            .tenants()
            .unwrap()
            .map(|t| t.unwrap().to_string())
            .collect();
        assert_eq!(listed, ["acme"], "{what}: the tenant is gone");
        match acme_letter(&m, &what).as_str() {
            "a" => old += 1,
            "b" => new += 1,
            other => panic!("{what}: {other}"),
        }
        assert_eq!(debris(&root), Vec::<String>::new(), "{what}");
        if out.contains("finished") {
            assert_eq!(acme_letter(&m, &what), "b", "{what}: finished");
            break;
        }
    }
    eprintln!("{template:?}: {steps} steps; old tenant left {old} times, new {new}");
    assert!(old > 0 && new > 0, "the kills landed on one side only");
}

/// The same with the replace failing (EIO) at each step in turn, in this
/// process: the fence, dropped, puts the old tenant back.
fn failed_at_every_step(template: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    make_backups(dir.path(), &root);
    let foreign = foreign_wal(dir.path(), &root);
    manager_with(&root, template)
        .restore_tenant("acme", backup_path(&root, "a"))
        .unwrap();
    for step in 1.. {
        assert!(step <= 200, "the replace never finished");
        let m = manager_with(&root, template);
        replace(&m, &root, "a").unwrap();
        let mut writer = child::command("child_write_and_die", &root);
        if let Some(template) = template {
            writer.env(TEMPLATE_VAR, template);
        }
        child::run(&mut writer);
        plant_dead_fence_wal(&m, &foreign);
        let plan = FaultPlan::fail_step(step, EIO);
        let result = replace(&m, &root, "b");
        let failed = plan.steps().iter().any(|s| s.failed);
        drop(plan);
        let what = format!("failing at step {step} ({template:?}): {result:?}");
        let letter = acme_letter(&m, &what);
        m.remove_debris()
            .unwrap_or_else(|e| panic!("{what}: remove_debris: {e}"));
        assert_eq!(acme_letter(&m, &what), letter, "{what}: remove_debris");
        assert_eq!(debris(&root), Vec::<String>::new(), "{what}");
        if !failed {
            assert_eq!(letter, "b", "{what}: finished");
            return;
        }
    }
}

#[test]
fn a_replacing_restore_failing_at_any_step_leaves_one_whole_tenant() {
    failed_at_every_step(None);
}

#[test]
fn a_replacing_restore_failing_at_any_step_leaves_one_whole_tenant_flat() {
    failed_at_every_step(Some(FLAT));
}

#[test]
fn a_replacing_restore_killed_at_any_step_leaves_one_whole_tenant() {
    killed_at_every_step(None);
}

#[test]
fn a_replacing_restore_killed_at_any_step_leaves_one_whole_tenant_flat() {
    killed_at_every_step(Some(FLAT));
}

/// A directory planted where a dead fence's `-wal` would lie (with a file
/// in it) is swept by `remove_debris`, and stops neither a replace nor a
/// destroy, in either layout.
#[test]
fn a_directory_planted_at_the_fences_wal_name_stops_nothing() {
    for template in [None, Some(FLAT)] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        make_backups(dir.path(), &root);
        let m = manager_with(&root, template);
        m.restore_tenant("acme", backup_path(&root, "a")).unwrap();
        let db = m.root().database_path("acme").unwrap();
        let name = db.file_name().unwrap().to_str().unwrap().to_owned();
        let plant = || {
            let planted = db.with_file_name(format!(".{name}.destroying-wal"));
            std::fs::create_dir_all(&planted).unwrap();
            std::fs::write(planted.join("inside"), b"x").unwrap();
        };
        plant();
        m.remove_debris().unwrap();
        assert_eq!(debris(&root), Vec::<String>::new(), "{template:?}");
        plant();
        replace(&m, &root, "b").unwrap();
        assert_eq!(acme_letter(&m, "replaced"), "b", "{template:?}");
        plant();
        m.destroy_tenant("acme").unwrap();
        assert_eq!(m.tenants().unwrap().count(), 0, "{template:?}");
    }
}
