//! The files tenanted keeps beside a database file, and how to tell whose
//! they are. For a database `main.sqlite3`:
//!
//! - `.main.sqlite3.lock`: its lock file (see `lock.rs`);
//! - `.main.sqlite3.tmp-PID-N`: a scratch database being built, published
//!   by `hard_link` (create) or `rename` (the template database);
//! - `.main.sqlite3.destroying`: the fenced database of a destroy waiting
//!   for other processes to let go (see `fence.rs`), and its `-wal` and
//!   `-journal` when a restore replacing it in place set them aside;
//! - `.main.sqlite3.restoring`: the mark of a restore replacing the
//!   database in place, when it has no directory of its own;
//! - `main.sqlite3-wal`, `-shm`, `-journal`: SQLite's own sidecars;
//! - `.main.sqlite3-litestream/`: Litestream's replication state for the
//!   database, when Litestream replicates the root; it goes with the
//!   tenant.
//!
//! When each tenant has a directory of its own (`acme/` in the default
//! `%{bucket}/%{tenant}/main.sqlite3`), that directory is the tenant's
//! *entry* (see `tenant_path.rs`) and has hidden siblings of its own, in
//! its bucket:
//!
//! - `.acme.lock`: the entry lock, taken before the directory exists;
//! - `.acme.creating/`: the directory a create or restore builds, published
//!   by renaming it to `acme`;
//! - `.acme.destroying`: a destroy's mark, made before it touches anything
//!   else and removed last: listings skip a marked tenant whose database
//!   is not in place, but a fleet run's while the destroy runs (see
//!   `fence.rs`);
//! - `.acme.restoring`: the same for a restore that replaces the tenant.
//!
//! Hidden names can never be tenants' (a tenant name starts with a letter
//! or digit, and a path template may not start a component with `.`), so
//! none of these is ever listed as a tenant.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Sidecar suffixes SQLite puts next to a database file. A template whose
/// file name could end in one would confuse sidecars with tenants.
pub(crate) const SQLITE_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How many bytes the longest file tenanted (or SQLite) makes beside a
/// database adds to the database's file name: a scratch file's journal,
/// `.NAME.tmp-PID-N-journal`, with a 10-digit PID and a 20-digit counter.
/// A test below keeps it in step with the names made here; the path
/// template refuses file names too long for it.
pub(crate) const LONGEST_SIBLING_EXTRA: usize = 45;

/// The same for a tenant's own directory: its fence, `.NAME.destroying`,
/// is the longest name beside it.
pub(crate) const LONGEST_DIR_SIBLING_EXTRA: usize = 12;

/// Ends the name of a destroy's mark (and of a fenced database):
/// `.NAME.destroying`.
pub(crate) const FENCE_SUFFIX: &str = ".destroying";

/// Ends the name of the mark of a restore replacing a tenant:
/// `.NAME.restoring`.
pub(crate) const RESTORE_SUFFIX: &str = ".restoring";

/// Marks a scratch file: `.NAME.tmp-PID-N`.
const SCRATCH: &str = ".tmp-";
/// Ends a lock file: `.NAME.lock`.
const LOCK: &str = ".lock";
const FENCE: &str = FENCE_SUFFIX;
/// Ends the mark of a restore replacing a tenant: `.NAME.restoring`.
const RESTORING: &str = RESTORE_SUFFIX;
/// Ends a tenant directory being built: `.NAME.creating`.
const STAGING: &str = ".creating";
const LITESTREAM: &str = "-litestream";

/// The last component of `path`: the name `*at` calls use in its
/// directory.
pub(crate) fn name_of(path: &Path) -> &Path {
    Path::new(path.file_name().unwrap_or_default())
}

/// The lock file of a database or of a tenant's directory: hidden,
/// beside it.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    hidden_sibling(db, LOCK)
}

/// Where a tenant directory `entry` is built before it is published: one
/// fixed name, since only the holder of the entry lock builds it.
pub(crate) fn staging_path(entry: &Path) -> PathBuf {
    hidden_sibling(entry, STAGING)
}

/// A fresh scratch file name beside `db`, unique within the machine.
pub(crate) fn scratch_path(db: &Path) -> PathBuf {
    unique_sibling(db, SCRATCH)
}

/// Where a destroy moves the database (or the tenant's directory) while
/// other processes let go: one fixed name, since only the holder of the
/// tenant's lock destroys it.
pub(crate) fn fence_path(db: &Path) -> PathBuf {
    hidden_sibling(db, FENCE)
}

