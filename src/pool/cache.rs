//! The cache of per-tenant r2d2 pools: at most `max_pools`, and the one
//! evicted to make room is the least recently used of the whole cache.
//!
//! The cache is 8 shards by the FNV-1a hash of the tenant's name, each an
//! `lru::LruCache` behind a short `parking_lot::Mutex`, so that the warm
//! path of threads working on different tenants rarely shares a lock. A
//! warm checkout moves its pool to the front of its shard's LRU (under the
//! lock it takes for the lookup anyway) and stamps the pool with the time
//! of use. So each shard's least recently used pool is its tail, and the
//! least recently used pool of the whole cache is the tail with the
//! oldest stamp: a cold open that needs room looks at the 8 tails
//! (`evict_oldest`). Eviction is exact LRU over every pool, not per shard.
//!
//! The cap is kept with slots: an insert first takes a slot (evicting the
//! least recently used pool while none is free), then puts its pool in its
//! shard; a pool leaves its shard before its slot is given back. So the
//! pools cached never exceed `max_pools`, at any instant. Files are never
//! opened under a lock, no two locks are held at once, and evicted pools
//! are dropped after every lock is released. A pool evicted while
//! connections are checked out stays alive (its connections hold it) and
//! is remembered as *draining* so that `destroy_tenant` can wait for those
//! connections too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::flight::Flight;
use super::pool_state::Admission;
pub(super) use super::shard::Retired;
use super::shard::Shard;
use super::slot_gate::SlotGate;
use super::stats::PoolStats;
use super::tenant_pool::TenantPool;
use crate::name::TenantName;
use crate::paths::Fnv1a;

/// How many shards the lookups are split into, so that threads working on
/// different tenants rarely take the same lock.
const SHARDS: usize = 8;

/// Who won [`PoolCache::insert`].
pub(super) enum Inserted {
    /// The pool given is cached now.
    Ours,
    /// Another thread cached a pool of this tenant first: use that one.
    Theirs(Arc<TenantPool>),
    /// The tenant is being destroyed: nothing was cached.
    Destroying,
}

/// What [`PoolCache::peek`] finds.
pub(super) struct Peeked {
    /// The cached pool.
    pub(super) pool: Option<Arc<TenantPool>>,
    /// Whether cold opens are in flight: each may cache a pool later, of
    /// the file it opened (several leads open together after a failure,
    /// and the losers' pools are dropped, but one that lands after the
    /// cached pool was retired is cached in its place).
    pub(super) opening: bool,
}

/// What a cold open of a tenant finds in the cache.
pub(super) enum Opening<'a> {
    /// A pool is cached (another thread opened it meanwhile).
    Cached(Arc<TenantPool>),
    /// Nobody is opening it: this thread opens it, the others wait.
    Lead(FlightGuard<'a>),
    /// Another thread is opening it: wait for it, then look again.
    Follow(Arc<Flight>),
    /// This thread is opening it, and asks again from within that open
    /// (a `connection_init` hook): waiting would be for itself.
    Reentered,
    /// A destroy of it is in progress in this process.
    Destroying,
}

/// A lead's hold on a flight: dropped after the lead's pool (declare it
/// first), it ends the lead's part of the flight in the cache, and the
/// last lead's wakes the waiters.
pub(crate) struct FlightGuard<'a> {
    cache: &'a PoolCache,
    tenant: TenantName,
    flight: Arc<Flight>,
    failed: bool,
}

impl FlightGuard<'_> {
    /// The lead's open failed: its followers open the tenant together
    /// (see `flight.rs`).
    pub(super) fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.cache.end_open(&self.tenant, &self.flight, self.failed) {
            self.flight.wake();
        }
    }
}

/// The pools' LRU, its counters and the tenants being destroyed, in
/// shards by tenant.
pub(crate) struct PoolCache {
    shards: Box<[Mutex<Shard>]>,
    max_pools: usize,
    /// Slots taken: pools cached plus inserts about to cache one. Never
    /// above `max_pools`.
    slots: AtomicUsize,
    /// Pools cached (in a shard's map): never above `slots`.
    cached: AtomicUsize,
    /// Where an insert that finds no slot and nothing to evict sleeps.
    gate: SlotGate,
    /// How many times `take_slot` looked at the slots (tests count them).
    #[cfg(test)]
    looks: AtomicUsize,
    epoch: Instant,
}

