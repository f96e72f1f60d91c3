//! Pooled connections: one r2d2 pool per tenant in an LRU cache, the
//! checkout count that destroys drain, the cold open (single flight,
//! connections pinned to their file), and the watcher that retires pools
//! whose tenant another process changed.

mod cache;
mod caller_gone;
mod check_in;
mod connect_errors;
mod connection;
mod connector;
mod destroy_guard;
mod flight;
mod lease;
mod opener;
mod pinned_manager;
mod pool_state;
mod resident;
mod setting_up;
mod shard;
mod slot_gate;
mod stats;
mod tenant_pool;
mod watcher;

pub use connection::TenantConnection;
pub(crate) use connection::retire_tenant;
pub use opener::ConnectionInit;
pub use stats::PoolStats;

pub(crate) use cache::PoolCache;
#[cfg(feature = "tokio")]
pub(crate) use caller_gone::WatchingCaller;
pub(crate) use connector::{ConnectorThreads, start_connector};
pub(crate) use destroy_guard::DestroyGuard;
pub(crate) use opener::{OpenConfig, open};
pub(crate) use watcher::{WatchSettings, Watcher};
