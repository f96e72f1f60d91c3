//! Which incarnation of each tenant a `backup_all` run copied: its
//! lineage, the identity of the tenant's own directory (made by the
//! tenant's create; kept by its migrations, restores and re-keys; gone
//! with its destroy), one line per copy in the run's `.tenanted/lineage`
//! (`NAME INODE-BIRTH`; a later line for a name counts over an earlier).
//! A prune of older runs (`tenanted backup --keep`) tells by it the last
//! copy of a destroyed tenant from the copies of a tenant created again
//! under its name. A layout without a directory per tenant records none,
//! and the record is best effort: a copy without a line is matched by its
//! name, as before there was a record.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::INTERNAL_DIR;

/// The file in a `backup_all` directory's `.tenanted/` that records which
/// incarnation of each tenant it holds (lines `NAME INODE-BIRTH`): a
/// prune of older runs (`tenanted backup --keep`) reads it to keep the
/// last copy of a destroyed tenant after one is made again under its name.
pub const LINEAGE_RECORD: &str = "lineage";

/// A run's record, being written.
pub(crate) struct Lineages {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
}

impl Lineages {
    /// The record of the backup directory `dir`, opened for appending
    /// (made if missing); without one (it could not be opened: logged)
    /// the run records nothing.
    pub(crate) fn open(dir: &Path) -> Lineages {
        let records = dir.join(INTERNAL_DIR);
        let path = records.join(LINEAGE_RECORD);
        let opened = Dir::open(dir, &records)
            .and_then(|d| sys::open_append(d.fd(), Path::new(LINEAGE_RECORD)));
        let file = match opened {
            Ok(file) => Some(BufWriter::new(file)),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot record which incarnation of each tenant the backup holds; a prune matches its copies by name");
                None
            }
        };
        Lineages {
            path,
            file: Mutex::new(file),
        }
    }

    /// The lineage of the tenant whose own directory is `tenant_dir`.
    pub(crate) fn of(tenant_dir: &Path) -> Option<String> {
        let (ino, born) = sys::made_as(tenant_dir).ok()?;
        Some(format!("{ino}-{born}"))
    }

    /// Records that `tenant`'s copy is of `lineage`.
    pub(crate) fn record(&self, tenant: &TenantName, lineage: &str) {
        let mut file = self.file.lock();
        let Some(writer) = file.as_mut() else {
            return;
        };
        if let Err(e) = writeln!(writer, "{tenant} {lineage}") {
            self.give_up(&mut file, e);
        }
    }

    /// Writes out what is buffered (the run's last sync makes it durable).
    pub(crate) fn finish(&self) {
        let mut file = self.file.lock();
        if let Some(Err(e)) = file.as_mut().map(|w| w.flush()) {
            self.give_up(&mut file, e);
        }
    }

    fn give_up(&self, file: &mut Option<BufWriter<File>>, e: std::io::Error) {
        tracing::warn!(file = %self.path.display(), error = %e, "cannot record which incarnation of each tenant the backup holds; a prune matches its copies by name");
        *file = None;
    }
}