impl PoolCache {
    /// An empty cache of at most `max_pools` pools (at least 1).
    pub(crate) fn new(max_pools: usize) -> Self {
        let max_pools = max_pools.max(1);
        PoolCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            max_pools,
            slots: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            gate: SlotGate::default(),
            #[cfg(test)]
            looks: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The shard of tenant `name`: FNV-1a of its name.
    fn shard(&self, name: &str) -> &Mutex<Shard> {
        let mut hash = Fnv1a::new();
        hash.write(name.as_bytes());
        &self.shards[(hash.finish() % self.shards.len() as u64) as usize]
    }

    /// Nanoseconds since the cache was made: the clock of `last_used`,
    /// fine enough that two checkouts one after the other get different
    /// stamps, which comparing the shards' tails needs to be exact.
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The warm path: one lock, one hash lookup that moves the pool to the
    /// front of its shard's LRU, one reference count.
    pub(super) fn lookup(&self, name: &str) -> Option<Arc<TenantPool>> {
        let mut state = self.shard(name).lock();
        let pool = Arc::clone(state.pools.get(name)?);
        state.hits += 1;
        Some(pool)
    }

    /// `name`'s cached pool, for the watcher (not counted as a hit), and
    /// whether a cold open of it is in flight: looked at under one lock,
    /// since an open that lands between two looks caches a pool neither
    /// saw (of a file an announced change has just fenced off).
    pub(super) fn peek(&self, name: &str) -> Peeked {
        let state = self.shard(name).lock();
        Peeked {
            pool: state.pools.peek(name).cloned(),
            opening: state.flights.contains_key(name),
        }
    }

    /// Starts a cold open of `tenant`: see [`Opening`]. `together`, for a
    /// caller whose lead failed: it joins (or starts) a round of opens
    /// instead of following one more (see `flight.rs`).
    pub(super) fn begin_open(&self, tenant: &TenantName, together: bool) -> Opening<'_> {
        let mut state = self.shard(tenant.as_str()).lock();
        if state.destroying.contains(tenant.as_str()) {
            return Opening::Destroying;
        }
        if let Some(pool) = state.pools.get(tenant.as_str()) {
            let pool = Arc::clone(pool);
            state.hits += 1;
            return Opening::Cached(pool);
        }
        let flight = match state.flights.get(tenant.as_str()) {
            Some(flight) if flight.led_here() => return Opening::Reentered,
            Some(flight) if together && flight.join() => Arc::clone(flight),
            Some(flight) => return Opening::Follow(Arc::clone(flight)),
            None => {
                let flight = Arc::new(Flight::new(together));
                state.flights.insert(tenant.clone(), Arc::clone(&flight));
                flight
            }
        };
        Opening::Lead(FlightGuard {
            cache: self,
            tenant: tenant.clone(),
            flight,
            failed: false,
        })
    }

