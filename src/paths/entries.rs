//! A directory's entries as a walk reads them: streamed, or, for a
//! directory of tenants' own directories (a bucket of the default layout),
//! read whole first, so that the tenants being destroyed are known before
//! their directories come. A destroy marks its tenant with
//! `.NAME.destroying` beside the tenant's directory before it touches
//! anything else, and removes the mark last (see `storage/fence.rs`): a
//! listing skips a marked tenant, so it never shows one half destroyed.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirEntry};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::vec;

/// Ends the name of a destroy's mark (and of a fenced database):
/// `.NAME.destroying`.
pub(crate) const FENCE_SUFFIX: &str = ".destroying";

/// Ends the name of the mark of a restore replacing a tenant:
/// `.NAME.restoring`.
pub(crate) const RESTORE_SUFFIX: &str = ".restoring";

/// A directory's entries.
pub(super) enum Entries {
    /// As the directory returns them.
    Streamed(fs::ReadDir),
    /// All of them with their names, read before the first is returned.
    Read {
        entries: vec::IntoIter<io::Result<(DirEntry, OsString)>>,
        /// The names marked as being destroyed (usually none).
        destroying: Vec<OsString>,
    },
}

impl Entries {
    /// Every entry of `read` at once, the marked names noted.
    pub(super) fn read_whole(read: fs::ReadDir) -> Self {
        let named = |entry: DirEntry| {
            let name = entry.file_name();
            (entry, name)
        };
        let entries: Vec<io::Result<(DirEntry, OsString)>> =
            read.map(|entry| entry.map(named)).collect();
        let destroying = entries
            .iter()
            .filter_map(|entry| marked(&entry.as_ref().ok()?.1))
            .collect();
        Entries::Read {
            entries: entries.into_iter(),
            destroying,
        }
    }

    /// Whether the entry `name` is marked as being destroyed.
    pub(super) fn being_destroyed(&self, name: &OsStr) -> bool {
        match self {
            Entries::Read { destroying, .. } => destroying.iter().any(|marked| marked == name),
            Entries::Streamed(_) => false,
        }
    }
}

/// Each entry comes with its name, read once.
impl Iterator for Entries {
    type Item = io::Result<(DirEntry, OsString)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Streamed(read) => read.next().map(|entry| {
                entry.map(|entry| {
                    let name = entry.file_name();
                    (entry, name)
                })
            }),
            Entries::Read { entries, .. } => entries.next(),
        }
    }
}

/// The name `name` marks as being destroyed, if it is a mark.
fn marked(name: &OsStr) -> Option<OsString> {
    let bytes = name.as_bytes();
    let hidden = bytes.strip_prefix(b".")?;
    let inner = [FENCE_SUFFIX, RESTORE_SUFFIX]
        .iter()
        .find_map(|suffix| hidden.strip_suffix(suffix.as_bytes()))?;
    (!inner.is_empty()).then(|| OsStr::from_bytes(inner).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_name_their_tenant() {
        assert_eq!(marked(OsStr::new(".acme.destroying")), Some("acme".into()));
        assert_eq!(
            marked(OsStr::new(".x.tmp-1.destroying")),
            Some("x.tmp-1".into())
        );
        assert_eq!(marked(OsStr::new("acme.destroying")), None);
        assert_eq!(marked(OsStr::new(".destroying")), None);
        assert_eq!(marked(OsStr::new(".acme.lock")), None);
        assert_eq!(marked(OsStr::new(".acme.restoring")), Some("acme".into()));
    }
}
