//! Rebuilding a root from its replica: a lost machine's tenants, on a
//! fresh one.
//!
//! Litestream restores one database at a time, so the rebuild runs `jobs`
//! `litestream restore` processes at once, each into a staging file
//! outside the root; every staged tenant is then published by
//! [`TenantManager::restore_tenant_opts`], the same checks (`PRAGMA
//! integrity_check`, a schema not ahead of the code, a migration history
//! that matches the root's) and the same atomic publication as any
//! restore. A tenant already in the root is left alone, so a rebuild that
//! was interrupted finishes when run again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::listing::replicated_tenants;
use super::rebuild_options::RebuildOptions;
use super::rebuild_report::{RebuildOutcome, RebuildReport, TenantRebuild};
use super::restore_command::{Restored, check_binary, damaged_replica, restore_one};
use crate::backup::RestoreOptions;
use crate::error::{Error, Result};
use crate::fleet::{Line, Lines, Run};
use crate::fs::files::remove_quietly;
use crate::fs::siblings::sidecar_path;
use crate::fs::{Dir, run_dirs, sys};
use crate::manager::TenantManager;
use crate::name::TenantName;
use crate::paths::{Found, url_refusal};

impl TenantManager {
    /// Rebuilds this manager's root from its Litestream replica: every
    /// tenant the replica holds (or [`RebuildOptions::only`]), as of its
    /// latest sync or [`RebuildOptions::at`] a point in time, `jobs` at a
    /// time, with progress.
    ///
    /// Each tenant is restored with `litestream restore` into a staging
    /// file outside the root, then published exactly as
    /// [`restore_tenant`](Self::restore_tenant) publishes a backup: it
    /// must pass `PRAGMA integrity_check`, not be ahead of the code, and
    /// have a migration history that matches the root's; it appears whole
    /// or not at all. A tenant already in the root is left alone
    /// ([`RebuildOutcome::AlreadyPresent`]), so a rebuild that was
    /// interrupted (killed, or [cancelled](RebuildOptions::cancel_on))
    /// finishes when run again. A failed tenant is reported and the run
    /// goes on.
    ///
    /// Tenants are found by listing the replica (`file://` and, with the
    /// `s3` feature, `s3://` replicas; a tenant's replica is the URL
    /// followed by its path relative to the root, as
    /// [`RootConfig::litestream_config`](crate::RootConfig::litestream_config)
    /// sets up), so the manager must use the root's template and bucket
    /// count. Named tenants need no listing.
    ///
    /// # Errors
    ///
    /// [`Error::ReplicaRead`] if the replica cannot be listed or `litestream`
    /// cannot be run; [`Error::BadTenantName`] for a bad `only` name; an
    /// I/O error for the staging directory (or [`Error::BackupInsideRoot`]
    /// if it is inside the root), or for a root this process cannot write
    /// (a read-only file system, no permission), refused before any
    /// tenant is restored. Tenant failures are in the report.
    ///
    /// ```no_run
    /// use tenanted::ReplicaTarget;
    /// use tenanted::replication::RebuildOptions;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new("/var/lib/app/tenants"), tenanted::Migrations::new(vec![])).build()?;
    /// let replica = ReplicaTarget::new("s3://backups/tenants");
    /// let report = manager.rebuild_from_replica(&RebuildOptions::new(replica).jobs(16))?;
    /// println!("{report}");
    /// assert!(report.is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rebuild_from_replica(&self, options: &RebuildOptions) -> Result<RebuildReport> {
        let started = Instant::now();
        let span = tracing::info_span!("rebuild_from_replica", replica = options.target.url());
        let _entered = span.enter();
        check_root_writable(self.root().root_dir())?;
        check_binary(options)?;
        if let Some(reason) = url_refusal(options.target.url()) {
            return Err(Error::ReplicaRead {
                tenant: None,
                url: options.target.url().to_owned(),
                operation: "reading the replica URL".to_owned(),
                reason,
            });
        }
        let tenants = self.tenants_to_rebuild(options)?;
        let staging = Staging::take(self, options)?;
        // Each tenant's path is its replica's, relative to the root.
        let list = (tenants.into_iter())
            .map(|(tenant, relative)| Found::listed(tenant, PathBuf::from(relative)))
            .collect();
        let run = Run::over(self.root().root_dir(), list, &options.fleet);
        let ran = run.each(Lines::new, |run, found| {
            let relative = found.path.to_string_lossy();
            let line = self.rebuild_one(options, &staging, &found.tenant, &relative);
            run.progress(&found.tenant, !line.failed());
            Some(line)
        });
        let report = RebuildReport {
            replica: options.target.url().to_owned(),
            at: options.at,
            tenants: ran.rows,
            cancelled: ran.cancelled,
            skipped: ran.skipped,
            duration: started.elapsed(),
        };
        tracing::info!(
            restored = report.restored(),
            failed = report.failed(),
            "rebuild finished"
        );
        Ok(report)
    }

    /// The tenants to rebuild, with their paths relative to the root.
    fn tenants_to_rebuild(&self, options: &RebuildOptions) -> Result<Vec<(TenantName, String)>> {
        let root = self.root();
        let Some(only) = &options.fleet.only else {
            return Ok(replicated_tenants(root, &options.target)?
                .into_iter()
                .collect());
        };
        let mut named = Vec::with_capacity(only.len());
        for name in only {
            let tenant = TenantName::new(name)?;
            let path = root.path_of(tenant.as_str())?;
            let relative = path.strip_prefix(root.root_dir()).unwrap_or(&path);
            let relative = relative.to_string_lossy().replace('\\', "/");
            named.push((tenant, relative));
        }
        Ok(named)
    }

    /// One tenant: skipped if present, else restored, staged, published.
    fn rebuild_one(
        &self,
        options: &RebuildOptions,
        staging: &Staging,
        tenant: &TenantName,
        relative: &str,
    ) -> TenantRebuild {
        let started = Instant::now();
        let outcome = match self.tenant_exists(tenant.as_str()) {
            Ok(true) => RebuildOutcome::AlreadyPresent,
            Ok(false) => self.restore_staged(options, staging, tenant, relative),
            Err(e) => RebuildOutcome::Failed(Arc::new(e)),
        };
        // Its line in the report says it (the CLI printed each failure
        // twice when this was a warning), as every fleet run's report does.
        if let RebuildOutcome::Failed(e) = &outcome {
            tracing::debug!(tenant = %tenant, error = %e, "rebuilding tenant failed");
        }
        TenantRebuild {
            tenant: tenant.clone(),
            outcome,
            duration: started.elapsed(),
        }
    }

    fn restore_staged(
        &self,
        options: &RebuildOptions,
        staging: &Staging,
        tenant: &TenantName,
        relative: &str,
    ) -> RebuildOutcome {
        let staged = staging.file_for(tenant);
        let outcome = match restore_one(options, tenant, relative, &staged) {
            Ok(Restored::Nothing) => RebuildOutcome::NotInReplica,
            Ok(Restored::Staged) => self.publish(options, tenant, relative, &staged),
            Err(e) => RebuildOutcome::Failed(Arc::new(e)),
        };
        staging.clear(&staged);
        outcome
    }

    /// Publishes the staged copy with the library's restore.
    fn publish(
        &self,
        options: &RebuildOptions,
        tenant: &TenantName,
        relative: &str,
        staged: &Path,
    ) -> RebuildOutcome {
        match self.restore_tenant_opts(tenant.as_str(), staged, &RestoreOptions::new()) {
            Ok(restored) => RebuildOutcome::Restored {
                version: restored.version,
                bytes: restored.bytes,
                pending: restored.pending,
            },
            // Published meanwhile by another rebuild or a create.
            Err(Error::TenantExists { .. }) => RebuildOutcome::AlreadyPresent,
            // What Litestream restored is not a sound database: the copy
            // was checked, not a backup file of the user's.
            Err(Error::BadBackup { reason, .. }) => {
                let read = Error::ReplicaRead {
                    tenant: Some(tenant.clone()),
                    url: options.target.tenant_url(relative),
                    operation: "checking the copy restored".to_owned(),
                    reason,
                };
                RebuildOutcome::Failed(Arc::new(damaged_replica(read, options)))
            }
            Err(e) => RebuildOutcome::Failed(Arc::new(e)),
        }
    }
}

