//! A directory's entries as a walk reads them, with `getdents` into
//! buffers it reuses: no allocation per entry, which at a million tenants
//! is a cost the walk would otherwise add to every fleet run.
//!
//! Entries are streamed a `getdents` batch at a time, or, for a directory
//! of tenants' own directories (a bucket of the default layout), read
//! whole first, so that the tenants being destroyed are known before their
//! directories come. A destroy marks its tenant with `.NAME.destroying`
//! beside the tenant's directory before it touches anything else, and
//! removes the mark last (see `storage/lifecycle/fence.rs`): a listing looks
//! behind a mark, so it never shows a tenant half destroyed (a fleet run's
//! walk shows one whose destroy still runs, and its read waits for it).
//!
//! What is read at once (a bucket read whole, or one batch) is handed out
//! in inode order, not in the directory's own (hash) order. Files made one
//! after another get neighbouring inodes, and a fleet run opens each
//! tenant's file: in inode order it meets the inode table, and the kernel's
//! copies of it, one stretch after another (issue #29 item 5, measured in
//! `BENCHMARKS.md`, "Inode order").

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::FileType;

use crate::fs::siblings::{FENCE_SUFFIX, RESTORE_SUFFIX};
use crate::fs::sys;

/// Bytes one `getdents` call may fill: a few hundred entries.
const BATCH_BYTES: usize = 32 * 1024;

/// One entry, its name kept in [`Entries::names`].
struct Item {
    start: usize,
    end: usize,
    /// As `getdents` gave it; [`FileType::Unknown`] on file systems that
    /// do not say.
    kind: FileType,
    /// Its inode number, as `getdents` gave it: the order it is handed out
    /// in (see [`Entries::advance`]).
    inode: u64,
}

/// The entries of one open directory.
pub(crate) struct Entries {
    dir: Arc<OwnedFd>,
    /// What `getdents` fills, reused for every batch.
    buffer: Vec<u8>,
    /// The names of `items`, one after another.
    names: Vec<u8>,
    items: Vec<Item>,
    /// The next item to hand out.
    next: usize,
    /// `getdents` said there is no more (or failed: a failed directory is
    /// not read further).
    ended: bool,
    /// The names marked as being destroyed (read whole only; usually none).
    destroying: Vec<OsString>,
    /// The names marked as being replaced (the same).
    replacing: Vec<OsString>,
}

/// An entry of [`Entries`]: its name and what it is.
pub(crate) struct Entry<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    kind: FileType,
    inode: u64,
}

impl Entry<'_> {
    /// The entry's name.
    pub(crate) fn name(&self) -> &OsStr {
        self.name
    }

    /// The entry's inode number, as the directory listing gives it.
    pub(crate) fn inode(&self) -> u64 {
        self.inode
    }

    /// What the entry is, never following a link: from the directory
    /// listing, or, where the file system does not say, from a `stat`.
    pub(crate) fn file_type(&self) -> io::Result<FileType> {
        if self.kind != FileType::Unknown {
            return Ok(self.kind);
        }
        let stat = sys::stat(self.dir, Path::new(self.name))?;
        Ok(FileType::from_raw_mode(stat.st_mode))
    }
}

impl Entries {
    /// The entries of the directory open as `dir`, streamed.
    pub(crate) fn streamed(dir: Arc<OwnedFd>) -> Self {
        Entries {
            dir,
            buffer: Vec::with_capacity(BATCH_BYTES),
            names: Vec::new(),
            items: Vec::new(),
            next: 0,
            ended: false,
            destroying: Vec::new(),
            replacing: Vec::new(),
        }
    }

