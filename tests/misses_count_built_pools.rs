//! `stats().misses` counts `connection` calls that had to build a pool
//! (and `hits` those that found one, nothing else),
//! as documented: never lookups of invalid or missing names, and one for
//! a cold tenant that many threads ask for at once (single flight).

mod common;

use std::sync::Barrier;
use std::sync::atomic::Ordering;

use tenanted::Error;

#[test]
fn lookups_of_invalid_and_missing_names_are_not_misses() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    for _ in 0..3 {
        assert!(matches!(
            m.connection("../etc"),
            Err(Error::BadTenantName { .. })
        ));
        assert!(matches!(
            m.connection("nobody"),
            Err(Error::TenantDoesNotExist { .. })
        ));
    }
    let stats = m.stats();
    assert_eq!((stats.misses, stats.hits, stats.open_pools), (0, 0, 0));

    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    drop(m.connection("acme").unwrap());
    let stats = m.stats();
    assert_eq!((stats.misses, stats.hits, stats.open_pools), (1, 1, 1));
}

#[test]
fn threads_asking_for_one_cold_tenant_at_once_build_one_pool() {
    const THREADS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let (builder, opened) =
        common::counting_opens(common::builder(dir.path()).max_connections(THREADS as u32));
    let m = builder.build().unwrap();
    m.create_tenant("acme").unwrap();

    let start = Barrier::new(THREADS);
    let all_hold = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                start.wait();
                let conn = m.connection("acme").unwrap();
                // Every thread holds a connection at once, so the pool
                // opens exactly one per thread; a second pool built by a
                // racing thread would open one more.
                all_hold.wait();
                let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
                assert_eq!(one, 1);
            });
        }
    });
    let stats = m.stats();
    assert_eq!(stats.misses, 1, "{stats:?}");
    assert_eq!(stats.hits, THREADS as u64 - 1, "{stats:?}");
    assert_eq!(stats.open_pools, 1);
    assert_eq!(opened.load(Ordering::SeqCst), THREADS);
}

/// `stats().hits` counts checkouts from a cached pool, and nothing else:
/// a limit change, which retires the tenant's pool, is none (a review: it
/// counted a hit, and moved the pool it retired to the front of the LRU).
#[test]
fn a_limit_change_is_not_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    let hits = m.stats().hits;
    m.set_tenant_max_size("acme", Some(1 << 20)).unwrap();
    m.suspend_tenant("acme", tenanted::SuspendMode::ReadOnly, "audit")
        .unwrap();
    assert_eq!(m.stats().hits, hits);
}
