//! Keeping operations on one tenant apart, across threads and processes:
//! where a tenant is and its locks, the open gate, who else holds its
//! database open, and the change log that tells other processes' watchers
//! which tenants changed.

pub(in crate::storage) mod changes;
pub(in crate::storage) mod holders;
pub(in crate::storage) mod open_gate;
pub(in crate::storage) mod tenant_path;
pub(crate) mod undecided;
