//! Opening an existing tenant database directly (not through a pool);
//! why an open failed is said in `open_error.rs`.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::busy::{Busy, WaitedFor};
use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::Patience;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::siblings::sidecar_path;
use crate::fs::sqlite_lock_holder::sqlite_lock_holder;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::TenantLock;
use crate::storage::coordination::undecided::wait_out_decision;
use crate::storage::opening::open_error::{missing_error, pin_error, schema_version};
use crate::storage::opening::open_files::TrackedConnection;
use crate::storage::opening::opening_key::with_tenant_key;
use crate::storage::opening::pinned::{PinError, Pinned, open_pinned};

/// Open flags for a tenant that must already exist: never `CREATE`, so a
/// misspelt name cannot leave an empty database behind. No `URI`: a
/// tenant's path is a file name, never a URI (see `fs::files::literal_path`).
pub(crate) const EXISTING: OpenFlags =
    OpenFlags::SQLITE_OPEN_READ_WRITE.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// How long a maintenance connection waits on another writer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a one-off read (a status, a backup) waits for SQLite's lock,
/// as long as a pooled connection does by default. In WAL mode a reader
/// waits only while another connection holds the file alone (a backup's
/// read of a small idle tenant, well under a millisecond; recovery after
/// a crash) or is stopped in the middle of writing the WAL index: a wait
/// longer than this is a stopped or stuck process, and one such tenant
/// would otherwise hold a whole fleet's status 30 s.
pub(in crate::storage) const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a one-off read waits at the tenant's open gate for a destroy
/// in another process to pass it.
pub(crate) const READ_GATE_WAIT: Duration = BUSY_TIMEOUT;

/// Opens an existing tenant database directly (not through a pool),
/// waiting at its open gate until `patience` runs out; SQLite waits for
/// another connection's write lock no longer than that either (the
/// operation's own timeout, measured from its call: see "Bounded waits"
/// in `docs/design.md`).
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
        let left = patience
            .deadline()
            .saturating_duration_since(Instant::now());
        conn.busy_timeout(left.min(BUSY_TIMEOUT))
    })
    .map_err(|e| held_locked(e, (patience, Holder::Named)))?;
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
    /// The tenant's entry lock, when the read waited out an operation
    /// replacing it: held while the read lasts, so that the next one (a
    /// loop of re-keys) cannot fence the file off under a copy of it.
    pub(crate) _waited_out: Option<TenantLock>,
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
    one_off(tenant, (root, path), (patience, Holder::Named), |_| Ok(()))
}

/// [`open_for_reading`] that waits for no other process, neither at the
/// open gate (a destroy passing it) nor for SQLite's lock: the watcher's
/// look at a busy pool. One thread looks at every pool of the process, so
/// a wait on one tenant (a destroy stopped at its barrier, a writer
/// stopped in the middle of the WAL index) would hold all the others,
/// and the destroys of other processes waiting for this one to let go of
/// them. A tenant that cannot be read now is looked at again next pass.
pub(crate) fn open_for_glance(tenant: &TenantName, root: &Path, path: &Path) -> Result<OneOffRead> {
    one_off(
        tenant,
        (root, path),
        (Patience::new(Duration::ZERO), Holder::Unnamed),
        |conn| conn.busy_timeout(Duration::ZERO),
    )
}

/// Opens an existing tenant database to copy it (a backup), as
/// [`open_for_reading`] does, but a quiet, small tenant that no connection
/// is on is read in SQLite's exclusive locking mode.
///
/// Why: a WAL read makes the `-wal` and the 32 KiB `-shm` beside a tenant
/// no connection had open, and, never checkpointing on close, leaves both
/// there (32 GB would stay beside a million idle tenants). The next
/// read of a `-shm` left so truncates it under SQLite's process-wide VFS
/// mutex, which serialised `backup_all`'s workers on file systems that
/// free blocks synchronously. In exclusive mode SQLite keeps the WAL index
/// in the heap and never opens the `-shm`: the read leaves at most an empty
/// `-wal`. Its lock keeps every other connection out while it lasts, so it
/// is taken only when none is on the file (it is not waited for: any other
/// connection makes it busy at once), and only for a file small enough
/// that a first open by the application waits no longer than the copy of
/// [`ALONE_AT_MOST`] bytes (within its busy timeout).
pub(crate) fn open_for_copy(tenant: &TenantName, root: &Path, path: &Path) -> Result<OneOffRead> {
    if quiet_and_small(path) {
        let alone = one_off(
            tenant,
            (root, path),
            (Patience::new(READ_GATE_WAIT), Holder::Unnamed),
            |conn| {
                conn.busy_timeout(Duration::ZERO)?;
                conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            },
        );
        match alone {
            // Another connection is on it: read it as any reader does.
            Err(Error::TenantBusy {
                waited_for: WaitedFor::Writer,
                ..
            }) => {}
            read => return read,
        }
    }
    open_for_reading(tenant, root, path)
}

/// The largest database file [`open_for_copy`] reads under an exclusive
/// lock: copied from the page cache in well under a millisecond.
const ALONE_AT_MOST: u64 = 1 << 20;

