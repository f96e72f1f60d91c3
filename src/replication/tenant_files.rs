//! A tenant's files as replication looks at them: reached from the root
//! without following a link (each directory on the way opened with
//! `O_NOFOLLOW`, the files looked at with `lstat` relative to it), and
//! taken for a tenant only when the database is a regular file and its
//! SQLite sidecars are regular files or absent.
//!
//! A root can hold what tenanted did not put there. A database, a tenant
//! directory or a bucket replaced by a symbolic link to a file elsewhere
//! must never be registered with Litestream (which would replicate the
//! link's target into the tenant's replica), nor erased through, nor
//! named as a tenant's incarnation. Litestream itself opens a registered
//! database by path; the look here is taken under the tenant's locks just
//! before the registration, which is as close as a path-based program
//! lets the check come to the use.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, Stat};

use super::listing::ltx_txids;
use crate::fs::Dir;
use crate::fs::siblings::{litestream_dir, sidecar_path};
use crate::fs::sys;

/// The directory a tenant's database is in, open, and the database's name.
pub(crate) struct TenantFiles {
    dir: Dir,
    name: std::path::PathBuf,
}

/// A tenant's files as last seen: any write changes it, a checkpoint
/// without a write does not (see the `PartialEq`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature {
    pub(crate) inode: u64,
    pub(crate) db: (u64, i64, i64),
    pub(crate) wal: Option<(u64, i64, i64)>,
}

/// Two signatures are equal when the database is the same file and its
/// WAL has the same size and modification time; the database's own stamp
/// counts only when there is no WAL. In WAL mode every write lands in the
/// WAL (appended, or written from its start when it restarts), and the
/// main file changes only by checkpoints, which copy into it what the WAL
/// already holds. Litestream keeps the WAL when it lets go of a database
/// (0.5.17 sets persistent WAL), and the last connection's close copies
/// the WAL's frames into the main file again each time: had the main
/// file's stamp counted, every let-go would look like a write, and an
/// idle tenant be registered again forever.
impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.inode == other.inode
            && self.wal == other.wal
            && (self.wal.is_some() || self.db == other.db)
    }
}

impl Eq for Signature {}

/// What [`TenantFiles::captured`] found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Captured {
    /// When the oldest change the replica does not hold was captured.
    pub(crate) oldest_unreplicated: Option<SystemTime>,
    /// When the newest change was captured, uploaded or not.
    pub(crate) newest: Option<SystemTime>,
}

/// SQLite's files beside a database that Litestream reads by path.
const SIDECARS: [&str; 2] = ["-wal", "-shm"];

impl TenantFiles {
    /// The files of the database at `db` (beneath `root`).
    ///
    /// # Errors
    ///
    /// `NotFound` when something on the way is missing; `NotADirectory`
    /// when a directory on the way is a link or a file; `InvalidInput`
    /// when `db` is not beneath `root`.
    pub(crate) fn open(root: &Path, db: &Path) -> io::Result<TenantFiles> {
        let below = db.strip_prefix(root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not in the root {}", db.display(), root.display()),
            )
        })?;
        let (dir, name) = Dir::open(root, root)?.parent_of(below)?;
        let name = name.to_path_buf();
        Ok(TenantFiles { dir, name })
    }

    /// The database, if it is a regular file with no link or special file
    /// in place of a sidecar: what may be replicated.
    pub(crate) fn database(&self) -> Option<Stat> {
        database_at(self.dir.fd(), &self.name)
    }

    /// The database's and WAL's identity, size and modification time;
    /// `None` when the database may not be replicated (see
    /// [`database`](Self::database)).
    pub(crate) fn signature(&self) -> Option<Signature> {
        signature_at(self.dir.fd(), &self.name)
    }

    /// Which incarnation of the tenant the database is: its inode number
    /// and birth time (ns; 0 where the file system keeps none). `None`
    /// when no regular file is there.
    pub(crate) fn incarnation(&self) -> Option<String> {
        let db = sys::stat(self.dir.fd(), &self.name).ok()?;
        if !regular(&db) {
            return None;
        }
        let born = sys::birth_time(self.dir.fd(), &self.name)
            .ok()
            .flatten()
            .unwrap_or(0);
        Some(format!("{}-{born}", db.st_ino))
    }

    /// When the database was last written: its WAL's modification time
    /// when it has a WAL (where every write lands; the main file's time
    /// is that of its last checkpoint, which copies what the WAL already
    /// holds, such as the one Litestream's close makes as it lets go),
    /// else the main file's.
    pub(crate) fn last_write(&self) -> Option<SystemTime> {
        let db = self.database()?;
        let wal = sys::stat(self.dir.fd(), &self.sidecar("-wal")).ok();
        Some(modified(wal.as_ref().unwrap_or(&db)))
    }

    /// What Litestream's local state says of the database's changes
    /// against a replica that holds them up to transaction `replicated`:
    /// its local LTX files (`.NAME-litestream/ltx/0/`, one per change its
    /// local sync captured), by modification time on this machine's
    /// clock. `None` when that directory cannot be read (no such state,
    /// another Litestream layout): the caller judges otherwise.
    pub(crate) fn captured(&self, replicated: u64) -> Option<Captured> {
        let state = self.dir.child(&litestream_dir(&self.name)).ok()?;
        let level0 = state
            .child(Path::new("ltx"))
            .ok()?
            .child(Path::new("0"))
            .ok()?;
        let mut captured = Captured::default();
        for (name, is_dir) in level0.entries().ok()?.into_iter().flatten() {
            let Some((first, _)) = name.to_str().and_then(ltx_txids).filter(|_| !is_dir) else {
                continue;
            };
            let Ok(stat) = sys::stat(level0.fd(), &name) else {
                continue;
            };
            let when = modified(&stat);
            captured.newest = captured.newest.max(Some(when));
            if first > replicated {
                let oldest = captured.oldest_unreplicated.map_or(when, |o| o.min(when));
                captured.oldest_unreplicated = Some(oldest);
            }
        }
        Some(captured)
    }

    fn sidecar(&self, suffix: &str) -> std::path::PathBuf {
        sidecar_path(&self.name, suffix)
    }
}

