//! A pool's first connection is opened by the thread that asks for the
//! tenant and stays with the pool (its *resident* connection), and a pool
//! never has more than `max_connections` open, whether its connections
//! come from r2d2's connector threads or from the caller.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use common::*;

#[test]
fn the_first_connection_is_opened_by_the_thread_that_asks() {
    let dir = tempfile::tempdir().unwrap();
    let opened_on: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let seen = Arc::clone(&opened_on);
    let m = builder(dir.path())
        .connection_init(move |_| {
            seen.lock().unwrap().push(std::thread::current().id());
            Ok(())
        })
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let conn = m.connection("acme").unwrap();
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(*opened_on.lock().unwrap(), [std::thread::current().id()]);
}

#[test]
fn a_tenant_used_by_one_thread_at_a_time_opens_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (builder, opened) = counting_opens(builder(dir.path()));
    let m = builder.build().unwrap();
    m.create_tenant("acme").unwrap();
    for i in 0..50 {
        let conn = m.connection("acme").unwrap();
        conn.execute(
            "INSERT INTO notes (body) VALUES (?1)",
            [format!("note {i}")],
        )
        .unwrap();
    }
    let conn = m.connection("acme").unwrap();
    let notes: i64 = conn
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!((notes, opened.load(Ordering::SeqCst)), (50, 1));
}

/// `threads` threads take turns on one cold tenant, each holding its
/// connection for a moment, more of them than the pool may open; returns
/// how many connections were opened and the most held at once.
fn crowd(max_connections: u32, threads: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (builder, opened) = counting_opens(builder(dir.path()).max_connections(max_connections));
    let m = builder.build().unwrap();
    m.create_tenant("acme").unwrap();
    let (held, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (m, barrier) = (m.clone(), Arc::clone(&barrier));
            let (held, most) = (Arc::clone(&held), Arc::clone(&most));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    let conn = m.connection("acme").unwrap();
                    most.fetch_max(held.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                    held.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    (opened.load(Ordering::SeqCst), most.load(Ordering::SeqCst))
}

#[test]
fn a_pool_of_one_connection_serves_a_crowd_with_that_one() {
    let (opened, most) = crowd(1, 6);
    assert_eq!((opened, most), (1, 1));
}

#[test]
fn a_pool_never_opens_more_than_max_connections() {
    for max in [2, 3] {
        let (opened, most) = crowd(max, 8);
        let max = max as usize;
        assert!(opened <= max, "{opened} connections opened for max {max}");
        assert!(most <= max, "{most} held at once for max {max}");
    }
}

#[test]
fn a_wait_for_a_connection_that_cannot_be_opened_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&opened);
    // The first connection opens; every later one fails in the hook.
    let m = builder(dir.path())
        .max_connections(2)
        .connection_timeout(Duration::from_millis(300))
        .connection_init(move |conn| match count.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(()),
            _ => conn.execute_batch("PRAGMA this is not sql;"),
        })
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    let held = m.connection("acme").unwrap();
    let err = m.connection("acme").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, tenanted::Error::Pool { .. })
            && msg.contains("acme")
            && msg.contains("syntax error"),
        "{msg}"
    );
    drop(held);
    assert!(m.connection("acme").is_ok());
}
