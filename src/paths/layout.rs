//! A validated root: its directory, its parsed path template and its bucket
//! count. Renders a tenant's path and judges what a walk captured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bucket;
use super::path_template::PathTemplate;
use crate::name::TenantName;

/// The parts of a [`RootConfig`](crate::RootConfig) that
/// [`validate`](crate::RootConfig::validate) accepted, owned so that a walk
/// can keep them.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
    template: Arc<PathTemplate>,
    buckets: u32,
    bucket_width: usize,
}

impl Layout {
    pub(super) fn new(root: PathBuf, template: Arc<PathTemplate>, buckets: u32) -> Self {
        Layout {
            root,
            template,
            buckets,
            bucket_width: bucket::width(buckets),
        }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// Hex digits in a bucket directory name.
    pub(super) fn bucket_width(&self) -> usize {
        self.bucket_width
    }

    /// The bucket directory name of `tenant`.
    pub(super) fn bucket_label(&self, tenant: &str) -> String {
        bucket::label(tenant, self.buckets)
    }

    /// Appends component `index` of `tenant`'s path to `path`.
    pub(super) fn push_component(&self, index: usize, tenant: &str, path: &mut PathBuf) {
        let bucket = || self.bucket_label(tenant);
        self.template.push_component(index, tenant, bucket, path);
    }

    /// The tenant a walk captured, if its name is valid and its bucket is
    /// its own.
    pub(super) fn captured_tenant(
        &self,
        tenant: Option<&str>,
        bucket: Option<&str>,
    ) -> Option<TenantName> {
        let tenant = TenantName::new(tenant?).ok()?;
        // The label is `bucket_width` lowercase hex digits (the template
        // matched it): compare numbers, without formatting one.
        let own = bucket::bucket_of(tenant.as_str(), self.buckets);
        match bucket {
            Some(label) if u32::from_str_radix(label, 16).ok() != Some(own) => None,
            _ => Some(tenant),
        }
    }
}

impl Layout {
    /// For a captured name that is a valid tenant name in a bucket not its
    /// own (moved there by hand): the tenant and its own bucket's label.
    pub(super) fn misplaced(
        &self,
        tenant: Option<&str>,
        bucket: Option<&str>,
    ) -> Option<(TenantName, String)> {
        let tenant = TenantName::new(tenant?).ok()?;
        let label = bucket::label(tenant.as_str(), self.buckets);
        (bucket? != label).then_some((tenant, label))
    }
}

/// The database file of an already validated tenant name.
pub(super) fn database_path(
    root: &Path,
    template: &PathTemplate,
    buckets: u32,
    tenant: &str,
) -> PathBuf {
    root.join(template.render(tenant, &bucket::label(tenant, buckets)))
}
