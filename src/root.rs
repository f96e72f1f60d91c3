//! Where tenant databases live: [`RootConfig`] maps names to bucketed paths
//! and lists the tenants on disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fnv::Fnv1a;
use crate::listing::Tenants;
use crate::name::{self, TenantName};
use crate::template::PathTemplate;

/// The template used when none is given.
pub const DEFAULT_TEMPLATE: &str = "%{bucket}/%{tenant}/main.sqlite3";
/// The bucket count used when none is given: 256 directories keep each one
/// small (about 400 entries) at 100,000 tenants.
pub const DEFAULT_BUCKETS: u32 = 256;

/// The root directory of a tenanted database and how tenant names map to
/// files under it.
///
/// A path is `root/` + the template with `%{tenant}` replaced by the name and
/// `%{bucket}` by [`bucket_of`]`(name, buckets)`, written as lowercase hex
/// zero-padded to the width of `buckets - 1`.
///
/// ```
/// use tenanted::RootConfig;
///
/// let root = RootConfig::new("storage/tenants")
///     .template("%{bucket}/%{tenant}/main.sqlite3")
///     .buckets(256);
/// let path = root.database_path("acme")?;
/// assert!(path.starts_with("storage/tenants"));
/// assert!(path.ends_with("acme/main.sqlite3"));
/// assert!(root.database_path("../etc").is_err());
/// # Ok::<(), tenanted::Error>(())
/// ```
#[derive(Clone)]
pub struct RootConfig {
    root: PathBuf,
    template_source: String,
    template: std::result::Result<Arc<PathTemplate>, String>,
    buckets: u32,
}

