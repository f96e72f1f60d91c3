//! The calls the storage layers make: a tenant's key for an open, a new
//! key for a create, its destruction for a destroy, and keying a
//! connection.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::TenantKey;
use super::kept_keys::{NO_KEY_LEFT_BEHIND, NO_PLAINTEXT_AMONG_ENCRYPTED, refuse_without_provider};
use super::keyring::provider;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// The key of `tenant` (beneath `root`), if its root has a key provider
/// and the provider keeps one: `None` for a plaintext tenant.
///
/// # Errors
///
/// The provider's, when a kept key cannot be read.
pub(crate) fn tenant_key(tenant: &TenantName, root: &Path) -> Result<Option<TenantKey>> {
    match provider(root) {
        Some(provider) => provider.key(tenant),
        None => Ok(None),
    }
}

/// The key an open of `tenant`'s database at `path` uses, as
/// [`tenant_key`]; when the root's provider keeps none, `encrypted` (a
/// look at the file's header) tells whether the file is encrypted anyway:
/// its key is then missing, said as such rather than as the damage
/// SQLite would report for a file read without its key.
///
/// The inner `Err` is that missing key, for the caller to report if no
/// other key the provider keeps (a staged one) opens the file either.
///
/// # Errors
///
/// The provider's (outer); [`Error::Encryption`] naming where the key
/// should be when an encrypted file has none (inner).
pub(crate) fn opening_key(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    encrypted: impl FnOnce() -> bool,
) -> Result<std::result::Result<Option<TenantKey>, Error>> {
    let Some(provider) = provider(root) else {
        return Ok(Ok(None));
    };
    Ok(match provider.key(tenant)? {
        None if encrypted() => Err(missing_key(tenant, path, provider.key_location(tenant))),
        key => Ok(key),
    })
}

/// [`Error::Encryption`] for an encrypted tenant whose key its provider
/// does not keep.
fn missing_key(tenant: &TenantName, path: &Path, location: Option<PathBuf>) -> Error {
    let reason = match location {
        Some(_) => format!(
            "no key is kept here, and the tenant's database {} is encrypted: put the root's keys directory back from its backup and give the master key it was made with (the README's \"Backing the keys up\"); without its key the tenant cannot be read",
            path.display()
        ),
        None => format!(
            "the key provider keeps no key for the tenant, and its database {} is encrypted: put the tenant's key back in the provider; without it the tenant cannot be read",
            path.display()
        ),
    };
    Error::Encryption {
        tenant: Some(tenant.clone()),
        path: location.unwrap_or_else(|| path.to_path_buf()),
        reason,
    }
}

/// The keys to try when `tried` (the key an open used) did not open
/// `tenant`'s file: a key staged by a re-key under way or interrupted
/// after it swapped the database, and the current key if it changed
/// meanwhile (a re-key committed). Empty without a provider.
///
/// # Errors
///
/// The provider's, when a kept key cannot be read.
pub(crate) fn other_keys(
    tenant: &TenantName,
    root: &Path,
    tried: Option<&TenantKey>,
) -> Result<Vec<TenantKey>> {
    let Some(provider) = provider(root) else {
        return Ok(Vec::new());
    };
    let mut others: Vec<TenantKey> = Vec::with_capacity(2);
    for key in [provider.staged_key(tenant)?, provider.key(tenant)?] {
        match key {
            Some(key) if Some(&key) != tried && !others.contains(&key) => others.push(key),
            _ => {}
        }
    }
    Ok(others)
}

/// Whether `key` (the key a copy of `tenant` was made under) is still
/// one the provider keeps for it, current or staged: a copy under a key
/// a re-key has retired could never be restored. `true` for no key.
///
/// # Errors
///
/// The provider's, when a kept key cannot be read.
pub(crate) fn key_kept(tenant: &TenantName, root: &Path, key: Option<&TenantKey>) -> Result<bool> {
    let (Some(key), Some(provider)) = (key, provider(root)) else {
        return Ok(true);
    };
    Ok(provider.key(tenant)?.as_ref() == Some(key)
        || provider.staged_key(tenant)?.as_ref() == Some(key))
}

/// Checks that the provider serving `root`, if any, opens its keys (see
/// `KeyProvider::check_root_keys`): before a fleet run.
///
/// # Errors
///
/// The provider's refusal.
pub(crate) fn check_root_keys(root: &Path) -> Result<()> {
    match provider(root) {
        Some(provider) => provider.check_root_keys(),
        None => Ok(()),
    }
}

/// The key provider of `root`, if it has one.
pub(crate) fn key_provider(root: &Path) -> Option<std::sync::Arc<dyn super::KeyProvider>> {
    provider(root)
}

/// Whether a key provider keeps `root`'s keys.
pub(crate) fn has_provider(root: &Path) -> bool {
    provider(root).is_some()
}

