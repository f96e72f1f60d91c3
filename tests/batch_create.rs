//! `create_tenants`: many tenants at once, each exactly as `create_tenant`
//! would make it, with a report name by name; batches racing over the same
//! names (in threads and in processes, in any order) create each tenant
//! exactly once and never deadlock.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::child;
use tenanted::{Error, TenantManager};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:04}")).collect()
}

fn assert_whole(m: &TenantManager, name: &str) {
    let path = m.root().database_path(name).unwrap();
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok", "{name}");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "{name} is at the latest schema");
}

/// No scratch, lock or other hidden file is left beside any tenant.
fn assert_no_debris(dir: &Path) {
    let hidden: Vec<_> = common::tenant_files_under(dir)
        .into_iter()
        .filter(|f| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert_eq!(hidden, Vec::<String>::new());
}

#[test]
fn a_batch_creates_each_tenant_whole_and_reports_each_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("tenant-0007").unwrap();
    let mut given = names(300);
    given.push("tenant-0010".into()); // twice
    given.push("bad/name".into());
    let report = m.create_tenants(&given).unwrap();
    assert_eq!(report.created.len(), 299);
    assert_eq!(report.existed.len(), 1);
    assert_eq!(report.existed[0].as_str(), "tenant-0007");
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(*report.failed[0].1, Error::BadTenantName { .. }));
    assert!(!report.is_success());
    let created: Vec<&str> = report.created.iter().map(|t| t.as_str()).collect();
    let mut in_order = created.clone();
    in_order.sort();
    assert_eq!(created, in_order, "reported in the order given");
    assert_eq!(common::sorted_tenants(&m), names(300));
    for name in names(300) {
        assert_whole(&m, &name);
    }
    m.connection("tenant-0299")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES ('x')", [])
        .unwrap();
    assert_no_debris(dir.path());
}

/// Tenants that exist already, spread over every chunk of the batch: each
/// is refused while it is being prepared, beside the chunk before it
/// being synced and published on another thread, and the rest are made.
#[test]
fn refusals_in_every_chunk_leave_the_others_whole() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    let existing: Vec<String> = names(300).into_iter().step_by(7).collect();
    m.create_tenants(&existing).unwrap();
    let report = m.create_tenants(names(300)).unwrap();
    let existed: Vec<String> = report.existed.iter().map(|t| t.to_string()).collect();
    assert_eq!(existed, existing);
    assert_eq!(report.created.len(), 300 - existing.len());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(common::sorted_tenants(&m), names(300));
    for name in names(300) {
        assert_whole(&m, &name);
    }
    assert_no_debris(dir.path());
}

#[test]
fn batches_racing_in_threads_create_each_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(common::manager(dir.path()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut given = names(200);
                // Every thread in another order: the batch orders its locks.
                given.rotate_left(i * 50);
                if i % 2 == 1 {
                    given.reverse();
                }
                m.create_tenants(&given).unwrap()
            })
        })
        .collect();
    let reports: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created: usize = reports.iter().map(|r| r.created.len()).sum();
    assert_eq!(created, 200, "each tenant created by exactly one batch");
    assert!(reports.iter().all(|r| r.is_success()));
    assert_eq!(common::sorted_tenants(&m), names(200));
    for name in names(200) {
        assert_whole(&m, &name);
    }
    assert_no_debris(dir.path());
}

#[test]
fn batches_racing_in_processes_create_each_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    common::manager(dir.path()).create_tenant("warmup").unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| child::spawn(&mut child::command("child_batch", dir.path())))
        .collect();
    let created: usize = children
        .into_iter()
        .map(|c| {
            let out = child::wait(c);
            // libtest prints a test's own output after "test NAME ... ".
            let said = out.split("CREATED ").nth(1).expect("the child reports");
            let digits: String = said.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(created, 200, "each tenant created by exactly one process");
    let m = common::manager(dir.path());
    let mut expected = names(200);
    expected.push("warmup".into());
    expected.sort();
    assert_eq!(common::sorted_tenants(&m), expected);
    for name in names(200) {
        assert_whole(&m, &name);
    }
    assert_no_debris(dir.path());
}

#[test]
#[ignore = "child process of batches_racing_in_processes_create_each_tenant_once"]
fn child_batch() {
    let root = child::root().expect("run by its parent test");
    let m = common::manager(&root);
    let mut given = names(200);
    given.rotate_left(std::process::id() as usize % 200);
    let report = m.create_tenants(&given).unwrap();
    assert!(report.is_success(), "{report:?}");
    println!("CREATED {}", report.created.len());
}

#[test]
fn a_batch_fits_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    common::manager(dir.path()).create_tenant("warmup").unwrap();
    let mut command = child::command_after("ulimit -n 128", "child_batch_under_ulimit", dir.path());
    let out = child::run(&mut command);
    assert!(out.contains("CREATED 100"), "{out}");
}

#[test]
#[ignore = "child process of a_batch_fits_a_low_descriptor_limit"]
fn child_batch_under_ulimit() {
    let root = child::root().expect("run by its parent test");
    let m = common::manager(&root);
    let report = m.create_tenants(names(100)).unwrap();
    assert!(report.is_success(), "{report:?}");
    println!("CREATED {}", report.created.len());
    for name in names(100) {
        assert_whole(&m, &name);
    }
}
