//! Tenant files on disk: locks, opening, atomic create and destroy, debris
//! of crashed operations, and the template database.

mod create;
mod debris;
mod destroy;
mod files;
mod lock;
mod open;
mod siblings;
mod template_database;

pub use template_database::INTERNAL_DIR;

pub(crate) use create::{Seed, create};
pub(crate) use debris::sweep_debris;
pub(crate) use destroy::destroy;
pub(crate) use lock::lock_tenant;
pub(crate) use open::{EXISTING, open_existing, sqlite_error};
pub(crate) use template_database::ensure_template;
