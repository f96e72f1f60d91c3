//! Foreign keys during a migration: off, as SQLite's recipe for changing
//! a table asks (it drops and re-creates the table: with them on,
//! `DROP TABLE` deleted the rows referencing it through `ON DELETE
//! CASCADE`, or nulled them; and `PRAGMA foreign_keys = OFF` inside the
//! migration's transaction is a no-op), then checked after each step,
//! against what was there before the run: a step fails only for rows *it*
//! left pointing nowhere. Orphans already there (left by a connection
//! with foreign keys off, an edit in the `sqlite3` shell) do not make
//! every later migration of the tenant fail.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, Transaction};
use rusqlite_migration::{HookError, HookResult};

/// A row `PRAGMA foreign_key_check` reports: its table, its rowid (none
/// in a `WITHOUT ROWID` table), the table it references, and which key.
type Violation = (String, Option<i64>, String, i64);

/// The violations there before a run, or `None` when the check cannot run
/// at all (a foreign key to a column that is not unique: SQLite accepts it
/// at `CREATE` and the pragma then fails with "foreign key mismatch"):
/// nothing is checked then.
#[derive(Debug, Clone)]
pub(super) struct Baseline(Arc<Option<HashSet<Violation>>>);

impl Baseline {
    /// An empty database's: nothing.
    pub(super) fn empty() -> Baseline {
        Baseline(Arc::new(Some(HashSet::new())))
    }

    /// What `conn` holds now (before the run's transaction).
    ///
    /// # Errors
    ///
    /// SQLite's, other than a mismatch.
    pub(super) fn of(conn: &Connection) -> rusqlite::Result<Baseline> {
        Ok(Baseline(Arc::new(violations(conn)?)))
    }

    /// The hook run after migration `name`'s script, inside the run's
    /// transaction: fails it for a row it left pointing nowhere.
    pub(super) fn hook(
        &self,
        name: &str,
    ) -> impl Fn(&Transaction) -> HookResult + Clone + Send + Sync + 'static {
        let (baseline, name) = (self.clone(), name.to_owned());
        move |tx: &Transaction| baseline.check(tx, &name)
    }

    fn check(&self, conn: &Connection, name: &str) -> HookResult {
        let Some(before) = self.0.as_ref() else {
            return Ok(());
        };
        let Some(now) = violations(conn)? else {
            return Ok(());
        };
        let new: Vec<&Violation> = now.difference(before).collect();
        let Some(&(table, rowid, parent, _)) = new.first() else {
            return Ok(());
        };
        let row = rowid.map_or_else(|| "a row".to_owned(), |r| format!("row {r}"));
        Err(HookError::Hook(format!(
            "{name} left {} row(s) referencing rows that are not there (the first: {row} of {table}, into {parent}; PRAGMA foreign_key_check), and the run was rolled back. Keep the parent rows (copy them into a rebuilt table before dropping the old one), or delete the orphans in the migration",
            new.len()
        )))
    }
}

/// Every violation in `conn`'s database, or `None` for a mismatch.
fn violations(conn: &Connection) -> rusqlite::Result<Option<HashSet<Violation>>> {
    let sql = "SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check";
    let rows = conn.prepare(sql).and_then(|mut stmt| {
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<rusqlite::Result<HashSet<Violation>>>()
    });
    match rows {
        Ok(rows) => Ok(Some(rows)),
        Err(e) if e.to_string().contains("foreign key mismatch") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Turns foreign keys off on `conn`, outside any transaction (inside one
/// the pragma is a no-op).
pub(super) fn off(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = OFF")
}

/// The violations `conn`'s database holds beyond `baseline` (for the run
/// on an empty database, which has its own connection): `Err` with the
/// message a step's hook gives.
pub(super) fn check_step(conn: &Connection, baseline: &Baseline, name: &str) -> Result<(), String> {
    baseline.check(conn, name).map_err(|e| match e {
        HookError::Hook(message) => message,
        HookError::RusqliteError(e) => e.to_string(),
        other => format!("{other:?}"),
    })
}
