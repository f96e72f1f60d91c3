//! `TenantManager::interact` (the `tokio` feature): a closure on a pooled
//! connection run on Tokio's blocking threads, over the same pools as
//! `connection`; cancellation never leaks a connection or leaves a
//! transaction open; panics come back as errors; the runtime's own
//! threads never wait on SQLite.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tenanted::{Error, SuspendMode, TenantManager};
use tokio::runtime::Runtime;

fn manager(root: &std::path::Path) -> TenantManager {
    let m = common::builder(root).max_connections(1).build().unwrap();
    m.create_tenant("acme").unwrap();
    m
}

fn runtime(blocking_threads: usize) -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(blocking_threads)
        .enable_time()
        .build()
        .unwrap()
}

fn notes(m: &TenantManager) -> i64 {
    m.connection("acme")
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

/// Waits (on this thread) until the pools have no connection out.
fn until_returned(m: &TenantManager) {
    let started = Instant::now();
    while m.stats().checked_out != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a connection never came back"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn interact_runs_on_the_same_pools_and_passes_connection_errors_through() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let rt = runtime(4);
    let written = rt.block_on(m.interact("acme", |conn| {
        conn.execute("INSERT INTO notes (body) VALUES ('async')", [])
    }));
    assert_eq!(written.unwrap().unwrap(), 1);
    assert_eq!(notes(&m), 1);
    let stats = m.stats();
    assert_eq!(
        (stats.open_pools, stats.misses, stats.checked_out),
        (1, 1, 0)
    );
    let missing = rt.block_on(m.interact("nobody", |_| ()));
    assert!(matches!(missing, Err(Error::TenantDoesNotExist { .. })));
    let bad = rt.block_on(m.interact("../etc", |_| ()));
    assert!(matches!(bad, Err(Error::BadTenantName { .. })));
    m.suspend_tenant("acme", SuspendMode::Blocked, "audit")
        .unwrap();
    let refused = rt.block_on(m.interact("acme", |_| ()));
    assert!(matches!(refused, Err(Error::TenantSuspended { .. })));
}

#[test]
fn a_panic_is_an_error_and_its_transaction_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let rt = runtime(4);
    let panicked = rt.block_on(m.interact("acme", |conn| {
        conn.execute_batch("BEGIN; INSERT INTO notes (body) VALUES ('lost');")
            .unwrap();
        panic!("boom in the closure");
    }));
    match panicked {
        Err(Error::ClosurePanicked { tenant, message }) => {
            assert_eq!(
                (tenant.as_str(), message.as_str()),
                ("acme", "boom in the closure")
            );
        }
        other => panic!("expected ClosurePanicked, got {other:?}"),
    }
    assert_eq!(m.stats().checked_out, 0);
    // The one pooled connection is back, clean: no transaction, no row.
    assert_eq!(notes(&m), 0);
    let left_open = rt.block_on(m.interact("acme", |conn| {
        conn.execute_batch("BEGIN; INSERT INTO notes (body) VALUES ('lost');")
    }));
    assert!(matches!(left_open, Err(Error::TransactionLeftOpen { .. })));
    assert_eq!(notes(&m), 0);
    assert!(m.connection("acme").unwrap().is_autocommit());
}

/// A `connection_init` hook that panics goes on to the caller, as
/// `connection()` lets it (an outside probe saw it reported as "the
/// runtime is shutting down" while the runtime ran on).
#[test]
fn a_panicking_connection_hook_goes_on_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    manager(dir.path());
    let m = common::builder(dir.path())
        .connection_init(|_| panic!("boom in the hook"))
        .build()
        .unwrap();
    let rt = runtime(4);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(m.interact("acme", |_| ()))
    }));
    let panic = caught.expect_err("the hook's panic goes on");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(message, "boom in the hook");
}

#[test]
fn a_future_dropped_before_its_closure_starts_never_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    // One blocking thread, held by a first closure until released.
    let rt = runtime(1);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = std::sync::mpsc::channel::<()>();
    let first = {
        let m = m.clone();
        rt.spawn(async move {
            m.interact("acme", move |_| {
                started.send(()).unwrap();
                released.recv().unwrap();
            })
            .await
        })
    };
    rt.block_on(async {
        while has_started.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let ran = Arc::new(AtomicBool::new(false));
    {
        let ran = Arc::clone(&ran);
        let mut second = pin!(m.interact("acme", move |_| ran.store(true, Ordering::SeqCst)));
        // Polled once (inside the runtime), so its closure is queued
        // behind the first; then dropped, as a timeout or a client going
        // away would.
        let _inside = rt.enter();
        let waker = Waker::noop();
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
    }
    release.send(()).unwrap();
    rt.block_on(first).unwrap().unwrap();
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    assert!(!ran.load(Ordering::SeqCst), "the dropped closure ran");
    until_returned(&m);
}

/// The checkout itself may wait (a busy pool, up to `connection_timeout`):
/// a future dropped meanwhile (a request that timed out, its client told
/// so) used to have its closure run, and write, once a connection came.
#[test]
fn a_future_dropped_while_its_checkout_waits_never_runs_its_closure() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let rt = runtime(2);
    // The pool's one connection is out.
    let held = m.connection("acme").unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let closure_ran = Arc::clone(&ran);
    let hits = m.stats().hits;
    let waiting = {
        let m = m.clone();
        rt.spawn(async move {
            m.interact("acme", move |conn| {
                closure_ran.store(true, Ordering::SeqCst);
                conn.execute("INSERT INTO notes (body) VALUES ('too late')", [])
            })
            .await
        })
    };
    // Its checkout found the cached pool (a hit) and waits for the
    // connection: the future is dropped now, as a timeout would. (The
    // runtime runs the task only while it is driven.)
    rt.block_on(async {
        let started = Instant::now();
        while m.stats().hits == hits {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the checkout never began"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    waiting.abort();
    assert!(rt.block_on(waiting).is_err_and(|e| e.is_cancelled()));
    // The checkout gets the connection now, and hands it straight back;
    // dropping the runtime waits for its blocking task to end.
    drop(held);
    drop(rt);
    until_returned(&m);
    assert!(!ran.load(Ordering::SeqCst), "the dropped closure ran");
    assert_eq!(notes(&m), 0);
}

#[test]
fn a_future_dropped_while_its_closure_runs_returns_the_connection_clean() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let rt = runtime(2);
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let slow = m.interact("acme", move |conn| {
        conn.execute_batch("BEGIN; INSERT INTO notes (body) VALUES ('kept');")?;
        std::thread::sleep(Duration::from_millis(200));
        conn.execute_batch("COMMIT")?;
        done.store(true, Ordering::SeqCst);
        Ok::<_, rusqlite::Error>(())
    });
    let timed_out =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(20), slow).await });
    assert!(timed_out.is_err(), "the timeout fired first");
    // The closure runs to its end; its connection (the pool's only one)
    // comes back with no transaction open, and its commit stands.
    until_returned(&m);
    assert!(finished.load(Ordering::SeqCst));
    let clean = rt.block_on(m.interact("acme", |conn| conn.is_autocommit()));
    assert!(clean.unwrap());
    assert_eq!(notes(&m), 1);
}

