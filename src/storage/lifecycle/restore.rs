//! Restoring a tenant from a backup file, atomically.
//!
//! The backup is checked before anything under the root is touched: it is
//! a non-empty SQLite database, `PRAGMA integrity_check` says `ok`, and its
//! `user_version` is not ahead of the code. The check and the copy read it
//! in one read transaction, so what is copied is what was checked. Then,
//! exactly like a create and holding the tenant's locks: the copy is built
//! out of reach (back in WAL mode, as every tenant is), synced, and
//! published in one step that never replaces anything (see `stage.rs`).
//! Replacing an existing tenant first destroys it with the destroy
//! protocol (fence, wait for other processes, demolish), still under the
//! same locks, so no create slips in between.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::busy::WaitedFor;
use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::siblings::sidecar_path;
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::lifecycle::create::{Cleared, clear_the_way, under_new_lock};
use crate::storage::lifecycle::debris::finish_fenced_entry;
use crate::storage::lifecycle::fence::{Fence, Waiting};
use crate::storage::lifecycle::foreign_files::refuse_foreign_files;
use crate::storage::lifecycle::integrity::{Verdict, integrity_check};
use crate::storage::lifecycle::snapshot::{Snapshot, copy_to};
use crate::storage::lifecycle::stage::{Stage, Swap};
use crate::storage::opening::header::reserves_bytes;

/// What to do when the tenant already exists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Existing<'a> {
    /// Fail with `TenantExists`.
    Refuse,
    /// Destroy it first, waiting as `waiting` says for other processes to
    /// let go (the caller has drained this process's pools).
    Replace {
        /// The wait for other processes.
        waiting: Waiting<'a>,
    },
}

/// What a restore published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Restored {
    /// The restored database's schema version.
    pub(crate) version: usize,
    /// Its size in bytes.
    pub(crate) bytes: u64,
    /// Whether an existing tenant was replaced.
    pub(crate) replaced: bool,
}

/// A backup file that passed the checks, held open in the read
/// transaction the copy will use.
#[derive(Debug)]
pub(crate) struct CheckedBackup {
    conn: Connection,
    version: usize,
    /// The key the backup is open with (the tenant's, when encrypted).
    key: Option<TenantKey>,
    /// The backup file.
    src: std::path::PathBuf,
}

impl CheckedBackup {
    /// The connection holding the checked read, and the key it is open
    /// with: what a restore copies from.
    fn source(&self) -> (&Connection, Option<&TenantKey>) {
        (&self.conn, self.key.as_ref())
    }
}

/// Opens and checks the backup file `src` for `tenant` (beneath `root`):
/// a non-empty SQLite database that passes `integrity_check`, not ahead
/// of `latest` (the number of migrations). An encrypted backup opens with
/// the tenant's key, or with the key a re-key staged (a backup taken
/// while a re-key was unsettled). Touches nothing under the root.
pub(crate) fn check_backup(
    tenant: &TenantName,
    (root, src): (&Path, &Path),
    latest: usize,
) -> Result<CheckedBackup> {
    let key = crypt::tenant_key(tenant, root)?;
    let first = check_with(tenant, src, latest, key.clone());
    let Err(refused @ Error::BadBackup { .. }) = first else {
        return first;
    };
    for other in crypt::other_keys(tenant, root, key.as_ref())? {
        if let Ok(checked) = check_with(tenant, src, latest, Some(other)) {
            return Ok(checked);
        }
    }
    match refused {
        // No key kept because nothing keeps keys here: say that.
        Error::BadBackup { ref reason, .. }
            if reason == NO_KEY_FOR_BACKUP && !crypt::has_provider(root) =>
        {
            Err(bad_backup(tenant, src, NO_PROVIDER_FOR_BACKUP))
        }
        refused => Err(refused),
    }
}

