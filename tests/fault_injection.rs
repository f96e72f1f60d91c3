//! Every file-system step of create, create-with-seed, destroy, migrate
//! and rollback, failed in turn with EIO, ENOSPC and EMFILE (the way
//! storage engines test their recovery paths). After each: the operation
//! returned a clear error naming the tenant, or succeeded; no tenant is
//! half made (a listed tenant passes `integrity_check` and holds what it
//! should); a retry succeeds; and `remove_debris` leaves nothing of
//! tenanted's own beside the tenants.
//! The same for the fleet reads: every step of a listing (the walk's
//! directory opens and reads) and of a status read (the walk, then each
//! tenant's header), failed in turn.
//!
//! The steps are those tenanted itself takes (`fs/sys.rs`): SQLite's
//! reads and writes inside a transaction are SQLite's to make atomic.
//!
//! The tests of this file run one at a time ([`alone`]): a fault plan
//! counts the steps of its own thread, but which steps a header read
//! takes depends on the whole process (it first looks whether any
//! connection of the process is on the file, as POSIX locks belong to
//! the process). A test opening connections beside a sweep that recorded
//! its steps with none open would shift the sweep's steps, so that the
//! step it means to fail is never reached.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tenanted::testing::faults::{FaultPlan, Step, StepTaken};
use tenanted::{Error, TenantManager, TenantUsage, UsageOrder};

/// Held for a whole test: the tests of this file run one at a time
/// (see the module's note). A test that failed leaves it poisoned; the
/// next one goes on.
fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Linux's errno values.
const EIO: i32 = 5;
const EMFILE: i32 = 24;
const ENOSPC: i32 = 28;
const FAULTS: [i32; 3] = [EIO, ENOSPC, EMFILE];

/// One operation under test: how to prepare a fresh root, run it on
/// `acme`, retry it, and what a listed `acme` must hold afterwards.
struct Case {
    name: &'static str,
    /// The root's path template (`None`: the default layout).
    template: Option<&'static str>,
    prepare: fn(&TenantManager),
    run: fn(&TenantManager) -> Result<(), String>,
    retry: fn(&TenantManager),
    check: fn(&TenantManager),
}

fn fresh(dir: &Path, prepare: fn(&TenantManager)) -> TenantManager {
    fresh_in(dir, None, prepare)
}

/// [`fresh`] with the path template `template`.
fn fresh_in(dir: &Path, template: Option<&str>, prepare: fn(&TenantManager)) -> TenantManager {
    let m = match template {
        Some(template) => TenantManager::builder(
            tenanted::RootConfig::new(dir).template(template),
            tenanted::Migrations::new(common::three_migrations()),
        )
        .build()
        .unwrap(),
        None => common::manager(dir),
    };
    // Built outside the fault window: the template and the root's records.
    m.create_tenant("warmup").unwrap();
    prepare(&m);
    m
}

fn version(m: &TenantManager) -> usize {
    let mut acme = None;
    m.migration_status_each(|row| {
        if row.tenant.as_str() == "acme" {
            acme = Some(row.version.clone());
        }
    })
    .unwrap();
    let acme = acme.expect("acme is listed");
    acme.expect("acme's version reads")
}

/// Checked on a plain connection: a tenant left behind its migrations
/// (a failed migrate) is refused by `connection`, rightly.
fn integrity_ok(m: &TenantManager) {
    let path = m.root().database_path("acme").unwrap();
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let verdict: String = rusqlite::Connection::open_with_flags(path, flags)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
}

fn listed(m: &TenantManager) -> bool {
    common::sorted_tenants(m).contains(&"acme".to_owned())
}

/// What the root holds besides the tenants' databases and `.tenanted/`:
/// after `remove_debris`, nothing.
fn debris(dir: &Path) -> Vec<String> {
    common::tenant_files_under(dir)
        .into_iter()
        .filter(|f| {
            let name = Path::new(f).file_name().unwrap().to_string_lossy();
            name.starts_with('.') || name.ends_with("-journal")
        })
        .collect()
}

fn say(e: Error) -> String {
    e.to_string()
}

fn seed(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("INSERT INTO notes (body) VALUES ('seeded')", [])
        .map(drop)
}

