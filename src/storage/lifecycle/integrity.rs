//! `PRAGMA integrity_check`, as a restore asks it of a backup and a
//! verified backup of the copy it made: the same question, so a copy a
//! backup run reports written is one a restore accepts.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::files::literal_path;
use crate::name::TenantName;

/// Flags for reading a copy back: it is never changed, and never a URI.
const READ_BACK: OpenFlags =
    OpenFlags::SQLITE_OPEN_READ_ONLY.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// What `PRAGMA integrity_check` said of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::storage) enum Verdict {
    /// `ok`.
    Sound,
    /// The first few problems, on one line.
    Damaged(String),
    /// The check could not run: the schema names a collation or function
    /// the application registers in its `connection_init` (an index on
    /// it), which this connection has not, and SQLite refuses to compile
    /// the check at all ("no such collation sequence"). Why, in SQLite's
    /// words. Nothing is known of the file then: neither sound nor
    /// damaged.
    Unchecked(String),
}

/// `PRAGMA integrity_check` of the database `conn` is on.
///
/// # Errors
///
/// SQLite's, for a file it cannot read at all (`SQLITE_CORRUPT`,
/// `SQLITE_NOTADB`, an I/O error).
pub(in crate::storage) fn integrity_check(conn: &Connection) -> rusqlite::Result<Verdict> {
    // The schema read first: a file under another key fails here, and
    // not only at the check's compiling, where it was taken for a schema
    // naming what the application registers (an outside probe).
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let mut stmt = match conn.prepare("PRAGMA integrity_check(3)") {
        Ok(stmt) => stmt,
        // Refused before reading a page, the schema read: what it names
        // is missing ("no such collation sequence", "unknown function",
        // "unknown tokenizer": the application registers it).
        Err(e) if code_of(&e) == Some(ErrorCode::Unknown) => {
            return Ok(Verdict::Unchecked(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let said = lines.join("; ").replace('\n', "; ");
    Ok(match said.as_str() {
        "ok" => Verdict::Sound,
        _ => Verdict::Damaged(said),
    })
}

/// SQLite's error code of `e`, also when rusqlite reports it with the
/// offending token (`SqlInputError`, "unknown function: f()"), which
/// `sqlite_error_code` does not see.
fn code_of(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code().or_else(|| {
        let source = std::error::Error::source(e)?;
        source
            .downcast_ref::<rusqlite::ffi::Error>()
            .map(|f| f.code)
    })
}

/// Reads the backup copy at `copy` of `tenant`'s database at `source`
/// back, with the tenant's `key`, and asks it what a restore will ask
/// (see `restore.rs`): a copy of a database whose pages are damaged
/// behind an intact header is a file no restore accepts, and a backup
/// run that called it a backup would let a rotation prune the last copy
/// that is one. A copy whose schema keeps the check from running (see
/// [`Verdict::Unchecked`]) is kept, as it was before copies were checked,
/// and a warning says so.
///
/// # Errors
///
/// [`Error::DamagedTenant`] (naming the tenant's file) when the copy
/// fails the check; a failure to read the copy at all otherwise.
pub(in crate::storage) fn verify_copy(
    tenant: &TenantName,
    (source, copy): (&Path, &Path),
    key: Option<&TenantKey>,
) -> Result<()> {
    let sqlite = |operation, e| Error::sqlite(Some(tenant), copy, operation, e);
    let conn = Connection::open_with_flags(literal_path(copy), READ_BACK)
        .map_err(|e| sqlite("opening the copy to verify it", e))?;
    crypt::apply(&conn, key).map_err(|e| sqlite("keying the copy to verify it", e))?;
    let (check, verdict) = match checked(&conn, key.is_some()) {
        Ok((_, Verdict::Sound)) => return Ok(()),
        Ok((_, Verdict::Unchecked(why))) => {
            tracing::warn!(tenant = %tenant, path = %source.display(), reason = %why, "the tenant's backup copy could not be checked (its schema names a collation or function the application registers): it is kept unchecked");
            return Ok(());
        }
        Ok((check, Verdict::Damaged(said))) => (check, said),
        // What SQLite says of pages it cannot read at all.
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
            ) =>
        {
            ("PRAGMA integrity_check", e.to_string())
        }
        Err(e) => return Err(sqlite("verifying the copy (PRAGMA integrity_check)", e)),
    };
    Err(Error::DamagedTenant {
        tenant: tenant.clone(),
        path: source.to_path_buf(),
        reason: format!(
            "its pages are damaged: a copy of it fails {check} ({verdict}); that copy was not kept as a backup, and earlier backups were left as they are"
        ),
    })
}

/// The check that failed and what it says, or `ok`: an encrypted copy's
/// pages first (see [`cipher_check`]), then its b-trees.
fn checked(conn: &Connection, encrypted: bool) -> rusqlite::Result<(&'static str, Verdict)> {
    if encrypted {
        let failed = cipher_check(conn)?;
        if !failed.is_empty() {
            return Ok(("PRAGMA cipher_integrity_check", Verdict::Damaged(failed)));
        }
    }
    Ok(("PRAGMA integrity_check", integrity_check(conn)?))
}

/// SQLCipher's check of an encrypted database: every page's
/// authentication code, the first few failures on one line (none: every
/// page is as it was written with the key). A page that fails it makes
/// `integrity_check` fail with no more than "SQL logic error".
fn cipher_check(conn: &Connection) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare("PRAGMA cipher_integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let lines = rows.take(3).collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{Verdict, integrity_check};

    /// A database whose index names the collation `app_order`, which
    /// only the application registers.
    fn indexed_on_the_applications_collation(conn: &Connection) {
        conn.execute_batch(
            "CREATE TABLE notes (body TEXT);
             CREATE INDEX notes_body ON notes (body COLLATE NOCASE);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'NOCASE', 'app_order')
              WHERE name = 'notes_body';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }

    #[test]
    fn a_collation_the_application_registers_leaves_a_file_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        indexed_on_the_applications_collation(&Connection::open(&path).unwrap());
        let verdict = integrity_check(&Connection::open(&path).unwrap()).unwrap();
        assert!(matches!(verdict, Verdict::Unchecked(_)), "{verdict:?}");
    }

    /// So does an index on a function it registers: SQLite says "unknown
    /// function" there, not "no such function" (a review).
    #[test]
    fn a_function_the_application_registers_leaves_a_file_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE users (email TEXT);
                 CREATE INDEX users_norm ON users (lower(email));
                 INSERT INTO users VALUES ('a@b');
                 PRAGMA writable_schema = ON;
                 UPDATE sqlite_schema SET sql = replace(sql, 'lower', 'app_norm')
                  WHERE name = 'users_norm';
                 PRAGMA writable_schema = OFF;",
            )
            .unwrap();
        let verdict = integrity_check(&Connection::open(&path).unwrap()).unwrap();
        assert!(matches!(verdict, Verdict::Unchecked(_)), "{verdict:?}");
    }

    /// A file under another key fails before any page is read too, and
    /// is no file to keep unchecked (it was said to be one, just before
    /// a restore refused it: an outside probe).
    #[cfg(feature = "encryption")]
    #[test]
    fn a_file_under_another_key_is_not_left_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let key = |byte| crate::TenantKey::from_bytes([byte; crate::TenantKey::LEN]);
        let conn = Connection::open(&path).unwrap();
        crate::crypt::apply(&conn, Some(&key(1))).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT);")
            .unwrap();
        drop(conn);
        // As a restore opens a backup file.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = Connection::open_with_flags(&path, flags).unwrap();
        crate::crypt::apply(&conn, Some(&key(2))).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let checked = integrity_check(&conn);
        assert!(!matches!(checked, Ok(Verdict::Unchecked(_))), "{checked:?}");
    }
}
