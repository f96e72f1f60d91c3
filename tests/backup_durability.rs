//! `backup_all` puts a copy in place only once its bytes are on disk, and
//! syncs many copies at once: each worker copies a window of tenants into
//! scratch files beside their places, syncs their file system once
//! (`syncfs`), and only then renames each into place. A window whose sync
//! fails puts none of its copies in place and leaves no scratch file.
//!
//! The copies wait in a staging directory of the run's own (in the
//! backup's `.tenanted/`), so a run killed midway leaves no copy and no
//! tenant directory where a listing of the backup would find them, and
//! the run holds one open directory however many copies wait.
//!
//! Before Linux 5.8, whose `syncfs` reports no failed write, each copy is
//! fsynced by itself instead (tested here under a plan that makes
//! `syncfs` silent; the window tests expect a kernel of 5.8 or later).
//!
//! The steps are those of the file-system seam, recorded by a fault plan
//! (under which the run's one worker runs on the test's thread).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use common::{child, manager, tenant_with_rows_in_its_wal};
use tenanted::testing::faults::{FaultPlan, Step, StepTaken};
use tenanted::{BackupOptions, RestoreOptions, RootConfig, TenantManager};

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

/// The steps of one `backup_all` of the fleet into `dest`, recorded (a
/// rehearsal, for a step to act at in the next run), and its report.
fn recorded(m: &TenantManager, dest: &Path) -> (Vec<StepTaken>, tenanted::BackupReport) {
    let plan = FaultPlan::record();
    let report = m.backup_all(dest, &BackupOptions::new()).unwrap();
    (plan.steps(), report)
}

/// As [`recorded`], from the first copy on (the run's records come
/// before).
fn recorded_backup(m: &TenantManager, dest: &Path) -> (Vec<StepTaken>, tenanted::BackupReport) {
    let (steps, report) = recorded(m, dest);
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
    let (steps, _) = recorded(&m, &dir.path().join("rehearsal"));
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

/// Before Linux 5.8 `syncfs` reports no failed write: there every copy
/// is fsynced by itself before it is moved into place, and its directory
/// after.
#[test]
fn where_syncfs_says_nothing_every_copy_is_fsynced_before_it_is_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(&dir.path().join("root"));
    let plan = FaultPlan::record().syncfs_says_nothing();
    let report = m
        .backup_all(dir.path().join("backup"), &BackupOptions::new())
        .unwrap();
    let steps = plan.steps();
    drop(plan);
    assert_eq!(report.succeeded(), TENANTS, "{report}");
    let renames: Vec<usize> = (0..steps.len())
        .filter(|&i| is_put_in_place(&steps[i]))
        .collect();
    assert_eq!(renames.len(), TENANTS);
    let mut made = 0;
    for (copy, &placed) in renames.iter().enumerate() {
        let scratch = (made..placed)
            .find(|&i| is_scratch_copy(&steps[i]))
            .unwrap();
        let own_sync = |s: &StepTaken| s.step == Step::Sync && s.name == steps[scratch].name;
        assert!(
            steps[scratch..placed].iter().any(own_sync),
            "copy {copy} was put in place without its own fsync: {steps:#?}"
        );
        assert_eq!(
            steps[placed + 1].step,
            Step::Sync,
            "copy {copy}: its directory"
        );
        made = placed;
    }
}

/// There, a copy whose fsync fails is no backup: its tenant's line says
/// so, and nothing of it is left; the other tenants are backed up.
#[test]
fn where_syncfs_says_nothing_a_copy_whose_fsync_fails_is_not_put_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let m = fleet(&dir.path().join("root"));
    let rehearsal = FaultPlan::record().syncfs_says_nothing();
    m.backup_all(dir.path().join("rehearsal"), &BackupOptions::new())
        .unwrap();
    let steps = rehearsal.steps();
    drop(rehearsal);
    // The fsync of the fifth copy.
    let fifth = (0..steps.len())
        .filter(|&i| is_scratch_copy(&steps[i]))
        .nth(4)
        .unwrap();
    let own_sync = (fifth..steps.len())
        .find(|&i| steps[i].step == Step::Sync && steps[i].name == steps[fifth].name)
        .unwrap();

    let backup = dir.path().join("backup");
    let plan = FaultPlan::fail_step(own_sync + 1, EIO).syncfs_says_nothing();
    let report = m.backup_all(&backup, &BackupOptions::new()).unwrap();
    drop(plan);
    assert_eq!(report.failed(), 1, "{report}");
    assert_eq!(report.succeeded(), TENANTS - 1, "{report}");
    let line = &report.failures[0];
    assert_eq!(line.tenant.as_str(), "t04");
    let message = line.error.as_ref().unwrap().to_string();
    assert!(
        message.contains("t04") && message.contains("syncing the copy"),
        "{message}"
    );
    assert!(
        !line.path.exists(),
        "{:?} was put in place unsynced",
        line.path
    );
    assert_eq!(hidden_files(&backup), Vec::<String>::new());
    let listed = tenanted::RootConfig::new(&backup).tenants().unwrap();
    assert_eq!(listed.count(), TENANTS - 1);
}