/// [`TenantFiles::database`] of `name` in `dir`. A fleet walk's `name`
/// may have a directory in it (`acme/main.sqlite3` below its bucket): the
/// walk saw that directory as a directory, not a link, as it listed it.
pub(crate) fn database_at(dir: BorrowedFd<'_>, name: &Path) -> Option<Stat> {
    let db = sys::stat(dir, name).ok()?;
    if !regular(&db) {
        return None;
    }
    for suffix in SIDECARS {
        match sys::stat(dir, &sidecar_path(name, suffix)) {
            Ok(side) if regular(&side) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => return None,
        }
    }
    Some(db)
}

/// [`TenantFiles::signature`] of `name` in `dir` (as [`database_at`]).
pub(crate) fn signature_at(dir: BorrowedFd<'_>, name: &Path) -> Option<Signature> {
    let db = database_at(dir, name)?;
    let wal = sys::stat(dir, &sidecar_path(name, "-wal")).ok();
    Some(Signature {
        inode: db.st_ino,
        db: stamp(&db),
        wal: wal.as_ref().map(stamp),
    })
}

fn regular(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
}

fn stamp(stat: &Stat) -> (u64, i64, i64) {
    (
        u64::try_from(stat.st_size).unwrap_or(0),
        stat.st_mtime,
        i64::try_from(stat.st_mtime_nsec).unwrap_or(0),
    )
}

fn modified(stat: &Stat) -> SystemTime {
    let secs = u64::try_from(stat.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(db: (u64, i64, i64), wal: Option<(u64, i64, i64)>) -> Signature {
        Signature { inode: 7, db, wal }
    }

    #[test]
    fn a_checkpoint_is_no_write_and_a_write_to_the_wal_is_one() {
        let wal = Some((16_512, 100, 5));
        let before = signature((32_768, 100, 1), wal);
        // The close's checkpoint copies the WAL into the main file again.
        assert_eq!(before, signature((40_960, 101, 9), wal));
        // A write during the let-go: the WAL grows, or is written anew.
        assert_ne!(before, signature((32_768, 100, 1), Some((20_632, 101, 2))));
        assert_ne!(before, signature((32_768, 100, 1), Some((16_512, 101, 2))));
        // The WAL checkpointed and removed: looked at again.
        assert_ne!(before, signature((40_960, 101, 9), None));
        // Without a WAL the main file is where writes land.
        assert_ne!(
            signature((32_768, 100, 1), None),
            signature((32_768, 101, 1), None)
        );
        let other = Signature { inode: 8, ..before };
        assert_ne!(before, other);
    }
}
