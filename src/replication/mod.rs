//! Replication with Litestream: its control socket, a root's replication
//! settings, what each lifecycle operation does about a tenant's replica,
//! and `tenanted replicate`, which runs Litestream for a whole root.

mod control;
mod lifecycle;
mod settings;
mod store;
mod supervisor;

pub use control::{ControlSocket, LitestreamInfo, Registered, Registration, Synced, Unregistered};
pub(crate) use lifecycle::Replication;
pub use settings::ReplicationSettings;
pub use store::GRAVEYARD;
pub use supervisor::{ReplicateOptions, Replicator, ScanReport};
