//! The tenant databases this process has open through SQLite, so that a
//! descriptor opened outside SQLite (the header read) is never closed under
//! a live connection.
//!
//! SQLite's locks are POSIX record locks, and those belong to the process
//! and the file, not to the descriptor: closing *any* descriptor of a file
//! drops every lock this process holds on it. SQLite's own unix VFS meets
//! this inside SQLite (`os_unix.c`, "POSIX advisory locks are broken by
//! design"): it keeps one `unixInodeInfo` per (device, inode), and when a
//! connection closes while another one of the process holds locks on the
//! same inode, `setPendingFd` parks the descriptor on that inode and
//! `closePendingFds` closes it once the locks are gone. A descriptor opened
//! by Rust code is outside that table, so this module keeps the same kind
//! of table for tenanted:
//!
//! - every SQLite connection to a tenant database ([`open_pinned`]) is
//!   counted on its file's (device, inode) *before* SQLite opens it, and
//!   uncounted only after the connection is closed ([`TrackedConnection`]);
//! - a descriptor opened outside SQLite is handed to [`close_outside_sqlite`],
//!   which closes it while holding the table's lock, and only if no
//!   connection is counted on that file; otherwise it is parked on the
//!   entry and closed when the last connection goes, as SQLite does.
//!
//! Counting and closing take the same lock, so either the close comes
//! first (and SQLite's locks, taken after its open, are untouched) or the
//! count does (and the descriptor is not closed while the connection
//! lives). A connection a program opens to a tenant's file with rusqlite
//! directly, outside tenanted, is not counted: such a program must not run
//! fleet reads in the same process while it holds one.
//!
//! [`open_pinned`]: crate::storage::opening::pinned::open_pinned

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::fs::file_id::FileId;

/// The table, split by inode so that threads reading different files do
/// not wait for each other's `close`.
const SHARDS: usize = 16;

/// Connections counted on one file, and descriptors of it waiting for
/// them to close.
#[derive(Default)]
struct Entry {
    connections: usize,
    /// Those that may still write to the file or checkpoint into it on
    /// close: a pool's. A one-off read is disarmed (see
    /// [`TrackedConnection::disarm`]).
    armed: usize,
    parked: Vec<OwnedFd>,
}

type Shard = Mutex<HashMap<FileId, Entry>>;

static TABLE: LazyLock<[Shard; SHARDS]> = LazyLock::new(Default::default);

/// Connections counted, all files together: lets a reader skip looking a
/// file up when this process has no tenant open at all.
static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// By inode number: files made one after another have consecutive ones,
/// which fall in different shards. (A fleet run asks this per tenant, so
/// no SipHash here.)
fn shard(file: FileId) -> &'static Shard {
    &TABLE[(file.spread() % SHARDS as u64) as usize]
}

/// One SQLite connection counted on a file; uncounted on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    file: FileId,
    armed: bool,
}

impl Registration {
    /// Counts a connection about to be opened on `file` (armed).
    pub(crate) fn new(file: FileId) -> Registration {
        let mut table = shard(file).lock();
        let entry = table.entry(file).or_default();
        entry.connections += 1;
        entry.armed += 1;
        CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        Registration { file, armed: true }
    }

    /// Counts it as disarmed from now on.
    fn disarmed(&mut self) {
        if std::mem::take(&mut self.armed)
            && let Some(entry) = shard(self.file).lock().get_mut(&self.file)
        {
            entry.armed -= 1;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = shard(self.file).lock();
        CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
        let Some(entry) = table.get_mut(&self.file) else {
            return;
        };
        entry.connections -= 1;
        entry.armed -= usize::from(self.armed);
        if entry.connections == 0 {
            // The parked descriptors are closed under the lock: a new
            // connection counted right after must find them closed.
            drop(table.remove(&self.file));
        }
    }
}

/// Whether any SQLite connection of this process is on `file` now.
pub(crate) fn is_open(file: FileId) -> bool {
    shard(file).lock().contains_key(&file)
}

/// Whether a connection of this process that may write to `file`, or
/// checkpoint into it on close, is on it now (a pool's; not a one-off
/// read, which is disarmed and checks which file it read).
pub(crate) fn is_armed_on(file: FileId) -> bool {
    shard(file).lock().get(&file).is_some_and(|e| e.armed > 0)
}

/// Whether this process has any tenant database open through SQLite.
pub(crate) fn any_open() -> bool {
    CONNECTIONS.load(Ordering::SeqCst) > 0
}

/// Closes `fd`, a descriptor of `file` opened outside SQLite, unless a
/// SQLite connection of this process is on the same file: then it stays
/// open until the last such connection is closed (see the module).
pub(crate) fn close_outside_sqlite(fd: OwnedFd, file: FileId) {
    let mut table = shard(file).lock();
    match table.get_mut(&file) {
        Some(entry) => entry.parked.push(fd),
        None => drop(fd),
    }
}

/// A database file opened outside SQLite and held for a while (a backup
/// copying it): its descriptor goes to [`close_outside_sqlite`] however
/// the holder exits (an error, a panic, a file found replaced), so that no
/// exit drops this process's SQLite locks on it. A descriptor already
/// parked on the file is taken and handed back instead of opening one
/// more, so that a process with connections on the file parks at most one
/// however often it copies it.
#[derive(Debug)]
pub(crate) struct OutsideSqlite {
    /// Taken only by `drop`.
    file: Option<File>,
    id: FileId,
}

impl OutsideSqlite {
    /// A descriptor of `file` parked here, taken for the holder's use.
    pub(crate) fn take_parked(file: FileId) -> Option<OutsideSqlite> {
        let fd = shard(file).lock().get_mut(&file)?.parked.pop()?;
        Some(OutsideSqlite {
            file: Some(File::from(fd)),
            id: file,
        })
    }

