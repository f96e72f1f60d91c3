//! Opening an existing tenant database directly (not through a pool);
//! why an open failed is said in `open_error.rs`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::crypt::{self, TenantKey};
use crate::error::Result;
use crate::fs::Patience;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::name::TenantName;
use crate::storage::opening::open_error::{missing_error, pin_error};
use crate::storage::opening::open_files::TrackedConnection;
use crate::storage::opening::opening_key::with_tenant_key;
use crate::storage::opening::pinned::{PinError, Pinned, disarm, open_pinned};

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
    let (pinned, _) = open_keyed(tenant, (root, path), patience, |conn| {
        // Take the write lock when the migration transaction begins, so
        // a reader never has to upgrade and deadlock.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
    })?;
    match pinned.file {
        Some(_) => Ok(pinned.conn),
        None => Err(missing_error(tenant, path)),
    }
}

/// A one-off read's connection, pinned to the file it is on.
pub(crate) struct OneOffRead {
    /// The connection; it never checkpoints on close.
    pub(crate) conn: TrackedConnection,
    /// The schema version (`PRAGMA user_version`).
    pub(crate) version: i64,
    /// The file the connection is on: a copy made from the tenant's path
    /// checks that it copied this one (see `file_copy.rs`).
    pub(crate) file: FileId,
    /// The key the file opened with (an encrypted tenant's).
    pub(crate) key: Option<TenantKey>,
}

/// Opens an existing tenant database to read it once, and reads its schema
/// version. The connection never checkpoints on close: it may outlive the
/// file it read (a destroy in this process cannot see it).
pub(crate) fn open_for_reading(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
) -> Result<OneOffRead> {
    let patience = Patience::new(READ_GATE_WAIT);
    let (pinned, key) = open_keyed(tenant, (root, path), &patience, |_| {})?;
    disarm(&pinned.conn);
    match pinned.file {
        Some(file) => Ok(OneOffRead {
            conn: pinned.conn,
            version: pinned.version,
            file,
            key,
        }),
        None => Err(missing_error(tenant, path)),
    }
}

/// A pinned open of `tenant`'s database at `path` (beneath `root`), keyed
/// with whichever of the tenant's keys opens it (see `with_tenant_key`),
/// set up by `setup`; the key it opened with.
fn open_keyed(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    patience: &Patience,
    setup: impl Fn(&mut Connection),
) -> Result<(Pinned, Option<TenantKey>)> {
    let opened = with_tenant_key(
        tenant,
        (root, path),
        |key| {
            let open = || {
                let mut conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
                crypt::apply(&conn, key)?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                setup(&mut conn);
                Ok(conn)
            };
            open_pinned(root, path, patience, open)
        },
        PinError::key_refused,
    )?;
    opened.map_err(|e| pin_error(tenant, path, e))
}
