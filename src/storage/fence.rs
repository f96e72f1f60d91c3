//! Fencing a tenant off before its files go, so that no process — this one
//! or another — commits a write to a database that is then deleted.
//!
//! 1. [`Fence::raise`] moves a tenant's own directory out of sight
//!    (`bucket/.acme.destroying`), then renames the database in it to a
//!    fixed hidden name; without tenant directories, only the latter. From
//!    then on no listing shows the tenant and no open by path reaches the
//!    database, serving processes notice the path is gone within their
//!    watch interval and let go, and Litestream drops it (the fence name
//!    matches no Litestream pattern, so it never picks it up again).
//! 2. [`Fence::wait_released`] passes the database directory's open gate
//!    (opens that raced the renames finish first; the gate is the
//!    directory's, and goes with it), then polls SQLite's own locks until
//!    no other process holds the file open, up to a deadline.
//! 3. [`Fence::demolish`] removes the sidecars and the fenced file for
//!    good, then the rest of a tenant's directory.
//!
//! A fence dropped before `demolish` (the wait timed out, or anything
//! failed) puts the tenant back: the tenant is left intact.

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

/// A tenant moved out of reach; put back on drop unless demolished.
#[derive(Debug)]
pub(super) struct Fence<'a> {
    tenant: &'a TenantName,
    at: TenantPath<'a>,
    /// The directory the tenant's entry is in.
    parent: &'a Dir,
    /// The database's directory (a tenant directory out of sight: its
    /// descriptor follows it).
    dir: &'a Dir,
    /// Where a tenant's own directory is, out of sight, in `parent`.
    hidden: Option<PathBuf>,
    /// The fence name of the database, in `dir`.
    fenced: PathBuf,
    raised_at: Instant,
    standing: bool,
}

impl<'a> Fence<'a> {
    /// Moves `tenant` out of reach. The caller holds the tenant's locks.
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
        // from changing between this look and the renames.
        let found = occupant_in(dir, name)
            .map_err(|e| Error::io(Some(tenant), at.db(), "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(missing());
        }
        let mut fence = Fence {
            tenant,
            at,
            parent: lock.parent(),
            dir,
            hidden: None,
            fenced: fence_path(name),
            raised_at: Instant::now(),
            standing: false,
        };
        if at.owns_dir() {
            let hidden = fence_path(at.entry_name());
            rename_no_replace(fence.parent, at.entry_name(), &hidden)
                .map_err(|e| fence.io_error("fencing the tenant off", at.entry(), e))?;
            fence.hidden = Some(hidden);
        }
        // From here a drop puts back what moved.
        fence.standing = true;
        let fenced = sys::rename(dir.fd(), name, &fence.fenced);
        fenced.map_err(|e| fence.io_error("fencing the tenant off", at.db(), e))?;
        let synced = dir.sync().and_then(|()| fence.parent.sync());
        synced.map_err(|e| fence.io_error("fencing the tenant off", fence.parent.path(), e))?;
        Ok(fence)
    }

    /// Where the fenced database is now, for messages.
    fn fenced_path(&self) -> PathBuf {
        match &self.hidden {
            Some(hidden) => self.parent.join(hidden).join(&self.fenced),
            None => self.dir.join(&self.fenced),
        }
    }

    /// Waits until no other process holds the fenced database open.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the process still holding it when
    /// `deadline` passes; I/O errors reading the locks.
    pub(super) fn wait_released(&self, deadline: Instant) -> Result<()> {
        barrier(self.dir).map_err(|e| {
            let dir = self.fenced_path();
            self.io_error("waiting for opens in progress", &dir, e)
        })?;
        let shm = sidecar_path(self.at.db_name(), "-shm");
        loop {
            let holder = other_holder(self.dir, &self.fenced, &shm).map_err(|e| {
                self.io_error("reading the database's locks", &self.fenced_path(), e)
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

    /// Removes the fenced database and its sidecars, then the rest of a
    /// tenant's own directory. Nobody holds them.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the fenced database cannot be removed: the
    /// tenant stays out of reach, and the next create or `remove_debris`
    /// removes it.
    pub(super) fn demolish(mut self) -> Result<()> {
        self.standing = false;
        let name = self.at.db_name();
        // The WAL first (see `remove_with_sidecars`); the sidecars still
        // carry the tenant's own name.
        remove_with_sidecars(self.dir, name);
        if let Err(e) = sys::unlink(self.dir.fd(), &self.fenced)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            let operation = "removing the destroyed tenant's database";
            return Err(self.io_error(operation, &self.fenced_path(), e));
        }
        match &self.hidden {
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

    /// Puts the tenant back, the destroy abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming where the tenant's intact database is, and how
    /// to put it back by hand.
    pub(super) fn put_back(mut self) -> Result<()> {
        self.standing = false;
        self.move_back().map_err(|e| {
            let operation = "putting the tenant back after its destroy stopped (its database is intact at this path: move it back to the tenant's database path, and its directory back to the tenant's, before running remove_debris, create_tenant or destroy_tenant, which would finish the destroy)";
            self.io_error(operation, &self.fenced_path(), e)
        })
    }

    /// The renames of `raise`, undone (the directory's last: it must not
    /// reappear without its database).
    fn move_back(&self) -> std::io::Result<()> {
        match sys::rename(self.dir.fd(), &self.fenced, self.at.db_name()) {
            // Never moved (the fence failed half way up).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        if let Some(hidden) = &self.hidden {
            rename_no_replace(self.parent, hidden, self.at.entry_name())?;
        }
        for dir in [self.dir, self.parent] {
            if let Err(e) = dir.sync() {
                tracing::warn!(dir = %dir.path().display(), error = %e, "a fenced tenant was put back, but its directory could not be synced");
            }
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
        // We hold the tenant's locks: nothing of this release can have
        // taken the tenant's place meanwhile.
        if let Err(e) = self.move_back() {
            tracing::error!(
                tenant = %self.tenant,
                fenced = %self.fenced_path().display(),
                error = %e,
                "could not put a fenced tenant back; move it back by hand to restore it"
            );
        }
    }
}
