//! `tenanted`: operate the tenants of a root directory from a shell.
//!
//! Exit codes, one rule for every command (README, "Exit codes"):
//! - 0: done.
//! - 1: the command ran and something failed (a tenant, the disk, a
//!   missing root, a changed migration), or is pending (`status --check`),
//!   or a question was answered no.
//! - 2: the command cannot be done as asked, and nothing was done: a bad
//!   argument (`--jobs 0`), tenant name, version (`--to`), step count
//!   (`--steps`) or migrations folder, a layout other than the root's, or
//!   `--yes` missing off a terminal.
//! - 130: interrupted (Ctrl-C).

#![forbid(unsafe_code)]

mod authoring;
mod backup;
mod interrupt;
mod limits;
mod litestream_config;
#[cfg(feature = "encryption")]
mod master_key;
mod migrate;
mod output;
mod rebuild;
#[cfg(feature = "encryption")]
mod rekey;
mod replica_status;
mod replicate;
mod rotation;
mod support;
mod tenants;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tenanted::{Migrations, RootConfig, TenantManager, TenantName};

use crate::output::{out, outln};
use support::{Failure, require_root, tenant_names};

const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "tenanted",
    version,
    about = "One SQLite database per tenant: create, list, migrate, destroy."
)]
struct Cli {
    /// Directory holding the tenant databases.
    #[arg(long, global = true, env = "TENANTED_ROOT", default_value = "./storage/tenants", help_heading = GLOBAL)]
    root: PathBuf,
    /// Directory of migrations (NNNN_name/up.sql, down.sql); read only by
    /// the commands that need them.
    #[arg(long, global = true, env = "TENANTED_MIGRATIONS", default_value = "./schema/migrations", help_heading = GLOBAL)]
    migrations: PathBuf,
    /// Path template under the root [default: the one the root records,
    /// else %{bucket}/%{tenant}/main.sqlite3].
    #[arg(long, global = true, env = "TENANTED_TEMPLATE", help_heading = GLOBAL)]
    template: Option<String>,
    /// Number of bucket directories [default: the count the root records,
    /// else 256].
    #[arg(long, global = true, env = "TENANTED_BUCKETS", help_heading = GLOBAL)]
    buckets: Option<u32>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    verbose: u8,
    /// Print only failures and summaries; log only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    quiet: bool,
    /// Accept migrations that differ from the ones the root applied (an
    /// edited up.sql, a rename) and record these instead, on any command
    /// that reads the migrations (the others refuse it); `migrate
    /// --dry-run` plans with them and records nothing.
    #[arg(long, global = true, help_heading = GLOBAL)]
    accept_migration_changes: bool,
    /// The size limit of every tenant without one of its own (64K, 500M,
    /// 2G), as the service's `default_max_size` sets it: `status`, `usage`
    /// and `limit show` measure tenants against it.
    #[arg(long, global = true, env = "TENANTED_DEFAULT_MAX_SIZE", value_parser = limits::parse_size_arg, help_heading = GLOBAL)]
    default_max_size: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the root directory of a new fleet and record its layout
    /// (no other command creates a root, but `rebuild`, which brings a lost
    /// one back).
    Init,
    /// List the tenants on disk, sorted.
    List {
        /// Print {"tenants": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Create tenants at the latest schema.
    Create(tenants::CreateArgs),
    /// Destroy tenants and all their data.
    Destroy(tenants::DestroyArgs),
    /// Exit 0 if the tenant exists, 1 if not.
    Exists {
        /// Tenant name.
        #[arg(env = "TENANTED_TENANT")]
        name: String,
    },
    /// Migrate every tenant (or --tenant ones) to the latest version or --to.
    Migrate(migrate::MigrateArgs),
    /// Every tenant's schema version: the summary and the tenants that are
    /// not current (--all: every tenant).
    Status(migrate::StatusArgs),
    /// Undo a tenant's last migrations (runs down.sql: may drop data).
    Rollback {
        /// Tenant name.
        #[arg(env = "TENANTED_TENANT")]
        name: String,
        /// How many migrations to undo (at most the number applied).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Undo the tenant's last migration and apply it again (runs its
    /// down.sql: may drop data). Two steps, each its own transaction: if
    /// the apply fails, the tenant stays one version down (said), and
    /// services answer "pending" for it until it is migrated. A tool for
    /// developing a migration, not for a tenant in service.
    Redo {
        /// Tenant name.
        #[arg(env = "TENANTED_TENANT")]
        name: String,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Create the tenants of a list that are missing, migrate the others.
    Prepare {
        /// Tenant names.
        #[arg(required = true, env = "TENANTED_TENANT")]
        names: Vec<String>,
        /// Print what was created and the migration report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write migrations.
    Migration {
        #[command(subcommand)]
        command: authoring::MigrationCommand,
    },
    /// Schema commands.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Remove what crashed processes left (scratch, fenced and lock files).
    Cleanup,
    /// Back every tenant (or --tenant ones) up into a directory laid out
    /// like the root: one consistent, self-contained file per tenant.
    Backup(backup::BackupArgs),
    /// Restore a tenant from a backup file (checked first; --replace to
    /// overwrite an existing tenant).
    Restore(backup::RestoreArgs),
    /// Print (or --output) a Litestream configuration that replicates every
    /// tenant of the root.
    LitestreamConfig(litestream_config::LitestreamArgs),
    /// Replicate the root with Litestream: run its processes and register
    /// the tenants being written (see the README's "Beyond one machine").
    Replicate(replicate::ReplicateArgs),
    /// Erase now the replicas of destroyed tenants kept for the retention
    /// (and those a crashed destroy left).
    EraseReplicas,
    /// Rebuild the root (or --tenant ones) from its Litestream replica:
    /// a lost machine's tenants on a fresh one, checked and published
    /// like a restore; run it again to finish an interrupted rebuild.
    Rebuild(rebuild::RebuildArgs),
    /// Which tenants are replicated, each one's last sync and lag, which
    /// are not and why (exit 1 if any is at risk or Litestream is down).
    ReplicationStatus(replica_status::ReplicationStatusArgs),
    /// Set, show or clear a tenant's size limit.
    Limit {
        #[command(subcommand)]
        command: limits::LimitCommand,
    },
    /// Suspend a tenant: --read-only serves it read-only, --blocked
    /// refuses it; --reason is shown to callers.
    Suspend(limits::SuspendArgs),
    /// Lift a tenant's suspension.
    Resume {
        /// Tenant name.
        name: String,
    },
    /// Every tenant's use of the disk as it is read: database and WAL
    /// size, pages, free pages, last write, size limit, suspension
    /// (--sort: only the top ones, in an order).
    Usage(usage::UsageArgs),
    /// Encrypt tenants again under new keys (or encrypt plaintext ones)
    /// while other processes serve them; the old keys are destroyed, so
    /// earlier backups can no longer be restored.
    #[cfg(feature = "encryption")]
    Rekey(rekey::RekeyArgs),
    /// Make a master key, or rotate the root's (encrypted tenants).
    #[cfg(feature = "encryption")]
    MasterKey {
        #[command(subcommand)]
        command: master_key::MasterKeyCommand,
    },
    /// Print shell completions.
    Completions {
        /// The shell to print them for.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the latest schema as SQL (what schema/schema.sql holds).
    Dump,
}

impl Command {
    /// Whether the command reads the migrations (and so checks, and with
    /// --accept-migration-changes records, the root's history).
    fn reads_migrations(&self) -> bool {
        !matches!(
            self,
            Command::List { .. }
                | Command::Destroy(_)
                | Command::Exists { .. }
                | Command::Cleanup
                | Command::Backup(_)
                | Command::LitestreamConfig(_)
                | Command::Completions { .. }
                | Command::Migration { .. }
                | Command::Schema { .. }
                | Command::Usage(_)
                | Command::Limit { .. }
                | Command::Suspend(_)
                | Command::Resume { .. }
                | Command::Replicate(_)
                | Command::EraseReplicas
                | Command::ReplicationStatus(_)
        ) && !self.handles_keys()
    }

    /// Whether the command is `master-key` (which reads no migrations).
    #[cfg(feature = "encryption")]
    fn handles_keys(&self) -> bool {
        matches!(self, Command::MasterKey { .. })
    }

    #[cfg(not(feature = "encryption"))]
    fn handles_keys(&self) -> bool {
        false
    }

    /// Whether errors go to stdout as JSON too.
    fn json(&self) -> bool {
        match self {
            Command::List { json } => *json,
            Command::Create(args) => args.json,
            Command::Destroy(args) => args.json,
            Command::Prepare { json, .. } => *json,
            Command::Migrate(args) => args.json,
            Command::Status(args) => args.json,
            Command::Backup(args) => args.json,
            Command::Restore(args) => args.json,
            Command::Rebuild(args) => args.json,
            Command::ReplicationStatus(args) => args.json,
            Command::Usage(args) => args.json,
            Command::Limit {
                command: limits::LimitCommand::Show { json, .. },
            } => *json,
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refused_arguments(e),
    };
    support::init_logging(cli.verbose, cli.quiet);
    let json = cli.command.json();
    if cli.accept_migration_changes && !cli.command.reads_migrations() {
        let why = "--accept-migration-changes records the migrations where a command reads them (init, create, migrate, status, rollback, redo, prepare, restore, rebuild, rekey); this command does not read them, so nothing was done";
        return Failure(support::USAGE, why.to_owned()).report(json);
    }
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => failure.report(json),
    }
}

/// Arguments clap refused (or `--help`, `--version`): said as clap says
/// them, and also as `{"error": ...}` on stdout when `--json` was among
/// them, as every other failure of a `--json` command is.
fn refused_arguments(e: clap::Error) -> ExitCode {
    let asked_json = std::env::args_os().any(|a| a == "--json");
    if asked_json && e.use_stderr() {
        let said = e.to_string();
        let why = said.lines().next().unwrap_or_default();
        outln!(
            "{}",
            serde_json::json!({ "error": why.trim_start_matches("error: ") })
        );
    }
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(support::USAGE))
}

impl Cli {
    /// The root with `--template` and `--buckets`; what is not given is
    /// the root's recorded layout (the default one for a new root, or for
    /// one whose record cannot be read: opening it then says why).
    fn root_config(&self) -> RootConfig {
        let base = match (&self.template, self.buckets) {
            (Some(_), Some(_)) => RootConfig::new(&self.root),
            _ => RootConfig::recorded(&self.root).unwrap_or_else(|_| RootConfig::new(&self.root)),
        };
        let base = match &self.template {
            Some(template) => base.template(template),
            None => base,
        };
        match self.buckets {
            Some(buckets) => base.buckets(buckets),
            None => base,
        }
    }

    fn load_migrations(&self) -> Result<Migrations, Failure> {
        Ok(Migrations::from_dir(&self.migrations)?)
    }

    /// A manager with the migrations (for commands that create or migrate).
    fn manager(&self) -> Result<TenantManager, Failure> {
        Ok(self.builder(self.load_migrations()?)?.build()?)
    }

    /// [`Cli::manager`] for a command that will `doing` the tenants
    /// `names`: a refusal of the whole root when the manager is built (a
    /// master key on a root Litestream replicates) names them too (an
    /// outside probe: `rekey acme` said only the record).
    fn manager_for(&self, doing: &str, names: &[TenantName]) -> Result<TenantManager, Failure> {
        self.manager().map_err(|Failure(code, message)| {
            let list: Vec<&str> = names.iter().map(TenantName::as_str).collect();
            Failure(
                code,
                format!("cannot {doing} {}: {message}", list.join(", ")),
            )
        })
    }

    /// A manager builder for this root with `migrations`.
    fn builder(&self, migrations: Migrations) -> Result<tenanted::TenantManagerBuilder, Failure> {
        let builder = TenantManager::builder(self.root_config(), migrations)
            .accept_migration_changes(self.accept_migration_changes)
            .default_max_size(self.default_max_size);
        self.keys(builder)
    }

    /// A manager for commands that never look at schemas.
    fn schemaless_manager(&self) -> Result<TenantManager, Failure> {
        let builder = TenantManager::builder(self.root_config(), Migrations::new(vec![]));
        Ok(self
            .keys(builder.default_max_size(self.default_max_size))?
            .build()?)
    }

    /// With the `encryption` feature and a master key in the environment
    /// (`TENANTED_MASTER_KEY` or `TENANTED_MASTER_KEY_FILE`), the root's
    /// tenant keys: new tenants are encrypted, encrypted ones open. A key
    /// that is set but cannot be used (not 64 hex digits, a file that
    /// cannot be read) stops the command (exit 2): going on without it
    /// made plaintext tenants the operator meant to encrypt.
    #[cfg(feature = "encryption")]
    fn keys(
        &self,
        builder: tenanted::TenantManagerBuilder,
    ) -> Result<tenanted::TenantManagerBuilder, Failure> {
        match tenanted::MasterKey::from_env_if_set() {
            Ok(Some(master)) => {
                Ok(builder.encryption(tenanted::RootKeyStore::new(&self.root, master)))
            }
            Ok(None) => Ok(builder),
            Err(e) => Err(Failure(
                2,
                format!(
                    "{}; nothing was done (unset TENANTED_MASTER_KEY and TENANTED_MASTER_KEY_FILE to work without encryption)",
                    support::cli_message(&e)
                ),
            )),
        }
    }

    /// Without the `encryption` feature a master key in the environment
    /// cannot be used: the command stops (exit 2) rather than make
    /// plaintext tenants the operator meant to encrypt.
    #[cfg(not(feature = "encryption"))]
    fn keys(
        &self,
        builder: tenanted::TenantManagerBuilder,
    ) -> Result<tenanted::TenantManagerBuilder, Failure> {
        let set = ["TENANTED_MASTER_KEY", "TENANTED_MASTER_KEY_FILE"]
            .into_iter()
            .find(|variable| std::env::var_os(variable).is_some());
        match set {
            Some(variable) => Err(Failure(
                2,
                format!(
                    "{variable} is set, but this tenanted was built without encryption: install it with `--features cli,encryption`, or unset {variable} to work without encryption; nothing was done"
                ),
            )),
            None => Ok(builder),
        }
    }
}

fn run(cli: &Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Init => tenants::init(cli),
        Command::List { json } => tenants::list(cli, *json),
        Command::Create(args) => tenants::create(cli, args),
        Command::Destroy(args) => tenants::destroy(cli, args),
        Command::Exists { name } => {
            let name = tenant_names(std::slice::from_ref(name))?;
            require_root(&cli.root)?;
            // The library's answer: a link planted in the root is no tenant.
            let exists = cli.schemaless_manager()?.tenant_exists(name[0].as_str())?;
            Ok(u8::from(!exists))
        }
        Command::Migrate(args) => migrate::migrate(cli, args),
        Command::Status(args) => migrate::status(cli, args),
        Command::Backup(args) => backup::backup(cli, args),
        Command::Restore(args) => backup::restore(cli, args),
        Command::LitestreamConfig(args) => litestream_config::litestream_config(cli, args),
        Command::Replicate(args) => replicate::replicate(cli, args),
        Command::EraseReplicas => replicate::erase_replicas(cli),
        Command::Rebuild(args) => rebuild::rebuild(cli, args),
        Command::ReplicationStatus(args) => replica_status::replication_status(cli, args),
        Command::Rollback { name, steps, yes } => authoring::rollback(cli, name, *steps, *yes),
        Command::Redo { name, yes } => authoring::redo(cli, name, *yes),
        Command::Prepare { names, json } => authoring::prepare(cli, names, *json),
        Command::Migration {
            command: authoring::MigrationCommand::New { name, timestamp },
        } => authoring::migration_new(&cli.migrations, name, *timestamp),
        Command::Schema {
            command: SchemaCommand::Dump,
        } => {
            out!("{}", cli.load_migrations()?.schema_sql()?);
            Ok(0)
        }
        Command::Cleanup => {
            require_root(&cli.root)?;
            let removed = cli.schemaless_manager()?.remove_debris()?;
            outln!("removed {removed} leftover file(s)");
            Ok(0)
        }
        Command::Limit { command } => limits::limit(cli, command),
        Command::Suspend(args) => limits::suspend(cli, args),
        Command::Resume { name } => limits::resume(cli, name),
        Command::Usage(args) => usage::usage(cli, args),
        #[cfg(feature = "encryption")]
        Command::Rekey(args) => rekey::rekey(cli, args),
        #[cfg(feature = "encryption")]
        Command::MasterKey { command } => master_key::master_key(cli, command),
        Command::Completions { shell } => {
            let out = &mut std::io::stdout();
            clap_complete::generate(*shell, &mut Cli::command(), "tenanted", out);
            Ok(0)
        }
    }
}
