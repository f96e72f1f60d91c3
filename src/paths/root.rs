//! Where tenant databases live: [`RootConfig`] maps names to bucketed paths
//! and lists the tenants on disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bucket;
use super::layout::{self, Layout};
use super::path_template::PathTemplate;
use super::tenants::Tenants;
use super::walker::{Mode, Walker};
use crate::error::{Error, Result};
use crate::name;
use crate::root_description::LayoutRecord;

/// The template used when none is given.
pub const DEFAULT_TEMPLATE: &str = "%{bucket}/%{tenant}/main.sqlite3";
/// The bucket count used when none is given: 256 directories keep each one
/// small (about 400 entries) at 100,000 tenants.
pub const DEFAULT_BUCKETS: u32 = 256;

/// The root directory of a tenanted database and how tenant names map to
/// files under it.
///
/// A path is `root/` + the template with `%{tenant}` replaced by the name and
/// `%{bucket}` by [`bucket_of`](crate::bucket_of)`(name, buckets)`, written as lowercase hex
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
    /// Besides the rules of [`template`](Self::template), no path component
    /// may exceed 255 bytes (the file-system limit) for the longest tenant
    /// name (100 bytes), counting the hidden files tenanted keeps beside a
    /// database file, whose names are up to 45 bytes longer than its own.
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`] saying what is wrong (for a name too long, by
    /// how many bytes).
    ///
    /// ```
    /// let bad = tenanted::RootConfig::new("/srv/t").template("%{tenant}/../x.db");
    /// assert!(bad.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.parsed().map(|_| ())
    }

    /// Refuses a root that is a symbolic link leading nowhere: nothing
    /// can ever be made there (the link stands where the directory would
    /// be made), and each operation would fail with a puzzle of its own
    /// ("File exists" locking the template database). A root that is not
    /// there at all is made by the first create, as ever.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the root, where the link leads, and what to do.
    pub(crate) fn refuse_dangling_link(&self) -> Result<()> {
        let root = self.root_dir();
        let is_link =
            crate::fs::sys::symlink_metadata(root).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link || crate::fs::sys::metadata(root).is_ok() {
            return Ok(());
        }
        let target = crate::fs::sys::read_link(root).unwrap_or_default();
        let why = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "it is a symbolic link to {}, which does not exist: create that directory, or point the link (or the root you pass) at the directory that holds the tenants",
                target.display()
            ),
        );
        Err(Error::io(None, root, "opening the tenant root", why))
    }

    fn parsed(&self) -> Result<&Arc<PathTemplate>> {
        if self.buckets == 0 {
            return Err(self.bad_template("the bucket count must be at least 1".into()));
        }
        let template = self
            .template
            .as_ref()
            .map_err(|reason| self.bad_template(reason.clone()))?;
        template
            .check_lengths(bucket::width(self.buckets))
            .map_err(|reason| self.bad_template(reason))?;
        Ok(template)
    }

    fn bad_template(&self, reason: String) -> Error {
        Error::BadTemplate {
            template: self.template_source.clone(),
            reason,
        }
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
        Ok(layout::database_path(
            &self.root,
            template,
            self.buckets,
            name,
        ))
    }

    /// The tenant whose database is at `relative` (a `/`-separated path
    /// relative to the root), if that is exactly where this root keeps
    /// that tenant: a replica's paths turned back into names.
    pub(crate) fn tenant_at(&self, relative: &str) -> Option<crate::name::TenantName> {
        let template = self.parsed().ok()?;
        let parts: Vec<&str> = relative.split('/').collect();
        if parts.len() != template.depth() {
            return None;
        }
        let width = bucket::width(self.buckets);
        let mut tenant = None;
        for (index, part) in parts.iter().enumerate() {
            let captures = template.match_component(index, part, width)?;
            tenant = captures.tenant.or(tenant);
        }
        let tenant = crate::name::TenantName::new(tenant?).ok()?;
        let label = bucket::label(tenant.as_str(), self.buckets);
        (template.render(tenant.as_str(), &label) == relative).then_some(tenant)
    }

    /// Whether each tenant has a directory of its own (see
    /// `PathTemplate::owns_directory`).
    pub(crate) fn owns_directory(&self) -> Result<bool> {
        self.parsed().map(|template| template.owns_directory())
    }

    /// Streams the tenants on disk, in file-system order.
    ///
    /// Walks the directories the template describes and yields each file
    /// that matches it. Files that do not match, tenants still being
    /// created, temporary and lock files, symbolic links and files in the
    /// wrong bucket are skipped (and logged at debug level); an entry whose
    /// name is not a valid tenant name (put there by hand, say) is skipped
    /// with a warning naming its path. A missing root directory means no
    /// tenants.
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
        self.walk(Mode::Tenants).map(Tenants::new)
    }

    /// The root at `root_dir` with the layout recorded in it (its template
    /// and bucket count, written before its first write), or the default
    /// layout for a root with no record yet: for a tool that opens a root
    /// someone else made, such as the CLI when no `--template` is given.
    ///
    /// # Errors
    ///
    /// [`Error::BadLayoutRecord`] for a damaged record;
    /// [`Error::RootFormatTooNew`] for a root of a newer release;
    /// [`Error::NotADirectory`] when the root or its `.tenanted` is not a
    /// directory; an I/O error reading the record.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let flat = tenanted::RootConfig::new(dir.path()).template("%{bucket}/%{tenant}.sqlite3");
    /// tenanted::TenantManager::builder(flat, tenanted::Migrations::new(vec![]))
    ///     .build()?
    ///     .create_tenant("acme")?;
    /// let found = tenanted::RootConfig::recorded(dir.path())?;
    /// assert_eq!(found.template_str(), "%{bucket}/%{tenant}.sqlite3");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recorded(root_dir: impl Into<PathBuf>) -> Result<RootConfig> {
        let root_dir = root_dir.into();
        let Some((template, buckets)) = LayoutRecord::recorded(&root_dir)? else {
            return Ok(RootConfig::new(root_dir));
        };
        let config = RootConfig::new(&root_dir).template(&template);
        let config = match buckets.parse() {
            Ok(buckets) => config.buckets(buckets),
            Err(_) => config,
        };
        // The record read back as this layout's own, or the error that
        // says why it is not (damaged, of a newer format).
        config.check_recorded_layout()?;
        Ok(config)
    }

    /// This configuration's layout, as the root records it.
    pub(crate) fn layout_record(&self) -> LayoutRecord {
        LayoutRecord::new(self.root_dir(), self.template_str(), self.bucket_count())
    }

    /// Checks this configuration against the layout recorded in the root
    /// (see `root_description/layout_record.rs`); returns whether a record
    /// is there.
    ///
    /// # Errors
    ///
    /// As `LayoutRecord::check`.
    pub(crate) fn check_recorded_layout(&self) -> Result<bool> {
        self.layout_record().check()
    }

    /// A walk of the root (see [`Walker`]).
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`]; [`Error::LayoutMismatch`] if the root
    /// records another layout.
    pub(crate) fn walk(&self, mode: Mode) -> Result<Walker> {
        let template = Arc::clone(self.parsed()?);
        // Walking with another layout than the root's finds nothing.
        self.check_recorded_layout()?;
        let layout = Layout::new(self.root.clone(), template, self.buckets);
        Ok(Walker::new(layout, mode))
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