/// The key provider of `root`, for a re-key.
///
/// # Errors
///
/// [`Error::Encryption`] when the root has none.
pub(crate) fn rekeying_provider(
    tenant: &TenantName,
    root: &Path,
) -> Result<std::sync::Arc<dyn super::KeyProvider>> {
    provider(root).ok_or_else(|| Error::Encryption {
        tenant: Some(tenant.clone()),
        path: root.to_path_buf(),
        reason: "the manager has no key provider: build it with .encryption(RootKeyStore::new(root, master)) (the CLI: set TENANTED_MASTER_KEY) to re-key or encrypt a tenant".to_string(),
    })
}

/// A new key for a new incarnation of `tenant`, if its root has a key
/// provider (the caller holds the tenant's lock and knows it is absent).
///
/// # Errors
///
/// The provider's, when the key cannot be made or stored.
pub(crate) fn created_key(tenant: &TenantName, root: &Path) -> Result<Option<TenantKey>> {
    match provider(root) {
        Some(provider) => provider.create_key(tenant).map(Some),
        None => {
            refuse_without_provider(tenant, root, NO_PLAINTEXT_AMONG_ENCRYPTED)?;
            Ok(None)
        }
    }
}

/// Refuses, before anything is done, a destroy of `tenant` by a manager
/// without a key provider on a root that keeps keys (its key would stay
/// behind): checked again, too late to spare the tenant's users a fence
/// and a wait, when the key is destroyed ([`destroyed_key`]).
///
/// # Errors
///
/// [`Error::Encryption`] saying so; the keys directory's errors.
pub(crate) fn refuse_keyless_destroy(tenant: &TenantName, root: &Path) -> Result<()> {
    match provider(root) {
        Some(_) => Ok(()),
        None => refuse_without_provider(tenant, root, NO_KEY_LEFT_BEHIND),
    }
}

/// Destroys `tenant`'s key, if its root has a key provider (a destroy
/// calls it once no process holds the tenant, before its files go).
///
/// # Errors
///
/// [`Error::Encryption`] with the provider's error, saying what to do.
pub(crate) fn destroyed_key(tenant: &TenantName, root: &Path) -> Result<()> {
    let Some(provider) = provider(root) else {
        return refuse_without_provider(tenant, root, NO_KEY_LEFT_BEHIND);
    };
    provider.destroy_key(tenant).map_err(|e| match e {
        // A wait that ran out: said as such, the tenant intact.
        busy @ Error::TenantBusy { .. } => busy,
        e => Error::Encryption {
            tenant: Some(tenant.clone()),
            path: root.to_path_buf(),
            reason: format!("its key could not be destroyed ({e}); until it is, copies of the tenant made before can still be read: fix the cause and destroy the tenant again"),
        },
    })
}

/// Keys `conn` with `key`: run first, before anything reads the file.
///
/// # Errors
///
/// SQLite's, if the statements fail (a wrong key shows only at the first
/// read, as "file is not a database").
pub(crate) fn apply(conn: &Connection, key: Option<&TenantKey>) -> rusqlite::Result<()> {
    match key {
        Some(key) => conn.execute_batch(&key.pragmas()),
        None => Ok(()),
    }
}

/// Proves that `key`, applied to `conn` (a connection to an existing
/// database, its busy timeout set), opens it: reads the schema table, on
/// page 1 past its plaintext header. `PRAGMA user_version` alone does
/// not: it lies inside the plaintext header, and while another
/// connection has the file open in WAL mode SQLCipher was measured to
/// answer it under a wrong key (1,991 times in 2,000). Taken for the key
/// there, the wrong key made serving processes fail with "out of memory"
/// and made the settling of an interrupted re-key throw the staged key
/// away while the database was under it (an outside probe).
///
/// # Errors
///
/// A refused key as SQLCipher says it when it notices (`SQLITE_NOMEM`,
/// which `storage` reads as the key refused), whatever the read said;
/// a lock wait as it is.
pub(crate) fn prove(conn: &Connection, key: Option<&TenantKey>) -> rusqlite::Result<()> {
    if key.is_none() {
        return Ok(());
    }
    let read = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
    match read {
        Err(e) if refused_key(&e) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOMEM),
            Some(format!("the key does not open the database ({e})")),
        )),
        read => read,
    }
}

/// Whether a read of page 1 failed as a wrong key makes it fail: SQLCipher
/// says `SQLITE_NOMEM` when it notices, and past the plaintext header a
/// page decrypted with the wrong key was measured to read as a schema
/// SQLite cannot make sense of (`SQLITE_ERROR`, "SQL logic error"), or
/// as no database (`SQLITE_NOTADB`). A damaged file (`SQLITE_CORRUPT`)
/// stays what SQLite says it is.
fn refused_key(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{NotADatabase, OutOfMemory, Unknown};
    matches!(
        e.sqlite_error_code(),
        Some(OutOfMemory | Unknown | NotADatabase)
    )
}
