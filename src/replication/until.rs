//! The deadline of a run of requests to a remote replica store (a
//! destroy's erase: its `destroy_timeout`), so that a stalled store holds
//! the run no longer than its caller allows.

use std::time::Instant;

/// A deadline, if any: each request gets what is left of it, and none
/// starts once it has passed. (Only S3 requests read it: without the `s3`
/// feature every store is a local directory, whose erase takes no wait.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub(crate) struct Until(pub(crate) Option<Instant>);

impl Until {
    /// Whether the deadline has passed.
    pub(crate) fn passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// What is left before the deadline (zero once passed); `None`
    /// without one.
    #[cfg(feature = "s3")]
    pub(crate) fn left(self) -> Option<std::time::Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }
}
