//! Where tenanted keeps its own files in a root.

/// The directory under the root where tenanted keeps its own files: the
/// root's description (`layout`, `migrations`), the template databases,
/// the change log, the limits and replication records.
pub const INTERNAL_DIR: &str = ".tenanted";
