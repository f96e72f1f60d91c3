#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod builder;
mod connection;
mod context;
mod error;
mod manager;
mod migrate;
mod name;
mod paths;
mod pool_cache;
mod reaper;
mod storage;

pub use builder::{ConnectionInit, TenantManagerBuilder};
pub use connection::TenantConnection;
pub use context::current_tenant;
pub use error::{BoxError, Error, PendingMigrationError, Result};
pub use manager::TenantManager;
pub use migrate::{
    MigrateOptions, Migration, MigrationOutcome, MigrationReport, Migrations, Progress,
    StatusReport, TenantReport, TenantStatus,
};
pub use name::{MAX_TENANT_NAME_LEN, TenantName};
pub use paths::{DEFAULT_BUCKETS, DEFAULT_TEMPLATE, RootConfig, Tenants, bucket_of};
pub use pool_cache::PoolStats;
pub use storage::INTERNAL_DIR;

// Re-exported so users name the same versions tenanted links against.
pub use r2d2;
pub use rusqlite;