/// What `backup_all` of `root` into `root/../backup` did, as one line.
#[test]
#[ignore = "a child process of the descriptor-limit and kill probes"]
fn child_backs_up() {
    let Some(root) = child::root() else { return };
    let m = manager(&root);
    let dest = root.parent().unwrap().join("backup");
    let jobs = std::env::var("BACKUP_JOBS").map_or(1, |j| j.parse().unwrap());
    let mut options = BackupOptions::new().jobs(jobs);
    if std::env::var_os("EXIT_AFTER_FIRST").is_some() {
        options = options.after_each(|_| std::process::exit(7));
    }
    let report = m.backup_all(&dest, &options).unwrap();
    println!(
        "SUCCEEDED={} FAILED={}",
        report.succeeded(),
        report.failed()
    );
    if let Some(line) = report.failures.first() {
        println!("FIRST-ERROR: {}", line.error.as_ref().unwrap());
    }
}

/// A run's waiting copies hold no descriptor each: 4 workers back up 200
/// tenants under a limit of 128 open files (with an open directory per
/// waiting copy, 82-89 of them failed with EMFILE).
#[test]
fn a_run_under_a_low_descriptor_limit_backs_up_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    for i in 0..200 {
        m.create_tenant(&format!("t{i:03}")).unwrap();
    }
    drop(m);
    let out = child::command_after("ulimit -n 128", "child_backs_up", &root)
        .env("BACKUP_JOBS", "4")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("SUCCEEDED=200 FAILED=0"),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process killed while copies wait for their window's sync leaves no
/// copy beside the tenants' places and no tenant directory without its
/// database (the backup lists exactly the tenants it holds); the next
/// run into the directory removes the copies left in the staging
/// directory.
#[test]
fn a_run_killed_mid_window_leaves_no_copy_where_a_listing_looks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = fleet(&root);
    let out = child::command("child_backs_up", &root)
        .env("EXIT_AFTER_FIRST", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let backup = dir.path().join("backup");
    assert_eq!(hidden_files(&backup), Vec::<String>::new());
    let layout = RootConfig::new(&backup);
    let listed: Vec<String> = (layout.tenants().unwrap())
        .map(|t| t.unwrap().to_string())
        .collect();
    assert_eq!(
        listed.len(),
        1,
        "the first window's first copy only: {listed:?}"
    );
    assert!(layout.database_path(&listed[0]).unwrap().exists());
    let records = backup.join(".tenanted");
    let staged = |records: &Path| {
        (std::fs::read_dir(records).unwrap())
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("staging-")
            })
            .count()
    };
    assert_eq!(staged(&records), 1, "the killed run's staging directory");
    let report = m.backup_all(&backup, &BackupOptions::new()).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(staged(&records), 0);
    assert_eq!(layout.tenants().unwrap().count(), TENANTS);
}

/// A tenant replaced during its copy, whose new file then cannot be
/// opened, fails, and leaves no empty tenant directory in the backup.
#[test]
fn a_copy_retried_and_failed_leaves_no_empty_tenant_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    tenant_with_rows_in_its_wal(&m, "acme", 50);
    let smaller = dir.path().join("smaller.sqlite3");
    m.create_tenant("small").unwrap();
    m.backup_tenant("small", &smaller).unwrap();
    m.destroy_tenant("small").unwrap();
    // Where the copy opens acme's -wal, from a rehearsal.
    let (steps, _) = recorded(&m, &dir.path().join("rehearsal"));
    let wal = |s: &StepTaken| {
        s.step == Step::Open && s.name.file_name().is_some_and(|n| n == "main.sqlite3-wal")
    };
    let step = 1 + steps.iter().position(wal).expect("the copy opens the -wal");
    let other = manager(&root);
    let db = m.root().database_path("acme").unwrap();
    let plan = FaultPlan::interrupt_step(step, move || {
        // Replaced (the copy starts again), then not a database.
        let replace = RestoreOptions::new().replace(true);
        other
            .restore_tenant_opts("acme", &smaller, &replace)
            .unwrap();
        drop(other);
        std::fs::write(&db, b"this is not a database, not at all, no").unwrap();
    });
    let backup = dir.path().join("backup");
    let report = m.backup_all(&backup, &BackupOptions::new()).unwrap();
    drop(plan);
    assert_eq!(report.failed(), 1, "{report}");
    let dest = RootConfig::new(&backup).database_path("acme").unwrap();
    assert!(
        !dest.parent().unwrap().exists(),
        "an empty tenant directory in the backup"
    );
    assert_eq!(RootConfig::new(&backup).tenants().unwrap().count(), 0);
}

