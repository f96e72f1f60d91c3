//! A root on a read-only file system (a read-only bind mount in a private
//! mount namespace, so nothing leaks if the test dies): listing,
//! `tenant_exists`, `migration_status` and a no-op `migrate_all` work;
//! SQLite cannot open a WAL-mode database there without its `-shm` file,
//! so `connection` says so (`ReadOnlyRoot`); every write is refused with an
//! error that names the tenant, and nothing panics.

mod common;

use common::child;
use tenanted::MigrateOptions;
use tenanted::replication::ReplicationSettings;

/// The child test `child` of `parent`, on `root` remounted read-only in
/// the child's own mount namespace (`None` where none can be had).
fn read_only_child(
    root: &std::path::Path,
    child: &str,
    parent: &str,
) -> Option<std::process::Command> {
    let r = root.display();
    let remount = format!("mount --bind '{r}' '{r}' && mount -o remount,bind,ro '{r}'");
    child::in_mount_namespace(&remount, child, root, parent)
}

#[test]
fn a_read_only_root_lists_and_reports_and_refuses_the_rest_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    for name in ["acme", "globex"] {
        m.create_tenant(name).unwrap();
        let conn = m.connection(name).unwrap();
        conn.execute("INSERT INTO notes (body) VALUES ('kept')", [])
            .unwrap();
    }
    // Recorded while the root could be written: the same again is no
    // change, and no error once it cannot.
    let url = "file:///tmp/replica";
    ReplicationSettings::record_directory_mode(m.root(), url).unwrap();
    // Closing every connection checkpoints and removes the -wal and -shm,
    // as a root is left when its service stops.
    drop(m);
    let Some(mut command) = read_only_child(
        dir.path(),
        "child_on_a_read_only_root",
        "a_read_only_root_lists_and_reports_and_refuses_the_rest_by_name",
    ) else {
        return;
    };
    let out = child::run(&mut command);
    eprintln!("{out}");
    assert!(out.contains("ALL REFUSED"), "{out}");
}

