//! `PRAGMA integrity_check`, as a restore asks it of a backup and a
//! verified backup of the tenant it copies: the same question, so a copy
//! a backup run reports written is one a restore accepts.

use rusqlite::Connection;

/// `ok`, or the first few problems `PRAGMA integrity_check` finds, on
/// one line.
pub(in crate::storage) fn integrity_check(conn: &Connection) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(3)")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines.join("; ").replace('\n', "; "))
}
