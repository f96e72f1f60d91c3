//! The root's change log: how a lifecycle operation in one process tells
//! every other process's watcher which tenant it changed.
//!
//! `ROOT/.tenanted/changes` starts with a header line that carries an
//! epoch, followed by one line per change: the tenant's name. A destroy or
//! replacing restore appends its tenant once the database is fenced off,
//! a migration or rollback once the new version is committed. A watcher
//! keeps the log open and remembers how far it has read, so a pass with
//! nothing new costs one `fstat` and one read of the header, however many
//! pools it has cached; when something was appended it reads the new
//! lines and looks only at those tenants' pools.
//!
//! The log is kept small: a writer that finds it past [`LIMIT`] empties it
//! and writes a header with the next epoch. A reader that finds another
//! epoch (or a log shorter than where it stopped) cannot know what it
//! missed and looks at every cached pool once. Appends take a shared
//! `flock` on the log and emptying an exclusive one, so no line lands in
//! the middle of a rewrite; both are tried for at most [`LOCK_WAIT`] with
//! the seam's `Patience`, never waited for without a bound.
//!
//! Announcing is best effort: an operation never fails because its
//! announcement could not be written (it is logged). What the log does not
//! say, and what other programs do behind tenanted's back (the `sqlite3`
//! shell setting `user_version`, a file moved by hand), the watcher's slow
//! sweep finds (see `pool/watcher.rs`). The log is not synced: only live
//! processes read it, and they read the page cache. Its system calls go
//! through `fs/sys.rs` like every other; a fault injected in an
//! announcement leaves the operation's outcome as it was.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use crate::fs::Patience;
use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::INTERNAL_DIR;

/// The log's file name in `.tenanted/`.
const LOG: &str = "changes";
/// The same, as the seam takes it.
fn log_name() -> &'static Path {
    Path::new(LOG)
}
/// Past this many bytes the next writer empties the log.
const LIMIT: u64 = 1 << 20;
/// The longest an announcement waits for the log's lock.
const LOCK_WAIT: Duration = Duration::from_millis(200);
/// The header's fixed text before the epoch (16 hex digits, newline).
const MAGIC: &[u8] = b"tenanted change log, epoch ";
const HEADER_LEN: usize = MAGIC.len() + 17;

/// Tells every watcher on `root` that `tenant` changed. Failures are
/// logged, not returned (see the module's note).
pub(crate) fn announce(root: &Path, tenant: &TenantName) {
    if let Err(e) = append(root, tenant) {
        tracing::warn!(tenant = %tenant, root = %root.display(), error = %e,
            "could not announce a change to other processes; their watchers find it on their slower sweep");
    }
}

fn append(root: &Path, tenant: &TenantName) -> io::Result<()> {
    let dir = Dir::make(root, &root.join(INTERNAL_DIR))?;
    let mut log = sys::open_append(dir.fd(), log_name())?;
    lock(&log, true)?;
    if len(&log)? == 0 {
        // New (or emptied by a writer that died half way): give it a header.
        rewrite(&mut log, 0)?;
        lock(&log, true)?;
    }
    let mut line = Vec::with_capacity(tenant.as_str().len() + 1);
    line.extend_from_slice(tenant.as_str().as_bytes());
    line.push(b'\n');
    // One write with O_APPEND: lines from several processes never mix.
    sys::write_all(&mut log, &line, log_name())?;
    if len(&log)? > LIMIT {
        let epoch = read_header(&log)?.unwrap_or(0);
        rewrite(&mut log, epoch.wrapping_add(1))?;
    }
    Ok(())
}

/// Empties the log under its exclusive lock and writes a header with
/// `epoch`, unless another writer did so meanwhile; then unlocks it.
fn rewrite(log: &mut File, epoch: u64) -> io::Result<()> {
    lock(log, false)?;
    let len = len(log)?;
    // Another writer emptied it first (len 0 handled as new).
    if len == 0 || len > LIMIT {
        sys::truncate(log, log_name())?;
        sys::write_all(log, &header(epoch), log_name())?;
    }
    sys::unlock(log, log_name())
}

