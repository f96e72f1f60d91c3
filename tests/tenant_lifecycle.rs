//! Creating and destroying tenants: atomic, race-free, leaving no trace.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use tenanted::{Error, Migrations, RootConfig, TenantManager};

#[test]
fn create_then_list_then_exists() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    assert_eq!(sorted_tenants(&m), Vec::<String>::new());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    assert_eq!(sorted_tenants(&m), ["acme", "globex"]);
    assert!(m.tenant_exists("acme").unwrap());
    assert!(!m.tenant_exists("nobody").unwrap());
    assert!(matches!(
        m.tenant_exists("../x"),
        Err(Error::BadTenantName { .. })
    ));
}

#[test]
fn a_new_tenant_is_at_the_latest_version_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    let conn = rusqlite::Connection::open(m.root().database_path("acme").unwrap()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!((version, mode.as_str()), (3, "wal"));
}

#[test]
fn create_twice_is_tenant_exists_and_if_not_exists_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    let err = m.create_tenant("acme").unwrap_err();
    assert!(matches!(err, Error::TenantExists { .. }), "{err}");
    assert!(err.to_string().contains("acme") && err.to_string().contains("main.sqlite3"));
    assert!(!m.create_tenant_if_not_exists("acme").unwrap());
    assert!(m.create_tenant_if_not_exists("globex").unwrap());
}

#[test]
fn eight_threads_creating_one_name_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    for round in 0..5 {
        let name = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(8));
        let results: Vec<_> = (0..8)
            .map(|_| {
                let (m, barrier, name) = (m.clone(), Arc::clone(&barrier), name.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    m.create_tenant(&name)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(Error::TenantExists { .. })))
        );
    }
    assert_eq!(sorted_tenants(&m).len(), 5);
    // No temporary or lock file survives the race.
    assert!(
        tenant_files_under(dir.path())
            .iter()
            .all(|f| !f.contains(".tmp-") && !f.ends_with(".lock"))
    );
}

#[test]
fn a_failing_seed_leaves_no_file_and_no_listing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let err = m
        .create_tenant_with("acme", |tx| -> Result<(), tenanted::BoxError> {
            tx.execute("INSERT INTO notes (body) VALUES ('half')", [])?;
            Err("the seed data is bad".into())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Seed { .. }), "{err}");
    assert!(err.to_string().contains("the seed data is bad") && err.to_string().contains("acme"));
    assert!(!m.tenant_exists("acme").unwrap());
    assert_eq!(sorted_tenants(&m), Vec::<String>::new());
    assert_eq!(tenant_files_under(dir.path()), Vec::<String>::new());
    // And the name is free to create afterwards.
    m.create_tenant("acme").unwrap();
}

#[test]
fn a_seed_runs_before_publication() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant_with("acme", |tx| {
        tx.execute_batch("INSERT INTO notes (body) VALUES ('one'), ('two');")
    })
    .unwrap();
    let n: i64 = m
        .connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn destroy_removes_every_file_and_emptied_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    {
        // Leave -wal and -shm files behind by keeping a connection open.
        let conn = m.connection("acme").unwrap();
        conn.execute("INSERT INTO notes (body) VALUES ('x')", [])
            .unwrap();
    }
    let before = tenant_files_under(dir.path());
    assert!(
        before.iter().any(|f| f.ends_with("main.sqlite3-wal")),
        "{before:?}"
    );
    m.destroy_tenant("acme").unwrap();
    let after = tenant_files_under(dir.path());
    assert!(
        after
            .iter()
            .all(|f| !f.contains("acme") && !f.starts_with("0f")),
        "{after:?}"
    );
    assert_eq!(sorted_tenants(&m), ["globex"]);
    m.destroy_tenant("globex").unwrap();
    assert_eq!(tenant_files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn destroy_of_a_missing_tenant_is_tenant_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let err = m.destroy_tenant("nobody").unwrap_err();
    assert!(matches!(err, Error::TenantDoesNotExist { .. }), "{err}");
    assert!(err.to_string().contains("nobody") && err.to_string().contains("create_tenant"));
    assert_eq!(tenant_files_under(dir.path()), Vec::<String>::new());
    m.create_tenant("acme").unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(matches!(
        m.destroy_tenant("acme"),
        Err(Error::TenantDoesNotExist { .. })
    ));
}

#[test]
fn destroy_then_recreate_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES ('old')", [])
        .unwrap();
    m.destroy_tenant("acme").unwrap();
    m.create_tenant("acme").unwrap();
    let n: i64 = m
        .connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn flat_and_custom_templates_work_end_to_end() {
    for (template, buckets) in [
        ("%{tenant}.sqlite3", 1),
        ("db/%{bucket}/t-%{tenant}.db", 1000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path())
            .template(template)
            .buckets(buckets);
        let m = TenantManager::builder(root, Migrations::new(three_migrations()))
            .build()
            .unwrap();
        m.create_tenant("acme").unwrap();
        m.create_tenant("a.b").unwrap();
        m.connection("acme").unwrap();
        assert_eq!(sorted_tenants(&m), ["a.b", "acme"], "{template}");
        m.destroy_tenant("acme").unwrap();
        m.destroy_tenant("a.b").unwrap();
        assert_eq!(
            tenant_files_under(dir.path()),
            Vec::<String>::new(),
            "{template}"
        );
    }
}

#[test]
fn bad_names_never_touch_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    for name in ["../escape", "a/b", "..", "", "a\0b"] {
        assert!(matches!(
            m.create_tenant(name),
            Err(Error::BadTenantName { .. })
        ));
        assert!(matches!(
            m.destroy_tenant(name),
            Err(Error::BadTenantName { .. })
        ));
        assert!(matches!(
            m.connection(name),
            Err(Error::BadTenantName { .. })
        ));
    }
    assert_eq!(common::files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn migrations_from_dir_reports_bad_directories() {
    let dir = tempfile::tempdir().unwrap();
    let err = Migrations::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no migrations"), "{err}");

    std::fs::create_dir_all(dir.path().join("0001_a")).unwrap();
    std::fs::write(dir.path().join("0001_a/up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::create_dir_all(dir.path().join("0003_c")).unwrap();
    std::fs::write(dir.path().join("0003_c/up.sql"), "CREATE TABLE c (x);").unwrap();
    let err = Migrations::from_dir(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("0003_c") && err.to_string().contains("0002"),
        "{err}"
    );

    std::fs::rename(dir.path().join("0003_c"), dir.path().join("0002_c")).unwrap();
    std::fs::remove_file(dir.path().join("0002_c/up.sql")).unwrap();
    let err = Migrations::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("0002_c/up.sql"), "{err}");

    std::fs::write(dir.path().join("0002_c/up.sql"), "CREATE TABLE c (x);").unwrap();
    // A numbered entry that is not a directory looks like a migration
    // meant to run: an error. Anything else is skipped (with a warning).
    std::fs::write(dir.path().join("0003_c.sql"), "").unwrap();
    let err = Migrations::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("0003_c.sql"), "{err}");
    std::fs::remove_file(dir.path().join("0003_c.sql")).unwrap();

    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    let m = Migrations::from_dir(dir.path()).unwrap();
    assert_eq!(
        m.iter().map(|m| m.name()).collect::<Vec<_>>(),
        ["0001_a", "0002_c"]
    );
    assert!(m.iter().all(|m| m.down_sql().is_none()));
    assert!(Migrations::from_dir(dir.path().join("missing")).is_err());
}

#[test]
fn the_example_schema_loads_with_downs() {
    let m = schema();
    assert!(m.latest_version() >= 3);
    assert!(m.iter().all(|m| m.down_sql().is_some()));
}
