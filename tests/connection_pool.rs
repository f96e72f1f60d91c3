//! Connections: lazily built pools, LRU cap, pruning, schema checks at
//! open, and destroy against live connections.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use tenanted::{Error, Migrations, RootConfig, TenantManager};

fn manager_with(root: &std::path::Path, migrations: usize) -> TenantManager {
    let mut list = three_migrations();
    list.truncate(migrations);
    TenantManager::builder(RootConfig::new(root), Migrations::new(list))
        .build()
        .unwrap()
}

#[test]
fn a_tenant_behind_gives_pending_migration_error_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    manager_with(dir.path(), 1).create_tenant("acme").unwrap();
    let m = manager_with(dir.path(), 3);
    let err = m.connection("acme").unwrap_err();
    let Error::PendingMigration(pending) = &err else {
        panic!("expected pending, got {err}")
    };
    assert_eq!((pending.current_version, pending.latest_version), (1, 3));
    assert_eq!(pending.pending, ["0002_add_tags", "0003_index_tags"]);
    assert_eq!(pending.tenant, "acme");
    let msg = err.to_string();
    assert!(
        msg.contains("acme") && msg.contains("TenantManager::migrate_tenant(\"acme\")"),
        "{msg}"
    );
    assert_eq!(
        m.stats().open_pools,
        0,
        "no pool is cached for a pending tenant"
    );

    let outcome = m.migrate_tenant("acme").unwrap();
    assert_eq!((outcome.from, outcome.to), (1, 3));
    assert_eq!(outcome.applied, ["0002_add_tags", "0003_index_tags"]);
    m.connection("acme")
        .unwrap()
        .execute("INSERT INTO tags VALUES (1, 'x')", [])
        .unwrap();
}

#[test]
fn a_tenant_ahead_of_the_code_gives_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    manager_with(dir.path(), 3).create_tenant("acme").unwrap();
    let err = manager_with(dir.path(), 2).connection("acme").unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaAheadOfCode {
                current_version: 3,
                latest_version: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("acme"));
}

#[test]
fn auto_migrate_migrates_on_open() {
    let dir = tempfile::tempdir().unwrap();
    manager_with(dir.path(), 1).create_tenant("acme").unwrap();
    let m = builder(dir.path()).auto_migrate(true).build().unwrap();
    let v: i64 = m
        .connection("acme")
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 3);
}

#[test]
fn a_missing_tenant_errors_at_once_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .connection_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let before = files_under(dir.path());
    let started = Instant::now();
    let err = m.connection("acme-typo").unwrap_err();
    // Not a timing benchmark: proves we did not sit in r2d2's 30 s retry loop.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(matches!(err, Error::TenantDoesNotExist { .. }), "{err}");
    assert!(err.to_string().contains("acme-typo"));
    assert_eq!(files_under(dir.path()), before, "no file may be created");
}

#[test]
fn a_file_that_is_not_a_database_names_the_tenant_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let path = m.root().database_path("junk").unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        b"this is not sqlite, just some text that is long enough to be a header.......",
    )
    .unwrap();
    let err = m.connection("junk").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("junk") && msg.contains("main.sqlite3"),
        "{msg}"
    );
}

#[test]
fn two_threads_opening_one_tenant_end_with_one_pool() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (m, barrier) = (m.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let conn = m.connection("acme").unwrap();
                conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    assert_eq!(m.stats().open_pools, 1);
}

/// Threads waiting on one another's failed cold opens each get the
/// tenant's own answer, however many failed opens they wait behind: a
/// wait is no attempt of their own, and never ends in "does not exist"
/// for a tenant that is there.
#[test]
fn threads_behind_failed_cold_opens_all_hear_the_tenant_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    manager_with(dir.path(), 1).create_tenant("acme").unwrap();
    let m = manager_with(dir.path(), 3);
    for _ in 0..20 {
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (m, barrier) = (m.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    match m.connection("acme") {
                        Err(Error::PendingMigration(_)) => Ok(()),
                        Err(e) => Err(e.to_string()),
                        Ok(_) => Err("checked out a pending tenant".to_owned()),
                    }
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
    }
}

