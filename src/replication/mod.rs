//! Replication with Litestream: its control socket, and keeping each
//! tenant's registration right through every lifecycle operation.

mod control;

pub use control::{ControlSocket, LitestreamInfo, Registered, Registration, Synced, Unregistered};
