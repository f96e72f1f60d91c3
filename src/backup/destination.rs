//! Where a backup may go, and come from: never inside the tenant root,
//! where a rename could replace a live tenant's database, a copy pose as a
//! tenant, or a restore read a live tenant's file unpinned.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::sys;
use crate::name::TenantName;

/// Fails if `dest` is `root` or inside it, following symbolic links in
/// the part of either path that exists.
pub(crate) fn check_outside_root(
    tenant: Option<&TenantName>,
    root: &Path,
    dest: &Path,
) -> Result<()> {
    let inside = is_inside(root, dest)
        .map_err(|e| Error::io(tenant, dest, "resolving the backup's path", e))?;
    if inside {
        return Err(Error::BackupInsideRoot {
            tenant: tenant.cloned(),
            path: dest.to_path_buf(),
            root: root.to_path_buf(),
        });
    }
    Ok(())
}

/// Fails if the file to restore `tenant` from is inside the root: that
/// would be a live tenant's file (or its debris), which tenanted only ever
/// opens pinned; a copy made by `backup_tenant` is the way to clone one.
pub(crate) fn check_source(tenant: &TenantName, root: &Path, src: &Path) -> Result<()> {
    let inside = is_inside(root, src)
        .map_err(|e| Error::io(Some(tenant), src, "resolving the backup's path", e))?;
    if inside {
        return Err(Error::BadBackup {
            tenant: tenant.clone(),
            path: src.to_path_buf(),
            reason: format!(
                "it is inside the tenant root {}; to copy a tenant, back it up (backup_tenant; `tenanted backup --to DIR --tenant NAME`) and restore from that file",
                root.display()
            ),
        });
    }
    Ok(())
}

/// Whether `path` is `root` or inside it.
fn is_inside(root: &Path, path: &Path) -> io::Result<bool> {
    Ok(resolved(path)?.starts_with(resolved(root)?))
}

/// `path` made absolute with symbolic links resolved in its longest
/// existing prefix (the rest does not exist yet, so has no links).
fn resolved(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match sys::canonicalize(existing) {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p, c| p.join(c))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            // Nothing of it exists, not even "/": take it as it is.
            _ => return Ok(absolute),
        }
    }
}
