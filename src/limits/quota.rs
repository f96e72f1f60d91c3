//! Size limits enforced by SQLite itself, and what a failed write means.
//!
//! `PRAGMA max_page_count` is a setting of one connection (a new
//! connection reads SQLite's default again), so [`apply`] runs on every
//! connection a pool opens; a pool whose limit changes is reopened (see
//! `pool/watcher.rs`). Going over it fails with `SQLITE_FULL`, the code of
//! a full disk too: [`diagnose`] tells them apart.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode};

use super::policy::{Policy, SuspendMode};
use crate::error::Error;
use crate::fs::file_system::FileSystem;
use crate::name::TenantName;

/// Holds `conn` to `policy`'s size limit: the most pages of the
/// database's page size that fit in it (at least one). SQLite keeps a
/// limit below the current size at the current page count: the tenant
/// cannot grow, and pages freed by deletes are reused.
///
/// # Errors
///
/// SQLite's, reading the page size or setting the limit.
///
/// Returns the pages the limit allows when SQLite kept more (the tenant
/// was over its limit): the connection then holds the tenant at the size
/// it had, even after it shrinks (a `VACUUM`), until the limit is set on
/// it again ([`set_max_pages_by`]), which its pool does at every checkout
/// (an outside probe: a tenant shrunk below its limit grew back past it).
pub(crate) fn apply(conn: &Connection, policy: &Policy) -> rusqlite::Result<Option<u64>> {
    let Some(max_size) = policy.max_size else {
        return Ok(None);
    };
    let pages = pages_allowed(max_size, pragma(conn, "page_size")?);
    let kept = set_max_pages(conn, pages)?;
    Ok((kept > pages).then_some(pages))
}

/// Sets `conn`'s `max_page_count` to `pages`; what SQLite kept (more when
/// the database is larger already).
fn set_max_pages(conn: &Connection, pages: u64) -> rusqlite::Result<u64> {
    set_max_pages_by(conn, &max_pages_sql(pages))
}

/// The statement that sets `max_page_count` to `pages`.
pub(crate) fn max_pages_sql(pages: u64) -> String {
    format!("PRAGMA max_page_count = {pages}")
}

/// Runs `sql` (from [`max_pages_sql`]) on `conn` as a cached statement
/// (a pool runs it at every checkout of a tenant over its limit); what
/// SQLite kept.
pub(crate) fn set_max_pages_by(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    (conn.prepare_cached(sql)?).query_row([], |r| number(r, "max_page_count"))
}

/// How many pages of `page_size` bytes a limit of `max_size` bytes lets
/// a database have: the whole pages that fit in it, at least one.
pub(crate) fn pages_allowed(max_size: u64, page_size: u64) -> u64 {
    (max_size / page_size.max(1)).max(1)
}

/// The database's size in bytes as `conn` sees it (page count times page
/// size), or 0 if it cannot be read.
fn size_of(conn: &Connection) -> u64 {
    let size = pragma(conn, "page_count").and_then(|n| Ok(n * pragma(conn, "page_size")?));
    size.unwrap_or(0)
}

/// A numeric PRAGMA's value. SQLCipher answers `page_size` on a keyed
/// connection with text (as its `cipher_page_size`): a number in text is
/// read as one.
fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| number(r, name))
}

/// The first column of a PRAGMA's row `r`, as a number (see [`pragma`]).
fn number(r: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<u64> {
    let value = r.get_ref(0)?;
    let number = match value {
        ValueRef::Integer(n) => Some(u64::try_from(n).unwrap_or(0)),
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        _ => None,
    };
    number.ok_or_else(|| rusqlite::Error::InvalidColumnType(0, name.into(), value.data_type()))
}

/// The error a statement on `tenant`'s connection `conn` failed with, said
/// in tenanted's words:
///
/// - `SQLITE_FULL` with a size limit whose room left is smaller than the
///   room left on the file system: [`Error::QuotaExceeded`] (SQLite checks
///   the limit as it allocates pages, before anything is written, so the
///   smaller room is the one that ran out);
/// - any other `SQLITE_FULL`: [`Error::DiskFull`], naming the file system;
/// - `SQLITE_READONLY` on a tenant suspended read-only:
///   [`Error::TenantSuspended`];
/// - anything else: [`Error::Sqlite`] naming the tenant.
pub(crate) fn diagnose(
    conn: &Connection,
    tenant: &TenantName,
    path: &Path,
    policy: &Policy,
    e: rusqlite::Error,
) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => full(conn, tenant, path, policy, e),
        Some(ErrorCode::ReadOnly) => match &policy.suspension {
            Some(s) if s.mode == SuspendMode::ReadOnly => Error::TenantSuspended {
                tenant: tenant.clone(),
                mode: s.mode,
                reason: s.reason.clone(),
            },
            _ => statement_error(tenant, path, e),
        },
        _ => statement_error(tenant, path, e),
    }
}

fn full(
    conn: &Connection,
    tenant: &TenantName,
    path: &Path,
    policy: &Policy,
    e: rusqlite::Error,
) -> Error {
    let size = size_of(conn);
    let file_system = FileSystem::of(path);
    if let Some(limit) = policy.max_size {
        let room = limit.saturating_sub(size);
        if file_system.as_ref().is_none_or(|fs| room < fs.available) {
            return Error::QuotaExceeded {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
                limit,
                size,
            };
        }
    }
    match file_system {
        Some(fs) => Error::DiskFull {
            tenant: Some(tenant.clone()),
            path: path.to_path_buf(),
            file_system: fs.mount,
            available: fs.available,
        },
        None => statement_error(tenant, path, e),
    }
}

fn statement_error(tenant: &TenantName, path: &Path, e: rusqlite::Error) -> Error {
    Error::sqlite(
        Some(tenant),
        path,
        "a statement on the tenant's connection",
        e,
    )
}
