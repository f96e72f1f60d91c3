#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod builder;
mod connection;
mod context;
mod debris;
mod error;
mod fleet;
mod lifecycle;
mod lock;
mod manager;
mod migrations;
mod migrator;
mod name;
mod paths;
mod pool_cache;
mod reaper;
mod template_db;

pub use builder::{ConnectionInit, TenantManagerBuilder};
pub use connection::TenantConnection;
pub use context::current_tenant;
pub use error::{BoxError, Error, PendingMigrationError, Result};
pub use fleet::{
    MigrateOptions, MigrationReport, Progress, StatusReport, TenantReport, TenantStatus,
};
pub use manager::TenantManager;
pub use migrations::{Migration, Migrations};
pub use migrator::MigrationOutcome;
pub use name::{MAX_TENANT_NAME_LEN, TenantName};
pub use paths::{DEFAULT_BUCKETS, DEFAULT_TEMPLATE, RootConfig, Tenants, bucket_of};
pub use pool_cache::PoolStats;
pub use template_db::INTERNAL_DIR;

// Re-exported so users name the same versions tenanted links against.
pub use r2d2;
pub use rusqlite;
