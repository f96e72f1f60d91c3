//! Whether the template database is still the one that was built: every
//! new tenant is a copy of it, so a template damaged on disk (truncated,
//! overwritten, changed by hand or by another program) would be copied
//! into every tenant created from then on, each reported created.
//!
//! A build records a digest of the template's bytes beside it
//! (`.<fingerprint>.sqlite3.sum`); a create checks the template against it
//! before copying, and a template that does not match (or has no digest:
//! an earlier release's, or one whose build died before writing it; or
//! has writes left beside it, in a `-wal` or a `-journal`) is built again. The digest is FNV-1a: it finds damage, not an adversary
//! (who could write the tenants themselves). A process checks a template
//! file once while it stays as it was (same inode, size and change time:
//! any write, even one that puts back its modification time, changes the
//! change time), so a create pays one `fstat` for the check.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::fs::dir::Dir;
use crate::fs::files::replace_file;
use crate::fs::siblings::sidecar_path;
use crate::fs::sys;
use crate::paths::Fnv1a;

/// How many template files a process remembers as checked (a deploy runs
/// two sets of migrations side by side; a test, many roots).
const REMEMBERED: usize = 8;

/// A template file as it was when checked.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Checked {
    dev: u64,
    ino: u64,
    size: i64,
    changed: (i64, u64),
}

static CHECKED: Mutex<Vec<Checked>> = Mutex::new(Vec::new());

/// The digest file of the template named `name`.
pub(super) fn digest_name(name: &Path) -> PathBuf {
    let mut digest = name.as_os_str().to_owned();
    digest.push(".sum");
    PathBuf::from(digest)
}

/// Records the digest of the template `file`, named `name` in `dir`.
///
/// # Errors
///
/// The template cannot be read, or the digest written.
pub(super) fn record_digest(dir: &Dir, name: &Path, file: &File) -> io::Result<()> {
    let digest = digest_of(file, name)?;
    replace_file(
        dir,
        &digest_name(name),
        format!("{digest:016x}\n").as_bytes(),
    )?;
    remember(file);
    Ok(())
}

/// Whether the template `file`, named `name` in `dir`, matches the digest
/// recorded when it was built. Anything that cannot be read is no match:
/// the template is built again.
pub(super) fn is_intact(dir: &Dir, name: &Path, file: &File) -> bool {
    let Some(now) = checked_key(file) else {
        return false;
    };
    if has_pending_writes(dir, name) {
        return false;
    }
    if CHECKED.lock().contains(&now) {
        return true;
    }
    let digest_file = digest_name(name);
    let recorded = sys::open_file(dir.fd(), &digest_file)
        .and_then(|f| sys::read_text(f, 64, &digest_file))
        .ok()
        .and_then(|text| u64::from_str_radix(text.trim(), 16).ok());
    let intact = recorded.is_some() && digest_of(file, name).ok() == recorded;
    if intact {
        remember(file);
    }
    intact
}

/// Whether another program left writes beside the template, not in it: a
/// `-wal` with frames, or a `-journal`. The digest covers the file; an
/// encrypted create reads the template through SQLite by its path, which
/// applies them (a second review: a row planted by a program still
/// running, or killed before its checkpoint, went into every encrypted
/// tenant).
fn has_pending_writes(dir: &Dir, name: &Path) -> bool {
    let size = |suffix| sys::stat(dir.fd(), &sidecar_path(name, suffix)).map(|s| s.st_size);
    size("-wal").is_ok_and(|bytes| bytes > 0) || size("-journal").is_ok()
}

fn remember(file: &File) {
    if let Some(key) = checked_key(file) {
        let mut checked = CHECKED.lock();
        if checked.len() >= REMEMBERED {
            checked.remove(0);
        }
        checked.push(key);
    }
}

fn checked_key(file: &File) -> Option<Checked> {
    let stat = sys::fstat(file.as_fd()).ok()?;
    Some(Checked {
        dev: stat.st_dev,
        ino: stat.st_ino,
        size: stat.st_size,
        changed: (stat.st_ctime, stat.st_ctime_nsec),
    })
}

/// FNV-1a of the whole of `file`, read from its start (its offset, which
/// a copy uses, is left alone).
fn digest_of(file: &File, name: &Path) -> io::Result<u64> {
    let mut hash = Fnv1a::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = sys::read_at(file.as_fd(), &mut buf, offset, name)?;
        let Some(read) = buf.get(..n).filter(|r| !r.is_empty()) else {
            return Ok(hash.finish());
        };
        hash.write(read);
        offset += n as u64;
    }
}
