//! Re-keying one tenant (the `encryption` feature): its database
//! encrypted again under a new key, or encrypted for the first time (a
//! plaintext tenant), and swapped in while other processes serve it,
//! without losing a write.
//!
//! Holding the tenant's lock throughout (two re-keys never interleave):
//!
//! 1. An interrupted re-key is settled first (see [`settle`]).
//! 2. The provider stages a new key beside the current one, durably.
//! 3. A connection is opened on the database, then the tenant is fenced
//!    off as a restore with replace fences it, and other processes are
//!    waited for until they let go. No other process can write from then
//!    on, so the connection reads the last commit: through descriptors
//!    that follow the file and its `-wal` whatever their names (the fence
//!    renamed the file; SQLite finds a `-wal` by name).
//! 4. The database is copied from that connection into a new tenant
//!    directory (SQLite's backup API, under the old key), and the copy is
//!    re-encrypted: `PRAGMA rekey` for an encrypted tenant (measured to
//!    work with raw keys and the plaintext header), an export into a new
//!    keyed file for a plaintext one (`PRAGMA rekey` cannot encrypt a
//!    plaintext file). The directories are swapped (`RENAME_EXCHANGE`).
//! 5. The provider commits the staged key: it becomes current, and the
//!    old one is destroyed, so copies made before (backups) can no longer
//!    be read.
//!
//! A crash before the swap leaves the old tenant, put back by the next
//! `remove_debris` or operation (the restore's mark), and a staged key
//! that [`settle`] discards. Between the swap and the commit the
//! database is under the staged key while the current key is the old
//! one: every open tries the staged key when the current one is refused
//! (`opening_key::with_tenant_key`), so other processes serve the tenant
//! through it, and a crash there leaves it readable; the next re-key (or
//! [`settle`]) commits the staged key.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::busy::WaitedFor;
use crate::crypt::{self, KeyProvider, TenantKey};
use crate::error::{Error, Result};
use crate::fs::Patience;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::files::remove_with_sidecars;
use crate::fs::siblings::scratch_path;
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::RootConfig;
use crate::storage::coordination::tenant_path::{
    TenantLock, TenantPath, lock_tenant, try_lock_tenant,
};
use crate::storage::lifecycle::debris::{finish_fenced_entry, remove_entry_debris};
use crate::storage::lifecycle::encrypted_copy::export;
use crate::storage::lifecycle::fence::{Fence, Waiting};
use crate::storage::lifecycle::file_copy::sync_file;
use crate::storage::lifecycle::foreign_files::refuse_foreign_files;
use crate::storage::lifecycle::snapshot::copy_to;
use crate::storage::lifecycle::stage::{Stage, Swap};
use crate::storage::opening::open::{EXISTING, READ_BUSY_TIMEOUT, open_existing};
use crate::storage::opening::open_error::pin_error;
use crate::storage::opening::opening_key::looks_encrypted;
use crate::storage::opening::pinned::open_pinned;

/// What a re-key did.
#[derive(Debug, Clone)]
pub(crate) struct Rekeyed {
    /// The tenant's schema version.
    pub(crate) version: i64,
    /// The re-encrypted database's size in bytes.
    pub(crate) bytes: u64,
    /// Whether the tenant was plaintext before (now encrypted).
    pub(crate) was_plaintext: bool,
    /// The old directory, if it could not be removed after the swap.
    pub(crate) old_left: Option<PathBuf>,
}

/// Re-keys `tenant` at `at` (see the module); `waiting` says how long
/// other processes are waited for.
pub(crate) fn rekey(
    tenant: &TenantName,
    at: TenantPath<'_>,
    waiting: Waiting<'_>,
    patience: &Patience,
) -> Result<Rekeyed> {
    let provider = crypt::rekeying_provider(tenant, at.root())?;
    if !at.owns_dir() {
        return Err(Error::Encryption {
            tenant: Some(tenant.clone()),
            path: at.db().to_path_buf(),
            reason: "re-keying swaps the tenant's directory, and this root's template gives tenants no directory of their own (use one such as %{bucket}/%{tenant}/main.sqlite3)".to_string(),
        });
    }
    // The keys' changes beneath wait no longer than the re-key.
    let _patience = patience.scoped();
    let lock = lock_tenant(tenant, at, patience, WaitedFor::Rekey)?;
    // What a re-key (or a restore) that crashed left: its fence put back,
    // its half-built directory removed.
    remove_entry_debris(tenant, &lock, at)?;
    settle(tenant, at, &*provider, patience)?;
    let old = provider.key(tenant)?;
    let new = provider.stage_key(tenant)?;
    match swap_in_rekeyed(tenant, (&lock, at), (old.as_ref(), &new), waiting) {
        Ok(rekeyed) => {
            provider
                .commit_staged_key(tenant)
                .map_err(|e| unfinished(tenant, at.root(), e))?;
            match (&rekeyed.old_left, rekeyed.was_plaintext) {
                (Some(left), true) => Err(plaintext_left(tenant, left)),
                _ => Ok(rekeyed),
            }
        }
        Err(e) => {
            // Whichever key the database is under stays; the other goes.
            if let Err(settling) = settle(tenant, at, &*provider, patience) {
                tracing::warn!(tenant = %tenant, error = %settling, "could not settle the keys after a failed re-key");
            }
            Err(e)
        }
    }
}

