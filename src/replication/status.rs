//! What replication looks like from outside, for operators: which tenants
//! are replicated, each one's last sync and lag, which are not and why.
//!
//! Three sources, none of them the supervisor's memory (it may be another
//! process, or dead): each Litestream process's `list` on its control
//! socket (tenants registered now, their last sync), the replica itself
//! (when each tenant's newest LTX file was written), and the tenants'
//! own files (when each was last written: its database or WAL).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::control::ControlSocket;
use super::listing::{ReplicaEntry, replica_entries};
use super::settings::{ReplicationSettings, SUPERVISOR_LOCK, state_dir};
use super::tenant_files::{Captured, TenantFiles};
use super::until::Until;
use crate::error::{Error, Result};
use crate::fs::Dir;
use crate::fs::lock::held_for;
use crate::manager::TenantManager;
use crate::name::TenantName;
use crate::paths::{ReplicaTarget, RootConfig};

/// Changes this close after the replica's last write are taken as the
/// replica's own (Litestream writes its bookkeeping into the database
/// when it syncs and when it lets go).
const SLACK: Duration = Duration::from_secs(2);

/// How long a status waits for a remote replica's listing: a stalled
/// store fails it then, instead of after each request's own timeout.
const LISTING_WITHIN: Duration = Duration::from_secs(15);

/// A registered tenant whose changes have waited longer than this for a
/// sync is at risk: Litestream syncs every second while a tenant changes,
/// so one this far behind is failing its syncs (a store that refuses, a
/// full disk), whatever its process still says.
pub const STALLED: Duration = Duration::from_secs(30);

/// Where one tenant's replication stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaState {
    /// Registered with Litestream, which streams its changes.
    Replicating,
    /// Not registered (unchanged for a while, so let go of), and its
    /// replica has every change.
    Idle,
    /// Changed after its replica's last write and not registered: at
    /// risk until the next scan of `tenanted replicate` registers it.
    Behind,
    /// Nothing of it in the replica.
    NotReplicated,
}

/// One tenant's line in a [`ReplicationStatus`].
#[derive(Debug, Clone)]
pub struct TenantReplication {
    /// The tenant.
    pub tenant: TenantName,
    /// Where its replication stands.
    pub state: ReplicaState,
    /// When its replica last took a sync: the newest file of its replica
    /// (not Litestream's word, which is its last local sync and advances
    /// while uploads fail).
    pub last_sync: Option<SystemTime>,
    /// When its database or WAL was last written.
    pub last_write: Option<SystemTime>,
    /// How old its oldest change not known to be in the replica can be
    /// (zero when the replica has everything).
    pub lag: Duration,
    /// Why it is not replicated, in an operator's words.
    pub reason: Option<String>,
}

impl TenantReplication {
    /// Whether a lost disk now would lose changes of it the replica may
    /// never get: behind, not replicated, or registered and stalled
    /// ([`STALLED`]).
    pub fn at_risk(&self) -> bool {
        match self.state {
            ReplicaState::Behind | ReplicaState::NotReplicated => true,
            ReplicaState::Replicating => self.lag > STALLED,
            ReplicaState::Idle => false,
        }
    }
}

/// What [`TenantManager::replication_status`] found.
#[derive(Debug, Clone)]
pub struct ReplicationStatus {
    /// The replica URL.
    pub replica: String,
    /// The Litestream processes (one per shard), each with its number of
    /// registered databases.
    pub processes: Vec<(PathBuf, usize)>,
    /// Every tenant on disk, by name.
    pub tenants: Vec<TenantReplication>,
    /// Whether a `tenanted replicate` holds the root now. Without one,
    /// the Litestream processes a killed supervisor left may still answer
    /// and every tenant look replicated, but a tenant written from now on
    /// is never registered: its writes reach no replica.
    pub supervised: bool,
}

impl ReplicationStatus {
    /// Tenants in `state`.
    pub fn count(&self, state: ReplicaState) -> usize {
        self.tenants.iter().filter(|t| t.state == state).count()
    }