    /// Ends a lead's part of a cold open (from `FlightGuard::drop`);
    /// whether the flight landed (its last lead).
    fn end_open(&self, tenant: &TenantName, flight: &Arc<Flight>, failed: bool) -> bool {
        let mut state = self.shard(tenant.as_str()).lock();
        let landed = flight.leave(failed);
        if landed && (state.flights.get(tenant.as_str())).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            state.flights.remove(tenant.as_str());
        }
        landed
    }

    /// Takes `name`'s pool out of the cache if it is stale (a checkout
    /// found it so); returns at once otherwise.
    pub(super) fn evict_stale(&self, name: &str) {
        self.evict_if(name, |p| p.state().admission() == Admission::Stale);
    }

    /// Marks `pool` stale and takes it out of the cache (if it is still the
    /// cached one): its file is no longer the tenant's current one.
    pub(super) fn retire_stale(&self, pool: &Arc<TenantPool>) {
        pool.state().mark_stale();
        self.evict_if(pool.name().as_str(), |cached| Arc::ptr_eq(cached, pool));
    }

    /// Takes `name`'s cached pool out if `which` says so; it joins the
    /// draining pools and is dropped (closing, unless connections are out)
    /// after the lock is released.
    fn evict_if(&self, name: &str, which: impl Fn(&Arc<TenantPool>) -> bool) {
        let mut state = self.shard(name).lock();
        let pool = match state.pools.peek(name) {
            Some(cached) if which(cached) => state.pools.pop(name),
            _ => None,
        };
        if let Some(pool) = &pool {
            state.retire(std::slice::from_ref(pool));
            self.left(1);
        }
        drop(state);
        drop(pool);
    }

    /// Every cached pool, for the watcher to look at unlocked. Weak: a
    /// pool evicted while the watcher works through the list closes at
    /// once, instead of keeping its connections (and descriptors) open
    /// until the watcher is done, past the cache's bound.
    pub(super) fn snapshot(&self) -> Vec<Weak<TenantPool>> {
        let mut pools = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            pools.extend(shard.pools.iter().map(|(_, p)| Arc::downgrade(p)));
        }
        pools
    }

    /// Caches a freshly built pool, unless another thread cached one for
    /// the same tenant first or the tenant is being destroyed; says which.
    /// Room is made first, by evicting the least recently used pool of the
    /// whole cache if every slot is taken. The caller drops `Retired`
    /// unlocked.
    pub(super) fn insert(&self, pool: Arc<TenantPool>) -> (Inserted, Retired) {
        let mut retired = Vec::new();
        if let Some(lost) = self.lost(&pool, &mut retired) {
            return (lost, retired);
        }
        self.take_slot(&mut retired);
        let mut state = self.shard(pool.name().as_str()).lock();
        if let Some(lost) = lost_to(&state, &pool, &mut retired) {
            drop(state);
            self.give_back_slot();
            return (lost, retired);
        }
        state.misses += 1;
        state.pools.put(pool.name().clone(), Arc::clone(&pool));
        self.cached.fetch_add(1, Ordering::SeqCst);
        drop(state);
        // Evictable now: an insert waiting for room can take it.
        self.gate.changed();
        (Inserted::Ours, retired)
    }

    /// Whether `pool` has no place in the cache before room is made for
    /// it (a pool of its tenant is cached, or it is being destroyed).
    fn lost(&self, pool: &Arc<TenantPool>, retired: &mut Retired) -> Option<Inserted> {
        lost_to(&self.shard(pool.name().as_str()).lock(), pool, retired)
    }

    /// Takes a slot, evicting least recently used pools until one is
    /// free. Other inserts may hold the last slots with their pools not
    /// in their shards yet (nothing to evict): this sleeps until one of
    /// them caches its pool or gives its slot back (see `slot_gate.rs`).
    fn take_slot(&self, retired: &mut Retired) {
        let mut waiting = self.gate.enter();
        loop {
            #[cfg(test)]
            self.looks.fetch_add(1, Ordering::SeqCst);
            let taken = self
                .slots
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < self.max_pools).then_some(n + 1)
                });
            if taken.is_ok() {
                return;
            }
            match self.evict_oldest() {
                Some(pool) => retired.push(pool),
                None => waiting.wait(),
            }
        }
    }

    /// An insert that took a slot caches nothing after all.
    fn give_back_slot(&self) {
        self.slots.fetch_sub(1, Ordering::SeqCst);
        self.gate.changed();
    }

    /// A pool left its shard: its slot is free again.
    fn left(&self, n: usize) {
        self.cached.fetch_sub(n, Ordering::SeqCst);
        self.slots.fetch_sub(n, Ordering::SeqCst);
        self.gate.changed();
    }

    /// Evicts the least recently used pool of the whole cache, if any is
    /// cached; returns it, to be dropped unlocked.
    fn evict_oldest(&self) -> Option<Arc<TenantPool>> {
        loop {
            let (index, victim) = self.oldest_tail()?;
            let mut state = self.shards[index].lock();
            // Checked out or evicted in the instant since: look again.
            let still = state.oldest().is_some_and(|(p, _)| Arc::ptr_eq(p, &victim));
            if !still {
                continue;
            }
            state.pools.pop_lru();
            state.evictions += 1;
            state.retire(std::slice::from_ref(&victim));
            self.left(1);
            tracing::debug!(tenant = %victim.name(), "evicted least recently used pool");
            return Some(victim);
        }
    }

    /// The shard whose least recently used pool has the oldest stamp, and
    /// that pool: the least recently used of the whole cache. The shards
    /// are looked at one at a time (never two locks at once).
    fn oldest_tail(&self) -> Option<(usize, Arc<TenantPool>)> {
        let mut oldest: Option<(usize, Arc<TenantPool>, u64)> = None;
        for (index, shard) in self.shards.iter().enumerate() {
            let state = shard.lock();
            let Some((pool, stamp)) = state.oldest() else {
                continue;
            };
            if oldest.as_ref().is_none_or(|(_, _, best)| stamp < *best) {
                oldest = Some((index, Arc::clone(pool), stamp));
            }
        }
        oldest.map(|(index, pool, _)| (index, pool))
    }

    /// Takes `name`'s pool out of the cache (it drains if in use), marked
    /// stale: its tenant's schema moved down under it (a rollback), so no
    /// checkout may take it again, even from a destroy that gives up and
    /// puts pools back.
    pub(crate) fn evict_moved_down(&self, name: &str) {
        if let Some(pool) = self.shard(name).lock().pools.peek(name) {
            pool.state().mark_stale();
        }
        self.evict_if(name, |_| true);
    }

    /// Drops pools with no checkout for `idle_for` and none checked out;
    /// returns how many.
    pub(crate) fn prune_idle(&self, idle_for: Duration) -> usize {
        let idle_for = u64::try_from(idle_for.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = self.now().saturating_sub(idle_for);
        let mut pruned = 0;
        for shard in &self.shards {
            // Each shard's pools close here, after its lock is released.
            let retired = shard.lock().prune(cutoff);
            self.left(retired.len());
            for pool in &retired {
                tracing::debug!(tenant = %pool.name(), "pruned idle pool");
            }
            pruned += retired.len();
        }
        pruned
    }

    /// Starts destroying `name`: new checkouts of it fail from now on, and
    /// every live pool of it (cached or draining) is returned, closing.
    /// `None` if another destroy of it is in progress.
    pub(super) fn begin_destroy(
        &self,
        name: &TenantName,
    ) -> Option<(Retired, Option<Arc<Flight>>)> {
        let mut state = self.shard(name.as_str()).lock();
        if !state.destroying.insert(name.clone()) {
            return None;
        }
        let pools: Retired = state.live_pools(name).collect();
        if state.pools.pop(name.as_str()).is_some() {
            self.left(1);
        }
        for pool in &pools {
            pool.state().begin_destroy();
        }
        let flight = state.flights.get(name.as_str()).cloned();
        Some((pools, flight))
    }

    /// Ends a destroy. When it failed (`pools` given back), the tenant is
    /// reopened for checkouts, and its pools drain: none is cached again.
    /// While the destroy waited, its pools were in neither the cache nor
    /// the draining list, so nothing that retires a pool could see them:
    /// a rollback, a limit change or a suspension made meanwhile (in this
    /// process or announced by another) would have been undone by putting
    /// one back (a review). The next checkout opens the tenant afresh.
    pub(super) fn end_destroy(&self, name: &TenantName, restore: Option<Retired>) {
        let mut state = self.shard(name.as_str()).lock();
        state.destroying.remove(name.as_str());
        let given_back: Retired = restore.unwrap_or_default();
        for pool in &given_back {
            pool.state().end_destroy();
        }
        // They may still have connections out.
        state.retire(&given_back);
        // Unlock before `given_back` drops.
        drop(state);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        // One read, not a sum over the shards read one after another
        // (which a concurrent eviction and insert could push past the cap).
        let mut total = PoolStats {
            open_pools: self.cached.load(Ordering::SeqCst),
            ..PoolStats::default()
        };
        for shard in &self.shards {
            let (stats, draining) = shard.lock().stats();
            // The draining pools close here, outside the lock.
            drop(draining);
            total.draining_pools += stats.draining_pools;
            total.checked_out += stats.checked_out;
            total.hits += stats.hits;
            total.misses += stats.misses;
            total.evictions += stats.evictions;
            total.pruned += stats.pruned;
        }
        total
    }
}

