//! Containment: a symbolic link (or a plain file) planted in the root as a
//! bucket, a tenant directory or `.tenanted/` never leads any operation
//! outside the root. Every operation agrees the tenant behind it does not
//! exist, the ones that would write or remove say what is in the way with
//! `Error::NotADirectory` naming it, and the outside files stay exactly as
//! they were, byte for byte.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tenanted::{Error, MigrateOptions, TenantManager};

/// Every file under `dir` with its contents: any change outside shows.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = common::files_under(dir)
        .into_iter()
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).unwrap_or_default();
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// A real tenant database (from another root) placed outside as `acme`'s.
fn outside_tenant(outside: &Path) -> PathBuf {
    let donor = tempfile::tempdir().unwrap();
    let m = common::manager(donor.path());
    m.create_tenant("acme").unwrap();
    m.connection("acme")
        .unwrap()
        .execute("CREATE TABLE secret (x)", [])
        .unwrap();
    let src = m.root().database_path("acme").unwrap();
    drop(m);
    let dest = outside.join("acme/main.sqlite3");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(src, &dest).unwrap();
    outside.to_path_buf()
}

fn assert_blocked(result: Result<impl std::fmt::Debug, Error>, link: &Path, what: &str) {
    match result {
        Err(e @ Error::NotADirectory { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&link.display().to_string()), "{what}: {msg}");
            assert!(msg.contains("move it out of the root"), "{what}: {msg}");
        }
        other => panic!(
            "{what}: expected NotADirectory naming {}, got {other:?}",
            link.display()
        ),
    }
}

/// Runs every operation on `acme`, whose way in passes `link`, and checks
/// that none reached `outside`.
fn assert_contained(m: &TenantManager, link: &Path, outside: &Path) {
    let before = snapshot(outside);
    assert!(!m.tenant_exists("acme").unwrap(), "tenant_exists");
    assert_eq!(common::sorted_tenants(m), Vec::<String>::new(), "tenants()");
    assert_blocked(m.create_tenant("acme"), link, "create_tenant");
    assert_blocked(
        m.create_tenant_if_not_exists("acme"),
        link,
        "create_if_not_exists",
    );
    assert_blocked(m.connection("acme").map(drop), link, "connection");
    assert_blocked(m.destroy_tenant("acme"), link, "destroy_tenant");
    assert_blocked(m.migrate_tenant("acme"), link, "migrate_tenant");
    assert_blocked(m.rollback_tenant("acme", 1), link, "rollback_tenant");
    let dest = tempfile::tempdir().unwrap();
    assert_blocked(
        m.backup_tenant("acme", dest.path().join("acme.sqlite3")),
        link,
        "backup_tenant",
    );
    assert_blocked(m.tenant_status("acme"), link, "tenant_status");
    assert_blocked(m.resume_tenant("acme"), link, "resume_tenant");
    assert_blocked(
        m.set_tenant_max_size("acme", Some(1 << 20)),
        link,
        "set_tenant_max_size",
    );
    m.remove_debris().unwrap();
    let status = m.migration_status().unwrap();
    assert_eq!(status.total(), 0, "migration_status: {status:?}");
    // The run says what it left out (tests/stray_entries.rs).
    assert_eq!(status.listing_errors.len(), 1, "{status:?}");
    let report = m.migrate_all(&MigrateOptions::new()).unwrap();
    assert_eq!(report.total(), 0, "migrate_all: {report:?}");
    assert_eq!(
        snapshot(outside),
        before,
        "nothing outside the root changed"
    );
    assert!(link.exists(), "the planted entry is left where it is");
}

#[test]
fn a_linked_bucket_leads_nowhere() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = common::manager(dir.path());
    let outside = outside_tenant(outside.path());
    let bucket = m.root().database_path("acme").unwrap();
    let bucket = bucket.parent().unwrap().parent().unwrap();
    symlink(&outside, bucket).unwrap();
    assert_contained(&m, bucket, &outside);
}

