//! Whether a root keeps encrypted tenants' keys, for a manager without a
//! key provider (or a build without the `encryption` feature): built
//! before the root kept any, it must not create a plaintext tenant among
//! encrypted ones, nor destroy a tenant and leave its key behind (every
//! copy of it made before could then still be read).

use std::path::Path;

use crate::error::{Error, Result, blocked};
use crate::fs::dir::Dir;
use crate::name::TenantName;
use crate::root_description::keys_dir;

/// What this program lacks to read an encrypted tenant.
#[cfg(feature = "encryption")]
const NO_PROVIDER: &str = "this manager has no key provider";

/// What this program lacks to read an encrypted tenant.
#[cfg(not(feature = "encryption"))]
const NO_PROVIDER: &str = "this program was built without tenanted's `encryption` feature";

/// How to give a manager the root's keys.
#[cfg(feature = "encryption")]
pub(crate) const WITH_A_PROVIDER: &str = "build it with .encryption(RootKeyStore::new(root, MasterKey::from_env()?)) (the tenanted CLI: set TENANTED_MASTER_KEY or TENANTED_MASTER_KEY_FILE)";

/// How to give the root's keys to this program, built without them.
#[cfg(not(feature = "encryption"))]
pub(crate) const WITH_A_PROVIDER: &str = "use a build with tenanted's `encryption` feature, given the root's master key (the tenanted CLI: `cargo install tenanted --features cli,encryption`, then set TENANTED_MASTER_KEY)";

/// Why a create without a provider is refused on a root that keeps keys.
pub(crate) const NO_PLAINTEXT_AMONG_ENCRYPTED: &str =
    "a tenant created now would be plaintext among encrypted ones";

/// Why a destroy without a provider is refused on a root that keeps keys.
pub(crate) const NO_KEY_LEFT_BEHIND: &str = "a destroy now would leave the tenant's key behind, and every copy of it made before could still be read";

/// Whether the keys directory of `root` holds any file. An empty
/// one keeps no tenant's key (a re-key of a plaintext tenant that failed
/// leaves it so, its staged key discarded): its tenants open without
/// keys, so a root holding one is not refused. The directory is not
/// removed instead: a create that opened it, not yet locked, would then
/// write its key into a directory no longer in the root. Its errors name
/// `tenant`, the one whose operation asked.
pub(crate) fn keeps_keys(root: &Path, tenant: Option<&TenantName>) -> Result<bool> {
    let keys = keys_dir(root);
    let keys = keys.as_path();
    let dir = match Dir::open(root, keys) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        // Something else where the keys directory belongs (a link, a
        // file) is taken for keys kept, as before this looked inside.
        Err(e) if blocked(&e).is_some_and(|b| b.path == keys) => return Ok(true),
        // The root or its `.tenanted` is no directory: the root's own
        // checks say so, by name.
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(false),
        Err(e) => return Err(Error::io(tenant, keys, "opening the keys directory", e)),
    };
    let empty = dir.is_empty();
    // One entry tells: a root of a million keys is not listed for it.
    Ok(!empty.map_err(|e| Error::io(tenant, keys, "reading the keys directory", e))?)
}

/// Refuses `operation` on `tenant` (what it would do wrong, in words) by
/// a manager without a key provider on a root that keeps keys.
///
/// # Errors
///
/// [`Error::Encryption`] when the root keeps keys; the keys directory's
/// errors.
pub(crate) fn refuse_without_provider(
    tenant: &TenantName,
    root: &Path,
    operation: &str,
) -> Result<()> {
    if !keeps_keys(root, Some(tenant))? {
        return Ok(());
    }
    Err(Error::Encryption {
        tenant: Some(tenant.clone()),
        path: keys_dir(root),
        reason: format!(
            "this root keeps encrypted tenants' keys, and this manager has no key provider: {operation}; nothing was done: {}",
            WITH_A_PROVIDER
        ),
    })
}

/// [`Error::Encryption`] for `tenant`, whose database at `path` is
/// encrypted, opened without its key (SQLite would call it malformed, and
/// the advice to restore it from a backup would be wrong).
pub(crate) fn unkeyed_open(tenant: &TenantName, path: &Path) -> Error {
    Error::Encryption {
        tenant: Some(tenant.clone()),
        path: path.to_path_buf(),
        reason: format!(
            "its database {} is encrypted, and {NO_PROVIDER}: {WITH_A_PROVIDER}; tenanted left the tenant untouched",
            path.display()
        ),
    }
}
