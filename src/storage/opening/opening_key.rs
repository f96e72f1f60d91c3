//! The key an open of a tenant's database uses: its key provider's, and,
//! when the provider keeps none for a file that is encrypted, an error
//! saying the key is missing (SQLite, reading the file without it, would
//! call the database malformed).

use std::path::Path;

use crate::crypt::{self, TenantKey};
use crate::error::Result;
use crate::fs::dir::Dir;
use crate::fs::lock::split;
use crate::name::TenantName;
use crate::storage::opening::header::{header_bytes, reserves_bytes};

/// Runs `open` (an open of `tenant`'s database at `path`, beneath `root`)
/// with the tenant's key, and, if the file refuses it (`refused` says so
/// of `open`'s error), once with each other key the provider keeps: a
/// key staged by a re-key that swapped the database and has not
/// committed the key yet (under way in another process, or interrupted
/// by a crash), or a current key committed since the first was read.
/// `open`'s last result; the key it used goes with a success.
///
/// An encrypted file for which the provider keeps no current key (a
/// plaintext tenant whose re-key stopped before its commit, or a lost
/// keys directory) is tried with the other keys only; if none opens it,
/// the key is missing. One that a manager without a key provider fails
/// to open is said to be encrypted, not damaged.
///
/// The common open reads one key and opens once: other keys are read
/// only after a refusal.
///
/// # Errors
///
/// The key provider's, or the missing key (the outer result); `open`'s
/// (the inner one).
pub(crate) fn with_tenant_key<T, E>(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    open: impl FnMut(Option<&TenantKey>) -> std::result::Result<T, E>,
    refused: impl Fn(&E) -> bool,
) -> Result<std::result::Result<(T, Option<TenantKey>), E>> {
    let refused = &refused;
    match with_keys(tenant, (root, path), open, refused)? {
        // Looked at only once an open without a provider was refused as a
        // wrong key is (SQLite's "not a database"); other failures (busy,
        // out of descriptors, a planted sidecar) are theirs.
        Err(e) if refused(&e) && !crypt::has_provider(root) && looks_encrypted(root, path) => {
            Err(crypt::unkeyed_open(tenant, path))
        }
        opened => Ok(opened),
    }
}

/// [`with_tenant_key`] with the provider's keys only.
fn with_keys<T, E>(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    mut open: impl FnMut(Option<&TenantKey>) -> std::result::Result<T, E>,
    refused: impl Fn(&E) -> bool,
) -> Result<std::result::Result<(T, Option<TenantKey>), E>> {
    let first = crypt::opening_key(tenant, (root, path), || looks_encrypted(root, path))?;
    // What is said if no other key opens it: the refusal, or the key
    // found missing.
    let (key, unopened) = match first {
        Ok(key) => match open(key.as_ref()) {
            Err(e) if refused(&e) => (key, Ok(e)),
            opened => return Ok(opened.map(|t| (t, key))),
        },
        Err(missing) => (None, Err(missing)),
    };
    for other in crypt::other_keys(tenant, root, key.as_ref())? {
        match open(Some(&other)) {
            Err(e) if refused(&e) => {}
            opened => return Ok(opened.map(|t| (t, Some(other)))),
        }
    }
    unopened.map(Err)
}

/// Whether SQLite's error `e` on the database at `path` (beneath `root`)
/// is how a read without its key fails: the file is "malformed" or "not
/// a database" to SQLite, the root has no key provider, and the file
/// looks encrypted. Then the file is not damaged, and restoring it from a
/// backup would be the wrong advice (see `crypt::unkeyed_open`). Looked
/// at only on such a failure: a success costs nothing.
pub(crate) fn read_without_its_key(root: &Path, path: &Path, e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    matches!(e.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase))
        && !crypt::has_provider(root)
        && looks_encrypted(root, path)
}

/// Whether the database at `path` looks encrypted: a SQLite header (kept
/// in plaintext, see `crypt`) whose pages reserve bytes at their end
/// (byte 20), where SQLCipher keeps each page's IV and HMAC; SQLite
/// itself reserves none. Looked at only when a key provider keeps no key
/// for the tenant, so a plaintext tenant of a root without encryption
/// never pays for it.
pub(in crate::storage) fn looks_encrypted(root: &Path, path: &Path) -> bool {
    let Ok((dir, name)) = split(path) else {
        return false;
    };
    let Ok(dir) = Dir::open(root, dir) else {
        return false;
    };
    header_bytes(dir.fd(), name).and_then(|h| reserves_bytes(&h)) == Some(true)
}
