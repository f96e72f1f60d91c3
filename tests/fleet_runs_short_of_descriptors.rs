//! A fleet run short of file descriptors still meets every tenant.
//!
//! Each worker of `migration_status`, `migrate_all` or `backup_all` holds
//! a few bucket directories open at once (its window). Before, a bucket
//! it could not open for want of descriptors became a listing error, and
//! that bucket's tenants dropped out of the run. Now the windows of a run
//! hold at most a sixteenth of the descriptor limit, and a bucket that
//! cannot be opened waits until one of the worker's own (or, with none,
//! another worker's) is closed.

#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use common::child;
use tenanted::testing::faults::{FaultPlan, Step};
use tenanted::{MigrateOptions, TenantManager};

const TENANTS: usize = 300;

/// The tests of this file one at a time: one counts this process's open
/// descriptors.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}
const EMFILE: i32 = 24;

fn fleet(root: &Path) -> TenantManager {
    let m = common::manager(root);
    let names: Vec<String> = (0..TENANTS).map(|i| format!("t{i:03}")).collect();
    assert!(m.create_tenants(&names).unwrap().is_success());
    m
}

/// Whether `name` is a bucket of the default layout (two hex digits).
fn is_bucket(name: &Path) -> bool {
    let name = name.to_string_lossy();
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn assert_every_tenant_met(m: &TenantManager) {
    let status = m.migration_status().unwrap();
    assert!(status.listing_errors.is_empty(), "{status}");
    let counts = (status.total(), status.current());
    assert_eq!(counts, (TENANTS, TENANTS), "{status}");
    let options = MigrateOptions::new().jobs(8);
    m.migrate_all(&options)
        .unwrap_or_else(|report| panic!("{report}"));
}

/// The third bucket the run opens fails with EMFILE (the fault plan runs
/// the fleet on this thread alone, so the failure lands in a window that
/// already holds two buckets): it waits, and is walked once they are.
#[test]
fn a_bucket_that_cannot_be_opened_for_want_of_descriptors_waits_its_turn() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    let steps = {
        let plan = FaultPlan::record();
        assert!(m.migration_status().unwrap().all_current());
        plan.steps()
    };
    let bucket_opens: Vec<usize> = (steps.iter().enumerate())
        .filter(|(_, s)| s.step == Step::Open && is_bucket(&s.name))
        .map(|(n, _)| n + 1)
        .collect();
    assert!(bucket_opens.len() > 8, "{} buckets", bucket_opens.len());
    for n in [bucket_opens[2], bucket_opens[0]] {
        let plan = FaultPlan::fail_step(n, EMFILE);
        let status = m.migration_status().unwrap();
        assert!(plan.steps()[n - 1].failed, "step {n} was not failed");
        assert!(status.listing_errors.is_empty(), "{status}");
        assert_eq!((status.total(), status.current()), (TENANTS, TENANTS));
    }
}

/// Every descriptor but `free` taken: the files held open.
fn hold_all_but(free: usize) -> Vec<File> {
    let mut held = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        held.push(file);
    }
    held.truncate(held.len().saturating_sub(free));
    held
}

#[test]
#[ignore = "child process of a_fleet_run_under_a_low_descriptor_limit_meets_every_tenant"]
fn child_runs_the_fleet_short_of_descriptors() {
    let Some(root) = child::root() else { return };
    let m = common::manager(&root);
    // Eight workers would have held eight buckets each: 64 directories
    // where 40 descriptors are left.
    let held = hold_all_but(40);
    assert_every_tenant_met(&m);
    let backup: PathBuf = root.with_file_name("backup");
    let report = m
        .backup_all(&backup, &tenanted::BackupOptions::new().jobs(4))
        .unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.succeeded(), TENANTS);
    drop(held);
    println!("EVERY-TENANT-MET");
}

#[test]
fn a_fleet_run_under_a_low_descriptor_limit_meets_every_tenant() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    drop(fleet(&root));
    let mut command = child::command_after(
        "ulimit -n 128",
        "child_runs_the_fleet_short_of_descriptors",
        &root,
    );
    let out = child::run(&mut command);
    assert!(out.contains("EVERY-TENANT-MET"), "{out}");
}

/// The directories a status run holds open at once, on a root of few
/// tenants per bucket: a worker's batch once took tenants from as many
/// buckets as it held tenants (32), each keeping its bucket open.
#[test]
fn a_fleet_run_holds_no_more_directories_than_its_windows_have_parts() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(dir.path());
    let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = open();
    let most = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most.fetch_max(open(), std::sync::atomic::Ordering::Relaxed);
            }
        });
        for _ in 0..20 {
            m.migrate_all(&MigrateOptions::new().jobs(2)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Two windows of eight buckets, the root, each worker's tenant (up to
    // three: a database looked at through its directories, or opened by
    // SQLite with its -wal and -shm) and the sampler's own listing. A
    // batch spanning windows held 30-40.
    let most = most.into_inner() - before;
    assert!(
        most <= 2 * 8 + 1 + 2 * 3 + 1,
        "{most} descriptors more at once"
    );
}

/// A tenant the header alone cannot tell about (its `-wal` has frames) is
/// looked at before SQLite reads it; when looking fails for want of
/// descriptors, it is read all the same (or reported), never skipped as
/// if no database were there: it once vanished from the counts.
#[test]
fn a_tenant_that_cannot_be_looked_at_never_vanishes_from_a_run() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    common::tenant_with_rows_in_its_wal(&m, "acme", 3);
    let steps = {
        let plan = FaultPlan::record();
        assert!(m.migration_status().unwrap().all_current());
        plan.steps()
    };
    let opens = (steps.iter().enumerate()).filter(|(_, s)| s.step == Step::Open);
    for (n, step) in opens.map(|(n, s)| (n + 1, s)) {
        let plan = FaultPlan::fail_step(n, EMFILE);
        let status = m.migration_status();
        assert!(plan.steps()[n - 1].failed, "step {n} was not failed");
        // The run itself failing (the root's layout unread) says so.
        let Ok(status) = status else { continue };
        assert!(
            status.total() == 1 || !status.listing_errors.is_empty(),
            "opening {:?} failed: the tenant vanished without a word: {status}",
            step.name
        );
    }
}

