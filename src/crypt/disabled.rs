//! Without the `encryption` feature no tenant has a key: every call here
//! is a no-op the compiler removes.

use std::path::Path;

use rusqlite::Connection;

use super::kept_keys::{NO_KEY_LEFT_BEHIND, NO_PLAINTEXT_AMONG_ENCRYPTED, refuse_without_provider};
use crate::error::Result;
use crate::name::TenantName;

/// No key can exist without the feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantKey {}

/// No tenant has a key.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn tenant_key(_tenant: &TenantName, _root: &Path) -> Result<Option<TenantKey>> {
    Ok(None)
}

/// No tenant has a key, and none is missing: the file is never looked at.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn opening_key(
    _tenant: &TenantName,
    _files: (&Path, &Path),
    _encrypted: impl FnOnce() -> bool,
) -> Result<std::result::Result<Option<TenantKey>, crate::error::Error>> {
    Ok(Ok(None))
}

/// No provider to check.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn check_root_keys(_root: &Path) -> Result<()> {
    Ok(())
}

/// No other key to try.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn other_keys(
    _tenant: &TenantName,
    _root: &Path,
    _tried: Option<&TenantKey>,
) -> Result<Vec<TenantKey>> {
    Ok(Vec::new())
}

/// Every copy is plaintext: its key is always "kept".
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn key_kept(
    _tenant: &TenantName,
    _root: &Path,
    _key: Option<&TenantKey>,
) -> Result<bool> {
    Ok(true)
}

/// No tenant is given a key: refused on a root that keeps encrypted
/// tenants' keys (a build with the feature made them).
pub(crate) fn created_key(tenant: &TenantName, root: &Path) -> Result<Option<TenantKey>> {
    refuse_without_provider(tenant, root, NO_PLAINTEXT_AMONG_ENCRYPTED)?;
    Ok(None)
}

/// Refused, before anything is done, on a root that keeps keys (see
/// [`destroyed_key`]).
pub(crate) fn refuse_keyless_destroy(tenant: &TenantName, root: &Path) -> Result<()> {
    refuse_without_provider(tenant, root, NO_KEY_LEFT_BEHIND)
}

/// Nothing to destroy, unless the root keeps keys: then refused, since
/// this build cannot destroy the tenant's.
pub(crate) fn destroyed_key(tenant: &TenantName, root: &Path) -> Result<()> {
    refuse_without_provider(tenant, root, NO_KEY_LEFT_BEHIND)
}

/// Nothing to apply.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn apply(_conn: &Connection, key: Option<&TenantKey>) -> rusqlite::Result<()> {
    match key {
        None => Ok(()),
        Some(never) => match *never {},
    }
}

/// Nothing to prove.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn prove(_conn: &Connection, key: Option<&TenantKey>) -> rusqlite::Result<()> {
    match key {
        None => Ok(()),
        Some(never) => match *never {},
    }
}

/// No key provider without the feature.
pub(crate) fn has_provider(_root: &Path) -> bool {
    false
}
