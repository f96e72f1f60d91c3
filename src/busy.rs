//! What a bounded wait on another party waited for, when it gave up.
//!
//! Every wait tenanted makes on another process (a tenant's lock, the
//! open gate, a destroy's fence) is a non-blocking attempt repeated with
//! short sleeps until the operation's own deadline (see
//! `fs/patience.rs`). When the deadline passes, the wait ends in
//! [`Error::TenantBusy`](crate::Error::TenantBusy), which carries a
//! [`WaitedFor`] saying what held the tenant.

use std::time::Duration;
use std::{fmt, io};

use crate::error::OtherProcess;

/// What an operation that ended in
/// [`Error::TenantBusy`](crate::Error::TenantBusy) was waiting for.
///
/// ```
/// assert_eq!(tenanted::WaitedFor::Migration.to_string(), "migration");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitedFor {
    /// Connections of this process, checked out of the tenant's pool.
    CheckedOutConnections,
    /// Another destroy of the same tenant in this process.
    DestroyInThisProcess,
    /// A first connection to the tenant that this process was opening
    /// (its pool's cold open: its migrations, its `connection_init`).
    OpeningInThisProcess,
    /// A connection to the tenant that another process has open.
    OpenConnection,
    /// A connection to the tenant that another process was opening (a
    /// destroy waits for opens already on their way to the old file).
    Opening,
    /// Another create of the tenant.
    Create,
    /// Another destroy of the tenant.
    Destroy,
    /// A migration or rollback of the tenant.
    Migration,
    /// A restore of the tenant.
    Restore,
    /// A re-key of the tenant (the `encryption` feature).
    Rekey,
    /// A change of a key in the root's keys directory (a create, destroy
    /// or re-key of an encrypted tenant, or a master-key rotation).
    KeyChange,
    /// A debris sweep (`remove_debris`, `tenanted cleanup`).
    Cleanup,
    /// A change of the tenant's size limit or suspension.
    LimitChange,
    /// A build of the template database new tenants are copied from.
    TemplateBuild,
    /// The root's description (`.tenanted/`) being recorded.
    RootRecord,
    /// A write transaction of another connection to the tenant (SQLite's
    /// write lock), held past the waiting operation's busy timeout.
    Writer,
    /// An operation that did not say what it is (a process of an earlier
    /// release holding the tenant's lock).
    Operation,
}

impl WaitedFor {
    /// The word a lock's holder writes into its lock file, read back by a
    /// waiter that gives up.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            WaitedFor::CheckedOutConnections => "checked-out-connections",
            WaitedFor::DestroyInThisProcess => "destroy-in-this-process",
            WaitedFor::OpeningInThisProcess => "opening-in-this-process",
            WaitedFor::OpenConnection => "open-connection",
            WaitedFor::Opening => "opening",
            WaitedFor::Create => "create",
            WaitedFor::Destroy => "destroy",
            WaitedFor::Migration => "migration",
            WaitedFor::Restore => "restore",
            WaitedFor::Rekey => "rekey",
            WaitedFor::KeyChange => "key-change",
            WaitedFor::Cleanup => "cleanup",
            WaitedFor::LimitChange => "limit-change",
            WaitedFor::TemplateBuild => "template-build",
            WaitedFor::RootRecord => "root-record",
            WaitedFor::Writer => "writer",
            WaitedFor::Operation => "operation",
        }
    }

    /// The holder's word read back from its lock file (`Operation` for
    /// anything else: an empty file, whose holder could not write it).
    pub(crate) fn from_keyword(word: &str) -> WaitedFor {
        const ALL: [WaitedFor; 17] = [
            WaitedFor::CheckedOutConnections,
            WaitedFor::DestroyInThisProcess,
            WaitedFor::OpeningInThisProcess,
            WaitedFor::OpenConnection,
            WaitedFor::Opening,
            WaitedFor::Create,
            WaitedFor::Destroy,
            WaitedFor::Migration,
            WaitedFor::Restore,
            WaitedFor::Rekey,
            WaitedFor::KeyChange,
            WaitedFor::Cleanup,
            WaitedFor::LimitChange,
            WaitedFor::TemplateBuild,
            WaitedFor::RootRecord,
            WaitedFor::Writer,
            WaitedFor::Operation,
        ];
        let word = word.trim();
        ALL.into_iter()
            .find(|w| w.keyword() == word)
            .unwrap_or(WaitedFor::Operation)
    }
}