#[test]
fn a_linked_tenant_directory_leads_nowhere() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = common::manager(dir.path());
    let outside = outside_tenant(outside.path());
    let tenant_dir = m.root().database_path("acme").unwrap();
    let tenant_dir = tenant_dir.parent().unwrap();
    fs::create_dir_all(tenant_dir.parent().unwrap()).unwrap();
    symlink(outside.join("acme"), tenant_dir).unwrap();
    assert_contained(&m, tenant_dir, &outside);
}

#[test]
fn a_file_in_place_of_a_bucket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    let bucket = m.root().database_path("acme").unwrap();
    let bucket = bucket.parent().unwrap().parent().unwrap();
    fs::write(bucket, b"not a directory").unwrap();
    let outside = tempfile::tempdir().unwrap();
    assert_contained(&m, bucket, outside.path());
    assert_eq!(fs::read(bucket).unwrap(), b"not a directory");
}

#[test]
fn a_linked_internal_directory_gets_no_template() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let internal = dir.path().join(tenanted::INTERNAL_DIR);
    symlink(outside.path(), &internal).unwrap();
    let built = common::builder(dir.path()).build();
    let result = built.and_then(|m| m.create_tenant("acme"));
    assert_blocked(result, &internal, "create through a linked .tenanted");
    assert!(
        common::files_under(outside.path()).is_empty(),
        "nothing written outside: {:?}",
        common::files_under(outside.path())
    );
}

#[test]
fn destroying_the_last_tenant_of_a_bare_root_keeps_the_root() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("tenants");
    fs::create_dir(&root).unwrap();
    let m = common::manager(&root);
    m.create_tenant("acme").unwrap();
    fs::remove_dir_all(root.join(tenanted::INTERNAL_DIR)).unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(root.is_dir(), "the root stays");
    assert_eq!(m.remove_debris().unwrap(), 0);
    assert!(root.is_dir(), "the root stays after a sweep too");
}

#[test]
fn a_link_planted_in_a_backup_directory_never_leads_a_copy_over_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(&dir.path().join("root"));
    for (name, note) in [("acme", "acme's"), ("globex", "globex's")] {
        m.create_tenant(name).unwrap();
        m.connection(name)
            .unwrap()
            .execute("INSERT INTO notes (body) VALUES (?1)", [note])
            .unwrap();
    }
    let backups = dir.path().join("backups");
    // backups/<acme's bucket>/acme -> the live globex's directory.
    let acme = m.root().database_path("acme").unwrap();
    let globex = m.root().database_path("globex").unwrap();
    let rel = acme.strip_prefix(m.root().root_dir()).unwrap();
    let planted = backups.join(rel.parent().unwrap());
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    symlink(globex.parent().unwrap(), &planted).unwrap();
    let before = fs::read(&globex).unwrap();
    let report = m
        .backup_all(&backups, &tenanted::BackupOptions::new())
        .unwrap();
    let failed: Vec<_> = report.failures.iter().collect();
    assert_eq!(failed.len(), 1, "{report:?}");
    let e = failed[0].error.as_ref().unwrap();
    assert!(matches!(**e, Error::NotADirectory { .. }), "{e}");
    assert_eq!(
        fs::read(&globex).unwrap(),
        before,
        "globex's database untouched"
    );
    let note: String = m
        .connection("globex")
        .unwrap()
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note, "globex's");
}

