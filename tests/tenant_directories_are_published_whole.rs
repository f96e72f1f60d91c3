//! With the default layout every tenant has a directory of its own, and
//! tenanted publishes it whole: built under a hidden name, renamed into
//! place with its database in it, fenced whole by a destroy. So a listing
//! trusts the directory entry and never looks inside
//! (`storage/coordination/tenant_path.rs`). These tests prove what that rests on:
//!
//! - a listing in another process never sees a tenant half made;
//! - what a crash leaves is recognised by the next create or
//!   `remove_debris`, including the shapes earlier releases left;
//! - a process of an earlier release, which locks only beside the
//!   database, still excludes this release's creates and destroys (a
//!   deploy runs both at once).

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::child;
use tenanted::Error;

const CHILD_TENANTS: usize = 120;

fn child_names(prefix: &str) -> Vec<String> {
    (0..CHILD_TENANTS)
        .map(|i| format!("{prefix}-{i:03}"))
        .collect()
}

/// Whether `path` holds a complete SQLite header (what a half-made
/// database would lack).
fn is_database(path: &Path) -> bool {
    let mut header = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header == b"SQLite format 3\0")
}

#[test]
fn a_listing_in_another_process_never_sees_a_half_made_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("first").unwrap();
    let children: Vec<_> = ["child_creates_one_by_one", "child_creates_in_a_batch"]
        .into_iter()
        .map(|test| child::spawn(&mut child::command(test, dir.path())))
        .collect();
    let mut listings = 0;
    let mut seen_most = 0;
    while seen_most < 2 * CHILD_TENANTS + 1 {
        let listed = common::sorted_tenants(&m);
        for name in &listed {
            let path = m.root().database_path(name).unwrap();
            assert!(is_database(&path), "{name} was listed half made");
        }
        seen_most = seen_most.max(listed.len());
        listings += 1;
        assert!(listings < 1_000_000, "the children never finished");
    }
    for c in children {
        child::wait(c);
    }
    assert!(listings > 3, "the listing ran beside the creates");
}

#[test]
#[ignore = "child process of a_listing_in_another_process_never_sees_a_half_made_tenant"]
fn child_creates_one_by_one() {
    let root = child::root().expect("run by its parent test");
    let m = common::manager(&root);
    for name in child_names("single") {
        // A seed keeps each database unpublished a little longer.
        m.create_tenant_with(&name, |tx| {
            std::thread::sleep(Duration::from_millis(2));
            tx.execute("INSERT INTO notes (body) VALUES ('seeded')", [])
                .map(drop)
        })
        .unwrap();
    }
}

#[test]
#[ignore = "child process of a_listing_in_another_process_never_sees_a_half_made_tenant"]
fn child_creates_in_a_batch() {
    let root = child::root().expect("run by its parent test");
    let m = common::manager(&root);
    for names in child_names("batch").chunks(20) {
        assert!(m.create_tenants(names).unwrap().is_success());
    }
}

