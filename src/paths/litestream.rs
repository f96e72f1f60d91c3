//! A Litestream configuration for a root's layout.
//!
//! Litestream 0.5 replicates a whole directory tree of SQLite files
//! (`dir`, `pattern`, `recursive`, `watch`), picking up tenants created
//! while it runs and dropping a database whose file disappears (a destroy
//! waits for it to let go, like for any process). The pattern is the
//! template's file name with its placeholders as `*`, so SQLite's sidecars
//! never match; a leading placeholder is `[^.]*` (tenant names never start
//! with a dot), so no hidden file matches either: neither tenanted's
//! siblings of a tenant nor its template database
//! (`.tenanted/templates/.<fingerprint>.sqlite3`), which Litestream, given
//! a recursive pattern such as `*.sqlite3`, would otherwise replicate and
//! change (Go's `filepath.Match`, which Litestream uses on each base name,
//! lets `*` match a leading dot).

use std::path::Path;

use super::replica_target::ReplicaTarget;
use super::root::RootConfig;
use crate::error::{Error, Result};

impl RootConfig {
    /// A Litestream (0.5 or later) configuration that replicates every
    /// tenant of this root to `replica_url` (for example
    /// `s3://bucket/tenants` or `file:///var/backups/tenants`); each
    /// database goes to its path under the root, appended to the URL.
    ///
    /// Run it with `litestream replicate -config FILE`. Litestream expands
    /// `$VAR` in its configuration; pass it `-no-expand-env` if the root's
    /// path holds a `$`. One Litestream process is known to struggle past
    /// about 10,000 databases: see the README for sharding a large root
    /// across several processes by bucket.
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`] for an invalid template; an I/O error if the
    /// current directory is needed to make the root absolute and cannot be
    /// read; [`Error::Encryption`] for a root that keeps encrypted tenants,
    /// which Litestream cannot replicate.
    ///
    /// ```
    /// let root = tenanted::RootConfig::new("/var/lib/app/tenants");
    /// let yaml = root.litestream_config("s3://backups/tenants")?;
    /// assert!(yaml.contains("dir: \"/var/lib/app/tenants\""));
    /// assert!(yaml.contains("pattern: \"main.sqlite3\""));
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn litestream_config(&self, replica_url: &str) -> Result<String> {
        self.litestream_config_for(&ReplicaTarget::new(replica_url))
    }

    /// As [`litestream_config`](Self::litestream_config), to a replica
    /// that may need an endpoint, a region or path-style addressing (an
    /// S3-compatible store such as SeaweedFS or MinIO).
    ///
    /// # Errors
    ///
    /// As [`litestream_config`](Self::litestream_config).
    ///
    /// ```
    /// use tenanted::{ReplicaTarget, RootConfig};
    /// let target = ReplicaTarget::new("s3://backups/tenants")
    ///     .endpoint("http://127.0.0.1:8333")
    ///     .force_path_style(true);
    /// let yaml = RootConfig::new("/var/lib/app/tenants").litestream_config_for(&target)?;
    /// assert!(yaml.contains("endpoint: \"http://127.0.0.1:8333\""));
    /// assert!(yaml.contains("force-path-style: true"));
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn litestream_config_for(&self, target: &ReplicaTarget) -> Result<String> {
        self.validate()?;
        refuse_encrypted(self.root_dir())?;
        let dir = std::path::absolute(self.root_dir())
            .map_err(|e| Error::io(None, self.root_dir(), "making the root path absolute", e))?;
        let template = self.template_str();
        let file_name = template.rsplit('/').next().unwrap_or(template);
        let pattern = file_name
            .replace("%{tenant}", "*")
            .replace("%{bucket}", "*");
        let pattern = match pattern.strip_prefix('*') {
            Some(rest) => format!("[^.]*{rest}"),
            None => pattern,
        };
        let recursive = template.contains('/');
        Ok(format!(
            "{DIRECTORY_MODE_NOTE}\
             dbs:\n  - dir: {dir}\n    pattern: {pattern}\n    recursive: {recursive}\n    watch: true\n    replica:\n{replica}",
            dir = yaml_string(&dir),
            pattern = yaml_string(Path::new(&pattern)),
            replica = target.yaml_lines(|s| yaml_string(Path::new(s))),
        ))
    }
}

/// The head of a directory-mode configuration: what it is, and where to
/// run Litestream with it. Litestream 0.5.17, when a tenant is published
/// (a directory renamed into place, as every create and restore does),
/// looks for databases again relative to its working directory: run from
/// the root, or any directory above it (`/`, systemd's default,
/// included), it logs "can't make ... relative to" the root, drops the
/// SQLite locks it held on the tenants it replicates, and a writer's
/// last connection then checkpoints and removes the `-wal` under it: it
/// replicates none of their later changes (an outside probe, 5 of 5 runs;
/// none from an empty directory elsewhere).
const DIRECTORY_MODE_NOTE: &str = "\
# Written by tenanted: every tenant database of the root, in Litestream's
# directory mode. Run Litestream with its working directory an empty
# directory outside the root: not the root, nor any directory above it
# (`/`, systemd's default, included; set WorkingDirectory=). Started
# there, Litestream 0.5.17 stops replicating the tenants it has when a
# tenant is created. Prefer `tenanted replicate`, which needs none of
# this, erases destroyed tenants' replicas and keeps restored ones.
";

/// Refuses to replicate a root that keeps encrypted tenants (its keys
/// directory exists): Litestream reads every database with its own
/// SQLite, which has no key, and replicates none of them. Measured with
/// Litestream 0.5.17 on an encrypted tenant: `sync error ... database disk
/// image is malformed (11)` every second, and no replica written. Saying
/// so at once beats a replica that silently stays empty.
///
/// # Errors
///
/// [`Error::Encryption`] naming the keys directory, saying what to do.
pub(crate) fn refuse_encrypted(root: &Path) -> Result<()> {
    let keys = crate::root_description::keys_dir(root);
    if !crate::fs::sys::exists(&keys) {
        return Ok(());
    }
    Err(Error::Encryption {
        tenant: None,
        path: keys,
        reason: "this root keeps encrypted tenants, and Litestream cannot replicate them: it reads every database with its own SQLite, which has no key (it logs \"database disk image is malformed\" and writes no replica); back the tenants up instead, with `tenanted backup --into DIR --keep N` (each backup stays encrypted with its tenant's key), copy DIR off the machine, and back up the keys directory apart from the master key".to_string(),
    })
}

/// A double-quoted YAML scalar.
pub(crate) fn yaml_string(value: &Path) -> String {
    let mut out = String::from("\"");
    for c in value.to_string_lossy().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use crate::paths::RootConfig;

    fn pattern(template: &str) -> String {
        let yaml = RootConfig::new("/srv/t")
            .template(template)
            .litestream_config("file:///r")
            .unwrap();
        let line = yaml.lines().find(|l| l.contains("pattern:")).unwrap();
        line.trim().to_owned()
    }

    #[test]
    fn a_leading_placeholder_never_matches_a_hidden_file() {
        assert_eq!(
            pattern("%{bucket}/%{tenant}/main.sqlite3"),
            "pattern: \"main.sqlite3\""
        );
        assert_eq!(
            pattern("%{bucket}/%{tenant}.sqlite3"),
            "pattern: \"[^.]*.sqlite3\""
        );
        assert_eq!(pattern("db/t-%{tenant}.db"), "pattern: \"t-*.db\"");
        assert_eq!(pattern("%{tenant}-%{bucket}.db"), "pattern: \"[^.]*-*.db\"");
    }
}
