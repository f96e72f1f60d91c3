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
//!
//! The last functions take whole paths: the paths an operator chose (the
//! root, a backup file, a migrations directory), where following a link is
//! right, and the few looks at a path made only to word an error.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, RawDir, RenameFlags, Stat};
use rustix::process::{Flock, FlockOffsetType, FlockType};

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

/// Opens directory `below` (relative, of one or more names) beneath `dir`
/// in one call, refusing a link or a `..` anywhere on the way: Linux's
/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`. `None` if it
/// did not (not Linux, an older kernel, any error, or a test's fault plan
/// counting steps): the caller then walks the names one by one, which also
/// says precisely what is wrong.
pub(crate) fn open_dir_beneath(dir: BorrowedFd<'_>, below: &Path) -> Option<OwnedFd> {
    if faults::plan_active() {
        return None;
    }
    open_beneath(dir, below)
}

#[cfg(target_os = "linux")]
fn open_beneath(dir: BorrowedFd<'_>, below: &Path) -> Option<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    rustix::fs::openat2(dir, below, flags, Mode::empty(), resolve).ok()
}

#[cfg(not(target_os = "linux"))]
fn open_beneath(_dir: BorrowedFd<'_>, _below: &Path) -> Option<OwnedFd> {
    None
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

/// Opens the existing regular file `name` in `dir`, read-only, as
/// [`open_any`] does: a FIFO put in its place between a look at it and
/// this open cannot make the open wait.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    open_any(dir, name).map(File::from)
}

/// Opens `name` in `dir` read-only without waiting on a FIFO put there
/// (a database's header read: whatever is there is looked at first).
/// `O_NONBLOCK` changes nothing for a regular file or a directory; a
/// read of a FIFO opened so fails at once (`WouldBlock`) or reads nothing.
pub(crate) fn open_any(dir: BorrowedFd<'_>, name: &Path) -> io::Result<OwnedFd> {
    faults::check(Step::Open, name)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Opens file `name` in `dir` for reading and writing, creating it if
/// missing (a lock file).
pub(crate) fn open_or_create(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    faults::check(Step::Create, name)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(FILE_MODE);
    Ok(File::from(rustix::fs::openat(dir, name, flags, mode)?))
}

/// Opens file `name` in `dir` for appending (every write lands at its
/// end, in one piece), creating it if missing (the root's change log).
pub(crate) fn open_append(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    faults::check(Step::Create, name)?;
    let flags = OFlags::RDWR | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(FILE_MODE);
    Ok(File::from(rustix::fs::openat(dir, name, flags, mode)?))
}

/// Empties `file`.
pub(crate) fn truncate(file: &File, name: &Path) -> io::Result<()> {
    faults::check(Step::Write, name)?;
    file.set_len(0)
}

/// Creates file `name` in `dir`, failing if anything is there.
pub(crate) fn create_new(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    create_new_with(dir, name, FILE_MODE)
}

/// [`create_new`], readable and writable by the owner alone (`0600`): a
/// tenant's key file, sealed by the master key, is still nobody else's
/// to read.
#[cfg(feature = "encryption")]
pub(crate) fn create_new_private(dir: BorrowedFd<'_>, name: &Path) -> io::Result<File> {
    create_new_with(dir, name, 0o600)
}

fn create_new_with(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<File> {
    faults::check(Step::Create, name)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::from_raw_mode(mode),
    )?))
}

/// What `name` in `dir` is (`lstat`: a symlink is itself).
pub(crate) fn stat(dir: BorrowedFd<'_>, name: &Path) -> io::Result<Stat> {
    faults::check(Step::Stat, name)?;
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// When `name` in `dir` was made (`statx` birth time, in nanoseconds
/// since the epoch; never following a link at `name`): `None` where the
/// file system keeps no birth time.
pub(crate) fn birth_time(dir: BorrowedFd<'_>, name: &Path) -> io::Result<Option<u128>> {
    use rustix::fs::{StatxFlags, statx};
    faults::check(Step::Stat, name)?;
    let x = statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME)?;
    if !StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::BTIME) {
        return Ok(None);
    }
    let secs = u128::try_from(x.stx_btime.tv_sec).unwrap_or(0);
    Ok(Some(secs * 1_000_000_000 + u128::from(x.stx_btime.tv_nsec)))
}

/// Which file `path` names, never following a link at its end: its inode
/// number and `statx` birth time in nanoseconds (0 where the file system
/// keeps none). A file made again under the same path differs in one or
/// the other, even where the kernel gives the old inode number again.
pub(crate) fn made_as(path: &Path) -> io::Result<(u64, u128)> {
    use rustix::fs::{CWD, StatxFlags, statx};
    faults::check(Step::Stat, path)?;
    let x = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::INO | StatxFlags::BTIME,
    )?;
    let born = match StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::BTIME) {
        true => {
            u128::try_from(x.stx_btime.tv_sec).unwrap_or(0) * 1_000_000_000
                + u128::from(x.stx_btime.tv_nsec)
        }
        false => 0,
    };
    Ok((x.stx_ino, born))
}

/// What an open file is.
pub(crate) fn fstat(file: BorrowedFd<'_>) -> io::Result<Stat> {
    faults::check(Step::Stat, Path::new(""))?;
    Ok(rustix::fs::fstat(file)?)
}

/// A reader of the entries of the directory `dir` (named `name`) into
/// `buffer`: one `getdents` per buffer filled.
pub(crate) fn read_entries<'a>(
    dir: BorrowedFd<'a>,
    buffer: &'a mut Vec<u8>,
    name: &Path,
) -> io::Result<RawDir<'a, BorrowedFd<'a>>> {
    faults::check(Step::Stat, name)?;
    Ok(RawDir::new(dir, buffer.spare_capacity_mut()))
}

/// At most `limit` bytes of `file` (named `name`), as text; an error for
/// anything but a regular file (a named pipe put in a record's place
/// would read as empty), and [`NotText`] for bytes that are not UTF-8.
pub(crate) fn read_text(file: File, limit: u64, name: &Path) -> io::Result<String> {
    faults::check(Step::Read, name)?;
    if !file.metadata()?.is_file() {
        let what = "is not a regular file (something was put in its place by hand)";
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, limit), &mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + before.iter().filter(|b| **b == b'\n').count();
        io::Error::new(io::ErrorKind::InvalidData, NotText { line })
    })
}

/// What [`read_text`] found: a file whose line `line` is not UTF-8 text
/// (a record damaged, or written by something else). Its reader says
/// which record is damaged, in its own words.
#[derive(Debug)]
pub(crate) struct NotText {
    /// The first line that is not text, from 1.
    pub(crate) line: usize,
}

impl NotText {
    /// The `NotText` an error of [`read_text`] holds, if any.
    pub(crate) fn in_error(e: &io::Error) -> Option<&NotText> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<NotText>())
    }
}

impl std::fmt::Display for NotText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "its line {} is not UTF-8 text", self.line)
    }
}

impl std::error::Error for NotText {}

/// Reads into `buf` from `file` at `offset`; returns how many bytes came.
pub(crate) fn read_at(
    file: BorrowedFd<'_>,
    buf: &mut [u8],
    offset: u64,
    name: &Path,
) -> io::Result<usize> {
    faults::check(Step::Read, name)?;
    Ok(rustix::io::pread(file, buf, offset)?)
}

/// Copies all of `from`, from its start, into `to` (the template into a
/// new tenant); the kernel copies file to file where it can.
pub(crate) fn copy(from: &mut File, to: &mut File, name: &Path) -> io::Result<u64> {
    faults::check(Step::Write, name)?;
    io::Seek::rewind(from)?;
    io::copy(from, to)
}

/// Copies the first `len` bytes of `from`, from its start, into `to` (a
/// database file and its `-wal` into a backup), file to file in the
/// kernel (`copy_file_range`) where it can.
pub(crate) fn copy_prefix(
    from: &mut File,
    to: &mut File,
    len: u64,
    name: &Path,
) -> io::Result<u64> {
    faults::check(Step::Write, name)?;
    io::Seek::rewind(from)?;
    io::copy(&mut io::Read::take(from, len), to)
}

/// Writes all of `bytes` to `file`.
pub(crate) fn write_all(file: &mut File, bytes: &[u8], name: &Path) -> io::Result<()> {
    faults::check(Step::Write, name)?;
    io::Write::write_all(file, bytes)
}

/// Writes all of `bytes` to `file` at `offset`.
pub(crate) fn write_at(file: &File, bytes: &[u8], offset: u64, name: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    faults::check(Step::Write, name)?;
    file.write_all_at(bytes, offset)
}

/// The process's soft limit on open descriptors; `None` when unlimited.
pub(crate) fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The kernel's list of file locks (`/proc/locks`), read when a wait on
/// a lock file gives up, to name its holder; `None` where there is none.
pub(crate) fn proc_locks() -> Option<String> {
    faults::check(Step::Stat, Path::new("/proc/locks")).ok()?;
    std::fs::read_to_string("/proc/locks").ok()
}

/// The calling thread's id in the kernel.
pub(crate) fn thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Whether the kernel still lists thread `id` of this process (it is gone
/// from `/proc/self/task` once it has wholly ended); `false` where `/proc`
/// is not mounted. Not a step of the fault seam: no tenant's file.
pub(crate) fn thread_is_listed(id: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/task/{id}")).is_ok()
}

/// A file the kernel serves (`/proc/PID/cmdline`), whole; `None` where it
/// cannot be read.
pub(crate) fn kernel_file(path: &Path) -> Option<Vec<u8>> {
    faults::check(Step::Read, path).ok()?;
    std::fs::read(path).ok()
}

/// Writes what a lock's holder is doing (`word`) at the start of its lock
/// file, for a waiter that gives up to read. Best effort: a full disk or
/// an injected fault leaves the file empty, which reads as "an
/// operation".
pub(crate) fn describe_lock(file: &File, word: &str, name: &Path) {
    use std::os::unix::fs::FileExt;
    if faults::check(Step::Write, name).is_ok() {
        let line = format!("{word}\n");
        let _ = file.write_all_at(line.as_bytes(), 0);
    }
}

/// The first line of a lock file (what its holder said it is doing), or
/// nothing if it cannot be read.
pub(crate) fn lock_description(file: &File, name: &Path) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64];
    if faults::check(Step::Stat, name).is_err() {
        return String::new();
    }
    let read = file.read_at(&mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..read]);
    text.lines().next().unwrap_or("").to_owned()
}

/// Flushes `file` (a file or a directory) to stable storage.
pub(crate) fn sync(file: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Sync, name)?;
    Ok(rustix::fs::fsync(file)?)
}

/// Starts writing `file`'s dirty pages back without waiting for them
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`, which on Linux starts the
/// writeback from the caller's thread): a later sync then waits for less,
/// and writers on several threads submit their writes in parallel. Only a
/// hint: what makes the file durable is still a sync.
pub(crate) fn start_writeback(file: BorrowedFd<'_>) {
    // A failure only means the sync does all the work.
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

/// Flushes the whole file system `dir` is on (`syncfs`): every file and
/// directory written on it, in one journal commit. Errors met writing any
/// of them back are reported (Linux 5.8 and later) once to each open
/// file, those since it was opened: a descriptor through which another
/// sync was already told says nothing more, so open one anew for each
/// sync that must hear of them.
pub(crate) fn sync_file_system(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    faults::check(Step::Sync, name)?;
    Ok(rustix::fs::syncfs(dir)?)
}

/// Whether [`sync_file_system`] reports the write errors met since its
/// descriptor was opened: Linux 5.8 and later. Before, `syncfs` flushes
/// but reports only its own failure, so a caller that must hear of a
/// failed write syncs each file (`fsync` reports them).
pub(crate) fn syncfs_reports_errors() -> bool {
    static REPORTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !faults::syncfs_silenced() && *REPORTS.get_or_init(|| kernel_at_least((5, 8)))
}

/// Whether the running kernel's release (`uname -r`) is `at_least`.
fn kernel_at_least(at_least: (u32, u32)) -> bool {
    let uname = rustix::system::uname();
    release_at_least(&uname.release().to_string_lossy(), at_least)
}

/// Whether kernel release `release` (`5.4.0-150-generic`) is `at_least`;
/// one that cannot be read is taken as too old (syncing each file is
/// always safe).
fn release_at_least(release: &str, at_least: (u32, u32)) -> bool {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= at_least,
        _ => false,
    }
}

