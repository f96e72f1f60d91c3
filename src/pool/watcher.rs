//! One background thread per manager: it notices what other processes did
//! to cached tenants, and prunes idle pools.
//!
//! A cached pool is stale when the tenant's path no longer names the
//! pool's file (another process destroyed it, is destroying it, or
//! replaced it by destroy + create or a restore), or when the tenant's
//! schema version is no longer the one the pool was checked at (another
//! process rolled it back or migrated it). A stale pool is marked and
//! evicted: checkouts refuse it at once and open the tenant afresh;
//! connections already out finish and close when they come back, which
//! releases the file for the other process.
//!
//! Looking at a pool costs a `stat` and a query (about 10 µs), so the
//! watcher does not look at every pool every time. Every tenanted
//! operation that can make a pool stale announces its tenant in the root's
//! change log (`storage/coordination/changes.rs`). Every `watch_interval`
//! the watcher reads what was announced since its last look (one `fstat`
//! and one header read when nothing was) and looks at those tenants' pools
//! only; when the log cannot say what it missed, at every pool once.
//! Changes nobody announced (another program changing `user_version`, a
//! file moved by hand) are found by the sweep, which looks at every cached
//! pool once per `sweep_interval`, a slice each pass.
//!
//! A pool with no idle connection cannot be asked its version: it is
//! read with a one-off read instead, as a status reads it (about 100 µs,
//! once per look), but waiting for no other process: this one thread
//! looks at every pool, and a tenant held now is looked at again next
//! pass. Waiting for an idle moment left the busiest tenants
//! never looked at: code of the last version kept writing to a schema
//! another process had migrated. (Retiring such a pool instead would let
//! its tenant have twice `max_connections` open while the old pool's
//! connections finish.)
//!
//! It also reads the root's limits record again when it changed, and
//! retires a pool whose size limit or suspension is no longer the
//! recorded one, so that every connection is reopened under the new one.
//!
//! Holds the cache weakly, and is stopped and joined when the manager drops.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cache::{Peeked, PoolCache};
use super::tenant_pool::TenantPool;
use crate::fs::FileId;
use crate::limits::Limits;
use crate::migrate::{self, Reading};
use crate::name::TenantName;
use crate::storage::{ChangeLog, News};

/// What the watcher does, and how often.
#[derive(Debug, Clone)]
pub(crate) struct WatchSettings {
    /// How often the change log is read and announced tenants looked at.
    pub(crate) interval: Duration,
    /// How long one sweep over every cached pool takes (see the module).
    pub(crate) sweep_interval: Duration,
    /// Prune pools idle this long, if set.
    pub(crate) idle_timeout: Option<Duration>,
    /// The schema version every cached pool was checked at.
    pub(crate) latest_version: usize,
    /// The root, whose change log is read.
    pub(crate) root: PathBuf,
}

/// Stops and joins its thread when dropped (with the manager).
pub(crate) struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts the thread.
    ///
    /// # Errors
    ///
    /// If the thread cannot be spawned.
    pub(crate) fn start(
        cache: &Arc<PoolCache>,
        settings: WatchSettings,
        limits: Arc<Limits>,
    ) -> std::io::Result<Self> {
        let cache: Weak<PoolCache> = Arc::downgrade(cache);
        let (stop, stopped) = mpsc::channel::<()>();
        // Opened here, before `build()` returns and any pool is cached:
        // what the log holds is older than every pool this manager will
        // open. (Opened on the thread, after the return, it skipped an
        // announcement made meanwhile about a pool cached meanwhile.)
        let log = ChangeLog::open(&settings.root);
        let thread = std::thread::Builder::new()
            .name("tenanted-watcher".into())
            .spawn(move || run(&cache, &settings, &limits, (log, &stopped)))?;
        Ok(Watcher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(
    cache: &Weak<PoolCache>,
    settings: &WatchSettings,
    limits: &Limits,
    (log, stopped): (ChangeLog, &mpsc::Receiver<()>),
) {
    let prune_period = settings
        .idle_timeout
        .map(|idle| (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5)));
    let tick = prune_period.map_or(settings.interval, |p| p.min(settings.interval));
    let (mut next_watch, mut next_prune) = (Instant::now(), Instant::now());
    let mut watch = Watch::new(settings, log);
    let mut checked_limits = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
        let Some(cache) = cache.upgrade() else { break };
        let now = Instant::now();
        if let (Some(idle), Some(period)) = (settings.idle_timeout, prune_period)
            && now >= next_prune
        {
            cache.prune_idle(idle);
            next_prune = now + period;
        }
        if now >= next_watch {
            checked_limits = Some(look_at_limits(&cache, limits, checked_limits));
            watch.pass(&cache);
            next_watch = now + settings.interval;
        }
    }
}

/// Refreshes this process's copy of the limits (no I/O beyond the
/// record's `stat`) and, if it changed since the copy `checked` (its
/// generation), retires the pools it no longer agrees with; the copy
/// looked at. Read after the refresh: a copy installed later has a newer
/// generation, looked at on the next pass (a pool opened under the old
/// copy meanwhile is retired by its opener, see `opener.rs`).
fn look_at_limits(cache: &PoolCache, limits: &Limits, checked: Option<u64>) -> u64 {
    limits.refresh();
    let generation = limits.generation();
    if checked != Some(generation) {
        retire_changed_limits(cache, limits);
    }
    generation
}

