//! A root is always a literal path, whatever characters it holds: SQLite
//! never reads it as a URI. The relative case changes the working
//! directory, so it is the only test in this binary that uses a relative
//! path.

mod common;

use std::fs;
use std::path::Path;

use tenanted::{Migrations, RootConfig, TenantManager};

fn notes(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// Creates, writes, reads back and checks the status of tenant `acme`.
fn use_acme(m: &TenantManager) {
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('hello')", [])
        .unwrap();
    drop(conn);
    let mut rows = Vec::new();
    let status = m
        .migration_status_each(|row| rows.push(row.clone()))
        .unwrap();
    assert_eq!((status.total(), rows.len()), (1, 1));
    assert_eq!(*rows[0].version.as_ref().unwrap(), 3);
    assert!(m.migrate_all(&Default::default()).unwrap().is_success());
}

#[test]
fn a_relative_root_named_file_colon_is_that_directory_not_a_uri() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    // Where SQLite would go if it read `file:tenants` as a URI: another
    // root with the same tenant, one migration behind the real one.
    let one: Vec<_> = common::three_migrations().into_iter().take(1).collect();
    let decoy = TenantManager::builder(RootConfig::new("tenants"), Migrations::new(one))
        .build()
        .unwrap();
    decoy.create_tenant("acme").unwrap();
    drop(decoy);
    let decoy_files = common::files_under(&dir.path().join("tenants"));

    let m = common::manager(Path::new("file:tenants"));
    use_acme(&m);
    let relative = m.root().database_path("acme").unwrap();
    drop(m);

    let literal = dir.path().join(&relative);
    assert!(literal.starts_with(dir.path().join("file:tenants")));
    assert_eq!((notes(&literal), user_version(&literal)), (1, 3));
    let decoy_db = dir
        .path()
        .join(relative.strip_prefix("file:tenants").map_or_else(
            |_| panic!("{} is not under file:tenants", relative.display()),
            |rest| Path::new("tenants").join(rest),
        ));
    assert_eq!((notes(&decoy_db), user_version(&decoy_db)), (0, 1));
    assert_eq!(
        common::files_under(&dir.path().join("tenants")),
        decoy_files
    );
    let mut top: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["file:tenants", "tenants"]);
}

#[test]
fn an_absolute_root_with_uri_characters_is_a_plain_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("file:x?mode=ro&immutable=1#y%41");
    let m = common::manager(&root);
    use_acme(&m);
    let db = m.root().database_path("acme").unwrap();
    drop(m);
    assert!(db.starts_with(&root));
    assert_eq!((notes(&db), user_version(&db)), (1, 3));
    let top: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(top.len(), 1, "only the root itself: {top:?}");
}