#[test]
#[ignore = "child process of a_read_only_root_lists_and_reports_and_refuses_the_rest_by_name"]
fn child_on_a_read_only_root() {
    let root = child::root().expect("run by its parent test");
    assert!(
        std::fs::write(root.join("probe"), b"x").is_err(),
        "the root is read-only"
    );
    let m = common::manager(&root);
    assert_eq!(common::sorted_tenants(&m), ["acme", "globex"]);
    assert!(m.tenant_exists("acme").unwrap());
    let status = m.migration_status().unwrap();
    assert_eq!((status.total(), status.current()), (2, 2));
    let backups = tempfile::tempdir().unwrap();
    let refusals = [
        ("connection", m.connection("acme").map(drop), "acme"),
        ("create", m.create_tenant("initech").map(drop), "initech"),
        ("destroy", m.destroy_tenant("globex"), "globex"),
        ("rollback", m.rollback_tenant("acme", 1).map(drop), "acme"),
        (
            "backup",
            m.backup_tenant("acme", backups.path().join("acme.bak"))
                .map(drop),
            "acme",
        ),
    ];
    for (what, result, tenant) in refusals {
        let e = result.expect_err(what);
        let msg = e.to_string();
        println!("{what}: {msg}");
        assert!(msg.contains(tenant), "{what} names the tenant: {msg}");
    }
    assert!(matches!(
        m.connection("acme"),
        Err(tenanted::Error::ReadOnlyRoot { .. })
    ));
    // A backup's read said "disk I/O error ... the disk failed".
    let backup = m.backup_tenant("acme", backups.path().join("acme.bak"));
    assert!(
        matches!(backup, Err(tenanted::Error::ReadOnlyRoot { .. })),
        "{backup:?}"
    );
    let all = m
        .backup_all(backups.path().join("all"), &tenanted::BackupOptions::new())
        .unwrap();
    let failed: Vec<_> = all
        .failures
        .iter()
        .map(|line| line.error.as_deref())
        .collect();
    assert!(
        failed.len() == 2
            && failed
                .iter()
                .all(|e| matches!(e, Some(tenanted::Error::ReadOnlyRoot { .. }))),
        "{all}"
    );
    // A migration names the tenant's database, and its lock file as the
    // step that failed.
    let db = m.root().database_path("acme").unwrap();
    for (what, result) in [
        ("rollback", m.rollback_tenant("acme", 1).map(drop)),
        ("migrate", m.migrate_tenant_to("acme", 1).map(drop)),
    ] {
        let msg = result.expect_err(what).to_string();
        assert!(msg.contains(&db.display().to_string()), "{what}: {msg}");
        assert!(msg.contains(".acme.lock"), "{what}: {msg}");
    }
    // What replicates the root is recorded or refused, never skipped: a
    // root without the record would take a re-key that leaves plaintext
    // history in the replica (`litestream-config` said nothing, exit 0).
    ReplicationSettings::record_directory_mode(m.root(), "file:///tmp/replica").unwrap();
    let url = "file:///tmp/another-replica";
    for (what, result) in [
        (
            "directory mode",
            ReplicationSettings::record_directory_mode(m.root(), url),
        ),
        ("settings", ReplicationSettings::new(url).record(m.root())),
    ] {
        let msg = result.expect_err(what).to_string();
        println!("{what}: {msg}");
        assert!(msg.contains("record"), "{what} names the record: {msg}");
        assert!(msg.contains(".tenanted/."), "{what} names its file: {msg}");
    }
    // A rebuild is refused before it restores anything: it restored every
    // tenant from the replica, then failed each one as it was published
    // (an outside probe). Refused before Litestream is even run.
    let replica = tenanted::ReplicaTarget::new("file:///tmp/no-replica-here");
    let options = tenanted::replication::RebuildOptions::new(replica)
        .only(["initech"])
        .litestream("/nonexistent/litestream");
    let msg = (m.rebuild_from_replica(&options))
        .expect_err("rebuild")
        .to_string();
    println!("rebuild: {msg}");
    let said_where = msg.contains(&root.display().to_string());
    assert!(msg.contains("read-only") && said_where, "{msg}");
    // Nothing to do is not an error.
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(common::sorted_tenants(&m), ["acme", "globex"]);
    println!("ALL REFUSED");
}

/// An encrypted tenant on a read-only root: its key's proof is the open's
/// first read, and its failure there is the open's (`ReadOnlyRoot`), not
/// a failed set-up of the connection.
#[cfg(feature = "encryption")]
#[test]
fn an_encrypted_tenant_on_a_read_only_root_is_said_read_only() {
    use tenanted::{MasterKey, RootKeyStore};
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let m = common::builder(dir.path())
        .encryption(RootKeyStore::new(dir.path(), master.clone()))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    let Some(mut command) = read_only_child(
        dir.path(),
        "child_opens_an_encrypted_tenant_on_a_read_only_root",
        "an_encrypted_tenant_on_a_read_only_root_is_said_read_only",
    ) else {
        return;
    };
    command.env(MasterKey::ENV, master.to_hex().as_str());
    let out = child::run(&mut command);
    assert!(out.contains("SAID READ-ONLY"), "{out}");
}

#[cfg(feature = "encryption")]
#[test]
#[ignore = "child process of an_encrypted_tenant_on_a_read_only_root_is_said_read_only"]
fn child_opens_an_encrypted_tenant_on_a_read_only_root() {
    use tenanted::{MasterKey, RootKeyStore};
    let root = child::root().expect("run by its parent test");
    let master = MasterKey::from_env().unwrap();
    let m = common::builder(&root)
        .encryption(RootKeyStore::new(&root, master))
        .build()
        .unwrap();
    let backups = tempfile::tempdir().unwrap();
    let attempts = [
        ("connection", m.connection("acme").map(drop)),
        (
            "backup",
            m.backup_tenant("acme", backups.path().join("a.bak"))
                .map(drop),
        ),
    ];
    for (what, said) in attempts {
        assert!(
            matches!(said, Err(tenanted::Error::ReadOnlyRoot { .. })),
            "{what}: {said:?}"
        );
    }
    println!("SAID READ-ONLY");
}
