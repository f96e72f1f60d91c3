//! What a tenant's files take on disk, read without SQLite: the
//! database's size and header (page size, page count, free pages) and its
//! `-wal`'s size, for the fleet usage report.
//!
//! The calls of a header read (`header.rs`), through the `fs` seam: a
//! `stat` of the `-wal`, then `open`, `fstat`, `pread` of 100 bytes and
//! `close` of the database; and for a `-wal` with frames, a few reads of
//! it (`wal_frames.rs`). The descriptor is closed only when no SQLite
//! connection of this process is on the file (`open_files`); when one is,
//! a descriptor already parked on that file is read instead, so a process
//! with pools open parks at most one per file however often it asks.
//!
//! The page count is the database's as of its last commit: the count
//! the `-wal`'s last commit frame holds, or else the header's (the
//! database as of its last checkpoint), which a tenant growing between
//! checkpoints outgrows by up to a checkpoint's worth of pages (1,000 by
//! default): a tenant at its size limit must be reported at it. The free
//! pages are the header's.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, Stat};

use crate::error::Result;
use crate::fs::file_id::FileId;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::opening::header::{field_in, not_there, page_size_in, pages_in};
use crate::storage::opening::open::{WAL_HEADER, open_for_reading};
use crate::storage::opening::open_error::sqlite_error;
use crate::storage::opening::open_files;
use crate::storage::opening::wal_frames::last_commit_pages;

/// A database's files as the usage report sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileUsage {
    /// The database file's size in bytes.
    pub(crate) database_bytes: u64,
    /// The `-wal`'s size in bytes (0 when there is none).
    pub(crate) wal_bytes: u64,
    /// The page size.
    pub(crate) page_size: u32,
    /// Pages in the database as of its last commit (see the module).
    pub(crate) page_count: u64,
    /// Pages on the free list.
    pub(crate) free_pages: u64,
    /// The later of the database's and the `-wal`'s modification times.
    pub(crate) last_write: Option<SystemTime>,
}

/// What was found at a database path.
#[derive(Debug)]
pub(crate) enum Usage {
    /// A database and its usage.
    Found(FileUsage),
    /// No regular file (nothing, a directory, a symbolic link).
    NotThere,
    /// A file that is not a SQLite database (why).
    Damaged(&'static str),
    /// A file shorter than its header's page count: truncated, or being
    /// extended by another process's checkpoint (which writes page 1, with
    /// the new count, before the pages after the file's end). Only SQLite,
    /// reading under its locks, tells which: see [`usage_through_sqlite`].
    /// The sizes and times are the files'.
    AskSqlite(FileUsage),
    /// It could not be read: the step, and the error.
    Unreadable(&'static str, io::Error),
}

/// The usage of the database `name` below the open directory `dir`.
pub(crate) fn database_usage(dir: BorrowedFd<'_>, name: &Path) -> Usage {
    let (wal_bytes, wal_time, committed) = match wal(dir, name) {
        Ok(wal) => wal,
        Err((step, e)) => return Usage::Unreadable(step, e),
    };
    let usage = match parked(dir, name) {
        Some(usage) => usage,
        None => opened(dir, name),
    };
    match usage {
        Usage::Found(mut found) => {
            found.wal_bytes = wal_bytes;
            found.last_write = found.last_write.max(wal_time);
            found.page_count = committed.unwrap_or(found.page_count);
            Usage::Found(found)
        }
        // SQLite counts its pages; the `-wal` is the files' all the same
        // (it was said as 0 B: an outside probe).
        Usage::AskSqlite(mut found) => {
            found.wal_bytes = wal_bytes;
            found.last_write = found.last_write.max(wal_time);
            Usage::AskSqlite(found)
        }
        other => other,
    }
}

/// Read through a descriptor parked on the file, when a connection of
/// this process is on it and one is parked (see the module).
fn parked(dir: BorrowedFd<'_>, name: &Path) -> Option<Usage> {
    if !open_files::any_open() {
        return None;
    }
    let stat = sys::stat(dir, name).ok()?;
    open_files::with_parked(FileId::from_stat(&stat), |fd| read(fd, &stat, name))
}

/// Opened, read and closed (or parked, see `open_files`).
fn opened(dir: BorrowedFd<'_>, name: &Path) -> Usage {
    // Never follow a symbolic link; never wait on a FIFO put there.
    let fd = match sys::open_any(dir, name) {
        Ok(fd) => fd,
        Err(e) if not_there(&e) => return Usage::NotThere,
        Err(e) => return Usage::Unreadable("opening it", e),
    };
    match sys::fstat(fd.as_fd()) {
        Ok(stat) => {
            let usage = read(fd.as_fd(), &stat, name);
            open_files::close_outside_sqlite(fd, FileId::from_stat(&stat));
            usage
        }
        Err(e) => {
            // Which file it is cannot be told, so neither can whether
            // closing it would drop a connection's locks: keep it open.
            std::mem::forget(fd);
            Usage::Unreadable("looking at it (fstat)", e)
        }
    }
}

/// The `-wal`'s size, its modification time, and the database's pages
/// as of the last commit in it (0, none and none without one); or the
/// step that failed.
fn wal(dir: BorrowedFd<'_>, name: &Path) -> WalRead {
    let wal = [name.as_os_str().as_bytes(), b"-wal"].concat();
    let wal = Path::new(OsStr::from_bytes(&wal));
    let looking = |e| ("looking at its -wal", e);
    let stat = match sys::stat(dir, wal) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => stat,
        Ok(_) => return Ok((0, None, None)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, None, None)),
        Err(e) => return Err(looking(e)),
    };
    let bytes = u64::try_from(stat.st_size).unwrap_or(0);
    // A `-wal` absent or empty (no connection open anywhere since the
    // last one closed): one `stat`, no more. One that a connection keeps
    // stays at its largest size, its frames rewritten from the first after
    // each checkpoint: an open and a few reads (`wal_frames.rs`).
    let committed = match bytes > WAL_HEADER {
        true => committed_pages(dir, wal).map_err(|e| ("reading its -wal", e))?,
        false => None,
    };
    Ok((bytes, modified(&stat), committed))
}

