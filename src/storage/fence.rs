//! Fencing a tenant off before its files go, so that no process — this one
//! or another — commits a write to a database that is then deleted.
//!
//! 1. [`Fence::raise`] renames the database to a fixed hidden name beside
//!    it. From then on no open by path reaches it, serving processes notice
//!    the path is gone within their watch interval and let go, and
//!    Litestream drops it.
//! 2. [`Fence::wait_released`] passes the directory's open gate (opens that
//!    raced the rename finish first), then polls SQLite's own locks until
//!    no other process holds the file open, up to a deadline.
//! 3. [`Fence::demolish`] removes the sidecars and the fenced file for good.
//!
//! A fence dropped before `demolish` (the wait timed out, or anything
//! failed) renames the database back: the tenant is left intact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database_file::{Occupant, occupant_in};
use super::dir::Dir;
use super::files::{remove_quietly, remove_tree_quietly, remove_with_sidecars};
use super::holders::{Holder, other_holder};
use super::open_gate::barrier;
use super::siblings::{fence_path, litestream_dir, name_of, sidecar_path};
use super::sys;
use crate::error::{Error, OtherProcess, Result};
use crate::name::TenantName;

/// How often the wait looks at the locks again.
const POLL: Duration = Duration::from_millis(5);

/// A tenant's database moved out of reach; put back on drop unless
/// demolished.
#[derive(Debug)]
pub(super) struct Fence<'a> {
    tenant: &'a TenantName,
    path: &'a Path,
    dir: &'a Dir,
    fenced: PathBuf,
    raised_at: Instant,
    standing: bool,
}

impl<'a> Fence<'a> {
    /// Moves `path` (in `dir`) to its fence name. The caller holds the
    /// tenant's lock.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`] if there is no database at `path`.
    pub(super) fn raise(tenant: &'a TenantName, dir: &'a Dir, path: &'a Path) -> Result<Self> {
        let name = name_of(path);
        let fenced = fence_path(name);
        // Only a database file is ever moved: a directory or a symlink at
        // the path is no tenant (and renaming it would leave it behind as
        // a fence nothing removes). The caller's lock keeps tenanted's own
        // files from changing between this look and the rename.
        let found = occupant_in(dir, name)
            .map_err(|e| Error::io(Some(tenant), path, "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            });
        }
        match sys::rename(dir.fd(), name, &fenced) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::TenantDoesNotExist {
                    tenant: tenant.clone(),
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(Error::io(Some(tenant), path, "fencing the tenant off", e)),
        }
        let fence = Fence {
            tenant,
            path,
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
        let shm = sidecar_path(name_of(self.path), "-shm");
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
                    path: self.path.to_path_buf(),
                    checked_out: 0,
                    other_process: Some(OtherProcess { pid }),
                    waited: self.raised_at.elapsed(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Removes the fenced database and its sidecars. Nobody holds them.
    pub(super) fn demolish(mut self) {
        self.standing = false;
        let name = name_of(self.path);
        // The WAL first (see `remove_with_sidecars`); the sidecars still
        // carry the tenant's own name.
        remove_with_sidecars(self.dir, name);
        remove_quietly(self.dir, &self.fenced);
        // Litestream's state for this database: it dropped the database
        // when the file went away (it held it open until then, so the wait
        // above covered it).
        remove_tree_quietly(self.dir, &litestream_dir(name));
        if let Err(e) = self.dir.sync() {
            tracing::warn!(dir = %self.dir.path().display(), error = %e, "could not sync the directory of a destroyed tenant");
        }
    }

    /// Puts the database back at its path, the destroy abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the fenced file, which holds the tenant's
    /// intact database, and how to put it back by hand.
    pub(super) fn put_back(mut self) -> Result<()> {
        self.standing = false;
        let back = sys::rename(self.dir.fd(), &self.fenced, name_of(self.path))
            .and_then(|()| self.dir.sync());
        back.map_err(|e| {
            let operation = "putting the tenant back after its destroy stopped (its database is intact at this path: rename it to the tenant's database file before running remove_debris, which would finish the destroy)";
            self.io_error(operation, &self.dir.join(&self.fenced), e)
        })
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
        let put_back = sys::rename(self.dir.fd(), &self.fenced, name_of(self.path))
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
