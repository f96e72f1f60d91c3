//! Two `TenantManager`s on one root in one process hold each other's
//! tenants as two processes do: a destroy, a replacing restore by one
//! waits for the other to let go. SQLite's POSIX locks cannot tell them
//! apart (they belong to the process), so a destroy used to see nobody
//! and delete the file under the other manager's cached pool, which went
//! on acknowledging writes to it that were lost.

mod common;

use std::time::Duration;

use common::*;
use tenanted::{Error, RestoreOptions, TenantManager, WaitedFor};

fn serving(root: &std::path::Path) -> TenantManager {
    builder(root)
        .watch_interval(Duration::from_millis(20))
        .build()
        .unwrap()
}

fn notes(m: &TenantManager) -> i64 {
    (m.connection("acme").unwrap())
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_destroy_waits_for_the_other_manager_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let a = serving(dir.path());
    a.create_tenant("acme").unwrap();
    (a.connection("acme").unwrap())
        .execute("INSERT INTO notes (body) VALUES ('x')", [])
        .unwrap();
    let b = builder(dir.path())
        .destroy_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    b.destroy_tenant("acme").unwrap();
    // a's pool was retired before the file went: no write of a reaches a
    // deleted file.
    let after = a.connection("acme").map(drop);
    assert!(
        matches!(after, Err(Error::TenantDoesNotExist { .. })),
        "{after:?}"
    );
    assert_eq!(a.stats().open_pools, 0);
}

#[test]
fn a_connection_the_other_manager_keeps_out_makes_the_destroy_busy() {
    let dir = tempfile::tempdir().unwrap();
    let a = serving(dir.path());
    a.create_tenant("acme").unwrap();
    let held = a.connection("acme").unwrap();
    held.execute("INSERT INTO notes (body) VALUES ('kept')", [])
        .unwrap();
    let b = builder(dir.path())
        .destroy_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let refused = b.destroy_tenant("acme");
    let Err(Error::TenantBusy {
        waited_for: WaitedFor::OpenConnection,
        ..
    }) = &refused
    else {
        panic!("{refused:?}")
    };
    let said = refused.unwrap_err().to_string();
    assert!(
        said.contains("another TenantManager of this process"),
        "{said}"
    );
    // The tenant is intact, and the held connection writes to it.
    held.execute("INSERT INTO notes (body) VALUES ('after')", [])
        .unwrap();
    drop(held);
    assert!(b.tenant_exists("acme").unwrap());
    assert_eq!(notes(&b), 2);
}

#[test]
fn a_replacing_restore_waits_for_the_other_manager_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let a = serving(&root);
    a.create_tenant("acme").unwrap();
    let backup = dir.path().join("acme.bak");
    a.backup_tenant("acme", &backup).unwrap();
    (a.connection("acme").unwrap())
        .execute("INSERT INTO notes (body) VALUES ('before the restore')", [])
        .unwrap();
    let b = builder(&root)
        .destroy_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let replacing = RestoreOptions::new().replace(true);
    b.restore_tenant_opts("acme", &backup, &replacing).unwrap();
    // a serves the restored tenant, and its writes land in it.
    assert_eq!(notes(&a), 0);
    (a.connection("acme").unwrap())
        .execute("INSERT INTO notes (body) VALUES ('after the restore')", [])
        .unwrap();
    assert_eq!(notes(&b), 1);
}