/// What [`wal`] found.
type WalRead = Result<(u64, Option<SystemTime>, Option<u64>), (&'static str, io::Error)>;

/// The database's pages as of the last commit in its `-wal` `wal` (see
/// `wal_frames.rs`); `None` if there is none, or no regular file there
/// any more. SQLite takes no lock on the `-wal`, so closing this
/// descriptor drops none of this process's.
fn committed_pages(dir: BorrowedFd<'_>, wal: &Path) -> io::Result<Option<u64>> {
    let fd = match sys::open_any(dir, wal) {
        Ok(fd) => fd,
        Err(e) if not_there(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = sys::fstat(fd.as_fd())?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let len = u64::try_from(stat.st_size).unwrap_or(0);
    last_commit_pages(fd.as_fd(), len, wal)
}

fn modified(stat: &Stat) -> Option<SystemTime> {
    let secs = u64::try_from(stat.st_mtime).ok()?;
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The usage of the file `fd` is open on (`name`), `stat` its metadata.
fn read(fd: BorrowedFd<'_>, stat: &Stat, name: &Path) -> Usage {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Usage::NotThere;
    }
    let mut header = [0u8; 100];
    match sys::read_at(fd, &mut header, 0, name) {
        Ok(100) => {}
        Ok(_) => return Usage::Damaged("the file is shorter than a database header"),
        Err(e) => return Usage::Unreadable("reading its header", e),
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let Some(page_size) = page_size_in(&header) else {
        return Usage::Damaged("the file does not start with a SQLite database header");
    };
    // An invalid count (a file written by an old SQLite): the file's size.
    let page_count = match pages_in(&header) {
        0 => size / page_size,
        pages => pages,
    };
    let files = FileUsage {
        database_bytes: size,
        wal_bytes: 0,
        page_size: u32::try_from(page_size).unwrap_or(u32::MAX),
        page_count,
        free_pages: u64::from(field_in(&header, 36)),
        last_write: modified(stat),
    };
    match size < page_count.saturating_mul(page_size) {
        true => Usage::AskSqlite(files),
        false => Usage::Found(files),
    }
}

/// What a read through SQLite of a short file was for, in its errors.
const SHORTER: &str =
    "reading its page counts through SQLite (the file is shorter than its header says)";

/// `files` with SQLite's page count and free pages, read under SQLite's
/// locks by a one-off read of `tenant`'s database at `path` (below
/// `root`): for a file shorter than its header says ([`Usage::AskSqlite`]).
///
/// # Errors
///
/// SQLite's (a truncated file is "malformed": `DamagedTenant`), or the
/// open's.
pub(crate) fn usage_through_sqlite(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    files: FileUsage,
) -> Result<FileUsage> {
    let read = open_for_reading(tenant, root, path)?;
    let pragma = |name: &str| -> Result<u64> {
        let value: i64 = (read.conn)
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| sqlite_error(tenant, path, SHORTER, e))?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    Ok(FileUsage {
        page_count: pragma("page_count")?,
        free_pages: pragma("freelist_count")?,
        ..files
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::CWD;

    #[test]
    fn a_database_reports_its_pages_free_pages_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             INSERT INTO t SELECT randomblob(4000) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE); DELETE FROM t; PRAGMA wal_checkpoint(TRUNCATE);
             INSERT INTO t VALUES (1);",
        )
        .unwrap();
        let pragma = |name: &str| -> u64 {
            let n: i64 = conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap();
            u64::try_from(n).unwrap()
        };
        let (pages, free) = (pragma("page_count"), pragma("freelist_count"));
        let Usage::Found(usage) = database_usage(CWD, &path) else {
            panic!("not found");
        };
        assert_eq!(usage.page_size, 4096);
        assert_eq!(usage.page_count, pages, "{usage:?}");
        assert!(usage.free_pages >= 19, "{usage:?}");
        assert!(
            free <= usage.free_pages,
            "the WAL's insert took one: {usage:?}"
        );
        assert!(usage.wal_bytes > 0, "the last insert is in the WAL");
        assert_eq!(usage.database_bytes, pages * 4096);
        assert!(usage.last_write.is_some());
        // A header counting more pages than the file holds goes to SQLite
        // for its counts; its `-wal` is still the file's (it was 0 B).
        let more = u32::try_from(pages + 5).unwrap().to_be_bytes();
        std::os::unix::fs::FileExt::write_at(
            &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
            &more,
            28,
        )
        .unwrap();
        let Usage::AskSqlite(short) = database_usage(CWD, &path) else {
            panic!("a short file is SQLite's to count");
        };
        assert_eq!(short.wal_bytes, usage.wal_bytes, "{short:?}");
        drop(conn);
        std::fs::write(dir.path().join("junk"), vec![b'x'; 4096]).unwrap();
        let junk = database_usage(CWD, &dir.path().join("junk"));
        assert!(matches!(junk, Usage::Damaged(_)), "{junk:?}");
        std::fs::write(dir.path().join("short"), b"SQLite").unwrap();
        let short = database_usage(CWD, &dir.path().join("short"));
        assert!(matches!(short, Usage::Damaged(_)), "{short:?}");
        let none = database_usage(CWD, &dir.path().join("none"));
        assert!(matches!(none, Usage::NotThere), "{none:?}");
    }
}
