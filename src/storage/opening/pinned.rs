//! Opening a tenant database *pinned* to the file it reached.
//!
//! Every SQLite open of a tenant goes through [`open_pinned`]: inside the
//! directory's open gate it opens the path, runs the caller's setup, takes
//! SQLite's shared lock with a first read (in WAL mode the lock stays until
//! the connection closes, which is what lets a destroy in another process
//! see it), and then looks at what the path names. A connection whose path
//! no longer names the file it opened (the tenant was fenced, destroyed or
//! replaced meanwhile) is *moved*: it must never be used, and it is told
//! not to checkpoint on close, because a checkpoint on close deletes the
//! `-wal` by name, which may by then belong to a new tenant.

use std::io;
use std::path::Path;

use rusqlite::Connection;

use crate::error::is_fd_exhaustion;
use crate::fs::Patience;
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::lock::split;
use crate::fs::siblings::sidecar_path;
use crate::storage::coordination::open_gate::OpenGate;
use crate::storage::opening::database_file::{NOT_SQLITE, Occupant, damage, occupant_in};
use crate::storage::opening::open_files::{Registration, TrackedConnection, disarm};

/// What a pinned open found.
#[derive(Debug)]
pub(crate) struct Pinned {
    /// The connection, holding SQLite's shared lock on the file.
    pub(crate) conn: TrackedConnection,
    /// The file the connection is on, or `None` if the path changed while
    /// it was opened (it must then not be used).
    pub(crate) file: Option<FileId>,
    /// The schema version (`PRAGMA user_version`) read to take the lock.
    pub(crate) version: i64,
}

impl Pinned {
    /// Whether the connection is on `expected`; if not, it is disarmed so
    /// its close cannot touch another file's sidecars.
    pub(crate) fn is_on(&self, expected: FileId) -> bool {
        let on = self.file == Some(expected);
        if !on {
            disarm(&self.conn);
        }
        on
    }
}

/// Why a pinned open failed.
#[derive(Debug)]
pub(crate) enum PinError {
    /// Nothing is at the path (or its directory is gone), or the file
    /// SQLite failed on is no longer there.
    Missing,
    /// The process (or the system) ran out of file descriptors.
    TooManyOpenFiles,
    /// The directory could not be entered.
    Gate(io::Error),
    /// SQLite could not open, set up or read the file.
    Sqlite(rusqlite::Error),
    /// The path could not be looked at after opening.
    Stat(io::Error),
    /// The file is there but is no database (the reason): see
    /// `database_file.rs`.
    Damaged(&'static str),
    /// Something that is not a regular file stands at the name of one of
    /// the files SQLite opens beside the database (the suffix, and what is
    /// there): a named pipe there would make SQLite's open wait forever.
    Planted {
        /// `-journal`, `-wal` or `-shm`.
        suffix: &'static str,
        /// What is there ("a symbolic link").
        found: &'static str,
    },
}

impl PinError {
    /// Whether the file refused the key the open used (an encrypted
    /// tenant's key of another incarnation, or one a re-key replaced).
    pub(crate) fn key_refused(&self) -> bool {
        #[cfg(feature = "encryption")]
        if let PinError::Damaged(reason) = self {
            return *reason == crate::crypt::KEY_REFUSED;
        }
        false
    }
}

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinError::Missing => f.write_str("the database file is not there"),
            PinError::TooManyOpenFiles => f.write_str("too many open files"),
            PinError::Gate(e) => write!(f, "cannot enter the database's directory: {e}"),
            PinError::Sqlite(e) => write!(f, "{e}"),
            PinError::Stat(e) => write!(f, "cannot look at the database file: {e}"),
            PinError::Damaged(reason) => f.write_str(reason),
            PinError::Planted { suffix, found } => write!(f, "{found} at its {suffix} name"),
        }
    }
}

impl std::error::Error for PinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PinError::Missing
            | PinError::TooManyOpenFiles
            | PinError::Damaged(_)
            | PinError::Planted { .. } => None,
            PinError::Gate(e) | PinError::Stat(e) => Some(e),
            PinError::Sqlite(e) => Some(e),
        }
    }
}

