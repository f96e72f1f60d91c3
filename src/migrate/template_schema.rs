//! The template database's schema: storage builds and caches the file,
//! this layer brings it to the latest version once, so that creating a
//! tenant copies a file instead of running every migration.

use std::path::Path;

use rusqlite::Connection;

use super::foreign_keys::{self, Baseline};
use super::migrations::Migrations;
use crate::error::{Error, Result, concise};
use crate::name::TenantName;
use crate::storage;

/// The template database for `migrations` under `root`, built first if
/// needed (see `storage::ensure_template`) for creating `tenant`,
/// waiting for another process's build until `patience` runs out.
pub(crate) fn ensure_template(
    root: &Path,
    migrations: &Migrations,
    tenant: &TenantName,
    patience: &crate::fs::Patience,
) -> Result<storage::Template> {
    let key = migrations.fingerprint();
    storage::ensure_template(root, key, tenant, patience, |conn, path| {
        migrate_template(migrations, conn, path)
    })
}

fn migrate_template(migrations: &Migrations, conn: &mut Connection, path: &Path) -> Result<()> {
    if migrations.is_empty() {
        return Ok(());
    }
    // Said as a migration would say it, naming the script.
    migrations.check_on_empty((0, migrations.latest_version()))?;
    // As a tenant's migration runs (see `foreign_keys.rs`): a template
    // built with them on lost the rows a rebuilt table's children held.
    foreign_keys::off(conn)
        .map_err(|e| Error::sqlite(None, path, "turning foreign keys off", e))?;
    migrations
        .engine(&Baseline::empty())
        .to_latest(conn)
        .map_err(|e| {
            let migration = migrations.failing_migration(&e);
            Error::BadMigrations {
                path: path.to_path_buf(),
                reason: format!(
                    "building the template database failed{}: {}; fix the migration",
                    migration.map(|m| format!(" in {m}")).unwrap_or_default(),
                    concise(&e)
                ),
            }
        })
}
