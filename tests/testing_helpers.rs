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
    let second = testing::shared(|| panic!("not called again")).unwrap();
    assert!(std::ptr::eq(first, second));
    assert!(first.manager().tenant_exists(DEFAULT_TENANT).unwrap());
    assert!(matches!(
        first.manager().create_tenant(DEFAULT_TENANT),
        Err(Error::TenantExists { .. })
    ));
}
