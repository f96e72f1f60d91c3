//! Every thread tenanted starts has wholly ended, not only its work, by
//! the time the call that started it returns (a fleet run) or the manager
//! that started it is dropped (the connector threads). A process that
//! exits while one of its threads is still ending can corrupt its heap
//! (an outside probe: the CLI crashed as it exited, 3 times in 19,300
//! runs under load).
//!
//! A thread's end is made slow on purpose: a thread-local value, set by a
//! hook tenanted runs on that thread, sleeps as it is dropped, which is
//! among the last things a thread does. Alone in its binary (with a lock
//! between its tests): it counts the whole process's threads.

#![cfg(target_os = "linux")]

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// One test at a time: each counts the process's threads.
static ALONE: Mutex<()> = Mutex::new(());

/// Sleeps as its thread ends.
struct SlowEnd;

impl Drop for SlowEnd {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(150));
    }
}

thread_local! {
    static ENDS_SLOWLY: RefCell<Option<SlowEnd>> = const { RefCell::new(None) };
}

/// Makes the calling thread's end slow.
fn end_slowly() {
    ENDS_SLOWLY.with(|slot| *slot.borrow_mut() = Some(SlowEnd));
}

/// The threads of this process, by their kernel ids.
fn threads() -> BTreeSet<String> {
    (std::fs::read_dir("/proc/self/task").unwrap())
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_backup_run_returns_after_its_threads_have_ended() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(&dir.path().join("root"));
    for i in 0..100 {
        m.create_tenant(&format!("t{i:03}")).unwrap();
    }
    let before = threads();
    // The hook runs on the run's workers and on the threads that finish
    // their windows of copies.
    let options = tenanted::BackupOptions::new()
        .jobs(4)
        .after_each(|_| end_slowly());
    let report = m.backup_all(dir.path().join("backup"), &options).unwrap();
    let after = threads();
    assert_eq!(report.succeeded(), 100);
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "threads still there: {left:?}");
}

#[test]
fn a_dropped_manager_leaves_no_connector_thread_behind() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    common::manager(dir.path()).create_tenant("acme").unwrap();
    let before = threads();
    // The hook runs where each connection is opened: the first on the
    // caller's thread, the next on a connector thread.
    let m = common::builder(dir.path())
        .connector_threads(2)
        .connection_init(|_| {
            end_slowly();
            Ok(())
        })
        .build()
        .unwrap();
    let first = m.connection("acme").unwrap();
    let second = m.connection("acme").unwrap();
    drop((first, second));
    drop(m);
    let after = threads();
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "threads still there: {left:?}");
}
