//! Tenant names: the allowlist, and that every accepted name maps to a path
//! strictly inside the root that `tenants()` maps back to the same name.

mod common;

use std::path::{Component, Path};

use proptest::prelude::*;
use tenanted::{Error, RootConfig, TenantName};

#[test]
fn accepts_the_allowlist() {
    for name in [
        "acme",
        "acme-corp_2",
        "a.b",
        "42",
        "A",
        "x".repeat(100).as_str(),
        "a..b",
        "z-",
    ] {
        assert!(TenantName::new(name).is_ok(), "{name:?} should be accepted");
    }
}

#[test]
fn rejects_everything_else_with_the_rule_broken() {
    let long = "a".repeat(101);
    let cases: &[(&str, &str)] = &[
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("", "empty"),
        (".", "'.' and '..'"),
        ("..", "'.' and '..'"),
        (".hidden", "first character"),
        ("%2e%2e", "first character"),
        ("a%2e", "'%'"),
        ("a b", "space"),
        ("ü", "first character"),
        ("aü", "non-ASCII"),
        ("a\0b", "NUL"),
        ("a\nb", "control"),
        ("a\"b", "quote"),
        ("a'b", "quote"),
        ("-a", "first character"),
        ("_a", "first character"),
        ("a:b", "outside"),
        (&long, "longer than 100"),
    ];
    for (name, rule) in cases {
        match TenantName::new(name) {
            Err(Error::BadTenantName { name: n, reason }) => {
                assert_eq!(n, *name);
                assert!(
                    reason.contains(rule),
                    "{name:?}: {reason:?} should mention {rule:?}"
                );
            }
            other => panic!("{name:?} should be rejected, got {other:?}"),
        }
    }
}

#[test]
fn rejected_names_name_the_offending_character_and_where_it_is() {
    let cases: &[(&str, &str)] = &[
        ("a-b_c.d~9", "'~' at byte offset 7"),
        ("a/b", "'/' at byte offset 1"),
        ("ab\\c", "'\\\\' at byte offset 2"),
        ("a b", "' ' at byte offset 1"),
        ("ab%2e", "'%' at byte offset 2"),
        ("a\"b", "'\\\"' at byte offset 1"),
        ("abc'", "'\\'' at byte offset 3"),
        ("a`b", "'`' at byte offset 1"),
        ("a\0b", "'\\0' at byte offset 1"),
        ("ab\nc", "'\\n' at byte offset 2"),
        ("a\u{1b}", "'\\u{1b}' at byte offset 1"),
        ("caf\u{e9}s", "'\u{e9}' at byte offset 3"),
        ("a:b", "':' at byte offset 1"),
        (".hidden", "not '.'"),
        ("\u{fc}ber", "not '\u{fc}'"),
    ];
    for (name, expected) in cases {
        let msg = TenantName::new(name).unwrap_err().to_string();
        assert!(
            msg.contains(expected),
            "{name:?}: {msg:?} should contain {expected:?}"
        );
    }
}

#[test]
fn error_message_says_what_to_do() {
    let msg = TenantName::new("a/b").unwrap_err().to_string();
    assert!(
        msg.contains("\"a/b\"") && msg.contains("path separator") && msg.contains("ASCII letters"),
        "{msg}"
    );
}

#[test]
fn parses_displays_and_borrows() {
    let name: TenantName = "acme".parse().unwrap();
    assert_eq!(name.to_string(), "acme");
    assert_eq!(name.as_ref(), "acme");
    assert_eq!(name, "acme");
    assert!("a/b".parse::<TenantName>().is_err());
}

fn strictly_inside(root: &Path, path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(root) else {
        return false;
    };
    rest.components().count() >= 1 && rest.components().all(|c| matches!(c, Component::Normal(_)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_string_is_rejected_or_maps_inside_the_root_and_back(name in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9._/\\\\%-]{0,12}",
        "[a-z0-9][a-z0-9._-]{0,20}",
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let config = RootConfig::new(dir.path()).buckets(16);
        match config.database_path(&name) {
            Err(Error::BadTenantName { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
            Ok(path) => {
                prop_assert!(strictly_inside(dir.path(), &path), "{} escapes", path.display());
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, b"").unwrap();
                let listed: Vec<String> = config
                    .tenants()
                    .unwrap()
                    .map(|t| t.unwrap().as_str().to_owned())
                    .collect();
                prop_assert_eq!(listed, vec![name.clone()]);
            }
        }
    }
}