/// Whether `pool` has lost its place in `state`'s shard: a pool of its
/// tenant is cached (that one serves), or the tenant is being destroyed.
/// The lost pool goes to `retired`.
fn lost_to(state: &Shard, pool: &Arc<TenantPool>, retired: &mut Retired) -> Option<Inserted> {
    let name = pool.name().as_str();
    let lost = if state.destroying.contains(name) {
        Inserted::Destroying
    } else {
        Inserted::Theirs(Arc::clone(state.pools.peek(name)?))
    };
    retired.push(Arc::clone(pool));
    Some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With every slot held by inserts whose pools are not cached yet, an
    /// insert needing room sleeps until a slot comes back: it looks at
    /// the slots once, not over and over (review R18: it spun on
    /// `yield_now`, thousands of looks a millisecond).
    #[test]
    fn an_insert_without_room_sleeps_until_a_slot_comes_back() {
        let cache = PoolCache::new(1);
        // Another insert in flight holds the slot (its look not counted).
        cache.take_slot(&mut Vec::new());
        cache.looks.store(0, Ordering::SeqCst);
        let looks = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| cache.take_slot(&mut Vec::new()));
            // Whatever the pause, a sleeping waiter has looked once.
            while cache.looks.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(200));
            let looks = cache.looks.load(Ordering::SeqCst);
            let finished = waiter.is_finished();
            // Given back before asserting: a spinning waiter then ends.
            cache.give_back_slot();
            waiter.join().unwrap();
            assert!(!finished, "it took a slot no one gave back");
            looks
        });
        assert_eq!(looks, 1, "it looked {looks} times: it spun");
        assert_eq!(cache.slots.load(Ordering::SeqCst), 1);
        assert_eq!(cache.looks.load(Ordering::SeqCst), 2);
    }
}
