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
//!
//! Every part in a window holds a directory open, and descriptors are the
//! whole process's: the parts all workers hold at once are kept to a
//! sixteenth of the descriptor limit, and a part that cannot be opened
//! for want of descriptors waits in its window until a part there is
//! walked out and closed (or, in an empty window, until the other
//! workers' parts are), instead of becoming a listing error that would
//! drop its tenants from the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::sys;
use crate::paths::{Found, Walker};

/// How many parts of the walk a worker reads at once, at most. More is
/// closer to creation order (64 measured no better than 8), but a worker
/// that still holds parts when the others have run out walks them alone.
const PARTS: usize = 8;

/// The share of the descriptor limit the windows of a run hold at most.
const DESCRIPTOR_SHARE: u64 = 16;

/// How long a worker with an empty window waits before trying a part
/// again that it could not open for want of descriptors.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// The parts a worker is walking, each with the next tenant it found.
pub(crate) struct Window<'a> {
    heads: Vec<(Found, Walker)>,
    parts: usize,
    /// A part that could not be opened for want of descriptors, tried
    /// again when one of `heads` is walked out.
    waiting: Option<Walker>,
    /// The parts every worker of the run holds open.
    open: &'a AtomicUsize,
}

impl<'a> Window<'a> {
    /// A window for one of `jobs` workers on a walk of about `parts` parts
    /// (the root's buckets): at most [`PARTS`], at most half of a
    /// worker's share, so that every worker finds parts to take, and at
    /// most its share of the descriptors the run may hold. `open` counts
    /// the parts all workers hold.
    pub(crate) fn new(parts: usize, jobs: usize, open: &'a AtomicUsize) -> Self {
        Window {
            heads: Vec::with_capacity(PARTS),
            parts: window_size(parts, jobs, sys::descriptor_limit().unwrap_or(u64::MAX)),
            waiting: None,
            open,
        }
    }

    /// Whether every part it held is walked.
    pub(crate) fn is_empty(&self) -> bool {
        self.heads.is_empty() && self.waiting.is_none()
    }

    /// Whether it holds as many parts as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.heads.len() >= self.parts || self.waiting.is_some()
    }

    /// Starts walking `part`; what cannot be listed goes to `failed`. A
    /// part that cannot be opened for want of descriptors waits
    /// ([`Window::retry`]).
    pub(crate) fn add(&mut self, mut part: Walker, failed: &mut dyn FnMut(Error)) {
        match part.open_start() {
            Ok(()) => {}
            Err(_) if part.unstarted() => {
                self.waiting = Some(part);
                return;
            }
            Err(e) => return failed(e),
        }
        if let Some(found) = first(&mut part, failed) {
            self.hold(found, part);
        }
    }

    /// Holds `part`, open, with the next tenant it found.
    fn hold(&mut self, found: Found, part: Walker) {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.heads.push((found, part));
    }

    /// Whether a part waits for descriptors.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Tries the waiting part again. Call it with no tenant of the
    /// worker's in hand (they hold their parts' directories open). If it
    /// still cannot be opened and the window has no other part: while
    /// other workers hold parts, it pauses (theirs will close); when none
    /// do, descriptors are short for reasons outside the run, and the
    /// error goes to `failed`.
    pub(crate) fn retry(&mut self, failed: &mut dyn FnMut(Error)) {
        let Some(part) = self.waiting.take() else {
            return;
        };
        self.add(part, failed);
        if !self.heads.is_empty() || self.waiting.is_none() {
            return;
        }
        if self.open.load(Ordering::Acquire) > 0 {
            std::thread::sleep(RETRY_PAUSE);
        } else if let Some(mut part) = self.waiting.take()
            // Walking it reports why it cannot be opened (or walks it, if
            // it can be now).
            && let Some(found) = first(&mut part, failed)
        {
            self.hold(found, part);
        }
    }

    /// The tenant with the lowest inode number among the parts' next ones;
    /// `None` when every part is walked (or only a waiting part is left).
    pub(crate) fn next(&mut self, failed: &mut dyn FnMut(Error)) -> Option<Found> {
        let (lowest, _) = (self.heads.iter().enumerate())
            .min_by_key(|(_, (found, _))| found.inode().unwrap_or(0))?;
        let (found, part) = &mut self.heads[lowest];
        let taken = match first(part, failed) {
            Some(next) => std::mem::replace(found, next),
            None => {
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.heads.swap_remove(lowest).0
            }
        };
        Some(taken)
    }

    /// Every tenant still in the window (a stopped worker's), and the
    /// errors met listing them.
    pub(crate) fn rest(mut self) -> impl Iterator<Item = Result<Found>> {
        let heads = std::mem::take(&mut self.heads);
        self.open.fetch_sub(heads.len(), Ordering::AcqRel);
        let waiting = self.waiting.take().into_iter().flatten();
        (heads.into_iter())
            .flat_map(|(found, part)| std::iter::once(Ok(found)).chain(part))
            .chain(waiting)
    }
}

