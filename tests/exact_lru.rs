//! `max_pools(n)` holds `n` tenants, and the pool evicted to make room is
//! the least recently used one of the whole cache (issue #24, item 2).
//! Whether a call was served by a cached pool is read from `stats()`.

mod common;

use common::*;
use tenanted::TenantManager;

fn name(i: usize) -> String {
    format!("t{i:04}")
}

/// Whether `connection(tenant)` had to open the tenant (a miss).
fn missed(m: &TenantManager, tenant: &str) -> bool {
    let before = m.stats().misses;
    drop(m.connection(tenant).unwrap());
    m.stats().misses > before
}

fn fleet(dir: &std::path::Path, tenants: usize, max_pools: usize) -> TenantManager {
    let m = builder(dir).max_pools(max_pools).build().unwrap();
    let report = m.create_tenants((0..tenants).map(name)).unwrap();
    assert_eq!(report.created.len(), tenants);
    m
}

/// activerecord-tenanted's script: 51 tenants under the default cap of
/// 50, the first one used again before the 51st arrives: exactly one
/// eviction, of the least recently used tenant (the second), and every
/// other tenant still cached.
#[test]
fn fifty_one_tenants_under_the_default_cap_evict_only_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenants((0..51).map(name)).unwrap();
    for i in 0..50 {
        assert!(missed(&m, &name(i)));
    }
    assert!(!missed(&m, &name(0)), "t0000 is cached");
    assert!(missed(&m, &name(50)));
    let stats = m.stats();
    assert_eq!((stats.open_pools, stats.evictions), (50, 1), "{stats:?}");
    for i in (0..51).filter(|&i| i != 1) {
        assert!(
            !missed(&m, &name(i)),
            "{} was evicted instead of t0001",
            name(i)
        );
    }
    assert!(missed(&m, &name(1)), "t0001 was the least recently used");
    assert_eq!(m.stats().evictions, 2);
}

/// The most pools this process may hold open: its descriptor limit raised
/// to the hard limit, at about three descriptors a pool, with room left.
fn pools_the_limit_allows() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    // Raising is allowed up to the hard limit; if refused, the current
    // limit is what there is.
    let _ = setrlimit(Resource::Nofile, limit);
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(now / 4).unwrap_or(usize::MAX)
}

/// `n` tenants used in turn under `max_pools(n)`: after the first round,
/// every call is served by a cached pool and nothing is evicted (2,000
/// kept 1,996 when each shard of the cache had a cap of its own).
#[test]
fn n_tenants_fit_in_max_pools_n() {
    let dir = tempfile::tempdir().unwrap();
    let most = 2000.min(pools_the_limit_allows());
    drop(fleet(dir.path(), most, 1));
    for n in [1, 7, 31, 32, 50, 333.min(most), most] {
        let m = builder(dir.path()).max_pools(n).build().unwrap();
        for round in 0..2 {
            for i in 0..n {
                assert_eq!(
                    missed(&m, &name(i)),
                    round == 0,
                    "max_pools({n}): {}",
                    name(i)
                );
            }
        }
        let stats = m.stats();
        assert_eq!(
            (stats.open_pools, stats.evictions),
            (n, 0),
            "max_pools({n})"
        );
    }
}

/// A reference LRU: the tenants cached, least recently used first.
struct Model {
    order: Vec<usize>,
    cap: usize,
}

impl Model {
    /// Uses `tenant`; whether that was a miss.
    fn touch(&mut self, tenant: usize) -> bool {
        let hit = self.order.iter().position(|&t| t == tenant);
        if let Some(at) = hit {
            self.order.remove(at);
        } else if self.order.len() == self.cap {
            self.order.remove(0);
        }
        self.order.push(tenant);
        hit.is_none()
    }
}

/// A long pseudo-random sequence over more tenants than the cap, spread
/// over every shard: each call hits or misses exactly as a reference LRU
/// of the same cap says.
#[test]
fn every_hit_and_miss_is_the_reference_lrus() {
    let dir = tempfile::tempdir().unwrap();
    for (tenants, cap) in [(12, 5), (60, 40), (90, 50)] {
        let m = fleet(&dir.path().join(format!("{tenants}")), tenants, cap);
        let mut model = Model {
            order: Vec::new(),
            cap,
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..1500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skewed, so that some tenants stay hot and others come and go.
            let t = ((x % tenants as u64) * (x >> 60) / 15) as usize % tenants;
            assert_eq!(
                missed(&m, &name(t)),
                model.touch(t),
                "step {step}: {} (cap {cap}, {tenants} tenants)",
                name(t)
            );
        }
        let stats = m.stats();
        assert_eq!(stats.open_pools, cap.min(tenants));
        assert_eq!(stats.evictions, stats.misses - cap as u64);
    }
}
