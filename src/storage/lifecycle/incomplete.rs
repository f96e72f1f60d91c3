//! A tenant directory without its database.
//!
//! A listing trusts a tenant's own directory without looking inside (see
//! `paths/walker.rs`): create publishes the directory whole, so for this
//! release a directory is a tenant. A directory made by hand in a bucket,
//! or one whose database was moved away by hand, is listed all the same. Every other answer
//! about such a tenant agrees with the listing: it is there, and damaged
//! (`Error::MissingDatabase`, naming the directory and what is missing),
//! unless a destroy or a restore has marked it (then it is on its way out
//! or back, and the usual answers apply). `remove_debris` removes the
//! directory once nothing of anyone's is left in it.

use crate::error::Error;
use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::TenantPath;
use crate::storage::lifecycle::fence::marked;
use crate::storage::opening::database_file::{Occupant, occupant_in};

/// `Error::MissingDatabase` if `tenant`'s own directory is there, unmarked,
/// and holds no database file; `None` otherwise (no directory of its own
/// in this layout, no directory, a database in place, a destroy or a
/// restore in progress, or the directory cannot be looked at).
pub(crate) fn incomplete(tenant: &TenantName, at: TenantPath<'_>) -> Option<Error> {
    if !at.owns_dir() {
        return None;
    }
    // Reached as every tenant path is: no link followed on the way.
    let dir = Dir::open(at.root(), at.db_dir()).ok()?;
    let found = match occupant_in(&dir, at.db_name()).ok()? {
        Occupant::Database(_) => return None,
        Occupant::Nothing => "nothing",
        Occupant::Other(what) => what,
    };
    if marked(at) {
        return None;
    }
    // A destroy that finished meanwhile removed the directory, then its
    // mark: the tenant was on its way out, not damaged.
    if sys::fstat(dir.fd()).map_or(true, |st| st.st_nlink == 0) {
        return None;
    }
    Some(Error::MissingDatabase {
        tenant: tenant.clone(),
        dir: at.db_dir().to_path_buf(),
        path: at.db().to_path_buf(),
        found,
    })
}
