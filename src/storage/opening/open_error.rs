//! Saying precisely why a tenant's database could not be opened, or is
//! not there: one diagnosis for every open (pinned, direct, pooled) and
//! every look at a database path, so every operation gives the same
//! error for the same file.

use std::io;
use std::path::Path;

use crate::error::{Error, Result, is_fd_exhaustion};
use crate::fs::file_system::FileSystem;
use crate::fs::siblings::{fence_path, sidecar_path};
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::opening::database_file::{DatabaseFacts, Occupant, damage, occupant};
use crate::storage::opening::pinned::PinError;

/// What `tenant`'s database at `path` is, or the error every
/// operation gives when it is not there or is damaged.
///
/// # Errors
///
/// [`Error::TenantDoesNotExist`] (or `TenantBeingDestroyed`) when no
/// regular file is there, [`Error::DamagedTenant`] for an empty file,
/// [`Error::NotADirectory`] when a link stands on the way, [`Error::Io`]
/// when the path cannot be looked at.
pub(crate) fn require_database(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
) -> Result<DatabaseFacts> {
    let found = occupant(root, path)
        .map_err(|e| Error::io(Some(tenant), path, "looking at the database file", e))?;
    match found {
        Occupant::Database(facts) => match damage(&facts) {
            None => Ok(facts),
            Some(reason) => Err(damaged(tenant, path, reason)),
        },
        Occupant::Nothing | Occupant::Other(_) => Err(missing_error(tenant, path)),
    }
}

/// `tenant`'s schema version, from the `user_version` of its database at
/// `path`.
///
/// # Errors
///
/// [`Error::DamagedTenant`] for a negative one, which no migration sets:
/// read as 0, a status said every migration was pending, and a backup
/// kept a copy no restore accepts (an outside probe).
pub(crate) fn schema_version(tenant: &TenantName, path: &Path, user_version: i64) -> Result<usize> {
    usize::try_from(user_version).map_err(|_| {
        let reason = format!(
            "its schema version (PRAGMA user_version) is {user_version}, below 0, which no migration sets; if its schema is otherwise sound, set the version it is at with the sqlite3 shell (PRAGMA user_version = N)"
        );
        damaged(tenant, path, &reason)
    })
}

/// [`Error::DamagedTenant`].
pub(crate) fn damaged(tenant: &TenantName, path: &Path, reason: &str) -> Error {
    Error::DamagedTenant {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        reason: reason.to_owned(),
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
        PinError::Planted { suffix, found } => Error::PlantedSidecar {
            tenant: tenant.clone(),
            path: sidecar_path(path, suffix),
            found,
        },
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
    if (cannot_open || read_only_open(&e)) && on_read_only_file_system(path) {
        return Error::ReadOnlyRoot {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        };
    }
    // "disk I/O error" alone sent the reader looking at the disk's health
    // (an outside probe: a migration on a full disk failed opening).
    if let Some(fs) = full_file_system(&e, path) {
        return Error::DiskFull {
            tenant: Some(tenant.clone()),
            path: path.to_path_buf(),
            file_system: fs.mount,
            available: fs.available,
        };
    }
    Error::sqlite(Some(tenant), path, operation, e)
}

/// Room below which a failed write is taken for a full file system.
pub(crate) const NEARLY_FULL: u64 = 1 << 20;

/// The file system holding `path`, if `err` is what a write to a full one
/// gives (a migration's, or an open's: making the `-wal` and `-shm`): `SQLITE_FULL` (a maintenance connection has no size limit, so
/// only the disk can be full), or an I/O error (SQLite reports some
/// writes that found no room so: growing the `-shm`, syncing) with less
/// than [`NEARLY_FULL`] left on it.
pub(crate) fn full_file_system(err: &rusqlite::Error, path: &Path) -> Option<FileSystem> {
    let nearly_full = match err.sqlite_error_code()? {
        rusqlite::ErrorCode::DiskFull => u64::MAX,
        rusqlite::ErrorCode::SystemIoFailure => NEARLY_FULL,
        _ => return None,
    };
    FileSystem::of(path).filter(|fs| fs.available < nearly_full)
}

/// Whether `e` is how SQLite fails to open a WAL database on a read-only
/// file system besides "unable to open" (a pooled connection's): a
/// one-off read in exclusive mode, a backup's, fails to lock it
/// (`SQLITE_IOERR_LOCK`, measured), one that needs the `-shm` fails to
/// make or size it, or SQLite says read-only. Any other disk I/O error
/// there is the disk's.
fn read_only_open(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(failure, _) = e else {
        return false;
    };
    failure.code == rusqlite::ErrorCode::ReadOnly
        || matches!(
            failure.extended_code,
            ffi::SQLITE_IOERR_LOCK | ffi::SQLITE_IOERR_SHMOPEN | ffi::SQLITE_IOERR_SHMSIZE
        )
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