impl RootConfig {
    /// A root directory with the default template
    /// (`%{bucket}/%{tenant}/main.sqlite3`) and 256 buckets.
    ///
    /// The directory is created when the first tenant is.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("storage/tenants");
    /// assert_eq!(root.root_dir(), std::path::Path::new("storage/tenants"));
    /// ```
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        RootConfig {
            root: root_dir.into(),
            template_source: DEFAULT_TEMPLATE.to_owned(),
            template: PathTemplate::parse(DEFAULT_TEMPLATE).map(Arc::new),
            buckets: DEFAULT_BUCKETS,
        }
    }

    /// Sets the path template, relative to the root.
    ///
    /// `%{tenant}` must appear exactly once and `%{bucket}` at most once; the
    /// file name must end in a fixed suffix (such as `.sqlite3`); components
    /// may not be empty, `.`, `..` or start with `.` (hidden names are
    /// reserved for tenanted's own files). A bad template is reported by
    /// [`RootConfig::validate`] and every method that builds a path.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/srv/t").template("%{tenant}.db");
    /// assert_eq!(root.database_path("acme")?, std::path::Path::new("/srv/t/acme.db"));
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn template(mut self, template: &str) -> Self {
        self.template_source = template.to_owned();
        self.template = PathTemplate::parse(template).map(Arc::new);
        self
    }

    /// Sets the number of buckets (1 = every tenant in bucket `0`).
    ///
    /// Changing the count moves every tenant's path: pick it once.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/srv/t").buckets(16);
    /// assert_eq!(root.bucket_count(), 16);
    /// ```
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// The root directory.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/srv/t");
    /// assert_eq!(root.root_dir(), std::path::Path::new("/srv/t"));
    /// ```
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The template as given.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/srv/t");
    /// assert_eq!(root.template_str(), tenanted::DEFAULT_TEMPLATE);
    /// ```
    pub fn template_str(&self) -> &str {
        &self.template_source
    }

    /// The number of buckets.
    ///
    /// ```
    /// assert_eq!(tenanted::RootConfig::new("/srv/t").bucket_count(), tenanted::DEFAULT_BUCKETS);
    /// ```
    pub fn bucket_count(&self) -> u32 {
        self.buckets
    }

    /// Checks the template and bucket count.
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`] saying what is wrong.
    ///
    /// ```
    /// let bad = tenanted::RootConfig::new("/srv/t").template("%{tenant}/../x.db");
    /// assert!(bad.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.parsed().map(|_| ())
    }

    pub(crate) fn parsed(&self) -> Result<&Arc<PathTemplate>> {
        if self.buckets == 0 {
            return Err(self.bad_template("the bucket count must be at least 1".into()));
        }
        self.template
            .as_ref()
            .map_err(|reason| self.bad_template(reason.clone()))
    }

    fn bad_template(&self, reason: String) -> Error {
        Error::BadTemplate {
            template: self.template_source.clone(),
            reason,
        }
    }

    /// Hex digits in a bucket directory name.
    pub(crate) fn bucket_width(&self) -> usize {
        let max = self.buckets.saturating_sub(1);
        ((u32::BITS - max.leading_zeros()).div_ceil(4)).max(1) as usize
    }

    /// The bucket directory name of `tenant`.
    pub(crate) fn bucket_label(&self, tenant: &str) -> String {
        format!(
            "{:0width$x}",
            bucket_of(tenant, self.buckets),
            width = self.bucket_width()
        )
    }

    /// The database file of tenant `name`.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`] for an invalid name, [`Error::BadTemplate`]
    /// for an invalid template.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/srv/t");
    /// assert!(root.database_path("acme")?.starts_with("/srv/t"));
    /// assert!(root.database_path("a/b").is_err());
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn database_path(&self, name: &str) -> Result<PathBuf> {
        name::validate(name)?;
        self.path_of(name)
    }

    /// The path of an already validated name.
    pub(crate) fn path_of(&self, name: &str) -> Result<PathBuf> {
        let template = self.parsed()?;
        Ok(self
            .root
            .join(template.render(name, &self.bucket_label(name))))
    }

    /// Streams the tenants on disk, in file-system order.
    ///
    /// Walks the directories the template describes and yields each file
    /// that matches it. Files that do not match, tenants still being
    /// created, temporary and lock files, symbolic links and files in the
    /// wrong bucket are skipped (and logged at debug level). A missing root
    /// directory means no tenants.
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`] at once; the iterator yields [`Error::Io`] for a
    /// directory it cannot read, and goes on with the rest.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let root = tenanted::RootConfig::new(dir.path());
    /// assert_eq!(root.tenants()?.count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenants(&self) -> Result<Tenants> {
        let template = Arc::clone(self.parsed()?);
        Ok(Tenants::new(self.clone(), template))
    }
}

impl fmt::Debug for RootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootConfig")
            .field("root", &self.root)
            .field("template", &self.template_source)
            .field("buckets", &self.buckets)
            .finish()
    }
}

/// The bucket of a tenant: 64-bit FNV-1a of the name's bytes, modulo
/// `buckets`.
///
/// This function is part of the on-disk format: it never changes between
/// releases or platforms (golden vectors in the tests pin it).
///
/// ```
/// assert_eq!(tenanted::bucket_of("acme", 1), 0);
/// assert!(tenanted::bucket_of("acme", 256) < 256);
/// ```
pub fn bucket_of(tenant: &str, buckets: u32) -> u32 {
    let mut hash = Fnv1a::new();
    hash.write(tenant.as_bytes());
    (hash.finish() % u64::from(buckets.max(1))) as u32
}

impl RootConfig {
    /// The tenant whose database file is exactly `path`, if any.
    pub(crate) fn tenant_of_path(&self, path: &Path) -> Option<TenantName> {
        let template = self.parsed().ok()?;
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        if parts.len() != template.depth() {
            return None;
        }
        let (mut tenant, mut bucket) = (None, None);
        for (i, part) in parts.iter().enumerate() {
            let captures = template.match_component(i, part, self.bucket_width())?;
            tenant = tenant.or(captures.tenant);
            bucket = bucket.or(captures.bucket);
        }
        let tenant = captured_tenant(self, tenant, bucket)?;
        (self.path_of(tenant.as_str()).ok()? == path).then_some(tenant)
    }
}

/// The tenant a walk captured, if its name is valid and its bucket is its own.
pub(crate) fn captured_tenant(
    config: &RootConfig,
    tenant: Option<&str>,
    bucket: Option<&str>,
) -> Option<TenantName> {
    let tenant = TenantName::new(tenant?).ok()?;
    match bucket {
        Some(label) if label != config.bucket_label(tenant.as_str()) => None,
        _ => Some(tenant),
    }
}