/// The log's length in bytes.
fn len(log: &File) -> io::Result<u64> {
    Ok(sys::fstat(log.as_fd())?.st_size as u64)
}

fn header(epoch: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(format!("{epoch:016x}\n").as_bytes());
    h
}

/// The epoch in `log`'s header; `None` if it has none (empty, or being
/// rewritten).
fn read_header(log: &File) -> io::Result<Option<u64>> {
    let mut buf = [0u8; HEADER_LEN];
    let n = sys::read_at(log.as_fd(), &mut buf, 0, log_name())?;
    if n < HEADER_LEN || !buf.starts_with(MAGIC) || buf[HEADER_LEN - 1] != b'\n' {
        return Ok(None);
    }
    let digits = std::str::from_utf8(&buf[MAGIC.len()..HEADER_LEN - 1]).ok();
    Ok(digits.and_then(|d| u64::from_str_radix(d, 16).ok()))
}

/// Takes a shared (or exclusive) `flock` on `log`, trying with the
/// seam's bounded wait (pauses doubling from 1 ms to 20 ms) until it is
/// taken or [`LOCK_WAIT`] passes.
fn lock(log: &File, shared: bool) -> io::Result<()> {
    let taken = Patience::new(LOCK_WAIT)
        .retry(|| Ok(sys::flock(log, shared, false, log_name())?.then_some(())))?;
    taken.ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))
}

/// What a reader learnt from the log since its last look.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum News {
    /// Nothing was appended.
    Nothing,
    /// These tenants changed.
    Tenants(Vec<TenantName>),
    /// The log was emptied, replaced or is unreadable since the last look:
    /// anything may have changed.
    Anything,
}

/// A watcher's view of the log: open, and how far it has read.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    log: Option<File>,
    epoch: Option<u64>,
    read_to: u64,
}

impl ChangeLog {
    /// Opens `root`'s log and starts reading at its end: what was
    /// announced before is older than any pool the caller has yet.
    pub(crate) fn open(root: &Path) -> ChangeLog {
        let mut log = ChangeLog {
            log: open_log(root),
            epoch: None,
            read_to: 0,
        };
        if let Some(file) = &log.log {
            log.epoch = read_header(file).ok().flatten();
            log.read_to = len(file).unwrap_or(0);
        }
        log
    }

    /// Whether the log could be opened (it is missing until the first
    /// announcement; then [`news`](Self::news) opens it).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.log.is_some()
    }

    /// What was announced since the last look.
    pub(crate) fn news(&mut self, root: &Path) -> News {
        if self.log.is_none() {
            // Made since the last look: read it from its first line.
            let Some(file) = open_log(root) else {
                return News::Nothing;
            };
            self.log = Some(file);
            (self.epoch, self.read_to) = (None, 0);
        }
        match self.read_news() {
            Ok(news) => news,
            Err(e) => {
                tracing::debug!(error = %e, "change log unreadable; looking at every pool");
                self.log = None;
                News::Anything
            }
        }
    }

    fn read_news(&mut self) -> io::Result<News> {
        let Some(file) = &self.log else {
            return Ok(News::Anything);
        };
        let meta = sys::fstat(file.as_fd())?;
        if meta.st_nlink == 0 {
            // Removed or replaced under us: writers append to a new file.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "change log replaced",
            ));
        }
        let len = meta.st_size as u64;
        let epoch = read_header(file)?;
        if self.epoch.is_none() && epoch.is_some() && self.read_to == 0 {
            // First look at a log made after this reader started.
            self.epoch = epoch;
            self.read_to = HEADER_LEN as u64;
        }
        if epoch != self.epoch || len < self.read_to {
            self.epoch = epoch;
            self.read_to = len;
            return Ok(News::Anything);
        }
        if len == self.read_to {
            return Ok(News::Nothing);
        }
        let mut fresh = vec![0; usize::try_from(len - self.read_to).unwrap_or(0)];
        let n = sys::read_at(file.as_fd(), &mut fresh, self.read_to, log_name())?;
        fresh.truncate(n);
        // A line still being written is read next time.
        let Some(end) = fresh.iter().rposition(|&b| b == b'\n') else {
            return Ok(News::Nothing);
        };
        self.read_to += end as u64 + 1;
        Ok(parse(&fresh[..=end]))
    }
}