impl fmt::Display for WaitedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitedFor::CheckedOutConnections => "checked-out connections",
            WaitedFor::DestroyInThisProcess => "destroy in this process",
            WaitedFor::OpeningInThisProcess => "open in progress in this process",
            WaitedFor::OpenConnection => "open connection",
            WaitedFor::Opening => "open in progress",
            WaitedFor::Create => "create",
            WaitedFor::Destroy => "destroy",
            WaitedFor::Migration => "migration",
            WaitedFor::Restore => "restore",
            WaitedFor::Rekey => "re-key",
            WaitedFor::KeyChange => "change of the root's keys",
            WaitedFor::Cleanup => "debris cleanup",
            WaitedFor::LimitChange => "change of its size limit or suspension",
            WaitedFor::TemplateBuild => "template database build",
            WaitedFor::RootRecord => "recording of the root's description",
            WaitedFor::Writer => "write transaction",
            WaitedFor::Operation => "operation",
        })
    }
}

/// A wait on another party that reached its deadline, carried inside an
/// `io::Error` (kind `TimedOut`) from the storage layer up to the code
/// that names the tenant and turns it into `TenantBusy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy {
    /// What held the tenant.
    pub(crate) waited_for: WaitedFor,
    /// The holder, when the kernel names it.
    pub(crate) other_process: Option<OtherProcess>,
    /// How long the operation had waited, from its call.
    pub(crate) waited: Duration,
}

impl Busy {
    /// A wait for SQLite's lock that ended after `waited`: its holder is
    /// another connection, which SQLite does not name; `holder`, the
    /// process the kernel says holds it (`fs::sqlite_lock_holder`), if
    /// looked for.
    pub(crate) fn sqlite_lock(waited: Duration, holder: Option<u32>) -> Busy {
        Busy {
            waited_for: WaitedFor::Writer,
            other_process: holder.map(|pid| OtherProcess { pid: Some(pid) }),
            waited,
        }
    }

    /// This wait as an I/O error.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&holder_phrase(
            self.waited_for,
            0,
            self.other_process.as_ref(),
        ))?;
        write!(f, " after {:?}", self.waited)
    }
}

impl std::error::Error for Busy {}

/// The [`Busy`] inside an I/O error, if that is what it is.
pub(crate) fn busy(e: &io::Error) -> Option<Busy> {
    e.get_ref()?.downcast_ref::<Busy>().copied()
}

/// Who had the tenant and doing what, in words ("another process
/// (pid 42) was still running its destroy of it").
pub(crate) fn holder_phrase(
    waited_for: WaitedFor,
    checked_out: usize,
    other: Option<&OtherProcess>,
) -> String {
    let this_process = other.is_some_and(|o| o.pid == Some(std::process::id()));
    let who = match other {
        // flock excludes open file descriptions: a thread of this process
        // can hold what another thread of it waits for.
        Some(_) if this_process => "another thread of this process".to_owned(),
        Some(o) => named(o),
        None => "another process".to_owned(),
    };
    match waited_for {
        WaitedFor::CheckedOutConnections => {
            format!("{checked_out} connection(s) of this process were still checked out")
        }
        WaitedFor::DestroyInThisProcess => {
            "another destroy of it in this process was still running".to_owned()
        }
        WaitedFor::OpeningInThisProcess => {
            "this process was still opening its first connection to it (its migrations, or a connection_init hook)".to_owned()
        }
        // A destroy closes its own manager's pools first: the one left
        // is another manager's on the same root (or a read of it).
        WaitedFor::OpenConnection if this_process => {
            "it was still open through another TenantManager of this process (whose watcher lets go of it within its watch_interval), or being read by one".to_owned()
        }
        WaitedFor::OpenConnection => format!("it was still open in {who}"),
        WaitedFor::Opening => format!("{who} was still opening it"),
        WaitedFor::Operation => format!("{who} still held its lock"),
        WaitedFor::KeyChange => format!("{who} still held the root's keys directory"),
        WaitedFor::RootRecord => format!("{who} was still recording the root's description"),
        WaitedFor::TemplateBuild => {
            format!("{who} was still building the template database new tenants are copied from")
        }
        // SQLite's lock is its own: the kernel names the process that
        // holds it (where it was looked for), never the connection.
        WaitedFor::Writer => {
            let who = match other {
                Some(_) if this_process => "another connection of this process".to_owned(),
                Some(o) => format!("a connection of {}", named(o)),
                None => "another connection".to_owned(),
            };
            format!(
                "{who} still held SQLite's lock on it (a write transaction, or a backup copying the tenant alone)"
            )
        }
        doing => format!("{who} was still running its {doing} of it"),
    }
}