/// After a failed cold open, the threads that waited for it open the
/// tenant together, each for its own answer: not one after another, the
/// last waiting as many opens as there are threads. Each hook call after
/// the first waits (up to 5 s) for another to run beside it: in turn,
/// none would, and the test would fail.
#[test]
fn threads_behind_a_failed_cold_open_open_together_not_in_turn() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (calls, inside, most) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let hook = {
        let (calls, inside, most) = (calls.clone(), inside.clone(), most.clone());
        move |c: &mut rusqlite::Connection| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !first && most.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            inside.fetch_sub(1, Ordering::SeqCst);
            c.execute_batch("PRAGMA this is not sql;")
        }
    };
    let m = builder(dir.path()).connection_init(hook).build().unwrap();
    m.create_tenant("acme").unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (m, barrier) = (m.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                m.connection("acme").map(drop).unwrap_err().to_string()
            })
        })
        .collect();
    for t in threads {
        let message = t.join().unwrap();
        assert!(message.contains("connection_init"), "{message}");
    }
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "the hook never ran twice at once: {} calls",
        calls.load(Ordering::SeqCst)
    );
}

#[test]
fn sixteen_threads_over_500_tenants_stay_within_max_pools() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path()).max_pools(20).build().unwrap();
    const TENANTS: usize = 500;
    for i in 0..TENANTS {
        m.create_tenant_with(&format!("t{i:03}"), |tx| {
            tx.execute("INSERT INTO notes (body) VALUES (?1)", [format!("t{i:03}")])
                .map(|_| ())
        })
        .unwrap();
    }
    let threads: Vec<_> = (0..16u64)
        .map(|seed| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut x = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut max_open = 0;
                for _ in 0..400 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let name = format!("t{:03}", (x >> 33) as usize % TENANTS);
                    let conn = m.connection(&name).unwrap();
                    let body: String = conn
                        .query_row("SELECT body FROM notes", [], |r| r.get(0))
                        .unwrap();
                    assert_eq!(body, name, "a connection must reach its own tenant");
                    max_open = max_open.max(m.stats().open_pools);
                }
                max_open
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap() <= 20);
    }
    let stats = m.stats();
    assert!(
        stats.open_pools <= 20 && stats.evictions > 0 && stats.hits > 0,
        "{stats:?}"
    );
    assert_eq!(stats.checked_out, 0);
}

#[test]
fn an_evicted_pool_lives_until_its_connection_returns() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path()).max_pools(1).build().unwrap();
    m.create_tenant("a").unwrap();
    m.create_tenant("b").unwrap();
    let held = m.connection("a").unwrap();
    let _b = m.connection("b").unwrap();
    let stats = m.stats();
    assert_eq!(
        (stats.open_pools, stats.draining_pools, stats.evictions),
        (1, 1, 1)
    );
    held.execute("INSERT INTO notes (body) VALUES ('still works')", [])
        .unwrap();
    drop(held);
    assert_eq!(m.stats().draining_pools, 0);
}

#[test]
fn prune_idle_drops_idle_pools_and_keeps_busy_ones() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("idle").unwrap();
    m.create_tenant("busy").unwrap();
    drop(m.connection("idle").unwrap());
    let held = m.connection("busy").unwrap();
    assert_eq!(
        m.prune_idle(Duration::from_secs(3600)),
        0,
        "nothing is an hour idle"
    );
    assert_eq!(m.prune_idle(Duration::ZERO), 1);
    let stats = m.stats();
    assert_eq!((stats.open_pools, stats.pruned), (1, 1));
    drop(held);
    assert_eq!(m.prune_idle(Duration::ZERO), 1);
    assert_eq!(m.stats().open_pools, 0);
    // A pruned tenant reopens on demand.
    m.connection("idle").unwrap();
}

