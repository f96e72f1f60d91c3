//! What every connection goes through on its way back to its pool, from
//! r2d2 (`has_broken`) or to the resident slot (`resident.rs`).
//!
//! A connection dropped inside a transaction (a raw `BEGIN` whose code
//! returned early with `?`) would hand the next checkout, another request,
//! its uncommitted writes (reported done, then lost when the pool closes)
//! or its old read snapshot, and keep every other writer of the tenant
//! locked out for as long as it stays in the pool. So it is rolled back
//! here, and closed instead if that fails (closing rolls back too).
//! `rusqlite::Transaction` rolls back on drop by itself; this catches the
//! rest. One `sqlite3_get_autocommit` on the warm path: no I/O.

use rusqlite::Connection;

/// Whether `conn` may go back to its pool: outside any transaction, or
/// rolled back to it now (with a warning naming its file).
pub(super) fn fit_to_return(conn: &Connection) -> bool {
    if conn.is_autocommit() {
        return true;
    }
    let rolled_back = conn.execute_batch("ROLLBACK");
    let fit = rolled_back.is_ok() && conn.is_autocommit();
    let path = conn.path().unwrap_or("?");
    match rolled_back {
        Ok(()) if fit => tracing::warn!(
            path,
            "a connection came back to its pool inside a transaction; it was rolled back: commit or roll back before dropping a connection"
        ),
        rolled_back => tracing::warn!(
            path,
            error = rolled_back.err().map(tracing::field::display),
            "a connection came back to its pool inside a transaction and could not be rolled back; it is closed, which rolls back: commit or roll back before dropping a connection"
        ),
    }
    fit
}