/// The open steps a status run of `m` takes, numbered from 1.
fn open_steps(m: &TenantManager) -> Vec<(usize, PathBuf)> {
    let plan = FaultPlan::record();
    drop(m.migration_status().unwrap());
    let steps = plan.steps();
    (steps.iter().enumerate())
        .filter(|(_, s)| s.step == Step::Open)
        .map(|(n, s)| (n + 1, s.name.clone()))
        .collect()
}

/// A tenant directory without its database is listed (`tenants()`
/// trusts it) and a status run reports it (`MissingDatabase`); whichever
/// open fails for want of descriptors, it never vanishes without a word
/// (found by an outside review: three opens made it vanish).
#[test]
fn a_tenant_directory_without_its_database_never_vanishes() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    std::fs::remove_file(m.root().database_path("acme").unwrap()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
    assert_eq!(m.migration_status().unwrap().total(), 1);
    let mut vanished = Vec::new();
    for (n, name) in open_steps(&m) {
        let plan = FaultPlan::fail_step(n, EMFILE);
        let status = m.migration_status();
        assert!(plan.steps()[n - 1].failed);
        let Ok(status) = status else { continue };
        if status.total() != 1 && status.listing_errors.is_empty() {
            vanished.push(format!("step {n} (open {name:?}): {status}"));
        }
    }
    assert!(vanished.is_empty(), "vanished:\n{}", vanished.join("\n"));
}

/// A run cancelled before it starts lists as skipped every tenant
/// `tenants()` lists, a tenant directory without its database too (a
/// run that visited it would have reported `MissingDatabase`).
#[test]
fn a_cancelled_run_lists_every_listed_tenant_as_skipped() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    std::fs::remove_file(m.root().database_path("acme").unwrap()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme", "globex"]);
    let visited = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!(visited.total(), 2, "{visited}");
    let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let report = m
        .migrate_all(&MigrateOptions::new().cancel_on(cancelled))
        .unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|t| t.as_str()).collect();
    assert_eq!(skipped, ["acme", "globex"], "{report}");
}

/// The descriptors the child's hog holds (the rest of a busy server).
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Takes every free descriptor.
fn grab_all() {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    while let Ok(file) = File::open("/dev/null") {
        held.push(file);
    }
}

#[test]
#[ignore = "child process of a_panicking_worker_does_not_hang_a_run_short_of_descriptors"]
fn child_panics_short_of_descriptors() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    static HOGGING: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let Some(root) = child::root() else { return };
    let m = common::manager(&root);
    // From the third tenant on, whatever descriptor the run closes is
    // taken at once by the rest of the process, so a worker's bucket
    // waits for another worker's to close.
    let hog = std::thread::spawn(|| {
        while !DONE.load(SeqCst) {
            match HOGGING.load(SeqCst) {
                true => grab_all(),
                false => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        }
    });
    let options = MigrateOptions::new().jobs(2).on_progress(|p| {
        if p.done == 3 {
            grab_all();
            HOGGING.store(true, SeqCst);
            panic!("a progress callback panics");
        }
    });
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.migrate_all(&options)));
    DONE.store(true, SeqCst);
    hog.join().unwrap();
    HELD.lock().unwrap_or_else(|e| e.into_inner()).clear();
    assert!(ran.is_err(), "the callback's panic reaches the caller");
    println!("THE-PANIC-CAME-THROUGH");
}

/// A worker that panics (a callback) while its window holds buckets,
/// while another worker's bucket waits for descriptors: the run ends and
/// the panic reaches the caller. Before, the waiting worker waited for
/// ever for the dead worker's buckets to close (5 runs of 6 hung, in an
/// outside review's probe this test is made from).
#[test]
fn a_panicking_worker_does_not_hang_a_run_short_of_descriptors() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    drop(fleet(&root));
    let out = dir.path().join("out");
    let mut command =
        child::command_after("ulimit -n 256", "child_panics_short_of_descriptors", &root);
    let file = File::create(&out).unwrap();
    command.stdout(file.try_clone().unwrap()).stderr(file);
    let mut running = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while running.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            running.kill().unwrap();
            running.wait().unwrap();
            panic!("the run hung: {}", std::fs::read_to_string(&out).unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let said = std::fs::read_to_string(&out).unwrap();
    assert!(said.contains("THE-PANIC-CAME-THROUGH"), "{said}");
}