#[test]
fn the_idle_timeout_reaper_prunes_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .idle_timeout(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    assert_eq!(m.stats().open_pools, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.stats().open_pools > 0 {
        assert!(Instant::now() < deadline, "the reaper never pruned");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(m.stats().pruned, 1);
}

#[test]
fn destroy_while_a_connection_is_held_is_busy_and_leaves_the_tenant_intact() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .destroy_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let held = m.connection("acme").unwrap();
    held.execute("INSERT INTO notes (body) VALUES ('keep me')", [])
        .unwrap();
    let err = m.destroy_tenant("acme").unwrap_err();
    assert!(
        matches!(err, Error::TenantBusy { checked_out: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("acme") && err.to_string().contains("intact"));
    // Intact and usable, through the held connection and a new one.
    assert!(m.tenant_exists("acme").unwrap());
    let n: i64 = m
        .connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    drop(held);
    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
    assert!(matches!(
        m.connection("acme"),
        Err(Error::TenantDoesNotExist { .. })
    ));
}

/// A destroy that gives up puts back the pool it took from the cache,
/// never one that was draining: a pool taken out because a rollback moved
/// the tenant down was checked at the old version, and put back it handed
/// out connections to a schema behind the code with no
/// `PendingMigrationError` (a review).
#[test]
fn a_destroy_that_gives_up_never_caches_a_pool_of_a_schema_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = TenantManager::builder(
        RootConfig::new(dir.path()),
        Migrations::new(three_migrations()),
    )
    .destroy_timeout(Duration::from_millis(100))
    .watch_interval(Duration::from_secs(3600))
    .build()
    .unwrap();
    m.create_tenant("acme").unwrap();
    // A connection of the pool checked at version 3, held throughout.
    let held = m.connection("acme").unwrap();
    m.rollback_tenant("acme", 2).unwrap();
    assert!(matches!(
        m.connection("acme"),
        Err(Error::PendingMigration(_))
    ));
    let err = m.destroy_tenant("acme").unwrap_err();
    assert!(matches!(err, Error::TenantBusy { .. }), "{err}");
    match m.connection("acme") {
        Err(Error::PendingMigration(p)) => assert_eq!(p.current_version, 1),
        Err(e) => panic!("expected PendingMigration, got {e}"),
        Ok(_) => panic!("a connection to a tenant at version 1 of 3"),
    }
    drop(held);
    m.migrate_tenant("acme").unwrap();
    m.connection("acme").unwrap();
}

#[test]
fn checkouts_fail_at_once_while_destroy_waits() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .destroy_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let held = m.connection("acme").unwrap();
    let destroyer = {
        let m = m.clone();
        std::thread::spawn(move || m.destroy_tenant("acme"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match m.connection("acme") {
            Err(Error::TenantBeingDestroyed { .. }) => break,
            Ok(conn) => drop(conn),
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(Instant::now() < deadline, "destroy never started");
        std::thread::yield_now();
    }
    drop(held);
    destroyer.join().unwrap().unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
}

/// Nor one whose tenant changed while the destroy waited: a rollback or
/// a suspension made meanwhile could not see the pools the destroy held,
/// and putting one back undid them here (a second review).
#[test]
fn a_destroy_that_gives_up_never_undoes_what_changed_while_it_waited() {
    let dir = tempfile::tempdir().unwrap();
    let m = TenantManager::builder(
        RootConfig::new(dir.path()),
        Migrations::new(three_migrations()),
    )
    .destroy_timeout(Duration::from_millis(1500))
    .watch_interval(Duration::from_secs(3600))
    .build()
    .unwrap();
    for name in ["acme", "globex"] {
        m.create_tenant(name).unwrap();
    }
    for (name, change) in [("acme", "rollback"), ("globex", "suspension")] {
        let held = m.connection(name).unwrap();
        let destroying = {
            let m = m.clone();
            std::thread::spawn(move || m.destroy_tenant(name))
        };
        // The destroy is waiting for `held` once checkouts are refused.
        while !matches!(m.connection(name), Err(Error::TenantBeingDestroyed { .. })) {
            std::thread::sleep(Duration::from_millis(2));
        }
        match change {
            "rollback" => drop(m.rollback_tenant(name, 2).unwrap()),
            _ => m
                .suspend_tenant(name, tenanted::SuspendMode::Blocked, "unpaid")
                .unwrap(),
        }
        let gave_up = destroying.join().unwrap().unwrap_err();
        assert!(matches!(gave_up, Error::TenantBusy { .. }), "{gave_up}");
        match (change, m.connection(name)) {
            ("rollback", Err(Error::PendingMigration(_))) => {}
            ("suspension", Err(Error::TenantSuspended { .. })) => {}
            (_, Err(e)) => panic!("{change}: {e}"),
            (_, Ok(_)) => panic!("{change} undone: {name} was served"),
        }
        drop(held);
    }
}

/// A destroy that gives up waiting for this process's cold open of the
/// tenant says so, not that "0 connection(s) were still checked out,
/// release its connections" (a review).
#[test]
fn a_destroy_held_by_a_cold_open_says_it_was_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (opening, started) = std::sync::mpsc::sync_channel(1);
    let m = builder(dir.path())
        .destroy_timeout(Duration::from_millis(200))
        .connection_init(move |_| {
            let _ = opening.try_send(());
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        })
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let opener = {
        let m = m.clone();
        std::thread::spawn(move || m.connection("acme").map(drop))
    };
    started.recv().unwrap();
    let err = m.destroy_tenant("acme").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::TenantBusy {
                waited_for: tenanted::WaitedFor::OpeningInThisProcess,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("opening its first connection") && !msg.contains("checked out"),
        "{msg}"
    );
    opener.join().unwrap().unwrap();
    m.destroy_tenant("acme").unwrap();
}

#[test]
fn connection_init_hook_and_pragmas_run_on_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .connection_init(|c| c.execute_batch("PRAGMA cache_size = -1234;"))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    let cache: i64 = conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .unwrap();
    assert_eq!((fk, cache, mode.as_str(), busy), (1, -1234, "wal", 5000));
    assert_eq!(conn.tenant(), "acme");
}

#[test]
fn a_failing_connection_init_hook_is_reported_without_waiting_out_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .connection_timeout(Duration::from_secs(30))
        .connection_init(|c| c.execute_batch("PRAGMA this is not sql;"))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let started = Instant::now();
    let err = m.connection("acme").unwrap_err();
    // Not a timing benchmark: proves we did not sit in r2d2's 30 s retry loop.
    assert!(started.elapsed() < Duration::from_secs(15));
    let msg = err.to_string();
    assert!(
        msg.contains("acme") && msg.contains("connection_init"),
        "{msg}"
    );
    assert_eq!(m.stats().open_pools, 0);
}

#[test]
fn a_connection_init_hook_asking_for_its_own_tenant_is_refused_not_deadlocked() {
    let dir = tempfile::tempdir().unwrap();
    let manager: Arc<std::sync::OnceLock<TenantManager>> = Arc::default();
    let inner: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (hook_manager, hook_answers) = (Arc::clone(&manager), Arc::clone(&inner));
    let m = builder(dir.path())
        // Long enough that a wait sat out would fail the test below.
        .connection_timeout(Duration::from_secs(600))
        .connection_init(move |conn| {
            let making_acme = conn.path().is_some_and(|p| p.contains("/acme/"));
            if let (Some(m), true) = (hook_manager.get(), making_acme) {
                // A hook of "acme" asks for "acme" (what it should use is
                // the connection it was given), and for another tenant.
                let own = m.connection("acme").err().map(|e| e.to_string());
                let other = m.connection("globex").map(|_| "ok".to_string());
                let mut answers = hook_answers.lock().unwrap();
                answers.push(own.unwrap_or_else(|| "served".into()));
                answers.push(other.unwrap_or_else(|e| e.to_string()));
            }
            Ok(())
        })
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    assert!(manager.set(m.clone()).is_ok());
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = m.clone();
    std::thread::spawn(move || {
        // The cold open (the hook runs on this thread, the flight's lead),
        // then a second connection while the first is held: r2d2 makes it
        // on a connector thread, where the hook runs again.
        let first = opener.connection("acme");
        let second = match &first {
            Ok(_) => opener.connection("acme").map(|_| ()),
            Err(_) => Ok(()),
        };
        let outcome = (first.map(|_| ()), second);
        tx.send(outcome.0.err().map(|e| e.to_string())).unwrap();
        tx.send(outcome.1.err().map(|e| e.to_string())).unwrap();
    });
    for _ in ["the cold open", "the second connection"] {
        let refused = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a hook asking for its own tenant waited for itself");
        assert_eq!(refused, None);
    }
    // Each hook's two answers, in the order hooks finished. The lead's
    // hook finished first; of the connector threads' hooks, the first to
    // finish found nothing idle (the first connection was held). Later
    // ones may find an idle connection, made meanwhile, and be served.
    let answers = inner.lock().unwrap().clone();
    let refused = |a: &str| {
        a.contains("tenant acme")
            && a.contains("connection_init")
            && a.contains("acme/main.sqlite3")
    };
    let (own, other): (Vec<_>, Vec<_>) = answers.chunks(2).map(|p| (&p[0], &p[1])).unzip();
    assert!(own.len() >= 2 && refused(own[0]), "{answers:?}");
    assert!(
        own.iter().all(|a| refused(a) || *a == "served"),
        "{answers:?}"
    );
    assert!(own[1..].iter().any(|a| refused(a)), "{answers:?}");
    assert!(other.iter().all(|a| *a == "ok"), "{answers:?}");
}

#[test]
fn hooks_waiting_on_each_other_across_threads_end_within_the_connection_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let manager: Arc<std::sync::OnceLock<TenantManager>> = Arc::default();
    let inner: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (hook_manager, hook_answers) = (Arc::clone(&manager), Arc::clone(&inner));
    let m = builder(dir.path())
        .connection_timeout(Duration::from_secs(2))
        .connection_init(move |conn| {
            let path = conn.path().unwrap_or_default().to_string();
            let Some(m) = hook_manager.get().cloned() else {
                return Ok(());
            };
            // a's hook waits for a thread that opens b; b's hook asks for
            // a, whose open is a's hook's: a cycle across two threads.
            if path.contains("/a/") {
                let b = std::thread::spawn(move || m.connection("b").map(drop));
                assert!(b.join().unwrap().is_ok());
            } else if path.contains("/b/") {
                let answer = m.connection("a").map(drop);
                let answer = answer.map_or_else(|e| e.to_string(), |()| "served".into());
                hook_answers.lock().unwrap().push(answer);
            }
            Ok(())
        })
        .build()
        .unwrap();
    m.create_tenant("a").unwrap();
    m.create_tenant("b").unwrap();
    assert!(manager.set(m.clone()).is_ok());
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = m.clone();
    std::thread::spawn(move || {
        tx.send(opener.connection("a").map(drop).map_err(|e| e.to_string()))
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("hooks waiting on each other waited without a bound");
    assert_eq!(outcome, Ok(()));
    let answers = inner.lock().unwrap().clone();
    let gave_up = &answers[0];
    assert!(
        gave_up.contains("tenant a ")
            && gave_up.contains("has not finished")
            && gave_up.contains("connection_timeout"),
        "{answers:?}"
    );
}

/// A connection to `acme` of its own (another request, another process).
fn elsewhere(m: &TenantManager) -> rusqlite::Connection {
    rusqlite::Connection::open(m.root().database_path("acme").unwrap()).unwrap()
}

fn notes(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

/// A raw `BEGIN IMMEDIATE` whose handler returned early: the next
/// checkout was handed the open transaction (its write then reported
/// done, and lost when the pool closed) and every other writer of the
/// tenant was locked out. Through the pool's resident connection (one
/// connection) and through one of r2d2's (the second of two).
#[test]
fn a_connection_dropped_inside_a_write_transaction_comes_back_rolled_back() {
    for second in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let m = builder(dir.path())
            .max_connections(1 + u32::from(second))
            .build()
            .unwrap();
        m.create_tenant("acme").unwrap();
        let resident = m.connection("acme").unwrap();
        let (leaking, held) = match second {
            true => (m.connection("acme").unwrap(), Some(resident)),
            false => (resident, None),
        };
        leaking
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO notes (body) VALUES ('never committed')")
            .unwrap();
        drop(leaking);

        let next = m.connection("acme").unwrap();
        assert!(next.is_autocommit(), "second: {second}");
        next.execute("INSERT INTO notes (body) VALUES ('committed')", [])
            .unwrap();
        drop((next, held));
        // Another connection writes: nobody holds the write lock.
        let other = elsewhere(&m);
        other
            .execute("INSERT INTO notes (body) VALUES ('elsewhere')", [])
            .unwrap();
        drop(m);
        assert_eq!(notes(&other), 2, "second: {second}");
    }
}

/// A read transaction left open kept its snapshot: later checkouts did
/// not see what others committed, and their writes failed as busy.
#[test]
fn a_connection_dropped_inside_a_read_transaction_comes_back_current() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path()).max_connections(1).build().unwrap();
    m.create_tenant("acme").unwrap();
    let reading = m.connection("acme").unwrap();
    reading.execute_batch("BEGIN").unwrap();
    let before = notes(&reading);
    drop(reading);
    let other = elsewhere(&m);
    other
        .execute("INSERT INTO notes (body) VALUES ('new')", [])
        .unwrap();

    let next = m.connection("acme").unwrap();
    assert_eq!((before, notes(&next)), (0, 1));
    next.execute("INSERT INTO notes (body) VALUES ('mine')", [])
        .unwrap();
    assert_eq!(notes(&other), 2);
}

