//! What a pool remembers of its failed connects, so that a wait for a
//! connection that runs out says why from a typed value. r2d2 keeps its
//! last connect error only as text inside its timeout error, and gives it
//! to one timed-out wait only; its handler (below) sees every error first.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::pinned_manager::ConnectError;

/// The last failed open of one pool's connections, and when it failed.
#[derive(Debug, Default)]
pub(super) struct LastConnectError(Mutex<Option<(Instant, Arc<ConnectError>)>>);

impl LastConnectError {
    /// The last failed open since `since` (the start of a wait), if any.
    pub(super) fn since(&self, since: Instant) -> Option<Arc<ConnectError>> {
        let last = self.0.lock();
        let (at, error) = last.as_ref()?;
        (*at >= since).then(|| Arc::clone(error))
    }

    fn note(&self, error: ConnectError) {
        *self.0.lock() = Some((Instant::now(), Arc::new(error)));
    }
}

/// r2d2's error handler for a tenant pool: logs and notes a failed open;
/// a full pool is no error.
#[derive(Debug)]
pub(super) struct ConnectErrors(pub(super) Arc<LastConnectError>);

impl r2d2::HandleError<ConnectError> for ConnectErrors {
    fn handle_error(&self, error: ConnectError) {
        if !matches!(error, ConnectError::Full(_)) {
            tracing::warn!(error = %error, "could not open a pooled connection");
            self.0.note(error);
        }
    }
}
