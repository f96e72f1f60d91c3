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

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::file_id::FileId;
use super::siblings::lock_path;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// How many times `acquire` starts again after losing a race with a
/// releaser that removed the file; each retry means another holder made
/// progress, so this bound is never reached in practice.
const MAX_ATTEMPTS: usize = 1000;

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: Option<File>,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the lock at `path` is held.
    ///
    /// With `create_dirs`, missing parent directories are created; without,
    /// a missing parent gives `NotFound`.
    pub(super) fn acquire(path: &Path, create_dirs: bool) -> io::Result<FileLock> {
        Self::lock(path, create_dirs, true)?
            .ok_or_else(|| io::Error::other("a blocking lock cannot be busy"))
    }

    /// Takes the lock at `path` only if nobody holds it (`Ok(None)` if
    /// somebody does). Never creates directories.
    pub(super) fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        Self::lock(path, false, false)
    }

    fn lock(path: &Path, create_dirs: bool, blocking: bool) -> io::Result<Option<FileLock>> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(file) = open_lock_file(path, create_dirs)? else {
                continue;
            };
            if blocking {
                file.lock()?;
            } else {
                match file.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            if FileId::still_at(&file, path)? {
                return Ok(Some(FileLock {
                    file: Some(file),
                    path: path.to_path_buf(),
                }));
            }
        }
        Err(io::Error::other(format!(
            "could not lock {} after {MAX_ATTEMPTS} attempts",
            path.display()
        )))
    }
}

/// Opens (creating) the lock file at `path`, with its directories when
/// `create_dirs`; `None` when a destroy removed a directory on the way and
/// the caller should start again.
fn open_lock_file(path: &Path, create_dirs: bool) -> io::Result<Option<File>> {
    if create_dirs && let Some(parent) = path.parent() {
        match fs::create_dir_all(parent) {
            Ok(()) => {}
            // A destroy removed a directory create_dir_all had just seen
            // exist (AlreadyExists) or just made (NotFound, when the parent
            // went before the child was made).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        // A releaser removed the (then empty) directory under us.
        Err(e) if create_dirs && e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlink first, unlock second (closing the file unlocks it).
        #[cfg(unix)]
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove lock file");
        }
        drop(self.file.take());
    }
}

/// Takes the tenant's lock without creating directories: a tenant whose
/// directory is gone does not exist.
pub(crate) fn lock_tenant(tenant: &TenantName, path: &Path) -> Result<FileLock> {
    let lock = lock_path(path);
    FileLock::acquire(&lock, false).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            }
        } else {
            Error::io(Some(tenant), lock, "locking the tenant", e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn excludes_threads_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/.x.lock");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, inside) = (path.clone(), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _lock = FileLock::acquire(&path, true).unwrap();
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
        let err = FileLock::acquire(&dir.path().join("nope/.x.lock"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
