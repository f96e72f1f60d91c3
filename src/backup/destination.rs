//! Where a backup may go: never inside the tenant root, where a rename
//! could replace a live tenant's database or a copy pose as a tenant.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::name::TenantName;

/// Fails if `dest` is `root` or inside it, following symbolic links in
/// the part of either path that exists.
pub(crate) fn check_outside_root(
    tenant: Option<&TenantName>,
    root: &Path,
    dest: &Path,
) -> Result<()> {
    let resolve =
        |p: &Path| resolved(p).map_err(|e| Error::io(tenant, p, "resolving the backup's path", e));
    let (root_real, dest_real) = (resolve(root)?, resolve(dest)?);
    if dest_real.starts_with(&root_real) {
        return Err(Error::BackupInsideRoot {
            tenant: tenant.cloned(),
            path: dest.to_path_buf(),
            root: root.to_path_buf(),
        });
    }
    Ok(())
}

/// `path` made absolute with symbolic links resolved in its longest
/// existing prefix (the rest does not exist yet, so has no links).
fn resolved(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
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
