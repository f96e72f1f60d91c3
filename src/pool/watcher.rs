//! One background thread per manager: it notices what other processes did
//! to cached tenants, and prunes idle pools.
//!
//! Every `watch_interval` it looks at each cached pool, off the warm path:
//! if the tenant's path no longer names the pool's file (another process
//! destroyed it, is destroying it, or replaced it by destroy + create or a
//! restore), or the tenant's schema version is no longer the one the pool
//! was checked at (another process rolled it back or migrated it), the pool
//! is marked stale and evicted. Checkouts refuse a stale pool at once and
//! open the tenant afresh; connections already out finish and close when
//! they come back, which releases the file for the other process.
//!
//! Holds the cache weakly, and is stopped and joined when the manager drops.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cache::PoolCache;
use super::tenant_pool::TenantPool;
use crate::fs::FileId;

/// What the watcher does, and how often.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchSettings {
    /// How often cached pools are checked against their files.
    pub(crate) interval: Duration,
    /// Prune pools idle this long, if set.
    pub(crate) idle_timeout: Option<Duration>,
    /// The schema version every cached pool was checked at.
    pub(crate) latest_version: usize,
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
    pub(crate) fn start(cache: &Arc<PoolCache>, settings: WatchSettings) -> std::io::Result<Self> {
        let cache: Weak<PoolCache> = Arc::downgrade(cache);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tenanted-watcher".into())
            .spawn(move || run(&cache, settings, &stopped))?;
        Ok(Watcher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(cache: &Weak<PoolCache>, settings: WatchSettings, stopped: &mpsc::Receiver<()>) {
    let prune_period = settings
        .idle_timeout
        .map(|idle| (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5)));
    let tick = prune_period.map_or(settings.interval, |p| p.min(settings.interval));
    let (mut next_watch, mut next_prune) = (Instant::now(), Instant::now());
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
            watch(&cache, settings.latest_version);
            next_watch = now + settings.interval;
        }
    }
}

/// Evicts every cached pool whose file or version changed.
fn watch(cache: &PoolCache, latest_version: usize) {
    for pool in cache.snapshot() {
        // Evicted meanwhile: closed already, nothing to look at.
        let Some(pool) = pool.upgrade() else { continue };
        if let Some(change) = change_of(&pool, latest_version) {
            tracing::info!(tenant = %pool.name(), change, "tenant changed by another process; its pool is retired");
            cache.retire_stale(&pool);
        }
    }
}

/// What changed under `pool`, if anything.
fn change_of(pool: &TenantPool, latest_version: usize) -> Option<&'static str> {
    match FileId::at(pool.path()) {
        Ok(None) => return Some("its database is gone or being destroyed"),
        Ok(now) if now != pool.state().file() => return Some("its database was replaced"),
        Ok(_) => {}
        // Cannot tell: leave it; a checkout will report what is wrong.
        Err(_) => return None,
    }
    // An idle connection reads the version; if all are busy, the pool is
    // in use and is looked at again next time.
    let conn = pool.try_idle()?;
    let version: i64 = conn
        .connection()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .ok()?;
    (usize::try_from(version).ok() != Some(latest_version)).then_some("its schema version changed")
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