fn open_log(root: &Path) -> Option<File> {
    let dir = Dir::open(root, &root.join(INTERNAL_DIR)).ok()?;
    sys::open_file(dir.fd(), log_name()).ok()
}

/// The tenants named in `lines`; a line that is no tenant's name means
/// the log was written by someone else: anything may have changed.
fn parse(lines: &[u8]) -> News {
    let mut tenants = Vec::new();
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let name = std::str::from_utf8(line).ok().map(TenantName::new);
        match name {
            Some(Ok(name)) => tenants.push(name),
            _ => return News::Anything,
        }
    }
    News::Tenants(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn name(s: &str) -> TenantName {
        TenantName::new(s).unwrap()
    }

    #[test]
    fn a_reader_sees_what_is_announced_after_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        announce(root, &name("before"));
        let mut log = ChangeLog::open(root);
        assert!(log.is_open());
        assert_eq!(log.news(root), News::Nothing);
        announce(root, &name("acme"));
        announce(root, &name("globex"));
        assert_eq!(
            log.news(root),
            News::Tenants(vec![name("acme"), name("globex")])
        );
        assert_eq!(log.news(root), News::Nothing);
    }

    #[test]
    fn a_log_made_after_the_reader_opened_is_read_from_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut log = ChangeLog::open(root);
        assert!(!log.is_open());
        assert_eq!(log.news(root), News::Nothing);
        announce(root, &name("acme"));
        assert_eq!(log.news(root), News::Tenants(vec![name("acme")]));
    }

    #[test]
    fn an_emptied_log_says_anything_may_have_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        announce(root, &name("first"));
        let mut log = ChangeLog::open(root);
        // Enough announcements to pass the limit: the log is rewritten.
        let long = name(&"x".repeat(99));
        for _ in 0..(LIMIT as usize / 100 + 2) {
            announce(root, &long);
        }
        let path = root.join(INTERNAL_DIR).join(LOG);
        assert!(std::fs::metadata(&path).unwrap().len() < LIMIT);
        assert_eq!(log.news(root), News::Anything);
        announce(root, &name("acme"));
        assert_eq!(log.news(root), News::Tenants(vec![name("acme")]));
    }

    #[test]
    fn a_line_that_names_no_tenant_says_anything_may_have_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        announce(root, &name("first"));
        let mut log = ChangeLog::open(root);
        let path = root.join(INTERNAL_DIR).join(LOG);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"../etc/passwd\n").unwrap();
        assert_eq!(log.news(root), News::Anything);
        // A half-written line waits for its end.
        file.write_all(b"acm").unwrap();
        assert_eq!(log.news(root), News::Nothing);
        file.write_all(b"e\n").unwrap();
        assert_eq!(log.news(root), News::Tenants(vec![name("acme")]));
    }

    #[test]
    fn a_log_removed_under_the_reader_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        announce(root, &name("first"));
        let mut log = ChangeLog::open(root);
        std::fs::remove_file(root.join(INTERNAL_DIR).join(LOG)).unwrap();
        assert_eq!(log.news(root), News::Anything);
        announce(root, &name("acme"));
        assert_eq!(log.news(root), News::Tenants(vec![name("acme")]));
    }

    /// A writer holding the log's exclusive lock (stopped mid-rewrite)
    /// holds an announcement back only until [`LOCK_WAIT`]: it gives up
    /// and writes nothing; once the lock is let go, the next is written.
    #[test]
    fn an_announcement_gives_up_on_a_log_held_by_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        announce(root, &name("first"));
        let mut log = ChangeLog::open(root);
        let holder = open_log(root).unwrap();
        assert!(sys::flock(&holder, false, false, log_name()).unwrap());
        let held = append(root, &name("held"));
        assert_eq!(held.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        sys::unlock(&holder, log_name()).unwrap();
        announce(root, &name("acme"));
        assert_eq!(log.news(root), News::Tenants(vec![name("acme")]));
    }
}