/// [`check_backup`] with one key (or none).
fn check_with(
    tenant: &TenantName,
    src: &Path,
    latest: usize,
    key: Option<TenantKey>,
) -> Result<CheckedBackup> {
    // Only with a key: a plaintext file never has SQLCipher's reserved
    // bytes, while some plaintext files (cksumvfs) reserve bytes too.
    if key.is_some() && encrypted_file(src) == Some(false) {
        return Err(bad_backup(tenant, src, PLAINTEXT_FOR_ENCRYPTED));
    }
    let conn = open_backup(tenant, src, key.as_ref())?;
    let version = check_open_backup(tenant, src, &conn, latest).map_err(|e| match e {
        // SQLCipher cannot tell a key that does not open a file from a
        // damaged one: its HMAC fails either way.
        Error::Sqlite { .. } if key.is_some() => bad_backup(tenant, src, WRONG_KEY_FOR_BACKUP),
        Error::BadBackup { ref reason, .. } if !reason.starts_with("PRAGMA") => match &key {
            Some(_) => bad_backup(tenant, src, WRONG_KEY_FOR_BACKUP),
            // Said only once the file failed: it then reads as encrypted.
            None if encrypted_file(src) == Some(true) => bad_backup(tenant, src, NO_KEY_FOR_BACKUP),
            None => e,
        },
        other => other,
    })?;
    Ok(CheckedBackup {
        conn,
        version,
        key,
        src: src.to_path_buf(),
    })
}

/// Restores `tenant` at `at` from `backup`.
pub(crate) fn restore(
    tenant: &TenantName,
    at: TenantPath<'_>,
    backup: CheckedBackup,
    (existing, cleared): (Existing<'_>, Cleared<'_>),
    patience: &Patience,
) -> Result<Restored> {
    let (snapshot, replaced) = under_new_lock(tenant, at, patience, WaitedFor::Restore, |lock| {
        restore_locked(tenant, lock, at, &backup, (existing, cleared))
    })?;
    Ok(Restored {
        version: backup.version,
        bytes: snapshot.bytes,
        replaced,
    })
}

fn restore_locked(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
    backup: &CheckedBackup,
    (existing, cleared): (Existing<'_>, Cleared<'_>),
) -> Result<(Snapshot, bool)> {
    // As in create: a tenant that exists stops a restore that does not
    // replace it; beside one that does not, anything left is debris (and
    // what a dead destroy kept of it, its limits). A replaced tenant
    // keeps its limits.
    let replace = match (clear_the_way(tenant, lock, at), existing) {
        (Ok(()), _) => {
            cleared(tenant)?;
            None
        }
        (Err(Error::TenantExists { .. }), Existing::Replace { waiting }) => Some(waiting),
        (Err(e), _) => return Err(e),
    };
    // The key was read before the lock: a re-key, or a destroy and a
    // create, may have replaced it since, and a backup under a key no
    // longer kept would be published unreadable.
    if !crypt::key_kept(tenant, at.root(), backup.key.as_ref())? {
        return Err(bad_backup(tenant, &backup.src, KEY_CHANGED));
    }
    let (source, key) = backup.source();
    let mut stage = Stage::begin(tenant, lock, at, replace.is_some())?;
    stage.opened_by_sqlite();
    let copying = |e| Error::io(Some(tenant), stage.scratch_path(), "copying the backup", e);
    // SQLite writes the copy by path: into a file made here first, in a
    // directory reached without links, and checked after.
    let made = sys::create_new(stage.dir().fd(), stage.scratch()).map_err(copying)?;
    let snapshot = copy_to(tenant, source, &stage.scratch_path(), ("WAL", key))?;
    match FileId::by_path_is(stage.dir(), stage.scratch(), &made) {
        Ok(true) => {}
        Ok(false) => {
            let moved = io::Error::other("its directory was replaced during the copy");
            return Err(copying(moved));
        }
        Err(e) => return Err(copying(e)),
    }
    match replace {
        Some(waiting) => replace_with(tenant, lock, at, stage, waiting)?,
        None => stage.publish(tenant, at)?,
    }
    Ok((snapshot, replace.is_some()))
}

