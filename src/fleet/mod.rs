//! The fleet engine every operation over many tenants runs on
//! (`migrate_all`, `migration_status`, `backup_all`): the feed that hands
//! tenants to worker threads as the walk finds them (`feed`), the options
//! every run takes (`options`), the run itself with its progress, cancel
//! and per-worker tallies (`run`), the window each worker walks
//! (`window`), and the report every operation's counts and lines plug into
//! (`report`, its JSON in `serde_impls`).

mod feed;
mod options;
mod report;
mod run;
#[cfg(feature = "serde")]
mod serde_impls;
mod window;

pub use options::Progress;
pub use report::{FleetCounts, FleetReport, FleetSummary, KEPT_FAILURES};

pub(crate) use feed::may_be_database;
pub(crate) use options::{Callback, FleetOptions};
pub(crate) use report::{Counting, Kept, LineBudget, grouped};
pub(crate) use run::{Begun, Line, Lines, Run, Tally};
#[cfg(feature = "serde")]
pub use serde_impls::ReportWithLines;
#[cfg(feature = "serde")]
pub(crate) use serde_impls::millis;
