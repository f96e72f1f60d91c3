//! `embed_migrations!`: migrations compiled into the binary are the same
//! `Migrations` as `from_dir` reads, and break the same rules the same way.

mod common;

use tenanted::{Error, Migrations, embed_migrations};

#[test]
fn embedded_migrations_equal_the_directory_read_at_run_time() {
    let embedded = embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations").unwrap();
    assert_eq!(embedded, common::schema());
    assert_eq!(embedded.fingerprint(), common::schema().fingerprint());
    let names: Vec<&str> = embedded.iter().map(|m| m.name()).collect();
    assert_eq!(names[0], "0001_create_users");
    assert!(embedded.iter().all(|m| m.down_sql().is_some()));
}

#[test]
fn a_gap_in_embedded_numbering_is_the_same_error_as_on_disk() {
    let embedded = embed_migrations!("$CARGO_MANIFEST_DIR/tests/fixtures/gap_migrations");
    let on_disk = Migrations::from_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gap_migrations"),
    );
    for result in [embedded, on_disk] {
        match result {
            Err(Error::BadMigrations { path, reason }) => {
                assert!(path.ends_with("0003_c"), "{}", path.display());
                assert!(
                    reason.contains("expected migration number 0002"),
                    "{reason}"
                );
            }
            other => panic!("expected BadMigrations, got {other:?}"),
        }
    }
}
