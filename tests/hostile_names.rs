//! Names built to escape the root: never a path outside it, never a panic.

mod common;

use std::path::{Component, Path};

use proptest::prelude::*;
use tenanted::{RootConfig, TenantName};

fn assert_safe(root: &RootConfig, name: &str) {
    let accepted = TenantName::new(name).is_ok();
    match root.database_path(name) {
        Ok(path) => {
            assert!(accepted, "{name:?}: path given for a rejected name");
            let rest = path.strip_prefix(root.root_dir()).expect("inside the root");
            assert!(
                rest.components().all(|c| matches!(c, Component::Normal(_))),
                "{name:?} -> {}",
                path.display()
            );
            assert!(rest.components().count() >= 1);
        }
        Err(_) => assert!(!accepted, "{name:?}: accepted name gave no path"),
    }
}

const TRICKS: &[&str] = &[
    "..",
    ".",
    "...",
    "../",
    "..\\",
    "./x",
    "a/../b",
    "a/./b",
    "/etc/passwd",
    "\\\\server\\share",
    "\\",
    "%2e%2e",
    "%2e%2e%2f",
    "..%2f",
    "%00",
    "\0",
    "a\0b",
    "acme\0.sqlite3",
    "\u{FF0E}\u{FF0E}",
    "\u{2025}",
    "\u{2024}\u{2024}",
    "a\u{FF0F}b",
    "a\u{2215}b",
    "a\u{2044}b",
    "a\u{29F8}b",
    "\u{202E}acme",
    "acme\u{200B}",
    " acme",
    "acme ",
    "acme\n",
    "acme\r",
    "acme\t",
    "~root",
    "$HOME",
    "`id`",
    "acme;rm -rf",
    "a|b",
    "a>b",
    "a:b",
    "a*b",
    "a?b",
    "C:\\x",
    "c:",
    "-rf",
    "_x",
    ".hidden",
    "..hidden",
];

#[test]
fn curated_traversal_tricks_are_rejected() {
    let root = RootConfig::new("/srv/tenants");
    for name in TRICKS {
        assert!(TenantName::new(name).is_err(), "{name:?} must be rejected");
        assert_safe(&root, name);
    }
    let overlong = "a".repeat(10_000);
    assert!(TenantName::new(&overlong).is_err());
    for ok in ["a..", "a.b.c", "CON", "nul", "0", "x-y_z.9"] {
        assert!(TenantName::new(ok).is_ok(), "{ok:?} is a safe name");
        assert_safe(&root, ok);
    }
}

#[test]
fn curated_tricks_never_touch_the_disk_outside_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let m = tenanted::TenantManager::builder(
        RootConfig::new(outer.path().join("root")),
        tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
    )
    .build()
    .unwrap();
    for name in TRICKS {
        assert!(m.create_tenant(name).is_err());
        assert!(m.destroy_tenant(name).is_err());
        assert!(m.connection(name).is_err());
        assert!(m.migrate_tenant(name).is_err());
    }
    let entries: Vec<_> = std::fs::read_dir(outer.path()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

fn tricky_alphabet() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('.'),
            Just('/'),
            Just('\\'),
            Just('%'),
            Just('2'),
            Just('e'),
            Just('\0'),
            Just('a'),
            Just('\u{FF0E}'),
            Just('\u{FF0F}'),
            Just('\u{2215}'),
            Just(' '),
            Just('-'),
            Just('_'),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_unicode_bytes_and_tricks_never_escape(
        unicode in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        tricky in tricky_alphabet(),
    ) {
        let root = RootConfig::new("/srv/tenants").template("%{bucket}/%{tenant}/main.sqlite3");
        assert_safe(&root, &unicode);
        assert_safe(&root, &String::from_utf8_lossy(&bytes));
        assert_safe(&root, &tricky);
        let flat = RootConfig::new(Path::new("/srv/t")).template("%{tenant}.sqlite3").buckets(1);
        assert_safe(&flat, &tricky);
    }
}
