//! `limit set|show|clear`, `suspend` and `resume`: a tenant's size limit
//! and suspension, recorded in the root for every process.

use clap::{Args, Subcommand};
use tenanted::{SuspendMode, TenantLimits, TenantManager, TenantName};

use super::Cli;
use super::support::{Failure, USAGE, require_root, tenant_names};
use crate::output::{one_line, outln};

/// `tenanted limit ...`.
#[derive(Subcommand)]
pub enum LimitCommand {
    /// Set a tenant's size limit (bytes, or with a K, M, G suffix:
    /// 500M; or `unlimited`), for every process of the root.
    Set {
        /// Tenant name.
        name: String,
        /// The limit: 1048576, 64K, 500M, 2G or unlimited.
        size: String,
    },
    /// Show a tenant's size limit and suspension.
    Show {
        /// Tenant name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a tenant's own limit: the default applies again.
    Clear {
        /// Tenant name.
        name: String,
    },
}

/// `tenanted suspend`: one mode of the two is required, and clap's error
/// for the group names both (`<--read-only|--blocked>`).
#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["read_only", "blocked"])))]
pub struct SuspendArgs {
    /// Tenant name.
    name: String,
    /// Serve the tenant read-only (instead of refusing it).
    #[arg(long)]
    read_only: bool,
    /// Refuse every connection to the tenant.
    #[arg(long)]
    blocked: bool,
    /// The reason callers are shown.
    #[arg(long)]
    reason: String,
}

/// The CLI's manager for these commands: no migrations needed.
fn manager(cli: &Cli) -> Result<TenantManager, Failure> {
    require_root(&cli.root)?;
    cli.schemaless_manager()
}

fn one_name(name: &str) -> Result<TenantName, Failure> {
    Ok(tenant_names(&[name.to_owned()])?.remove(0))
}

pub fn limit(cli: &Cli, command: &LimitCommand) -> Result<u8, Failure> {
    let m = manager(cli)?;
    match command {
        LimitCommand::Set { name, size } => {
            let tenant = one_name(name)?;
            let bytes = parse_size(size)?;
            m.set_tenant_max_size(tenant.as_str(), bytes)?;
            outln!("{tenant}: size limit {}", show_size(bytes));
        }
        LimitCommand::Clear { name } => {
            let tenant = one_name(name)?;
            m.clear_tenant_max_size(tenant.as_str())?;
            outln!("{tenant}: own size limit cleared (the default applies)");
        }
        LimitCommand::Show { name, json } => {
            let tenant = one_name(name)?;
            let limits = m.tenant_limits(tenant.as_str())?;
            if *json {
                let value = serde_json::json!({ "tenant": tenant.as_str(), "limits": limits });
                outln!("{value}");
            } else {
                outln!("{tenant}: {}", describe(&limits));
            }
        }
    }
    Ok(0)
}

pub fn suspend(cli: &Cli, args: &SuspendArgs) -> Result<u8, Failure> {
    let tenant = one_name(&args.name)?;
    // Callers are shown the reason: an empty one would tell them nothing.
    if args.reason.trim().is_empty() {
        let why = format!(
            "--reason is empty: give the reason callers of {tenant} are shown (--reason 'invoice unpaid'); nothing was suspended"
        );
        return Err(Failure(USAGE, why));
    }
    let mode = if args.blocked {
        SuspendMode::Blocked
    } else {
        SuspendMode::ReadOnly
    };
    manager(cli)?.suspend_tenant(tenant.as_str(), mode, &args.reason)?;
    outln!("suspended {tenant} ({mode}): {}", one_line(&args.reason));
    Ok(0)
}

pub fn resume(cli: &Cli, name: &str) -> Result<u8, Failure> {
    let tenant = one_name(name)?;
    let m = manager(cli)?;
    // Nothing is written for a tenant not suspended: "resumed" would
    // suggest it had been (a suspension recorded since is left alone).
    if m.tenant_limits(tenant.as_str())?.suspension.is_none() {
        outln!("{tenant} was not suspended: nothing to resume");
        return Ok(0);
    }
    m.resume_tenant(tenant.as_str())?;
    outln!("resumed {tenant}");
    Ok(0)
}

/// One line: the limit and the suspension.
pub fn describe(limits: &TenantLimits) -> String {
    let own = if limits.overridden { "" } else { " (default)" };
    let mut text = format!("size limit {}{own}", show_size(limits.max_size));
    if let Some(s) = &limits.suspension {
        text.push_str(&format!(
            ", suspended ({}): {}",
            s.mode,
            one_line(&s.reason)
        ));
    }
    text
}

/// `unlimited`, or bytes with the unit they divide into.
pub fn show_size(bytes: Option<u64>) -> String {
    let Some(bytes) = bytes else {
        return "unlimited".into();
    };
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit} ({bytes} bytes)", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// `--default-max-size`: a size (not `unlimited`: leave the option out).
pub fn parse_size_arg(text: &str) -> Result<u64, String> {
    match parse_size(text) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err("leave the option out for no default limit".into()),
        Err(Failure(_, message)) => Err(message),
    }
}

/// `1048576`, `64K`, `500M`, `2G` (powers of 1024) or `unlimited`.
fn parse_size(text: &str) -> Result<Option<u64>, Failure> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .map(Some)
        .ok_or_else(|| {
            Failure(
                2,
                format!("invalid size {text:?}: give bytes (1048576), a number with K, M or G (64K, 500M, 2G), or unlimited"),
            )
        })
}

/// Every suspended tenant of the root, by name (for `list`).
pub fn suspended(
    cli: &Cli,
) -> Result<std::collections::BTreeMap<String, tenanted::Suspension>, Failure> {
    let recorded = cli.schemaless_manager()?.recorded_limits()?;
    Ok(recorded
        .into_iter()
        .filter_map(|(name, limits)| Some((name.as_str().to_owned(), limits.suspension?)))
        .collect())
}
