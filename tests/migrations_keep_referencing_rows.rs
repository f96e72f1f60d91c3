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

/// Seed rows a migration inserts, children included, are in every new
/// tenant (the template database, and the run on an empty database before
/// any tenant's, turn foreign keys off too) and survive a later rebuild of
/// their parent table, in a new tenant as in a migrated one (a review:
/// with foreign keys on there, the rebuild was refused, or, with ON DELETE
/// CASCADE, new tenants silently lost the seeded children).
#[test]
fn seeded_children_survive_a_rebuild_in_new_and_migrated_tenants_alike() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![Migration::new(
        "0001_plans",
        "CREATE TABLE plans (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE features (id INTEGER PRIMARY KEY,
             plan_id INTEGER NOT NULL REFERENCES plans (id) ON DELETE CASCADE);
         INSERT INTO plans (id, name) VALUES (1, 'free');
         INSERT INTO features (plan_id) VALUES (1), (1);",
    )];
    let m = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(seeds.clone()))
        .build()
        .unwrap();
    m.create_tenant("old").unwrap();
    drop(m);
    let mut rebuilt = seeds;
    rebuilt.push(Migration::new(
        "0002_plans_price",
        "CREATE TABLE plans_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price INTEGER);
         INSERT INTO plans_new (id, name) SELECT id, name FROM plans;
         DROP TABLE plans;
         ALTER TABLE plans_new RENAME TO plans;",
    ));
    let m = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(rebuilt))
        .build()
        .unwrap();
    m.migrate_tenant("old").unwrap();
    m.create_tenant("new").unwrap();
    for name in ["old", "new"] {
        let features: i64 = m
            .connection(name)
            .unwrap()
            .query_row("SELECT count(*) FROM features", [], |r| r.get(0))
            .unwrap();
        assert_eq!(features, 2, "{name}");
    }
}

/// Only the rows a step leaves pointing nowhere fail it: orphans already
/// in a tenant (left by a connection with foreign keys off) do not make
/// every later migration of it fail, and a foreign key SQLite cannot check
/// (to a column that is not unique) does not stop migrations at all (a
/// review).
#[test]
fn orphans_already_there_and_an_uncheckable_key_do_not_stop_migrations() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let db = RootConfig::new(dir.path()).database_path("acme").unwrap();
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.execute_batch("PRAGMA foreign_keys = OFF; INSERT INTO items (owner_id) VALUES (404);")
        .unwrap();
    let unrelated = Migration::new("0003_tags", "CREATE TABLE tags (name TEXT);");
    let m = manager(dir.path(), Some(unrelated.clone()));
    let outcome = m.migrate_tenant("acme").unwrap();
    assert_eq!((outcome.from, outcome.to), (2, 3));
    drop(m);
    // PRAGMA foreign_key_check fails ("foreign key mismatch") from now on.
    raw.execute_batch(
        "CREATE TABLE loose (name TEXT); CREATE TABLE tied (name TEXT REFERENCES loose (name));",
    )
    .unwrap();
    drop(raw);
    let mut list = schema();
    list.push(unrelated);
    list.push(Migration::new("0004_more", "CREATE TABLE more (x);"));
    let m = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(list))
        .build()
        .unwrap();
    let outcome = m.migrate_tenant("acme").unwrap();
    assert_eq!((outcome.from, outcome.to), (3, 4));
}
