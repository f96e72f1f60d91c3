//! The template database: an empty tenant already at the latest schema,
//! copied by `create_tenant` so that creation cost does not grow with the
//! number of migrations.
//!
//! It lives at `ROOT/.tenanted/templates/.<fingerprint>.sqlite3`, keyed by
//! the migrations' fingerprint, so changing a migration builds a new one.
//! `tenants()` never lists it: hidden names are not tenant names. Its own
//! name is hidden too, because Litestream's directory mode matches file
//! names anywhere under the root (a flat layout's pattern is
//! `[^.]*.sqlite3`, see `paths/litestream.rs`): replicated, the template
//! would be changed by Litestream (its tables, WAL mode), and every tenant
//! copied from it would carry them. This layer builds and caches the
//! file; the caller supplies the schema.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::busy::{Busy, WaitedFor, busy};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::files::{
    build_by_rename, remove_quietly, remove_sidecars, remove_tree_quietly, remove_with_sidecars,
};
use crate::fs::lock::{FileLock, split};
use crate::fs::siblings::{litestream_dir, lock_path};
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::paths::INTERNAL_DIR;
use crate::storage::lifecycle::debris::remove_debris;
use crate::storage::lifecycle::template_check::{digest_name, is_intact, record_digest};

/// The template file for the migrations whose fingerprint is `key`.
fn template_path(root: &Path, key: u64) -> PathBuf {
    root.join(INTERNAL_DIR)
        .join("templates")
        .join(format!(".{key:016x}.sqlite3"))
}

