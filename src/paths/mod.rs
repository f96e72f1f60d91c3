//! Where tenant databases live: the root, the path template, the bucket
//! hash, and the one walk that inverts them.

mod bucket;
mod layout;
mod litestream;
pub(crate) use litestream::{refuse_encrypted, yaml_string};
mod path_template;
mod replica_target;
mod root;
mod tenants;
mod walker;

pub use crate::root_description::INTERNAL_DIR;
pub use bucket::bucket_of;
pub use replica_target::ReplicaTarget;
pub(crate) use replica_target::{lower_scheme, url_refusal};
pub use root::{DEFAULT_BUCKETS, DEFAULT_TEMPLATE, RootConfig};
pub use tenants::Tenants;

pub(crate) use bucket::Fnv1a;
pub(crate) use walker::{Found, Mode, Part, Walker};
