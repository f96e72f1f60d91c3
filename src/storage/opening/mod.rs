//! Opening a tenant's database file: pinned to the file it reached, its
//! header and `-wal` read without SQLite (its version, or its usage), the
//! files this process has open, what is at a database path, and why an open failed.

pub(in crate::storage) mod database_file;
pub(in crate::storage) mod header;
pub(in crate::storage) mod open;
pub(in crate::storage) mod open_error;
pub(in crate::storage) mod open_files;
pub(in crate::storage) mod opening_key;
pub(in crate::storage) mod pinned;
pub(in crate::storage) mod usage;
pub(in crate::storage) mod wal_frames;
