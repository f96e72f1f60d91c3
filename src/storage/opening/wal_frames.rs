//! A `-wal`'s frames read without SQLite: where its current generation's
//! frames end (what a backup copies), and the database's size as of the
//! last commit among them (what the usage report counts).
//!
//! The file format (SQLite's `wal.c`): a 32-byte header (its page size
//! at bytes 8..12, its salts at 16..24), then frames of a 24-byte header
//! and a page. A frame's header holds its page number (0..4), for the
//! last frame of a commit the database's size in pages after it (4..8,
//! 0 otherwise), and the salts of the header it was written under
//! (8..16). A restart writes from the first frame on under new salts, so
//! the frames whose salts match the header's are a prefix. (A large
//! transaction that rewrites its own frames writes them with zeroed
//! salts until its commit sets them, so it never breaks the prefix.)
//!
//! Frames after the last commit may hold current salts and no commit:
//! a transaction being written, or one rolled back (its frames stay until
//! the next transaction writes over them), which may be thousands of
//! frames long. The look for the last commit goes back over all of them,
//! one 24-byte read a frame. Checksums are not verified: a commit frame
//! that SQLite's recovery would reject (torn by a crash of the machine)
//! is counted until the next write replaces it.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::fs::sys;
use crate::storage::opening::open::WAL_HEADER;

/// A `-wal`'s header as far as frames are concerned.
struct WalHeader {
    bytes: [u8; 32],
    /// Bytes a frame takes: its header and a page.
    frame: u64,
}

impl WalHeader {
    /// The header of `wal` (`name`), or `None` if it is no WAL header
    /// SQLite would read (its page size is not one).
    fn read(wal: BorrowedFd<'_>, name: &Path) -> io::Result<Option<WalHeader>> {
        let mut bytes = [0u8; 32];
        if sys::read_at(wal, &mut bytes, 0, name)? < bytes.len() {
            return Ok(None);
        }
        let page = u64::from(u32::from_be_bytes([
            bytes[8], bytes[9], bytes[10], bytes[11],
        ]));
        if !(512..=65536).contains(&page) || !page.is_power_of_two() {
            return Ok(None);
        }
        Ok(Some(WalHeader {
            bytes,
            frame: 24 + page,
        }))
    }

    /// Frame `i`'s header, if it is whole and of this header's generation.
    fn frame(&self, wal: BorrowedFd<'_>, i: u64, name: &Path) -> io::Result<Option<[u8; 24]>> {
        let mut head = [0u8; 24];
        let read = sys::read_at(wal, &mut head, WAL_HEADER + i * self.frame, name)?;
        let current = read == head.len() && head[8..16] == self.bytes[16..24];
        Ok(current.then_some(head))
    }

    /// How many frames of this generation the first `len` bytes hold,
    /// found by bisection: a few reads, not one per frame. A frame being
    /// appended meanwhile may fall either side.
    fn current(&self, wal: BorrowedFd<'_>, len: u64, name: &Path) -> io::Result<u64> {
        // `lo` frames are known to match, frames from `hi` on not to.
        let (mut lo, mut hi) = (0, len.saturating_sub(WAL_HEADER) / self.frame);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            match self.frame(wal, mid - 1, name)? {
                Some(_) => lo = mid,
                None => hi = mid - 1,
            }
        }
        Ok(lo)
    }
}

/// Where the current generation's frames end in the `-wal` `wal` of
/// `len` bytes: `None` if it has none; `Some(len)` if the header cannot
/// be read as one (for SQLite to judge).
pub(in crate::storage) fn current_frames(
    wal: BorrowedFd<'_>,
    len: u64,
    name: &Path,
) -> io::Result<Option<u64>> {
    let Some(header) = WalHeader::read(wal, name)? else {
        return Ok(Some(len));
    };
    let frames = header.current(wal, len, name)?;
    Ok((frames > 0).then_some(WAL_HEADER + frames * header.frame))
}

/// The database's size in pages as of the last commit in the `-wal`
/// `wal` of `len` bytes (its commit frame's count), if its current
/// generation holds one (see the module for what is not verified).
pub(in crate::storage) fn last_commit_pages(
    wal: BorrowedFd<'_>,
    len: u64,
    name: &Path,
) -> io::Result<Option<u64>> {
    let Some(header) = WalHeader::read(wal, name)? else {
        return Ok(None);
    };
    let frames = header.current(wal, len, name)?;
    for i in (0..frames).rev() {
        let Some(head) = header.frame(wal, i, name)? else {
            return Ok(None);
        };
        let pages = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if pages > 0 {
            return Ok(Some(u64::from(pages)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn pragma(conn: &rusqlite::Connection, name: &str) -> u64 {
        let n: i64 = conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap();
        u64::try_from(n).unwrap()
    }

    fn commit_pages(wal: &Path) -> Option<u64> {
        let file = std::fs::File::open(wal).unwrap();
        let len = file.metadata().unwrap().len();
        last_commit_pages(file.as_fd(), len, wal).unwrap()
    }

    fn wal_database(dir: &Path) -> (rusqlite::Connection, std::path::PathBuf) {
        let path = dir.join("main.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x);
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
        (conn, dir.join("main.sqlite3-wal"))
    }

    const GROW: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
                        INSERT INTO t SELECT randomblob(4000) FROM n;";

    #[test]
    fn the_last_commit_gives_the_size_the_header_does_not_yet() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = wal_database(dir.path());
        assert_eq!(commit_pages(&wal), None, "an empty -wal");
        conn.execute_batch(GROW).unwrap();
        let grown = pragma(&conn, "page_count");
        assert!(grown > 30);
        assert_eq!(commit_pages(&wal), Some(grown));
        // A later commit that shrinks the database: the last commit
        // counts, not the largest or the first.
        conn.execute_batch("DELETE FROM t; VACUUM;").unwrap();
        let shrunk = pragma(&conn, "page_count");
        assert!(shrunk < grown);
        assert_eq!(commit_pages(&wal), Some(shrunk));
        std::fs::write(dir.path().join("junk-wal"), vec![b'x'; 5000]).unwrap();
        assert_eq!(commit_pages(&dir.path().join("junk-wal")), None);
    }

    /// After a restart the new generation's frames are the first ones;
    /// the earlier generation's frames after them (other salts) hold a
    /// larger count, and never count.
    #[test]
    fn a_restarted_wal_counts_its_new_generation_only() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = wal_database(dir.path());
        conn.execute_batch(GROW).unwrap();
        let grown = pragma(&conn, "page_count");
        conn.execute_batch("PRAGMA wal_checkpoint(RESTART); DELETE FROM t; VACUUM;")
            .unwrap();
        let shrunk = pragma(&conn, "page_count");
        assert!(shrunk < grown);
        assert_eq!(commit_pages(&wal), Some(shrunk));
    }

    /// A transaction rolled back after it spilled thousands of frames into
    /// the `-wal` leaves them there, with current salts and no commit,
    /// after the last commit's frames.
    #[test]
    fn frames_of_a_transaction_rolled_back_hide_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = wal_database(dir.path());
        conn.execute_batch(GROW).unwrap();
        conn.execute_batch(
            "PRAGMA cache_size = 100; BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
             INSERT INTO t SELECT randomblob(1000000) FROM n;
             ROLLBACK; INSERT INTO t VALUES (1);",
        )
        .unwrap();
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(len > 2000 * 4096, "the rolled back frames stay: {len}");
        assert_eq!(commit_pages(&wal), Some(pragma(&conn, "page_count")));
    }
}
