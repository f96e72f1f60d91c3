//! A checkout that finds its tenant fenced off by an operation that died
//! (a restore replacing it, killed between its fence and its swap) puts
//! the old tenant back, with the commits in its `-wal`, and opens it:
//!
//! - every thread of one process gets the tenant (they wait for the one
//!   that puts it back);
//! - checkouts of other processes racing to do the same get the tenant or,
//!   while another process is putting it back, `TenantBeingDestroyed`, as
//!   during any operation on it; never `TenantDoesNotExist`;
//! - a fenced database this process itself has open is left alone (who
//!   holds a file is asked with `F_GETLK`, blind to the asking process's
//!   own locks), and so is a destroy's, for `remove_debris`.
//!
//! In the default layout and a flat one (`%{bucket}/%{tenant}.sqlite3`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::child;
use tenanted::{Error, Migrations, RootConfig, TenantManager};

const FLAT: &str = "%{bucket}/%{tenant}.sqlite3";
const TEMPLATE_VAR: &str = "TENANTED_TEST_TEMPLATE";
const GO_VAR: &str = "TENANTED_TEST_GO_FILE";

fn manager(root: &Path, template: Option<&str>) -> TenantManager {
    let config = match template {
        Some(t) => RootConfig::new(root).template(t),
        None => RootConfig::new(root),
    };
    TenantManager::builder(config, Migrations::new(common::three_migrations()))
        .build()
        .unwrap()
}

fn child_manager() -> Option<TenantManager> {
    let root = child::root()?;
    Some(manager(&root, std::env::var(TEMPLATE_VAR).ok().as_deref()))
}

fn command(test: &str, root: &Path, template: Option<&str>) -> std::process::Command {
    let mut command = child::command(test, root);
    if let Some(template) = template {
        command.env(TEMPLATE_VAR, template);
    }
    command
}

/// A checkout's answer, as a word.
fn word(checked_out: tenanted::Result<()>) -> String {
    match checked_out {
        Ok(()) => "ok".into(),
        Err(Error::TenantBeingDestroyed { .. }) => "being destroyed".into(),
        Err(Error::TenantDoesNotExist { .. }) => "does not exist".into(),
        Err(e) => format!("{e}"),
    }
}

/// Commits three notes to `acme` and exits on the spot: they stay in
/// its `-wal`.
#[test]
#[ignore = "child process of the tests below"]
fn child_write_and_die() {
    let Some(m) = child_manager() else {
        return;
    };
    let conn = m.connection("acme").unwrap();
    for _ in 0..3 {
        conn.execute("INSERT INTO notes (body) VALUES ('x')", [])
            .unwrap();
    }
    std::process::exit(0);
}

/// Waits for the go file, then checks `acme` out on 4 threads, printing
/// each answer.
#[test]
#[ignore = "child process of the tests below"]
fn child_check_out() {
    let Some(m) = child_manager() else {
        return;
    };
    let m = Arc::new(m);
    println!("ready");
    let go = PathBuf::from(std::env::var(GO_VAR).unwrap());
    while !go.exists() {
        std::thread::yield_now();
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || word(m.connection("acme").map(drop)))
        })
        .collect();
    for thread in threads {
        println!("ANSWER={}", thread.join().unwrap());
    }
}

/// A root with `acme` holding three notes in its `-wal`; its database.
fn tenant_with_wal(root: &Path, template: Option<&str>) -> PathBuf {
    let m = manager(root, template);
    m.create_tenant("acme").unwrap();
    let db = m.root().database_path("acme").unwrap();
    drop(m);
    child::run(&mut command("child_write_and_die", root, template));
    db
}

fn hidden(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap();
    path.with_file_name(format!(".{name}{suffix}"))
}

/// What a replace killed after its fence and before its swap leaves: the
/// restore's mark beside the tenant's entry, the database under its fence
/// name, and, in a flat layout, its `-wal` set aside with it.
fn plant_dead_replace(db: &Path, flat: bool) {
    let entry = match flat {
        true => db.to_path_buf(),
        false => db.parent().unwrap().to_path_buf(),
    };
    std::fs::File::create(hidden(&entry, ".restoring")).unwrap();
    let fenced = hidden(db, ".destroying");
    std::fs::rename(db, &fenced).unwrap();
    let wal = |db: &Path| PathBuf::from(format!("{}-wal", db.display()));
    if flat && wal(db).exists() {
        std::fs::rename(wal(db), wal(&fenced)).unwrap();
        let _ = std::fs::remove_file(format!("{}-shm", db.display()));
    }
}

/// What a destroy killed while it waited leaves.
fn plant_dead_destroy(db: &Path, flat: bool) {
    if !flat {
        std::fs::File::create(hidden(db.parent().unwrap(), ".destroying")).unwrap();
    }
    std::fs::rename(db, hidden(db, ".destroying")).unwrap();
}

/// `acme`'s notes, read with plain SQLite once it passes
/// `integrity_check`.
fn notes(db: &Path) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
    let conn = rusqlite::Connection::open_with_flags(db, flags).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