/// Replaces the existing tenant with the staged copy, once no other
/// process holds the old database.
///
/// The tenant is fenced off under a restore's mark. A tenant with a
/// directory of its own then has it swapped with the staged one in one
/// step (`RENAME_EXCHANGE`), and only then is the old one removed. A
/// tenant without one (a flat layout), or one where the file system cannot
/// swap, has its database replaced in place: its sidecars set aside, the
/// copy linked in under its name, and only then the old database removed.
/// Any failure before the copy is in place puts the old tenant back, and
/// so does `remove_debris` after a crash (see `fence.rs`, `debris.rs`):
/// the tenant is the old one or the new one.
fn replace_with(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
    stage: Stage,
    waiting: Waiting<'_>,
) -> Result<()> {
    if at.owns_dir() {
        finish_fenced_entry(tenant, lock, at)?;
    }
    refuse_foreign_files(tenant, lock, at)?;
    let mut fence = Fence::raise_for_restore(tenant, lock, at)?;
    if let Err(e) = fence.wait_released(waiting) {
        fence.put_back()?;
        return Err(e);
    }
    // On error from here the fence is dropped: the old tenant is put back.
    match stage.publish_swapping(tenant, at)? {
        Swap::Swapped { old, durable } => {
            // A leftover old directory goes with the next operation.
            let _ = fence.swapped_out(&old);
            durable
        }
        Swap::Unsupported(stage) => {
            let dir = lock.db_dir(at).ok_or_else(|| Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: at.db().to_path_buf(),
            })?;
            fence.set_sidecars_aside()?;
            let published = stage.publish_into(tenant, at, dir);
            // Even when its sync failed, a copy in place is the tenant now.
            if published.is_ok() || sys::stat(dir.fd(), at.db_name()).is_ok() {
                fence.replaced();
            }
            published
        }
    }
}

/// Whether the file at `journal` is a rollback journal SQLite would take
/// for hot: its first byte is not zero (`hasHotJournal`; a journal
/// committed in PERSIST mode has its header zeroed, one truncated is
/// empty).
fn is_hot_journal(journal: &Path) -> bool {
    let mut first = [0u8; 1];
    let Ok(file) = sys::open_path(journal) else {
        return false;
    };
    matches!(sys::read_at(file.as_fd(), &mut first, 0, journal), Ok(1)) && first[0] != 0
}

/// Opens the backup read-only and starts the read transaction that the
/// check and the copy share.
fn open_backup(tenant: &TenantName, src: &Path, key: Option<&TenantKey>) -> Result<Connection> {
    let meta = sys::metadata(src).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => bad_backup(tenant, src, "there is no such file"),
        _ => Error::io(Some(tenant), src, "reading the backup file", e),
    })?;
    if !meta.is_file() {
        return Err(bad_backup(tenant, src, "it is not a regular file"));
    }
    if meta.len() == 0 {
        // SQLite would read an empty file as an empty database.
        return Err(bad_backup(tenant, src, "the file is empty"));
    }
    // A hot journal: a read-only open cannot roll it back, and SQLite
    // says only "attempt to write a readonly database" (an outside probe).
    let journal = sidecar_path(src, "-journal");
    if is_hot_journal(&journal) {
        let reason = format!(
            "a rollback journal is beside it ({}): it was being written when it was copied, or its writer died, so its pages are not all of one commit; open it once with the sqlite3 shell (which rolls the journal back) and restore it again, or restore another backup",
            journal.display()
        );
        return Err(bad_backup(tenant, src, &reason));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(literal_path(src), flags)
        .map_err(|e| Error::sqlite(Some(tenant), src, "opening the backup file", e))?;
    crypt::apply(&conn, key)
        .map_err(|e| Error::sqlite(Some(tenant), src, "keying the backup file", e))?;
    conn.execute_batch("BEGIN")
        .map_err(|e| Error::sqlite(Some(tenant), src, "reading the backup file", e))?;
    Ok(conn)
}

