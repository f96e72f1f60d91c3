//! A worker's window on the walk: a few parts of it (buckets) walked at
//! once, their tenants handed out merged by inode number.
//!
//! A bucket's entries already come in inode order (`fs/entries.rs`), but
//! tenants made one after another land in different buckets, so one
//! bucket's tenants sit far apart on disk and in the kernel's caches.
//! Merging several buckets by inode visits the files closer to the order
//! they were made in (issue #29 item 5, `BENCHMARKS.md`, "Inode order").
//! A worker takes a window's buckets together and walks them out before
//! it takes the next ones, so each window is one stretch of inode order.
//! The window is bounded ([`PARTS`] buckets, and no more than half a
//! worker's share of the root's buckets), so every worker has buckets to
//! walk, and a worker holds at most its window's names (a bucket of tenant
//! directories is read whole: about 1 MB for 8 buckets at a million
//! tenants in 256).

use crate::error::{Error, Result};
use crate::paths::{Found, Walker};

/// How many parts of the walk a worker reads at once, at most. More is
/// closer to creation order (64 measured no better than 8), but a worker
/// that still holds parts when the others have run out walks them alone.
const PARTS: usize = 8;

/// The parts a worker is walking, each with the next tenant it found.
pub(crate) struct Window {
    heads: Vec<(Found, Walker)>,
    parts: usize,
}

impl Window {
    /// A window for one of `jobs` workers on a walk of about `parts` parts
    /// (the root's buckets): at most [`PARTS`], and at most half of a
    /// worker's share, so that every worker finds parts to take.
    pub(crate) fn new(parts: usize, jobs: usize) -> Self {
        let parts = (parts / (2 * jobs.max(1))).clamp(1, PARTS);
        Window {
            heads: Vec::with_capacity(parts),
            parts,
        }
    }

    /// Whether every part it held is walked.
    pub(crate) fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Whether it holds as many parts as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.heads.len() >= self.parts
    }

    /// Starts walking `part`; what cannot be listed goes to `failed`.
    pub(crate) fn add(&mut self, mut part: Walker, failed: &mut dyn FnMut(Error)) {
        if let Some(found) = first(&mut part, failed) {
            self.heads.push((found, part));
        }
    }

    /// The tenant with the lowest inode number among the parts' next ones;
    /// `None` when every part is walked.
    pub(crate) fn next(&mut self, failed: &mut dyn FnMut(Error)) -> Option<Found> {
        let (lowest, _) = (self.heads.iter().enumerate())
            .min_by_key(|(_, (found, _))| found.inode().unwrap_or(0))?;
        let (found, part) = &mut self.heads[lowest];
        let taken = match first(part, failed) {
            Some(next) => std::mem::replace(found, next),
            None => self.heads.swap_remove(lowest).0,
        };
        Some(taken)
    }

    /// Every tenant still in the window (a stopped worker's), and the
    /// errors met listing them.
    pub(crate) fn rest(self) -> impl Iterator<Item = Result<Found>> {
        (self.heads.into_iter()).flat_map(|(found, part)| std::iter::once(Ok(found)).chain(part))
    }
}

/// The next tenant `part` finds, its listing errors given to `failed`.
fn first(part: &mut Walker, failed: &mut dyn FnMut(Error)) -> Option<Found> {
    loop {
        match part.next()? {
            Ok(found) => return Some(found),
            Err(e) => failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_takes_at_most_half_a_workers_share() {
        let size = |parts, jobs| Window::new(parts, jobs).parts;
        assert_eq!(size(256, 2), PARTS);
        assert_eq!(size(256, 32), 4);
        assert_eq!(size(16, 4), 2);
        assert_eq!(size(16, 1), PARTS);
        assert_eq!(size(1, 8), 1);
        assert_eq!(size(usize::MAX, 0), PARTS);
    }
}