/// Links `from` as `to`, both in `dir`; fails if `to` exists.
pub(crate) fn link(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    link_between(dir, from, dir, to)
}

/// Links `from` in `from_dir` as `to` in `to_dir` (one file system);
/// fails if `to` exists.
pub(crate) fn link_between(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
) -> io::Result<()> {
    faults::check(Step::Link, to)?;
    Ok(rustix::fs::linkat(
        from_dir,
        from,
        to_dir,
        to,
        AtFlags::empty(),
    )?)
}

/// Renames `from` to `to`, both in `dir`, replacing `to`.
pub(crate) fn rename(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    faults::check(Step::Rename, to)?;
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// Renames `from` in `from_dir` to `to` in `to_dir`, replacing `to`.
pub(crate) fn rename_between(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
) -> io::Result<()> {
    faults::check(Step::Rename, to)?;
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
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
    faults::check(Step::Swap, b)?;
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

/// Lets go of this descriptor's `flock` on `file`.
pub(crate) fn unlock(file: &impl AsFd, name: &Path) -> io::Result<()> {
    faults::check(Step::Lock, name)?;
    Ok(rustix::fs::flock(file, FlockOperation::Unlock)?)
}

/// Whether another process holds a POSIX record lock that would block a
/// write lock on `length` bytes at `start` of `file` (SQLite's locks):
/// `Some` with the holder's process id if the kernel says it.
pub(crate) fn lock_holder(
    file: &impl AsFd,
    start: u64,
    length: u64,
    name: &Path,
) -> io::Result<Option<Option<u32>>> {
    faults::check(Step::Lock, name)?;
    let wanted = Flock {
        start,
        length,
        pid: None,
        typ: FlockType::WriteLock,
        offset_type: FlockOffsetType::Set,
    };
    let held = rustix::process::fcntl_getlk(file, &wanted)?;
    Ok(held.map(|lock| lock.pid.map(|p| p.as_raw_nonzero().get().unsigned_abs())))
}

/// What `path` names, not following a link at its end (`lstat`).
pub(crate) fn symlink_metadata(path: &Path) -> io::Result<Metadata> {
    faults::check(Step::Stat, path)?;
    fs::symlink_metadata(path)
}

/// Where the link `path` points (the root's own, to say where it leads).
pub(crate) fn read_link(path: &Path) -> io::Result<std::path::PathBuf> {
    faults::check(Step::Stat, path)?;
    fs::read_link(path)
}

/// What `path` names, following links (a backup file the operator names).
pub(crate) fn metadata(path: &Path) -> io::Result<Metadata> {
    faults::check(Step::Stat, path)?;
    fs::metadata(path)
}

/// The absolute path `path` names, every link on the way resolved (where
/// a backup would land, to compare with the root).
pub(crate) fn canonicalize(path: &Path) -> io::Result<std::path::PathBuf> {
    faults::check(Step::Stat, path)?;
    fs::canonicalize(path)
}

/// Opens `path` read-only, following links.
pub(crate) fn open_path(path: &Path) -> io::Result<File> {
    faults::check(Step::Open, path)?;
    // Never waits on a FIFO put at the path (see `open_any`).
    let nonblock = OFlags::NONBLOCK.bits().cast_signed();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblock)
        .open(path)
}

/// Makes directory `path` and its missing parents, following links: the
/// root, or a backup's directory, as the operator gave them.
pub(crate) fn make_dir_all(path: &Path) -> io::Result<()> {
    faults::check(Step::Mkdir, path)?;
    fs::create_dir_all(path)
}

/// Whether `path` is on a file system mounted read-only (`false` when
/// that cannot be told).
pub(crate) fn on_read_only_mount(path: &Path) -> bool {
    faults::check(Step::Stat, path).is_ok()
        && rustix::fs::statvfs(path)
            .is_ok_and(|fs| fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Bytes an unprivileged writer can still use on the file system holding
/// `path` (`statvfs`).
pub(crate) fn available_bytes(path: &Path) -> io::Result<u64> {
    faults::check(Step::Stat, path)?;
    let fs = rustix::fs::statvfs(path)?;
    Ok(fs.f_bavail.saturating_mul(fs.f_frsize))
}

/// The entries of directory `path` (a migrations directory), following links.
pub(crate) fn read_dir_path(path: &Path) -> io::Result<fs::ReadDir> {
    faults::check(Step::Stat, path)?;
    fs::read_dir(path)
}

/// What `path` gives, at most `limit` bytes (a master key file, which may
/// be a pipe the caller set up: `<(vault read ...)`), kept in memory that
/// is wiped when dropped. Opened without waiting (a named pipe with no
/// writer hung every command for good; `/dev/zero` took 3 GB in 4 s: an
/// outside probe); a named pipe's writer is waited for, up to
/// [`WRITER_WAIT`]. The error never holds what was read (a key that is
/// not text would be printed in it). Also says whether `path` is a
/// regular file any user may read (its mode's read bit for others),
/// which a key file should not be; one its group may read is a
/// deliberate set-up (`root:service 0640`) and is not said.
#[cfg(feature = "encryption")]
pub(crate) fn read_secret(
    path: &Path,
    limit: usize,
) -> io::Result<(zeroize::Zeroizing<String>, Option<u32>)> {
    faults::check(Step::Read, path)?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let mode = rustix::fs::fstat(&fd)?.st_mode;
    let file_type = rustix::fs::FileType::from_raw_mode(mode);
    if file_type == rustix::fs::FileType::Fifo {
        wait_for_writer(&fd)?;
    }
    let open_to_others = (file_type == rustix::fs::FileType::RegularFile && mode & 0o004 != 0)
        .then_some(mode & 0o7777);
    // Blocking again: a writer that has not written yet is waited for.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(limit + 1));
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    io::Read::read_to_end(&mut io::Read::take(File::from(fd), most), &mut bytes)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if bytes.len() > limit {
        return Err(invalid(format!("it holds more than {limit} bytes")));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok((zeroize::Zeroizing::new(text.to_owned()), open_to_others)),
        Err(_) => Err(invalid("it is not text".to_owned())),
    }
}

/// How long a named pipe given as a master key file is waited on for a
/// writer.
#[cfg(feature = "encryption")]
const WRITER_WAIT: Duration = Duration::from_secs(30);

/// Waits until the named pipe `fd` (opened without waiting) has something
/// to read, or its writer came and went, for [`WRITER_WAIT`] at most: a
/// read before its writer opened it would find its end at once.
#[cfg(feature = "encryption")]
fn wait_for_writer(fd: &OwnedFd) -> io::Result<()> {
    match wait_readable(fd.as_fd(), WRITER_WAIT)? {
        false => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "it is a named pipe that nothing wrote to within 30 s",
        )),
        true => Ok(()),
    }
}

/// Waits until `fd` is readable, `within` at most (`false`: it was not):
/// a pipe with something to read, or a pidfd whose process has ended.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, within: Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: i64::try_from(within.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(within.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    Ok(poll(&mut fds, Some(&timeout))? > 0)
}

