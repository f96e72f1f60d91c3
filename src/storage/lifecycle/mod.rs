//! Whole-tenant operations, each atomic: create (one or a batch), stage and
//! publish, fence and destroy, snapshot and restore, sweeping debris, and
//! the template database creates copy.

pub(in crate::storage) mod create;
pub(in crate::storage) mod create_batch;
pub(in crate::storage) mod create_report;
pub(in crate::storage) mod debris;
pub(in crate::storage) mod destroy;
pub(in crate::storage) mod encrypted_copy;
pub(in crate::storage) mod fence;
pub(in crate::storage) mod file_copy;
pub(in crate::storage) mod foreign_files;
pub(in crate::storage) mod incomplete;
pub(in crate::storage) mod integrity;
#[cfg(feature = "encryption")]
pub(in crate::storage) mod rekey;
pub(in crate::storage) mod restore;
pub(in crate::storage) mod settle;
pub(in crate::storage) mod snapshot;
pub(in crate::storage) mod stage;
pub(in crate::storage) mod template_check;
pub(in crate::storage) mod template_database;
