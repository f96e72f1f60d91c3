//! `tenanted::testing`: what users' test suites get.

mod common;

use std::collections::HashSet;

use tenanted::testing::{self, DEFAULT_TENANT, TestRoot};
use tenanted::{Error, Migrations};

#[test]
fn a_test_root_gives_each_test_its_own_tenant_and_cleans_up() {
    let root = TestRoot::new(Migrations::new(common::three_migrations())).unwrap();
    let path = root.path().to_path_buf();
    let name;
    {
        let tenant = root.tenant().unwrap();
        name = tenant.name().to_owned();
        assert!(
            name.contains("a_test_root_gives_each_test_its_own_tenant"),
            "{name}"
        );
        root.manager()
            .connection(tenant.name())
            .unwrap()
            .execute("INSERT INTO notes (body) VALUES ('x')", [])
            .unwrap();
        assert!(root.manager().tenant_exists(&name).unwrap());
    }
    assert!(
        !root.manager().tenant_exists(&name).unwrap(),
        "destroyed on drop"
    );
    assert_eq!(root.default_tenant().unwrap().as_str(), DEFAULT_TENANT);
    assert_eq!(root.default_tenant().unwrap().as_str(), DEFAULT_TENANT);
    drop(root);
    assert!(!path.exists(), "the root is removed on drop");
}

#[test]
fn parallel_tests_never_share_a_tenant() {
    let root = TestRoot::new(Migrations::new(common::three_migrations())).unwrap();
    let names: HashSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let tenant = root.tenant_named("same test name").unwrap();
                    tenant.name().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(names.len(), 8);
    assert!(names.iter().all(|n| n.starts_with("t-same_test_name-")));
}

#[test]
fn the_shared_root_is_made_once_with_its_default_tenant() {
    let first = testing::shared(|| Migrations::new(common::three_migrations())).unwrap();
    let second = testing::shared(|| -> Migrations { panic!("not called again") }).unwrap();
    assert!(std::ptr::eq(first, second));
    assert!(first.manager().tenant_exists(DEFAULT_TENANT).unwrap());
    assert!(matches!(
        first.manager().create_tenant(DEFAULT_TENANT),
        Err(Error::TenantExists { .. })
    ));
}

#[test]
fn shared_takes_what_embed_migrations_gives_and_names_read_alike() {
    // The closure may return a Result, as embed_migrations! does (another
    // test may have made the shared root first: then it is not run).
    let root =
        testing::shared(|| tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations"))
            .unwrap();
    let default = root.default_tenant().unwrap();
    assert_eq!(default.name(), DEFAULT_TENANT);
    let tenant = root.tenant().unwrap();
    assert_eq!(tenant.as_str(), tenant.name());
}

#[test]
fn docs_rs_documents_every_feature() {
    let manifest: String =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let table = manifest
        .split("[package.metadata.docs.rs]")
        .nth(1)
        .expect("a [package.metadata.docs.rs] table");
    let table = table.split("\n[").next().unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.replace(' ', "") == "all-features=true"),
        "docs.rs must build with every feature, or `testing` and the serde impls are invisible there: {table}"
    );
}
