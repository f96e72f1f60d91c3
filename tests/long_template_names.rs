//! `RootConfig::validate` refuses a template for which the longest tenant
//! name (100 bytes) would give a path component over 255 bytes, counting
//! the hidden files tenanted keeps beside a database (up to 45 bytes
//! longer than its name), and says by how many bytes; the longest
//! template it accepts works for the longest name.

mod common;

use tenanted::{Error, Migrations, RootConfig, TenantManager};

fn reason(template: &str, buckets: u32) -> String {
    let root = RootConfig::new("/srv/t")
        .template(template)
        .buckets(buckets);
    match root.validate() {
        Err(Error::BadTemplate { reason, .. }) => reason,
        other => panic!("{template:?} should be refused, got {other:?}"),
    }
}

fn accepted(template: &str, buckets: u32) -> bool {
    let root = RootConfig::new("/srv/t")
        .template(template)
        .buckets(buckets);
    root.validate().is_ok()
}

/// A file name of `len` bytes under the tenant's directory.
fn file_of(len: usize) -> String {
    format!("%{{tenant}}/{}.sqlite3", "f".repeat(len - ".sqlite3".len()))
}

#[test]
fn a_file_name_whose_hidden_siblings_would_be_too_long_is_refused_by_how_much() {
    // 210 + 45 = 255.
    assert!(accepted(&file_of(210), 256));
    let one_over = reason(&file_of(211), 256);
    assert!(one_over.contains("1 byte over"), "{one_over}");
    assert!(one_over.contains("by at least 1 byte"), "{one_over}");
    assert!(one_over.contains("255"), "{one_over}");
    let many_over = reason(&file_of(240), 256);
    assert!(many_over.contains("30 bytes over"), "{many_over}");
    // The tenant's name in the file name counts as 100 bytes.
    let in_name = |n| format!("t/%{{tenant}}{}.db", "x".repeat(n));
    assert!(accepted(&in_name(107), 1));
    assert!(reason(&in_name(108), 1).contains("1 byte over"));
    // The error names the template and says it is the template at fault.
    let message = RootConfig::new("/srv/t")
        .template(&file_of(211))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(message.contains("invalid path template"), "{message}");
}

#[test]
fn a_directory_name_too_long_for_the_longest_tenant_is_refused_by_how_much() {
    let dir = |n| format!("%{{bucket}}-%{{tenant}}-{}/main.sqlite3", "d".repeat(n));
    // The tenant's own directory has hidden siblings up to 12 bytes longer
    // (`.NAME.destroying`): 2 hex digits + '-' + 100 + '-' + 139 + 12 = 255.
    assert!(accepted(&dir(139), 256));
    let over = reason(&dir(140), 256);
    assert!(
        over.contains("directory") && over.contains("1 byte over"),
        "{over}"
    );
    assert!(over.contains(".NAME.destroying"), "{over}");
    // Wider buckets take their room: 65,536 buckets are 4 hex digits.
    assert!(reason(&dir(139), 65_536).contains("2 bytes over"));
    assert!(accepted(&dir(137), 65_536));
    // A directory that is not the tenant's own has no hidden siblings.
    let above = |n| format!("%{{bucket}}-{}/%{{tenant}}.db", "d".repeat(n));
    assert!(accepted(&above(252), 256));
    assert!(reason(&above(253), 256).contains("1 byte over"));
    // Every directory component is checked, not only the tenant's.
    let above = format!("{}/%{{tenant}}/main.sqlite3", "a".repeat(256));
    assert!(reason(&above, 1).contains("1 byte over"));
}

#[test]
fn the_longest_accepted_file_name_creates_seeds_and_destroys_the_longest_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootConfig::new(dir.path()).template(&file_of(210));
    let m = TenantManager::builder(root, Migrations::new(common::three_migrations()))
        .build()
        .unwrap();
    let name = "n".repeat(tenanted::MAX_TENANT_NAME_LEN);
    // A seed opens the scratch copy with SQLite, which makes its sidecars.
    m.create_tenant_with(&name, |tx| {
        tx.execute("INSERT INTO notes (body) VALUES ('seed')", [])
            .map(drop)
    })
    .unwrap();
    let conn = m.connection(&name).unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('more')", [])
        .unwrap();
    drop(conn);
    m.destroy_tenant(&name).unwrap();
    assert_eq!(common::tenant_files_under(dir.path()), Vec::<String>::new());
    assert!(!m.tenant_exists(&name).unwrap());
}
