//! The root describes itself: `.tenanted/layout` (the on-disk format, the
//! template and the bucket count), `.tenanted/migrations` (every migration
//! applied in the root, with a checksum of what was applied), how both are
//! checked before any call and written just before a first write, and the
//! history a backup directory carries. Below `paths` (which checks the
//! layout before every walk), above `fs`: it is given what it compares
//! (a layout, a list of history entries) as plain values.

mod backup_history;
mod description;
mod history;
mod internal_dir;
mod layout_record;

pub(crate) use backup_history::{check_backup_history, copy_history};
pub(crate) use description::RootDescription;
pub(crate) use history::HistoryEntry;
pub use internal_dir::INTERNAL_DIR;
pub(crate) use internal_dir::keys_dir;
pub(crate) use layout_record::LayoutRecord;
