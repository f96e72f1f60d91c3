//! Pooled connections: one r2d2 pool per tenant in an LRU cache, the
//! checkout count that destroys drain, the cold open, and idle pruning.

mod cache;
mod connection;
mod destroy_guard;
mod opener;
mod reaper;
mod stats;
mod tenant_pool;

pub use connection::TenantConnection;
pub use opener::ConnectionInit;
pub use stats::PoolStats;

pub(crate) use cache::PoolCache;
pub(crate) use destroy_guard::DestroyGuard;
pub(crate) use opener::{OpenConfig, open, shared_connector};
pub(crate) use reaper::Reaper;