/// The whole of the text file `path` (a migration's SQL), links followed, if it is a regular file of at most `limit`
/// bytes. Opened without waiting, so a named pipe put there is refused
/// instead of blocking the command for good, and a device (a link to
/// `/dev/zero`) is refused instead of read until memory runs out (an
/// outside probe saw both).
pub(crate) fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    faults::check(Step::Read, path)?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = "is not a regular file (a named pipe, a device or a directory)";
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    if meta.len() > limit {
        let why = format!("is larger than {limit} bytes, the most read");
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, limit), &mut text)?;
    Ok(text)
}

/// Whether this process may write in the directory `dir`: `EROFS` on a
/// read-only file system, `EACCES` without permission (`access(W_OK)`).
/// Only a look ahead, for a long run that would otherwise find out at its
/// first write, after its hardest work: each write still says for itself.
pub(crate) fn check_writable(dir: &Path) -> io::Result<()> {
    Ok(rustix::fs::access(dir, rustix::fs::Access::WRITE_OK)?)
}

/// Whether anything is at `path` (following links; `false` when that
/// cannot be told).
pub(crate) fn exists(path: &Path) -> bool {
    metadata(path).is_ok()
}

/// Whether `path` is a directory (following links).
pub(crate) fn is_dir(path: &Path) -> bool {
    metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Makes a new directory under the system's temporary directory, its name
/// starting with `prefix` (a test's scratch root); removed with all it
/// holds when the value is dropped.
#[cfg(feature = "testing")]
pub(crate) fn make_temp_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    faults::check(Step::Mkdir, Path::new(prefix))?;
    tempfile::Builder::new().prefix(prefix).tempdir()
}

