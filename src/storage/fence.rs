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

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database_file::{Occupant, occupant};
use super::files::{remove_dir_quietly, remove_quietly, remove_with_sidecars, sync_dir};
use super::holders::{Holder, other_holder};
use super::open_gate::barrier;
use super::siblings::{fence_path, litestream_dir, sidecar_path};
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
    fenced: PathBuf,
    raised_at: Instant,
    standing: bool,
}

impl<'a> Fence<'a> {
    /// Moves `path` to its fence name. The caller holds the tenant's lock.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`] if there is no database at `path`.
    pub(super) fn raise(tenant: &'a TenantName, path: &'a Path) -> Result<Self> {
        let fenced = fence_path(path);
        // Only a database file is ever moved: a directory or a symlink at
        // the path is no tenant (and renaming it would leave it behind as
        // a fence nothing removes). The caller's lock keeps tenanted's own
        // files from changing between this look and the rename.
        let found = occupant(path)
            .map_err(|e| Error::io(Some(tenant), path, "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            });
        }
        match fs::rename(path, &fenced) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::TenantDoesNotExist {
                    tenant: tenant.clone(),
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(Error::io(Some(tenant), path, "fencing the tenant off", e)),
        }
        sync_dir(path);
        Ok(Fence {
            tenant,
            path,
            fenced,
            raised_at: Instant::now(),
            standing: true,
        })
    }

    /// Waits until no other process holds the fenced database open.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the process still holding it when
    /// `deadline` passes; I/O errors reading the locks.
    pub(super) fn wait_released(&self, deadline: Instant) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        barrier(dir).map_err(|e| self.io_error("waiting for opens in progress", dir, e))?;
        let shm = sidecar_path(self.path, "-shm");
        loop {
            let holder = other_holder(&self.fenced, &shm)
                .map_err(|e| self.io_error("reading the database's locks", &self.fenced, e))?;
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
        // The WAL first (see `remove_with_sidecars`); the sidecars still
        // carry the tenant's own name.
        remove_with_sidecars(self.path);
        remove_quietly(&self.fenced);
        // Litestream's state for this database: it dropped the database
        // when the file went away (it held it open until then, so the wait
        // above covered it).
        remove_dir_quietly(&litestream_dir(self.path));
        sync_dir(self.path);
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
        match fs::rename(&self.fenced, self.path) {
            Ok(()) => sync_dir(self.path),
            Err(e) => tracing::error!(
                tenant = %self.tenant,
                fenced = %self.fenced.display(),
                error = %e,
                "could not put a fenced tenant back; rename the file back to restore it"
            ),
        }
    }
}
