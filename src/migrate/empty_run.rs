//! Every migration run once on an empty database before any tenant's is
//! changed, the way a new tenant's schema is built (the template
//! database): a set of migrations that cannot build a new tenant, or
//! whose scripts end the transaction tenanted runs each migration in, is
//! refused before it touches the fleet.
//!
//! Why both, from an outside probe:
//! - `COMMIT;`, `END;` or `ROLLBACK;` in an `up.sql` ended the migration's
//!   transaction: what followed committed on its own, and a tenant was
//!   left half migrated, reported failed, or reported current without a
//!   table (`ROLLBACK;` undid what came before it);
//! - a migration that depends on data (`INSERT ... SELECT max(id)` into a
//!   `NOT NULL` column) migrated the fleet, and from then on no tenant
//!   could be created; fixing it meant editing an applied migration.

use std::path::PathBuf;

use rusqlite::Connection;

use super::foreign_keys::{self, Baseline};
use crate::error::{Error, Result};

/// Why the migrations failed on an empty database: the migration's
/// script and what to do.
#[derive(Debug)]
pub(super) struct Refused {
    script: PathBuf,
    reason: String,
    /// The migration's index (its version is one more), and whether its
    /// `up.sql` (not its `down.sql`) was refused.
    at: (usize, bool),
}

impl Refused {
    pub(super) fn error(&self) -> Error {
        Error::BadMigrations {
            path: self.script.clone(),
            reason: self.reason.clone(),
        }
    }

    /// Whether a run from version `from` to `to` would run the script
    /// refused: an `up.sql` of a migration it applies, or a `down.sql` of
    /// one it undoes (a rollback past a migration whose `up.sql` needs
    /// rows, applied long ago, only needs its `down.sql`).
    fn concerns(&self, from: usize, to: usize) -> bool {
        let (index, up) = self.at;
        match up {
            true => from <= index && index < to,
            false => to <= index && index < from,
        }
    }
}

/// One migration's scripts.
pub(super) struct Scripts<'a> {
    pub(super) name: &'a str,
    pub(super) up: &'a str,
    pub(super) down: Option<&'a str>,
}

