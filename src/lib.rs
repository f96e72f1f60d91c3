#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod builder;
mod connection;
mod context;
mod debris;
mod error;
mod fleet;
mod fnv;
mod lifecycle;
mod listing;
mod lock;
mod manager;
mod migrations;
mod migrator;
mod name;
mod pool_cache;
mod reaper;
mod root;
mod template;
mod template_db;

pub use builder::{ConnectionInit, TenantManagerBuilder};
pub use connection::TenantConnection;
pub use context::current_tenant;
pub use error::{BoxError, Error, PendingMigrationError, Result};
pub use fleet::{
    MigrateOptions, MigrationReport, Progress, StatusReport, TenantReport, TenantStatus,
};
pub use listing::Tenants;
pub use manager::TenantManager;
pub use migrations::{Migration, Migrations};
pub use migrator::MigrationOutcome;
pub use name::{MAX_TENANT_NAME_LEN, TenantName};
pub use pool_cache::PoolStats;
pub use root::{DEFAULT_BUCKETS, DEFAULT_TEMPLATE, RootConfig, bucket_of};
pub use template_db::INTERNAL_DIR;

// Re-exported so users name the same versions tenanted links against.
pub use r2d2;
pub use rusqlite;
