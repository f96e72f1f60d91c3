//! The file system a tenant's database is on: where it is mounted and how
//! much room it has left, to tell a full disk from a tenant at its limit
//! (SQLite says `SQLITE_FULL` for both).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fs::sys;

/// A file system, as a full-disk error names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSystem {
    /// Where it is mounted (the topmost directory above the file on the
    /// same device).
    pub(crate) mount: PathBuf,
    /// Bytes an unprivileged writer can still use on it.
    pub(crate) available: u64,
}

impl FileSystem {
    /// The file system holding `path` (a file or directory), or `None` if
    /// it cannot be looked at.
    pub(crate) fn of(path: &Path) -> Option<FileSystem> {
        let dir = if sys::is_dir(path) {
            path
        } else {
            path.parent()?
        };
        Some(FileSystem {
            available: sys::available_bytes(dir).ok()?,
            mount: mount_point(dir),
        })
    }
}

/// The topmost ancestor of `dir` on `dir`'s device: its mount point (or
/// `dir` itself when it cannot be told).
fn mount_point(dir: &Path) -> PathBuf {
    let Ok(dir) = std::path::absolute(dir) else {
        return dir.to_path_buf();
    };
    let Ok(dev) = sys::metadata(&dir).map(|m| m.dev()) else {
        return dir;
    };
    let mut mount = dir.as_path();
    while let Some(parent) = mount.parent() {
        match sys::metadata(parent) {
            Ok(meta) if meta.dev() == dev => mount = parent,
            _ => break,
        }
    }
    mount.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_on_a_file_system_mounted_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::of(dir.path()).unwrap();
        assert!(dir.path().starts_with(&fs.mount), "{fs:?}");
        assert!(fs.available > 0);
    }
}