    /// The largest lag of any tenant.
    pub fn max_lag(&self) -> Duration {
        self.tenants.iter().map(|t| t.lag).max().unwrap_or_default()
    }

    /// Whether no tenant is at risk: none behind, none unreplicated, and
    /// none registered whose changes have waited more than [`STALLED`] for
    /// a sync. It says nothing of whether a supervisor runs: a health
    /// check wants [`supervised`](Self::supervised) too (the CLI exits 1
    /// without one).
    pub fn all_replicated(&self) -> bool {
        self.tenants.iter().all(|t| !t.at_risk())
    }
}

impl TenantManager {
    /// Which tenants are replicated, each one's last sync and lag, and
    /// which are not and why; see [`ReplicationStatus`].
    ///
    /// # Errors
    ///
    /// [`Error::ReplicationNotConfigured`] when the root has no
    /// replication configured (`tenanted replicate --replica-url URL`
    /// configures it); [`Error::ReplicaRead`] when its replica cannot be
    /// listed; [`Error::LitestreamNotRunning`] naming
    /// the socket when replication is configured but a Litestream
    /// process does not answer (start `tenanted replicate`).
    pub fn replication_status(&self) -> Result<ReplicationStatus> {
        let root = self.root();
        let settings = ReplicationSettings::recorded(root)?.ok_or_else(|| not_configured(root))?;
        let mut processes = Vec::with_capacity(settings.shard_count());
        let mut registered = HashMap::new();
        for shard in 0..settings.shard_count() {
            let socket = ReplicationSettings::socket_path(root, shard);
            let list = ControlSocket::new(&socket).list()?;
            processes.push((socket, list.len()));
            for db in list {
                registered.insert(absolute(&db.path), db.status);
            }
        }
        // The recorded URL carries an S3-compatible store's endpoint,
        // path style and region in its query: read them into the target
        // the listing uses, not into the prefix.
        let target = ReplicaTarget::parse(settings.replica_url());
        let until = Until(Some(std::time::Instant::now() + LISTING_WITHIN));
        let replica = match replica_entries(root, &target, until) {
            Ok(replica) => replica,
            // A directory replica before its first sync.
            Err(_) if missing_directory(&target) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        let mut tenants = Vec::new();
        // The root's own path resolved once (where it lives is the
        // operator's choice); nothing beneath it is followed.
        let resolved = absolute(root.root_dir());
        for tenant in root.tenants()? {
            let tenant = tenant?;
            let db = root.path_of(tenant.as_str())?;
            let relative = db.strip_prefix(root.root_dir()).unwrap_or(&db);
            let listed = registered.get(&resolved.join(relative));
            // Litestream's local state is read for the tenants it streams
            // alone: its directory stays beside every tenant it ever
            // replicated, and a status of the fleet reads no more than it
            // needs.
            let streamed = listed.is_some_and(|status| status == "replicating");
            let entry = replica.get(&tenant).filter(|_| streamed);
            let local = local_state(root.root_dir(), &db, entry);
            tenants.push(judge(tenant, local, listed, &replica, now));
        }
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(ReplicationStatus {
            replica: settings.replica_url().to_owned(),
            processes,
            tenants,
            supervised: supervised(root),
        })
    }
}

/// Whether a `tenanted replicate` holds `root` (its lock on
/// `replication.d/replicate.lock`, tried without waiting).
fn supervised(root: &RootConfig) -> bool {
    match Dir::open(root.root_dir(), &state_dir(root)) {
        Ok(dir) => held_for(dir.fd(), Path::new(SUPERVISOR_LOCK)).is_some(),
        Err(_) => false,
    }
}

/// What Litestream says of a database it has registered.
type Listed = String;

/// What the tenant's own files say: when it was last written, and what
/// Litestream's local state says of its changes against the replica (see
/// `TenantFiles::captured`).
#[derive(Debug, Clone, Copy, Default)]
struct Local {
    last_write: Option<SystemTime>,
    captured: Option<Captured>,
}

fn local_state(root: &Path, db: &Path, entry: Option<&ReplicaEntry>) -> Local {
    let Ok(files) = TenantFiles::open(root, db) else {
        return Local::default();
    };
    let replicated = entry.and_then(|e| e.last_txid);
    Local {
        last_write: files.last_write(),
        captured: replicated.and_then(|txid| files.captured(txid)),
    }
}

/// One tenant's state from what Litestream, the replica and its files say.
fn judge(
    tenant: TenantName,
    Local {
        last_write,
        captured,
    }: Local,
    listed: Option<&Listed>,
    replica: &BTreeMap<TenantName, ReplicaEntry>,
    now: SystemTime,
) -> TenantReplication {
    let mut line = TenantReplication {
        tenant,
        state: ReplicaState::NotReplicated,
        last_sync: None,
        last_write,
        lag: Duration::ZERO,
        reason: None,
    };
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let changed_after = |sync: SystemTime| last_write.is_some_and(|w| w > sync + SLACK);
    let in_replica = replica.get(&line.tenant).and_then(|e| e.updated);
    match listed {
        Some(status) if status == "replicating" => {
            registered(&mut line, (in_replica, captured), changed_after, now);
        }
        Some(status) => {
            line.reason = Some(format!(
                "Litestream has it registered but {status}, not replicating; restart `tenanted replicate`"
            ));
        }
        None => match in_replica {
            Some(sync) if changed_after(sync) => {
                line.state = ReplicaState::Behind;
                line.last_sync = Some(sync);
                line.lag = since(sync);
                line.reason = Some("changed since its replica's last sync (a write, or another program's checkpoint of its -wal, which the files alone do not tell apart) and not registered with Litestream: `tenanted replicate` registers it at its next scan (is it running?)".to_owned());
            }
            Some(sync) => {
                line.state = ReplicaState::Idle;
                line.last_sync = Some(sync);
            }
            None => {
                line.lag = last_write.map(since).unwrap_or_default();
                line.reason = Some("nothing of it is in the replica: `tenanted replicate` registers it at its next scan if it was written since, and at its start otherwise (is it running? if the replica was emptied while it ran, remove .tenanted/replication.d/quiet and restart it)".to_owned());
            }
        },
    }
    line
}

/// The state of a tenant Litestream has registered and says it
/// replicates. Its last sync is the replica's newest file (`in_replica`),
/// not Litestream's word: that is the time of its last local sync, which
/// goes on advancing while every upload fails (a store that refuses, a
/// full disk under a `file://` replica), and said "lag 0" of a tenant
/// whose changes never reached the replica. Its lag is how long the
/// oldest change not in the replica has waited: Litestream's local state
/// (`captured`) names those changes by transaction and dates them on this
/// machine's clock, so neither a store's clock nor a replica last
/// written an hour before a fresh change makes a lag of it. Without that
/// state, the lag runs from the replica's newest file. One of which
/// nothing is in the replica is not replicated yet, whatever Litestream
/// says; one whose changes waited past [`STALLED`] is at risk.
fn registered(
    line: &mut TenantReplication,
    (in_replica, captured): (Option<SystemTime>, Option<Captured>),
    changed_after: impl Fn(SystemTime) -> bool,
    now: SystemTime,
) {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let Some(last) = in_replica else {
        line.lag = line.last_write.map(since).unwrap_or_default();
        line.reason = Some("registered with Litestream, but nothing of it is in the replica yet: at risk until Litestream uploads it; if this lasts more than a few seconds, look for sync errors in Litestream's log (.tenanted/replication.d/litestream-N.log)".to_owned());
        return;
    };
    line.state = ReplicaState::Replicating;
    line.last_sync = Some(last);
    // Changes not even captured yet (Litestream syncs each second) wait
    // from its newest capture, or the replica's newest file.
    let waiting_from = match captured {
        Some(Captured {
            oldest_unreplicated: Some(oldest),
            ..
        }) => Some(oldest),
        Some(Captured { newest, .. }) => {
            let newest = newest.map_or(last, |n| n.max(last));
            changed_after(newest).then_some(newest)
        }
        None => changed_after(last).then_some(last),
    };
    line.lag = waiting_from.map(since).unwrap_or_default();
    if line.lag > STALLED {
        line.reason = Some(format!(
            "its changes have waited {:.0} s to reach the replica (Litestream uploads every second): Litestream is failing to upload them; look for errors in its log (.tenanted/replication.d/litestream-N.log), and at the store (is it up, is its disk full?)",
            line.lag.as_secs_f64()
        ));
    }
}

/// `path` absolute, links resolved where it exists (Litestream lists the
/// paths it was given; tenanted registers absolute ones).
fn absolute(path: &Path) -> PathBuf {
    crate::fs::sys::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether `target` is a `file://` replica whose directory does not
/// exist.
fn missing_directory(target: &ReplicaTarget) -> bool {
    target
        .url()
        .strip_prefix("file://")
        .is_some_and(|dir| !crate::fs::sys::exists(Path::new(dir)))
}

fn not_configured(root: &RootConfig) -> Error {
    Error::ReplicationNotConfigured {
        root: root.root_dir().to_path_buf(),
        operation: "reading the replication status",
    }
}

impl fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicaState::Replicating => "replicating",
            ReplicaState::Idle => "idle",
            ReplicaState::Behind => "behind",
            ReplicaState::NotReplicated => "not replicated",
        })
    }
}

