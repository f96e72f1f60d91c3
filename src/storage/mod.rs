//! Tenant files on disk, in three rooms: `coordination` (where a tenant is,
//! its locks, the open gate, who else holds it open), `opening` (pinned
//! opens, header reads, open-file accounting, what is at a database path,
//! why an open failed)
//! and `lifecycle` (create, stage, fence and destroy, snapshot and restore,
//! debris of crashed operations, the template database).

mod coordination;
mod lifecycle;
mod opening;

pub(crate) use coordination::changes::{ChangeLog, News, announce};
pub(crate) use coordination::tenant_path::{TenantLock, TenantPath, lock_tenant, try_lock_tenant};
pub(crate) use coordination::undecided::{
    fenced_by_replace, marked, marked_in_any_layout, wait_out_decision,
};
pub(crate) use lifecycle::create::{Cleared, Seed, create};
pub(crate) use lifecycle::create_batch::create_many;
pub use lifecycle::create_report::CreateReport;
pub(crate) use lifecycle::debris::{finish_interrupted, sweep_debris};
pub(crate) use lifecycle::destroy::destroy;
pub(crate) use lifecycle::fence::{LetGo, Nobody, Waiting};
pub(crate) use lifecycle::incomplete::{diagnosed, incomplete};
#[cfg(feature = "encryption")]
pub(crate) use lifecycle::rekey::{rekey, settle_interrupted};
pub(crate) use lifecycle::restore::{CheckedBackup, Existing, Restored, check_backup, restore};
pub(crate) use lifecycle::settle::{Settled, put_back_interrupted};
pub(crate) use lifecycle::snapshot::{Snapshot, Staged, Verify, Within, snapshot, snapshot_staged};
pub(crate) use lifecycle::template_database::{Template, ensure_template};
pub(crate) use opening::database_file::{Occupant, occupant};
pub(crate) use opening::header::{Header, header_version};
pub(crate) use opening::open::{
    EXISTING, READ_GATE_WAIT, held_by_sqlite_lock, is_busy, open_existing, open_for_glance,
    open_for_reading,
};
#[cfg(test)]
pub(crate) use opening::open_error::NEARLY_FULL;
pub(crate) use opening::open_error::{
    full_file_system, pin_error, require_database, schema_version, sqlite_error,
};
pub(crate) use opening::open_files::TrackedConnection;
pub(crate) use opening::opening_key::{read_without_its_key, with_tenant_key};
pub(crate) use opening::pinned::{PinError, open_pinned};
pub(crate) use opening::usage::{FileUsage, Usage, database_usage, usage_through_sqlite};
