//! `usage`: every tenant's use of the disk (streamed as read, or the top
//! rows in an order), and what `status` adds about size limits and
//! suspensions.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tenanted::{TenantManager, TenantUsage, UsageOrder, UsageReport};

use super::Cli;
use super::limits::show_size;
use super::support::{Failure, cli_message, require_root};
use crate::output::{errln, one_line, outln};

/// `tenanted usage`.
#[derive(Args)]
pub struct UsageArgs {
    /// Show only the top tenants in this order (without it, every tenant
    /// is printed as it is read, in no order).
    #[arg(long, value_enum)]
    sort: Option<SortBy>,
    /// How many tenants --sort shows.
    #[arg(long, default_value_t = 20, requires = "sort", value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Print JSON: one object per tenant, then {"summary": ...}; with
    /// --sort, the report with its "top" rows.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum SortBy {
    /// Most bytes on disk first.
    Size,
    /// Largest share of the size limit first (tenants with a limit).
    Limit,
    /// Oldest last write first.
    Idle,
}

pub fn usage(cli: &Cli, args: &UsageArgs) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let m = cli.schemaless_manager()?;
    let report = match args.sort {
        Some(sort) => top(&m, sort, args)?,
        None => every_row(&m, args.json)?,
    };
    if !args.json {
        outln!("{}", summary(&report));
    }
    for (_, e) in &report.failed {
        errln!("error: {}", cli_message(e));
    }
    for e in &report.listing_errors {
        errln!("error: {}", cli_message(e));
    }
    let incomplete = !report.failed.is_empty() || !report.listing_errors.is_empty();
    Ok(u8::from(incomplete))
}

/// `--sort`: the report's top rows.
fn top(m: &TenantManager, sort: SortBy, args: &UsageArgs) -> Result<UsageReport, Failure> {
    let order = match sort {
        SortBy::Size => UsageOrder::Largest,
        SortBy::Limit => UsageOrder::ClosestToLimit,
        SortBy::Idle => UsageOrder::LeastRecentlyWritten,
    };
    let report = m.usage(order, args.top as usize)?;
    if args.json {
        outln!("{}", to_json(&report));
    } else {
        report.top.iter().for_each(|row| outln!("{}", line(row)));
    }
    Ok(report)
}

