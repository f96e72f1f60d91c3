//! Who holds SQLite's write lock on a database, as the kernel lists it in
//! `/proc/locks`: to name the process a wait for that lock gave up on.
//!
//! SQLite's locks are POSIX record locks (`fcntl`). `F_GETLK` would name
//! their holder, but only through a descriptor of the file, and closing
//! any descriptor of a file drops every POSIX lock this process holds on
//! it, its own SQLite connections' included. `/proc/locks` names the
//! holder with no descriptor opened: the files are looked at by path
//! (`stat`), and the list read, only when a wait has already given up.
//!
//! The locks that keep a writer (or a reader's first open) out:
//!
//! - in WAL mode, on the `-shm`: byte 120 (the write lock) and 122 (a
//!   recovery of the WAL index), taken exclusively; not 121, a
//!   checkpoint's, which keeps out neither a writer nor a reader (and
//!   which Litestream and every connection's autocheckpoint take);
//! - in exclusive locking mode (a backup reading a small tenant alone)
//!   or a rollback journal, on the database file: an exclusive lock at
//!   or past byte 0x40000000 (SQLite's pending, reserved and shared
//!   bytes).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::flock_holders::{FileKey, KernelLock, READINGS, file_key, holder_among};
use super::siblings::sidecar_path;
use super::sys;

/// SQLite's pending byte: its database file locks start here.
const PENDING_BYTE: u64 = 0x4000_0000;

/// The `-shm` bytes of the write and recovery locks.
const WAL_LOCKS: [u64; 2] = [120, 122];

/// The pid of a process holding SQLite's write lock (or an exclusive
/// lock) on the database at `db`, if the kernel lists one: another
/// process's first, then this one's.
pub(crate) fn sqlite_lock_holder(db: &Path) -> Option<u32> {
    let key = |path: &Path| {
        let meta = sys::symlink_metadata(path).ok()?;
        Some(file_key(meta.dev(), meta.ino()))
    };
    let database = key(db);
    let shm = key(&sidecar_path(db, "-shm"));
    // Read again for a line missed while the kernel wrote the list (see
    // `flock_holders.rs`).
    (0..READINGS).find_map(|_| {
        let locks = sys::proc_locks()?;
        holder_in(&locks, (database, shm))
    })
}

/// The holder of an exclusive SQLite lock on the database file or its
/// `-shm` (either known by its key) in the text of `/proc/locks`.
fn holder_in(locks: &str, (database, shm): (Option<FileKey>, Option<FileKey>)) -> Option<u32> {
    let exclusive = || {
        locks
            .lines()
            .filter_map(KernelLock::parse)
            .filter(|l| l.write && l.kind != "FLOCK" && l.kind != "LEASE")
    };
    let on_database = database
        .and_then(|file| holder_among(exclusive().filter(|l| l.start >= PENDING_BYTE), file));
    on_database.or_else(|| {
        let file = shm?;
        holder_among(exclusive().filter(|l| WAL_LOCKS.contains(&l.start)), file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 32260 fe:00:45 120 120
2: POSIX  ADVISORY  READ 32260 fe:00:45 123 123
3: POSIX  ADVISORY  READ 777 fe:00:45 128 128
4: POSIX  ADVISORY  READ 32260 fe:00:18 1073741826 1073742335
5: POSIX  ADVISORY  WRITE 999 fe:00:60 1073741826 1073742335
6: -> POSIX  ADVISORY  WRITE 888 fe:00:45 120 120
7: FLOCK  ADVISORY  WRITE 4242 fe:00:18 0 EOF
8: POSIX  ADVISORY  WRITE 5555 fe:00:45 121 121
9: OFDLCK ADVISORY  WRITE -1 fe:00:70 1073741824 1073741824
10: POSIX  ADVISORY  WRITE 0 fe:00:80 120 120
";

    #[test]
    fn names_the_writer_of_the_wal_index_not_its_readers() {
        let (db, shm) = ((0xfe, 0, 18), (0xfe, 0, 45));
        assert_eq!(holder_in(LOCKS, (Some(db), Some(shm))), Some(32260));
        // Its readers' shared locks, a waiter, a flock, a checkpoint's
        // lock (5555): none is the writer.
        let readers = LOCKS.replace("WRITE 32260", "READ 32260");
        assert_eq!(holder_in(&readers, (Some(db), Some(shm))), None);
    }

    /// An OFD lock lists no pid (-1), a process in another pid namespace
    /// pid 0: neither names anyone.
    #[test]
    fn names_no_pid_the_kernel_does_not_give() {
        assert_eq!(holder_in(LOCKS, (Some((0xfe, 0, 70)), None)), None);
        assert_eq!(holder_in(LOCKS, (None, Some((0xfe, 0, 80)))), None);
    }

    #[test]
    fn names_an_exclusive_holder_of_the_database_file() {
        let db = (0xfe, 0, 60);
        assert_eq!(holder_in(LOCKS, (Some(db), None)), Some(999));
        assert_eq!(holder_in(LOCKS, (None, None)), None);
    }
}