/// This run's private staging directory: a fresh directory with a random
/// name (created exclusively, mode 0700, so no other user can plant or
/// read anything in it) inside the given or default parent, locked while
/// the run lasts (`fs/run_dirs.rs`). Nothing else in the parent is
/// touched but the staging directories of earlier rebuilds that nobody
/// holds (killed runs: they would keep copies of tenants' data there for
/// good). Resumption needs no staging: tenants already in the root are
/// kept.
pub(super) struct Staging {
    dir: tempfile::TempDir,
    /// The same directory, open: what is staged is removed relative to it.
    open: Dir,
}

/// The name every rebuild's staging directory starts with.
const PREFIX: &str = "tenanted-rebuild-";

/// A staging directory inside the root, said as one (not as a backup).
fn staging_inside(e: Error) -> Error {
    let Error::BackupInsideRoot { path, root, .. } = e else {
        return e;
    };
    let why = std::io::Error::other(format!(
        "it is inside the tenant root {}, where the copies could be listed as tenants; pass a staging directory outside the root (RebuildOptions::staging, `tenanted rebuild --staging DIR`)",
        root.display()
    ));
    Error::io(None, path, "choosing the rebuild's staging directory", why)
}

/// How many times a rebuild makes a staging directory that another run's
/// sweep removed before it could lock it.
const ATTEMPTS: usize = 3;