impl Drop for Window<'_> {
    /// A worker that unwinds (a panicking callback) still gives its parts
    /// back to the count, so that no other worker waits for them to close.
    fn drop(&mut self) {
        self.open.fetch_sub(self.heads.len(), Ordering::AcqRel);
    }
}

/// The parts one of `jobs` workers holds at once, on a walk of `parts`
/// parts, in a process allowed `limit` descriptors.
fn window_size(parts: usize, jobs: usize, limit: u64) -> usize {
    let jobs = jobs.max(1);
    let descriptors = usize::try_from(limit / DESCRIPTOR_SHARE).unwrap_or(usize::MAX) / jobs;
    (parts / (2 * jobs)).min(descriptors).clamp(1, PARTS)
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
        let size = |parts, jobs| window_size(parts, jobs, 1 << 20);
        assert_eq!(size(256, 2), PARTS);
        assert_eq!(size(256, 32), 4);
        assert_eq!(size(16, 4), 2);
        assert_eq!(size(16, 1), PARTS);
        assert_eq!(size(1, 8), 1);
        assert_eq!(size(usize::MAX, 0), PARTS);
    }

    /// A worker that panics with parts in its window takes them off the
    /// run's count: another worker waiting for descriptors would
    /// otherwise wait for them for ever (found by an outside review).
    #[test]
    fn a_window_dropped_by_a_panic_is_taken_off_the_count() {
        use crate::paths::{Mode, Part, RootConfig};
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(16);
        for i in 0..20 {
            let path = root.database_path(&format!("t{i:02}")).unwrap();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
        }
        let mut top = root.walk(Mode::Candidates).unwrap();
        let mut parts = Vec::new();
        while let Some(part) = top.next_part() {
            if let Ok(Part::Subtree(walker)) = part {
                parts.push(walker);
            }
        }
        let open = AtomicUsize::new(0);
        let panicked = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut window = Window::new(16, 2, &open);
                for part in parts.drain(..2) {
                    window.add(part, &mut |e| panic!("{e}"));
                }
                assert_eq!(open.load(Ordering::SeqCst), 2);
                panic!("the work panics");
            });
            worker.join().is_err()
        });
        assert!(panicked);
        assert_eq!(open.load(Ordering::SeqCst), 0);
        let mut window = Window::new(16, 2, &open);
        window.add(parts.remove(0), &mut |e| panic!("{e}"));
        let rest = window.rest().count();
        assert!(rest > 0);
        assert_eq!(open.load(Ordering::SeqCst), 0, "rest() and drop count once");
    }

    #[test]
    fn the_windows_hold_a_sixteenth_of_the_descriptors() {
        assert_eq!(window_size(256, 16, 128), 1);
        assert_eq!(window_size(256, 2, 128), 4);
        assert_eq!(window_size(256, 1, 1024), PARTS);
        assert_eq!(window_size(256, 4, 16), 1, "never less than one part");
        assert_eq!(window_size(256, 2, u64::MAX), PARTS);
    }
}
