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

use crate::error::{Error, blocked, is_fd_exhaustion};
use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::TenantPath;
use crate::storage::coordination::undecided::marked;
use crate::storage::opening::database_file::{Occupant, occupant_in};

/// `Error::MissingDatabase` if `tenant`'s own directory is there, unmarked,
/// and holds no database file; `Error::NotADirectory` if a link or a file
/// stands on the way to it (the tenant cannot be there, nor be created
/// there, until it is moved); `None` otherwise (no directory of its own
/// in this layout, no directory, a database in place, a destroy or a
/// restore in progress, or the directory cannot be looked at). Out of
/// descriptors it cannot tell, and says so (`TooManyOpenFiles`): a fleet
/// run that took that for "no tenant" would drop the tenant without a
/// word.
pub(crate) fn incomplete(tenant: &TenantName, at: TenantPath<'_>) -> Option<Error> {
    if !at.owns_dir() {
        return None;
    }
    let cannot_tell = |path: &std::path::Path, e: std::io::Error| {
        let operation = "looking into the tenant's directory";
        (is_fd_exhaustion(&e) || blocked(&e).is_some())
            .then(|| Error::io(Some(tenant), path, operation, e))
    };
    // Reached as every tenant path is: no link followed on the way.
    let dir = match Dir::open(at.root(), at.db_dir()) {
        Ok(dir) => dir,
        Err(e) => return cannot_tell(at.db_dir(), e),
    };
    let occupant = match occupant_in(&dir, at.db_name()) {
        Ok(occupant) => occupant,
        Err(e) => return cannot_tell(at.db(), e),
    };
    let found = match occupant {
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

/// `e` as every answer about `tenant` puts it: an operation that found no
/// database (`TenantDoesNotExist`) where the tenant's own directory is
/// there, so that `tenants()` lists it, says the tenant is damaged
/// (`MissingDatabase`, see [`incomplete`]), and one that found a link in
/// the way says that (`NotADirectory`: "create it" would be refused);
/// any other error is kept.
pub(crate) fn diagnosed(tenant: &TenantName, at: TenantPath<'_>, e: Error) -> Error {
    match e {
        Error::TenantDoesNotExist { .. } => incomplete(tenant, at).unwrap_or(e),
        e => e,
    }
}
