//! Backups and restore: one tenant copied out consistently while it is
//! written to, every tenant into a directory laid out like the root, and
//! a backup checked and published back as a tenant.

mod destination;
mod fleet;
mod options;
mod report;
#[cfg(feature = "serde")]
mod serde_impls;

pub use options::{BackupOptions, RestoreOptions};
pub use report::{BackupOutcome, BackupReport, RestoreOutcome, TenantBackup};

pub(crate) use destination::{check_outside_root, check_source};
pub(crate) use fleet::{backup_all, backup_one};