/// Whether `name` is a template's file name, of this release (hidden) or
/// an earlier one (`<fingerprint>.sqlite3`).
fn is_template(name: &str) -> bool {
    let hex = name.strip_prefix('.').unwrap_or(name);
    hex.strip_suffix(".sqlite3")
        .is_some_and(|key| key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A template database, open: whatever removes its path meanwhile (a
/// process running other migrations builds its own and removes the rest),
/// the copy reads this file.
#[derive(Debug)]
pub(crate) struct Template {
    pub(in crate::storage) file: File,
    pub(in crate::storage) path: PathBuf,
}

/// Returns the template database keyed `key` under `root`, open, building
/// it first if needed: a new WAL database that `migrate` brings to the
/// latest schema. Several threads or processes may call this at once: one
/// builds, the others wait for it (until `patience` runs out: then
/// `TenantBusy` for `tenant`, whose create needs the template, naming the
/// template's lock) and reuse its file. Errors name `tenant`.
pub(crate) fn ensure_template(
    root: &Path,
    key: u64,
    tenant: &TenantName,
    patience: &Patience,
    migrate: impl Fn(&mut Connection, &Path) -> Result<()>,
) -> Result<Template> {
    let path = template_path(root, key);
    if let Some(template) = open_template(root, &path, tenant)?.and_then(intact) {
        return Ok(template);
    }
    let lock_file = lock_path(&path);
    let lock = FileLock::acquire(root, &lock_file, true, patience, WaitedFor::TemplateBuild)
        .map_err(|e| match busy(&e) {
            // The lock's file, not the tenant's: the tenant is not there
            // yet (an outside probe: "the tenant at ... was left intact").
            // Only a build takes it, whatever its holder wrote in it.
            Some(wait) => {
                let waited_for = WaitedFor::TemplateBuild;
                Error::busy(tenant, &lock_file, Busy { waited_for, ..wait })
            }
            None => Error::io(Some(tenant), &lock_file, "locking the template database", e),
        })?;
    match open_template(root, &path, tenant)? {
        Some(found) => match intact(found) {
            Some(template) => Ok(template),
            None => {
                tracing::warn!(path = %path.display(), "the template database does not match the digest recorded when it was built (damaged, or changed by hand): building it again");
                build_template(lock.dir(), &path, tenant, &migrate)
            }
        },
        None => build_template(lock.dir(), &path, tenant, &migrate),
    }
}

/// The template, if it is the one that was built (see `template_check.rs`).
fn intact((dir, template): (Dir, Template)) -> Option<Template> {
    let name = crate::fs::siblings::name_of(&template.path);
    is_intact(&dir, name, &template.file).then_some(template)
}

/// The template at `path`, open, with its directory.
fn open_template(root: &Path, path: &Path, tenant: &TenantName) -> Result<Option<(Dir, Template)>> {
    let opened = split(path).and_then(|(dir, name)| {
        let dir = Dir::open(root, dir)?;
        let file = sys::open_file(dir.fd(), name)?;
        Ok((dir, file))
    });
    match opened {
        Ok((dir, file)) => Ok(Some((
            dir,
            Template {
                file,
                path: path.to_path_buf(),
            },
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(
            Some(tenant),
            path,
            "opening the template database",
            e,
        )),
    }
}

/// Builds the template at `path` in `dir`; the caller holds its lock.
fn build_template(
    dir: &Dir,
    path: &Path,
    tenant: &TenantName,
    migrate: &impl Fn(&mut Connection, &Path) -> Result<()>,
) -> Result<Template> {
    let name = crate::fs::siblings::name_of(path);
    // We hold the template lock: any scratch file beside it is a crashed build's.
    remove_debris(None, dir, name)?;
    // And any -wal or -journal beside the template, another program's
    // writes to one found damaged: beside the new one, SQLite would apply
    // them to it (an encrypted create reads it by its path).
    remove_sidecars(dir, name).map_err(|(sidecar, e)| {
        Error::io(
            Some(tenant),
            sidecar,
            "removing the template database's -wal",
            e,
        )
    })?;
    let span = tracing::info_span!("build_template", path = %path.display());
    let _entered = span.enter();
    let file = build_by_rename(dir, name, tenant, |conn| {
        // WAL is a persistent property of the file: every copy starts in it.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(|e| Error::sqlite(Some(tenant), path, "enabling WAL in the template", e))?;
        migrate(conn, path)
    })?;
    if let Err(e) = record_digest(dir, name, &file) {
        // Built again by the next create, which finds no digest.
        tracing::warn!(path = %path.display(), error = %e, "could not record the template database's digest");
    }
    remove_stale_templates(dir, name);
    tracing::info!(path = %path.display(), "built template database");
    Ok(Template {
        file,
        path: path.to_path_buf(),
    })
}

/// Removes templates of other migration sets, with their sidecars and any
/// Litestream state. A process copying one reads its open file, unharmed;
/// a process still using another set (an old version during a deploy)
/// rebuilds its own on its next create. An earlier release's name for
/// this same set (unhidden) is kept: processes of that release, running
/// beside this one during a deploy, still use it, and some of their
/// creates (encrypted ones) attach it by path. It goes with the next
/// change of migrations.
fn remove_stale_templates(dir: &Dir, current: &Path) {
    let Ok(entries) = dir.entries() else {
        return;
    };
    let current = current.to_string_lossy();
    let earlier_name = current.strip_prefix('.').unwrap_or(&current);
    let current_digest = digest_name(Path::new(current.as_ref()));
    for (name, is_dir) in entries.into_iter().flatten() {
        let text = name.to_string_lossy();
        let stale = is_template(&text) && text != current && text != earlier_name;
        if !is_dir && stale {
            remove_with_sidecars(dir, &name);
            remove_tree_quietly(dir, &litestream_dir(&name));
        }
        // Any digest but the current template's (one whose template an
        // earlier release removed included).
        let digest = text.strip_suffix(".sum").is_some_and(is_template);
        if !is_dir && digest && name != current_digest {
            remove_quietly(dir, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_template;

    #[test]
    fn templates_of_this_release_and_earlier_ones_are_recognised() {
        assert!(is_template(".00112233aabbccdd.sqlite3"));
        assert!(is_template("00112233aabbccdd.sqlite3"));
        for other in [
            "..00112233aabbccdd.sqlite3.lock",
            "..00112233aabbccdd.sqlite3.tmp-1-2",
            ".00112233aabbccdd.sqlite3-wal",
            "acme.sqlite3",
            ".0011.sqlite3",
        ] {
            assert!(!is_template(other), "{other}");
        }
    }
}