    /// Every entry of the directory open as `dir`, read at once, the
    /// marked names noted.
    ///
    /// # Errors
    ///
    /// The directory cannot be read.
    pub(crate) fn read_whole(dir: Arc<OwnedFd>) -> io::Result<Self> {
        let mut entries = Entries::streamed(dir);
        while !entries.ended {
            entries.read_batch()?;
        }
        entries.in_inode_order();
        let marks = |suffix| {
            (entries.items.iter())
                .filter_map(|item| {
                    marked(
                        OsStr::from_bytes(&entries.names[item.start..item.end]),
                        suffix,
                    )
                })
                .collect()
        };
        entries.destroying = marks(FENCE_SUFFIX);
        entries.replacing = marks(RESTORE_SUFFIX);
        Ok(entries)
    }

    /// The directory, open.
    pub(crate) fn dir(&self) -> &Arc<OwnedFd> {
        &self.dir
    }

    /// Whether the entry `name` is marked as being destroyed.
    pub(crate) fn being_destroyed(&self, name: &OsStr) -> bool {
        self.destroying.iter().any(|marked| marked == name)
    }

    /// Whether the entry `name` is marked as being replaced (a restore
    /// with replace, or a re-key, running or dead).
    pub(crate) fn being_replaced(&self, name: &OsStr) -> bool {
        self.replacing.iter().any(|marked| marked == name)
    }

    /// Moves to the next entry and returns its index for [`Entries::get`];
    /// `None` at the end.
    ///
    /// # Errors
    ///
    /// The directory cannot be read further (it then ends).
    pub(crate) fn advance(&mut self) -> Option<io::Result<usize>> {
        while self.next == self.items.len() {
            if self.ended {
                return None;
            }
            // A streamed directory keeps one batch of names at a time.
            self.names.clear();
            self.items.clear();
            self.next = 0;
            if let Err(e) = self.read_batch() {
                return Some(Err(e));
            }
            self.in_inode_order();
        }
        self.next += 1;
        Some(Ok(self.next - 1))
    }

    /// The entry [`Entries::advance`] returned `index` for.
    pub(crate) fn get(&self, index: usize) -> Option<Entry<'_>> {
        let item = self.items.get(index)?;
        Some(Entry {
            dir: self.dir.as_fd(),
            name: OsStr::from_bytes(self.names.get(item.start..item.end)?),
            kind: item.kind,
            inode: item.inode,
        })
    }

    /// Puts the entries read (and not yet handed out) in inode order.
    fn in_inode_order(&mut self) {
        self.items[self.next..].sort_unstable_by_key(|item| item.inode);
    }

    /// Appends one `getdents` batch of entries (`.` and `..` left out).
    /// A batch is taken whole: a `RawDir` dropped with entries still in
    /// its buffer would lose them.
    fn read_batch(&mut self) -> io::Result<()> {
        let read = sys::read_entries(self.dir.as_fd(), &mut self.buffer, Path::new(""));
        // A directory that cannot be read is not read again: a walk that
        // goes on past the error (a sweep) would otherwise ask forever.
        let mut raw = read.inspect_err(|_| self.ended = true)?;
        loop {
            match raw.next() {
                None => {
                    self.ended = true;
                    return Ok(());
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Err(e.into());
                }
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        let start = self.names.len();
                        self.names.extend_from_slice(name);
                        let (end, kind) = (self.names.len(), listed(entry.file_type()));
                        let inode = entry.ino();
                        self.items.push(Item {
                            start,
                            end,
                            kind,
                            inode,
                        });
                    }
                }
            }
            if raw.is_buffer_empty() {
                return Ok(());
            }
        }
    }
}

/// The type `getdents` gave: as it gave it, but in a test that makes
/// this thread's listings give none, as some file systems do
/// ([`unlisted_types`]).
#[inline(always)]
fn listed(kind: FileType) -> FileType {
    #[cfg(test)]
    if UNLISTED_TYPES.get() {
        return FileType::Unknown;
    }
    kind
}

