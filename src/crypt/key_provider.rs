//! Where tenant keys come from: the trait a user implements to keep them
//! in their key management service, and that [`RootKeyStore`] implements
//! with files in the root.
//!
//! [`RootKeyStore`]: crate::RootKeyStore

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::name::TenantName;

use super::TenantKey;

/// Keeps one key per tenant incarnation. tenanted asks for a new key when
/// it creates a tenant, for the key each time it opens the tenant's files
/// (a pool's first connection, a migration, a backup, a restore), and
/// destroys the key when it destroys the tenant: copies of the tenant's
/// files made before (backups, a stolen disk) can then never be read.
///
/// Every method must be safe to call from several threads and processes
/// at once for different tenants; tenanted calls
/// [`create_key`](Self::create_key) and [`destroy_key`](Self::destroy_key)
/// only while it holds the tenant's lock.
pub trait KeyProvider: Send + Sync + 'static {
    /// Makes and keeps a new random key for a new incarnation of `tenant`,
    /// replacing (and so destroying) any key kept for an earlier one.
    /// Called only once tenanted knows the tenant does not exist. The key
    /// must be stored durably before this returns.
    ///
    /// # Errors
    ///
    /// Why the key could not be made or stored; the create then fails.
    fn create_key(&self, tenant: &TenantName) -> Result<TenantKey>;

    /// The key of `tenant`'s current incarnation, or `None` if none is
    /// kept (a tenant created without encryption, or one destroyed).
    ///
    /// # Errors
    ///
    /// Why a key that is kept could not be read.
    fn key(&self, tenant: &TenantName) -> Result<Option<TenantKey>>;

    /// Destroys `tenant`'s key, durably before it returns; `Ok` when no
    /// key is kept. A staged key (see [`stage_key`](Self::stage_key)) is
    /// destroyed too.
    ///
    /// # Errors
    ///
    /// Why the key could not be destroyed.
    fn destroy_key(&self, tenant: &TenantName) -> Result<()>;

    /// Makes and keeps a new random key for `tenant` beside its current
    /// one, durably before it returns (replacing a staged key kept
    /// before): the first step of a re-key
    /// ([`TenantManager::rekey_tenant`](crate::TenantManager::rekey_tenant)).
    /// Until it is committed or discarded, tenanted opens the tenant with
    /// whichever of the two keys opens it, so a re-key interrupted at any
    /// point leaves the tenant readable.
    ///
    /// # Errors
    ///
    /// Why the key could not be made or stored. The default refuses: a
    /// provider that cannot keep two keys for a tenant cannot re-key it.
    fn stage_key(&self, tenant: &TenantName) -> Result<TenantKey> {
        Err(Error::Encryption {
            tenant: Some(tenant.clone()),
            path: PathBuf::new(),
            reason: "this key provider cannot re-key a tenant: it does not implement KeyProvider::stage_key, staged_key, commit_staged_key and discard_staged_key".to_string(),
        })
    }

    /// The key staged for `tenant` by [`stage_key`](Self::stage_key) and
    /// neither committed nor discarded yet, if any.
    ///
    /// # Errors
    ///
    /// Why a staged key that is kept could not be read.
    fn staged_key(&self, tenant: &TenantName) -> Result<Option<TenantKey>> {
        let _ = tenant;
        Ok(None)
    }

    /// Makes the staged key `tenant`'s current key and destroys the one it
    /// replaces, durably before it returns (the tenant's database is now
    /// encrypted with the staged key). `Ok` when no key is staged.
    ///
    /// # Errors
    ///
    /// Why the keys could not be swapped; both are then still kept.
    fn commit_staged_key(&self, tenant: &TenantName) -> Result<()> {
        let _ = tenant;
        Ok(())
    }

    /// The tenants with a staged key: re-keys under way, or interrupted
    /// (`remove_debris` settles those). The default: none.
    ///
    /// # Errors
    ///
    /// Why the staged keys could not be listed.
    fn staged_tenants(&self) -> Result<Vec<TenantName>> {
        Ok(Vec::new())
    }

    /// Destroys the key staged for `tenant` (a re-key that did not swap
    /// the database), durably; `Ok` when none is staged.
    ///
    /// # Errors
    ///
    /// Why the staged key could not be destroyed.
    fn discard_staged_key(&self, tenant: &TenantName) -> Result<()> {
        let _ = tenant;
        Ok(())
    }

    /// Where `tenant`'s key is kept, for an error to name when an
    /// encrypted tenant's key is not there (a keys directory not put back
    /// after a rebuild). `None`, the default, when it is no path (a KMS).
    fn key_location(&self, tenant: &TenantName) -> Option<PathBuf> {
        let _ = tenant;
        None
    }

    /// Whether this provider is known to hold the root's keys (it opened
    /// one of them), asked once when a manager is built with it. Of the
    /// providers several managers of one process were built with for one
    /// root, one that says so serves them all, so that a manager given a
    /// wrong master key cannot take the root from the right one. `false`,
    /// the default, when the provider cannot tell (or the root keeps no
    /// key yet): then the first registered serves.
    fn holds_the_roots_keys(&self) -> bool {
        false
    }

    /// Checks, before each fleet run (status, migrate, usage, backup),
    /// that this provider can serve the root at all. Such a run may open
    /// no tenant (every one up to date: versions and sizes are read
    /// outside SQLite), and would then report a fleet that no process
    /// given this provider can open. `Ok`, the default, when it can or
    /// cannot tell.
    ///
    /// # Errors
    ///
    /// Why the root's keys are known not to open with this provider
    /// ([`RootKeyStore`](crate::RootKeyStore): its master key opens none of the root's key
    /// files it tried); the run then looks at no tenant.
    fn check_root_keys(&self) -> Result<()> {
        Ok(())
    }
}