impl Staging {
    fn take(manager: &TenantManager, options: &RebuildOptions) -> Result<Self> {
        let root = manager.root().root_dir();
        let parent = match &options.staging {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir(),
        };
        crate::backup::check_outside_root(None, root, &parent).map_err(staging_inside)?;
        let io = |e| {
            Error::io(
                None,
                &parent,
                "creating the rebuild's staging directory in",
                e,
            )
        };
        sys::make_dir_all(&parent).map_err(io)?;
        let above = Dir::open(&parent, &parent).map_err(io)?;
        run_dirs::remove_unheld(&above, PREFIX, "the copies a killed rebuild left");
        for _ in 0..ATTEMPTS {
            let dir = sys::make_private_dir_in(&parent, PREFIX).map_err(io)?;
            let open = Dir::open(dir.path(), dir.path()).map_err(io)?;
            let name = crate::fs::siblings::name_of(dir.path());
            if run_dirs::hold(&above, name, &open).map_err(io)? {
                return Ok(Staging { dir, open });
            }
        }
        let swept =
            std::io::Error::other("another rebuild kept removing this run's staging directory");
        Err(io(swept))
    }

    fn file_for(&self, tenant: &TenantName) -> PathBuf {
        self.dir.path().join(format!("{tenant}.sqlite3"))
    }

    /// Removes a staged copy and anything SQLite or Litestream made
    /// beside it (the directory itself goes when the run ends).
    fn clear(&self, staged: &Path) {
        let name = crate::fs::siblings::name_of(staged);
        remove_quietly(&self.open, name);
        for suffix in ["-wal", "-shm", "-journal", ".tmp"] {
            remove_quietly(&self.open, &sidecar_path(name, suffix));
        }
    }
}

impl Line for TenantRebuild {
    fn tenant(&self) -> &TenantName {
        &self.tenant
    }
}

/// Refuses a root this process cannot write (a read-only file system, no
/// permission) before any tenant is restored: each one would be restored
/// from the replica in full, then fail to be published (an outside probe
/// saw all 40 restored, then refused one by one).
fn check_root_writable(root: &Path) -> Result<()> {
    use rustix::io::Errno;
    match sys::check_writable(root) {
        Err(e)
            if matches!(
                e.raw_os_error().map(Errno::from_raw_os_error),
                Some(Errno::ROFS | Errno::ACCESS | Errno::PERM)
            ) =>
        {
            let operation = "rebuilding the root, whose every tenant is published into it";
            Err(Error::io(None, root, operation, e))
        }
        // Anything else is said by the step it stops.
        _ => Ok(()),
    }
}
