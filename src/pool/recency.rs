//! The cache's global recency order, kept off the warm path.
//!
//! A checkout only stamps its pool with the time of use (one relaxed store
//! of a clock it reads anyway). This order holds one entry per cached pool,
//! stamped when the entry was made, in a min-heap. Stamps only grow, so an
//! entry's stamp is at most its pool's current one. When the oldest entry
//! still carries its pool's current stamp, no cached pool was used less
//! recently: that pool is the least recently used of the whole cache.
//! Otherwise the pool was used since: its entry goes back with the new
//! stamp, and the next oldest is looked at. Each re-entry stands for at
//! least one checkout since the last look, so finding the victim costs
//! O(log n) per checkout at most, paid by the cold path that evicts.
//!
//! Entries hold pools weakly and may outlive their pool's place in the
//! cache (an eviction, a destroy, a prune): the cache checks a candidate
//! against its shard before evicting it, and rebuilds the order from the
//! shards when it holds too many stale entries or finds none to offer.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};

use super::tenant_pool::TenantPool;

/// Stale entries allowed beyond the cached pools before a rebuild.
const SLACK: usize = 64;

/// One pool's place in the order: its stamp when the entry was made.
struct Entry {
    stamp: u64,
    pool: Weak<TenantPool>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.stamp == other.stamp
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.stamp.cmp(&other.stamp)
    }
}

/// The least recently used first (see the module's note).
pub(super) struct Recency {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Entries allowed before the order is rebuilt from the shards.
    limit: usize,
}

impl Recency {
    /// An empty order for a cache of at most `max_pools` pools.
    pub(super) fn new(max_pools: usize) -> Self {
        Recency {
            heap: BinaryHeap::new(),
            limit: max_pools.saturating_mul(2).saturating_add(SLACK),
        }
    }

    /// Adds `pool`, stamped with its last use. Says whether the order now
    /// holds so many stale entries that it should be rebuilt.
    pub(super) fn record(&mut self, pool: &Arc<TenantPool>) -> bool {
        self.push(pool);
        self.heap.len() > self.limit
    }

    fn push(&mut self, pool: &Arc<TenantPool>) {
        self.heap.push(Reverse(Entry {
            stamp: pool.last_used(),
            pool: Arc::downgrade(pool),
        }));
    }

    /// Replaces the order with `pools` (every cached pool).
    pub(super) fn rebuild(&mut self, pools: impl IntoIterator<Item = Arc<TenantPool>>) {
        self.heap.clear();
        for pool in pools {
            self.push(&pool);
        }
    }

    /// The least recently used pool the order knows of, with the stamp it
    /// was found at; its entry is taken out. `None` when the order is
    /// empty. The pool may have left the cache since: the caller checks.
    pub(super) fn oldest(&mut self) -> Option<(Arc<TenantPool>, u64)> {
        while let Some(Reverse(entry)) = self.heap.pop() {
            // Closed since: nothing to evict.
            let Some(pool) = entry.pool.upgrade() else {
                continue;
            };
            let now = pool.last_used();
            if now == entry.stamp {
                return Some((pool, now));
            }
            // Used since the entry was made: back in, at its new place.
            self.heap.push(Reverse(Entry {
                stamp: now,
                pool: entry.pool,
            }));
        }
        None
    }
}
