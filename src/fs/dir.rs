//! Directories beneath the root, reached so that the kernel refuses to
//! follow a symbolic link on the way.
//!
//! A root can hold entries tenanted did not make: a backup restored by
//! hand, another program with write access. A bucket or tenant directory
//! replaced by a link to elsewhere must never lead a create, destroy or
//! open outside the root. Checking each component with `lstat` and then
//! using the path would leave a window between the check and the use, so
//! instead a [`Dir`] is opened one component at a time from the root with
//! `O_NOFOLLOW | O_DIRECTORY`: the kernel itself refuses a link or a
//! non-directory, and every later step is relative to the descriptor, so
//! nothing swapped in after the open can redirect it. The root itself may
//! be a link: where it lives is the operator's choice.
//!
//! On Linux, [`Dir::open`] first asks for the whole way in one `openat2`
//! call that refuses any link and any `..` on it (`RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`): a tenant's cold open then costs one open
//! instead of one per level. When the kernel refuses (or cannot), the walk
//! one component at a time runs, and says what stands in the way.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use std::sync::Arc;

use rustix::fs::FileType;

pub(crate) use crate::error::Blocked;
use crate::fs::entries::Entries;
use crate::fs::sys;

/// An open directory at or beneath the root.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// How many times [`Dir::make`] starts again after a concurrent destroy
/// removed a directory it had just made or seen.
const MAX_ATTEMPTS: usize = 100;

impl Dir {
    /// Opens `dir`, which is `root` or beneath it.
    ///
    /// # Errors
    ///
    /// `NotFound` when a component is missing; `NotADirectory` carrying a
    /// [`Blocked`] when one is a link or not a directory.
    pub(crate) fn open(root: &Path, dir: &Path) -> io::Result<Dir> {
        let mut here = Dir::root(root)?;
        // One call where the kernel can refuse links itself (a tenant's
        // cold open takes this path: one open instead of one a level).
        if let Some(below) = plain_below(root, dir)
            && let Some(fd) = sys::open_dir_beneath(here.fd(), below)
        {
            let path = here.path.join(below);
            return Ok(Dir { fd, path });
        }
        for name in components(root, dir)? {
            here = here.child(name)?;
        }
        Ok(here)
    }

    /// Opens `dir` as [`open`](Self::open) does, first making the
    /// directories that are missing, each made durable in its parent.
    pub(crate) fn make(root: &Path, dir: &Path) -> io::Result<Dir> {
        Self::make_with(root, dir, None)
    }

    /// As [`make`](Self::make), but instead of syncing a parent that got a
    /// new directory, adds its path to `unsynced`: a batch syncs each
    /// parent once, after all its new entries.
    pub(crate) fn make_deferred(
        root: &Path,
        dir: &Path,
        unsynced: &mut Vec<PathBuf>,
    ) -> io::Result<Dir> {
        Self::make_with(root, dir, Some(unsynced))
    }

    fn make_with(
        root: &Path,
        dir: &Path,
        mut unsynced: Option<&mut Vec<PathBuf>>,
    ) -> io::Result<Dir> {
        let names = components(root, dir)?;
        for _ in 0..MAX_ATTEMPTS {
            if let Some(made) = Self::try_make(root, &names, unsynced.as_deref_mut())? {
                return Ok(made);
            }
        }
        Err(io::Error::other(format!(
            "{} kept being removed while it was being made",
            dir.display()
        )))
    }

