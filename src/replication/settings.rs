//! A root's replication settings, recorded in the root itself
//! (`.tenanted/replication`), so that every process on the root — the
//! service's, the CLI's, `tenanted replicate` — replicates, releases and
//! erases tenants alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::containment;
use crate::fs::record::not_text_line;
use crate::fs::sys;
use crate::fs::{read_record, rewrite_record};
use crate::name::TenantName;
use crate::paths::{INTERNAL_DIR, RootConfig, bucket_of, lower_scheme, url_refusal};
use crate::replication::store::{RETENTION_IN_LOCAL_REPLICAS_ONLY, ReplicaStore};

/// The record's file name in `.tenanted/`.
const RECORD: &str = "replication";
/// The record `tenanted litestream-config` leaves in `.tenanted/`: a
/// Litestream configuration in directory mode replicates the root (see
/// [`ReplicationSettings::record_directory_mode`]).
const DIRECTORY_MODE: &str = "litestream-directory-mode";
/// Where `tenanted replicate` keeps its Litestream processes' sockets,
/// configurations and erase intents, under `.tenanted/`.
pub(crate) const STATE_DIR: &str = "replication.d";
/// The longest path a Unix socket can have (Linux: 108 bytes with NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where a root's tenants are replicated, how long a destroyed tenant's
/// replica is kept, and how many Litestream processes share the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    replica_url: String,
    retention: Duration,
    shards: usize,
}

impl ReplicationSettings {
    /// Replicate every tenant to `replica_url` (`file:///DIR`, or
    /// `s3://BUCKET/PATH`), each under its path in the root; a destroyed
    /// tenant's replica is erased when the destroy returns; one Litestream
    /// process.
    pub fn new(replica_url: impl Into<String>) -> Self {
        ReplicationSettings {
            replica_url: lower_scheme(replica_url.into())
                .trim_end_matches('/')
                .to_owned(),
            retention: Duration::ZERO,
            shards: 1,
        }
    }