/// Steps 3 and 4 of the module's list: the tenant fenced off, copied under
/// its new key into a staged directory, and swapped with it.
fn swap_in_rekeyed(
    tenant: &TenantName,
    (lock, at): (&TenantLock, TenantPath<'_>),
    keys: (Option<&TenantKey>, &TenantKey),
    waiting: Waiting<'_>,
) -> Result<Rekeyed> {
    // Disarmed: its close after the swap neither checkpoints into the old
    // file nor removes, by name, the new tenant's `-wal`.
    refuse_foreign_files(tenant, lock, at)?;
    let mut held = open_existing(tenant, at.root(), at.db(), &waiting.patience)?;
    held.disarm();
    let mut stage = Stage::begin(tenant, lock, at, true)?;
    stage.opened_by_sqlite();
    finish_fenced_entry(tenant, lock, at)?;
    let fence = Fence::raise_for_restore(tenant, lock, at)?;
    if let Err(e) = fence.wait_released(waiting) {
        fence.put_back()?;
        return Err(e);
    }
    // On an error from here the fence is dropped: the old tenant is put
    // back, whole.
    let mut rekeyed = reencrypted_copy(tenant, &held, &stage, keys)?;
    match stage.publish_swapping(tenant, at)? {
        Swap::Swapped { old, durable } => {
            let path = lock.parent().join(&old);
            rekeyed.old_left = (!fence.swapped_out(&old)).then_some(path);
            durable?;
            Ok(rekeyed)
        }
        Swap::Unsupported(_) => Err(Error::Encryption {
            tenant: Some(tenant.clone()),
            path: at.entry().to_path_buf(),
            reason: "the file system cannot swap two directories in one step (RENAME_EXCHANGE), which a re-key needs; the tenant was left as it was".to_string(),
        }),
    }
}

/// Copies the database `source` is on into the stage's scratch file,
/// encrypted with `new` (see the module), and syncs it.
fn reencrypted_copy(
    tenant: &TenantName,
    source: &Connection,
    stage: &Stage,
    (old, new): (Option<&TenantKey>, &TenantKey),
) -> Result<Rekeyed> {
    let path = stage.scratch_path();
    let creating = |e| Error::io(Some(tenant), &path, "creating the re-keyed copy", e);
    // SQLite writes the copy by path: into a file made here first, in a
    // directory reached without links, and checked after.
    let made = sys::create_new(stage.dir().fd(), stage.scratch()).map_err(creating)?;
    let fail = |e| {
        Error::sqlite(
            Some(tenant),
            &path,
            "encrypting the copy under the new key",
            e,
        )
    };
    let snapshot = match old {
        Some(old) => {
            let copied = copy_to(tenant, source, &path, ("DELETE", Some(old)))?;
            rekey_file(&path, old, new).map_err(fail)?;
            copied
        }
        None => {
            let plain_name = scratch_path(stage.scratch());
            let plain = stage.dir().join(&plain_name);
            let copied = copy_to(tenant, source, &plain, ("DELETE", None));
            let exported = copied.and_then(|c| {
                export(&path, &plain, new).map_err(fail)?;
                Ok(c)
            });
            remove_with_sidecars(stage.dir(), &plain_name);
            exported?
        }
    };
    if !FileId::by_path_is(stage.dir(), stage.scratch(), &made).map_err(creating)? {
        let moved = std::io::Error::other("its directory was replaced during the copy");
        return Err(creating(moved));
    }
    Ok(Rekeyed {
        version: snapshot.version,
        bytes: sync_file(tenant, &path)?,
        was_plaintext: old.is_none(),
        old_left: None,
    })
}

/// Re-encrypts the database at `path`, under `old`, with `new`, and puts
/// it in WAL mode (every tenant is).
fn rekey_file(path: &Path, old: &TenantKey, new: &TenantKey) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
    crypt::apply(&conn, Some(old))?;
    conn.execute_batch(&new.rekey_pragma())?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)
}