/// Timeouts at the ends of their range were accepted by `build()`, then
/// panicked in r2d2 (`connection_timeout` zero) or rusqlite
/// (`busy_timeout` over 2^31 - 1 ms) on every cold `connection()`, on
/// the request path. They are clamped to what each takes.
#[test]
fn timeouts_at_the_ends_of_their_range_are_clamped_not_a_panic() {
    let builders = [
        ("connection_timeout(0)", builder_at(Duration::ZERO, None)),
        ("connection_timeout(MAX)", builder_at(Duration::MAX, None)),
        (
            "busy_timeout(MAX)",
            builder_at(Duration::from_secs(1), Some(Duration::MAX)),
        ),
        (
            "busy_timeout(30 days)",
            builder_at(
                Duration::from_secs(1),
                Some(Duration::from_secs(30 * 86_400)),
            ),
        ),
    ];
    for (what, build) in builders {
        let dir = tempfile::tempdir().unwrap();
        let m = build(dir.path());
        m.create_tenant("acme").unwrap();
        let held = m.connection("acme").unwrap();
        held.execute("INSERT INTO notes (body) VALUES ('x')", [])
            .unwrap();
        if what == "connection_timeout(0)" {
            // The one connection is out: the wait is the shortest there is.
            assert!(
                matches!(m.connection("acme"), Err(Error::Pool { .. })),
                "{what}"
            );
        }
    }
}

