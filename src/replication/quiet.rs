//! The quiet record: `replication.d/quiet` keeps each idle tenant's files
//! as they were when its replica was complete, so that a restarted
//! supervisor registers only the tenants written since.
//!
//! The record names the replica it was made for (its first line): a
//! supervisor started on another URL (settings changed while it was
//! stopped) trusts none of it. And at every start the quiet tenants are
//! looked up in the replica itself: one whose replica is gone (a wiped
//! directory, a lost bucket) is quiet no more, so it is registered and
//! Litestream uploads it again. Without these, a restart onto a new or
//! emptied replica never uploaded an idle tenant, and a rebuild from it
//! left that tenant out with no word (an outside probe).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::listing::replica_entries;
use super::tenant_files::Signature;
use super::until::Until;
use crate::fs::Dir;
use crate::fs::files::{read_file, replace_file};
use crate::name::TenantName;
use crate::paths::{ReplicaTarget, RootConfig};

/// The record's name in `replication.d`.
const QUIET: &str = "quiet";

/// The first line's word before the replica URL.
const REPLICA: &str = "replica ";

/// How long the start's listing of the replica may take (as a status's).
const LISTING_WITHIN: Duration = Duration::from_secs(15);

/// The quiet signatures a supervisor of `url` may trust: those recorded
/// for `url` whose tenant the replica still holds (none if the record is
/// unreadable, of another replica, or the replica cannot be listed: then
/// every tenant is looked at once).
pub(super) fn load(state: &Dir, root: &RootConfig, url: &str) -> HashMap<TenantName, Signature> {
    let text = read_file(state, Path::new(QUIET), u64::MAX).unwrap_or_default();
    let mut lines = text.lines();
    if lines.next().and_then(|first| first.strip_prefix(REPLICA)) != Some(url) {
        return HashMap::new();
    }
    let mut quiet: HashMap<_, _> = lines.filter_map(parse).collect();
    if quiet.is_empty() {
        return quiet;
    }
    let until = Until(Some(Instant::now() + LISTING_WITHIN));
    match replica_entries(root, &ReplicaTarget::parse(url), until) {
        Ok(held) => quiet.retain(|tenant, _| held.contains_key(tenant)),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the replica: every tenant is registered once");
            quiet.clear();
        }
    }
    quiet
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