    /// Keep a destroyed (or replaced) tenant's replica this long (whole
    /// seconds) before erasing it: moved out of the tenant's place at once,
    /// so that a tenant created again under the name starts a history of
    /// its own, and erased by `tenanted replicate` once due (or at once by
    /// [`erase_destroyed_replicas`](crate::TenantManager::erase_destroyed_replicas)).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Duration::from_secs(retention.as_secs());
        self
    }

    /// How many Litestream processes `tenanted replicate` runs, each with
    /// the tenants whose name hashes to it (at least one).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The replica URL tenants go under.
    pub fn replica_url(&self) -> &str {
        &self.replica_url
    }

    /// How long a destroyed tenant's replica is kept.
    pub fn retention_period(&self) -> Duration {
        self.retention
    }

    /// How many Litestream processes share the root.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// Which Litestream process replicates `tenant`.
    pub fn shard_of(&self, tenant: &TenantName) -> usize {
        let shards = u32::try_from(self.shards).unwrap_or(u32::MAX);
        bucket_of(tenant.as_str(), shards) as usize
    }

    /// The replica URL of the database at `relative` (its path under the
    /// root): the one to give `litestream restore`.
    ///
    /// A query (`s3://bucket/path?endpoint=http://host:8333`, how
    /// Litestream takes an S3-compatible store's endpoint) stays at the end.
    pub fn replica_url_of(&self, relative: &Path) -> String {
        let (base, query) = match self.replica_url.split_once('?') {
            Some((base, query)) => (base.trim_end_matches('/'), Some(query)),
            None => (self.replica_url.as_str(), None),
        };
        let mut url = base.to_owned();
        for part in relative.components() {
            url.push('/');
            url.push_str(&part.as_os_str().to_string_lossy());
        }
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// The control socket of Litestream process `shard` for `root`.
    pub fn socket_path(root: &RootConfig, shard: usize) -> PathBuf {
        state_dir(root).join(format!("litestream-{shard}.sock"))
    }

    /// Checks that every socket path fits a Unix socket.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the socket when its path is too long.
    pub(crate) fn check_sockets(&self, root: &RootConfig) -> Result<()> {
        let last = Self::socket_path(root, self.shards.saturating_sub(1));
        if last.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(());
        }
        let why = format!(
            "a control socket's path may be at most {MAX_SOCKET_PATH} bytes; use a root with a shorter path"
        );
        Err(Error::io(
            None,
            last,
            "placing Litestream's control socket",
            std::io::Error::other(why),
        ))
    }

    /// Checks that these settings can be followed on `root`, before they
    /// are recorded: every socket path fits, and a retention is asked of
    /// a local directory only (an S3 replica's erase is at once or never:
    /// a retention there would leave every destroyed tenant's replica in
    /// place, to come back on a rebuild).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming a socket path too long;
    /// [`Error::ReplicationRefused`] for a retention with a replica that is
    /// not a local directory.
    pub(crate) fn check(&self, root: &RootConfig) -> Result<()> {
        self.check_sockets(root)?;
        let refused = |reason: String| Error::ReplicationRefused {
            root: root.root_dir().to_path_buf(),
            url: self.replica_url.clone(),
            reason,
        };
        if let Some(reason) = url_refusal(&self.replica_url) {
            return Err(refused(format!(
                "the replica URL is refused: {reason}; give another (`tenanted replicate --replica-url URL`; what was replicated before stays where Litestream wrote it)"
            )));
        }
        // A destroyed tenant's replica must go, in every store recorded.
        if let Err(Error::Replica { cause, .. }) = ReplicaStore::of(&self.replica_url) {
            return Err(refused(cause));
        }
        if self.retention.is_zero() || self.replica_url.starts_with("file://") {
            return Ok(());
        }
        Err(refused(format!(
            "{RETENTION_IN_LOCAL_REPLICAS_ONLY}: record it with `tenanted replicate --retention 0`"
        )))
    }

    /// Refuses a `file://` replica inside `root` or in place of a file
    /// (see [`refuse_local_replica`]). Only for settings about to be
    /// recorded: settings an earlier release recorded keep replicating
    /// after an upgrade, and a start never waits on the replica's file
    /// system (a dead NFS mount would hold it).
    fn check_local_replica(&self, root: &RootConfig, instead: &str) -> Result<()> {
        let Ok(ReplicaStore::Dir(dir)) = ReplicaStore::of(&self.replica_url) else {
            return Ok(());
        };
        refuse_local_replica(root.root_dir(), &dir).map_err(|reason| Error::ReplicationRefused {
            root: root.root_dir().to_path_buf(),
            url: self.replica_url.clone(),
            reason: format!("{reason}; {instead}"),
        })
    }

    /// Records these settings in `root` (replacing any recorded before):
    /// from then on every manager and CLI on the root follows them.
    ///
    /// # Errors
    ///
    /// [`Error::ReplicationRefused`] for a retention with a replica that is
    /// not a local directory (S3 erases at once or never), or a `file://`
    /// replica inside the root or in place of a file; [`Error::Io`]
    /// for a control socket's path too long, or writing the record (a
    /// root this process cannot write included);
    /// [`Error::Encryption`] for a root that keeps encrypted tenants,
    /// which Litestream cannot replicate. Nothing is recorded then.
    pub fn record(&self, root: &RootConfig) -> Result<()> {
        crate::paths::refuse_encrypted(root.root_dir())?;
        self.check(root)?;
        // The URL the root records already is no new choice: a service
        // unit that always passes it keeps starting after an upgrade (an
        // outside probe).
        let recorded = Self::recorded(root).ok().flatten();
        if recorded.is_none_or(|r| r.replica_url != self.replica_url) {
            self.check_local_replica(
                root,
                "record another with `tenanted replicate --replica-url URL`",
            )?;
        }
        let text = self.to_record();
        // Strictly: a root that cannot be written must say so, or every
        // process would go on without the settings (and the fence).
        let doing = "locking the root's replication settings record";
        let patience = crate::fs::Patience::new(crate::fs::record::RECORD_WAIT);
        rewrite_record((&record_path(root), doing), &patience, |old| {
            Ok((old != Some(text.as_str())).then(|| text.clone()))
        })
    }

    /// Records in `root` that Litestream replicates it in directory mode,
    /// to `replica_url`, with a configuration from
    /// [`RootConfig::litestream_config_for`] (`tenanted litestream-config`
    /// records it when it writes one). Nothing else in the root says so,
    /// and such a Litestream cannot read an encrypted tenant: while the
    /// record stands, encryption is refused on the root, as on a root
    /// `tenanted replicate` replicates. Remove
    /// `.tenanted/litestream-directory-mode` once that configuration is
    /// no longer run.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] writing the record: a missing root, or one this
    /// process cannot write (nothing is recorded then, and the CLI prints
    /// no configuration); [`Error::ReplicationRefused`] for a `file://`
    /// replica inside the root or in place of a file.
    pub fn record_directory_mode(root: &RootConfig, replica_url: &str) -> Result<()> {
        // The same refusal as `record`'s (a review: this path lacked it).
        let instead = "give `tenanted litestream-config` another replica URL";
        ReplicationSettings::new(replica_url).check_local_replica(root, instead)?;
        let text = format!("replica_url {replica_url}\n");
        // Strictly, as `record`: unrecorded, a re-key would go unrefused.
        let doing = "locking the record that Litestream replicates the root in directory mode";
        let patience = crate::fs::Patience::new(crate::fs::record::RECORD_WAIT);
        rewrite_record((&directory_mode_path(root), doing), &patience, |old| {
            Ok((old != Some(text.as_str())).then(|| text.clone()))
        })
    }

    /// The settings recorded in `root`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] reading the record, or naming it when it is damaged.
    pub fn recorded(root: &RootConfig) -> Result<Option<ReplicationSettings>> {
        let path = record_path(root);
        // Bytes that are not text: damaged, as a junk line is; and to be
        // removed first, since a record is rewritten only from text (a
        // review: the advice alone failed again).
        let read = read_record(&path).map_err(|e| match not_text_line(&e) {
            Some(_) => damaged_record(&path, true),
            None => e,
        });
        match read? {
            None => Ok(None),
            Some(text) => Self::from_record(&text)
                .map(Some)
                .ok_or_else(|| damaged_record(&path, false)),
        }
    }

    fn to_record(&self) -> String {
        format!(
            "replica_url {}\nretention_seconds {}\nshards {}\n",
            self.replica_url,
            self.retention.as_secs(),
            self.shards
        )
    }

    fn from_record(text: &str) -> Option<ReplicationSettings> {
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        };
        Some(ReplicationSettings {
            replica_url: lower_scheme(field("replica_url")?.to_owned()),
            retention: Duration::from_secs(field("retention_seconds")?.parse().ok()?),
            shards: field("shards")?.parse::<usize>().ok()?.max(1),
        })
    }
}

