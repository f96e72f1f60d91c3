//! Whether one path lies inside another as the kernel resolves them
//! (symbolic links followed in the part that exists): a backup or a
//! replica inside the tenant root would be lost with it, or be taken for
//! a tenant.

use std::io;
use std::path::{Path, PathBuf};

use crate::fs::sys;

/// Whether `path` is `root` or inside it.
///
/// # Errors
///
/// Either path cannot be made absolute, or a part of it that exists
/// cannot be resolved.
pub(crate) fn is_inside(root: &Path, path: &Path) -> io::Result<bool> {
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
