//! Per-tenant advisory file locks that serialise create, migrate and destroy
//! across threads and processes.
//!
//! `std::fs::File::lock` is `flock(2)` on Unix: it excludes other open file
//! descriptions, so two threads of one process exclude each other as two
//! processes do. SQLite's own locks are POSIX record locks on the database
//! file; a separate lock file never touches them.
//!
//! The lock file is removed when the lock is released, so no tenant keeps a
//! stray file. Removing a lock file is safe only if it happens *before*
//! unlocking, and every acquirer checks, once it holds the lock, that the
//! path still names the file it locked; if not it starts again.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::busy::{Busy, WaitedFor};
use crate::error::{OtherProcess, PlantedLock};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::flock_holders::flock_holder;
use crate::fs::{Patience, sys};

/// How many times `acquire` starts again after losing a race with a
/// releaser that removed the file; each retry means another holder made
/// progress, so this bound is never reached in practice.
const MAX_ATTEMPTS: usize = 1000;

/// What the holder of the lock file `name` in `dir` said it is doing, if
/// some open file description holds its `flock` (one that is not there
/// is held by nobody): tried with a shared lock that is let go at once,
/// so a holder is never waited for and never kept out for more than the
/// try.
pub(crate) fn held_for(dir: BorrowedFd<'_>, name: &Path) -> Option<WaitedFor> {
    let file = sys::open_file(dir, name).ok()?;
    match sys::flock(&file, true, false, name) {
        Ok(true) => {
            let _ = sys::unlock(&file, name);
            None
        }
        Ok(false) => Some(WaitedFor::from_keyword(&sys::lock_description(&file, name))),
        Err(_) => None,
    }
}

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: Option<File>,
    dir: Dir,
    name: PathBuf,
}

impl FileLock {
    /// Takes the lock file `path` (beneath `root`) for `doing`, waiting
    /// for its holder until `patience` runs out (a non-blocking attempt
    /// repeated with short sleeps: see `patience.rs`).
    ///
    /// With `make_dirs`, missing directories are made; without, a missing
    /// directory gives `NotFound`. A holder still there at the deadline
    /// gives a `TimedOut` error carrying a [`Busy`](crate::busy::Busy):
    /// what the holder wrote it was doing, and its pid.
    pub(crate) fn acquire(
        root: &Path,
        path: &Path,
        make_dirs: bool,
        patience: &Patience,
        doing: WaitedFor,
    ) -> io::Result<FileLock> {
        let reach = if make_dirs { Reach::Make } else { Reach::Open };
        Self::lock(root, path, reach, Some(patience), doing)?
            .ok_or_else(|| io::Error::other("a lock waited for cannot be busy"))
    }

    /// As [`acquire`](Self::acquire) making directories, but leaving the
    /// parents that got a new directory to sync in `unsynced` (a batch of
    /// creates syncs each once: see `Dir::make_deferred`).
    ///
    /// A lock file that is one of `held` (locks this thread holds, found
    /// under another name: a case-insensitive file system) gives
    /// `AlreadyExists` instead of waiting for itself.
    pub(crate) fn acquire_deferred(
        root: &Path,
        path: &Path,
        unsynced: &mut Vec<PathBuf>,
        held: &[FileId],
        patience: &Patience,
    ) -> io::Result<FileLock> {
        let reach = Reach::MakeDeferred(unsynced, held);
        Self::lock(root, path, reach, Some(patience), WaitedFor::Create)?
            .ok_or_else(|| io::Error::other("a lock waited for cannot be busy"))
    }

    /// Takes the lock file `path` only if nobody holds it (`Ok(None)` if
    /// somebody does). Never makes directories.
    pub(crate) fn try_acquire(
        root: &Path,
        path: &Path,
        doing: WaitedFor,
    ) -> io::Result<Option<FileLock>> {
        Self::lock(root, path, Reach::Open, None, doing)
    }

    /// Which file the lock is.
    pub(crate) fn id(&self) -> io::Result<FileId> {
        match &self.file {
            Some(file) => FileId::of(file),
            None => Err(io::Error::other("a released lock")),
        }
    }

