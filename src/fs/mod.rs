//! The file system, and nothing above it: the one seam every system call
//! goes through (`sys`), the fault plan tests drive it with, directories
//! reached without following links, file identity, how full a file system
//! is, advisory file locks and who holds them (ours, and SQLite's), the
//! names of the files kept beside a database, and the small record files
//! written once.

pub(crate) mod containment;
pub(crate) mod dir;
pub(crate) mod entries;
pub(crate) mod faults;
pub(crate) mod file_id;
pub(crate) mod file_system;
pub(crate) mod files;
pub(crate) mod flock_holders;
pub(crate) mod lock;
pub(crate) mod patience;
pub(crate) mod record;
pub(crate) mod run_dirs;
pub(crate) mod siblings;
pub(crate) mod sqlite_lock_holder;
pub(crate) mod sys;

pub(crate) use dir::Dir;
#[cfg(feature = "testing")]
pub use faults::{FaultPlan, Step, StepTaken};
pub(crate) use file_id::FileId;
pub(crate) use patience::Patience;
pub(crate) use record::{read_record, rewrite_record, update_record};
