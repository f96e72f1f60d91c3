//! How a root is described: every call that may write checks the root's
//! records against this program's first (a build writes nothing), and
//! just before its first write to a tenant a program records what the
//! root lacks. Records are read before anything is written, and only what
//! is missing is written: a described root needs no free space, and a
//! call that is refused (a missing tenant, a bad name) writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use super::history::{HistoryEntry, check_history, needs_recording, record_history};
use super::layout_record::LayoutRecord;
use crate::error::{Error, Result};
use crate::fs::Patience;

/// A root's description as this program would write it (its layout, the
/// history of its migrations), and whether it has been checked and
/// recorded.
#[derive(Debug)]
pub(crate) struct RootDescription {
    layout: LayoutRecord,
    history: Vec<HistoryEntry>,
    accept_changes: bool,
    /// Checked and recorded once: later calls need not look again.
    described: AtomicBool,
}

impl RootDescription {
    /// The description of `layout` with the migrations `history`;
    /// `accept_changes` rewrites a recorded history that differs.
    pub(crate) fn new(
        layout: LayoutRecord,
        history: Vec<HistoryEntry>,
        accept_changes: bool,
    ) -> Self {
        RootDescription {
            layout,
            history,
            accept_changes,
            described: AtomicBool::new(false),
        }
    }

    /// This program's migrations, as the history holds them.
    pub(crate) fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// Checks the root's records against this program's, writing nothing.
    ///
    /// # Errors
    ///
    /// [`Error::LayoutMismatch`], [`Error::RootFormatTooNew`],
    /// [`Error::BadLayoutRecord`], [`Error::MigrationChanged`], I/O errors.
    pub(crate) fn check(&self) -> Result<()> {
        self.layout.check()?;
        check_history(self.layout.root(), &self.history, self.accept_changes).map(drop)
    }

    /// [`check`](Self::check), unless this program has already checked
    /// and recorded the root.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub(crate) fn check_unless_described(&self) -> Result<()> {
        match self.described.load(Ordering::Relaxed) {
            true => Ok(()),
            false => self.check(),
        }
    }

    /// Just before a first write: checks the records, then records what
    /// the root lacks, waiting for another process recording at the same
    /// time until `patience` runs out. A root that does not exist yet is
    /// left alone.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check); I/O errors writing, or another process
    /// holding a record's lock past `patience`.
    pub(crate) fn record_before_write(&self, patience: &Patience) -> Result<()> {
        if self.described.load(Ordering::Relaxed) {
            return Ok(());
        }
        let root = self.layout.root();
        let layout_there = self.layout.check()?;
        let recorded = check_history(root, &self.history, self.accept_changes)?;
        if !crate::fs::sys::is_dir(root) {
            return Ok(());
        }
        // Two programs recording at once: one writes, the other compares.
        if !layout_there {
            self.layout.record()?;
        }
        if needs_recording(recorded.as_deref(), &self.history, self.accept_changes) {
            record_history(root, &self.history, (self.accept_changes, patience))?;
        }
        self.described.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Records the description now, making the root directory if needed
    /// (`tenanted init`).
    ///
    /// # Errors
    ///
    /// As [`record_before_write`](Self::record_before_write); an I/O error
    /// if the root cannot be made.
    pub(crate) fn record_now(&self, patience: &Patience) -> Result<()> {
        let root = self.layout.root();
        crate::fs::sys::make_dir_all(root)
            .map_err(|e| Error::io(None, root, "creating the tenant root", e))?;
        self.record_before_write(patience)
    }
}
