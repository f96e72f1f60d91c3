//! The r2d2 connection manager of a tenant pool: r2d2_sqlite's manager
//! (flags, setup hook), wrapped in `storage::open_pinned` so that every pooled connection
//! holds SQLite's lock from its first moment (which lets a destroy in
//! another process see it) and is known to be on the pool's file.
//!
//! The pool's first connection is opened with the same code on the thread
//! that asked for the tenant ([`PinnedManager::open_connection`]); r2d2's own
//! requests ask the pool's resident state first whether they may open one
//! (see `resident.rs`).
//!
//! A connection that reached another file (the tenant was destroyed or
//! replaced while it was being opened) is still returned, disarmed, so that
//! r2d2 does not retry for `connection_timeout`; the pool is marked stale
//! at the same moment, and every checkout refuses a stale pool after
//! getting its connection, so such a connection is never handed out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::ManageConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::check_in;
use super::pool_state::PoolState;
use super::resident::{Claim, Resident};
use super::setting_up::SettingUp;
use crate::error::Error;
use crate::fs::Patience;
use crate::limits::{self, Policy};
use crate::name::TenantName;
use crate::storage::{self, PinError, TrackedConnection, open_pinned};

/// A step run on a new connection: its keying (the key, the busy timeout,
/// the key's proof), or its set-up (tenanted's PRAGMAs, then the user's
/// hook).
pub(super) type Setup = Box<dyn Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync>;

/// What runs on a new connection, in turn.
pub(super) struct Steps {
    /// Reads the file (the key's proof): its errors are the open's (a
    /// refused key, a read-only file system), said as an open's are.
    pub(super) keying: Setup,
    /// Only sets connection state: its errors are the set-up's.
    pub(super) setup: Setup,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(super) enum OpenFailure {
    /// Opening the file failed.
    Pin(PinError),
    /// It opened, but its set-up failed (a PRAGMA or the user's hook).
    Setup(rusqlite::Error),
    /// SQLite's busy timeout (this long) ran out on another connection's
    /// lock: a stopped writer, or a backup reading the tenant alone.
    Busy(Duration),
}

impl OpenFailure {
    /// Whether the file refused the key (see `PinError::key_refused`).
    pub(super) fn key_refused(&self) -> bool {
        matches!(self, OpenFailure::Pin(e) if e.key_refused())
    }

    /// The error `tenant`'s caller sees.
    pub(super) fn into_error(self, tenant: &TenantName, path: &Path) -> Error {
        match self {
            OpenFailure::Pin(e) => storage::pin_error(tenant, path, e),
            OpenFailure::Setup(e) => Error::sqlite(
                Some(tenant),
                path,
                "setting up a connection (busy_timeout, foreign_keys, the size limit or suspension, the connection_init hook)",
                e,
            ),
            // Said as a one-off read says it, not as a bare "database is
            // locked" with a writer's advice (an outside probe).
            OpenFailure::Busy(waited) => storage::held_by_sqlite_lock(tenant, path, waited),
        }
    }
}

/// Why r2d2 got no new connection.
#[derive(Debug)]
pub(super) enum ConnectError {
    /// Opening one failed.
    Open(OpenFailure),
    /// The pool has all its connections; r2d2 asks again later.
    Full(u32),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Open(OpenFailure::Pin(e)) => e.fmt(f),
            ConnectError::Open(OpenFailure::Setup(e)) => {
                write!(f, "setting up the connection failed: {e}")
            }
            ConnectError::Open(OpenFailure::Busy(waited)) => write!(
                f,
                "another connection held the database locked for {waited:.1?}"
            ),
            ConnectError::Full(max) => write!(
                f,
                "all {max} connections of the pool are open and in use (raise max_connections, or hold connections for less time)"
            ),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Open(OpenFailure::Pin(e)) => Some(e),
            ConnectError::Open(OpenFailure::Setup(e)) => Some(e),
            ConnectError::Open(OpenFailure::Busy(_)) | ConnectError::Full(_) => None,
        }
    }
}

