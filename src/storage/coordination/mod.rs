//! Keeping operations on one tenant apart, across threads and processes:
//! where a tenant is and its locks, the open gate, and who else holds its
//! database open.

pub(in crate::storage) mod holders;
pub(in crate::storage) mod open_gate;
pub(in crate::storage) mod tenant_path;