/// Opens `path` (beneath `root`) with `open` (which opens and sets up a
/// connection to it: `Connection::open_with_flags`, or r2d2_sqlite's
/// manager), and pins the connection (see the module).
pub(crate) fn open_pinned(
    root: &Path,
    path: &Path,
    patience: &Patience,
    open: impl FnOnce() -> rusqlite::Result<Connection>,
) -> Result<Pinned, PinError> {
    let (dir, name) = split(path).map_err(PinError::Stat)?;
    let gate = match OpenGate::enter(root, dir, patience) {
        Ok(gate) => gate,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PinError::Missing),
        Err(e) if is_fd_exhaustion(&e) => return Err(PinError::TooManyOpenFiles),
        Err(e) => return Err(PinError::Gate(e)),
    };
    // Inside the gate the path can stop naming a file (a destroy's fence)
    // but cannot come to name another one; the same file before the open
    // and after the lock means the connection is on it. The file is looked
    // at through the gate's directory, reached without following links
    // (see `dir.rs`); SQLite opens by path, so the path must lead to that
    // same file both before the open and after the lock.
    let before = database_before_open(gate.dir(), name)?;
    // Counted before SQLite opens it (see `open_files`). On an early
    // return `conn`, declared after it, is closed first.
    let registration = Registration::new(before);
    // Until it is known to be on `before`, whatever the connection reached
    // must not be checkpointed on close: every exit disarms it.
    // SQLite failing on a file replaced under it (a restore swapping the
    // tenant: `SQLITE_IOERR_FSTAT`, `CANTOPEN`) says nothing of the
    // tenant's own file: that is a file gone from the path.
    let failed = |e: rusqlite::Error| match FileId::in_dir(gate.dir(), name) {
        Ok(Some(now)) if now != before => PinError::Missing,
        Ok(None) => PinError::Missing,
        _ => sqlite_failure(dir, e),
    };
    let conn = open().map_err(failed)?;
    let unproven = Unproven::new(&conn);
    let version =
        (conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))).map_err(failed)?;
    let after = FileId::in_dir(gate.dir(), name)
        .and_then(|inside| Ok((inside, FileId::at(path)?)))
        .map_err(PinError::Stat)?;
    drop(gate);
    let file = (after == (Some(before), Some(before))).then_some(before);
    unproven.settle(file.is_some());
    Ok(Pinned {
        conn: TrackedConnection::new(conn, registration),
        file,
        version,
    })
}

/// A connection not yet known to be on the file it was meant to reach: it
/// is disarmed ([`disarm`]) when this guard goes, unless settled as on its
/// file, so that no exit of an open forgets to.
struct Unproven<'a> {
    conn: &'a Connection,
    on_its_file: bool,
}

impl<'a> Unproven<'a> {
    fn new(conn: &'a Connection) -> Self {
        Unproven {
            conn,
            on_its_file: false,
        }
    }

    /// The connection is (`true`) or is not on its file: disarmed if not.
    fn settle(mut self, on_its_file: bool) {
        self.on_its_file = on_its_file;
    }
}

impl Drop for Unproven<'_> {
    fn drop(&mut self) {
        if !self.on_its_file {
            disarm(self.conn);
        }
    }
}

/// The file `name` in `dir` before it is opened: a regular file that is not
/// visibly damaged, or why not. An empty file is refused here, since
/// SQLite would open it as a new, empty database.
fn database_before_open(dir: &Dir, name: &Path) -> Result<FileId, PinError> {
    let id = match occupant_in(dir, name).map_err(PinError::Stat)? {
        Occupant::Database(facts) => match damage(&facts) {
            None => facts.id,
            Some(reason) => return Err(PinError::Damaged(reason)),
        },
        // A directory or a symlink at the path is no tenant's database.
        Occupant::Nothing | Occupant::Other(_) => return Err(PinError::Missing),
    };
    sidecars_before_open(dir, name)?;
    Ok(id)
}

/// SQLite opens the database's `-journal` (to look for a hot one), `-wal`
/// and `-shm` by name, the `-journal` read-only: a named pipe put at that
/// name would make the open wait for a writer that never comes, in
/// SQLite, where no timeout reaches. Anything but a regular file (or
/// nothing) at those names is refused before SQLite opens the database.
/// (A pipe put there after this look is not caught: this guards against
/// what was planted, not against a race with the planter.)
fn sidecars_before_open(dir: &Dir, name: &Path) -> Result<(), PinError> {
    for suffix in ["-journal", "-wal", "-shm"] {
        if let Occupant::Other(found) =
            occupant_in(dir, &sidecar_path(name, suffix)).map_err(PinError::Stat)?
        {
            return Err(PinError::Planted { suffix, found });
        }
    }
    Ok(())
}

/// SQLite says only "unable to open" when it runs out of descriptors (for
/// the database, its WAL or its shared memory): while the gate's own
/// descriptor is still held, opening the directory once more tells.
/// (Never the database file itself: closing a second descriptor of it
/// would drop this process's POSIX locks on it.)
fn sqlite_failure(dir: &Path, e: rusqlite::Error) -> PinError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        return PinError::Damaged(NOT_SQLITE);
    }
    // SQLCipher, with a plaintext header, answers a key that does not
    // open page 1 with SQLITE_NOMEM, which a real allocation failure at
    // open all but never is.
    #[cfg(feature = "encryption")]
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OutOfMemory) {
        return PinError::Damaged(crate::crypt::KEY_REFUSED);
    }
    let cannot_open = e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen);
    if cannot_open && matches!(crate::fs::sys::open_path(dir), Err(ref io) if is_fd_exhaustion(io))
    {
        return PinError::TooManyOpenFiles;
    }
    PinError::Sqlite(e)
}
