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
    let dev = stat.st_dev;
    let wanted = (
        u64::from(rustix::fs::major(dev)),
        u64::from(rustix::fs::minor(dev)),
        stat.st_ino,
    );
    // The kernel writes the list a page at a time and other locks come
    // and go meanwhile, so one reading can miss a line: read it again.
    (0..READINGS).find_map(|_| {
        let locks = sys::proc_locks()?;
        holders_of(&locks, wanted)
    })
}

/// How many times `/proc/locks` is read before no holder is named.
const READINGS: usize = 5;

/// The holder of a `flock` on `(major, minor, inode)` in the text of
/// `/proc/locks`: another process first, then this one. A device that
/// matches nothing (a file system whose `stat` reports another device
/// than its locks do, such as btrfs subvolumes) falls back to the inode.
fn holders_of(locks: &str, (major, minor, inode): (u64, u64, u64)) -> Option<u32> {
    let held: Vec<(u32, (u64, u64), u64)> = locks.lines().filter_map(parse_flock).collect();
    let on_device =
        |&&(_, dev, ino): &&(u32, (u64, u64), u64)| dev == (major, minor) && ino == inode;
    let on_inode = |&&(_, _, ino): &&(u32, (u64, u64), u64)| ino == inode;
    let exact: Vec<_> = held.iter().filter(on_device).collect();
    let found = if exact.is_empty() {
        held.iter().filter(on_inode).collect()
    } else {
        exact
    };
    let me = std::process::id();
    let pids = found.iter().map(|&&(pid, _, _)| pid);
    pids.clone()
        .find(|&pid| pid != me)
        .or_else(|| pids.into_iter().next())
}

/// One held `flock` line: (pid, (major, minor), inode).
fn parse_flock(line: &str) -> Option<(u32, (u64, u64), u64)> {
    let mut fields = line.split_whitespace().skip(1);
    if fields.next()? != "FLOCK" {
        return None; // a POSIX or OFD lock, or a waiter ("->")
    }
    let pid = fields.nth(2)?.parse().ok()?;
    let mut id = fields.next()?.split(':');
    let major = u64::from_str_radix(id.next()?, 16).ok()?;
    let minor = u64::from_str_radix(id.next()?, 16).ok()?;
    let inode = id.next()?.parse().ok()?;
    Some((pid, (major, minor), inode))
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
