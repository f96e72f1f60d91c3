//! Something that is not a database file where a tenant's database would
//! be (a directory, a symbolic link, a named pipe) is no database, and every operation
//! agrees with the listing about it: `tenants()` does not look (tenanted
//! publishes a tenant's directory whole, with its database in it, so a
//! listing trusts the directory entry: see
//! `storage/coordination/tenant_path.rs`) and lists it, so
//! `tenant_exists`, `connection` and `destroy_tenant` report a damaged
//! tenant (`MissingDatabase`, saying what is there instead and to move it
//! out first),
//! `create_tenant` says what is in the way, and nothing is renamed,
//! removed or left behind.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use tenanted::{Error, TenantManager};

fn assert_not_a_tenant(m: &TenantManager, root: &Path, path: &Path, found: &str) {
    let before = common::tenant_files_under(root);
    let damaged = |result: tenanted::Result<()>, what: &str| match result {
        Err(e @ Error::MissingDatabase { .. }) => {
            let msg = e.to_string();
            let Error::MissingDatabase {
                path: p, found: f, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(p, path, "{what}");
            assert_eq!(f, found, "{what}");
            // The way out begins with moving it: neither a sweep nor a
            // create touches it (advice to run them went in a circle).
            let move_it = format!("move {} out of the root first", path.display());
            assert!(msg.contains(&move_it), "{what}: {msg}");
        }
        other => panic!("{what} should report a damaged tenant, got {other:?}"),
    };
    damaged(m.tenant_exists("acme").map(drop), "tenant_exists");
    assert_eq!(common::sorted_tenants(m), ["acme"]);
    for create in [
        m.create_tenant("acme"),
        m.create_tenant_if_not_exists("acme").map(drop),
    ] {
        match create {
            Err(e @ Error::NotATenantDatabase { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                assert!(msg.contains(found), "{msg} should say it is {found}");
            }
            other => panic!("create should refuse, got {other:?}"),
        }
    }
    damaged(m.connection("acme").map(drop), "connection");
    damaged(m.destroy_tenant("acme"), "destroy");
    assert_eq!(
        common::tenant_files_under(root),
        before,
        "nothing moved or left"
    );
    assert_eq!(m.remove_debris().unwrap(), 0);
    assert_eq!(common::tenant_files_under(root), before);
}

fn acme_path(m: &TenantManager) -> PathBuf {
    let path = m.root().database_path("acme").unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

#[test]
fn a_directory_where_the_database_should_be_is_not_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    let path = acme_path(&m);
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep.txt"), b"not ours").unwrap();
    assert_not_a_tenant(&m, dir.path(), &path, "a directory");
    assert_eq!(fs::read(path.join("keep.txt")).unwrap(), b"not ours");
}

#[test]
fn a_symbolic_link_where_the_database_should_be_is_not_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = common::manager(outside.path());
    elsewhere.create_tenant("acme").unwrap();
    let target = elsewhere.root().database_path("acme").unwrap();
    let contents = fs::read(&target).unwrap();

    let m = common::manager(dir.path());
    let path = acme_path(&m);
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert_not_a_tenant(&m, dir.path(), &path, "a symbolic link");
    assert_eq!(fs::read(&target).unwrap(), contents);
    assert!(elsewhere.tenant_exists("acme").unwrap());
}

#[test]
fn a_named_pipe_where_the_database_should_be_is_not_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    let path = acme_path(&m);
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    assert!(made.unwrap().success(), "mkfifo (coreutils) runs");
    assert_not_a_tenant(&m, dir.path(), &path, "a special file (not a regular file)");
}
