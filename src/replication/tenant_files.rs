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

use crate::fs::Dir;
use crate::fs::siblings::sidecar_path;
use crate::fs::sys;

/// The directory a tenant's database is in, open, and the database's name.
pub(crate) struct TenantFiles {
    dir: Dir,
    name: std::path::PathBuf,
}

/// A tenant's files as last seen: any write changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signature {
    pub(crate) inode: u64,
    pub(crate) db: (u64, i64, i64),
    pub(crate) wal: Option<(u64, i64, i64)>,
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

    /// When the database or its WAL was last written.
    pub(crate) fn last_write(&self) -> Option<SystemTime> {
        let db = self.database()?;
        let wal = sys::stat(self.dir.fd(), &self.sidecar("-wal")).ok();
        [Some(db), wal].iter().flatten().map(modified).max()
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
