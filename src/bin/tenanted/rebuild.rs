//! `tenanted rebuild`: a root rebuilt from its Litestream replica.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tenanted::replication::{RebuildOptions, RebuildOutcome, RebuildReport};

use crate::Cli;
use crate::interrupt::{INTERRUPTED, cancel_on_ctrl_c};
use crate::litestream_config::ReplicaArgs;
use crate::migrate::progress_bar;
use crate::output::{errln, outln};
use crate::support::json;
use crate::support::{Failure, tenant_names};

/// `tenanted rebuild`.
#[derive(clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Rebuild only this tenant (repeat for several; default: every tenant
    /// the replica holds).
    #[arg(long = "tenant", value_name = "NAME")]
    tenants: Vec<String>,
    /// Each tenant as it was at this time (RFC 3339, UTC:
    /// 2026-12-05T05:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<SystemTime>,
    /// Tenants restored at a time (at least 1; default: 4 per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// The directory in which the rebuild makes its own private staging
    /// directory, where tenants are restored before they are checked and
    /// published (outside the root; default: the temporary directory).
    /// Nothing already in it is touched.
    #[arg(long, value_name = "DIR")]
    staging: Option<PathBuf>,
    /// The litestream binary (default: litestream on the PATH).
    #[arg(long, value_name = "FILE")]
    litestream: Option<PathBuf>,
    /// How long one tenant's `litestream restore` may run before it is
    /// killed and the tenant reported failed (a store that stalls
    /// mid-download; default: 1800).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// Print the report as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// The one command besides `init` that makes a missing root (README, "A
/// lost machine"): it brings a lost root back on a fresh machine.
pub fn rebuild(cli: &Cli, args: &RebuildArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    let manager = cli.manager()?;
    let cancel = cancel_on_ctrl_c();
    let mut options = RebuildOptions::new(args.replica.target()).cancel_on(Arc::clone(&cancel));
    if !only.is_empty() {
        options = options.only(only.iter().map(|t| t.as_str().to_owned()));
    }
    if let Some(at) = args.at {
        options = options.at(at);
    }
    if let Some(jobs) = args.jobs {
        options = options.jobs(usize::from(jobs));
    }
    if let Some(dir) = &args.staging {
        options = options.staging(dir);
    }
    if let Some(bin) = &args.litestream {
        options = options.litestream(bin);
    }
    if let Some(secs) = args.timeout {
        options = options.litestream_timeout(std::time::Duration::from_secs(secs));
    }
    let bar = progress_bar(cli.quiet || args.json);
    if let Some(bar) = &bar {
        let bar = bar.clone();
        options = options.on_progress(move |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.tenant.as_str().to_owned());
        });
    }
    let report = manager.rebuild_from_replica(&options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        outln!("{}", json(&report));
        if report.found_nothing() {
            errln!(
                "the replica {} holds no tenant: if tenants were replicated there, check its URL (bucket and path) and --endpoint, and that --template and --buckets are the lost root's (a replica is laid out like its root)",
                report.replica
            );
        }
    } else {
        outln!("{report}");
    }
    let missed = missed(&report, !only.is_empty());
    if let Some(why) = &missed {
        errln!("{why}");
    }
    // Nothing to rebuild is a failure: a root is rebuilt because it had
    // tenants, so an empty replica is most likely the wrong one.
    Ok(if report.cancelled {
        INTERRUPTED
    } else if report.is_success() && !report.found_nothing() && missed.is_none() {
        0
    } else {
        1
    })
}

/// What a run that restored less than it was asked for missed, in an
/// operator's words: a tenant named with `--tenant` that the replica does
/// not hold (a misspelt name, as `backup --tenant` treats one), or, with
/// none named, every tenant of the replica absent at `--at` (a time
/// before any of them was replicated).
fn missed(report: &RebuildReport, named: bool) -> Option<String> {
    let absent: Vec<&str> = (report.tenants.iter())
        .filter(|t| matches!(t.outcome, RebuildOutcome::NotInReplica))
        .map(|t| t.tenant.as_str())
        .collect();
    let at = match report.at {
        Some(at) => format!(" at {}", tenanted::replication::format_timestamp(at)),
        None => String::new(),
    };
    if named && !absent.is_empty() {
        return Some(format!(
            "the replica {} holds nothing of {}{at}: check the names (a tenant's replica is under its path in the root), and --at",
            report.replica,
            absent.join(", ")
        ));
    }
    let all_absent = !report.tenants.is_empty() && absent.len() == report.tenants.len();
    all_absent.then(|| {
        format!(
            "none of the replica's {} tenants existed{at}: nothing was rebuilt; pick a later --at (or none, for the latest)",
            report.tenants.len()
        )
    })
}

/// A `--at` value.
fn parse_time(text: &str) -> Result<SystemTime, String> {
    tenanted::replication::parse_timestamp(text)
        .ok_or_else(|| format!("{text:?} is not a UTC time such as 2026-12-05T05:00:00Z"))
}