/// `other` in words, with its name where the system still knows it: a
/// Litestream process is said to be one, with why it holds the tenant.
fn named(other: &OtherProcess) -> String {
    let name = other.pid.and_then(crate::fs::sys::process_name);
    match (name.as_deref(), other.pid) {
        (Some("litestream"), _) => format!(
            "{other}, Litestream replicating the root (it holds a tenant until told to let go, which a destroy does for `tenanted replicate`, or until it is stopped; one run from a directory-mode configuration lets go of nothing: stop it first)"
        ),
        // Inside the parentheses: after them, the name ran into the
        // words that follow ("(pid 22770), probe after 5 s": a probe).
        (Some(name), Some(pid)) => format!("another process (pid {pid}, `{name}`)"),
        _ => other.to_string(),
    }
}

/// What to do about it.
pub(crate) fn advice(waited_for: WaitedFor) -> &'static str {
    match waited_for {
        WaitedFor::CheckedOutConnections => "release its connections and retry",
        WaitedFor::DestroyInThisProcess => "retry once that destroy has finished",
        WaitedFor::OpeningInThisProcess => "retry once it is open and its connections are released",
        WaitedFor::OpenConnection | WaitedFor::Opening => {
            "close it there (or stop that process) and retry"
        }
        WaitedFor::Writer => {
            "retry once it has let go (or stop or resume the process holding it if it is stuck or stopped)"
        }
        _ => "retry once it has finished (or stop that process if it is stuck)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_read_back_as_written() {
        for w in [
            WaitedFor::Create,
            WaitedFor::Destroy,
            WaitedFor::Migration,
            WaitedFor::Restore,
            WaitedFor::Rekey,
            WaitedFor::KeyChange,
            WaitedFor::Cleanup,
            WaitedFor::LimitChange,
            WaitedFor::TemplateBuild,
            WaitedFor::RootRecord,
        ] {
            assert_eq!(WaitedFor::from_keyword(w.keyword()), w);
        }
        assert_eq!(WaitedFor::from_keyword(""), WaitedFor::Operation);
        assert_eq!(WaitedFor::from_keyword("garbage"), WaitedFor::Operation);
    }

    /// Waits until the child `pid` runs its program, `name` (spawn
    /// returns before the exec).
    fn wait_for_exec(pid: u32, name: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while crate::fs::sys::process_name(pid).as_deref() != Some(name) {
            assert!(std::time::Instant::now() < deadline, "{name} never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn another_process_is_named_as_the_system_knows_it() {
        let mut sleeping = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        wait_for_exec(sleeping.id(), "sleep");
        let other = OtherProcess {
            pid: Some(sleeping.id()),
        };
        let said = holder_phrase(WaitedFor::OpenConnection, 0, Some(&other));
        let _ = sleeping.kill();
        let _ = sleeping.wait();
        assert_eq!(
            said,
            format!(
                "it was still open in another process (pid {}, `sleep`)",
                sleeping.id()
            )
        );
    }

    #[test]
    fn a_litestream_process_is_said_to_be_one() {
        // `sleep` run through a link named like Litestream: the system
        // names a process after the file it was started as. (A link, not
        // a copy: a copy just written can fail to start with ETXTBSY
        // while another test's child holds it open.)
        let dir = tempfile::tempdir().unwrap();
        let litestream = dir.path().join("litestream");
        std::os::unix::fs::symlink("/bin/sleep", &litestream).unwrap();
        let mut running = std::process::Command::new(&litestream)
            .arg("30")
            .spawn()
            .unwrap();
        wait_for_exec(running.id(), "litestream");
        let other = OtherProcess {
            pid: Some(running.id()),
        };
        let said = holder_phrase(WaitedFor::OpenConnection, 0, Some(&other));
        let _ = running.kill();
        let _ = running.wait();
        assert!(said.contains("Litestream replicating the root"), "{said}");
        assert!(said.contains("directory-mode configuration"), "{said}");
    }

    #[test]
    fn a_busy_io_error_carries_the_wait() {
        // No such process: no name to add.
        let pid = u32::MAX;
        let wait = Busy {
            waited_for: WaitedFor::Destroy,
            other_process: Some(OtherProcess { pid: Some(pid) }),
            waited: Duration::from_millis(1500),
        };
        let e = wait.into_io();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(busy(&e), Some(wait));
        assert!(
            e.to_string()
                .contains(&format!("(pid {pid}) was still running its destroy"))
        );
    }
}
