//! A new encrypted tenant's database: the template database exported into
//! a new file keyed with the tenant's new key.
//!
//! The template stays plaintext (it holds a schema and no tenant's data),
//! so it cannot be copied byte for byte into an encrypted tenant, and
//! SQLCipher cannot encrypt a plaintext file in place (`PRAGMA rekey` only
//! changes a key). `sqlcipher_export` writes the template's schema (and
//! rows, if any) into the keyed file; `user_version` is set beside it. The
//! cost is the template's schema, still not the number of migrations. The
//! template is read by its path here, not through the open file.

use std::fs::File;
use std::path::Path;

use rusqlite::Connection;

use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::files::literal_path;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::lifecycle::template_database::Template;
use crate::storage::opening::open::EXISTING;

/// Makes the new scratch file `scratch` in `dir`: the template's schema and
/// version, encrypted with `key`, in WAL mode. Returned open.
pub(in crate::storage) fn encrypted_copy(
    tenant: &TenantName,
    dir: &Dir,
    scratch: &Path,
    template: &Template,
    key: &TenantKey,
) -> Result<File> {
    let path = dir.join(scratch);
    let file = sys::create_new(dir.fd(), scratch)
        .map_err(|e| Error::io(Some(tenant), &path, "creating the new database", e))?;
    export(&path, &template.path, key).map_err(|e| {
        Error::sqlite(
            Some(tenant),
            &path,
            "writing the new encrypted database (an export of the template database)",
            e,
        )
    })?;
    Ok(file)
}

/// Writes the plaintext database `template` (the template database, or a
/// plaintext tenant's copy being encrypted) into the existing empty file
/// `path`, encrypted with `key`, in WAL mode.
pub(in crate::storage) fn export(
    path: &Path,
    template: &Path,
    key: &TenantKey,
) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(literal_path(path), EXISTING)?;
    crypt::apply(&conn, Some(key))?;
    // Nobody else sees the scratch file until it is complete and synced
    // (by the create, once): SQLite's own journal and syncs would only
    // cost fsyncs per tenant that a batch create shares.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    let template = literal_path(template);
    let template =
        (template.to_str()).ok_or_else(|| rusqlite::Error::InvalidPath(template.to_path_buf()))?;
    // An empty key: the template is plaintext.
    conn.execute("ATTACH DATABASE ?1 AS template KEY ''", [template])?;
    conn.query_row(
        "SELECT sqlcipher_export('main', 'template')",
        [],
        |_| Ok(()),
    )?;
    let version: i64 = conn.query_row("PRAGMA template.user_version", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "DETACH DATABASE template; PRAGMA main.user_version = {version};"
    ))?;
    // Every tenant is in WAL mode (the fleet reads versions from headers
    // that say so); the pragma answers with the mode.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)
}
