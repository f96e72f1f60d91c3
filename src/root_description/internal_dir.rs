//! Where tenanted keeps its own files in a root.

/// The directory under the root where tenanted keeps its own files: the
/// root's description (`layout`, `migrations`), the template databases,
/// the change log, the limits and replication records.
pub const INTERNAL_DIR: &str = ".tenanted";

/// The directory under [`INTERNAL_DIR`] where the default key provider
/// keeps encrypted tenants' keys: a root that has it keeps encrypted
/// tenants (the `encryption` feature).
const KEYS_DIR: &str = "keys";

/// `root`'s keys directory (see [`KEYS_DIR`]).
pub(crate) fn keys_dir(root: &std::path::Path) -> std::path::PathBuf {
    root.join(INTERNAL_DIR).join(KEYS_DIR)
}