/// `max_connections(u32::MAX)`, a natural "no limit", ended the process
/// at the first `connection()` (r2d2 reserves room for every connection
/// at once: 962 GB, an allocation failure, not even a panic; an outside
/// probe). It is clamped to what a pool can hold.
#[test]
fn a_pool_of_the_most_connections_there_are_is_clamped_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .max_connections(u32::MAX)
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    conn.execute("INSERT INTO notes (body) VALUES ('x')", [])
        .unwrap();
}

/// `destroy_timeout(Duration::MAX)`, a natural "wait as long as it
/// takes", panicked in every destroy (an `Instant` overflow); the
/// lifecycle timeouts are clamped to a year, as the others are.
#[test]
fn the_longest_lifecycle_timeouts_are_clamped_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(&dir.path().join("root"))
        .destroy_timeout(Duration::MAX)
        .lock_timeout(Duration::MAX)
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let backup = dir.path().join("acme.bak");
    m.backup_tenant("acme", &backup).unwrap();
    drop(m.connection("acme").unwrap());
    let replacing = tenanted::RestoreOptions::new().replace(true);
    m.restore_tenant_opts("acme", &backup, &replacing).unwrap();
    m.rollback_tenant("acme", 1).unwrap();
    m.migrate_tenant("acme").unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
}

/// A builder with one connection a pool, `connection_timeout`, and
/// `busy_timeout` if given.
fn builder_at(
    connection_timeout: Duration,
    busy_timeout: Option<Duration>,
) -> impl Fn(&std::path::Path) -> TenantManager {
    move |root| {
        let b = builder(root)
            .max_connections(1)
            .connection_timeout(connection_timeout);
        let b = match busy_timeout {
            Some(busy) => b.busy_timeout(busy),
            None => b,
        };
        b.build().unwrap()
    }
}

/// `watch_interval(Duration::MAX)` overflowed the watcher's next deadline
/// and its thread died at its first pass, silently: no more pruning, no
/// more noticing other processes. Intervals are clamped to a year.
#[test]
fn the_longest_watch_interval_leaves_the_watcher_running() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder(dir.path())
        .watch_interval(Duration::MAX)
        .sweep_interval(Duration::MAX)
        .idle_timeout(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    let started = Instant::now();
    while m.stats().open_pools != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never pruned: the watcher is gone"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
