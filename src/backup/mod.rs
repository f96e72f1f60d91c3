//! Backups and restore: one tenant copied out consistently while it is
//! written to, every tenant into a directory laid out like the root, and
//! a backup checked and published back as a tenant.

mod backup_all;
mod destination;
mod lineage;
mod options;
mod report;
#[cfg(feature = "serde")]
mod serde_impls;
mod staging;

pub use lineage::LINEAGE_RECORD;
pub use options::{BackupOptions, RestoreOptions};
pub use report::{BackupCounts, BackupOutcome, BackupReport, RestoreOutcome, TenantBackup};

pub(crate) use backup_all::{backup_all, backup_one};
pub(crate) use destination::{check_outside_root, check_source};
