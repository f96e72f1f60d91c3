//! One SQLite database file per tenant, for synchronous Rust services:
//! validated tenant names, bucketed paths, atomic create and destroy,
//! LRU-capped r2d2 pools whose schema is checked when opened, parallel
//! fleet migrations, and consistent backups and checked restores.
//!
//! ```
//! use tenanted::{Migration, Migrations, RootConfig, TenantManager};
//!
//! let dir = tempfile::tempdir()?;
//! let migrations = Migrations::new(vec![
//!     Migration::new("create_notes", "CREATE TABLE notes (body TEXT NOT NULL);"),
//! ]);
//! let manager = TenantManager::builder(RootConfig::new(dir.path()), migrations).build()?;
//!
//! manager.create_tenant("acme")?;
//! let conn = manager.connection("acme")?;
//! conn.execute("INSERT INTO notes (body) VALUES ('hello')", [])?;
//! assert_eq!(manager.tenants()?.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Start with [`TenantManager`] (made by [`TenantManager::builder`]): it
//! creates, lists, opens, migrates and destroys tenants. [`RootConfig`]
//! says where their files live, [`Migrations`] what their schema is, and
//! [`Error`] what went wrong and what to do about it.
//!
//! The [README] walks through the API in short, paths and buckets,
//! connections and pools, fleet migrations, the command line, the
//! guarantees and the tests that prove them, and what happens after a crash
//! or with several processes. The [design document] describes the layers,
//! the four main flows step by step, the on-disk format, the lock protocol
//! and why a checkout and a destroy never miss each other.
//!
//! [README]: https://docs.rs/crate/tenanted/latest/source/README.md
//! [design document]: https://docs.rs/crate/tenanted/latest/source/docs/design.md

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backup;
mod builder;
mod busy;
mod context;
mod crypt;
mod error;
mod fleet;
mod fs;
#[cfg(feature = "tokio")]
mod interact;
mod limits;
mod manager;
mod migrate;
mod name;
mod paths;
mod pool;
pub mod replication;
mod root_description;
mod storage;
mod tenant_limits;
mod tenant_status;
mod tenant_usage;
#[cfg(feature = "testing")]
pub mod testing;

pub use backup::{
    BackupCounts, BackupOptions, BackupOutcome, BackupReport, LINEAGE_RECORD, RestoreOptions,
    RestoreOutcome, TenantBackup,
};
pub use builder::TenantManagerBuilder;
pub use busy::WaitedFor;
pub use context::current_tenant;
#[cfg(feature = "encryption")]
pub use crypt::{KeyProvider, MasterKey, RootKeyStore, TenantKey};
pub use error::{BoxError, Error, NoConnection, OtherProcess, PendingMigrationError, Result};
#[cfg(feature = "serde")]
pub use fleet::ReportWithLines;
pub use fleet::{FleetCounts, FleetReport, FleetSummary, KEPT_FAILURES, Progress};
pub use limits::{
    NEAR_LIMIT, SuspendMode, Suspension, TenantLimits, TenantUsage, UsageOrder, UsageReport,
};
pub use manager::TenantManager;
pub use migrate::{
    MigrateOptions, Migration, MigrationCounts, MigrationOutcome, MigrationPlan, MigrationReport,
    MigrationSummary, Migrations, PlannedTenant, StatusReport, TenantReport, TenantStatus,
};
pub use name::{MAX_TENANT_NAME_LEN, TenantName};
pub use paths::{DEFAULT_BUCKETS, DEFAULT_TEMPLATE, ReplicaTarget, RootConfig, Tenants, bucket_of};
pub use pool::{ConnectionInit, PoolStats, TenantConnection};
pub use root_description::INTERNAL_DIR;
pub use storage::CreateReport;

/// Migrations compiled into the binary from a directory laid out as for
/// [`Migrations::from_dir`] (`NNNN_name/up.sql`, optional `down.sql`), so a
/// shipped program does not read them from a build machine's path.
/// Evaluates to `Result<Migrations>`, with the same checks and errors as
/// `from_dir`.
///
/// The path is relative to the directory `cargo` runs the compiler in (the
/// package's, or the workspace's); `$CARGO_MANIFEST_DIR` in it is replaced
/// by the package's directory, which is the robust form. Editing a
/// migration's SQL rebuilds the program; adding a migration directory
/// needs a `touch` of the file using the macro (or `cargo clean -p`), as
/// with any `include_dir!`.
///
/// ```
/// let migrations = tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")?;
/// let from_disk = tenanted::Migrations::from_dir(
///     concat!(env!("CARGO_MANIFEST_DIR"), "/schema/migrations"),
/// )?;
/// assert_eq!(migrations, from_disk);
/// # Ok::<(), tenanted::Error>(())
/// ```
#[macro_export]
macro_rules! embed_migrations {
    ($dir:tt) => {{
        use $crate::__private::include_dir;
        static DIR: include_dir::Dir<'static> = include_dir::include_dir!($dir);
        $crate::Migrations::__from_embedded(&DIR)
    }};
}

#[doc(hidden)]
pub mod __private {
    pub use include_dir;

    // The command line's words for what the library's messages advise.
    pub use crate::error::missing_database_way_out;
}

// Re-exported so users name the same versions tenanted links against.
pub use r2d2;
pub use rusqlite;

/// The README's code blocks, run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