#[test]
fn the_runtime_thread_keeps_running_while_a_closure_waits_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let rt = runtime(2);
    let ticks = Arc::new(AtomicUsize::new(0));
    let seen = rt.block_on(async {
        let counter = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let during = Arc::clone(&ticks);
        let seen = m
            .interact("acme", move |_conn| {
                let before = during.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                during.load(Ordering::SeqCst) - before
            })
            .await
            .unwrap();
        ticker.abort();
        seen
    });
    // One runtime thread, and it ticked while the closure slept.
    assert!(seen > 0, "the runtime was blocked");
}

#[test]
fn outside_a_runtime_interact_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let mut future = pin!(m.interact("acme", |_| ()));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Err(Error::InteractAborted { reason, .. })) => {
            assert!(reason.contains("no Tokio runtime"), "{reason}");
        }
        other => panic!("expected InteractAborted, got {other:?}"),
    }
}

/// A future dropped while its checkout waits lets go of its blocking
/// thread at once, not after `connection_timeout` (an outside probe: 600
/// requests to a busy tenant, each given up after 200 ms, held 518
/// threads of Tokio's blocking pool, and a request to another tenant
/// waited 7.6 s behind them). Here the pool has one blocking thread, and
/// the timeout is an hour.
#[test]
fn a_future_dropped_while_its_checkout_waits_frees_its_thread_for_other_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::builder(dir.path())
        .max_connections(1)
        .connection_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    let rt = runtime(1);
    let held = m.connection("acme").unwrap();
    let hits = m.stats().hits;
    let waiting = {
        let m = m.clone();
        rt.spawn(async move { m.interact("acme", |_| ()).await })
    };
    rt.block_on(async {
        while m.stats().hits == hits {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    waiting.abort();
    assert!(rt.block_on(waiting).is_err_and(|e| e.is_cancelled()));
    // acme's connection is still out: only a freed thread serves globex.
    let other = rt.block_on(async {
        let asked = m.interact("globex", |conn| {
            conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        });
        tokio::time::timeout(Duration::from_secs(120), asked).await
    });
    assert_eq!(
        other
            .expect("globex waited behind the abandoned checkout")
            .unwrap()
            .unwrap(),
        0
    );
    drop(held);
}

/// A future dropped while its checkout waits for another caller's cold
/// open of the tenant (its first connection, held up here in a
/// `connection_init` hook) lets go of its blocking thread too, not after
/// `connection_timeout` (a review). Two blocking threads: the open's, and
/// the abandoned follower's, which must free itself for another tenant.
#[test]
fn a_future_dropped_while_another_opens_its_tenant_frees_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    manager(dir.path()).create_tenant("globex").unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // The hook is let go even if an assertion fails, so the runtime's
    // drop does not wait for it forever.
    struct LetGo(std::sync::mpsc::Sender<()>);
    impl Drop for LetGo {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let release = LetGo(release);
    let released = std::sync::Mutex::new(released);
    let opening = Arc::new(AtomicBool::new(false));
    let hook_opening = Arc::clone(&opening);
    let m = common::builder(dir.path())
        .connection_timeout(Duration::from_secs(3600))
        .connection_init(move |conn| {
            let acme = conn.path().is_some_and(|p| p.contains("/acme/"));
            if acme && !hook_opening.swap(true, Ordering::SeqCst) {
                let _ = released.lock().unwrap().recv();
            }
            Ok(())
        })
        .build()
        .unwrap();
    let rt = runtime(2);
    let lead = {
        let m = m.clone();
        rt.spawn(async move { m.interact("acme", |_| ()).await })
    };
    rt.block_on(async {
        while !opening.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let follower = {
        let m = m.clone();
        rt.spawn(async move { m.interact("acme", |_| ()).await })
    };
    // Let the follower reach the flight, then give it up.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    follower.abort();
    assert!(rt.block_on(follower).is_err_and(|e| e.is_cancelled()));
    let other = rt.block_on(async {
        let asked = m.interact("globex", |conn| {
            conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        });
        tokio::time::timeout(Duration::from_secs(120), asked).await
    });
    let served = other.expect("globex waited behind the abandoned follower");
    assert_eq!(served.unwrap().unwrap(), 0);
    drop(release);
    rt.block_on(lead).unwrap().unwrap();
}