/// Where `root` records its replication settings.
pub(crate) fn record_path(root: &RootConfig) -> PathBuf {
    root.root_dir().join(INTERNAL_DIR).join(RECORD)
}

/// The error of the replication record at `path` that tenanted did not
/// write (`not_text`: not even text, so removed before it is recorded
/// again).
fn damaged_record(path: &Path, not_text: bool) -> Error {
    let what = match not_text {
        true => format!("not even text; remove {} and", path.display()),
        false => "not a replication record tenanted wrote;".to_owned(),
    };
    let why = std::io::Error::other(format!(
        "{what} record the settings again (`tenanted replicate --replica-url URL`)"
    ));
    Error::io(None, path, "reading the root's replication settings", why)
}

/// Why a replica directory `dir` cannot serve the root `root`, if it
/// cannot: inside the root (or the root itself), it is lost with the
/// root's disk and Litestream writes into the root; a file, Litestream
/// fails every sync in its own log while every status says it runs (an
/// outside probe recorded both).
fn refuse_local_replica(root: &Path, dir: &Path) -> std::result::Result<(), String> {
    let inside = containment::is_inside(root, dir).map_err(|e| {
        format!(
            "the replica directory {} cannot be resolved: {e}",
            dir.display()
        )
    })?;
    if inside {
        return Err(format!(
            "the replica directory {} is inside the root {} (or is the root): a replica there is lost with the root's disk, and Litestream would write among the tenants; give a directory on another disk or machine",
            dir.display(),
            root.display()
        ));
    }
    match sys::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() && !sys::is_dir(dir) => Err(format!(
            "{} is not a directory; give a directory (made if missing)",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Where `root` records that Litestream replicates it in directory mode.
fn directory_mode_path(root: &RootConfig) -> PathBuf {
    root.root_dir().join(INTERNAL_DIR).join(DIRECTORY_MODE)
}

/// The lock file in [`state_dir`] a running `tenanted replicate` holds.
pub(crate) const SUPERVISOR_LOCK: &str = "replicate.lock";

/// `tenanted replicate`'s own directory in the root.
pub(crate) fn state_dir(root: &RootConfig) -> PathBuf {
    root.root_dir().join(INTERNAL_DIR).join(STATE_DIR)
}

/// Refuses encryption on a root that Litestream replicates: Litestream
/// cannot read an encrypted tenant (see `paths::refuse_encrypted`), so it
/// would stop replicating every tenant created or re-keyed from then on.
///
/// # Errors
///
/// [`Error::Encryption`] when replication
/// settings are recorded; an I/O error reading them.
#[cfg(feature = "encryption")]
pub(crate) fn refuse_encryption(root: &RootConfig, tenant: Option<&TenantName>) -> Result<()> {
    let record = match ReplicationSettings::recorded(root)? {
        Some(_) => record_path(root),
        None if crate::fs::sys::exists(&directory_mode_path(root)) => directory_mode_path(root),
        None => return Ok(()),
    };
    Err(Error::Encryption {
        tenant: tenant.cloned(),
        path: record.clone(),
        reason: format!(
            "this root is replicated with Litestream (recorded in {}), which cannot read encrypted tenants: encrypting a tenant here would stop its replication; keep it plaintext, or stop replicating the root first (stop Litestream, then remove that record) and keep encrypted tenants beyond one disk with backups",
            record.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica inside the root is lost with it, and one that is a file
    /// fails every sync unseen: neither is recorded (an outside probe
    /// recorded both, and one of them over working settings).
    #[test]
    fn a_replica_in_the_root_or_in_place_of_a_file_is_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        let root = RootConfig::new(&root_dir);
        std::fs::create_dir_all(root_dir.join(INTERNAL_DIR)).unwrap();
        let good = format!("file://{}", dir.path().join("replica").display());
        ReplicationSettings::new(&good).record(&root).unwrap();
        let a_file = dir.path().join("a-file");
        std::fs::write(&a_file, "x").unwrap();
        std::os::unix::fs::symlink(&root_dir, dir.path().join("link-to-root")).unwrap();
        for (place, why) in [
            (root_dir.join("replica"), "inside the root"),
            (root_dir.clone(), "inside the root"),
            (dir.path().join("link-to-root/r"), "inside the root"),
            (a_file, "not a directory"),
        ] {
            let url = format!("file://{}", place.display());
            let refused = ReplicationSettings::new(&url).record(&root).unwrap_err();
            assert!(
                matches!(&refused, Error::ReplicationRefused { reason, .. } if reason.contains(why)),
                "{url}: {refused}"
            );
            let kept = ReplicationSettings::recorded(&root).unwrap().unwrap();
            assert_eq!(kept.replica_url(), good, "{url}");
        }
        // One an earlier release recorded is no new choice: given again
        // (a service unit that always passes it), it is recorded as it
        // was, with a new retention too.
        let inside = format!("file://{}", root_dir.join("replica").display());
        std::fs::write(
            record_path(&root),
            format!("replica_url {inside}\nretention_seconds 0\nshards 1\n"),
        )
        .unwrap();
        ReplicationSettings::new(&inside).record(&root).unwrap();
        (ReplicationSettings::new(&inside).retention(Duration::from_secs(5)))
            .record(&root)
            .unwrap();
    }

    #[test]
    fn a_record_that_is_not_text_is_named_damaged_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path());
        std::fs::create_dir_all(dir.path().join(INTERNAL_DIR)).unwrap();
        for damaged in [&b"junk\n"[..], b"replica_url file:///r\xff\n"] {
            std::fs::write(record_path(&root), damaged).unwrap();
            let said = ReplicationSettings::recorded(&root)
                .unwrap_err()
                .to_string();
            assert!(said.contains("record the settings again"), "{said}");
            // The advice works: removed where it says so, then recorded.
            if said.contains("remove") {
                std::fs::remove_file(record_path(&root)).unwrap();
            }
            ReplicationSettings::new("file:///r").record(&root).unwrap();
            assert!(ReplicationSettings::recorded(&root).unwrap().is_some());
        }
    }

    /// Refused before anything is recorded: a URL Litestream reads
    /// otherwise, a store tenanted cannot erase a destroyed tenant's
    /// replica in; an upper-case scheme is taken as Litestream takes it.
    #[test]
    fn urls_a_destroy_could_not_erase_under_are_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path());
        std::fs::create_dir_all(dir.path().join(INTERNAL_DIR)).unwrap();
        for url in [
            "s3://tbk/sp%20c",
            "ftp://x/y",
            "tbk/noscheme",
            "s3://",
            "file:///r//x",
        ] {
            let refused = ReplicationSettings::new(url).record(&root).unwrap_err();
            assert!(
                matches!(refused, Error::ReplicationRefused { .. }),
                "{url}: {refused}"
            );
            assert!(
                ReplicationSettings::recorded(&root).unwrap().is_none(),
                "{url}"
            );
        }
        let upper = ReplicationSettings::new("FILE:///r/");
        assert_eq!(upper.replica_url(), "file:///r");
        upper.record(&root).unwrap();
        let back = ReplicationSettings::recorded(&root).unwrap().unwrap();
        assert_eq!(back.replica_url(), "file:///r");
        let old = "replica_url S3://b/p\nretention_seconds 0\nshards 1\n";
        assert_eq!(
            ReplicationSettings::from_record(old).unwrap().replica_url(),
            "s3://b/p",
            "a record written before is read as Litestream reads it"
        );
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let settings = ReplicationSettings::new("file:///r/")
            .retention(Duration::from_millis(90_500))
            .shards(3);
        assert_eq!(settings.replica_url(), "file:///r");
        assert_eq!(settings.retention_period(), Duration::from_secs(90));
        let back = ReplicationSettings::from_record(&settings.to_record()).unwrap();
        assert_eq!(back, settings);
        assert!(ReplicationSettings::from_record("replica_url x\n").is_none());
        assert_eq!(
            settings.replica_url_of(Path::new("ab/acme/main.sqlite3")),
            "file:///r/ab/acme/main.sqlite3"
        );
        let s3 = ReplicationSettings::new("s3://b/t/?endpoint=http://h:8333");
        assert_eq!(
            s3.replica_url_of(Path::new("ab/acme/main.sqlite3")),
            "s3://b/t/ab/acme/main.sqlite3?endpoint=http://h:8333"
        );
    }
}
