//! A migration runs with foreign keys off and checks them before it
//! commits, as SQLite's recipe for changing a table asks: rebuilding a
//! table that other rows reference (create the new one, copy, drop the
//! old, rename) keeps those rows, and a migration that would leave rows
//! pointing nowhere fails, changing nothing. (An outside probe: with the
//! bundled SQLite's foreign keys on, `DROP TABLE users` deleted every
//! item referencing a user, ON DELETE CASCADE, and the run reported
//! success.)

use tenanted::{Error, Migration, Migrations, RootConfig, TenantManager};

fn schema() -> Vec<Migration> {
    vec![
        Migration::new(
            "0001_users",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        ),
        Migration::new(
            "0002_items",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, \
             owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
             note_owner INTEGER REFERENCES users (id) ON DELETE SET NULL);",
        ),
    ]
}

fn manager(root: &std::path::Path, extra: Option<Migration>) -> TenantManager {
    let mut list = schema();
    list.extend(extra);
    TenantManager::builder(RootConfig::new(root), Migrations::new(list))
        .build()
        .unwrap()
}

fn seeded(root: &std::path::Path) {
    let m = manager(root, None);
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    conn.execute_batch(
        "INSERT INTO users (id, name) VALUES (1, 'ann'), (2, 'bob');
         INSERT INTO items (owner_id, note_owner) VALUES (1, 2), (2, 1);",
    )
    .unwrap();
}

fn items(m: &TenantManager) -> (i64, i64) {
    m.connection("acme")
        .unwrap()
        .query_row("SELECT count(*), count(note_owner) FROM items", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
}

#[test]
fn rebuilding_a_referenced_table_keeps_the_rows_that_reference_it() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let rebuild = Migration::new(
        "0003_users_email",
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
         INSERT INTO users_new (id, name) SELECT id, name FROM users;
         DROP TABLE users;
         ALTER TABLE users_new RENAME TO users;",
    );
    let m = manager(dir.path(), Some(rebuild));
    let outcome = m.migrate_tenant("acme").unwrap();
    assert_eq!((outcome.from, outcome.to), (2, 3));
    assert_eq!(items(&m), (2, 2), "the items and their references stay");
    // Pooled connections still enforce foreign keys.
    let conn = m.connection("acme").unwrap();
    let orphan = conn.execute("INSERT INTO items (owner_id) VALUES (99)", []);
    assert!(orphan.is_err(), "a pooled connection let an orphan in");
}

#[test]
fn a_migration_that_would_leave_orphans_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let drop_parents = Migration::new("0003_drop_bob", "DELETE FROM users WHERE id = 2;");
    let m = manager(dir.path(), Some(drop_parents));
    let err = m.migrate_tenant("acme").unwrap_err();
    assert!(
        matches!(err, Error::Migration { version: 2, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("foreign_key_check") && text.contains("acme"),
        "{text}"
    );
    let before = manager(dir.path(), None);
    assert_eq!(items(&before), (2, 2));
    let users: i64 = before
        .connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
}
