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
    /// it (0: erased when the destroy returns). Recorded with the URL.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    retention: u64,
    /// Litestream processes to run, each with a share of the tenants.
    /// Recorded with the URL.
    #[arg(long, default_value_t = 1)]
    shards: usize,
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
    if let Some(url) = &args.replica_url {
        ReplicationSettings::new(url)
            .retention(Duration::from_secs(args.retention))
            .shards(args.shards)
            .record(&root)?;
    }
    let options = ReplicateOptions::new()
        .litestream(&args.litestream)
        .scan_interval(Duration::from_millis(args.scan_interval))
        .idle_after(Duration::from_secs(args.idle_after))
        .max_per_process(args.max_per_process);
    let replicator = Replicator::start(&root, options)?;
    errln!(
        "replicating {}; Ctrl-C (or SIGTERM) lets go of every tenant and stops",
        cli.root.display()
    );
    let stop = cancel_on_ctrl_c();
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

pub fn erase_replicas(cli: &Cli) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let erased = cli.schemaless_manager()?.erase_destroyed_replicas()?;
    outln!("erased {erased} destroyed tenant replica(s)");
    Ok(0)
}
