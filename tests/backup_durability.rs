//! `backup_all` puts a copy in place only once its bytes are on disk, and
//! syncs many copies at once: each worker copies a window of tenants into
//! scratch files beside their places, syncs their file system once
//! (`syncfs`), and only then renames each into place. A window whose sync
//! fails puts none of its copies in place and leaves no scratch file.
//!
//! The steps are those of the file-system seam, recorded by a fault plan
//! (under which the run's one worker runs on the test's thread).

mod common;

use std::path::Path;

use common::manager;
use tenanted::testing::faults::{FaultPlan, Step, StepTaken};
use tenanted::{BackupOptions, TenantManager};

const TENANTS: usize = 40;
const EIO: i32 = 5;

fn fleet(root: &Path) -> TenantManager {
    let m = manager(root);
    for i in 0..TENANTS {
        m.create_tenant(&format!("t{i:02}")).unwrap();
    }
    m
}

fn is_scratch_copy(step: &StepTaken) -> bool {
    step.step == Step::Create && name_starts(step, ".main.sqlite3.tmp")
}

fn is_put_in_place(step: &StepTaken) -> bool {
    step.step == Step::Rename && step.name == Path::new("main.sqlite3")
}

fn name_starts(step: &StepTaken, prefix: &str) -> bool {
    (step.name.to_str()).is_some_and(|name| name.starts_with(prefix))
}

/// The steps of one `backup_all` of the fleet into `dest`, from the first
/// copy on (the run's records come before), and the report.
fn recorded_backup(m: &TenantManager, dest: &Path) -> (Vec<StepTaken>, tenanted::BackupReport) {
    let plan = FaultPlan::record();
    let report = m.backup_all(dest, &BackupOptions::new()).unwrap();
    let steps = plan.steps();
    drop(plan);
    let first = steps.iter().position(is_scratch_copy).unwrap();
    (steps[first..].to_vec(), report)
}

/// Every file left in `dir` and below whose name is hidden (a scratch
/// copy, its `-wal`).
fn hidden_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            if name != ".tenanted" {
                found.extend(hidden_files(&entry.path()));
            }
        } else if name.starts_with('.') {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

#[test]
fn every_copy_is_on_disk_before_it_is_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(&dir.path().join("root"));
    let (steps, report) = recorded_backup(&m, &dir.path().join("backup"));
    assert!(report.is_success(), "{report}");
    assert_eq!(report.succeeded(), TENANTS);
    let creates: Vec<usize> = (0..steps.len())
        .filter(|&i| is_scratch_copy(&steps[i]))
        .collect();
    let renames: Vec<usize> = (0..steps.len())
        .filter(|&i| is_put_in_place(&steps[i]))
        .collect();
    assert_eq!((creates.len(), renames.len()), (TENANTS, TENANTS));
    // Copies are put in place in the order they were made: between each
    // one's creation and its rename, its file system was synced.
    for (copy, (&made, &placed)) in creates.iter().zip(&renames).enumerate() {
        let synced = steps[made..placed].iter().any(|s| s.step == Step::Sync);
        assert!(synced, "copy {copy} was put in place unsynced: {steps:#?}");
    }
}

#[test]
fn copies_are_synced_a_window_at_a_time_not_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(&dir.path().join("root"));
    let (steps, _) = recorded_backup(&m, &dir.path().join("backup"));
    let syncs = steps.iter().filter(|s| s.step == Step::Sync).count();
    // 40 tenants: two windows and the run's last sync of the directory
    // entries (one fsync a copy was 40 and more).
    assert_eq!(syncs, 3, "{steps:#?}");
}

#[test]
fn a_window_whose_sync_fails_puts_none_of_its_copies_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(&dir.path().join("root"));
    // Where the first window's sync comes, from a run into another
    // directory (the same steps: one worker, tenants in name order).
    let plan = FaultPlan::record();
    m.backup_all(dir.path().join("rehearsal"), &BackupOptions::new())
        .unwrap();
    let steps = plan.steps();
    drop(plan);
    let first_copy = steps.iter().position(is_scratch_copy).unwrap();
    let sync = first_copy
        + steps[first_copy..]
            .iter()
            .position(|s| s.step == Step::Sync)
            .unwrap();

    let backup = dir.path().join("backup");
    let plan = FaultPlan::fail_step(sync + 1, EIO);
    let report = m.backup_all(&backup, &BackupOptions::new()).unwrap();
    drop(plan);
    assert_eq!(report.failed(), 32, "the first window: {report}");
    assert_eq!(report.succeeded(), TENANTS - 32, "{report}");
    for line in &report.failures {
        let message = line.error.as_ref().unwrap().to_string();
        assert!(message.contains(line.tenant.as_str()), "{message}");
        assert!(message.contains("syncfs"), "{message}");
        assert!(
            !line.path.exists(),
            "{:?} was put in place unsynced",
            line.path
        );
    }
    assert_eq!(hidden_files(&backup), Vec::<String>::new());
    // The tenants of the window that failed are not listed in the backup;
    // the others are, whole.
    let listed = tenanted::RootConfig::new(&backup)
        .tenants()
        .unwrap()
        .count();
    assert_eq!(listed, TENANTS - 32);
}
