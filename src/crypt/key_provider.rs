//! Where tenant keys come from: the trait a user implements to keep them
//! in their key management service, and that [`RootKeyStore`] implements
//! with files in the root.
//!
//! [`RootKeyStore`]: crate::RootKeyStore

use std::path::PathBuf;

use crate::error::Result;
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
    /// key is kept.
    ///
    /// # Errors
    ///
    /// Why the key could not be destroyed.
    fn destroy_key(&self, tenant: &TenantName) -> Result<()>;

    /// Where `tenant`'s key is kept, for an error to name when an
    /// encrypted tenant's key is not there (a keys directory not put back
    /// after a rebuild). `None`, the default, when it is no path (a KMS).
    fn key_location(&self, tenant: &TenantName) -> Option<PathBuf> {
        let _ = tenant;
        None
    }
}
