//! Tenant files on disk: locks, opening, atomic create and destroy, debris
//! of crashed operations, and the template database.

mod create;
mod create_batch;
mod create_report;
mod database_file;
mod debris;
mod destroy;
mod dir;
mod faults;
mod fence;
mod file_id;
mod files;
mod header;
mod holders;
mod lock;
mod open;
mod open_files;
mod open_gate;
mod pinned;
mod restore;
mod root_record;
mod siblings;
mod snapshot;
mod stage;
mod sys;
mod template_database;
mod tenant_path;

pub use crate::paths::INTERNAL_DIR;

pub(crate) use create::{Seed, create};
pub(crate) use create_batch::create_many;
pub use create_report::CreateReport;
pub(crate) use database_file::{Occupant, occupant, require_database};
pub(crate) use debris::sweep_debris;
pub(crate) use destroy::destroy;
pub(crate) use dir::Dir;
#[cfg(feature = "testing")]
pub use faults::{FaultPlan, Step, StepTaken};
pub(crate) use file_id::FileId;
pub(crate) use header::{Header, header_version};
pub(crate) use open::{
    EXISTING, literal_path, missing_error, open_existing, open_for_reading, pin_error, sqlite_error,
};
pub(crate) use open_files::TrackedConnection;
pub(crate) use pinned::{PinError, open_pinned};
pub(crate) use restore::{Existing, Restored, check_backup, restore};
pub(crate) use root_record::{read_record, record_once, update_record};
pub(crate) use snapshot::{Snapshot, snapshot};
pub(crate) use template_database::{Template, ensure_template};
pub(crate) use tenant_path::{TenantPath, lock_tenant};
