//! The destroy drain, as a guard.
//!
//! [`DestroyGuard::begin`] marks the tenant as being destroyed (new
//! checkouts and cold opens of it fail at once) and takes every live pool
//! of it, closing. [`DestroyGuard::drain`] waits for the connections still
//! checked out to come back, then closes the pools so that their
//! connections close before the files go. Dropping the guard ends the
//! destroy; if the pools were not drained (a timeout, an early return, a
//! panic) the tenant is open for checkouts again, and its pools drain:
//! the next checkout opens it afresh (see `PoolCache::end_destroy`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::{PoolCache, Retired};
use super::flight::Flight;
use super::tenant_pool::TenantPool;
use crate::busy::WaitedFor;
use crate::error::{Error, Result};
use crate::fs::Patience;
use crate::name::TenantName;

/// How often a destroy looks again at what it waits for.
const POLL: Duration = Duration::from_millis(2);

/// A destroy in progress in this process; see the module docs.
pub(crate) struct DestroyGuard<'a> {
    cache: &'a PoolCache,
    tenant: TenantName,
    path: PathBuf,
    started: Instant,
    timeout: Duration,
    /// The tenant's pools, closing; `None` once drained.
    pools: Option<Retired>,
    /// A cold open of the tenant that was in progress when the destroy
    /// began: its pool (and the connection it opened) must be gone too.
    flight: Option<Arc<Flight>>,
}

impl<'a> DestroyGuard<'a> {
    /// Starts destroying `tenant`, whose database is `path`. Another
    /// destroy of the same tenant is waited for, then this one goes on (and
    /// reports what the files say).
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] if the other destroy is still running after
    /// `timeout`.
    pub(crate) fn begin(
        cache: &'a PoolCache,
        tenant: &TenantName,
        path: &Path,
        timeout: Duration,
    ) -> Result<Self> {
        let started = Instant::now();
        let (pools, flight) = loop {
            if let Some(taken) = cache.begin_destroy(tenant) {
                break taken;
            }
            if started.elapsed() >= timeout {
                return Err(Error::TenantBusy {
                    tenant: tenant.clone(),
                    path: path.to_path_buf(),
                    waited_for: WaitedFor::DestroyInThisProcess,
                    checked_out: 0,
                    other_process: None,
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(POLL);
        };
        Ok(DestroyGuard {
            cache,
            tenant: tenant.clone(),
            path: path.to_path_buf(),
            started,
            timeout,
            pools: Some(pools),
            flight,
        })
    }

    /// Waits, for what is left of the timeout, until no connection of the
    /// tenant is checked out, then closes its pools.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] if connections are still out when the wait
    /// ends; dropping the guard then gives the pools back.
    pub(crate) fn drain(&mut self) -> Result<()> {
        let landed = self
            .flight
            .as_ref()
            .is_none_or(|flight| flight.wait_until(self.deadline()).is_some());
        let remaining = self.timeout.saturating_sub(self.started.elapsed());
        let pools = self.pools.as_deref().unwrap_or_default();
        let still_out = match wait_quiescent(pools, remaining) {
            None if landed => None,
            // What held it was the cold open, not a checkout.
            None => Some((WaitedFor::OpeningInThisProcess, 0)),
            Some(out) => Some((WaitedFor::CheckedOutConnections, out)),
        };
        if let Some((waited_for, checked_out)) = still_out {
            tracing::warn!(tenant = %self.tenant, checked_out, %waited_for, "destroy gave up: the tenant is still in use in this process");
            return Err(Error::TenantBusy {
                tenant: self.tenant.clone(),
                path: self.path.clone(),
                waited_for,
                checked_out,
                other_process: None,
                waited: self.started.elapsed(),
            });
        }
        // Closes the pools' connections before their files go.
        drop(self.pools.take());
        Ok(())
    }
}

impl DestroyGuard<'_> {
    /// When the whole destroy must be over: what is left of the timeout
    /// after this process's drain goes to waiting for other processes.
    pub(crate) fn deadline(&self) -> Instant {
        self.patience().deadline()
    }

    /// The destroy's wait for other processes: `destroy_timeout` from
    /// the call, whatever this process's drain took of it.
    pub(crate) fn patience(&self) -> Patience {
        Patience::since(self.started, self.timeout)
    }
}

impl Drop for DestroyGuard<'_> {
    fn drop(&mut self) {
        self.cache.end_destroy(&self.tenant, self.pools.take());
    }
}

/// Waits until none of `pools` has a checkout and nobody else holds them;
/// returns the checkouts still out on timeout.
fn wait_quiescent(pools: &[Arc<TenantPool>], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if pools.iter().all(TenantPool::quiescent) {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(pools.iter().map(|p| p.checked_out()).sum());
        }
        std::thread::sleep(POLL);
    }
}
