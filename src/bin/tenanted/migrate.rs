//! `migrate` and `status`: the whole fleet, with a progress bar on a
//! terminal, Ctrl-C handling and `--json`.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tenanted::{
    Error, MigrateOptions, MigrationCounts, MigrationPlan, MigrationReport, ReportWithLines,
    StatusReport, TenantManager, TenantName, TenantReport, TenantStatus,
};

use crate::Cli;
use crate::interrupt::{INTERRUPTED, cancel_on_ctrl_c};
use crate::output::{errln, json_to_stdout, outln};
use crate::support::{
    Failure, USAGE, cli_message, confirm, in_cli_words, require_root, tenant_names,
};
use crate::usage::{FlagsJson, StatusFlags};

/// `tenanted migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Only this tenant (repeatable; default: every tenant).
    #[arg(long = "tenant", value_name = "NAME", env = "TENANTED_TENANT")]
    tenants: Vec<String>,
    /// Parallel workers (at least 1; default: cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Target version instead of the latest (may be lower: a rollback,
    /// which asks first).
    #[arg(long)]
    to: Option<usize>,
    /// Stop starting tenants after the first failure (--max-failures 1).
    #[arg(long, conflicts_with = "max_failures")]
    fail_fast: bool,
    /// Stop starting tenants once N tenants have failed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_failures: Option<u32>,
    /// Migrate this tenant first, alone (repeatable): if any canary fails,
    /// no other tenant is started.
    #[arg(long = "canary", value_name = "NAME")]
    canaries: Vec<String>,
    /// Migrate N tenants spread over the fleet first, as canaries.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    sample: Option<u32>,
    /// Do not ask before taking tenants down (required off a terminal
    /// when a tenant would go down).
    #[arg(long)]
    yes: bool,
    /// Print the report as JSON (no progress, no per-tenant lines).
    #[arg(long)]
    pub json: bool,
    /// Show which migrations would run on which tenants, up or down;
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `tenanted status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the documented JSON report.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if any tenant is not at the latest version.
    #[arg(long)]
    check: bool,
    /// List every tenant, current ones included.
    #[arg(long)]
    all: bool,
    /// Only this tenant (repeatable).
    #[arg(long = "tenant", value_name = "NAME", env = "TENANTED_TENANT")]
    tenants: Vec<String>,
}

pub fn migrate(cli: &Cli, args: &MigrateArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    let named_canaries = tenant_names(&args.canaries)?;
    let migrations = cli.load_migrations()?;
    let latest = migrations.latest_version();
    refuse_out_of_range(cli, args.to, latest)?;
    require_root(&cli.root)?;
    let manager = cli.builder(migrations)?.build()?;
    let target = args.to.unwrap_or(latest);
    let scope = |o: MigrateOptions| match only.is_empty() {
        true => o,
        false => o.only(only.iter().map(|t| t.as_str().to_owned())),
    };
    if args.dry_run {
        let plan = manager.migration_plan(&scope(MigrateOptions::new().to_version(target)))?;
        return Ok(print_plan(&plan, args.json));
    }
    let confirmed_down = match target < latest {
        true => confirm_down(
            &manager,
            scope(MigrateOptions::new().to_version(target)),
            args.yes,
        )?,
        false => Vec::new(),
    };
    let canaries = canaries(cli, &only, named_canaries, args.sample)?;
    let cancel = cancel_on_ctrl_c();
    let options = |names: Option<&[TenantName]>| {
        let o = run_options(args, target, &confirmed_down, &cancel);
        match names {
            Some(names) => o.only(names.iter().map(|t| t.as_str().to_owned())),
            None => scope(o),
        }
    };
    run_stages(cli, &manager, (&canaries, options), args.json)
}

/// `--to` past the last migration, refused before anything is opened.
fn refuse_out_of_range(cli: &Cli, to: Option<usize>, latest: usize) -> Result<(), Failure> {
    match to.filter(|to| *to > latest) {
        Some(to) => Err(Failure(
            2,
            format!(
                "--to {to} is out of range: the migrations at {} go from 0 to {latest}; nothing was migrated",
                cli.migrations.display()
            ),
        )),
        None => Ok(()),
    }
}

/// A stage's options from the command's flags: its target, the tenants
/// confirmed to go down, Ctrl-C, `--jobs` and the failure limit.
fn run_options(
    args: &MigrateArgs,
    target: usize,
    confirmed_down: &[(String, usize)],
    cancel: &Arc<AtomicBool>,
) -> MigrateOptions {
    let mut o = MigrateOptions::new()
        .to_version(target)
        .allow_down_only(confirmed_down.iter().cloned())
        .cancel_on(Arc::clone(cancel));
    if let Some(jobs) = args.jobs {
        o = o.jobs(usize::from(jobs));
    }
    if let Some(limit) = args.max_failures.or(args.fail_fast.then_some(1)) {
        o = o.max_failures(limit as usize);
    }
    o
}

/// The canaries' stage (if any), then, if it succeeded, the whole run's;
/// `options` gives a stage's options for its tenants (`None`: the run's
/// scope).
fn run_stages(
    cli: &Cli,
    manager: &TenantManager,
    (canaries, options): (
        &[TenantName],
        impl Fn(Option<&[TenantName]>) -> MigrateOptions,
    ),
    json: bool,
) -> Result<u8, Failure> {
    let mut canary_report = None;
    if !canaries.is_empty() {
        let report = run_stage(cli, manager, options(Some(canaries)), json, "canary: ")?;
        if !report.0.is_success() {
            return Ok(canary_failed(&report.0, &report.1, json));
        }
        canary_report = Some(report);
    }
    let report = run_stage(cli, manager, options(None), json, "")?;
    if json {
        let canary = canary_report.as_ref().map(|(r, lines)| r.with_lines(lines));
        json_to_stdout(&StageJson {
            stage: report.0.with_lines(&report.1),
            canary,
            stopped_at_canary: None,
        });
    }
    Ok(exit_code(&report.0))
}

/// The exit code of a run: 130 when cancelled, 1 when anything failed.
fn exit_code(report: &MigrationReport) -> u8 {
    if report.cancelled {
        INTERRUPTED
    } else if report.is_success() {
        0
    } else {
        1
    }
}

/// Before a run to a version below the latest: the tenants it would take
/// down are listed and must be confirmed (on a terminal, or with
/// `--yes`). The tenants the run may take down, each from the version it
/// was listed at: none when none would (`--yes` or not), so that a tenant
/// migrated up meanwhile, listed or not, is refused, not rolled back
/// unconfirmed.
fn confirm_down(
    manager: &TenantManager,
    options: MigrateOptions,
    yes: bool,
) -> Result<Vec<(String, usize)>, Failure> {
    let plan = manager.migration_plan(&options)?;
    refuse_what_cannot_go_down(&plan)?;
    let down: Vec<_> = plan.tenants.iter().filter(|t| t.goes_down()).collect();
    if down.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines: Vec<String> = down.iter().take(10).map(|t| format!("  {t}")).collect();
    if down.len() > 10 {
        lines.push(format!(
            "  ... and {} more (see --dry-run)",
            down.len() - 10
        ));
    }
    let (tenants, steps) = (plan.going_down(), plan.steps_down());
    confirm(
        yes,
        &format!(
            "migrate --to {} takes {tenants} tenant(s) down ({steps} down migration(s) in all), which can drop data",
            plan.target_version
        ),
        &format!(
            "{}\nTake {tenants} tenant(s) down to version {}? Down migrations can drop data.",
            lines.join("\n"),
            plan.target_version
        ),
        "nothing was migrated",
    )?;
    let confirmed = down
        .iter()
        .filter_map(|t| Some((t.tenant.to_string(), t.from?)));
    Ok(confirmed.collect())
}

/// Refuses a run that would take a tenant down past a migration without a
/// `down.sql`, or run a `down.sql` refused on an empty database: said
/// with its reason, not left to the run, which (such a tenant being no
/// confirmed one) called it a tenant that moved after the confirmation,
/// and whose advice to run again led to the same (an outside probe).
fn refuse_what_cannot_go_down(plan: &MigrationPlan) -> Result<(), Failure> {
    let mut stuck = (plan.tenants.iter()).filter(|t| {
        let above = t.from.is_some_and(|from| from > t.to);
        let down_refused = matches!(
            t.error.as_deref(),
            Some(Error::MissingDownMigration { .. } | Error::BadMigrations { .. })
        );
        above && down_refused
    });
    let Some(first) = stuck.next() else {
        return Ok(());
    };
    let (others, error) = (stuck.count(), first.error.as_deref());
    let error = error.map_or_else(String::new, cli_message);
    let also = match others {
        0 => String::new(),
        n => format!(" and {n} other tenant(s)"),
    };
    Err(Failure(
        USAGE,
        format!(
            "tenant {}{also} cannot go down to version {}: {error}; no tenant was taken down: mend that, or leave those tenants out with --tenant (see --dry-run)",
            first.tenant, plan.target_version
        ),
    ))
}

/// The canaries of a run: the named ones, then `sample` more spread over
/// the run's tenants (sorted by name, evenly spaced, so a rerun picks the
/// same ones).
fn canaries(
    cli: &Cli,
    only: &[TenantName],
    mut named: Vec<TenantName>,
    sample: Option<u32>,
) -> Result<Vec<TenantName>, Failure> {
    let Some(sample) = sample else {
        return Ok(named);
    };
    let mut pool: Vec<TenantName> = match only.is_empty() {
        true => cli
            .root_config()
            .tenants()?
            .filter_map(Result::ok)
            .collect(),
        false => only.to_vec(),
    };
    pool.sort();
    pool.retain(|t| !named.contains(t));
    let n = (sample as usize).min(pool.len());
    named.extend((0..n).map(|i| pool[i * pool.len() / n].clone()));
    Ok(named)
}

/// `migrate --json`: a stage's report listing every tenant it attempted
/// (the report's own `tenants` holds only the failures), with the canary
/// stage's under `"canary"`, or `"stopped_at_canary"` when a canary
/// failed.
#[derive(serde::Serialize)]
struct StageJson<'a> {
    #[serde(flatten)]
    stage: ReportWithLines<'a, MigrationCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    canary: Option<ReportWithLines<'a, MigrationCounts>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_at_canary: Option<bool>,
}

/// Runs one stage (the canaries, or the fleet) with its own printer: its
/// report, and with `json` every tenant's line, sorted by name.
fn run_stage(
    cli: &Cli,
    manager: &TenantManager,
    options: MigrateOptions,
    json: bool,
    label: &'static str,
) -> Result<(MigrationReport, Vec<TenantReport>), Failure> {
    let printer = Arc::new(Printer::new(cli.quiet, json, label));
    let (each, progress) = (Arc::clone(&printer), Arc::clone(&printer));
    let options = options
        .after_each(move |report| each.tenant_done(report))
        .on_progress(move |p| progress.progress(p.done, p.total, p.tenant.as_str()));
    let report = manager.migrate_all(&options)?;
    let lines = printer.finish(&report);
    Ok((report, lines))
}

/// A canary failed: the fleet was not started.
fn canary_failed(report: &MigrationReport, lines: &[TenantReport], json: bool) -> u8 {
    let code = exit_code(report);
    let why = if code == INTERRUPTED {
        "interrupted"
    } else {
        "a canary failed"
    };
    errln!("error: {why}: the rest of the fleet was not started");
    if json {
        json_to_stdout(&StageJson {
            stage: report.with_lines(lines),
            canary: None,
            stopped_at_canary: Some(true),
        });
    }
    code.max(1)
}

/// `migrate --dry-run`: the plan, as text or JSON; 1 when a tenant's
/// version could not be read.
/// The plan as JSON, or its text (as its `Display`, each failed tenant's
/// line ending in the CLI's words: a tenant ahead of the code was told to
/// call `migrate_tenant_to`, an outside probe).
fn print_plan(plan: &MigrationPlan, json: bool) -> u8 {
    if json {
        json_to_stdout(plan);
        return u8::from(!plan.is_complete());
    }
    for t in plan.tenants.iter().filter(|t| t.action() != "none") {
        match t.error.as_deref() {
            Some(e) => outln!("{}", in_cli_words(t.to_string(), e)),
            None => outln!("{t}"),
        }
    }
    for e in &plan.listing_errors {
        outln!("✗ {e}");
    }
    outln!("{}", plan.summary());
    u8::from(!plan.is_complete())
}

/// Where `migrate` writes: per-tenant lines as they finish (above the bar
/// on a terminal), then the summary, or the JSON report.
struct Printer {
    bar: Option<ProgressBar>,
    quiet: bool,
    json: bool,
    /// Put before the summary: `canary: ` for the canary stage.
    label: &'static str,
    /// With `--json`, every tenant's line: the report lists only the ones
    /// that changed or failed, the documented JSON lists them all.
    lines: Mutex<Vec<TenantReport>>,
}

impl Printer {
    fn new(quiet: bool, json: bool, label: &'static str) -> Self {
        let bar = progress_bar(quiet || json);
        Printer {
            bar,
            quiet,
            json,
            label,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn tenant_done(&self, report: &TenantReport) {
        if self.json
            && let Ok(mut lines) = self.lines.lock()
        {
            lines.push(report.clone());
        }
        let failed = !report.succeeded();
        if self.json || !(failed || report.changed()) || (self.quiet && !failed) {
            return;
        }
        let line = report.to_string();
        match report.error.as_deref() {
            Some(e) => self.println(&in_cli_words(line, e)),
            None => self.println(&line),
        }
    }

    fn progress(&self, done: usize, total: usize, tenant: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(tenant.to_owned());
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| outln!("{line}")),
            None => outln!("{line}"),
        }
    }

    /// Ends the bar and prints the summary; with `--json`, every tenant's
    /// line instead, sorted by name (the JSON report is printed by the
    /// caller once every stage has run).
    fn finish(&self, report: &MigrationReport) -> Vec<TenantReport> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.json {
            let mut lines =
                (self.lines.lock()).map_or_else(|_| Vec::new(), |mut l| std::mem::take(&mut *l));
            lines.sort_by(|a, b| a.tenant.cmp(&b.tenant));
            return lines;
        }
        for e in &report.listing_errors {
            outln!("✗ {e}");
        }
        outln!("{}{}", self.label, report.summary());
        Vec::new()
    }
}

/// A bar on a terminal (unless `quiet`): done/total, a whole-number rate,
/// the time left and the tenant just finished.
pub fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let template = "{bar:40} {pos}/{len} {rate} ETA {eta} {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", rate(state.per_sec()));
                },
            ));
        }
        bar
    })
}

/// Tenants per second as a person reads it: `12/s`, `0.4/s`.
pub fn rate(per_sec: f64) -> String {
    match per_sec {
        r if !r.is_finite() => "-/s".to_owned(),
        r if r < 10.0 => format!("{r:.1}/s"),
        r => format!("{r:.0}/s"),
    }
}

/// Every tenant's status row, sorted by name, with the report (whose
/// totals count every tenant). For the outputs that list every tenant.
fn every_row(manager: &TenantManager) -> Result<(StatusReport, Vec<TenantStatus>), Failure> {
    let mut rows = Vec::new();
    let report = manager.migration_status_each(|row| rows.push(row.clone()))?;
    rows.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok((report, rows))
}

pub fn status(cli: &Cli, args: &StatusArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    let migrations = cli.load_migrations()?;
    require_root(&cli.root)?;
    let manager = cli.builder(migrations)?.build()?;
    let listed = args.all || !only.is_empty();
    let status = if listed || args.json {
        every_tenant_status(&manager, &only)?
    } else {
        manager.migration_status()?
    };
    let flags = super::usage::status_flags(&manager, cli.default_max_size.is_some())?;
    if args.json {
        print_status_json(&status, &flags);
    } else {
        print_status_text(&status, listed);
        flags.print();
    }
    let incomplete = !status.listing_errors.is_empty() || status.unreadable() > 0;
    Ok(u8::from(
        incomplete || (args.check && !status.all_current()),
    ))
}

/// `status --json`: the report's own `Serialize` (the documented format)
/// and the flags, written row by row as they are serialized, never held
/// whole (a million tenants' rows as JSON values took over a gigabyte).
fn print_status_json(status: &StatusReport, flags: &StatusFlags) {
    #[derive(serde::Serialize)]
    struct StatusJson<'a> {
        #[serde(flatten)]
        status: &'a StatusReport,
        #[serde(flatten)]
        flags: FlagsJson<'a>,
    }
    json_to_stdout(&StatusJson {
        status,
        flags: flags.json(),
    });
}

/// `status` as text, line by line (see [`print_status_json`]).
fn print_status_text(status: &StatusReport, all: bool) {
    let mut out = WriteText(BufWriter::new(std::io::stdout().lock()));
    let written = status.write_text_in(&mut out, all, cli_message);
    let _ = written.map_err(|_| ()).and_then(|()| {
        let out = &mut out.0;
        writeln!(out).and_then(|()| out.flush()).map_err(|_| ())
    });
}

/// Text written to an `io::Write`, for a report that writes it as
/// `fmt::Write`.
struct WriteText<W: Write>(W);

impl<W: Write> std::fmt::Write for WriteText<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

/// A report listing every tenant, sorted by name, or only those of
/// `only`, in that order (each read alone: the rest of the fleet is not).
fn every_tenant_status(
    manager: &TenantManager,
    only: &[TenantName],
) -> Result<StatusReport, Failure> {
    if !only.is_empty() {
        let rows = only
            .iter()
            .map(|tenant| manager.tenant_status(tenant.as_str()));
        let mut status: StatusReport = rows.collect::<Result<_, _>>()?;
        status.latest_version = manager.migrations().latest_version();
        return Ok(status);
    }
    let (fleet, rows) = every_row(manager)?;
    let mut status: StatusReport = rows.into_iter().collect();
    status.latest_version = fleet.latest_version;
    status.listing_errors = fleet.listing_errors;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn the_bars_rate_reads_as_a_person_says_it() {
        assert_eq!(rate(11.9974), "12/s");
        assert_eq!(rate(1234.4), "1234/s");
        assert_eq!(rate(0.42), "0.4/s");
        assert_eq!(rate(f64::INFINITY), "-/s");
    }
}
