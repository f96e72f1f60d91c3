//! Whether one path lies inside another as the kernel resolves them
//! (symbolic links followed in the part that exists): a backup or a
//! replica inside the tenant root would be lost with it, or be taken for
//! a tenant.

use std::io;
use std::path::{Component, Path, PathBuf};

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
/// existing prefix (the rest does not exist yet, so has no links; a `..`
/// there undoes the name before it, which the kernel never saw, and
/// `/outside/missing/../../root` is the root: a review).
fn resolved(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let parts: Vec<Component<'_>> = absolute.components().collect();
    for split in (1..=parts.len()).rev() {
        let prefix: PathBuf = parts[..split].iter().collect();
        let real = match sys::canonicalize(&prefix) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let rest = &parts[split..];
        let climbs = rest.contains(&Component::ParentDir);
        let joined = rest.iter().fold(real, |mut p, part| {
            match part {
                Component::ParentDir => {
                    p.pop();
                }
                Component::Normal(name) => p.push(name),
                _ => {}
            }
            p
        });
        // Climbed back into names that exist: resolve those as well.
        return match climbs {
            true => resolved(&joined),
            false => Ok(joined),
        };
    }
    Ok(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_climbs_out_of_names_not_made_yet_is_judged_where_it_lands() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let into_root = outside.join("missing/../../root/r");
        assert!(is_inside(&root, &into_root).unwrap());
        let out_of_root = root.join("missing/../../outside/r");
        assert!(!is_inside(&root, &out_of_root).unwrap());
        std::os::unix::fs::symlink(&root, dir.path().join("link")).unwrap();
        let through_link = outside.join("missing/../../link/r");
        assert!(is_inside(&root, &through_link).unwrap());
        assert!(!is_inside(&root, &outside.join("a/b")).unwrap());
    }
}
