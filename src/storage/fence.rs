//! Fencing a tenant off before its files go, so that no process — this one
//! or another — commits a write to a database that is then deleted.
//!
//! 1. [`Fence::raise`] renames the tenant's entry (its directory, or its
//!    database file in a layout without one: see `tenant_path.rs`) to a
//!    fixed hidden name beside it. From then on no open by path reaches
//!    the database, listings no longer show the tenant, serving processes
//!    notice the path is gone within their watch interval and let go, and
//!    Litestream drops it.
//! 2. [`Fence::wait_released`] passes the database directory's open gate
//!    (opens that raced the rename finish first; a fenced directory keeps
//!    its gate, which belongs to the directory, not its name), then polls
//!    SQLite's own locks until no other process holds the database open,
//!    up to a deadline.
//! 3. [`Fence::demolish`] removes the fenced directory, or the fenced file
//!    and its sidecars, for good.
//!
//! A fence dropped before `demolish` (the wait timed out, or anything
//! failed) renames the entry back: the tenant is left intact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database_file::{Occupant, occupant_in};
use super::dir::Dir;
use super::files::{remove_quietly, remove_tree_quietly, remove_with_sidecars, rename_no_replace};
use super::holders::{Holder, other_holder};
use super::open_gate::barrier;
use super::siblings::{fence_path, litestream_dir, sidecar_path};
use super::tenant_path::{TenantLock, TenantPath};
use crate::error::{Error, OtherProcess, Result};
use crate::name::TenantName;

/// How often the wait looks at the locks again.
const POLL: Duration = Duration::from_millis(5);

/// A tenant moved out of reach; put back on drop unless demolished.
#[derive(Debug)]
pub(super) struct Fence<'a> {
    tenant: &'a TenantName,
    at: TenantPath<'a>,
    /// The directory the entry and its fence name are in.
    parent: &'a Dir,
    /// The database's directory (a fenced tenant directory itself: its
    /// descriptor follows the rename).
    db_dir: &'a Dir,
    /// The fence name of the entry, in `parent`.
    fenced: PathBuf,
    /// The database's name in `db_dir` while fenced.
    held: PathBuf,
    raised_at: Instant,
    standing: bool,
}

impl<'a> Fence<'a> {
    /// Moves `tenant`'s entry to its fence name. The caller holds the
    /// tenant's locks.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`] if there is no database.
    pub(super) fn raise(
        tenant: &'a TenantName,
        lock: &'a TenantLock,
        at: TenantPath<'a>,
    ) -> Result<Self> {
        let missing = || Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: at.db().to_path_buf(),
        };
        let (parent, db_dir) = (lock.parent(), lock.db_dir().ok_or_else(missing)?);
        // Only a database is ever fenced: a directory or a symlink at the
        // path is no tenant (and moving it would leave it behind as a
        // fence). The locks keep tenanted's own files from changing
        // between this look and the rename.
        let found = occupant_in(db_dir, at.db_name())
            .map_err(|e| Error::io(Some(tenant), at.db(), "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(missing());
        }
        let fenced = fence_path(at.entry_name());
        match rename_no_replace(parent, at.entry_name(), &fenced) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => {
                return Err(Error::io(
                    Some(tenant),
                    at.entry(),
                    "fencing the tenant off",
                    e,
                ));
            }
        }
        let held = match at.owns_dir() {
            true => at.db_name().to_path_buf(),
            false => fenced.clone(),
        };
        let fence = Fence {
            tenant,
            at,
            parent,
            db_dir,
            fenced,
            held,
            raised_at: Instant::now(),
            standing: true,
        };
        // Dropped on error: the rename is undone.
        parent
            .sync()
            .map_err(|e| fence.io_error("fencing the tenant off", parent.path(), e))?;
        Ok(fence)
    }

    /// Waits until no other process holds the fenced database open.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the process still holding it when
    /// `deadline` passes; I/O errors reading the locks.
    pub(super) fn wait_released(&self, deadline: Instant) -> Result<()> {
        barrier(self.db_dir)
            .map_err(|e| self.io_error("waiting for opens in progress", self.db_dir.path(), e))?;
        let shm = sidecar_path(self.at.db_name(), "-shm");
        loop {
            let holder = other_holder(self.db_dir, &self.held, &shm).map_err(|e| {
                let fenced = self.parent.join(&self.fenced);
                self.io_error("reading the database's locks", &fenced, e)
            })?;
            let Some(Holder { pid }) = holder else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(Error::TenantBusy {
                    tenant: self.tenant.clone(),
                    path: self.at.db().to_path_buf(),
                    checked_out: 0,
                    other_process: Some(OtherProcess { pid }),
                    waited: self.raised_at.elapsed(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Removes the fenced tenant for good. Nobody holds it.
    pub(super) fn demolish(mut self) {
        self.standing = false;
        if self.at.owns_dir() {
            // The database, its sidecars, Litestream's state and the lock
            // files, all in the fenced directory.
            remove_tree_quietly(self.parent, &self.fenced);
        } else {
            let name = self.at.db_name();
            // The WAL first (see `remove_with_sidecars`); the sidecars
            // still carry the tenant's own name.
            remove_with_sidecars(self.parent, name);
            remove_quietly(self.parent, &self.fenced);
            // Litestream's state for this database: it dropped the
            // database when the file went away (it held it open until
            // then, so the wait above covered it).
            remove_tree_quietly(self.parent, &litestream_dir(name));
        }
        if let Err(e) = self.parent.sync() {
            tracing::warn!(dir = %self.parent.path().display(), error = %e, "could not sync the directory of a destroyed tenant");
        }
    }

    /// Puts the tenant back, the destroy abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the fenced entry, which holds the tenant's
    /// intact database, and how to put it back by hand.
    pub(super) fn put_back(mut self) -> Result<()> {
        self.standing = false;
        self.rename_back().map_err(|e| {
            let operation = "putting the tenant back after its destroy stopped (its database is intact at this path: rename it to the tenant's own name before running remove_debris, which would finish the destroy)";
            self.io_error(operation, &self.parent.join(&self.fenced), e)
        })
    }

    fn rename_back(&self) -> std::io::Result<()> {
        rename_no_replace(self.parent, &self.fenced, self.at.entry_name())?;
        self.parent.sync()
    }

    fn io_error(&self, operation: &'static str, path: &Path, e: std::io::Error) -> Error {
        Error::io(Some(self.tenant), path, operation, e)
    }
}

impl Drop for Fence<'_> {
    fn drop(&mut self) {
        if !self.standing {
            return;
        }
        // We hold the tenant's locks: nothing of tenanted's can have taken
        // the tenant's place meanwhile.
        if let Err(e) = self.rename_back() {
            tracing::error!(
                tenant = %self.tenant,
                fenced = %self.parent.join(&self.fenced).display(),
                error = %e,
                "could not put a fenced tenant back; rename it back to restore it"
            );
        }
    }
}
