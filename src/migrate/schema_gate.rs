//! The schema check run once when a tenant's pool is opened, on the pool's
//! first connection: WAL on, version read, and a tenant behind the code
//! refused (or migrated, with `auto_migrate`), one ahead of it refused.

use std::time::Duration;

use rusqlite::Connection;

use super::migrations::Migrations;
use super::tenant::{Prelude, check_not_ahead, migrate_to};
use crate::crypt;
use crate::error::{PendingMigrationError, Result};
use crate::name::TenantName;
use crate::storage::{TenantPath, read_without_its_key, schema_version, sqlite_error};

/// Compares the tenant's schema version (`found`: `user_version`, read on
/// `conn` when it took its lock) with the migrations; migrates it if
/// `auto_migrate` is on (`Some`: how long its lock is waited for).
pub(crate) fn check_schema(
    migrations: &Migrations,
    auto_migrate: Option<Duration>,
    tenant: &TenantName,
    at: TenantPath<'_>,
    (conn, found): (&Connection, i64),
) -> Result<()> {
    let path = at.db();
    // WAL is persistent in the file; setting it here, outside any
    // transaction, covers databases not made by create_tenant.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .map_err(|e| match read_without_its_key(at.root(), path, &e) {
            true => crypt::unkeyed_open(tenant, path),
            false => sqlite_error(tenant, path, "enabling WAL", e),
        })?;
    // Not read again: a migration by another process can land just after
    // any read, and the watcher notices it (see `pool/watcher.rs`).
    let version = schema_version(tenant, path, found)?;
    check_not_ahead(migrations, tenant, path, version)?;
    let latest = migrations.latest_version();
    if version < latest {
        let Some(wait) = auto_migrate else {
            return Err(PendingMigrationError {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
                current_version: version,
                latest_version: latest,
                pending: migrations.names_between(version, latest),
            }
            .into());
        };
        // A pool's migration records nothing about the root (as before).
        let prelude = Prelude {
            wait,
            first_write: &|_| Ok(()),
        };
        migrate_to(migrations, tenant, at, latest, prelude)?;
    }
    tracing::debug!(tenant = %tenant, version, "schema checked");
    Ok(())
}