/// The mark of a restore replacing the tenant whose directory is
/// `entry`: the old tenant goes back if the restore dies before its swap.
pub(crate) fn restore_mark_path(entry: &Path) -> PathBuf {
    hidden_sibling(entry, RESTORING)
}

/// The directory Litestream keeps beside a database it replicates.
pub(crate) fn litestream_dir(db: &Path) -> PathBuf {
    hidden_sibling(db, LITESTREAM)
}

/// SQLite's sidecar `suffix` (`-wal`, `-shm`, `-journal`) of `db`: named
/// after the database's path, whatever the database file is called now.
pub(crate) fn sidecar_path(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn unique_sibling(db: &Path, marker: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    numbered_sibling(db, marker, std::process::id(), n)
}

fn numbered_sibling(db: &Path, marker: &str, pid: u32, n: u64) -> PathBuf {
    hidden_sibling(db, &format!("{marker}{pid}-{n}"))
}

fn hidden_sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(db.file_name().unwrap_or_default());
    name.push(suffix);
    db.with_file_name(name)
}

/// Whether `name` is a scratch file (or one of its SQLite sidecars) of
/// the database file named `db_name`.
pub(crate) fn is_scratch(name: &str, db_name: &str) -> bool {
    let numbers = name
        .strip_prefix('.')
        .and_then(|hidden| hidden.strip_prefix(db_name))
        .and_then(|rest| rest.strip_prefix(SCRATCH));
    // `PID-N` exactly, or a sidecar of it: another tenant's name may
    // start with this one's file name and `.tmp-` (tenant `a` and tenant
    // `a.sqlite3.tmp-1` share a flat directory), and its files are no
    // scratch of this one.
    let Some(numbers) = numbers else {
        return false;
    };
    let numbers = SQLITE_SIDECARS
        .iter()
        .find_map(|s| numbers.strip_suffix(s))
        .unwrap_or(numbers);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    numbers
        .split_once('-')
        .is_some_and(|(pid, n)| all_digits(pid) && all_digits(n))
}

/// Whether `name`, in a tenant's own directory whose database file is
/// `db_name`, is something tenanted or SQLite makes there: the database,
/// its sidecars, its fenced name and that one's sidecars, scratch files,
/// Litestream's state.
pub(crate) fn is_tenanteds(name: &str, db_name: &Path) -> bool {
    let db = db_name.to_string_lossy();
    let fence = fence_path(db_name).to_string_lossy().into_owned();
    let litestream = litestream_dir(db_name).to_string_lossy().into_owned();
    name == db
        || is_sidecar(name, &db)
        || name == fence
        || is_sidecar(name, &fence)
        || is_scratch(name, &db)
        || name == litestream
}

/// Whether `name` is one of SQLite's sidecars of the database file named
/// `db_name`.
pub(crate) fn is_sidecar(name: &str, db_name: &str) -> bool {
    SQLITE_SIDECARS
        .iter()
        .any(|s| name.strip_suffix(s) == Some(db_name))
}

