//! Where a tenant is on disk, and the lock that keeps operations on it
//! apart.
//!
//! A tenant's *entry* is what makes it visible below the root. With the
//! default layout (`%{bucket}/%{tenant}/main.sqlite3`) every tenant has a
//! directory of its own, and that directory is the entry: create builds it
//! whole under a hidden name and publishes it with one rename that never
//! replaces anything (see `stage.rs`), and destroy marks it
//! (`.acme.destroying` beside it) before it touches anything else (see
//! `fence.rs`). A visible, unmarked tenant directory therefore holds a
//! ready tenant, and listing the tenants reads the bucket directories and
//! nothing else. A tenant directory without its database (made by hand,
//! or its database moved away) is listed until `remove_debris` clears it,
//! and every other answer calls it damaged (see `incomplete.rs`). In a
//! layout without such a directory (`db/%{tenant}.sqlite3`) the entry is
//! the database file itself, published with `link`.
//!
//! One lock, the *entry lock*, beside the entry: `bucket/.acme.lock` for
//! a tenant directory (it must exist before the directory does),
//! `db/.acme.sqlite3.lock` for a database file. Everything that changes
//! the tenant takes it: create, restore, destroy, migrations, rollbacks
//! and the debris sweep ([`lock_tenant`]). A lock inside the tenant's
//! directory would not do: a destroy removes that directory while it
//! still has the marker beside it to remove, so a process locking inside
//! would get a fresh file at once and find a tenant half destroyed.

use std::io;
use std::path::{Path, PathBuf};

use crate::busy::{WaitedFor, busy};
use crate::error::{Error, LockStep, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::lock::FileLock;
use crate::fs::siblings::{lock_path, name_of};
use crate::fs::{Patience, sys};
use crate::name::TenantName;

/// A tenant's database file and the entry that holds it below the root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TenantPath<'a> {
    root: &'a Path,
    db: &'a Path,
    owns_dir: bool,
}

impl<'a> TenantPath<'a> {
    /// The tenant whose database is `db`, beneath `root`; `owns_dir` says
    /// whether the database's directory is the tenant's own (see
    /// [`RootConfig::owns_directory`](crate::RootConfig)).
    pub(crate) fn new(root: &'a Path, db: &'a Path, owns_dir: bool) -> Self {
        // Only a template that gives every tenant a directory says so;
        // `owns_dir()` checks the path itself when asked (a fleet run makes
        // one of these per tenant, and asks only of those it locks).
        TenantPath { root, db, owns_dir }
    }

    /// The root every path is reached from.
    pub(crate) fn root(&self) -> &'a Path {
        self.root
    }

    /// The database file.
    pub(crate) fn db(&self) -> &'a Path {
        self.db
    }

    /// Whether the tenant has a directory of its own.
    pub(crate) fn owns_dir(&self) -> bool {
        self.owns_dir && self.db.parent().is_some_and(|dir| dir != self.root)
    }

    /// The database's directory.
    pub(crate) fn db_dir(&self) -> &'a Path {
        self.db.parent().unwrap_or(self.root)
    }

    /// The database's file name.
    pub(in crate::storage) fn db_name(&self) -> &'a Path {
        name_of(self.db)
    }

    /// The entry: the tenant's directory, or its database file.
    pub(crate) fn entry(&self) -> &'a Path {
        if self.owns_dir() {
            self.db_dir()
        } else {
            self.db
        }
    }

    /// The entry's name in its parent directory.
    pub(in crate::storage) fn entry_name(&self) -> &'a Path {
        name_of(self.entry())
    }
}

/// A tenant's entry lock (see the module documentation), released on
/// drop, with the tenant's directory as it was when the lock was taken.
#[derive(Debug)]
pub(crate) struct TenantLock {
    /// With a tenant directory: that directory, if it existed.
    own_dir: Option<Dir>,
    /// The entry lock.
    outer: FileLock,
    owns_dir: bool,
}

/// A lock that could not be taken, and its file.
type Failed = (PathBuf, io::Error);

impl TenantLock {
    /// Locks a tenant about to be created or restored, making the
    /// directories up to its entry's parent.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the lock file (or [`Error::NotADirectory`] for
    /// a link on the way).
    /// [`Error::TenantBusy`] if another holds it past `patience`.
    pub(in crate::storage) fn for_new(
        tenant: &TenantName,
        at: TenantPath<'_>,
        patience: &Patience,
        doing: WaitedFor,
    ) -> Result<TenantLock> {
        Self::take(at, |lock| {
            FileLock::acquire(at.root, lock, true, patience, doing)
        })
        .map_err(|(file, e)| lock_error(tenant, at, file, e))
    }

    /// As [`for_new`](Self::for_new), but the parents that got a new
    /// directory are left in `unsynced`, and a lock that is one of `held`
    /// gives `AlreadyExists` (see `FileLock::acquire_deferred`).
    pub(in crate::storage) fn for_new_deferred(
        tenant: &TenantName,
        at: TenantPath<'_>,
        unsynced: &mut Vec<PathBuf>,
        held: &[FileId],
        patience: &Patience,
    ) -> Result<TenantLock> {
        let taken = Self::take(at, |lock| {
            FileLock::acquire_deferred(at.root, lock, unsynced, held, patience)
        });
        taken.map_err(|(file, e)| match e.kind() {
            // Another name of this batch is the same file.
            io::ErrorKind::AlreadyExists => Error::TenantExists {
                tenant: tenant.clone(),
                path: at.db.to_path_buf(),
            },
            _ => lock_error(tenant, at, file, e),
        })
    }