/// Runs `list` on an empty in-memory database, each `up.sql` in a
/// transaction of its own, then the `down.sql` scripts back (those that
/// run there: a down may need rows), each checked for ending its
/// transaction.
pub(super) fn run_on_empty(list: &[Scripts<'_>]) -> std::result::Result<(), Refused> {
    let conn = empty_database()?;
    for (index, m) in list.iter().enumerate() {
        run_script(&conn, (m.name, index), m.up, UP)?;
    }
    for (index, m) in list.iter().enumerate().rev() {
        let Some(down) = m.down else { break };
        match run_script(&conn, (m.name, index), down, DOWN) {
            Ok(()) => {}
            Err(refused) if refused.reason.starts_with(ENDS) => return Err(refused),
            // It needs rows (allowed): the schema is no longer the one
            // the downs below it expect, so each is tried on its own.
            Err(_) => return downs_alone(&list[..index]),
        }
    }
    Ok(())
}

/// Each `down.sql` of `list` that a rollback can reach (above the last
/// migration without one), run on an empty database brought up to its
/// migration and undone: only one that ends the transaction is refused
/// (one that needs rows may fail). One pass: each up in turn, each such
/// down tried after it (a database made afresh for each down made this
/// grow with the cube of the migrations: 25 s at 400; a review).
fn downs_alone(list: &[Scripts<'_>]) -> std::result::Result<(), Refused> {
    let reachable = (list.iter().rposition(|m| m.down.is_none())).map_or(0, |last| last + 1);
    let conn = empty_database()?;
    for (index, m) in list.iter().enumerate() {
        run_script(&conn, (m.name, index), m.up, UP)?;
        let Some(down) = m.down.filter(|_| index >= reachable) else {
            continue;
        };
        let tried = in_savepoint(&conn, down);
        let _ = conn.execute_batch("ROLLBACK");
        let refused = |reason: String| Refused {
            script: PathBuf::from(m.name).join(DOWN),
            reason,
            at: (index, false),
        };
        match tried {
            Ok((_, true)) => return Err(refused(ends_the_transaction())),
            Ok((_, false)) => {}
            Err(e) => return Err(refused(beginning_failed(&e))),
        }
    }
    Ok(())
}

/// An empty database with foreign keys off, as a tenant's migration runs
/// (`foreign_keys.rs`).
fn empty_database() -> std::result::Result<Connection, Refused> {
    Connection::open_in_memory()
        .and_then(|conn| foreign_keys::off(&conn).map(|()| conn))
        .map_err(|e| Refused {
            script: PathBuf::from(":memory:"),
            reason: format!("opening an empty database to try the migrations on failed: {e}"),
            at: (0, true),
        })
}

const ENDS: &str = "it ends the transaction";
const UP: &str = "up.sql";
const DOWN: &str = "down.sql";

/// Runs `sql` in a transaction of its own, inside a savepoint of
/// tenanted's, and says whether the script ended that transaction (and
/// begun another: `COMMIT; BEGIN;`), taking the savepoint with it: asked
/// whether the script succeeded or not (one that failed after `COMMIT;
/// BEGIN;` has ended it too, and on a tenant what came before the COMMIT
/// would stay: an outside probe). The transaction is left open.
///
/// # Errors
///
/// Beginning the transaction failed.
fn in_savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<(rusqlite::Result<()>, bool)> {
    conn.execute_batch("BEGIN; SAVEPOINT tenanted_empty_run;")?;
    let ran = conn.execute_batch(sql);
    let ended = conn.is_autocommit()
        || match &ran {
            Ok(()) => conn.execute_batch("RELEASE tenanted_empty_run").is_err(),
            Err(_) => conn
                .execute_batch("ROLLBACK TO tenanted_empty_run")
                .is_err(),
        };
    Ok((ran, ended))
}

fn ends_the_transaction() -> String {
    format!(
        "{ENDS} tenanted runs each migration in (a COMMIT, END or ROLLBACK statement): \
         a tenant would be left half migrated; remove the statement (SAVEPOINT and \
         RELEASE of savepoints of its own may stay). Nothing was migrated"
    )
}

fn beginning_failed(e: &rusqlite::Error) -> String {
    format!("beginning a transaction on an empty database: {e}")
}

/// Runs one script in a transaction of its own (see [`in_savepoint`]),
/// committed if it succeeded and did not end that transaction.
fn run_script(
    conn: &Connection,
    (name, index): (&str, usize),
    sql: &str,
    file: &str,
) -> std::result::Result<(), Refused> {
    let script = PathBuf::from(name).join(file);
    let refused = |reason: String| Refused {
        script: script.clone(),
        reason,
        at: (index, file == UP),
    };
    let (ran, ended) = in_savepoint(conn, sql).map_err(|e| refused(beginning_failed(&e)))?;
    if ended {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(refused(ends_the_transaction()));
    }
    let ran = ran.map_err(|e| said(&e)).and_then(|()| match file {
        UP => foreign_keys::check_step(conn, &Baseline::empty(), name),
        _ => Ok(()),
    });
    if let Err(e) = ran {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(refused(format!(
            "it fails on an empty database ({e}), where every new tenant's schema is built: \
             make it run there too (a migration that moves rows must also work with none). \
             Nothing was migrated"
        )));
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| refused(format!("committing it on an empty database: {e}")))
}

/// `Ok`, or the error a run from version `from` to `to` gives when it
/// would run the script refused.
pub(super) fn checked(
    result: &std::result::Result<(), Refused>,
    (from, to): (usize, usize),
) -> Result<()> {
    match result {
        Err(refused) if refused.concerns(from, to) => Err(refused.error()),
        _ => Ok(()),
    }
}

/// SQLite's own words for `e`, without the script rusqlite quotes with
/// some (the rest of a long migration, ended by a NUL).
fn said(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        other => other.to_string(),
    }
}