/// The database file name a piece of debris belongs to: a scratch file
/// or lock file (`.main.sqlite3.tmp-…`, `.main.sqlite3.lock`) or
/// a SQLite sidecar (`main.sqlite3-wal`).
pub(crate) fn debris_owner(file_name: &str) -> Option<&str> {
    if let Some(hidden) = file_name.strip_prefix('.') {
        // A fenced database's sidecars, set aside by a replace in place.
        let fenced_sidecar = SQLITE_SIDECARS
            .iter()
            .find_map(|s| hidden.strip_suffix(s)?.strip_suffix(FENCE));
        if fenced_sidecar.is_some() {
            return fenced_sidecar;
        }
        // Fixed suffixes first: a tenant's name may itself contain a
        // scratch marker (`x.tmp-1` is a valid name).
        let fixed = [LOCK, FENCE, RESTORING, STAGING, LITESTREAM]
            .iter()
            .find_map(|suffix| hidden.strip_suffix(suffix));
        if fixed.is_some() {
            return fixed;
        }
        // The last marker: the owner's name may contain one too.
        let at = hidden.rfind(SCRATCH)?;
        return Some(&hidden[..at]);
    }
    SQLITE_SIDECARS
        .iter()
        .find_map(|s| file_name.strip_suffix(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_owners_agree() {
        let db = Path::new("/r/00/acme/main.sqlite3");
        let lock = lock_path(db);
        let scratch = scratch_path(db);
        let fence = fence_path(db);
        assert_eq!(lock, Path::new("/r/00/acme/.main.sqlite3.lock"));
        assert_eq!(fence, Path::new("/r/00/acme/.main.sqlite3.destroying"));
        assert_eq!(
            sidecar_path(db, "-shm"),
            Path::new("/r/00/acme/main.sqlite3-shm")
        );
        let fenced_wal = sidecar_path(&fence, "-wal");
        for path in [&lock, &scratch, &fence, &fenced_wal] {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(debris_owner(name), Some("main.sqlite3"), "{name}");
        }
        let name = scratch.file_name().unwrap().to_str().unwrap();
        assert!(is_scratch(name, "main.sqlite3"), "{name}");
        let journal = format!("{name}-journal");
        assert!(is_scratch(&journal, "main.sqlite3"), "{journal}");
        // Another tenant's files, in a flat directory shared with tenant
        // `a.sqlite3.tmp-1`, are never tenant `a`'s scratch.
        for other in [
            ".a.sqlite3.tmp-1.sqlite3.destroying",
            ".a.sqlite3.tmp-1.sqlite3.lock",
            ".a.sqlite3.tmp-1.sqlite3.tmp-5-6",
            ".a.sqlite3.tmp-1-2.sqlite3.lock",
            ".a.sqlite3.tmp-",
            ".a.sqlite3.tmp-1-",
            ".a.sqlite3.tmp--2",
        ] {
            assert!(!is_scratch(other, "a.sqlite3"), "{other}");
        }
        assert!(is_scratch(".a.sqlite3.tmp-12-34-wal", "a.sqlite3"));
        assert!(!is_scratch(name, "main.sqlite"), "{name}");
        assert_ne!(scratch_path(db), scratch);
        assert!(is_sidecar("main.sqlite3-wal", "main.sqlite3"));
        assert!(!is_sidecar("main.sqlite3", "main.sqlite3"));
        assert_eq!(debris_owner("main.sqlite3-shm"), Some("main.sqlite3"));
        assert_eq!(debris_owner("main.sqlite3"), None);
        assert_eq!(
            litestream_dir(db),
            Path::new("/r/00/acme/.main.sqlite3-litestream")
        );
        assert_eq!(
            debris_owner(".main.sqlite3-litestream"),
            Some("main.sqlite3")
        );
        assert_eq!(debris_owner("notes.txt"), None);
        let entry = Path::new("/r/00/acme");
        assert_eq!(staging_path(entry), Path::new("/r/00/.acme.creating"));
        for name in [".acme.lock", ".acme.creating", ".acme.destroying"] {
            assert_eq!(debris_owner(name), Some("acme"), "{name}");
        }
        // Owners whose names hold a marker themselves.
        assert_eq!(debris_owner(".x.tmp-1.destroying"), Some("x.tmp-1"));
        assert_eq!(debris_owner(".y.tmp-2.creating"), Some("y.tmp-2"));
        assert_eq!(
            debris_owner(".z.tmp-1.sqlite3.tmp-5-6"),
            Some("z.tmp-1.sqlite3")
        );
        assert_eq!(debris_owner(".v.lock.lock"), Some("v.lock"));
    }

    /// `RootConfig::validate` counts on no file beside a database having a
    /// name more than `LONGEST_SIBLING_EXTRA` bytes longer than its own.
    #[test]
    fn no_sibling_is_longer_than_the_template_check_allows() {
        let db = Path::new("/r/main.sqlite3");
        let longest_numbered = |marker| numbered_sibling(db, marker, u32::MAX, u64::MAX);
        let mut names = vec![
            lock_path(db),
            fence_path(db),
            staging_path(db),
            litestream_dir(db),
        ];
        for file in [db.to_path_buf(), longest_numbered(SCRATCH)] {
            // SQLite's sidecars of the database and of a scratch file
            // (seeded and template builds open it).
            names.extend(SQLITE_SIDECARS.iter().map(|s| sidecar_path(&file, s)));
            names.push(file);
        }
        let extra = |p: &PathBuf| p.file_name().unwrap().len() - "main.sqlite3".len();
        let longest = names.iter().map(extra).max().unwrap();
        assert_eq!(longest, LONGEST_SIBLING_EXTRA);
        // Beside a tenant's own directory.
        let entry = Path::new("/r/acme");
        let beside = [
            lock_path(entry),
            staging_path(entry),
            fence_path(entry),
            restore_mark_path(entry),
        ];
        let extra = |p: &PathBuf| p.file_name().unwrap().len() - "acme".len();
        let longest = beside.iter().map(extra).max().unwrap();
        assert_eq!(longest, LONGEST_DIR_SIBLING_EXTRA);
    }
}
