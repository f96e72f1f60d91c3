//! Fencing a tenant off before its files go, so that no process — this one
//! or another — commits a write to a database that is then deleted.
//!
//! 1. [`Fence::raise`] renames the database to a fixed hidden name beside
//!    it, in its own directory. From then on no open by path reaches it,
//!    serving processes notice the path is gone within their watch
//!    interval and let go, and Litestream drops it (the hidden name matches
//!    no Litestream pattern; earlier releases fence the same way).
//! 2. [`Fence::wait_released`] passes the directory's open gate (opens that
//!    raced the rename finish first), then polls SQLite's own locks until
//!    no other process holds the file open, up to a deadline.
//! 3. [`Fence::demolish`] moves a tenant's own directory out of sight
//!    (so that no listing ever shows it without its database), then
//!    removes the sidecars and the fenced file for good, and the rest of
//!    the directory.
//!
//! While the fence stands the tenant's directory stays where it is, with
//! the database lock in it: a process of an earlier release, which locks
//! only there, cannot make a new directory in its place meanwhile (and a
//! listing still shows the tenant, whose destroy can still give up).
//!
//! A fence dropped before `demolish` (the wait timed out, or anything
//! failed) renames the database back: the tenant is left intact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database_file::{Occupant, occupant_in};
use super::dir::Dir;
use super::files::{remove_tree_quietly, remove_with_sidecars, rename_no_replace};
use super::holders::{Holder, other_holder};
use super::open_gate::barrier;
use super::siblings::{fence_path, litestream_dir, sidecar_path};
use super::sys;
use super::tenant_path::{TenantLock, TenantPath};
use crate::error::{Error, OtherProcess, Result};
use crate::name::TenantName;

/// How often the wait looks at the locks again.
const POLL: Duration = Duration::from_millis(5);

/// A tenant's database moved out of reach; put back on drop unless
/// demolished.
#[derive(Debug)]
pub(super) struct Fence<'a> {
    tenant: &'a TenantName,
    at: TenantPath<'a>,
    /// The directory the tenant's entry is in.
    parent: &'a Dir,
    /// The database's directory.
    dir: &'a Dir,
    /// The fence name of the database, in `dir`.
    fenced: PathBuf,
    raised_at: Instant,
    standing: bool,
}

impl<'a> Fence<'a> {
    /// Moves `tenant`'s database to its fence name. The caller holds the
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
        let dir = lock.db_dir().ok_or_else(missing)?;
        let name = at.db_name();
        // Only a database file is ever moved: a directory or a symlink at
        // the path is no tenant (and renaming it would leave it behind as
        // a fence nothing removes). The locks keep tenanted's own files
        // from changing between this look and the rename.
        let found = occupant_in(dir, name)
            .map_err(|e| Error::io(Some(tenant), at.db(), "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(missing());
        }
        let fenced = fence_path(name);
        match rename_no_replace(dir, name, &fenced) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => {
                return Err(Error::io(
                    Some(tenant),
                    at.db(),
                    "fencing the tenant off",
                    e,
                ));
            }
        }
        let fence = Fence {
            tenant,
            at,
            parent: lock.parent(),
            dir,
            fenced,
            raised_at: Instant::now(),
            standing: true,
        };
        // Dropped on error: the rename is undone.
        dir.sync()
            .map_err(|e| fence.io_error("fencing the tenant off", dir.path(), e))?;
        Ok(fence)
    }

    /// Waits until no other process holds the fenced database open.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the process still holding it when
    /// `deadline` passes; I/O errors reading the locks.
    pub(super) fn wait_released(&self, deadline: Instant) -> Result<()> {
        barrier(self.dir)
            .map_err(|e| self.io_error("waiting for opens in progress", self.dir.path(), e))?;
        let shm = sidecar_path(self.at.db_name(), "-shm");
        loop {
            let holder = other_holder(self.dir, &self.fenced, &shm).map_err(|e| {
                let fenced = self.dir.join(&self.fenced);
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

    /// Removes the fenced database and its sidecars, and a tenant's own
    /// directory with them: moved out of sight first, so that no listing
    /// ever shows it without its database. Nobody holds them.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be moved out of sight (the
    /// database is put back: the tenant is intact), or when the fenced
    /// database cannot be removed (it is out of sight, and the next create
    /// or `remove_debris` removes it).
    pub(super) fn demolish(mut self) -> Result<()> {
        let mut fenced = self.dir.join(&self.fenced);
        let mut hidden = None;
        if self.at.owns_dir() {
            let (entry, out_of_sight) = (self.at.entry_name(), fence_path(self.at.entry_name()));
            // A leftover of a destroy that died here was removed before
            // the fence went up (see `destroy.rs`). On error the drop
            // puts the database back.
            rename_no_replace(self.parent, entry, &out_of_sight).map_err(|e| {
                let operation = "moving the destroyed tenant's directory out of sight";
                self.io_error(operation, &self.parent.join(entry), e)
            })?;
            fenced = self.parent.join(&out_of_sight).join(&self.fenced);
            hidden = Some(out_of_sight);
        }
        self.standing = false;
        let name = self.at.db_name();
        // The WAL first (see `remove_with_sidecars`); the sidecars still
        // carry the tenant's own name.
        remove_with_sidecars(self.dir, name);
        if let Err(e) = sys::unlink(self.dir.fd(), &self.fenced)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(self.io_error("removing the destroyed tenant's database", &fenced, e));
        }
        match &hidden {
            // The rest of the directory: lock files, Litestream's state.
            Some(hidden) => remove_tree_quietly(self.parent, hidden),
            // Litestream's state for this database: it dropped the
            // database when the file went away (it held it open until
            // then, so the wait above covered it).
            None => remove_tree_quietly(self.dir, &litestream_dir(name)),
        }
        if let Err(e) = self.parent.sync() {
            tracing::warn!(dir = %self.parent.path().display(), error = %e, "could not sync the directory of a destroyed tenant");
        }
        Ok(())
    }

    /// The tenant's old directory was exchanged for a restored one (see
    /// `restore.rs`): the fenced database went with it.
    pub(super) fn exchanged(mut self) {
        self.standing = false;
    }

    /// Puts the database back at its path, the destroy abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the fenced file, which holds the tenant's
    /// intact database, and how to put it back by hand.
    pub(super) fn put_back(mut self) -> Result<()> {
        self.standing = false;
        let back = sys::rename(self.dir.fd(), &self.fenced, self.at.db_name());
        back.map_err(|e| {
            let operation = "putting the tenant back after its destroy stopped (its database is intact at this path: rename it to the tenant's database file before running remove_debris, create_tenant or destroy_tenant, which would finish the destroy)";
            self.io_error(operation, &self.dir.join(&self.fenced), e)
        })?;
        if let Err(e) = self.dir.sync() {
            tracing::warn!(dir = %self.dir.path().display(), error = %e, "a fenced tenant was put back, but its directory could not be synced");
        }
        Ok(())
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
        // We hold the tenant's lock: nothing can have been created at
        // `path` meanwhile.
        let put_back = sys::rename(self.dir.fd(), &self.fenced, self.at.db_name())
            .and_then(|()| self.dir.sync());
        if let Err(e) = put_back {
            tracing::error!(
                tenant = %self.tenant,
                fenced = %self.dir.join(&self.fenced).display(),
                error = %e,
                "could not put a fenced tenant back; rename the file back to restore it"
            );
        }
    }
}
