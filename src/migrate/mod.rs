//! Tenants' schemas: the migrations, one tenant's migration, the schema
//! gate at pool open, the template database's schema, the entries of the
//! root's migration history (`crate::root_description` keeps it), and
//! `migrate_all` and `migration_status` (on the
//! fleet engine, `crate::fleet`) with their options and reports.

mod empty_run;
mod foreign_keys;
mod migrate_all;
mod migrations;
mod options;
mod plan;
mod report;
mod schema_gate;
#[cfg(feature = "serde")]
pub(crate) mod serde_impls;
mod template_schema;
mod tenant;
mod version;

pub use migrations::{Migration, Migrations};
pub use options::MigrateOptions;
pub use plan::{MigrationPlan, PlannedTenant};
pub use report::{
    MigrationCounts, MigrationReport, MigrationSummary, StatusReport, TenantReport, TenantStatus,
};
pub use tenant::MigrationOutcome;

pub(crate) use migrate_all::{migrate_all, migration_status, tenant_status};
pub(crate) use schema_gate::check_schema;
pub(crate) use template_schema::ensure_template;
pub(crate) use tenant::{Prelude, migrate_to, rollback};
pub(crate) use version::{Reading, peek_version};