    /// One attempt; `None` when a destroy removed a directory on the way.
    fn try_make(
        root: &Path,
        names: &[&Path],
        mut unsynced: Option<&mut Vec<PathBuf>>,
    ) -> io::Result<Option<Dir>> {
        let mut here = match Dir::root(root) {
            Ok(here) => here,
            // The root itself is the operator's path, made as given.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                sys::make_dir_all(root)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        for name in names {
            match here.child(name) {
                Ok(child) => {
                    here = child;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            match sys::make_dir(here.fd(), name) {
                Ok(()) => match unsynced.as_deref_mut() {
                    Some(unsynced) => unsynced.push(here.path.clone()),
                    None => here.sync()?,
                },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                // `here` itself was removed by a destroy: start again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
            match here.child(name) {
                Ok(child) => here = child,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(here))
    }

    fn root(root: &Path) -> io::Result<Dir> {
        Ok(Dir {
            fd: sys::open_root(root)?,
            path: root.to_path_buf(),
        })
    }

    /// The directory `name` in this one, never through a link.
    pub(crate) fn child(&self, name: &Path) -> io::Result<Dir> {
        let path = self.path.join(name);
        match sys::open_dir(self.fd(), name) {
            Ok(fd) => Ok(Dir { fd, path }),
            Err(e)
                if e.raw_os_error() == Some(ELOOP) || e.kind() == io::ErrorKind::NotADirectory =>
            {
                let found = self.describe(name);
                Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    Blocked { path, found },
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn describe(&self, name: &Path) -> &'static str {
        match sys::stat(self.fd(), name).map(|s| FileType::from_raw_mode(s.st_mode)) {
            Ok(FileType::Symlink) => "a symbolic link",
            Ok(FileType::RegularFile) => "a regular file",
            Ok(_) => "a special file",
            Err(_) => "not a directory",
        }
    }

    /// The directory holding `below` (a relative path: plain names only)
    /// beneath this one (this one itself for a bare name), each directory on the way opened without
    /// following a link, and `below`'s last name in it.
    ///
    /// # Errors
    ///
    /// As [`child`](Self::child); `InvalidInput` for a path that is
    /// empty or climbs (`..`, `/`).
    pub(crate) fn parent_of(self, below: &Path) -> io::Result<(Dir, &Path)> {
        let names = components(Path::new(""), below)?;
        let Some((last, way)) = names.split_last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty path names no file",
            ));
        };
        let mut here = self;
        for name in way {
            here = here.child(name)?;
        }
        Ok((here, last))
    }

    /// The same directory, open a second time (one `dup`: no path is
    /// resolved again).
    pub(crate) fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: sys::duplicate(self.fd(), &self.path)?,
            path: self.path.clone(),
        })
    }

    /// The directory's path, for messages and for SQLite (which opens by
    /// path).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory.
    pub(crate) fn join(&self, name: &Path) -> PathBuf {
        self.path.join(name)
    }

    /// The descriptor, for `*at` calls.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The names in this directory (without `.` and `..`), each with
    /// whether it is a directory (never following a link).
    pub(crate) fn entries(&self) -> io::Result<Vec<io::Result<(PathBuf, bool)>>> {
        // The walk's reader, on an open description of its own: reading
        // moves a description's offset, which `self`'s must keep.
        let own = Arc::new(sys::open_dir(self.fd(), Path::new("."))?);
        let mut entries = Entries::streamed(own);
        let mut listed = Vec::new();
        while let Some(next) = entries.advance() {
            listed.push(next.and_then(|index| {
                let entry = entries.get(index).ok_or(io::ErrorKind::NotFound)?;
                // Looked at (`stat`) where the listing does not say: a
                // directory taken for a file would be unlinked, and fail,
                // or be told apart from what it is (a second review).
                let is_dir = entry.file_type()? == FileType::Directory;
                Ok((PathBuf::from(entry.name()), is_dir))
            }));
        }
        Ok(listed)
    }

    /// Whether this directory holds no entry (besides `.` and `..`): one
    /// read of it, however many it holds.
    pub(crate) fn is_empty(&self) -> io::Result<bool> {
        Ok(self.find_entry(|_| Some(()))?.is_none())
    }

