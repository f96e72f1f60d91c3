//! Opening an existing tenant database directly (not through a pool), and
//! saying precisely why an open failed.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result, is_fd_exhaustion};
use crate::name::TenantName;

/// Open flags for a tenant that must already exist: never `CREATE`, so a
/// misspelt name cannot leave an empty database behind.
pub(crate) const EXISTING: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX)
    .union(OpenFlags::SQLITE_OPEN_URI);

/// How long a maintenance connection waits on another writer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens an existing tenant database directly (not through a pool).
pub(crate) fn open_existing(tenant: &TenantName, path: &Path) -> Result<Connection> {
    match Connection::open_with_flags(path, EXISTING) {
        Ok(mut conn) => {
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| Error::sqlite(Some(tenant), path, "setting busy_timeout", e))?;
            // Take the write lock when the migration transaction begins, so
            // a reader never has to upgrade and deadlock.
            conn.set_transaction_behavior(TransactionBehavior::Immediate);
            Ok(conn)
        }
        Err(e) => Err(open_error(tenant, path, e)),
    }
}

/// Explains why SQLite could not open `path`: missing tenant, too many
/// open files, or SQLite's own error.
pub(super) fn open_error(tenant: &TenantName, path: &Path, e: rusqlite::Error) -> Error {
    match fs::metadata(path) {
        Err(m) if m.kind() == io::ErrorKind::NotFound => Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        },
        _ => sqlite_error(tenant, path, "opening the database", e),
    }
}

/// A SQLite error on `tenant`; SQLite says only "unable to open" when it
/// runs out of descriptors (for the database, its WAL or its shared
/// memory), so a CANTOPEN is probed for that.
pub(crate) fn sqlite_error(
    tenant: &TenantName,
    path: &Path,
    operation: &'static str,
    e: rusqlite::Error,
) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) && fd_exhausted(path) {
        return Error::TooManyOpenFiles {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        };
    }
    Error::sqlite(Some(tenant), path, operation, e)
}

/// Opening any directory needs a descriptor: if that fails with EMFILE or
/// ENFILE, the process is out of them. (Never opens the database file
/// itself: closing a second descriptor would drop SQLite's POSIX locks.)
fn fd_exhausted(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    matches!(fs::File::open(dir), Err(ref e) if is_fd_exhaustion(e))
}