/// 12 threads check out a tenant a dead replace left fenced off, through
/// one manager, or one manager each (as separate processes would).
fn threads_check_out(template: Option<&'static str>, one_manager: bool) -> Vec<String> {
    let mut answers = Vec::new();
    for _ in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let db = tenant_with_wal(&root, template);
        plant_dead_replace(&db, template.is_some());
        let shared = Arc::new(manager(&root, template));
        let barrier = Arc::new(Barrier::new(12));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let m = match one_manager {
                    true => Arc::clone(&shared),
                    false => Arc::new(manager(&root, template)),
                };
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    word(m.connection("acme").map(drop))
                })
            })
            .collect();
        answers.extend(threads.into_iter().map(|t| t.join().unwrap()));
        drop(shared);
        assert_eq!(notes(&db), 3, "{answers:?}");
    }
    answers
}

#[test]
fn every_thread_of_a_process_gets_a_tenant_a_dead_replace_left_fenced() {
    for template in [None, Some(FLAT)] {
        let answers = threads_check_out(template, true);
        assert!(
            answers.iter().all(|a| a == "ok"),
            "{template:?}: {answers:?}"
        );
    }
}

/// Managers racing to put the tenant back: the losers may hear that it is
/// being replaced, never that it does not exist; one of them gets it.
fn assert_raced(answers: &[String], what: &str) {
    let unexpected: Vec<&String> = answers
        .iter()
        .filter(|a| *a != "ok" && *a != "being destroyed")
        .collect();
    assert!(unexpected.is_empty(), "{what}: {answers:?}");
    assert!(answers.iter().any(|a| a == "ok"), "{what}: {answers:?}");
}

#[test]
fn managers_racing_to_put_a_dead_replace_back_never_say_the_tenant_does_not_exist() {
    for template in [None, Some(FLAT)] {
        let answers = threads_check_out(template, false);
        assert_raced(&answers, &format!("{template:?}"));
    }
}

#[test]
fn processes_racing_to_put_a_dead_replace_back_never_say_the_tenant_does_not_exist() {
    for template in [None, Some(FLAT)] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let db = tenant_with_wal(&root, template);
        plant_dead_replace(&db, template.is_some());
        let go = dir.path().join("go");
        let children: Vec<_> = (0..4)
            .map(|i| {
                let out = dir.path().join(format!("out{i}"));
                let mut command = command("child_check_out", &root, template);
                command.env(GO_VAR, &go);
                let file = std::fs::File::create(&out).unwrap();
                command.stdout(file.try_clone().unwrap()).stderr(file);
                (command.spawn().unwrap(), out)
            })
            .collect();
        for (_, out) in &children {
            child::wait_for_word(out, "ready");
        }
        std::fs::File::create(&go).unwrap();
        let mut answers = Vec::new();
        for (process, out) in children {
            let said = child::wait_logged(process, &out);
            let lines = said.lines().filter_map(|l| l.strip_prefix("ANSWER="));
            answers.extend(lines.map(str::to_owned));
        }
        assert_eq!(answers.len(), 16, "{answers:?}");
        assert_raced(&answers, &format!("{template:?}"));
        assert_eq!(notes(&db), 3, "{template:?}");
    }
}

/// This process's pooled connection is on `acme` when a dead operation's
/// fence is planted under it: checkouts leave the fenced file alone while
/// the connection is open, and what it writes is kept.
fn held_here(
    dir: &Path,
    template: Option<&'static str>,
    plant: fn(&Path, bool),
) -> (TenantManager, PathBuf) {
    let root = dir.join(format!("root-{}", template.is_some()));
    let db = tenant_with_wal(&root, template);
    let m = manager(&root, template);
    let conn = m.connection("acme").unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('y')", [])
        .unwrap();
    plant(&db, template.is_some());
    let fenced = hidden(&db, ".destroying");
    for _ in 0..3 {
        let answer = word(m.connection("acme").map(drop));
        assert!(answer == "being destroyed" || answer == "ok", "{answer}");
        assert!(
            fenced.exists(),
            "{template:?}: a checkout moved a file held here"
        );
    }
    conn.execute("INSERT INTO notes (body) VALUES ('z')", [])
        .unwrap();
    drop(conn);
    m.prune_idle(Duration::ZERO);
    (m, db)
}

#[test]
fn a_fenced_database_this_process_has_open_is_put_back_only_once_let_go() {
    for template in [None, Some(FLAT)] {
        let dir = tempfile::tempdir().unwrap();
        let (m, db) = held_here(dir.path(), template, plant_dead_replace);
        // Let go: the next checkout puts it back, every write kept.
        m.connection("acme").unwrap();
        drop(m);
        assert_eq!(notes(&db), 5, "{template:?}");
    }
}

#[test]
fn a_checkout_never_finishes_a_dead_destroy() {
    for template in [None, Some(FLAT)] {
        let dir = tempfile::tempdir().unwrap();
        let (m, db) = held_here(dir.path(), template, plant_dead_destroy);
        let answer = word(m.connection("acme").map(drop));
        assert_eq!(answer, "being destroyed", "{template:?}");
        // Put back by hand, as a destroy whose put-back failed says: every
        // write is there (the fenced database and the tenant's -wal).
        std::fs::rename(hidden(&db, ".destroying"), &db).unwrap();
        if template.is_none() {
            std::fs::remove_file(hidden(db.parent().unwrap(), ".destroying")).unwrap();
        }
        let conn = m.connection("acme").unwrap();
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 5, "{template:?}");
    }
}
