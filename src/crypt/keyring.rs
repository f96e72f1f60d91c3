//! Which key provider serves which root, for this process.
//!
//! Every SQLite open of a tenant's files must key the connection first:
//! the pools', a migration's, the fleet's, a backup's and a restore's.
//! Those opens are reached from many layers that all know the root but
//! not the manager; the provider is registered here for the root when a
//! manager is built with one, rather than threaded through every layer.
//! A provider stays registered while a manager built with it lives (a
//! later manager on the same root, with or without its own, finds it, so
//! no manager on that root opens an encrypted tenant without its key).
//! Which serves, of several live ones: the first that showed it holds the
//! root's keys (it opened one), else the first registered. A manager
//! built with a wrong master key neither takes the root from the right
//! one, before or after it, nor, once dropped, leaves its own behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use super::KeyProvider;
use super::kept_keys::{WITH_A_PROVIDER, keeps_keys};
use crate::error::{Error, Result};
use crate::root_description::keys_dir;

/// A provider registered for a root, and whether it showed it holds the
/// root's keys (`KeyProvider::holds_the_roots_keys`, asked once).
struct Registered {
    root: PathBuf,
    provider: Weak<dyn KeyProvider>,
    proven: bool,
}

/// Weak: each manager holds its own provider; the registry serves it to
/// the root's other managers while that one lives.
static PROVIDERS: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

/// Registers `provider` for `root` (see the module for which serves).
fn register(root: &Path, provider: &Arc<dyn KeyProvider>) {
    let proven = provider.holds_the_roots_keys();
    let mut providers = PROVIDERS.write();
    providers.retain(|r| r.provider.strong_count() > 0);
    providers.push(Registered {
        root: root.to_path_buf(),
        provider: Arc::downgrade(provider),
        proven,
    });
}

/// Registers `provider` for `root` (see the module); without one, finds
/// the provider serving the root, or checks that the root keeps no keys.
/// Returns the provider the new manager holds (its own, or the one found:
/// held, it serves that manager after the one built with it is dropped).
///
/// # Errors
///
/// [`Error::Encryption`] when the root keeps a key file and no
/// provider: a destroy would then leave the tenant's key (and every
/// earlier copy of its files readable), and its encrypted tenants could
/// not be opened.
pub(crate) fn register_for(
    root: &Path,
    provider: Option<&Arc<dyn KeyProvider>>,
) -> Result<Option<Arc<dyn KeyProvider>>> {
    if let Some(provider) = provider {
        register(root, provider);
        return Ok(Some(Arc::clone(provider)));
    }
    // Held by the manager built without one too: it keeps serving that
    // manager when the one built with it is dropped.
    if let Some(serving) = self::provider(root) {
        return Ok(Some(serving));
    }
    let keys = keys_dir(root);
    if keeps_keys(root, None)? {
        return Err(Error::Encryption {
            tenant: None,
            path: keys,
            reason: format!(
                "this root keeps encrypted tenants' keys, and the manager was built without a key provider; {WITH_A_PROVIDER}"
            ),
        });
    }
    Ok(None)
}

/// The provider serving `root`, if any: the first registered for it that
/// still lives and holds the root's keys, else the first that lives.
pub(super) fn provider(root: &Path) -> Option<Arc<dyn KeyProvider>> {
    let providers = PROVIDERS.read();
    // Few roots per process: a scan is cheaper than hashing the path.
    let for_root = || providers.iter().filter(|r| r.root == root);
    (for_root().filter(|r| r.proven))
        .chain(for_root())
        .find_map(|r| r.provider.upgrade())
}
