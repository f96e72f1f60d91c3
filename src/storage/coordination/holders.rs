//! Who else holds a tenant's database open, read from SQLite's own locks.
//!
//! In WAL mode every SQLite connection that has read the database keeps a
//! read lock on the database file's shared-lock range and on byte 128 of
//! the `-shm` file (the "DMS" byte) until it closes (`os_unix.c`:
//! `unixLock` with `SHARED_FIRST`/`SHARED_SIZE`, `unixLockSharedMemory`).
//! `fcntl(F_GETLK)` asks the kernel whether a write lock on those bytes
//! would be refused, without taking anything, and names the holder's pid.
//!
//! POSIX locks belong to processes, so this never sees this process's own
//! connections (tracked in memory instead), and closing the descriptor
//! opened here drops every POSIX lock this process holds on the same file:
//! callers probe only files no pool of this process is on (a fence waits
//! for those first: `fence.rs`); a disarmed one-off read of this process
//! may lose its lock to the probe, which it does not need (it checks which
//! file it read, and never writes).

use std::io;
use std::path::{Path, PathBuf};

use crate::fs::dir::Dir;
use crate::fs::sys;

/// SQLite's `PENDING_BYTE`; the shared range starts two bytes above it.
const PENDING_BYTE: u64 = 0x4000_0000;
const SHARED_FIRST: u64 = PENDING_BYTE + 2;
const SHARED_SIZE: u64 = 510;
/// `UNIX_SHM_DMS`: `(22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK`.
const SHM_DMS: u64 = 128;

/// Another process with the database open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    /// Its pid, when the kernel can tell (not for open-file-description locks).
    pub(crate) pid: Option<u32>,
}

/// Why a database's locks could not be read: the file that could not be
/// probed (the database, or its `-shm`), and the error.
#[derive(Debug)]
pub(crate) struct LocksUnreadable {
    /// The file's name in the directory.
    pub(crate) name: PathBuf,
    pub(crate) error: io::Error,
}

/// Whether a process other than this one has `db` (in `dir`) open through
/// SQLite; `shm` is the `-shm` file named after the database's original
/// name.
///
/// # Errors
///
/// Either file could not be opened or probed (a link planted at the
/// `-shm`'s name is refused, never followed): which one, and why.
pub(crate) fn other_holder(
    dir: &Dir,
    db: &Path,
    shm: &Path,
) -> Result<Option<Holder>, LocksUnreadable> {
    if let Some(holder) = lock_holder(dir, db, SHARED_FIRST, SHARED_SIZE)? {
        return Ok(Some(holder));
    }
    lock_holder(dir, shm, SHM_DMS, 1)
}

fn lock_holder(
    dir: &Dir,
    name: &Path,
    start: u64,
    length: u64,
) -> Result<Option<Holder>, LocksUnreadable> {
    let unreadable = |error| LocksUnreadable {
        name: name.to_path_buf(),
        error,
    };
    let file = match sys::open_file(dir.fd(), name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let held = sys::lock_holder(&file, start, length, name).map_err(unreadable)?;
    Ok(held.map(|pid| Holder { pid }))
}