/// Whether the database at `path` is at most [`ALONE_AT_MOST`] bytes and
/// its `-wal` holds no frame (a heuristic: the lock decides).
fn quiet_and_small(path: &Path) -> bool {
    let small = sys::symlink_metadata(path).is_ok_and(|m| m.len() <= ALONE_AT_MOST);
    small
        && match sys::symlink_metadata(&sidecar_path(path, "-wal")) {
            Ok(m) => m.len() <= WAL_HEADER,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
}

/// A `-wal` this long or shorter holds no frame: its header is 32 bytes.
pub(in crate::storage) const WAL_HEADER: u64 = 32;

/// An open that SQLite's busy timeout ended (another connection held its
/// lock on the file all along: a stopped writer, another process's
/// migration, a backup reading the tenant alone) as `TenantBusy`, which
/// says so and what to do, instead of a bare "database is locked".
fn held_locked(e: Error, (patience, holder): (&Patience, Holder)) -> Error {
    match e {
        Error::Sqlite {
            tenant: Some(tenant),
            path,
            cause,
            ..
        } if is_busy(&cause) => match holder {
            Holder::Named => held_by_sqlite_lock(&tenant, &path, patience.waited()),
            Holder::Unnamed => {
                Error::busy(&tenant, path, Busy::sqlite_lock(patience.waited(), None))
            }
        },
        e => e,
    }
}

/// `TenantBusy` for `tenant`, whose database `path` SQLite's lock kept
/// out for `waited`, naming the process the kernel says holds that lock:
/// every wait for SQLite's lock that gives up says it so (a migration, a
/// one-off read, a pool's first open).
pub(crate) fn held_by_sqlite_lock(tenant: &TenantName, path: &Path, waited: Duration) -> Error {
    let holder = sqlite_lock_holder(path);
    Error::busy(tenant, path, Busy::sqlite_lock(waited, holder))
}

/// Whether a read that finds SQLite's lock held names its holder: one
/// that waited for it does; a glance that waits for nothing, and whose
/// caller goes on without it, does not (`/proc/locks` is read whole, and
/// a backup run meets every tenant a service has open).
#[derive(Debug, Clone, Copy)]
enum Holder {
    Named,
    Unnamed,
}

/// Whether SQLite said another connection holds the lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked))
}

/// [`open_for_reading`], each connection set up by `setup` before its
/// first read. A tenant found without its database while a destroy, a
/// restore or a re-key decides its fate is waited for within `patience`
/// and read again (see `coordination/undecided.rs`), unless `patience`
/// allows no wait at all (a glance, which must not keep a pool such an
/// operation waits for).
fn one_off(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    (patience, holder): (Patience, Holder),
    setup: impl Fn(&mut Connection) -> rusqlite::Result<()>,
) -> Result<OneOffRead> {
    let read = || one_off_once(tenant, (root, path), (&patience, holder), &setup);
    match read() {
        Err(e) if e.says_tenant_gone() && patience.deadline() > patience.started() => {
            match wait_out_decision(tenant, (root, path), &patience)? {
                Some(lock) => read().map(|read| OneOffRead {
                    _waited_out: Some(lock),
                    ..read
                }),
                None => Err(e),
            }
        }
        read => read,
    }
}

/// One try of [`one_off`].
fn one_off_once(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    (patience, holder): (&Patience, Holder),
    setup: &impl Fn(&mut Connection) -> rusqlite::Result<()>,
) -> Result<OneOffRead> {
    let (mut pinned, key) = open_keyed(tenant, (root, path), patience, setup)
        .map_err(|e| held_locked(e, (patience, holder)))?;
    pinned.conn.disarm();
    let Some(file) = pinned.file else {
        return Err(missing_error(tenant, path));
    };
    // A version no migration sets: damaged, for every read alike (a
    // backup of it is one no restore accepts). Only the file pinned:
    // another one is waited out above, not judged (a review).
    schema_version(tenant, path, pinned.version)?;
    Ok(OneOffRead {
        conn: pinned.conn,
        version: pinned.version,
        file,
        key,
        _waited_out: None,
    })
}

/// A pinned open of `tenant`'s database at `path` (beneath `root`), keyed
/// with whichever of the tenant's keys opens it (see `with_tenant_key`),
/// set up by `setup`; the key it opened with.
fn open_keyed(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    patience: &Patience,
    setup: impl Fn(&mut Connection) -> rusqlite::Result<()>,
) -> Result<(Pinned, Option<TenantKey>)> {
    let opened = with_tenant_key(
        tenant,
        (root, path),
        |key| {
            let open = || {
                let mut conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
                crypt::apply(&conn, key)?;
                conn.busy_timeout(READ_BUSY_TIMEOUT)?;
                // Before the first read: `setup` may set a shorter wait,
                // or exclusive locking (which must precede it).
                setup(&mut conn)?;
                crypt::prove(&conn, key)?;
                Ok(conn)
            };
            open_pinned(root, path, patience, open)
        },
        PinError::key_refused,
    )?;
    opened.map_err(|e| pin_error(tenant, path, e))
}
