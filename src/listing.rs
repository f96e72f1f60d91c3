//! Streaming the tenants on disk by inverting the path template.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::debug;

use crate::error::{Error, Result};
use crate::name::TenantName;
use crate::root::{RootConfig, captured_tenant};
use crate::template::PathTemplate;

/// An iterator over the tenants on disk, from [`RootConfig::tenants`] or
/// [`TenantManager::tenants`](crate::TenantManager::tenants).
///
/// It holds one open directory per template level, never every name.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
/// manager.create_tenant("acme")?;
/// for tenant in manager.tenants()? {
///     assert_eq!(tenant?.as_str(), "acme");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Tenants {
    config: RootConfig,
    template: Arc<PathTemplate>,
    bucket_width: usize,
    stack: Vec<Frame>,
    started: bool,
}

struct Frame {
    dir: PathBuf,
    entries: fs::ReadDir,
    tenant: Option<String>,
    bucket: Option<String>,
}

impl Tenants {
    pub(crate) fn new(config: RootConfig, template: Arc<PathTemplate>) -> Self {
        Tenants {
            template,
            bucket_width: config.bucket_width(),
            config,
            stack: Vec::new(),
            started: false,
        }
    }

    fn open(&mut self, dir: PathBuf, tenant: Option<String>, bucket: Option<String>) -> Result<()> {
        match fs::read_dir(&dir) {
            Ok(entries) => {
                self.stack.push(Frame {
                    dir,
                    entries,
                    tenant,
                    bucket,
                });
                Ok(())
            }
            // A directory removed under us (a tenant destroyed mid-walk) is not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(None, dir, "listing tenants", e)),
        }
    }
}

impl Iterator for Tenants {
    type Item = Result<TenantName>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            let root = self.config.root_dir().to_path_buf();
            if let Err(e) = self.open(root, None, None) {
                return Some(Err(e));
            }
        }
        let template = Arc::clone(&self.template);
        loop {
            let depth = self.stack.len().checked_sub(1)?;
            let frame = self.stack.last_mut()?;
            let entry = match frame.entries.next() {
                None => {
                    self.stack.pop();
                    continue;
                }
                Some(Err(e)) => {
                    let dir = frame.dir.clone();
                    return Some(Err(Error::io(None, dir, "listing tenants", e)));
                }
                Some(Ok(entry)) => entry,
            };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                debug!(path = %entry.path().display(), "skipping non-UTF-8 entry");
                continue;
            };
            let Some(captures) = template.match_component(depth, name, self.bucket_width) else {
                continue;
            };
            let tenant = captures
                .tenant
                .map(str::to_owned)
                .or_else(|| frame.tenant.clone());
            let bucket = captures
                .bucket
                .map(str::to_owned)
                .or_else(|| frame.bucket.clone());
            // A captured name that is not a valid tenant (".tenanted", a temp
            // file) is skipped before descending into it.
            if captures.tenant.is_some() && TenantName::new(name_part(&tenant)).is_err() {
                debug!(path = %entry.path().display(), "skipping entry: not a tenant name");
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let last = depth + 1 == template.depth();
            // The tenant's own directory: the file name is now fully known,
            // so one lstat replaces opening and reading the directory.
            if captures.tenant.is_some() && depth + 2 == template.depth() {
                if !file_type.is_dir() {
                    continue;
                }
                let Some(tenant) =
                    captured_tenant(&self.config, tenant.as_deref(), bucket.as_deref())
                else {
                    debug!(path = %entry.path().display(), "skipping directory in the wrong bucket");
                    continue;
                };
                let file = entry.path().join(template.render_component(
                    depth + 1,
                    tenant.as_str(),
                    &self.config.bucket_label(tenant.as_str()),
                ));
                match std::fs::symlink_metadata(&file) {
                    Ok(meta) if meta.is_file() => return Some(Ok(tenant)),
                    _ => continue,
                }
            }
            if !last {
                if file_type.is_dir()
                    && let Err(e) = self.open(entry.path(), tenant, bucket)
                {
                    return Some(Err(e));
                }
                continue;
            }
            if !file_type.is_file() {
                debug!(path = %entry.path().display(), "skipping entry: not a regular file");
                continue;
            }
            match captured_tenant(&self.config, tenant.as_deref(), bucket.as_deref()) {
                Some(tenant) => return Some(Ok(tenant)),
                None => {
                    debug!(path = %entry.path().display(), "skipping file in the wrong bucket");
                }
            }
        }
    }
}

fn name_part(tenant: &Option<String>) -> &str {
    tenant.as_deref().unwrap_or("")
}
