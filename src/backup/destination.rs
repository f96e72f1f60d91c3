//! Where a backup may go, and come from: never inside the tenant root,
//! where a rename could replace a live tenant's database, a copy pose as a
//! tenant, or a restore read a live tenant's file unpinned.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fs::containment::is_inside;
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
