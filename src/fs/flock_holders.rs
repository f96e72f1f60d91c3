//! Who holds a `flock`, as the kernel lists it in `/proc/locks`.
//!
//! `flock` locks belong to open file descriptions, and `F_GETLK` does not
//! see them; the kernel lists every lock, with the pid of the process that
//! took it, in `/proc/locks`:
//!
//! ```text
//! 1: FLOCK  ADVISORY  WRITE 4242 fd:01:131074 0 EOF
//! 2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:131074 0 EOF
//! ```
//!
//! (device major and minor in hex, the inode in decimal; `->` marks a
//! waiter, not a holder). Read only when a wait gives up, to name the
//! holder; where the file is missing (not Linux) no pid is named.

use std::os::fd::BorrowedFd;

use crate::fs::sys;

/// The pid of a process holding a `flock` on the file or directory `fd`,
/// if the kernel lists one (another than this process where it can).
pub(crate) fn flock_holder(fd: BorrowedFd<'_>) -> Option<u32> {
    let stat = sys::fstat(fd).ok()?;
    let wanted = file_key(stat.st_dev, stat.st_ino);
    // The kernel writes the list a page at a time and other locks come
    // and go meanwhile, so one reading can miss a line: read it again.
    (0..READINGS).find_map(|_| {
        let locks = sys::proc_locks()?;
        holders_of(&locks, wanted)
    })
}

/// How many times `/proc/locks` is read before no holder is named.
pub(super) const READINGS: usize = 5;

/// The holder of a `flock` on `(major, minor, inode)` in the text of
/// `/proc/locks`: another process first, then this one. A device that
/// matches nothing (a file system whose `stat` reports another device
/// than its locks do, such as btrfs subvolumes) falls back to the inode.
fn holders_of(locks: &str, file: FileKey) -> Option<u32> {
    let flocks = locks.lines().filter_map(KernelLock::parse);
    holder_among(flocks.filter(|l| l.kind == "FLOCK"), file)
}

/// A file as `/proc/locks` names it: (major, minor, inode).
pub(super) type FileKey = (u64, u64, u64);

/// The `(major, minor, inode)` of `stat`'s device and inode.
pub(super) fn file_key(dev: u64, inode: u64) -> FileKey {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    (u64::from(major), u64::from(minor), inode)
}

/// The pid holding one of `held` on `file` (see [`holders_of`]): another
/// process's first, then this one's; by the inode alone when no lock
/// names `file`'s device.
pub(super) fn holder_among<'a>(
    held: impl Iterator<Item = KernelLock<'a>>,
    (major, minor, inode): FileKey,
) -> Option<u32> {
    let on_inode: Vec<KernelLock<'a>> = held.filter(|l| l.inode == inode).collect();
    let exact: Vec<&KernelLock<'a>> = on_inode
        .iter()
        .filter(|l| l.device == (major, minor))
        .collect();
    let found = match exact.is_empty() {
        true => on_inode.iter().collect(),
        false => exact,
    };
    let me = std::process::id();
    let pids = found.iter().map(|l| l.pid);
    pids.clone()
        .find(|&pid| pid != me)
        .or_else(|| pids.into_iter().next())
}

/// One held lock of `/proc/locks` (a waiter's line, `->`, is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KernelLock<'a> {
    /// `FLOCK`, `POSIX` (SQLite's `fcntl` locks), `OFDLCK`, `LEASE`.
    pub(super) kind: &'a str,
    /// An exclusive lock (`WRITE`), not a shared one.
    pub(super) write: bool,
    pub(super) pid: u32,
    pub(super) device: (u64, u64),
    pub(super) inode: u64,
    /// The first byte locked.
    pub(super) start: u64,
}

impl<'a> KernelLock<'a> {
    /// `1: POSIX  ADVISORY  WRITE 4242 fd:01:131074 120 120`.
    pub(super) fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split_whitespace().skip(1);
        let kind = fields.next().filter(|&kind| kind != "->")?;
        let write = fields.nth(1)? == "WRITE";
        // An OFD lock's is -1, and one taken in another pid namespace 0:
        // no process this one can name.
        let pid = fields.next()?.parse().ok().filter(|&pid| pid != 0)?;
        let mut id = fields.next()?.split(':');
        let major = u64::from_str_radix(id.next()?, 16).ok()?;
        let minor = u64::from_str_radix(id.next()?, 16).ok()?;
        let inode = id.next()?.parse().ok()?;
        let start = fields.next()?.parse().ok()?;
        Some(KernelLock {
            kind,
            write,
            pid,
            device: (major, minor),
            inode,
            start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  READ 11 fd:01:77 1073741826 1073742335
2: FLOCK  ADVISORY  WRITE 4242 fd:01:131074 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:131074 0 EOF
3: FLOCK  ADVISORY  READ 5151 00:2b:45 0 EOF
";

    #[test]
    fn names_the_holder_not_a_waiter_nor_a_posix_lock() {
        assert_eq!(holders_of(LOCKS, (0xfd, 1, 131074)), Some(4242));
        assert_eq!(holders_of(LOCKS, (0, 0x2b, 45)), Some(5151));
        assert_eq!(holders_of(LOCKS, (0xfd, 1, 77)), None);
        // Another device reporting: the inode decides.
        assert_eq!(holders_of(LOCKS, (0, 0x30, 45)), Some(5151));
        assert_eq!(holders_of(LOCKS, (0xfd, 1, 9)), None);
    }

    #[test]
    fn finds_a_lock_this_process_holds() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("x.lock")).unwrap();
        let bare = std::fs::File::open(dir.path().join("x.lock")).unwrap();
        assert_eq!(flock_holder(std::os::fd::AsFd::as_fd(&bare)), None);
        file.lock().unwrap();
        if std::path::Path::new("/proc/locks").exists() {
            let held = flock_holder(std::os::fd::AsFd::as_fd(&bare));
            assert_eq!(held, Some(std::process::id()));
        }
    }
}