#[cfg(test)]
thread_local! {
    static UNLISTED_TYPES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's directory listings give no entry's type (as XFS
/// without `ftype` and some network file systems do) while `f` runs.
#[cfg(test)]
pub(crate) fn unlisted_types<T>(f: impl FnOnce() -> T) -> T {
    UNLISTED_TYPES.set(true);
    let result = f();
    UNLISTED_TYPES.set(false);
    result
}

/// The name `name` marks (as being destroyed, or replaced by a restore
/// or a re-key: `suffix`), if it is such a mark.
fn marked(name: &OsStr, suffix: &str) -> Option<OsString> {
    let bytes = name.as_bytes();
    let hidden = bytes.strip_prefix(b".")?;
    let inner = hidden.strip_suffix(suffix.as_bytes())?;
    (!inner.is_empty()).then(|| OsStr::from_bytes(inner).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};

    #[test]
    fn marks_name_their_tenant() {
        let destroying = |name| marked(OsStr::new(name), FENCE_SUFFIX);
        assert_eq!(destroying(".acme.destroying"), Some("acme".into()));
        assert_eq!(destroying(".x.tmp-1.destroying"), Some("x.tmp-1".into()));
        assert_eq!(destroying("acme.destroying"), None);
        assert_eq!(destroying(".destroying"), None);
        assert_eq!(destroying(".acme.lock"), None);
        assert_eq!(destroying(".acme.restoring"), None);
        let replacing = |name| marked(OsStr::new(name), RESTORE_SUFFIX);
        assert_eq!(replacing(".acme.restoring"), Some("acme".into()));
        assert_eq!(replacing(".acme.destroying"), None);
    }

    fn open(path: &std::path::Path) -> Arc<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Arc::new(rustix::fs::open(path, flags, Mode::empty()).unwrap())
    }

    fn names(mut entries: Entries) -> Vec<(String, FileType)> {
        let mut out = Vec::new();
        while let Some(index) = entries.advance() {
            let entry = entries.get(index.unwrap()).unwrap();
            let name = entry.name().to_str().unwrap().to_owned();
            out.push((name, entry.file_type().unwrap()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Many batches, streamed or whole, give every entry once, with its
    /// type, and never `.` or `..`.
    #[test]
    fn every_entry_comes_once_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(200);
        let mut expected = Vec::new();
        for i in 0..600 {
            let name = format!("{long}{i:04}");
            std::fs::write(dir.path().join(&name), b"").unwrap();
            expected.push((name, FileType::RegularFile));
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("sub", dir.path().join("link")).unwrap();
        expected.push(("link".to_owned(), FileType::Symlink));
        expected.push(("sub".to_owned(), FileType::Directory));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        const { assert!(600 * 200 > BATCH_BYTES) };
        assert_eq!(names(Entries::streamed(open(dir.path()))), expected);
        let whole = Entries::read_whole(open(dir.path())).unwrap();
        assert_eq!(names(whole), expected);
    }

    /// A directory read whole hands its entries out by inode number, not
    /// in the directory's own order (hash order on ext4, newest first on
    /// a tmpfs), and a streamed one each batch so.
    #[test]
    fn entries_come_in_inode_order() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("t{i:04}")), b"").unwrap();
        }
        let inodes = |mut entries: Entries| {
            let mut out = Vec::new();
            while let Some(index) = entries.advance() {
                let name = entries.get(index.unwrap()).unwrap().name().to_owned();
                out.push(std::fs::metadata(dir.path().join(name)).unwrap().ino());
            }
            out
        };
        let whole = inodes(Entries::read_whole(open(dir.path())).unwrap());
        assert_eq!(whole.len(), 300);
        assert!(whole.is_sorted(), "{whole:?}");
        // 300 short names fit one batch.
        let streamed = inodes(Entries::streamed(open(dir.path())));
        assert_eq!(streamed, whole);
    }

    #[test]
    fn a_whole_read_notes_the_marks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("acme")).unwrap();
        std::fs::write(dir.path().join(".acme.destroying"), b"").unwrap();
        let whole = Entries::read_whole(open(dir.path())).unwrap();
        assert!(whole.being_destroyed(OsStr::new("acme")));
        assert!(!whole.being_destroyed(OsStr::new("globex")));
    }
}
