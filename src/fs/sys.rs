//! The one seam every file-system step of tenanted goes through.
//!
//! Each function is one system call, relative to a directory descriptor
//! (see `dir.rs`), never following a symbolic link at the name it is
//! given. Before the call it asks [`faults::check`] whether a test asked
//! this step to fail, which is how `tests/fault_injection.rs` fails every
//! step of an operation in turn. Without the `testing` feature the check
//! compiles to nothing, and no function here is on the warm path.
//!
//! SQLite's own reads and writes do not pass here: SQLite opens tenants by
//! path, and its transactions are what make its writes atomic.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, RenameFlags, Stat};

use crate::fs::faults::{self, Step};

/// Permissions of new directories and files, before the umask.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// Opens directory `name` in `dir`; a symbolic link or another non-directory
/// gives `ELOOP` or `ENOTDIR`.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &Path) -> io::Result<OwnedFd> {
    faults::check(Step::Open, name)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// A second descriptor of the same open directory or file.
pub(crate) fn duplicate(fd: BorrowedFd<'_>, name: &Path) -> io::Result<OwnedFd> {
    faults::check(Step::Open, name)?;
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// Opens `path` as a directory, following links: the root itself, which
/// is the operator's to place (a link to a data disk is fine).
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    faults::check(Step::Open, path)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

/// Makes directory `name` in `dir`.
pub(crate) fn make_dir(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Mkdir, name)?;
    Ok(rustix::fs::mkdirat(
        dir,
        name,
        Mode::from_raw_mode(DIR_MODE),
    )?)
}

/// Opens the existing regular file `name` in `dir`, read-only.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    faults::check(Step::Open, name)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::empty(),
    )?))
}

/// Opens file `name` in `dir` for reading and writing, creating it if
/// missing (a lock file).
pub(crate) fn open_or_create(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    faults::check(Step::Create, name)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(FILE_MODE);
    Ok(File::from(rustix::fs::openat(dir, name, flags, mode)?))
}

/// Creates file `name` in `dir`, failing if anything is there.
pub(crate) fn create_new(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    faults::check(Step::Create, name)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(FILE_MODE);
    Ok(File::from(rustix::fs::openat(dir, name, flags, mode)?))
}

/// What `name` in `dir` is (`lstat`: a symlink is itself).
pub(crate) fn stat(dir: BorrowedFd<'_>, name: &Path) -> io::Result<Stat> {
    faults::check(Step::Stat, name)?;
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// What an open file is.
pub(crate) fn fstat(file: BorrowedFd<'_>) -> io::Result<Stat> {
    faults::check(Step::Stat, Path::new(""))?;
    Ok(rustix::fs::fstat(file)?)
}

/// The entries of directory `dir`, from a description of their own.
pub(crate) fn read_dir(dir: BorrowedFd<'_>, name: &Path) -> io::Result<rustix::fs::Dir> {
    faults::check(Step::Stat, name)?;
    Ok(rustix::fs::Dir::read_from(dir)?)
}

/// Copies all of `from` into `to` (the template into a new tenant); the
/// kernel copies file to file where it can.
pub(crate) fn copy(from: &mut File, to: &mut File, name: &Path) -> io::Result<u64> {
    faults::check(Step::Write, name)?;
    io::copy(from, to)
}

/// Writes all of `bytes` to `file`.
pub(crate) fn write_all(file: &mut File, bytes: &[u8], name: &Path) -> io::Result<()> {
    faults::check(Step::Write, name)?;
    io::Write::write_all(file, bytes)
}

/// Flushes `file` (a file or a directory) to stable storage.
pub(crate) fn sync(file: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Sync, name)?;
    Ok(rustix::fs::fsync(file)?)
}

/// Links `from` as `to`, both in `dir`; fails if `to` exists.
pub(crate) fn link(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    faults::check(Step::Link, to)?;
    Ok(rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?)
}

/// Renames `from` to `to`, both in `dir`, replacing `to`.
pub(crate) fn rename(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    faults::check(Step::Rename, to)?;
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// Renames `from` to `to`, both in `dir`, failing if `to` exists
/// (`EINVAL` where the file system cannot promise that).
pub(crate) fn rename_no_replace(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    faults::check(Step::Rename, to)?;
    Ok(rustix::fs::renameat_with(
        dir,
        from,
        dir,
        to,
        RenameFlags::NOREPLACE,
    )?)
}

/// Swaps `a` and `b`, both in `dir`, in one step (`EINVAL` where the
/// file system cannot).
pub(crate) fn rename_exchange(dir: BorrowedFd<'_>, a: &Path, b: &Path) -> io::Result<()> {
    faults::check(Step::Rename, b)?;
    Ok(rustix::fs::renameat_with(
        dir,
        a,
        dir,
        b,
        RenameFlags::EXCHANGE,
    )?)
}

/// Removes file `name` from `dir`.
pub(crate) fn unlink(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Unlink, name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the empty directory `name` from `dir`.
pub(crate) fn remove_dir(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Unlink, name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Takes (or, with `blocking` false, tries to take) a `flock` on `file`:
/// `Ok(false)` when another holds it.
pub(crate) fn flock(
    file: &impl AsFd,
    shared: bool,
    blocking: bool,
    name: &Path,
) -> io::Result<bool> {
    faults::check(Step::Lock, name)?;
    let operation = match (shared, blocking) {
        (true, true) => FlockOperation::LockShared,
        (false, true) => FlockOperation::LockExclusive,
        (true, false) => FlockOperation::NonBlockingLockShared,
        (false, false) => FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(file, operation) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) if !blocking => Ok(false),
        Err(e) => Err(e.into()),
    }
}