fn seeded_rows(m: &TenantManager) -> i64 {
    m.connection("acme")
        .unwrap()
        .query_row(
            "SELECT count(*) FROM notes WHERE body = 'seeded'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// A restore replacing `acme`, in the default layout.
const REPLACING: Case = Case {
    name: "restore, replacing the tenant",
    template: None,
    prepare: |m| {
        m.create_tenant("acme").unwrap();
        note(m, "in the backup");
        m.backup_tenant("acme", backup_of(m)).unwrap();
        note(m, "only in the old tenant");
    },
    run: |m| restore_replacing(m).map_err(say),
    retry: |m| restore_replacing(m).unwrap(),
    check: |m| {
        let rows = notes(m);
        let old = ["in the backup", "only in the old tenant"];
        assert!(rows == ["in the backup"] || rows == old, "{rows:?}");
    },
};

const CASES: &[Case] = &[
    Case {
        name: "create",
        template: None,
        prepare: |_| {},
        run: |m| m.create_tenant("acme").map_err(say),
        retry: |m| m.create_tenant_if_not_exists("acme").map(drop).unwrap(),
        check: |m| assert_eq!(version(m), 3),
    },
    Case {
        name: "create_tenants",
        template: None,
        prepare: |_| {},
        run: |m| {
            let report = m.create_tenants(["acme", "acme-2"]).map_err(say)?;
            let failures: Vec<String> = report.failed.iter().map(|(_, e)| e.to_string()).collect();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.join("; "))
            }
        },
        retry: |m| assert!(m.create_tenants(["acme", "acme-2"]).unwrap().is_success()),
        check: |m| assert_eq!(version(m), 3),
    },
    Case {
        name: "create with a seed",
        template: None,
        prepare: |_| {},
        run: |m| m.create_tenant_with("acme", seed).map_err(say),
        retry: |m| {
            if !m.tenant_exists("acme").unwrap() {
                m.create_tenant_with("acme", seed).unwrap();
            }
        },
        check: |m| assert_eq!(seeded_rows(m), 1, "a listed tenant holds its seed"),
    },
    Case {
        name: "destroy",
        template: None,
        prepare: |m| m.create_tenant("acme").unwrap(),
        run: |m| m.destroy_tenant("acme").map_err(say),
        retry: |m| match m.destroy_tenant("acme") {
            Ok(()) | Err(Error::TenantDoesNotExist { .. }) => {}
            Err(e) => panic!("retrying the destroy: {e}"),
        },
        check: |m| assert_eq!(version(m), 3),
    },
    REPLACING,
    Case {
        name: "restore, replacing a tenant without a directory of its own",
        template: Some("%{bucket}/%{tenant}.sqlite3"),
        ..REPLACING
    },
    Case {
        name: "migrate",
        template: None,
        prepare: |m| {
            m.create_tenant("acme").unwrap();
            m.migrate_tenant_to("acme", 1).unwrap();
        },
        run: |m| m.migrate_tenant("acme").map(drop).map_err(say),
        retry: |m| assert_eq!(m.migrate_tenant("acme").unwrap().to, 3),
        check: |m| assert!([1, 3].contains(&version(m)), "all or nothing"),
    },
    Case {
        name: "rollback",
        template: None,
        prepare: |m| m.create_tenant("acme").unwrap(),
        run: |m| m.rollback_tenant("acme", 1).map(drop).map_err(say),
        retry: |m| {
            if version(m) == 3 {
                m.rollback_tenant("acme", 1).unwrap();
            }
        },
        check: |m| assert!([2, 3].contains(&version(m)), "all or nothing"),
    },
];

/// Where a test's backup of `acme` goes: beside its root, outside it.
fn backup_of(m: &TenantManager) -> std::path::PathBuf {
    m.root().root_dir().with_extension("backup.sqlite3")
}

fn restore_replacing(m: &TenantManager) -> tenanted::Result<()> {
    let options = tenanted::RestoreOptions::new().replace(true);
    m.restore_tenant_opts("acme", backup_of(m), &options)
        .map(drop)
}

fn note(m: &TenantManager, body: &str) {
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES (?1)", [body])
        .unwrap();
}