/// Every row as it is read, then (in JSON) the summary. Buffered, and a
/// closed stdout (`| head`) ends the printing, not the command.
fn every_row(m: &TenantManager, json: bool) -> Result<UsageReport, Failure> {
    let mut out = BufWriter::new(std::io::stdout());
    let mut open = true;
    let report = m.usage_each(UsageOrder::Largest, 0, |row| {
        if open {
            let text = match json {
                true => to_json(row).to_string(),
                false => line(row),
            };
            open = writeln!(out, "{text}").is_ok();
        }
    })?;
    if json && open {
        open = writeln!(out, "{}", json!({ "summary": to_json(&report) })).is_ok();
    }
    if open {
        let _ = out.flush();
    }
    Ok(report)
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

/// One tenant on one line.
fn line(row: &TenantUsage) -> String {
    let mut text = format!(
        "{}  {} (wal {}), {} pages, {} free, written {}",
        row.tenant,
        bytes(row.database_bytes),
        bytes(row.wal_bytes),
        row.page_count,
        row.free_pages,
        age(row.last_write),
    );
    if let (Some(limit), Some(fill)) = (row.max_size, row.fill()) {
        let over = if row.is_over_limit() {
            ", at or over it"
        } else {
            ""
        };
        let limit = show_size(Some(limit));
        text.push_str(&format!(", limit {limit} ({:.0}%{over})", fill * 100.0));
    }
    if let Some(s) = &row.suspension {
        text.push_str(&format!(
            ", suspended ({}): {}",
            s.mode,
            one_line(&s.reason)
        ));
    }
    text
}

/// The totals line. `near_limit` counts the tenants over their limit too
/// (as `UsageReport` documents it), so the sentence says so: "1 at or
/// over, 1 near it" read as two tenants.
fn summary(report: &UsageReport) -> String {
    format!(
        "{} tenant(s), {} on disk; {} at or over their size limit, {} at 90% of it or more (those over included); {} suspended; {} unreadable",
        report.tenants,
        bytes(report.total_bytes),
        report.over_limit,
        report.near_limit,
        report.suspended,
        report.failed.len()
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn age(time: Option<SystemTime>) -> String {
    let Some(time) = time else {
        return "at an unknown time".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(time)
        .map_or(0, |d| d.as_secs());
    match secs {
        s if s >= 86_400 => format!("{}d ago", s / 86_400),
        s if s >= 3_600 => format!("{}h ago", s / 3_600),
        s if s >= 60 => format!("{}m ago", s / 60),
        s => format!("{s}s ago"),
    }
}

/// What `status` adds: tenants near (90%) or over their size limit (a
/// usage run, only when a limit applies to some tenant) and suspended
/// ones.
pub struct StatusFlags {
    near: Option<UsageReport>,
    suspended: Vec<(String, String)>,
}

/// The rows `status` lists near or over their limit, at most.
const STATUS_ROWS: usize = 20;

pub fn status_flags(m: &TenantManager, default_limit: bool) -> Result<StatusFlags, Failure> {
    let recorded = m.recorded_limits()?;
    let suspended = recorded
        .iter()
        .filter_map(|(name, l)| {
            let s = l.suspension.as_ref()?;
            Some((
                name.to_string(),
                format!("{}: {}", s.mode, one_line(&s.reason)),
            ))
        })
        .collect();
    let limited = default_limit || recorded.iter().any(|(_, l)| l.max_size.is_some());
    let near = match limited {
        true => Some(m.usage(UsageOrder::ClosestToLimit, STATUS_ROWS)?),
        false => None,
    };
    Ok(StatusFlags { near, suspended })
}

impl StatusFlags {
    fn near_rows(&self) -> impl Iterator<Item = &TenantUsage> {
        let rows = self.near.iter().flat_map(|r| r.top.iter());
        rows.filter(|r| r.is_near_limit())
    }

    /// The lines printed after the migration status.
    pub fn print(&self) {
        for row in self.near_rows() {
            let word = if row.is_over_limit() {
                "at or over"
            } else {
                "near"
            };
            outln!("{word} its size limit: {}", line(row));
        }
        if let Some(report) = &self.near
            && report.near_limit > STATUS_ROWS
        {
            let (near, over) = (report.near_limit, report.over_limit);
            outln!(
                "{near} tenant(s) near their size limit ({over} at or over it); see tenanted usage --sort limit --top N"
            );
        }
        for (name, how) in &self.suspended {
            outln!("suspended: {name} ({how})");
        }
    }

    /// The keys added to `status --json`, only those with something in
    /// them (the report's shape is unchanged otherwise).
    pub fn json(&self) -> FlagsJson<'_> {
        let near: Vec<&TenantUsage> = self.near_rows().collect();
        let (near_limit, counts) = match (&self.near, near.is_empty()) {
            (Some(report), false) => (Some(near), Some(report)),
            _ => (None, None),
        };
        let suspended = (!self.suspended.is_empty()).then(|| {
            (self.suspended.iter())
                .map(|(name, how)| (name.as_str(), how.as_str()))
                .collect()
        });
        FlagsJson {
            near_limit,
            near_limit_count: counts.map(|r| r.near_limit),
            over_limit_count: counts.map(|r| r.over_limit),
            suspended,
        }
    }
}

/// What [`StatusFlags::json`] adds to `status --json`.
#[derive(serde::Serialize)]
pub struct FlagsJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    near_limit: Option<Vec<&'a TenantUsage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    near_limit_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    over_limit_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suspended: Option<BTreeMap<&'a str, &'a str>>,
}