/// The backup's schema version, once it has passed `integrity_check` and
/// is not ahead of `latest`.
fn check_open_backup(
    tenant: &TenantName,
    src: &Path,
    conn: &Connection,
    latest: usize,
) -> Result<usize> {
    let not_sqlite = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            bad_backup(tenant, src, "it is not a SQLite database")
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            bad_backup(tenant, src, &format!("it is corrupt ({e})"))
        }
        _ => Error::sqlite(Some(tenant), src, "checking the backup file", e),
    };
    match integrity_check(conn).map_err(not_sqlite)? {
        Verdict::Sound => {}
        Verdict::Damaged(said) => {
            let reason = format!("PRAGMA integrity_check reports: {said}");
            return Err(bad_backup(tenant, src, &reason));
        }
        // The application's collation or function: the tenant's own
        // connections have it, this one cannot check the file.
        Verdict::Unchecked(why) => {
            tracing::warn!(tenant = %tenant, path = %src.display(), reason = %why, "the backup could not be checked (its schema names a collation or function the application registers): it is restored unchecked");
        }
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(not_sqlite)?;
    let version = usize::try_from(version).map_err(|_| {
        bad_backup(
            tenant,
            src,
            &format!("its user_version ({version}) is negative"),
        )
    })?;
    if version > latest {
        return Err(Error::SchemaAheadOfCode {
            tenant: tenant.clone(),
            path: src.to_path_buf(),
            current_version: version,
            latest_version: latest,
        });
    }
    Ok(version)
}

/// Why an encrypted backup cannot be restored under a name with no key.
const NO_KEY_FOR_BACKUP: &str = "it is encrypted (it reserves bytes on every page, as SQLCipher does for its IV and HMAC), and no key is kept for this tenant: an encrypted backup is restored under the name of the tenant it was taken from, while that tenant's key is kept (a destroyed tenant's backups stay unreadable, by design)";

/// Why an encrypted backup cannot be restored by a manager without keys.
const NO_PROVIDER_FOR_BACKUP: &str = "it is encrypted (it reserves bytes on every page, as SQLCipher does for its IV and HMAC), and this manager was given no key provider: build it with .encryption(RootKeyStore::new(root, master)) (the `encryption` feature; the tenanted CLI: set TENANTED_MASTER_KEY, in a build with that feature), and restore it under the name of the tenant it was taken from, whose key the root's keys directory keeps";

/// Why an encrypted backup does not open with the tenant's key.
const WRONG_KEY_FOR_BACKUP: &str = "the key kept for this tenant does not open it: it was taken from another tenant, or from an earlier incarnation of this one (destroyed or re-keyed since, which retires its backups), or it is damaged";

/// Why a backup checked with the tenant's key is not restored after all.
const KEY_CHANGED: &str = "the tenant's key changed while the backup was checked (a re-key, or a destroy and a create, in another process): the backup is under a key no longer kept and would be unreadable";

/// Why a plaintext backup cannot replace an encrypted tenant.
const PLAINTEXT_FOR_ENCRYPTED: &str = "it is a plaintext backup, and the tenant it would replace is encrypted; restore it under a new name (it stays plaintext there until `rekey_tenant`, `tenanted rekey`, encrypts it), or destroy the tenant first";

/// Whether the file at `src` is an encrypted database (`Some(true)`: a
/// SQLite header, kept plaintext by SQLCipher, with bytes reserved at the
/// end of every page for its IV and HMAC, header byte 20; SQLite reserves
/// none), a plaintext one (`Some(false)`), or neither (`None`). Read
/// before SQLite opens the file, so no lock of this process is at stake.
fn encrypted_file(src: &Path) -> Option<bool> {
    let mut header = [0u8; 100];
    let read = sys::open_path(src).and_then(|f| sys::read_at(f.as_fd(), &mut header, 0, src));
    matches!(read, Ok(100))
        .then(|| reserves_bytes(&header))
        .flatten()
}

fn bad_backup(tenant: &TenantName, src: &Path, reason: &str) -> Error {
    Error::BadBackup {
        tenant: tenant.clone(),
        path: src.to_path_buf(),
        reason: reason.to_owned(),
    }
}