    /// Locks an existing tenant for `doing`; makes no directory.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`] when its directory is missing;
    /// [`Error::TenantBusy`] if another holds the lock past `patience`.
    pub(in crate::storage) fn for_existing(
        tenant: &TenantName,
        at: TenantPath<'_>,
        patience: &Patience,
        doing: WaitedFor,
    ) -> Result<TenantLock> {
        let missing = || Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: at.db.to_path_buf(),
        };
        let taken = Self::take(at, |lock| {
            FileLock::acquire(at.root, lock, false, patience, doing)
        });
        let lock = taken.map_err(|(file, e)| match e.kind() {
            io::ErrorKind::NotFound => missing(),
            _ => lock_error(tenant, at, file, e),
        })?;
        match lock.db_dir(at) {
            Some(_) => Ok(lock),
            None => Err(missing()),
        }
    }

    /// The lock if nobody holds it (`None` if somebody does, or if the
    /// directories are gone). Makes no directory.
    pub(in crate::storage) fn try_for_sweep(at: TenantPath<'_>) -> io::Result<Option<TenantLock>> {
        let outer = match FileLock::try_acquire(at.root, &lock_path(at.entry()), WaitedFor::Cleanup)
        {
            Ok(Some(lock)) => lock,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Self::with_own_dir(outer, at).map(Some)
    }

    fn take(
        at: TenantPath<'_>,
        lock: impl FnOnce(&Path) -> io::Result<FileLock>,
    ) -> std::result::Result<TenantLock, Failed> {
        let file = lock_path(at.entry());
        let outer = lock(&file).map_err(|e| (file, e))?;
        Self::with_own_dir(outer, at).map_err(|e| (at.entry().to_path_buf(), e))
    }

    /// The lock `outer`, with the tenant's directory opened under it.
    fn with_own_dir(outer: FileLock, at: TenantPath<'_>) -> io::Result<TenantLock> {
        let own_dir = match at.owns_dir() {
            true => match outer.dir().child(at.entry_name()) {
                Ok(dir) => Some(dir),
                // No tenant directory (yet).
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            false => None,
        };
        Ok(TenantLock {
            own_dir,
            outer,
            owns_dir: at.owns_dir(),
        })
    }

    /// The directory the entry is in: where a tenant's directory is
    /// published and fenced (for a layout without one, the database's).
    pub(in crate::storage) fn parent(&self) -> &Dir {
        self.outer.dir()
    }

    /// The database's directory, if it exists: for a tenant's own
    /// directory, one that existed as the lock was taken and still does (a
    /// destroy, or the sweep, may have removed it since).
    pub(in crate::storage) fn db_dir(&self, at: TenantPath<'_>) -> Option<&Dir> {
        if !self.owns_dir {
            return Some(self.outer.dir());
        }
        let dir = self.own_dir.as_ref()?;
        match sys::stat(self.outer.dir().fd(), at.entry_name()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // The name now names another directory (a restore swapped
            // them): the locked one is gone from here.
            Ok(now) => match sys::fstat(dir.fd()) {
                Ok(locked) if FileId::from_stat(&locked) != FileId::from_stat(&now) => None,
                _ => Some(dir),
            },
            // Cannot tell: the directory is taken to be there, and the
            // next step on it reports the error.
            Err(_) => Some(dir),
        }
    }

    /// Which file the first lock is (a batch's check for one file under
    /// two names).
    pub(in crate::storage) fn id(&self) -> io::Result<FileId> {
        self.outer.id()
    }
}

/// Takes an existing tenant's lock (see the module) for a change to it, such as a migration (`doing`), waiting for another
/// holder until `patience` runs out. Makes no directory.
///
/// # Errors
///
/// [`Error::TenantDoesNotExist`] when its directory is missing (a destroy
/// that held the lock has finished), [`Error::NotADirectory`] when a
/// link stands on the way, [`Error::TenantBusy`] when another holds it
/// past the deadline, [`Error::Io`] naming the database and the lock file
/// otherwise.
pub(crate) fn lock_tenant(
    tenant: &TenantName,
    at: TenantPath<'_>,
    patience: &Patience,
    doing: WaitedFor,
) -> Result<TenantLock> {
    TenantLock::for_existing(tenant, at, patience, doing)
}

/// Takes an existing tenant's lock only if nobody holds it (`None` if
/// somebody does, or if its directory is gone); makes no directory.
///
/// # Errors
///
/// An I/O error taking a lock.
pub(crate) fn try_lock_tenant(at: TenantPath<'_>) -> io::Result<Option<TenantLock>> {
    let lock = TenantLock::try_for_sweep(at)?;
    Ok(lock.filter(|lock| lock.db_dir(at).is_some()))
}

/// A lock that could not be taken: `TenantBusy` naming the database for a
/// wait that ran out; otherwise an I/O error naming the database, with
/// the lock file as the step that failed (a read-only root).
fn lock_error(tenant: &TenantName, at: TenantPath<'_>, file: PathBuf, e: io::Error) -> Error {
    if let Some(wait) = busy(&e) {
        return Error::busy(tenant, at.db, wait);
    }
    let step = LockStep { file, cause: e };
    Error::io(Some(tenant), at.db, "locking the tenant", step.into_io())
}