fn notes(m: &TenantManager) -> Vec<String> {
    m.connection("acme")
        .unwrap()
        .prepare("SELECT body FROM notes ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A restore that replaces a tenant fences the old one off, publishes the
/// copy in its place, and only then removes the old one: when the publish
/// fails, the old tenant is back, whole, and the restored copy is gone.
#[test]
fn a_restore_whose_publish_fails_leaves_the_old_tenant() {
    let _alone = alone();
    let case = CASES
        .iter()
        .find(|c| c.name.starts_with("restore"))
        .unwrap();
    let publish = steps_of(case)
        .iter()
        .position(|s| s.step == Step::Swap && s.name == Path::new("acme"))
        .expect("the restore publishes the tenant's directory")
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_in(dir.path(), case.template, case.prepare);
    let plan = FaultPlan::fail_step(publish, ENOSPC);
    let result = restore_replacing(&m);
    drop(plan);
    assert!(result.is_err(), "{result:?}");
    assert!(m.tenant_exists("acme").unwrap());
    assert_eq!(notes(&m), ["in the backup", "only in the old tenant"]);
    assert_eq!(debris(dir.path()), Vec::<String>::new());
}

/// A destroy that cannot remove the database says so, and leaves it
/// fenced for `remove_debris` to finish.
#[test]
fn a_destroy_that_cannot_remove_the_database_says_so() {
    let _alone = alone();
    let destroy = CASES.iter().find(|c| c.name == "destroy").unwrap();
    let unlink = steps_of(destroy)
        .iter()
        .position(|s| s.step == Step::Unlink && s.name == Path::new(".main.sqlite3.destroying"))
        .expect("the destroy removes the fenced database")
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let m = fresh(dir.path(), destroy.prepare);
    let plan = FaultPlan::fail_step(unlink, EIO);
    let result = m.destroy_tenant("acme");
    drop(plan);
    match result {
        Err(e) => assert!(e.to_string().contains(".main.sqlite3.destroying"), "{e}"),
        Ok(()) => panic!("the destroy said it succeeded"),
    }
    assert!(!m.tenant_exists("acme").unwrap());
    assert!(m.remove_debris().unwrap() > 0);
    assert_eq!(debris(dir.path()), Vec::<String>::new());
    assert_eq!(common::sorted_tenants(&m), ["warmup"]);
}

/// The steps `case` takes when nothing fails.
fn steps_of(case: &Case) -> Vec<StepTaken> {
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_in(dir.path(), case.template, case.prepare);
    let plan = FaultPlan::record();
    (case.run)(&m).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    plan.steps()
}

fn fail_one_step(case: &Case, n: usize, errno: i32, step: &StepTaken) {
    let what = format!(
        "{}: step {n} ({:?} {}) failing with errno {errno}",
        case.name,
        step.step,
        step.name.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_in(dir.path(), case.template, case.prepare);
    let plan = FaultPlan::fail_step(n, errno);
    let result = (case.run)(&m);
    let failed = plan.steps().iter().any(|s| s.failed);
    drop(plan);
    assert!(failed, "{what}: the step was reached");
    if let Err(msg) = &result {
        assert!(
            msg.contains("acme"),
            "{what}: the error names the tenant: {msg}"
        );
    }
    if listed(&m) {
        integrity_ok(&m);
        (case.check)(&m);
    }
    (case.retry)(&m);
    if listed(&m) {
        integrity_ok(&m);
        (case.check)(&m);
    }
    m.remove_debris().unwrap();
    assert_eq!(
        debris(dir.path()),
        Vec::<String>::new(),
        "{what}: debris left"
    );
}

#[test]
fn every_step_of_every_operation_can_fail_without_harm() {
    let _alone = alone();
    let mut total = 0;
    for case in CASES {
        let steps = steps_of(case);
        assert!(!steps.is_empty(), "{}: no steps recorded", case.name);
        for (i, step) in steps.iter().enumerate() {
            for errno in FAULTS {
                fail_one_step(case, i + 1, errno, step);
                total += 1;
            }
        }
        eprintln!("{}: {} steps, each failed 3 ways", case.name, steps.len());
    }
    assert!(total > 30, "only {total} faults injected");
}

/// A destroyed tenant's `-wal` left beside its path (by a crash of an
/// earlier release, or with its database moved away by hand) stops the
/// next create of that name while it holds commits, and is kept: replayed
/// into the new database it would hand it the old tenant's data, and
/// removed it would lose commits a database put back needs. One that holds
/// none (its header only) is removed by the create; a removal that fails
/// stops the create too.
#[test]
fn a_leftover_wal_stops_the_create_unless_it_can_be_removed() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let path = m.root().database_path("acme").unwrap();
    let wal = dir.path().join("old.wal");
    {
        let conn = m.connection("acme").unwrap();
        conn.execute("INSERT INTO notes (body) VALUES ('OLD TENANT DATA')", [])
            .unwrap();
        fs_copy_wal(&path, &wal);
    }
    m.destroy_tenant("acme").unwrap();
    let leftover = {
        let mut p = path.as_os_str().to_owned();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let leave = |bytes: &[u8]| {
        std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
        std::fs::write(&leftover, bytes).unwrap();
    };
    let commits = std::fs::read(&wal).unwrap();
    leave(&commits);
    match m.create_tenant("acme") {
        Err(Error::OrphanedCommits { ref path, .. }) if path == &leftover => {}
        other => panic!("expected OrphanedCommits for {leftover:?}, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&leftover).unwrap(),
        commits,
        "the commits were touched"
    );

    // Its header alone holds nothing: the create removes it.
    leave(&commits[..32]);
    let steps = {
        let plan = FaultPlan::record();
        m.create_tenant("acme").unwrap();
        plan.steps()
    };
    m.destroy_tenant("acme").unwrap();
    leave(&commits[..32]);
    let n = steps
        .iter()
        .position(|s| s.name.to_string_lossy().ends_with("main.sqlite3-wal"))
        .expect("the create removes the leftover WAL")
        + 1;
    let plan = FaultPlan::fail_step(n, EIO);
    let result = m.create_tenant("acme");
    drop(plan);
    let e = result.expect_err("the create stops");
    assert!(e.to_string().contains("acme"), "{e}");
    // No database was published: the directory made by hand (holding the
    // leftover WAL) is listed, and reported as a tenant without one.
    assert!(matches!(
        m.tenant_exists("acme"),
        Err(Error::MissingDatabase { .. })
    ));
    m.create_tenant("acme").unwrap();
    let rows: i64 = m
        .connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the new tenant holds nothing of the old one");
}

/// Copies the live `-wal` of the database at `path` (a connection of this
/// process holds it, so it has frames) to `to`.
fn fs_copy_wal(path: &Path, to: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::copy(std::path::PathBuf::from(wal), to).unwrap();
}

/// A batch's syncs run on other threads in normal use; under a fault plan
/// they run on the plan's thread, so that the sweep above fails each of
/// them too: two copies, two tenant directories, and their bucket(s).
#[test]
fn a_batch_takes_its_syncs_where_the_fault_plan_can_fail_them() {
    let _alone = alone();
    let case = CASES
        .iter()
        .find(|c| c.name == "create_tenants")
        .expect("the create_tenants case");
    let syncs = steps_of(case)
        .iter()
        .filter(|s| s.step == Step::Sync)
        .count();
    assert!(syncs >= 5, "{syncs} syncs recorded for a batch of two");
}

/// The tenants the fleet reads below find (`fresh` makes `warmup`).
const FLEET: [&str; 3] = ["acme", "globex", "warmup"];

/// A root holding [`FLEET`], both at the latest version.
fn fleet(dir: &Path) -> TenantManager {
    fresh(dir, |m| {
        FLEET[..2].iter().for_each(|t| m.create_tenant(t).unwrap())
    })
}

/// A listing of the fleet: the walk's directory opens and reads.
fn list(m: &TenantManager) -> tenanted::Result<Vec<String>> {
    let mut names = m
        .tenants()?
        .map(|t| t.map(|t| t.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    Ok(names)
}

/// A status read of the fleet: the walk, then each tenant's header.
/// Checks what it says is true: it fails naming where, or gives never a
/// wrong version, an unreadable row
/// names its tenant, and a tenant is left out only beside a listing error.
fn status_is_true(m: &TenantManager, what: &str) {
    let report = match m.migration_status() {
        Ok(report) => report,
        Err(e) => {
            let root = m.root().root_dir().display().to_string();
            return assert!(e.to_string().contains(&root), "{what}: names where: {e}");
        }
    };
    assert_eq!(
        (report.behind(), report.ahead()),
        (0, 0),
        "{what}: {report}"
    );
    for row in &report.tenants {
        let e = row
            .version
            .as_ref()
            .expect_err("only unreadable rows are listed");
        assert!(e.to_string().contains(row.tenant.as_str()), "{what}: {e}");
    }
    if report.listing_errors.is_empty() {
        assert_eq!(
            report.current() + report.unreadable(),
            FLEET.len(),
            "{what}: {report}"
        );
    }
}

/// Fails each of `steps` in turn, each way, around `run` (given what is
/// failing, for its messages), checks the step was reached, then runs
/// `next` with no fault.
fn fail_each(what: &str, steps: &[StepTaken], run: &dyn Fn(&str), next: &dyn Fn(&str)) {
    for (n, step) in steps.iter().enumerate() {
        for errno in FAULTS {
            let (kind, name) = (step.step, step.name.display());
            let what = format!(
                "{what}: step {} ({kind:?} {name}) failing with errno {errno}",
                n + 1
            );
            let plan = FaultPlan::fail_step(n + 1, errno);
            run(&what);
            assert!(
                plan.steps().iter().any(|s| s.failed),
                "{what}: the step was reached"
            );
            drop(plan);
            next(&what);
        }
    }
}

/// Every step of a listing and of a status read (the walker's opens and
/// directory reads, the header reads), failed in turn: a listing fails
/// or is right, a status read says nothing untrue, and the next ones,
/// with no fault, are right.
#[test]
fn every_step_of_a_listing_and_a_status_read_can_fail_without_harm() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    let record = |run: &dyn Fn()| {
        let plan = FaultPlan::record();
        run();
        plan.steps()
    };
    let listing = record(&|| assert_eq!(list(&m).unwrap(), FLEET));
    let status = record(&|| assert!(m.migration_status().unwrap().all_current()));
    assert!(listing.iter().any(|s| s.step == Step::Open), "{listing:?}");
    assert!(
        status.iter().any(|s| s.step == Step::Read),
        "the headers are read: {status:?}"
    );
    let listed = |what: &str| assert_eq!(list(&m).unwrap(), FLEET, "{what}: the next listing");
    fail_each(
        "listing",
        &listing,
        &|what| {
            if let Ok(names) = list(&m) {
                assert_eq!(names, FLEET, "{what}");
            }
        },
        &listed,
    );
    let current = |what: &str| {
        assert!(
            m.migration_status().unwrap().all_current(),
            "{what}: the next read"
        )
    };
    fail_each(
        "status",
        &status,
        &|what| status_is_true(&m, what),
        &current,
    );
    eprintln!(
        "listing: {} steps, status: {} steps, each failed 3 ways",
        listing.len(),
        status.len()
    );
}

/// A usage report of the fleet: what it says is true (a failed row
/// names its tenant, no row is wrong, a tenant is left out only beside a
/// listing error), or it fails naming the root.
fn usage_is_true(m: &TenantManager, whole: &[TenantUsage], what: &str) {
    let report = match m.usage(UsageOrder::Largest, FLEET.len()) {
        Ok(report) => report,
        Err(e) => {
            let root = m.root().root_dir().display().to_string();
            return assert!(e.to_string().contains(&root), "{what}: names where: {e}");
        }
    };
    for row in &report.top {
        assert!(whole.contains(row), "{what}: {row:?} is not {whole:?}");
    }
    for (tenant, e) in &report.failed {
        assert!(e.to_string().contains(tenant.as_str()), "{what}: {e}");
    }
    if report.listing_errors.is_empty() {
        let counted = report.tenants + report.failed.len();
        assert_eq!(counted, FLEET.len(), "{what}: {report:?}");
    }
}

/// Every step of a usage report (the walk, each tenant's `-wal` stat and
/// header read, the reads of a `-wal` with frames), failed in turn: it
/// says nothing untrue, and the next one with no fault is whole.
#[test]
fn every_step_of_a_usage_report_can_fail_without_harm() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    wal_with_frames(&m.root().database_path(FLEET[0]).unwrap());
    let whole = |what: &str| {
        let report = m.usage(UsageOrder::Largest, FLEET.len()).unwrap();
        assert_eq!(report.top.len(), FLEET.len(), "{what}: {report:?}");
        report.top
    };
    let plan = FaultPlan::record();
    let rows = whole("recording");
    let steps = plan.steps();
    drop(plan);
    assert!(
        steps.iter().any(|s| s.step == Step::Read),
        "the headers are read: {steps:?}"
    );
    let wal = |s: &&StepTaken| s.name.to_string_lossy().ends_with("-wal");
    assert!(
        steps.iter().filter(wal).any(|s| s.step == Step::Read),
        "the -wal's frames are read: {steps:?}"
    );
    let next = |what: &str| assert_eq!(whole(what), rows, "{what}: the next report");
    fail_each(
        "usage",
        &steps,
        &|what| usage_is_true(&m, &rows, what),
        &next,
    );
    eprintln!("usage: {} steps, each failed 3 ways", steps.len());
}

/// Leaves a `-wal` with frames beside the database at `db`, as a crash
/// after a checkpoint leaves it (its commits already in the file): its
/// bytes taken while a connection had written them, put back once that
/// connection has checkpointed and removed it. No connection stays open,
/// so no thread of the pool takes steps of its own during the run.
fn wal_with_frames(db: &Path) {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE grown (x);")
        .unwrap();
    let frames = std::fs::read(&wal).unwrap();
    drop(conn);
    std::fs::write(&wal, frames).unwrap();
}