/// Opens a tenant's connections for its r2d2 pool.
pub(super) struct PinnedManager {
    sqlite: SqliteConnectionManager,
    steps: Steps,
    /// How long an open waits at the tenant's open gate for a destroy in
    /// another process to pass it (`connection_timeout`).
    gate_wait: Duration,
    root: PathBuf,
    path: PathBuf,
    state: Arc<PoolState>,
    resident: Arc<Resident>,
    /// The tenant's limits, applied to every connection once it is pinned.
    policy: Policy,
}

/// Where a pool's connections open and what they are held to.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) root: PathBuf,
    pub(super) path: PathBuf,
    pub(super) policy: Policy,
}

impl PinnedManager {
    pub(super) fn new(
        sqlite: SqliteConnectionManager,
        (steps, gate_wait): (Steps, Duration),
        target: Target,
        state: Arc<PoolState>,
        resident: Arc<Resident>,
    ) -> Self {
        PinnedManager {
            sqlite,
            steps,
            gate_wait,
            root: target.root,
            path: target.path,
            state,
            resident,
            policy: target.policy,
        }
    }

    /// Opens one connection on the calling thread: the pool's first one
    /// (the lead's), or one r2d2 asked for; with the schema version read
    /// when it took its lock. A connection that reached another file marks
    /// the pool stale and comes back disarmed.
    ///
    /// # Errors
    ///
    /// Why the file could not be opened.
    pub(super) fn open_connection(&self) -> Result<(TrackedConnection, i64), OpenFailure> {
        let mut set_up = true;
        let patience = Patience::new(self.gate_wait);
        let started = std::time::Instant::now();
        let opened = open_pinned(&self.root, &self.path, &patience, || {
            let mut conn = self.sqlite.connect()?;
            (self.steps.keying)(&mut conn)?;
            let _making = SettingUp::enter(&self.state);
            (self.steps.setup)(&mut conn).inspect_err(|_| set_up = false)?;
            Ok(conn)
        });
        let pinned = match opened {
            Ok(pinned) => pinned,
            Err(PinError::Sqlite(e)) if storage::is_busy(&e) => {
                return Err(OpenFailure::Busy(started.elapsed()));
            }
            Err(PinError::Sqlite(e)) if !set_up => return Err(OpenFailure::Setup(e)),
            Err(e) => return Err(OpenFailure::Pin(e)),
        };
        let current = match pinned.file {
            Some(file) => pinned.is_on(self.state.file_or(file)),
            None => false,
        };
        if !current {
            tracing::debug!(path = %self.path.display(), "tenant file changed while connecting");
            self.state.mark_stale();
            return Ok((pinned.conn, pinned.version));
        }
        // After the pin, not in `setup`: setting the limit reads the
        // database, and the first read is the pin's.
        if let Some(pages) =
            limits::apply(&pinned.conn, &self.policy).map_err(OpenFailure::Setup)?
        {
            self.state.clamped_at(pages);
        }
        Ok((pinned.conn, pinned.version))
    }
}

impl ManageConnection for PinnedManager {
    // Counted in `storage/opening/open_files.rs` while open; the count costs nothing
    // on checkout (the wrapper only derefs).
    type Connection = TrackedConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<TrackedConnection, ConnectError> {
        match self.resident.claim() {
            Claim::Absorb(conn) => Ok(conn),
            Claim::Full => Err(ConnectError::Full(self.resident.max())),
            Claim::Open(permit) => {
                let (conn, _) = self.open_connection().map_err(ConnectError::Open)?;
                permit.keep();
                Ok(conn)
            }
        }
    }

    fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), ConnectError> {
        conn.execute_batch("")
            .map_err(|e| ConnectError::Open(OpenFailure::Pin(PinError::Sqlite(e))))
    }

    /// Called by r2d2 on every connection coming back (see `check_in.rs`).
    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        !check_in::fit_to_return(conn)
    }
}
