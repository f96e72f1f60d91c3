//! What a tenant pool and its connection manager share: whether the pool
//! may still hand out connections, and which file it is the pool of.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::fs::FileId;
use crate::limits;

/// Checkouts allowed.
const OPEN: u8 = 0;
/// A destroy in this process is draining the pool; refuse, and say so.
const DESTROYING: u8 = 1;
/// The pool's file is no longer the tenant's current one; refuse, and let
/// the caller open the tenant afresh. Final.
const STALE: u8 = 2;

/// A pool's state word and file identity.
#[derive(Debug, Default)]
pub(super) struct PoolState {
    state: AtomicU8,
    /// The database file the pool's first connection was pinned to.
    file: OnceLock<FileId>,
    /// The statement that sets the tenant's size limit, once a connection
    /// of the pool was opened with the tenant over it (see
    /// `limits::apply`): then every checkout runs it again.
    clamped: OnceLock<String>,
}

/// What a checkout finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Open,
    Destroying,
    Stale,
}

impl PoolState {
    /// Read on every checkout, after counting it (see `tenant_pool.rs`).
    pub(super) fn admission(&self) -> Admission {
        match self.state.load(Ordering::SeqCst) {
            OPEN => Admission::Open,
            DESTROYING => Admission::Destroying,
            _ => Admission::Stale,
        }
    }

    pub(super) fn begin_destroy(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, DESTROYING, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(super) fn end_destroy(&self) {
        let _ = self
            .state
            .compare_exchange(DESTROYING, OPEN, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(super) fn mark_stale(&self) {
        self.state.store(STALE, Ordering::SeqCst);
    }

    /// The pool's file: the first one offered becomes it.
    pub(super) fn file_or(&self, first: FileId) -> FileId {
        *self.file.get_or_init(|| first)
    }

    /// Notes that a connection was opened with the tenant over its limit
    /// of `pages`.
    pub(super) fn clamped_at(&self, pages: u64) {
        let _ = self.clamped.get_or_init(|| limits::max_pages_sql(pages));
    }

    /// The statement that sets the limit, if a connection was opened over
    /// it.
    pub(super) fn clamped(&self) -> Option<&str> {
        self.clamped.get().map(String::as_str)
    }

    /// The pool's file, once its first connection has been made.
    pub(super) fn file(&self) -> Option<FileId> {
        self.file.get().copied()
    }
}