/// An encrypted tenant destroyed (its key with it) while its copy waits
/// for the window's sync is not put in the backup: a copy under a key
/// nobody keeps is no backup.
#[cfg(feature = "encryption")]
#[test]
fn an_encrypted_tenant_destroyed_while_its_copy_waits_is_not_in_the_backup() {
    use std::sync::Arc;
    use tenanted::{MasterKey, RootKeyStore};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let master = MasterKey::generate().unwrap();
    let build = || {
        common::builder(&root)
            .encryption(RootKeyStore::new(&root, master.clone()))
            .build()
            .unwrap()
    };
    let m = build();
    for i in 0..4 {
        m.create_tenant(&format!("a{i}")).unwrap();
    }
    // The second copy's creation, from a rehearsal: a0's copy waits.
    let (steps, _) = recorded(&m, &dir.path().join("rehearsal"));
    let second = (0..steps.len())
        .filter(|&i| is_scratch_copy(&steps[i]))
        .nth(1)
        .unwrap();
    let destroyer = build();
    let plan = FaultPlan::interrupt_step(second + 1, move || {
        destroyer.destroy_tenant("a0").unwrap();
    });
    let backup = dir.path().join("backup");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let each = Arc::clone(&lines);
    let options = BackupOptions::new().after_each(move |line| {
        each.lock()
            .unwrap()
            .push((line.tenant.to_string(), line.succeeded()));
    });
    let report = m.backup_all(&backup, &options).unwrap();
    drop(plan);
    assert!(!m.tenant_exists("a0").unwrap(), "the interruption ran");
    let a0 = lines.lock().unwrap()[0].clone();
    assert_eq!(a0, ("a0".to_owned(), false), "{report}");
    let dest = RootConfig::new(&backup).database_path("a0").unwrap();
    assert!(
        !dest.exists(),
        "a copy under a destroyed key is in the backup"
    );
    assert_eq!(report.succeeded(), 3, "{report}");
}

fn staging_lock(s: &StepTaken) -> bool {
    s.step == Step::Lock && s.name.to_str().is_some_and(|n| n.starts_with("staging-"))
}

/// Two runs into one directory: run B's sweep of stale staging
/// directories finds run A's just made and not yet locked. B holds the
/// lock until the directory is gone, so A fails to lock it and makes
/// another, and loses no tenant (when B let go of the lock before
/// removing it, A locked it, B removed it, and 39 of A's 40 tenants
/// failed with ENOENT).
#[test]
fn a_run_sweeping_stale_staging_never_removes_a_live_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    for i in 0..40 {
        m.create_tenant(&format!("t{i:02}")).unwrap();
    }
    let (steps, _) = recorded(&m, &dir.path().join("r1"));
    let k_a = steps.iter().position(staging_lock).unwrap() + 1;
    std::fs::create_dir(dir.path().join("r1/.tenanted/staging-1-0")).unwrap();
    let (steps, _) = recorded(&m, &dir.path().join("r1"));
    let k_b = steps
        .iter()
        .position(|s| staging_lock(s) && s.name == Path::new("staging-1-0"))
        .unwrap()
        + 2;
    eprintln!("k_a {k_a} k_b {k_b} next {:?}", steps[k_b - 1]);

    let backup = dir.path().join("backup");
    let (a_made_tx, a_made_rx) = mpsc::channel::<()>();
    let (b_checked_tx, b_checked_rx) = mpsc::channel::<()>();
    let (a_hook_tx, a_hook_rx) = mpsc::channel::<()>();
    let m = &m;
    let b_dest = &backup;
    std::thread::scope(|s| {
        let b = s.spawn(move || {
            a_made_rx.recv().unwrap();
            let plan = FaultPlan::interrupt_step(k_b, move || {
                b_checked_tx.send(()).unwrap();
                a_hook_rx.recv_timeout(Duration::from_secs(60)).unwrap();
            });
            let r = m.backup_all(b_dest, &BackupOptions::new());
            drop(plan);
            r
        });
        let fired = AtomicBool::new(false);
        let hook_tx = Mutex::new(a_hook_tx);
        let opts = BackupOptions::new().after_each(move |_| {
            if !fired.swap(true, Ordering::SeqCst) {
                hook_tx.lock().unwrap().send(()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let plan = FaultPlan::interrupt_step(k_a, move || {
            a_made_tx.send(()).unwrap();
            b_checked_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        });
        let report_a = m.backup_all(&backup, &opts).unwrap();
        drop(plan);
        let report_b = b.join().unwrap().unwrap();
        eprintln!(
            "B: {} ok {} failed",
            report_b.succeeded(),
            report_b.failed()
        );
        eprintln!(
            "A: {} ok {} failed",
            report_a.succeeded(),
            report_a.failed()
        );
        for line in report_a.failures.iter().take(3) {
            eprintln!("  {}", line.error.as_ref().unwrap());
        }
        assert_eq!(report_a.failed(), 0, "A lost tenants to B's sweep");
    });
}
