//! `tenanted replicate` (Litestream for the whole root) and
//! `tenanted erase-replicas`.

use std::path::PathBuf;
use std::time::Duration;

use tenanted::replication::{ReplicateOptions, ReplicationSettings, Replicator};

use crate::Cli;
use crate::interrupt::cancel_on_ctrl_c;
use crate::output::{errln, outln};
use crate::support::{Failure, require_root};

/// `tenanted replicate`.
#[derive(clap::Args)]
pub struct ReplicateArgs {
    /// Where tenants are replicated (file:///DIR, s3://BUCKET/PATH); recorded
    /// in the root, so every process on it (and the next run) follows it.
    /// Default: the URL recorded before.
    #[arg(long, value_name = "URL")]
    replica_url: Option<String>,
    /// Keep a destroyed tenant's replica this many seconds before erasing
    /// it (0: erased when the destroy returns; a local directory only).
    /// Recorded in the root. Default: the retention recorded before, else 0.
    #[arg(long, value_name = "SECONDS")]
    retention: Option<u64>,
    /// Litestream processes to run, each with a share of the tenants.
    /// Recorded in the root. Default: the count recorded before, else 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,
    /// The Litestream binary (0.5.17 or later).
    #[arg(long, env = "TENANTED_LITESTREAM", default_value = "litestream")]
    litestream: PathBuf,
    /// How often the tenants are looked at, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    scan_interval: u64,
    /// Let go of a tenant this many seconds after its last write.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    idle_after: u64,
    /// At most this many tenants registered per Litestream process.
    #[arg(long, default_value_t = 2000)]
    max_per_process: usize,
    /// Print every scan's report as a JSON line.
    #[arg(long)]
    json: bool,
}

pub fn replicate(cli: &Cli, args: &ReplicateArgs) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let root = cli.root_config();
    let mut options = ReplicateOptions::new()
        .litestream(&args.litestream)
        .scan_interval(Duration::from_millis(args.scan_interval))
        .idle_after(Duration::from_secs(args.idle_after))
        .max_per_process(args.max_per_process);
    // Recorded by the run once it holds the root and has checked them.
    if let Some(settings) = settings_asked(args, ReplicationSettings::recorded(&root)?) {
        options = options.record(settings);
    }
    // Before Litestream is started: a signal while it starts must reach
    // this handler, not end the supervisor and leave Litestream running.
    let stop = cancel_on_ctrl_c();
    let replicator = Replicator::start(&root, options)?;
    errln!(
        "replicating {}; Ctrl-C (or SIGTERM) lets go of every tenant and stops",
        cli.root.display()
    );
    let json = args.json;
    replicator.run(&stop, |scan| {
        if json {
            outln!("{}", serde_json::to_string(scan).unwrap_or_default());
        } else {
            tracing::debug!(?scan, "scan");
        }
    })?;
    Ok(0)
}

/// The settings `args` ask for, each one not given kept as recorded
/// (`recorded`): a service unit that always passes the URL keeps the
/// retention and shards set once. `None` when nothing is asked, or when
/// nothing is recorded for a retention or shard count alone to change
/// (the run then says no replication is configured).
fn settings_asked(
    args: &ReplicateArgs,
    recorded: Option<ReplicationSettings>,
) -> Option<ReplicationSettings> {
    let base = match (&args.replica_url, recorded) {
        (Some(url), Some(recorded)) => ReplicationSettings::new(url)
            .retention(recorded.retention_period())
            .shards(recorded.shard_count()),
        (Some(url), None) => ReplicationSettings::new(url),
        (None, Some(recorded)) if args.retention.is_some() || args.shards.is_some() => recorded,
        (None, _) => return None,
    };
    let with_retention = match args.retention {
        Some(seconds) => base.retention(Duration::from_secs(seconds)),
        None => base,
    };
    Some(match args.shards {
        Some(shards) => with_retention.shards(usize::try_from(shards).unwrap_or(usize::MAX)),
        None => with_retention,
    })
}

pub fn erase_replicas(cli: &Cli) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let erased = cli.schemaless_manager()?.erase_destroyed_replicas()?;
    outln!("erased {erased} destroyed tenant replica(s)");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        args: ReplicateArgs,
    }

    fn asked(line: &[&str], recorded: Option<ReplicationSettings>) -> Option<ReplicationSettings> {
        let args = Line::parse_from([&["replicate"][..], line].concat()).args;
        settings_asked(&args, recorded)
    }

    /// What is not given is kept as recorded: a service unit that always
    /// passes the URL keeps the retention and shards set once (before,
    /// they fell back to 0 and 1), and a retention or shard count alone
    /// changes the recorded settings (before, it was ignored).
    #[test]
    fn settings_not_given_are_kept_as_recorded() {
        let recorded = ReplicationSettings::new("file:///r")
            .retention(Duration::from_secs(60))
            .shards(2);
        let same_url = asked(&["--replica-url", "file:///r"], Some(recorded.clone()));
        assert_eq!(same_url.as_ref(), Some(&recorded));
        let moved = asked(&["--replica-url", "file:///s"], Some(recorded.clone())).unwrap();
        assert_eq!((moved.replica_url(), moved.shard_count()), ("file:///s", 2));
        let changed = asked(
            &["--retention", "600", "--shards", "3"],
            Some(recorded.clone()),
        );
        let expected = recorded
            .clone()
            .retention(Duration::from_secs(600))
            .shards(3);
        assert_eq!(changed, Some(expected));
        assert_eq!(asked(&[], Some(recorded)), None, "nothing asked");
        assert_eq!(asked(&["--shards", "3"], None), None, "nothing to change");
        let fresh = asked(&["--replica-url", "file:///r"], None).unwrap();
        assert_eq!(
            (fresh.retention_period(), fresh.shard_count()),
            (Duration::ZERO, 1)
        );
    }
}