/// Makes a new directory in `parent`, its name `prefix` and 12 random
/// characters, made exclusively with mode 0700 (a rebuild's private
/// staging directory: nobody else can have planted or can read it);
/// removed with all it holds when the value is dropped.
pub(crate) fn make_private_dir_in(parent: &Path, prefix: &str) -> io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    faults::check(Step::Mkdir, parent)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .rand_bytes(12)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
}

/// Removes directory `path` and everything in it (a test's scratch root).
#[cfg(feature = "testing")]
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    faults::check(Step::Unlink, path)?;
    fs::remove_dir_all(path)
}

/// The name of process `pid` (`/proc/PID/comm`), if it can be read: an
/// error names the process that holds a tenant ("litestream").
pub(crate) fn process_name(pid: u32) -> Option<String> {
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim_end().to_owned()).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::release_at_least;

    #[test]
    fn kernel_releases_are_compared_by_major_then_minor() {
        let since_5_8 = |release| release_at_least(release, (5, 8));
        assert!(since_5_8("5.8.0"));
        assert!(since_5_8("5.15.0-91-generic"));
        assert!(since_5_8("6.1.0-18-amd64"));
        assert!(since_5_8("6.18.44-fc-v1252"));
        assert!(!since_5_8("5.4.0-150-generic"));
        assert!(!since_5_8("4.18.0-553.el8_10.x86_64"));
        assert!(!since_5_8("4.19.0"));
        assert!(!since_5_8(""));
        assert!(!since_5_8("unknown"));
    }
}
