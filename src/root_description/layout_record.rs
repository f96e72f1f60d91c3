//! `.tenanted/layout`: the on-disk format the root is in and the template
//! and bucket count it was first used with, so that a program opened on it
//! with another layout fails instead of listing nothing and creating a
//! second, differently placed copy of a tenant, and a program older than
//! the root's format (one that does not know its lock protocol) refuses it
//! instead of working beside a newer one.
//!
//! Every walk of the root checks it (`paths`); the first write of a
//! manager records it (see `description.rs`), and so does a backup run in
//! the directory it writes.

use std::io;
use std::path::{Path, PathBuf};

use super::internal_dir::INTERNAL_DIR;
use crate::error::{Error, Result};
use crate::fs::record::{read_contained, record_once};
use crate::fs::sys;

/// The layout record's file name in [`INTERNAL_DIR`].
const LAYOUT_RECORD: &str = "layout";

/// The on-disk format this release writes and knows (see "On-disk format"
/// in `docs/design.md`): a release that changes the files, their names or
/// the lock protocol raises it, and older programs then refuse the root.
pub(crate) const FORMAT: u32 = 1;

/// A root's layout as a program would record it.
#[derive(Debug, Clone)]
pub(crate) struct LayoutRecord {
    root: PathBuf,
    template: String,
    buckets: u32,
}

impl LayoutRecord {
    /// The layout `template` with `buckets` buckets, of the root `root`.
    pub(crate) fn new(root: &Path, template: &str, buckets: u32) -> Self {
        LayoutRecord {
            root: root.to_path_buf(),
            template: template.to_owned(),
            buckets,
        }
    }

    /// The root it describes.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where the layout is recorded.
    pub(crate) fn path(&self) -> PathBuf {
        self.root.join(INTERNAL_DIR).join(LAYOUT_RECORD)
    }

    /// The layout, as the record holds it.
    pub(crate) fn text(&self) -> String {
        format!(
            "format {FORMAT}\ntemplate {}\nbuckets {}\n",
            self.template, self.buckets
        )
    }

    /// Checks this layout against the one recorded in the root; a root
    /// with no record (new: nothing written yet) passes. Returns whether a
    /// record is there (and agrees).
    ///
    /// # Errors
    ///
    /// [`Error::RootFormatTooNew`] for a root in a format newer than
    /// [`FORMAT`]; [`Error::LayoutMismatch`] naming both layouts;
    /// [`Error::BadLayoutRecord`] for a record missing a line it always
    /// has; [`Error::NotADirectory`] when the root or its `.tenanted` is
    /// not a directory; an I/O error reading the record.
    pub(crate) fn check(&self) -> Result<bool> {
        let path = self.path();
        match read_contained(&self.root, Path::new(INTERNAL_DIR), &path) {
            Ok(recorded) if recorded == self.text() => Ok(true),
            Ok(recorded) => Err(self.disagreement(&recorded)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // Damaged as a junk line is (an outside probe: "stream did not
            // contain valid UTF-8", and no word of what to do).
            Err(ref e) if let Some(not_text) = sys::NotText::in_error(e) => {
                Err(Error::BadLayoutRecord {
                    path,
                    reason: not_text.to_string(),
                    format: FORMAT,
                })
            }
            Err(_) if let Some(blocked) = self.root_blocked() => Err(blocked),
            Err(_) if let Some(blocked) = self.internal_dir_blocked() => Err(blocked),
            Err(e) => Err(Error::io(
                None,
                path,
                "reading the root's recorded layout",
                e,
            )),
        }
    }

    /// The template and bucket count recorded in `root`, as written
    /// (`None`: no record yet, a root nothing was written to). A line that
    /// is missing comes back empty: [`check`](Self::check) of the layout
    /// made of them says what is wrong with the record.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check), when the record cannot be read.
    pub(crate) fn recorded(root: &Path) -> Result<Option<(String, String)>> {
        let probe = LayoutRecord::new(root, "", 0);
        match read_contained(root, Path::new(INTERNAL_DIR), &probe.path()) {
            Ok(text) => {
                let field = |key: &str| {
                    (text.lines())
                        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                        .unwrap_or_default()
                        .to_owned()
                };
                Ok(Some((field("template"), field("buckets"))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // Says why, as every other reader of the record does.
            Err(_) => probe.check().map(|_| None),
        }
    }

    /// Records this layout unless a record is there; one that another
    /// process wrote first must agree.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check); I/O errors writing the record (not for
    /// a read-only root: see `fs/record.rs`).
    pub(crate) fn record(&self) -> Result<()> {
        if record_once(&self.path(), &self.text())?.is_some() {
            self.check()?;
        }
        Ok(())
    }

    /// [`Error::NotADirectory`] if the root itself (a link to a
    /// directory is fine: the operator placed it) is a file.
    fn root_blocked(&self) -> Option<Error> {
        let meta = crate::fs::sys::metadata(&self.root).ok()?;
        let found = not_a_directory(meta.file_type())?;
        Some(Error::NotADirectory {
            tenant: None,
            path: self.root.clone(),
            found,
        })
    }

    /// [`Error::NotADirectory`] if `.tenanted` is a link or a file.
    fn internal_dir_blocked(&self) -> Option<Error> {
        let internal = self.root.join(INTERNAL_DIR);
        let meta = crate::fs::sys::symlink_metadata(&internal).ok()?;
        let found = not_a_directory(meta.file_type())?;
        Some(Error::NotADirectory {
            tenant: None,
            path: internal,
            found,
        })
    }

    /// Why `recorded`, which is not this layout's record, is refused: a
    /// damaged record (read before the format, so that a record without
    /// its format line is not taken for another layout), a newer format,
    /// or another layout.
    fn disagreement(&self, recorded: &str) -> Error {
        let field = |key: &str| {
            recorded
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        };
        let damaged = |reason: String| Error::BadLayoutRecord {
            path: self.path(),
            reason,
            format: FORMAT,
        };
        let Some(found) = field("format") else {
            return damaged("it has no `format N` line".to_owned());
        };
        match found.trim().parse::<u32>() {
            Err(_) => return damaged(format!("its format `{found}` is not a number")),
            Ok(found) if found > FORMAT => {
                return Error::RootFormatTooNew {
                    root: self.root.clone(),
                    found: found.to_string(),
                    known: FORMAT,
                };
            }
            Ok(_) => {}
        }
        let (Some(template), Some(buckets)) = (field("template"), field("buckets")) else {
            return damaged("it lacks its `template` or `buckets` line".to_owned());
        };
        if template == self.template && buckets == self.buckets.to_string() {
            return damaged("it has lines tenanted does not write".to_owned());
        }
        self.layout_mismatch(recorded)
    }

    fn layout_mismatch(&self, recorded: &str) -> Error {
        let field = |key: &str| {
            recorded
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .unwrap_or("?")
                .to_owned()
        };
        Error::LayoutMismatch {
            root: self.root.clone(),
            recorded_template: field("template "),
            recorded_buckets: field("buckets "),
            template: self.template.clone(),
            buckets: self.buckets,
        }
    }
}

/// What a file type that is not a directory is, in words.
fn not_a_directory(t: std::fs::FileType) -> Option<&'static str> {
    Some(match t {
        t if t.is_dir() => return None,
        t if t.is_symlink() => "a symbolic link",
        t if t.is_file() => "a regular file",
        _ => "a special file",
    })
}