/// What a killed create or destroy leaves, and who clears it.
///
/// - A create killed while building leaves a hidden directory nobody
///   lists, which the next create of that name clears.
/// - A destroy marks its tenant (`.NAME.destroying` beside its directory)
///   before it fences the database: killed after that, the tenant is not
///   listed, `connection` says it is being destroyed, and `remove_debris`
///   finishes the destroy. Killed between the mark and the fence, the
///   tenant is intact, and listed (a listing looks behind a mark):
///   `remove_debris` only removes the mark.
/// - A restore replacing a tenant, killed before its swap, leaves the old
///   database fenced and its own mark: `remove_debris` puts the old
///   tenant back and drops the half-restored copy.
/// - An earlier release's destroy, killed while it waited, left the
///   database fenced in a visible directory: listed (tenant directories
///   are trusted), refused, and finished by `remove_debris`; so is a
///   tenant directory an earlier release left without its database
///   (listed, and reported as `MissingDatabase` until then).
#[test]
fn what_a_crash_leaves_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    for name in ["acme", "globex", "hooli", "initech", "stark", "wayne"] {
        m.create_tenant(name).unwrap();
    }
    for name in ["stark", "wayne"] {
        m.connection(name)
            .unwrap()
            .execute("INSERT INTO notes (body) VALUES ('kept')", [])
            .unwrap();
    }
    m.prune_idle(Duration::ZERO);
    let dir_of = |name: &str| {
        let db = m.root().database_path(name).unwrap();
        db.parent().unwrap().to_path_buf()
    };
    let beside = |name: &str, suffix: &str| dir_of(name).with_file_name(format!(".{name}{suffix}"));
    let fence = |name: &str| {
        let dir = dir_of(name);
        fs::rename(
            dir.join("main.sqlite3"),
            dir.join(".main.sqlite3.destroying"),
        )
        .unwrap();
    };
    fs::rename(dir_of("acme"), beside("acme", ".creating")).unwrap();
    File::create(beside("globex", ".destroying")).unwrap();
    fence("globex");
    fence("hooli");
    File::create(beside("initech", ".lock")).unwrap();
    File::create(beside("wayne", ".destroying")).unwrap();
    File::create(beside("stark", ".restoring")).unwrap();
    fence("stark");
    let half_restored = beside("stark", ".creating");
    fs::create_dir_all(&half_restored).unwrap();
    File::create(half_restored.join("main.sqlite3")).unwrap();
    let legacy = dir_of("umbrella");
    fs::create_dir_all(&legacy).unwrap();
    File::create(legacy.join(".main.sqlite3.lock")).unwrap();
    assert_eq!(
        common::sorted_tenants(&m),
        ["hooli", "initech", "umbrella", "wayne"]
    );
    for name in ["globex", "hooli"] {
        assert!(!m.tenant_exists(name).unwrap(), "{name}");
        assert!(
            matches!(m.connection(name), Err(Error::TenantBeingDestroyed { .. })),
            "{name}"
        );
    }
    // Listed without its database: every answer says so.
    assert!(matches!(
        m.tenant_exists("umbrella"),
        Err(Error::MissingDatabase { .. })
    ));

    m.create_tenant("acme").unwrap();
    assert!(!beside("acme", ".creating").exists());
    // globex finished (its mark and directory), hooli's fenced database,
    // initech's lock, wayne's mark, stark's half-restored copy and mark,
    // umbrella's lock.
    assert_eq!(m.remove_debris().unwrap(), 7);
    assert!(!beside("globex", ".destroying").exists() && !dir_of("globex").exists());
    assert!(!dir_of("hooli").exists());
    assert!(!beside("initech", ".lock").exists());
    assert!(!legacy.exists());
    assert_eq!(
        common::sorted_tenants(&m),
        ["acme", "initech", "stark", "wayne"]
    );
    for name in ["stark", "wayne"] {
        let kept: String = m
            .connection(name)
            .unwrap()
            .query_row("SELECT body FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "kept", "{name}");
    }
    assert_eq!(m.remove_debris().unwrap(), 0);
    let files = common::tenant_files_under(dir.path());
    assert!(files.iter().all(|f| !f.contains("/.")), "{files:?}");
}

/// An earlier release locks only `.main.sqlite3.lock` beside the database.
/// While it holds that lock (a migration, a destroy or a create of its
/// own), this release's destroy and create wait for it.
#[test]
fn an_earlier_release_holding_the_database_lock_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    let lock_file = db.with_file_name(".main.sqlite3.lock");
    let held = File::create(&lock_file).unwrap();
    held.lock().unwrap();
    let destroy = {
        let m = m.clone();
        std::thread::spawn(move || m.destroy_tenant("acme"))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!destroy.is_finished(), "the destroy waits for the lock");
    assert!(db.exists());
    drop(held);
    destroy.join().unwrap().unwrap();
    assert!(!db.exists());

    // An earlier release's create: directory made, its lock held, the
    // database not yet linked.
    let tenant_dir = db.parent().unwrap();
    fs::create_dir_all(tenant_dir).unwrap();
    let held = File::create(&lock_file).unwrap();
    held.lock().unwrap();
    let create = {
        let m = m.clone();
        std::thread::spawn(move || m.create_tenant("acme"))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!create.is_finished(), "the create waits for the lock");
    let elsewhere = tempfile::tempdir().unwrap();
    let template = elsewhere.path().join("made-by-the-earlier-release.sqlite3");
    m.create_tenant("donor").unwrap();
    fs::copy(m.root().database_path("donor").unwrap(), &template).unwrap();
    fs::hard_link(&template, &db).unwrap();
    fs::remove_file(&lock_file).unwrap();
    drop(held);
    let started = Instant::now();
    assert!(matches!(
        create.join().unwrap(),
        Err(Error::TenantExists { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(30));
    m.connection("acme").unwrap();
}

/// Restoring over an existing tenant replaces its whole directory: what
/// was in it (the old database, its WAL) is gone, and the restored
/// database is published the same way a create publishes.
#[test]
fn a_restore_over_a_tenant_replaces_its_directory_whole() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES ('before')", [])
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("acme-backup.sqlite3");
    m.backup_tenant("acme", &backup).unwrap();
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO notes (body) VALUES ('after')", [])
        .unwrap();
    let options = tenanted::RestoreOptions::new().replace(true);
    assert!(
        m.restore_tenant_opts("acme", &backup, &options)
            .unwrap()
            .replaced
    );
    let bodies: Vec<String> = m
        .connection("acme")
        .unwrap()
        .prepare("SELECT body FROM notes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bodies, ["before"]);
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
    let files = common::tenant_files_under(dir.path());
    assert!(files.iter().all(|f| !f.contains("/.")), "{files:?}");
}
