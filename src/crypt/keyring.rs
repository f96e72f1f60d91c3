//! Which key provider serves which root, for this process.
//!
//! Every SQLite open of a tenant's files must key the connection first:
//! the pools', a migration's, the fleet's, a backup's and a restore's.
//! Those opens are reached from many layers that all know the root but
//! not the manager; the provider is registered here for the root when a
//! manager is built with one, rather than threaded through every layer.
//! A provider stays registered for the life of the process (a later
//! manager on the same root, with or without its own, finds it, so no
//! manager on that root opens an encrypted tenant without its key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::KeyProvider;
use super::kept_keys::{WITH_A_PROVIDER, keeps_keys};
use crate::error::{Error, Result};
use crate::root_description::keys_dir;

static PROVIDERS: RwLock<Vec<(PathBuf, Arc<dyn KeyProvider>)>> = RwLock::new(Vec::new());

/// Serves `root`'s tenant keys from `provider` from now on.
fn register(root: &Path, provider: Arc<dyn KeyProvider>) {
    let mut providers = PROVIDERS.write();
    providers.retain(|(r, _)| r != root);
    providers.push((root.to_path_buf(), provider));
}

/// Registers `provider` for `root` (see the module); without one, checks
/// that the root keeps no keys, or that a provider for it is registered.
///
/// # Errors
///
/// [`Error::Encryption`] when the root keeps a key file and no
/// provider: a destroy would then leave the tenant's key (and every
/// earlier copy of its files readable), and its encrypted tenants could
/// not be opened.
pub(crate) fn register_for(root: &Path, provider: Option<&Arc<dyn KeyProvider>>) -> Result<()> {
    if let Some(provider) = provider {
        register(root, Arc::clone(provider));
        return Ok(());
    }
    let keys = keys_dir(root);
    if self::provider(root).is_none() && keeps_keys(root)? {
        return Err(Error::Encryption {
            tenant: None,
            path: keys,
            reason: format!(
                "this root keeps encrypted tenants' keys, and the manager was built without a key provider; {WITH_A_PROVIDER}"
            ),
        });
    }
    Ok(())
}

/// The provider registered for `root`, if any.
pub(super) fn provider(root: &Path) -> Option<Arc<dyn KeyProvider>> {
    let providers = PROVIDERS.read();
    // Few roots per process: a scan is cheaper than hashing the path.
    (providers.iter())
        .find(|(r, _)| r == root)
        .map(|(_, provider)| Arc::clone(provider))
}
