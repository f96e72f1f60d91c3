//! Without the `encryption` feature no tenant has a key: every call here
//! is a no-op the compiler removes.

use std::path::Path;

use rusqlite::Connection;

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

/// No tenant is given a key.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn created_key(_tenant: &TenantName, _root: &Path) -> Result<Option<TenantKey>> {
    Ok(None)
}

/// Nothing to destroy.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn destroyed_key(_tenant: &TenantName, _root: &Path) -> Result<()> {
    Ok(())
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