    /// The directory the lock file is in, where the locked operation works.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    fn lock(
        root: &Path,
        path: &Path,
        mut reach: Reach<'_>,
        patience: Option<&Patience>,
        doing: WaitedFor,
    ) -> io::Result<Option<Self>> {
        let (parent, name) = split(path)?;
        let make_dirs = !matches!(reach, Reach::Open);
        for _ in 0..MAX_ATTEMPTS {
            let dir = match &mut reach {
                Reach::Open => Dir::open(root, parent)?,
                Reach::Make => Dir::make(root, parent)?,
                Reach::MakeDeferred(unsynced, _) => Dir::make_deferred(root, parent, unsynced)?,
            };
            let file = match sys::open_or_create(dir.fd(), name) {
                Ok(file) => file,
                // A releaser removed the (then empty) directory under us.
                Err(e) if make_dirs && e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(planted(&dir, name, e)),
            };
            if let Reach::MakeDeferred(_, held) = &reach
                && held.contains(&FileId::of(&file)?)
            {
                let path = dir.join(name);
                let why = format!("{} is already locked under another name", path.display());
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, why));
            }
            if !take(&file, name, patience)? {
                return Ok(None);
            }
            if FileId::still_in(&file, &dir, name)? {
                // Said for whoever gives up waiting on it (best effort:
                // a full disk must not stop the operation).
                sys::describe_lock(&file, doing.keyword(), name);
                let name = name.to_path_buf();
                return Ok(Some(FileLock {
                    file: Some(file),
                    dir,
                    name,
                }));
            }
        }
        Err(io::Error::other(format!(
            "could not lock {} after {MAX_ATTEMPTS} attempts",
            path.display()
        )))
    }
}

/// A lock file that could not be opened because something else stands
/// at its name (a link: `O_NOFOLLOW`; a directory) is said to be that, as
/// a [`PlantedLock`] inside the error: someone put it there, and only
/// they can say it may go. Any other error is `e` itself.
fn planted(dir: &Dir, name: &Path, e: io::Error) -> io::Error {
    let found = match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::LOOP) => "a symbolic link",
        Some(Errno::ISDIR) => "a directory",
        _ => return e,
    };
    let path = dir.join(name);
    io::Error::new(e.kind(), PlantedLock { path, found })
}

/// Takes the `flock` on `file`: once without `patience` (`false` if
/// held), else until its deadline (then a `Busy` error naming what its
/// holder said it was doing).
fn take(file: &File, name: &Path, patience: Option<&Patience>) -> io::Result<bool> {
    let Some(patience) = patience else {
        return sys::flock(file, false, false, name);
    };
    let taken = patience.retry(|| Ok(sys::flock(file, false, false, name)?.then_some(())))?;
    match taken {
        Some(()) => Ok(true),
        None => Err(Busy {
            waited_for: WaitedFor::from_keyword(&sys::lock_description(file, name)),
            other_process: Some(OtherProcess {
                pid: flock_holder(file.as_fd()),
            }),
            waited: patience.waited(),
        }
        .into_io()),
    }
}

/// How a lock reaches its directory.
enum Reach<'a> {
    /// It must exist.
    Open,
    /// Made if missing, each new directory synced at once.
    Make,
    /// Made if missing, the parents to sync collected; never one of the
    /// locks held.
    MakeDeferred(&'a mut Vec<PathBuf>, &'a [FileId]),
}

/// A path's directory and file name.
pub(crate) fn split(path: &Path) -> io::Result<(&Path, &Path)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, Path::new(name))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )),
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlink first, unlock second (closing the file unlocks it); only
        // the file this lock holds, not one another process made since
        // ours was removed with its directory (a destroy).
        let ours = match &self.file {
            Some(file) => FileId::still_in(file, &self.dir, &self.name).unwrap_or(true),
            None => false,
        };
        if ours
            && let Err(e) = sys::unlink(self.dir.fd(), &self.name)
            && e.kind() != io::ErrorKind::NotFound
        {
            let path = self.dir.join(&self.name);
            tracing::warn!(path = %path.display(), error = %e, "could not remove lock file");
        }
        drop(self.file.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn excludes_threads_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let path = dir.path().join("a/b/.x.lock");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (root, path, inside) = (root.clone(), path.clone(), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let patience = Patience::new(std::time::Duration::from_secs(60));
                        let doing = WaitedFor::Create;
                        let _lock =
                            FileLock::acquire(&root, &path, true, &patience, doing).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!path.exists());
    }

    #[test]
    fn missing_directory_without_create_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let patience = Patience::new(std::time::Duration::from_secs(1));
        let path = dir.path().join("nope/.x.lock");
        let err = FileLock::acquire(dir.path(), &path, false, &patience, WaitedFor::Migration)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_held_lock_is_waited_for_until_the_deadline_then_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".x.lock");
        let long = Patience::new(std::time::Duration::from_secs(60));
        let held = FileLock::acquire(dir.path(), &path, true, &long, WaitedFor::Destroy).unwrap();
        let short = Patience::new(std::time::Duration::from_millis(50));
        let err =
            FileLock::acquire(dir.path(), &path, true, &short, WaitedFor::Create).unwrap_err();
        let busy = crate::busy::busy(&err).expect("a Busy error");
        assert_eq!(busy.waited_for, WaitedFor::Destroy);
        assert!(busy.waited >= std::time::Duration::from_millis(50));
        if Path::new("/proc/locks").exists() {
            let me = Some(std::process::id());
            assert_eq!(busy.other_process, Some(OtherProcess { pid: me }));
        }
        drop(held);
        let again = FileLock::acquire(dir.path(), &path, true, &short, WaitedFor::Create);
        assert!(again.is_ok());
    }
}
