//! Which file a path names: device and inode, compared to tell a tenant's
//! database from a replacement made at the same path.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::fs::dir::Dir;
use crate::fs::sys;

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// A number that differs between files, for spreading them over
    /// shards: the inode number, mixed with the device's.
    pub(crate) fn spread(&self) -> u64 {
        self.ino ^ self.dev.rotate_left(32)
    }

    /// The file `path` names now (`lstat`: a symlink is itself), or `None`
    /// if nothing is there.
    pub(crate) fn at(path: &Path) -> io::Result<Option<FileId>> {
        match sys::symlink_metadata(path) {
            Ok(meta) => Ok(Some(Self::from_metadata(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file `file` is open on.
    pub(crate) fn of(file: &File) -> io::Result<FileId> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    /// Whether `name` in `dir` still names the file `file` is open on (the
    /// check a lock holder makes after locking: see `lock.rs`).
    pub(crate) fn still_in(file: &File, dir: &Dir, name: &Path) -> io::Result<bool> {
        Ok(Self::in_dir(dir, name)? == Some(Self::of(file)?))
    }

    /// The file `name` in `dir` names now (a symlink is itself), or `None`.
    pub(crate) fn in_dir(dir: &Dir, name: &Path) -> io::Result<Option<FileId>> {
        match sys::stat(dir.fd(), name) {
            Ok(stat) => Ok(Some(Self::from_stat(&stat))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether SQLite, opening `name` in `dir` by its path, reached `file`:
    /// the name in the directory held open and the whole path both name
    /// it. A directory swapped for a link while SQLite had the path shows
    /// as a difference (SQLite may have written there: the caller fails).
    pub(crate) fn by_path_is(dir: &Dir, name: &Path, file: &File) -> io::Result<bool> {
        let id = Some(Self::of(file)?);
        Ok(Self::in_dir(dir, name)? == id && Self::at(&dir.join(name))? == id)
    }

    /// The file `stat` describes.
    // `st_dev` and `st_ino` have other widths on other platforms.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_stat(stat: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }
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
