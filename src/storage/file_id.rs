//! Which file a path names: device and inode, compared to tell a tenant's
//! database from a replacement made at the same path.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file `path` names now (`lstat`: a symlink is itself), or `None`
    /// if nothing is there.
    pub(crate) fn at(path: &Path) -> io::Result<Option<FileId>> {
        match fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(Self::from_metadata(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file `file` is open on.
    pub(crate) fn of(file: &File) -> io::Result<FileId> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    /// Whether `path` still names the file `file` is open on (the check a
    /// lock holder makes after locking: see `lock.rs`).
    pub(crate) fn still_at(file: &File, path: &Path) -> io::Result<bool> {
        Ok(Self::at(path)? == Some(Self::of(file)?))
    }

    #[cfg(unix)]
    pub(crate) fn from_metadata(meta: &fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl FileId {
    /// The file a `stat` (from `rustix`) describes.
    // The fields are narrower than `u64` on some platforms.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_stat(stat: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }
    }
}
