//! `tenanted replication-status`: which tenants are replicated, their last
//! sync and lag, which are not and why.

use crate::Cli;
use crate::output::outln;
use crate::support::json;
use crate::support::{Failure, require_root};

/// `tenanted replication-status`.
#[derive(clap::Args)]
pub struct ReplicationStatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when every tenant's replica has every change and a `tenanted
/// replicate` runs, 1 otherwise (and when replication is configured but
/// Litestream is not running).
pub fn replication_status(cli: &Cli, args: &ReplicationStatusArgs) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let status = cli.schemaless_manager()?.replication_status()?;
    if args.json {
        outln!("{}", json(&status));
    } else {
        outln!("{status}");
    }
    Ok(if status.all_replicated() && status.supervised {
        0
    } else {
        1
    })
}
