//! What a tenant's own directory holds that tenanted did not make (a copy
//! of the database made by hand before a risky restore, notes): a
//! destroy, a replacing restore and a re-key remove or swap out the whole
//! directory, so each refuses while it holds any, before it changes
//! anything. None of tenanted's operations touches what is not its own.

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::siblings::{SQLITE_SIDECARS, is_sidecar, is_tenanteds, sidecar_path};
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};

/// How many of the names are said (a directory of thousands is named by
/// its first ten).
const NAMED: usize = 10;

/// `Error::ForeignFiles` if `tenant`'s own directory (held under `lock`)
/// holds anything tenanted did not make; nothing for a layout without a
/// directory per tenant (a bucket is shared, and only the tenant's own
/// files are touched there).
///
/// # Errors
///
/// `ForeignFiles`, or the directory cannot be read.
pub(in crate::storage) fn refuse_foreign_files(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<()> {
    let Some(dir) = lock.db_dir(at) else {
        return Ok(());
    };
    if !at.owns_dir() {
        return refuse_sidecar_directories(tenant, dir, at.db_name());
    }
    let entries = (dir.entries()).map_err(|e| {
        Error::io(
            Some(tenant),
            dir.path(),
            "reading the tenant's directory",
            e,
        )
    })?;
    let db = at.db_name().to_string_lossy();
    let foreign: Vec<PathBuf> = (entries.into_iter().flatten())
        .filter(|(name, is_dir)| {
            let name = name.to_string_lossy();
            // A directory under one of SQLite's names for the database's
            // files (`main.sqlite3-wal/`) is no file SQLite made, and an
            // operator may have made it. (A destroy took one for the WAL,
            // failed to unlink it, and the sweep that finished the destroy
            // removed it with what it held: an outside probe.) Names only
            // tenanted makes (a fence's, hidden) are its debris.
            !is_tenanteds(&name, at.db_name()) || (*is_dir && is_sidecar(&name, &db))
        })
        .map(|(name, _)| name)
        .take(NAMED)
        .collect();
    refuse_any(tenant, dir, foreign)
}

/// In a directory other tenants share (a flat layout's bucket), only the
/// tenant's own names are looked at: a directory under one of SQLite's
/// names for its files is not SQLite's, and the destroy would fence the
/// tenant, then fail to unlink it (a second review).
fn refuse_sidecar_directories(tenant: &TenantName, dir: &Dir, db: &Path) -> Result<()> {
    let foreign: Vec<PathBuf> = (SQLITE_SIDECARS.iter())
        .map(|suffix| sidecar_path(db, suffix))
        .filter(|name| {
            sys::stat(dir.fd(), name)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        })
        .collect();
    refuse_any(tenant, dir, foreign)
}

/// Refuses the step with [`Error::ForeignFiles`] if anything was found.
fn refuse_any(tenant: &TenantName, dir: &Dir, foreign: Vec<PathBuf>) -> Result<()> {
    match foreign.is_empty() {
        true => Ok(()),
        false => Err(Error::ForeignFiles {
            tenant: tenant.clone(),
            dir: dir.path().to_path_buf(),
            files: foreign,
        }),
    }
}