impl fmt::Display for ReplicationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tenants {
            let sync = t.last_sync.map_or_else(
                || "never".to_owned(),
                |s| {
                    format!(
                        "{:.1} s ago",
                        SystemTime::now()
                            .duration_since(s)
                            .unwrap_or_default()
                            .as_secs_f64()
                    )
                },
            );
            write!(
                f,
                "{:<24} {:<15} last sync {sync}, lag {:.1} s",
                t.tenant.as_str(),
                t.state.to_string(),
                t.lag.as_secs_f64()
            )?;
            match &t.reason {
                Some(reason) => writeln!(f, ": {reason}")?,
                None => writeln!(f)?,
            }
        }
        write!(
            f,
            "{} tenants to {} by {} Litestream process(es): {} replicating, {} idle (replica complete), {} behind, {} not replicated, {} at risk; largest lag {:.1} s",
            self.tenants.len(),
            self.replica,
            self.processes.len(),
            self.count(ReplicaState::Replicating),
            self.count(ReplicaState::Idle),
            self.count(ReplicaState::Behind),
            self.count(ReplicaState::NotReplicated),
            self.tenants.iter().filter(|t| t.at_risk()).count(),
            self.max_lag().as_secs_f64()
        )?;
        if !self.supervised {
            write!(
                f,
                "\nno `tenanted replicate` runs on this root: a tenant written from now on reaches no replica; start it (a Litestream a killed one left is stopped by it)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(updated: SystemTime) -> BTreeMap<TenantName, ReplicaEntry> {
        let tenant = TenantName::new("acme").unwrap();
        let relative = "x/acme/main.sqlite3".to_owned();
        let entry = ReplicaEntry {
            relative,
            updated: Some(updated),
            last_txid: Some(1),
        };
        BTreeMap::from([(tenant, entry)])
    }

    #[test]
    fn states_from_litestream_the_replica_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("main.sqlite3");
        std::fs::write(&db, b"x").unwrap();
        let written = TenantFiles::open(dir.path(), &db)
            .unwrap()
            .last_write()
            .unwrap();
        let w = Local {
            last_write: Some(written),
            captured: None,
        };
        let acme = || TenantName::new("acme").unwrap();
        let now = written + Duration::from_secs(30);
        let long_ago = written - Duration::from_secs(60);
        // Not registered, replica older than the last write: behind.
        let line = judge(acme(), w, None, &entry(long_ago), now);
        assert_eq!(line.state, ReplicaState::Behind);
        assert_eq!(line.lag, Duration::from_secs(90));
        // Not registered, replica newer: idle.
        let line = judge(acme(), w, None, &entry(written), now);
        assert_eq!((line.state, line.lag), (ReplicaState::Idle, Duration::ZERO));
        // Nothing in the replica: not replicated, with a reason.
        let line = judge(acme(), w, None, &BTreeMap::new(), now);
        assert_eq!(line.state, ReplicaState::NotReplicated);
        assert!(
            line.reason
                .is_some_and(|r| r.contains("tenanted replicate"))
        );
        // Registered and streaming, its replica up to date; registered
        // but stopped.
        let streaming = "replicating".to_owned();
        let line = judge(acme(), w, Some(&streaming), &entry(written), now);
        assert_eq!(
            (line.state, line.lag),
            (ReplicaState::Replicating, Duration::ZERO)
        );
        let line = judge(acme(), w, Some(&"stopped".to_owned()), &entry(written), now);
        assert_eq!(line.state, ReplicaState::NotReplicated);
        // Registered, nothing in the replica (Litestream failing every
        // upload, whatever its own last sync says): not replicated, at
        // risk, however recent the last write.
        let line = judge(acme(), w, Some(&streaming), &BTreeMap::new(), written);
        assert_eq!(line.state, ReplicaState::NotReplicated);
        assert!(line.at_risk() && line.reason.is_some_and(|r| r.contains("log")));
        // Registered, an older replica: replicating, its lag from that
        // replica's last write; waiting past STALLED: at risk.
        let line = judge(acme(), w, Some(&streaming), &entry(long_ago), now);
        assert_eq!(line.state, ReplicaState::Replicating);
        assert_eq!(line.lag, Duration::from_secs(90));
        assert!(line.at_risk() && line.reason.is_some());
        let older = entry(written - Duration::from_secs(5));
        let line = judge(acme(), w, Some(&streaming), &older, now);
        assert_eq!(line.lag, Duration::from_secs(35));
        assert!(line.at_risk(), "35 s behind the replica");
        let line = judge(acme(), w, Some(&streaming), &older, written + SLACK);
        assert!(!line.at_risk(), "7 s behind the replica");
    }

    /// Litestream's local state dates what waits: a change captured 3 s
    /// ago after a replica written an hour before waits 3 s, not an hour
    /// (a false alarm, exit 1, for every fresh write to an idle tenant);
    /// one captured 40 s ago and never uploaded is stalled.
    #[test]
    fn the_lag_runs_from_the_oldest_change_litestream_captured_and_did_not_upload() {
        let acme = || TenantName::new("acme").unwrap();
        let now = SystemTime::now();
        let an_hour_ago = now - Duration::from_secs(3600);
        let streaming = "replicating".to_owned();
        let local = |written: u64, oldest: Option<u64>| Local {
            last_write: Some(now - Duration::from_secs(written)),
            captured: Some(Captured {
                oldest_unreplicated: oldest.map(|s| now - Duration::from_secs(s)),
                newest: Some(now - Duration::from_secs(oldest.unwrap_or(written))),
            }),
        };
        let line = judge(
            acme(),
            local(3, Some(3)),
            Some(&streaming),
            &entry(an_hour_ago),
            now,
        );
        assert_eq!(line.lag, Duration::from_secs(3));
        assert!(!line.at_risk(), "{line:?}");
        let line = judge(
            acme(),
            local(0, Some(40)),
            Some(&streaming),
            &entry(an_hour_ago),
            now,
        );
        assert_eq!(line.lag, Duration::from_secs(40));
        assert!(line.at_risk() && line.reason.is_some(), "{line:?}");
        // Everything captured is in the replica: nothing waits.
        let line = judge(
            acme(),
            local(5, None),
            Some(&streaming),
            &entry(an_hour_ago),
            now,
        );
        assert_eq!(line.lag, Duration::ZERO);
    }
}
