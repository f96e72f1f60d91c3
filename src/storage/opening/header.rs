//! A tenant's schema version read from its database header directly, for
//! fleet runs over many tenants.
//!
//! A SQLite database starts with a 100-byte header, and `PRAGMA
//! user_version` is its bytes 60..64 (a big-endian `i32`). Reading them
//! costs an `open`, an `fstat`, a `pread` and a `close`; a SQLite open of
//! the same file costs ~60 µs of CPU. The header is the truth only when
//! nothing newer is elsewhere, so the answer is given only when:
//!
//! - there is no `-wal` with content (its frames may hold a newer page 1).
//!   It is looked at *before* the header is read, so the answer is the
//!   database as of some moment during the call: a writer can only append
//!   to a new WAL, which leaves the header as it was, or checkpoint, which
//!   writes a committed page 1;
//! - the header says WAL mode (bytes 18 and 19 are 2). In WAL mode a
//!   writer never changes the database file in place except by a
//!   checkpoint of committed pages, so no uncommitted page 1 is ever read.
//!   A rollback-journal writer writes page 1 in place before its commit is
//!   done, and a crash leaves a hot `-journal` that the next SQLite open
//!   rolls back: such a database (bytes 18 and 19 are 1) goes to SQLite.
//!   A `-journal` beside a WAL-mode header is not looked for: SQLite opens
//!   the WAL of any header whose byte 19 is 2 (`lockBtree`), so the only
//!   rollback-journal transaction such a file sees is the one that switches
//!   its journal mode (`OP_JournalMode`: "this transaction always uses a
//!   rollback journal"), and `sqlite3BtreeSetVersion` changes bytes 18
//!   and 19 alone, never `user_version`. (A `-journal` left by
//!   `journal_mode=PERSIST` would otherwise send a tenant to SQLite for
//!   good, and looking for one costs as much as the `open`.)
//! - it starts with `SQLite format 3\0`, its page size and payload
//!   fractions are SQLite's, and the file holds at least one page and as
//!   many as the header counts, so a damaged or truncated file is never
//!   given a version: SQLite judges it instead;
//! - no SQLite connection of this process is on the file: closing the
//!   descriptor would drop that connection's locks (see `open_files`,
//!   which also closes the descriptor here).
//!
//! Anything else is [`Header::AskSqlite`]: the caller opens it with SQLite.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Stat};
use rustix::io::Errno;

use crate::fs::file_id::FileId;
use crate::fs::sys;
use crate::storage::opening::open_files;

/// What the header read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// The database's `user_version`.
    Version(usize),
    /// No regular file is there (nothing, a directory, a symbolic link...).
    NotThere,
    /// The header alone cannot tell: open the database with SQLite.
    AskSqlite,
}

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The schema version of the database `name` names, relative to the open
/// directory `dir` (or to the working directory with `rustix::fs::CWD`),
/// if its header alone tells (see the module).
pub(crate) fn header_version(dir: BorrowedFd<'_>, name: &Path) -> Header {
    if !wal_is_empty(dir, name) {
        return Header::AskSqlite;
    }
    // Most fleet runs happen in a process with no tenant open: then there
    // is nothing to look up before opening. Otherwise a file a connection
    // is on is left to SQLite without opening it at all, so that its
    // descriptor need not be kept open until that connection closes.
    if open_files::any_open()
        && let Ok(stat) = sys::stat(dir, name)
        && open_files::is_open(FileId::from_stat(&stat))
    {
        return Header::AskSqlite;
    }
    // Never follow a symbolic link; never wait on a FIFO put there.
    let fd = match sys::open_any(dir, name) {
        Ok(fd) => fd,
        Err(e) if not_there(&e) => return Header::NotThere,
        Err(_) => return Header::AskSqlite,
    };
    match sys::fstat(fd.as_fd()) {
        Ok(stat) => {
            let header = read(fd.as_fd(), &stat, name);
            open_files::close_outside_sqlite(fd, FileId::from_stat(&stat));
            header
        }
        Err(e) => {
            // Which file it is cannot be told, so neither can whether
            // closing it would drop a connection's locks: keep it open.
            tracing::warn!(error = %e, path = %name.display(), "cannot fstat a database opened to read its header; its descriptor is kept open");
            std::mem::forget(fd);
            Header::AskSqlite
        }
    }
}

