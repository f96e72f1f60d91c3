//! One background thread per manager that prunes idle pools.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::cache::PoolCache;

/// Stops and joins its thread when dropped (with the manager).
pub(crate) struct Reaper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Prunes pools idle for `idle_timeout`, checking a few times per
    /// timeout. Holds the cache weakly so it never keeps it alive.
    pub(crate) fn start(cache: &Arc<PoolCache>, idle_timeout: Duration) -> std::io::Result<Self> {
        let cache: Weak<PoolCache> = Arc::downgrade(cache);
        let period = (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tenanted-reaper".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let Some(cache) = cache.upgrade() else { break };
                    cache.prune_idle(idle_timeout);
                    drop(cache);
                }
            })?;
        Ok(Reaper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
