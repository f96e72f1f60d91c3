//! Per-tenant encryption at rest (the `encryption` feature): a random key
//! per tenant incarnation, kept by a [`KeyProvider`], applied as the first
//! statement of every connection tenanted opens on the tenant's files.
//! Without the feature, the same calls compile to nothing.

#[cfg(feature = "encryption")]
mod apply;
#[cfg(not(feature = "encryption"))]
mod disabled;
mod kept_keys;
#[cfg(feature = "encryption")]
mod key_provider;
#[cfg(feature = "encryption")]
mod keyring;
#[cfg(feature = "encryption")]
mod keys_lock;
#[cfg(feature = "encryption")]
mod master_key;
#[cfg(feature = "encryption")]
mod root_keys;
#[cfg(feature = "encryption")]
mod tenant_key;

#[cfg(feature = "encryption")]
pub(crate) use apply::{
    apply, check_root_keys, created_key, destroyed_key, has_provider, key_kept, key_provider,
    opening_key, other_keys, prove, refuse_keyless_destroy, rekeying_provider, tenant_key,
};
#[cfg(not(feature = "encryption"))]
pub(crate) use disabled::{
    TenantKey, apply, check_root_keys, created_key, destroyed_key, has_provider, key_kept,
    opening_key, other_keys, prove, refuse_keyless_destroy, tenant_key,
};
pub(crate) use kept_keys::unkeyed_open;
#[cfg(feature = "encryption")]
pub use key_provider::KeyProvider;
#[cfg(feature = "encryption")]
pub(crate) use keyring::register_for;
#[cfg(feature = "encryption")]
pub use master_key::MasterKey;
#[cfg(feature = "encryption")]
pub use root_keys::RootKeyStore;
#[cfg(feature = "encryption")]
pub(crate) use tenant_key::KEY_REFUSED;
#[cfg(feature = "encryption")]
pub use tenant_key::TenantKey;