    /// A descriptor just opened, to be held.
    ///
    /// # Errors
    ///
    /// `fstat` failed: which file it is cannot be told, so neither can
    /// whether closing it would drop a connection's locks, and it is kept
    /// open (as `header_version` keeps one).
    pub(crate) fn opened(file: File) -> io::Result<OutsideSqlite> {
        match FileId::of(&file) {
            Ok(id) => Ok(OutsideSqlite {
                file: Some(file),
                id,
            }),
            Err(e) => {
                std::mem::forget(file);
                Err(e)
            }
        }
    }

    /// Which file the descriptor is of.
    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    /// The file, to read (or seek: the holder has it alone); `None` only
    /// once dropped.
    pub(crate) fn file(&mut self) -> Option<&mut File> {
        self.file.as_mut()
    }
}

impl Drop for OutsideSqlite {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            close_outside_sqlite(OwnedFd::from(file), self.id);
        }
    }
}

/// Runs `read` on a descriptor of `file` already parked here, if one is:
/// a reader outside SQLite of a file a connection is on (the usage report)
/// reads through it instead of opening, and then parking, one more, so a
/// process with pools open parks at most one descriptor per file however
/// often it reads them. `None` when no descriptor is parked.
pub(crate) fn with_parked<T>(file: FileId, read: impl FnOnce(BorrowedFd<'_>) -> T) -> Option<T> {
    let table = shard(file).lock();
    let fd = table.get(&file)?.parked.first()?;
    Some(read(fd.as_fd()))
}

/// A SQLite connection to a tenant database, counted while it is open.
///
/// The connection is declared first, so it is closed (and SQLite has
/// closed its descriptors) before the registration is dropped.
#[derive(Debug)]
pub(crate) struct TrackedConnection {
    conn: Connection,
    registration: Registration,
}

impl TrackedConnection {
    pub(crate) fn new(conn: Connection, registration: Registration) -> Self {
        TrackedConnection { conn, registration }
    }

    /// Turns off its checkpoint on close (see [`disarm`]) and counts
    /// it as disarmed: a one-off read, which a destroy in this process
    /// need not wait for (it never writes, and checks which file it read).
    pub(crate) fn disarm(&mut self) {
        disarm(&self.conn);
        self.registration.disarmed();
    }
}

impl Deref for TrackedConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for TrackedConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Stops `conn` from checkpointing (and deleting the `-wal` by name) when
/// it closes.
pub(crate) fn disarm(conn: &Connection) {
    if let Err(e) = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true) {
        tracing::warn!(error = %e, "could not turn off checkpoint-on-close");
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::{Path, PathBuf};

    use super::{FileId, Registration, close_outside_sqlite, is_open, with_parked};

    /// What descriptor `fd` of this process is open on, if anything.
    fn target(fd: i32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    }

    fn descriptor(path: &Path) -> (OwnedFd, i32, FileId) {
        let file = File::open(path).unwrap();
        let id = FileId::of(&file).unwrap();
        let raw = file.as_raw_fd();
        (OwnedFd::from(file), raw, id)
    }

    #[test]
    fn a_descriptor_of_a_file_sqlite_has_open_is_closed_only_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        std::fs::write(&path, b"x").unwrap();
        let path = path.canonicalize().unwrap();

        let (fd, raw, id) = descriptor(&path);
        assert!(!is_open(id));
        close_outside_sqlite(fd, id);
        assert_ne!(target(raw), Some(path.clone()), "closed at once");
        assert_eq!(with_parked(id, |_| ()), None, "nothing parked");

        let first = Registration::new(id);
        let second = Registration::new(id);
        let (fd, raw, _) = descriptor(&path);
        assert!(is_open(id));
        close_outside_sqlite(fd, id);
        assert_eq!(target(raw), Some(path.clone()), "parked");
        let parked = with_parked(id, |fd| target(fd.as_raw_fd()));
        assert_eq!(parked, Some(Some(path.clone())), "read through");
        drop(first);
        assert_eq!(target(raw), Some(path.clone()), "still parked");
        drop(second);
        assert!(!is_open(id));
        assert_ne!(target(raw), Some(path), "closed with the last connection");
    }
}
