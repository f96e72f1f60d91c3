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
use crate::storage::opening::header::{header_bytes, page_size_in};

/// The key to open `tenant`'s database at `path` (beneath `root`) with:
/// `None` for a plaintext tenant.
///
/// # Errors
///
/// The key provider's; [`Error::Encryption`](crate::Error::Encryption)
/// naming the missing key when the file is encrypted and the provider
/// keeps no key for it.
pub(crate) fn opening_key(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
) -> Result<Option<TenantKey>> {
    crypt::opening_key(tenant, (root, path), || looks_encrypted(root, path))
}

/// Whether the database at `path` looks encrypted: a SQLite header (kept
/// in plaintext, see `crypt`) whose pages reserve bytes at their end
/// (byte 20), where SQLCipher keeps each page's IV and HMAC; SQLite
/// itself reserves none. Looked at only when a key provider keeps no key
/// for the tenant, so a plaintext tenant of a root without encryption
/// never pays for it.
fn looks_encrypted(root: &Path, path: &Path) -> bool {
    let Ok((dir, name)) = split(path) else {
        return false;
    };
    let Ok(dir) = Dir::open(root, dir) else {
        return false;
    };
    header_bytes(dir.fd(), name).is_some_and(|h| page_size_in(&h).is_some() && h[20] > 0)
}