/// Retires every cached pool whose size limit or suspension is no longer
/// the recorded one, so that its connections are reopened under it.
fn retire_changed_limits(cache: &PoolCache, limits: &Limits) {
    for pool in cache.snapshot() {
        let Some(pool) = pool.upgrade() else { continue };
        if limits.policy(pool.name().as_str()) != *pool.policy() {
            tracing::info!(tenant = %pool.name(), "its size limit or suspension changed; its pool is retired");
            cache.retire_stale(&pool);
        }
    }
}

/// The watcher's memory between passes.
struct Watch<'a> {
    settings: &'a WatchSettings,
    log: ChangeLog,
    /// Tenants announced whose pools could not be looked at yet.
    pending: HashSet<TenantName>,
    /// The sweep's list of pools, and how far it has got.
    sweep: Vec<Weak<TenantPool>>,
    swept: usize,
    sweep_began: Option<Instant>,
}

impl<'a> Watch<'a> {
    fn new(settings: &'a WatchSettings, log: ChangeLog) -> Self {
        Watch {
            settings,
            log,
            pending: HashSet::new(),
            sweep: Vec::new(),
            swept: 0,
            // The first sweep begins at the first pass.
            sweep_began: None,
        }
    }

    /// One pass: the announced tenants, then the sweep's slice.
    fn pass(&mut self, cache: &PoolCache) {
        match self.log.news(&self.settings.root) {
            News::Nothing => {}
            News::Tenants(tenants) => self.pending.extend(tenants),
            News::Anything => {
                for pool in cache.snapshot() {
                    self.look_weak(cache, &pool);
                }
            }
        }
        let pending = std::mem::take(&mut self.pending);
        for tenant in pending {
            self.look_at_tenant(cache, tenant);
        }
        self.sweep_slice(cache);
    }

    /// Looks at `tenant`'s cached pool; keeps the tenant for the next pass
    /// if it cannot tell yet, or while a cold open is in flight: it may
    /// cache a pool of the file just changed after this look (it opened
    /// the file before the change), which the next pass looks at.
    fn look_at_tenant(&mut self, cache: &PoolCache, tenant: TenantName) {
        let Peeked { pool, opening } = cache.peek(tenant.as_str());
        let unknown = pool.is_some_and(|pool| look(cache, &pool, self.settings) == Look::Unknown);
        if unknown || opening {
            self.pending.insert(tenant);
        }
    }

    fn look_weak(&mut self, cache: &PoolCache, pool: &Weak<TenantPool>) {
        // Evicted meanwhile: closed already, nothing to look at.
        let Some(pool) = pool.upgrade() else { return };
        if look(cache, &pool, self.settings) == Look::Unknown {
            self.pending.insert(pool.name().clone());
        }
    }

    /// The next slice of the sweep: the pools cached when the sweep began
    /// are looked at evenly over `sweep_interval`, so that each is looked
    /// at once per sweep whatever their number.
    fn sweep_slice(&mut self, cache: &PoolCache) {
        let sweep = self.settings.sweep_interval.max(self.settings.interval);
        let mut elapsed = self.sweep_began.map_or(sweep, |t| t.elapsed());
        if self.swept >= self.sweep.len() && elapsed >= sweep {
            self.sweep = cache.snapshot();
            (self.swept, self.sweep_began, elapsed) = (0, Some(Instant::now()), Duration::ZERO);
        }
        // How many of the list are due by now (all of them at the end).
        let share = (elapsed + self.settings.interval).as_secs_f64() / sweep.as_secs_f64();
        let due = ((self.sweep.len() as f64 * share).ceil() as usize).min(self.sweep.len());
        let list = std::mem::take(&mut self.sweep);
        for pool in list.get(self.swept..due).unwrap_or_default() {
            self.look_weak(cache, pool);
        }
        self.sweep = list;
        self.swept = self.swept.max(due);
    }
}

/// What looking at a pool found.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// Still the tenant's current file and version.
    Same,
    /// Stale: retired.
    Retired,
    /// Cannot tell now.
    Unknown,
}

/// Looks at `pool`; retires it if its tenant changed.
fn look(cache: &PoolCache, pool: &Arc<TenantPool>, settings: &WatchSettings) -> Look {
    match change_of(pool, settings) {
        Ok(None) => Look::Same,
        Ok(Some(change)) => {
            tracing::info!(tenant = %pool.name(), change, "tenant changed by another process; its pool is retired");
            cache.retire_stale(pool);
            Look::Retired
        }
        Err(()) => Look::Unknown,
    }
}

/// What changed under `pool`, if anything; `Err` if it cannot be told now
/// (a checkout will report what is wrong).
fn change_of(pool: &TenantPool, settings: &WatchSettings) -> Result<Option<&'static str>, ()> {
    match FileId::at(pool.path()) {
        Ok(None) => return Ok(Some("its database is gone or being destroyed")),
        Ok(now) if now != pool.state().file() => return Ok(Some("its database was replaced")),
        Ok(_) => {}
        Err(_) => return Err(()),
    }
    let latest = settings.latest_version;
    let same = match pool.try_idle() {
        Some(conn) => {
            let version: i64 = (conn.connection())
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .map_err(drop)?;
            usize::try_from(version).ok() == Some(latest)
        }
        // Every connection is out (see the module).
        None => {
            let at = (settings.root.as_path(), pool.path());
            migrate::peek_version(pool.name(), at, Reading::Glance).map_err(drop)? == latest
        }
    };
    Ok((!same).then_some("its schema version changed"))
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
