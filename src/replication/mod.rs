//! Replication with Litestream: its control socket, a root's replication
//! settings, what each lifecycle operation does about a tenant's replica,
//! `tenanted replicate`, which runs Litestream for a whole root, and a
//! root rebuilt from its replica on a fresh machine.

mod control;
mod followed;
mod lifecycle;
mod listing;
mod quiet;
mod rebuild;
mod rebuild_options;
mod rebuild_report;
mod restore_command;
mod retiring;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "serde")]
mod serde_impls;
mod settings;
mod status;
mod store;
mod supervisor;
mod tenant_files;
mod timestamp;
mod until;

pub use control::{ControlSocket, LitestreamInfo, Registered, Registration, Synced, Unregistered};
pub(crate) use followed::Followed;
pub use rebuild_options::RebuildOptions;
pub use rebuild_report::{RebuildOutcome, RebuildReport, TenantRebuild};
pub use settings::ReplicationSettings;
#[cfg(feature = "encryption")]
pub(crate) use settings::refuse_encryption;
pub use status::{ReplicaState, ReplicationStatus, STALLED, TenantReplication};
pub use store::GRAVEYARD;
pub use supervisor::{ReplicateOptions, Replicator, ScanReport};
pub use timestamp::{format_timestamp, parse_timestamp};