/// The 100-byte header of the regular file `name` in `dir`, read outside
/// SQLite as [`header_version`] reads it (its descriptor closed only if no
/// connection of this process is on the file); `None` if it cannot be
/// read whole. Used on an error path: a tenant whose key is missing.
pub(in crate::storage) fn header_bytes(dir: BorrowedFd<'_>, name: &Path) -> Option<[u8; 100]> {
    let fd = sys::open_any(dir, name).ok()?;
    let Ok(stat) = sys::fstat(fd.as_fd()) else {
        // As in `header_version`: which file it is cannot be told.
        std::mem::forget(fd);
        return None;
    };
    let mut header = [0u8; 100];
    let regular = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile;
    let read = regular.then(|| sys::read_at(fd.as_fd(), &mut header, 0, name));
    open_files::close_outside_sqlite(fd, FileId::from_stat(&stat));
    matches!(read, Some(Ok(100))).then_some(header)
}

/// Whether an open failed because no regular file is there: nothing, a
/// link, or a socket (which `open` refuses with ENXIO; the caller then
/// says what stands there, as every other call does).
pub(in crate::storage) fn not_there(e: &io::Error) -> bool {
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(
        errno,
        Some(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NXIO)
    )
}

/// Whether `name`'s `-wal` is absent or empty.
fn wal_is_empty(dir: BorrowedFd<'_>, name: &Path) -> bool {
    let wal_stat = |wal: &[u8]| sys::stat(dir, Path::new(OsStr::from_bytes(wal)));
    let name = name.as_os_str().as_bytes();
    // Named on the stack: a fleet run asks this of every tenant.
    let mut short = [0u8; 128];
    let stat = match short.get_mut(..name.len() + WAL.len()) {
        Some(wal) => {
            wal[..name.len()].copy_from_slice(name);
            wal[name.len()..].copy_from_slice(WAL);
            wal_stat(wal)
        }
        None => wal_stat(&[name, WAL].concat()),
    };
    match stat {
        Ok(stat) => stat.st_size == 0,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

const WAL: &[u8] = b"-wal";

/// The version in the header of the file `fd` is open on (`name`), `stat`
/// its metadata.
fn read(fd: BorrowedFd<'_>, stat: &Stat, name: &Path) -> Header {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Header::NotThere;
    }
    let mut header = [0u8; 100];
    match sys::read_at(fd, &mut header, 0, name) {
        Ok(100) => {}
        // Empty or short: damaged, SQLite says how.
        _ => return Header::AskSqlite,
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    version_in(&header, size).map_or(Header::AskSqlite, Header::Version)
}

/// The `user_version` in `header`, if it is a valid WAL-mode database
/// header of a file of `size` bytes (SQLite's checks in `lockBtree`).
fn version_in(header: &[u8; 100], size: u64) -> Option<usize> {
    let page_size = page_size_in(header)?;
    let wal_mode = header[18] == 2 && header[19] == 2;
    let fractions = header[21..24] == [64, 32, 32];
    if !wal_mode || !fractions || size < page_size || size < page_size * pages_in(header) {
        return None;
    }
    let version = i32::from_be_bytes([header[60], header[61], header[62], header[63]]);
    usize::try_from(version).ok()
}

/// The page size of a SQLite database header (`None`: not one, or a page
/// size SQLite would refuse).
pub(in crate::storage) fn page_size_in(header: &[u8; 100]) -> Option<u64> {
    if header[..16] != MAGIC[..] {
        return None;
    }
    match u16::from_be_bytes([header[16], header[17]]) {
        1 => Some(65_536),
        n if n >= 512 && n.is_power_of_two() => Some(u64::from(n)),
        _ => None,
    }
}

/// Whether a SQLite header's pages reserve bytes at their end (byte 20):
/// SQLCipher keeps each page's IV and HMAC there, SQLite itself none, so
/// an encrypted file (its first 64 bytes kept plaintext) shows it.
/// `None` when `header` is no SQLite header.
pub(in crate::storage) fn reserves_bytes(header: &[u8; 100]) -> Option<bool> {
    page_size_in(header).map(|_| header[20] > 0)
}

/// The database's size in pages as its header says it, when the header's
/// count is valid (its "version-valid-for" matches the change counter);
/// SQLite calls a file shorter than that corrupt. 0 when not valid.
pub(in crate::storage) fn pages_in(header: &[u8; 100]) -> u64 {
    if field_in(header, 24) == field_in(header, 92) {
        u64::from(field_in(header, 28))
    } else {
        0
    }
}

/// The big-endian `u32` of the header at byte `at`.
pub(in crate::storage) fn field_in(header: &[u8; 100], at: usize) -> u32 {
    u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::{Header, header_version, version_in};
    use rusqlite::Connection;
    use rustix::fs::CWD;
    use std::os::fd::AsFd;

    fn wal_database(path: &std::path::Path, version: i32) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x);").unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    #[test]
    fn a_quiet_wal_database_is_read_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        wal_database(&path, 7);
        assert_eq!(header_version(CWD, &path), Header::Version(7));
        let dir_fd = rustix::fs::open(dir.path(), rustix::fs::OFlags::DIRECTORY, 0.into()).unwrap();
        let below = std::path::Path::new("main.sqlite3");
        assert_eq!(header_version(dir_fd.as_fd(), below), Header::Version(7));
    }

    #[test]
    fn anything_unusual_is_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        assert_eq!(header_version(CWD, &path), Header::NotThere);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(header_version(CWD, &path), Header::AskSqlite);
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        assert_eq!(header_version(CWD, &path), Header::AskSqlite);
        std::fs::remove_file(&path).unwrap();
        wal_database(&path, 3);
        // A WAL with content; a journal beside a WAL-mode header cannot
        // change the version (see the module).
        std::fs::write(dir.path().join("main.sqlite3-journal"), b"").unwrap();
        assert_eq!(header_version(CWD, &path), Header::Version(3));
        std::fs::write(dir.path().join("main.sqlite3-wal"), b"x").unwrap();
        assert_eq!(header_version(CWD, &path), Header::AskSqlite);
    }

    #[test]
    fn a_rollback_journal_database_or_a_negative_version_is_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 2;")
            .unwrap();
        drop(conn);
        assert_eq!(header_version(CWD, &path), Header::AskSqlite);
        let mut header = [0u8; 100];
        header[..16].copy_from_slice(super::MAGIC);
        header[16..24].copy_from_slice(&[0x10, 0, 2, 2, 0, 64, 32, 32]);
        header[60..64].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(version_in(&header, 4096), Some(5));
        assert_eq!(version_in(&header, 4095), None, "shorter than a page");
        // A valid page count of 3 (the change counter matches
        // version-valid-for): a shorter file is truncated.
        header[24..32].copy_from_slice(&[0, 0, 0, 7, 0, 0, 0, 3]);
        header[92..96].copy_from_slice(&[0, 0, 0, 7]);
        assert_eq!(version_in(&header, 3 * 4096), Some(5));
        assert_eq!(version_in(&header, 2 * 4096), None, "truncated");
        header[60..64].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(version_in(&header, 4096), None);
    }

    #[test]
    fn symbolic_links_and_directories_are_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sqlite3");
        wal_database(&real, 1);
        let link = dir.path().join("main.sqlite3");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(header_version(CWD, &link), Header::NotThere);
        let sub = dir.path().join("sub.sqlite3");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(header_version(CWD, &sub), Header::NotThere);
    }
}
