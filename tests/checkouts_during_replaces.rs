//! Checkouts racing restores that replace their tenant, from another
//! manager (as another process would: it shares no cache with them), get
//! the tenant, or `TenantBeingDestroyed` while a replace holds it: never
//! `TenantDoesNotExist` for a tenant that exists throughout, and never a
//! raw SQLite error from a file swapped under an open. A tenant behind
//! the code's migrations gets `PendingMigration` in place of the tenant.
//!
//! Found by an outside probe (4 processes x 8 threads against a restore
//! loop: 6 to 39 `TenantDoesNotExist` a 20 s run): the open's look and the
//! fence's straddled one replace's swap and the next one's fence; three
//! pools in a row gone stale fell through to "does not exist"; SQLite
//! failing on a replaced file was reported as such.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tenanted::{Error, Migrations, RestoreOptions, RootConfig, TenantManager};

const FLAT: &str = "%{bucket}/%{tenant}.sqlite3";

fn manager(root: &Path, template: Option<&str>, migrations: usize) -> TenantManager {
    let config = match template {
        Some(t) => RootConfig::new(root).template(t),
        None => RootConfig::new(root),
    };
    let mut list = common::three_migrations();
    list.truncate(migrations);
    TenantManager::builder(config, Migrations::new(list))
        .watch_interval(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// 8 threads check `acme` out for `secs` while another manager replaces
/// it from a backup in a loop; every answer that is not `expected` or
/// `TenantBeingDestroyed`.
fn race(template: Option<&str>, pending: bool, secs: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let replacer = manager(&root, template, if pending { 1 } else { 3 });
    replacer.create_tenant("acme").unwrap();
    let backup = dir.path().join("acme.backup");
    replacer.backup_tenant("acme", &backup).unwrap();
    let checker = Arc::new(manager(&root, template, 3));
    let done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (checker, done) = (Arc::clone(&checker), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut wrong = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    match checker.connection("acme").map(drop) {
                        Ok(()) if !pending => {}
                        Err(Error::PendingMigration(_)) if pending => {}
                        Err(Error::TenantBeingDestroyed { .. }) => {}
                        other => wrong.push(format!("{other:?}")),
                    }
                }
                wrong
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let replace = RestoreOptions::new().replace(true);
    let mut replaced = 0;
    while Instant::now() < deadline {
        // Busy (a checkout held it past the wait) is the replacer's answer.
        replaced += usize::from(
            replacer
                .restore_tenant_opts("acme", &backup, &replace)
                .is_ok(),
        );
    }
    done.store(true, Ordering::Relaxed);
    let wrong: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        replaced > 10,
        "only {replaced} replaces: the race was not run"
    );
    wrong
}

#[test]
fn checkouts_racing_replaces_never_hear_the_tenant_does_not_exist() {
    for template in [None, Some(FLAT)] {
        let wrong = race(template, false, 4);
        assert!(
            wrong.is_empty(),
            "{template:?}: {} wrong: {wrong:?}",
            wrong.len()
        );
    }
}

#[test]
fn checkouts_of_a_pending_tenant_racing_replaces_hear_only_that_it_is_pending() {
    let wrong = race(None, true, 4);
    assert!(wrong.is_empty(), "{} wrong: {wrong:?}", wrong.len());
}
