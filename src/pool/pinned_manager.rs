//! The r2d2 connection manager of a tenant pool: r2d2_sqlite's manager
//! (flags, setup hook), wrapped in `storage::open_pinned` so that every pooled connection
//! holds SQLite's lock from its first moment (which lets a destroy in
//! another process see it) and is known to be on the pool's file.
//!
//! A connection that reached another file (the tenant was destroyed or
//! replaced while it was being opened) is still returned, disarmed, so that
//! r2d2 does not retry for `connection_timeout`; the pool is marked stale
//! at the same moment, and every checkout refuses a stale pool after
//! getting its connection, so such a connection is never handed out.

use std::path::PathBuf;
use std::sync::Arc;

use r2d2::ManageConnection;
use r2d2_sqlite::SqliteConnectionManager;

use super::pool_state::PoolState;
use crate::storage::{PinError, TrackedConnection, open_pinned};

/// Opens a tenant's connections for its r2d2 pool.
pub(super) struct PinnedManager {
    sqlite: SqliteConnectionManager,
    root: PathBuf,
    path: PathBuf,
    state: Arc<PoolState>,
}

impl PinnedManager {
    pub(super) fn new(
        sqlite: SqliteConnectionManager,
        root: PathBuf,
        path: PathBuf,
        state: Arc<PoolState>,
    ) -> Self {
        PinnedManager {
            sqlite,
            root,
            path,
            state,
        }
    }
}

impl ManageConnection for PinnedManager {
    // Counted in `storage::open_files` while open; the count costs nothing
    // on checkout (the wrapper only derefs).
    type Connection = TrackedConnection;
    type Error = PinError;

    fn connect(&self) -> Result<TrackedConnection, PinError> {
        let pinned = open_pinned(&self.root, &self.path, || self.sqlite.connect())?;
        let current = match pinned.file {
            Some(file) => pinned.is_on(self.state.file_or(file)),
            None => false,
        };
        if !current {
            tracing::debug!(path = %self.path.display(), "tenant file changed while connecting");
            self.state.mark_stale();
        }
        Ok(pinned.conn)
    }

    fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), PinError> {
        conn.execute_batch("").map_err(PinError::Sqlite)
    }

    fn has_broken(&self, _conn: &mut TrackedConnection) -> bool {
        false
    }
}