/// Settles every interrupted re-key under `root` (for `remove_debris`):
/// each tenant with a staged key whose lock is free. A tenant that is
/// busy, or gone (its staged key then goes with its next create or
/// destroy), is skipped. The number of staged keys settled.
///
/// # Errors
///
/// The provider's, listing or settling; [`Error::DamagedTenant`] when
/// neither key opens a tenant. One tenant that cannot be settled does not
/// stop the others: the error is the first one's, once every tenant was
/// tried (a sweep that left a re-key unsettled, with a wrong master key,
/// said it succeeded), but for a damaged tenant, which is only logged (it
/// says so itself when opened).
pub(crate) fn settle_interrupted(root: &RootConfig) -> Result<usize> {
    let Some(provider) = crypt::key_provider(root.root_dir()) else {
        return Ok(0);
    };
    let owns_dir = root.owns_directory()?;
    let patience = Patience::new(SETTLE_WAIT);
    let _patience = patience.scoped();
    let mut settled = 0;
    let mut first_failure = None;
    for tenant in provider.staged_tenants()? {
        let db = root.path_of(tenant.as_str())?;
        let at = TenantPath::new(root.root_dir(), &db, owns_dir);
        let locked = try_lock_tenant(at)
            .map_err(|e| Error::io(Some(&tenant), at.entry(), "locking the tenant", e))?;
        let Some(_lock) = locked else {
            continue;
        };
        // One tenant that cannot be settled (a damaged file, a wrong
        // master key) must not stop the sweep for the others.
        match settle(&tenant, at, &*provider, &patience) {
            Ok(changed) => settled += usize::from(changed),
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "could not settle an interrupted re-key");
                // A damaged tenant says so itself when opened; a key that
                // cannot be read (a wrong master key) fails the sweep.
                if !matches!(e, Error::DamagedTenant { .. }) {
                    first_failure.get_or_insert(e);
                }
            }
        }
    }
    match first_failure {
        Some(e) => Err(e),
        None => Ok(settled),
    }
}

/// How long settling waits at a tenant's open gate.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Settles a re-key that stopped between staging its key and committing
/// it: the staged key is committed if the database opens with it and not
/// with the current one (the swap happened), discarded otherwise.
///
/// # Errors
///
/// The provider's; [`Error::DamagedTenant`] when neither key opens the
/// database.
pub(crate) fn settle(
    tenant: &TenantName,
    at: TenantPath<'_>,
    provider: &dyn KeyProvider,
    patience: &Patience,
) -> Result<bool> {
    let Some(staged) = provider.staged_key(tenant)? else {
        // A staged key file being destroyed (zeroed, not yet unlinked, by
        // a run killed in between): gone now.
        provider.discard_staged_key(tenant)?;
        return Ok(false);
    };
    let current = provider.key(tenant)?;
    if opens_with(tenant, at, current.as_ref(), patience)? {
        return provider.discard_staged_key(tenant).map(|()| true);
    }
    if opens_with(tenant, at, Some(&staged), patience)? {
        let committed = provider.commit_staged_key(tenant);
        return committed
            .map(|()| true)
            .map_err(|e| unfinished(tenant, at.root(), e));
    }
    Err(Error::DamagedTenant {
        tenant: tenant.clone(),
        path: at.db().to_path_buf(),
        reason: "neither the tenant's key nor the key a re-key staged opens it; put back the keys directory it was made with".to_string(),
    })
}

/// Whether `key` opens `tenant`'s database (`false`: refused). No key
/// never opens an encrypted file (SQLite would read its plaintext header
/// and fail only later, at a page it cannot decrypt).
fn opens_with(
    tenant: &TenantName,
    at: TenantPath<'_>,
    key: Option<&TenantKey>,
    patience: &Patience,
) -> Result<bool> {
    if key.is_none() && looks_encrypted(at.root(), at.db()) {
        return Ok(false);
    }
    let open = || {
        let conn = Connection::open_with_flags(literal_path(at.db()), EXISTING)?;
        crypt::apply(&conn, key)?;
        // As long as a one-off read waits for SQLite's lock.
        conn.busy_timeout(READ_BUSY_TIMEOUT)?;
        // Not `user_version` alone: see `crypt::prove`.
        crypt::prove(&conn, key)?;
        Ok(conn)
    };
    match open_pinned(at.root(), at.db(), patience, open) {
        Ok(_) => Ok(true),
        Err(e) if e.key_refused() => Ok(false),
        Err(e) => Err(pin_error(tenant, at.db(), e)),
    }
}

/// A plaintext tenant encrypted, whose old plaintext directory could not
/// be removed: the re-key is done, but the data is still readable there.
fn plaintext_left(tenant: &TenantName, left: &Path) -> Error {
    Error::Encryption {
        tenant: Some(tenant.clone()),
        path: left.to_path_buf(),
        reason: "the tenant is encrypted now, but its old plaintext copy in this directory could not be removed: remove it (rm -r), or run remove_debris; until then its rows are readable there".to_string(),
    }
}

/// A commit of the staged key that failed: the database is under the
/// staged key, which every open finds; a re-key run again finishes it.
fn unfinished(tenant: &TenantName, root: &Path, e: Error) -> Error {
    Error::Encryption {
        tenant: Some(tenant.clone()),
        path: crate::root_description::keys_dir(root),
        reason: format!(
            "the tenant was re-keyed and stays readable, but making its new key the current one failed ({e}); run the re-key again to finish it"
        ),
    }
}
