//! A checkout whose caller has gone: `interact`'s future, dropped (a
//! request timed out) while its blocking thread waits for a connection.
//! The wait stops at its next slice instead of sitting out
//! `connection_timeout` on a thread of Tokio's blocking pool: hundreds of
//! abandoned waits on one busy tenant filled that pool, and a request to
//! any other tenant then waited behind them (7.6 s, an outside probe).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// The flag set once this thread's caller has gone (none: a caller
    /// that waits for its answer, as `connection()`'s does).
    static GONE: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While alive, this thread's checkouts stop waiting once `gone` is set;
/// dropped, it restores what was there.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) struct WatchingCaller {
    previous: Option<Arc<AtomicBool>>,
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl WatchingCaller {
    /// Watches `gone` for the checkouts of this thread.
    pub(crate) fn enter(gone: Arc<AtomicBool>) -> WatchingCaller {
        WatchingCaller {
            previous: GONE.with(|g| g.replace(Some(gone))),
        }
    }
}

impl Drop for WatchingCaller {
    fn drop(&mut self) {
        GONE.with(|g| *g.borrow_mut() = self.previous.take());
    }
}

/// Whether this thread's caller has gone (read only when a wait for a
/// connection ended a slice without one: never on a checkout that gets
/// one at once).
pub(super) fn caller_gone() -> bool {
    GONE.with(|g| {
        g.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    })
}