    /// The first entry whose name `wanted` maps to something, read as a
    /// stream: a directory of a million entries is read only as far as
    /// that one.
    pub(crate) fn find_entry<T>(
        &self,
        mut wanted: impl FnMut(&Path) -> Option<T>,
    ) -> io::Result<Option<T>> {
        let own = Arc::new(sys::open_dir(self.fd(), Path::new("."))?);
        let mut entries = Entries::streamed(own);
        while let Some(next) = entries.advance() {
            let index = next?;
            let entry = entries.get(index).ok_or(io::ErrorKind::NotFound)?;
            if let Some(found) = wanted(Path::new(entry.name())) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Makes the entries added to or removed from this directory durable.
    /// A file system that cannot sync directories is not an error.
    pub(crate) fn sync(&self) -> io::Result<()> {
        match sys::sync(self.fd(), &self.path) {
            Err(e) if matches!(e.raw_os_error(), Some(n) if n == EINVAL || n == ENOTSUP) => Ok(()),
            other => other,
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const ELOOP: i32 = rustix::io::Errno::LOOP.raw_os_error();
const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();
const ENOTSUP: i32 = rustix::io::Errno::NOTSUP.raw_os_error();

/// The names from `root` down to `dir`: plain names only, so the walk can
/// never climb out.
/// `dir` below `root` when it is one or more plain names (no `.`, `..` or
/// root on the way): what [`sys::open_dir_beneath`] may open in one call.
fn plain_below<'a>(root: &Path, dir: &'a Path) -> Option<&'a Path> {
    let below = dir.strip_prefix(root).ok()?;
    let mut names = below.components().peekable();
    names.peek()?;
    names
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(below)
}

fn components<'a>(root: &Path, dir: &'a Path) -> io::Result<Vec<&'a Path>> {
    let below = dir.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not inside the root {}",
                dir.display(),
                root.display()
            ),
        )
    })?;
    below
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(Path::new(name)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} climbs out of the root", dir.display()),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::blocked;

    /// On a file system whose listings give no entry's type, a directory
    /// is still a directory to `entries` (a second review: it was taken
    /// for a file, which a destroy's check of foreign files let through
    /// and a tree removal unlinked, and failed on).
    #[test]
    fn entries_tell_a_directory_where_the_listing_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("main.sqlite3-wal")).unwrap();
        std::fs::write(tmp.path().join("main.sqlite3"), b"").unwrap();
        let dir = Dir::open(tmp.path(), tmp.path()).unwrap();
        let mut listed: Vec<(PathBuf, bool)> =
            crate::fs::entries::unlisted_types(|| dir.entries().unwrap())
                .into_iter()
                .map(Result::unwrap)
                .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                (PathBuf::from("main.sqlite3"), false),
                (PathBuf::from("main.sqlite3-wal"), true)
            ]
        );
    }

    #[test]
    fn a_link_on_the_way_is_refused_and_named() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("ab")).unwrap();
        let err = Dir::make(root.path(), &root.path().join("ab/acme")).unwrap_err();
        let blocked = blocked(&err).expect("blocked");
        assert_eq!(blocked.path, root.path().join("ab"));
        assert_eq!(blocked.found, "a symbolic link");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn make_makes_and_open_finds() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ab/acme");
        assert_eq!(
            Dir::open(root.path(), &dir).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        Dir::make(root.path(), &dir).unwrap();
        assert_eq!(Dir::open(root.path(), &dir).unwrap().path(), dir);
    }

    #[test]
    fn open_refuses_a_link_at_any_level_and_names_it() {
        // Dir::open reaches a directory in one call where it can (openat2):
        // a link anywhere on the way is refused all the same, and named.
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("acme")).unwrap();
        std::fs::create_dir(root.path().join("cd")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("ab")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("acme"), root.path().join("cd/acme"))
            .unwrap();
        // A link that stays inside the root is refused too.
        std::fs::create_dir_all(root.path().join("gh/acme")).unwrap();
        std::os::unix::fs::symlink("gh", root.path().join("ef")).unwrap();
        for (dir, link) in [("ab/acme", "ab"), ("cd/acme", "cd/acme"), ("ef/acme", "ef")] {
            let err = Dir::open(root.path(), &root.path().join(dir)).unwrap_err();
            let blocked = blocked(&err).expect("blocked");
            assert_eq!(blocked.path, root.path().join(link));
            assert_eq!(blocked.found, "a symbolic link");
        }
        let err = Dir::open(root.path(), &root.path().join("cd/../ab")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_file_on_the_way_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("ab"), b"x").unwrap();
        let err = Dir::open(root.path(), &root.path().join("ab/acme")).unwrap_err();
        assert_eq!(blocked(&err).unwrap().found, "a regular file");
    }
}
