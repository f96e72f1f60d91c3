//! The fleet engine every operation over many tenants runs on
//! (`migrate_all`, `migration_status`, `backup_all`): the feed that hands
//! tenants to worker threads as the walk finds them (`feed`), the options
//! every run takes (`options`), and the run itself with its progress,
//! cancel and per-worker tallies (`run`). An operation supplies one
//! tenant's work and its report's rows.

mod feed;
mod options;
mod run;

pub use options::Progress;

pub(crate) use feed::is_database;
pub(crate) use options::{Callback, FleetOptions};
pub(crate) use run::{Line, Lines, Run, Tally};
