//! The history a backup directory carries: `backup_all` copies the root's
//! migration history into the directory it writes (laid out like a root),
//! and a restore from it checks that its tenants were migrated with the
//! same migrations as the root it is restored into.

use std::path::Path;

use super::history::{HistoryEntry, first_difference, history_path, parse, read_history};
use super::internal_dir::INTERNAL_DIR;
use crate::error::{Error, Result};
use crate::fs::{Patience, read_record, update_record};
use crate::name::TenantName;

/// Copies the migration history of the root `root` into the backup
/// directory `dir`. A root with no history yet gives the backup none.
///
/// # Errors
///
/// I/O errors.
pub(crate) fn copy_history(root: &Path, dir: &Path) -> Result<()> {
    let Some(history) = read_record(&history_path(root))? else {
        return Ok(());
    };
    let patience = Patience::new(crate::fs::record::RECORD_WAIT);
    update_record(&history_path(dir), &patience, |current| {
        Ok((current != Some(history.as_str())).then(|| history.clone()))
    })
}

/// Checks the history a backup carries (the `.tenanted/migrations` of the
/// backup directory `src` is in, if it is in one) against the root's (or,
/// for a root with none yet, `ours`, the program's): a tenant migrated
/// with other migrations must not be restored as if it were on this
/// schema. A lone backup file carries no history and passes.
///
/// # Errors
///
/// [`Error::BadBackup`] naming the first migration that differs.
pub(crate) fn check_backup_history(
    tenant: &TenantName,
    src: &Path,
    root: &Path,
    ours: &[HistoryEntry],
) -> Result<()> {
    let Some(carried) = carried_history(src)? else {
        return Ok(());
    };
    let path = history_path(root);
    let ours = match read_history(&path)? {
        Some(text) => parse(&path, Some(&text))?,
        None => ours.to_vec(),
    };
    let (carried_path, carried) = carried;
    let carried = parse(&carried_path, Some(&carried)).map_err(|e| Error::BadBackup {
        tenant: tenant.clone(),
        path: src.to_path_buf(),
        reason: e.to_string(),
    })?;
    match first_difference(&carried, &ours) {
        None => Ok(()),
        Some((had, has)) => Err(Error::BadBackup {
            tenant: tenant.clone(),
            path: src.to_path_buf(),
            reason: format!(
                "its tenants were migrated with {} (checksum {}) as migration {}, but this root applied {} (checksum {}): the backup comes from a root with other migrations, and belongs in one with the same",
                had.name, had.checksum, had.version, has.name, has.checksum
            ),
        }),
    }
}

/// The history of the backup directory `src` is in, and where it is: the
/// nearest `.tenanted/migrations` in a directory above it that also has a
/// layout record (so only a directory made by `backup_all` counts).
fn carried_history(src: &Path) -> Result<Option<(std::path::PathBuf, String)>> {
    for dir in src.ancestors().skip(1) {
        let internal = dir.join(INTERNAL_DIR);
        if crate::fs::sys::metadata(&internal.join("layout")).is_ok_and(|m| m.is_file()) {
            let path = history_path(dir);
            return Ok(read_history(&path)?.map(|text| (path, text)));
        }
    }
    Ok(None)
}
