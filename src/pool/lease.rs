//! A connection lent out of a tenant pool: one of r2d2's, or the pool's
//! resident connection (see `resident.rs`). Both go back where they came
//! from when dropped.

use r2d2::PooledConnection;
use rusqlite::Connection;

use super::pinned_manager::PinnedManager;
use super::resident::ResidentLease;

/// A connection from r2d2.
pub(super) type Pooled = PooledConnection<PinnedManager>;

/// A connection out of a tenant pool.
pub(super) enum Lease {
    /// One of r2d2's connections.
    Pooled(Pooled),
    /// The pool's resident connection.
    Resident(ResidentLease),
}

impl Lease {
    pub(super) fn connection(&self) -> &Connection {
        match self {
            Lease::Pooled(conn) => conn,
            Lease::Resident(lease) => lease.connection(),
        }
    }

    pub(super) fn connection_mut(&mut self) -> &mut Connection {
        match self {
            Lease::Pooled(conn) => conn,
            Lease::Resident(lease) => lease.connection_mut(),
        }
    }
}
