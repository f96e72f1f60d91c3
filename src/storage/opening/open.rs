//! Opening an existing tenant database directly (not through a pool), and
//! saying precisely why an open failed.

use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::crypt;
use crate::error::{Error, Result, is_fd_exhaustion};
use crate::fs::Patience;
use crate::fs::files::literal_path;
use crate::fs::siblings::fence_path;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::opening::database_file::damaged;
use crate::storage::opening::open_files::TrackedConnection;
use crate::storage::opening::pinned::{PinError, disarm, open_pinned};

/// Open flags for a tenant that must already exist: never `CREATE`, so a
/// misspelt name cannot leave an empty database behind. No `URI`: a
/// tenant's path is a file name, never a URI (see `fs::files::literal_path`).
pub(crate) const EXISTING: OpenFlags =
    OpenFlags::SQLITE_OPEN_READ_WRITE.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// How long a maintenance connection waits on another writer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a one-off read waits at the tenant's open gate for a destroy
/// in another process to pass it, as it waits for SQLite's locks.
const READ_GATE_WAIT: Duration = BUSY_TIMEOUT;

/// Opens an existing tenant database directly (not through a pool),
/// waiting at its open gate until `patience` runs out.
pub(crate) fn open_existing(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
    patience: &Patience,
) -> Result<TrackedConnection> {
    let key = crypt::tenant_key(tenant, root)?;
    let open = || {
        let mut conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
        crypt::apply(&conn, key.as_ref())?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Take the write lock when the migration transaction begins, so
        // a reader never has to upgrade and deadlock.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        Ok(conn)
    };
    let pinned = open_pinned(root, path, patience, open).map_err(|e| pin_error(tenant, path, e))?;
    match pinned.file {
        Some(_) => Ok(pinned.conn),
        None => Err(missing_error(tenant, path)),
    }
}

/// Opens an existing tenant database to read it once, and reads its schema
/// version. The connection never checkpoints on close: it may outlive the
/// file it read (a destroy in this process cannot see it).
pub(crate) fn open_for_reading(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
) -> Result<(TrackedConnection, i64)> {
    let key = crypt::tenant_key(tenant, root)?;
    let open = || {
        let conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
        crypt::apply(&conn, key.as_ref())?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    };
    let patience = Patience::new(READ_GATE_WAIT);
    let pinned =
        open_pinned(root, path, &patience, open).map_err(|e| pin_error(tenant, path, e))?;
    disarm(&pinned.conn);
    match pinned.file {
        Some(_) => Ok((pinned.conn, pinned.version)),
        None => Err(missing_error(tenant, path)),
    }
}

/// The error for a tenant whose database is not at `path`: being destroyed
/// (fenced off by a destroy in some process: the database, or the
/// tenant's own directory) or gone.
pub(crate) fn missing_error(tenant: &TenantName, path: &Path) -> Error {
    let (tenant, path) = (tenant.clone(), path.to_path_buf());
    let fenced_dir = path.parent().map(fence_path);
    if sys::exists(&fence_path(&path)) || fenced_dir.is_some_and(|fenced| sys::exists(&fenced)) {
        Error::TenantBeingDestroyed { tenant, path }
    } else {
        Error::TenantDoesNotExist { tenant, path }
    }
}

/// Says why a pinned open of `tenant`'s database failed.
pub(crate) fn pin_error(tenant: &TenantName, path: &Path, e: PinError) -> Error {
    match e {
        PinError::Missing => missing_error(tenant, path),
        PinError::TooManyOpenFiles => Error::TooManyOpenFiles {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        },
        PinError::Gate(e) => Error::io(Some(tenant), path, "entering the tenant's directory", e),
        PinError::Stat(e) => Error::io(Some(tenant), path, "looking at the database file", e),
        PinError::Sqlite(e) => open_error(tenant, path, e),
        PinError::Damaged(reason) => damaged(tenant, path, reason),
    }
}

pub(in crate::storage) fn open_error(
    tenant: &TenantName,
    path: &Path,
    e: rusqlite::Error,
) -> Error {
    match sys::metadata(path) {
        Err(m) if m.kind() == io::ErrorKind::NotFound => missing_error(tenant, path),
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
    let cannot_open = e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen);
    if cannot_open && fd_exhausted(path) {
        return Error::TooManyOpenFiles {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        };
    }
    if cannot_open && on_read_only_file_system(path) {
        return Error::ReadOnlyRoot {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        };
    }
    Error::sqlite(Some(tenant), path, operation, e)
}

/// Whether `path` is on a file system mounted read-only.
fn on_read_only_file_system(path: &Path) -> bool {
    sys::on_read_only_mount(path)
}

/// Opening any directory needs a descriptor: if that fails with EMFILE or
/// ENFILE, the process is out of them. (Never opens the database file
/// itself: closing a second descriptor would drop SQLite's POSIX locks.)
fn fd_exhausted(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    matches!(sys::open_path(dir), Err(ref e) if is_fd_exhaustion(e))
}
