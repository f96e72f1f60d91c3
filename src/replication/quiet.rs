//! The quiet record: `replication.d/quiet` keeps each idle tenant's files
//! as they were when its replica was complete, so that a restarted
//! supervisor registers only the tenants written since.
//!
//! The record names the replica it was made for (its first line): a
//! supervisor started on another URL (settings changed while it was
//! stopped) trusts none of it, and neither does one whose `file://`
//! replica directory is gone (a wiped disk). Without these, a restart
//! onto a new or lost replica never uploaded an idle tenant, and a
//! rebuild from it left that tenant out with no word (an outside probe).
//! The replica is not listed at start: at a hundred thousand tenants an
//! S3 listing takes longer than a start should, and fails where the
//! store's certificate is private; a replica emptied by hand while its
//! directory or bucket stays is for the operator to say (remove the
//! record). A record of an earlier release, with no URL line, is trusted
//! by no one: the first start after the upgrade registers every tenant
//! once.

use std::collections::HashMap;
use std::path::Path;

use super::tenant_files::Signature;
use crate::fs::files::{read_file, replace_file};
use crate::fs::{Dir, sys};
use crate::name::TenantName;

/// The record's name in `replication.d`.
const QUIET: &str = "quiet";

/// The first line's word before the replica URL.
const REPLICA: &str = "replica ";

/// The quiet signatures a supervisor of `url` may trust: those recorded
/// for `url`, while its replica is there (none if the record is
/// unreadable, of another replica, or the `file://` directory is gone:
/// then every tenant is looked at once).
pub(super) fn load(state: &Dir, url: &str) -> HashMap<TenantName, Signature> {
    let text = read_file(state, Path::new(QUIET), u64::MAX).unwrap_or_default();
    let mut lines = text.lines();
    if lines.next().and_then(|first| first.strip_prefix(REPLICA)) != Some(url) {
        return HashMap::new();
    }
    if let Some(dir) = url.strip_prefix("file://")
        && !sys::exists(Path::new(dir))
    {
        tracing::warn!(
            replica = url,
            "the replica directory is gone: every tenant is registered once"
        );
        return HashMap::new();
    }
    lines.filter_map(parse).collect()
}

/// Saves `quiet` as the record for `url` (a scratch file renamed over the
/// old one).
///
/// # Errors
///
/// I/O errors writing it.
pub(super) fn save(
    state: &Dir,
    url: &str,
    quiet: &HashMap<TenantName, Signature>,
) -> std::io::Result<()> {
    let mut text = String::with_capacity(quiet.len() * 80 + url.len() + 10);
    text.push_str(&format!("{REPLICA}{url}\n"));
    for (tenant, sig) in quiet {
        let (size, secs, nanos) = sig.db;
        let wal = sig
            .wal
            .map_or("-".to_owned(), |(a, b, c)| format!("{a} {b} {c}"));
        text.push_str(&format!(
            "{tenant} {} {size} {secs} {nanos} {wal}\n",
            sig.inode
        ));
    }
    replace_file(state, Path::new(QUIET), text.as_bytes())
}

fn parse(line: &str) -> Option<(TenantName, Signature)> {
    let mut f = line.split(' ');
    let tenant = TenantName::new(f.next()?).ok()?;
    let mut num = || f.next()?.parse::<i64>().ok();
    let inode = u64::try_from(num()?).ok()?;
    let db = (u64::try_from(num()?).ok()?, num()?, num()?);
    let wal = match (num(), num(), num()) {
        (Some(a), Some(b), Some(c)) => Some((u64::try_from(a).ok()?, b, c)),
        _ => None,
    };
    Some((tenant, Signature { inode, db, wal }))
}