/// A link (or a directory) at a tenant's lock file name stops what locks
/// the tenant with `PlantedLockFile`, naming it and saying to remove it;
/// nothing is followed (the file the link points to stays as it was), the
/// tenant keeps serving, and once it is removed the destroy goes through.
#[test]
fn a_link_or_directory_at_a_tenants_lock_file_is_named_and_nothing_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious");
    fs::write(&target, b"not a lock file").unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let tenant_dir = m.root().database_path("acme").unwrap();
    let lock = tenant_dir.parent().unwrap().with_file_name(".acme.lock");
    let is_planted = |result: tenanted::Result<()>, found: &str| match result {
        Err(e @ Error::PlantedLockFile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&lock.display().to_string()), "{msg}");
            assert!(msg.contains(found) && msg.contains("remove it"), "{msg}");
            assert_eq!(e.tenant().map(|t| t.as_str()), Some("acme"), "{msg}");
        }
        other => panic!("expected PlantedLockFile, got {other:?}"),
    };

    symlink(&target, &lock).unwrap();
    is_planted(m.destroy_tenant("acme"), "a symbolic link");
    is_planted(m.rollback_tenant("acme", 1).map(drop), "a symbolic link");
    is_planted(m.remove_debris().map(drop), "a symbolic link");
    assert_eq!(fs::read(&target).unwrap(), b"not a lock file");
    fs::remove_file(&lock).unwrap();

    fs::create_dir(&lock).unwrap();
    is_planted(m.destroy_tenant("acme"), "a directory");
    m.connection("acme").unwrap();
    fs::remove_dir(&lock).unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
}

/// A link planted at a tenant's `-shm` stops its destroy, which says so
/// naming the link: it named the database under its hidden fence name
/// (`.main.sqlite3.destroying`), which is not where the link stands.
#[test]
fn a_link_at_a_tenants_shm_is_named_by_the_destroy_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious");
    fs::write(&target, b"not a -shm").unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    let shm = PathBuf::from(format!("{}-shm", db.display()));
    symlink(&target, &shm).unwrap();
    let refused = m.destroy_tenant("acme").expect_err("the link stops it");
    let msg = refused.to_string();
    assert!(
        msg.contains(&format!("{}:", shm.display())) && msg.contains("symbolic link"),
        "{msg}"
    );
    assert!(m.tenant_exists("acme").unwrap());
    assert_eq!(fs::read(&target).unwrap(), b"not a -shm");
    fs::remove_file(&shm).unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
}

/// A root that is a symbolic link leading nowhere is refused when the
/// manager is built, naming the link and where it leads; it was accepted,
/// and each operation failed its own way ("File exists" locking the
/// template database, `tenant_exists` false: an outside probe). The
/// command line says the same.
#[test]
fn a_root_that_is_a_dangling_link_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let nowhere = dir.path().join("gone");
    symlink(&nowhere, &root).unwrap();
    let built = TenantManager::builder(tenanted::RootConfig::new(&root), common::schema()).build();
    let Err(err) = built else {
        panic!("a manager of a root that is a dangling link was built");
    };
    let said = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(said.contains(&root.display().to_string()), "{said}");
    assert!(
        said.contains(&format!("symbolic link to {}", nowhere.display())),
        "{said}"
    );
    #[cfg(feature = "cli")]
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenanted"))
            .arg("--root")
            .arg(&root)
            .arg("list")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("symbolic link to {}", nowhere.display())),
            "{said}"
        );
    }
    // Made, it is a root like any other.
    fs::create_dir(&nowhere).unwrap();
    let m = TenantManager::builder(tenanted::RootConfig::new(&root), common::schema())
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    assert!(m.tenant_exists("acme").unwrap());
}

/// A record of the root replaced by a link (here the limits record) is
/// read through no link, and the refusal says a link stands there and
/// what to do, not a bare "Too many levels of symbolic links" (an
/// outside probe). What the link points to is left as it was.
#[test]
fn a_linked_record_is_said_to_be_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("elsewhere");
    fs::write(&outside, b"not tenanted's\n").unwrap();
    let root = dir.path().join("root");
    let m = common::manager(&root);
    m.create_tenant("acme").unwrap();
    symlink(&outside, root.join(".tenanted/limits")).unwrap();
    let set = m.set_tenant_max_size("acme", Some(1 << 20));
    let msg = set.unwrap_err().to_string();
    assert!(msg.contains("a symbolic link stands there"), "{msg}");
    assert!(msg.contains(".tenanted/limits"), "{msg}");
    assert_eq!(fs::read(&outside).unwrap(), b"not tenanted's\n");
}
