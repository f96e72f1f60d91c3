//! The tenants of a fleet run, handed to its workers.
//!
//! A run over the whole root splits its walk: each worker takes a few
//! directories below the root (buckets) at a time and walks them alone
//! (`window.rs`), so that the walk, with its `getdents` and its name
//! checks, runs on every worker instead of one at a time through a lock.
//! A run over a list hands the list out in order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::vec;

use parking_lot::Mutex;

use super::window::Window;
use crate::error::{Error, Result};
use crate::fs::faults;
use crate::name::TenantName;
use crate::paths::{Found, Mode, Part, RootConfig, Walker};
use crate::storage::{Occupant, TenantPath, incomplete, occupant};

/// The tenants of a run: the walk of the root ([`Mode::Candidates`]), or
/// the caller's list in its order.
pub(crate) struct Feed<'a> {
    /// The root directory, every tenant's path reached from it.
    pub(crate) root: &'a Path,
    source: Mutex<Source>,
    /// Tenants handed out but not started when the run stopped.
    unstarted: Mutex<Vec<(usize, Found)>>,
    /// Whether the tenants come from the walk (then a candidate whose
    /// database is not there is skipped, and rows are sorted by name).
    pub(crate) walked: bool,
    /// How many tenants there are at most (no more workers are started).
    most: usize,
    /// How many were handed out: each one's place in the run.
    handed: AtomicUsize,
    /// About how many parts the walk has (the root's buckets), for the
    /// size of each worker's window.
    parts: usize,
    /// Whether the layout gives each tenant a directory of its own (a
    /// walked tenant's directory is listed even without its database).
    owns_dir: bool,
}

/// Where tenants come from.
enum Tenants {
    Listed(vec::IntoIter<Found>),
    Walked(Walker),
}

struct Source {
    tenants: Tenants,
    listing_errors: Vec<Arc<Error>>,
}

/// What a worker takes from the shared source.
enum Piece {
    /// A tenant, with its place in the run.
    Tenant(usize, Found),
    /// A part of the walk, for this worker alone.
    Walk(Walker),
}

/// The most tenants a worker takes at once: a worker that finds the
/// source's lock taken sleeps and wakes again (two context switches, more
/// than reading a header costs), so quick tenants come in batches.
const BATCH: usize = 32;

/// A tenant done in less than this is quick (a header read), and the next
/// batch is twice as big; a slower one (a migration) makes the next batch
/// one tenant, so that no worker sits on tenants another could start.
const QUICK: Duration = Duration::from_micros(50);

impl<'a> Feed<'a> {
    /// The tenants `only` names (validated, with their paths), or else
    /// every tenant on disk.
    ///
    /// # Errors
    ///
    /// A bad name in `only`, a bad template, a root that cannot be walked.
    pub(crate) fn new(root: &'a RootConfig, only: Option<&[String]>) -> Result<Self> {
        let Some(names) = only else {
            let walk = Tenants::Walked(root.walk(Mode::Candidates)?);
            let mut feed = Feed::of(root.root_dir(), walk, usize::MAX);
            feed.parts = usize::try_from(root.bucket_count()).unwrap_or(usize::MAX);
            feed.owns_dir = root.owns_directory()?;
            return Ok(feed);
        };
        let named = names.iter().map(|name| {
            let tenant = TenantName::new(name)?;
            let path = root.path_of(tenant.as_str())?;
            Ok(Found::listed(tenant, path))
        });
        let named = named.collect::<Result<_>>()?;
        Ok(Feed::listed(root.root_dir(), named, Vec::new()))
    }

    /// The caller's `list`, in its order (each `path` whatever the run's
    /// work needs), and the errors met listing it.
    pub(crate) fn listed(root: &'a Path, list: Vec<Found>, errors: Vec<Arc<Error>>) -> Self {
        let most = list.len();
        let mut feed = Feed::of(root, Tenants::Listed(list.into_iter()), most);
        feed.source.get_mut().listing_errors = errors;
        feed
    }

    fn of(root: &'a Path, tenants: Tenants, most: usize) -> Self {
        let walked = matches!(tenants, Tenants::Walked(_));
        let source = Source {
            tenants,
            listing_errors: Vec::new(),
        };
        Feed {
            root,
            source: Mutex::new(source),
            unstarted: Mutex::new(Vec::new()),
            walked,
            most,
            handed: AtomicUsize::new(0),
            parts: usize::MAX,
            owns_dir: false,
        }
    }

    /// Runs `work` on every tenant on `jobs` scoped threads, until the
    /// tenants run out or `stop` says so. Each worker has state of its own:
    /// made by `start`, given to `work` with every tenant, handed to `done`
    /// at the end. A fleet run of quick tenants keeps its tallies this way,
    /// not behind one lock taken a million times.
    pub(crate) fn run<S>(
        &self,
        jobs: usize,
        stop: &(dyn Fn() -> bool + Sync),
        start: &(dyn Fn() -> S + Sync),
        work: &(dyn Fn(&mut S, usize, Found) + Sync),
        done: &(dyn Fn(S) + Sync),
    ) {
        // Under a test's fault plan (thread-local) the one worker runs on
        // this thread, so that the plan sees every step of the run.
        let open = AtomicUsize::new(0);
        if faults::plan_active() {
            let window = Window::new(self.parts, 1, &open);
            return self.worker(window, stop, start, work, done);
        }
        let workers = jobs.min(self.most).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let window = Window::new(self.parts, workers, &open);
                    scope.spawn(|| self.worker(window, stop, start, work, done))
                })
                .collect();
            // Joined, not left to the scope: the scope returns once each
            // closure has returned, while its thread may still be ending
            // (thread-local destructors, glibc's freeing of its caches),
            // and a process that exits just then can corrupt its heap
            // (an outside probe: the CLI crashed as it exited, 3 times in
            // 19,300 runs under load).
            for handle in handles {
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }

    /// One worker: takes tenants (through its `window` on the walk) until
    /// there are none or `stop` says so.
    fn worker<S>(
        &self,
        mut window: Window<'_>,
        stop: &(dyn Fn() -> bool + Sync),
        start: &(dyn Fn() -> S + Sync),
        work: &(dyn Fn(&mut S, usize, Found) + Sync),
        done: &(dyn Fn(S) + Sync),
    ) {
        let mut state = start();
        let (mut batch, mut size) = (Vec::with_capacity(BATCH), 1);
        let mut more = true;
        while !stop() {
            self.fill(&mut batch, size, &mut window, &mut more);
            let (count, started) = (batch.len() as u32, Instant::now());
            if count == 0 {
                break;
            }
            for (place, found) in batch.drain(..) {
                if stop() {
                    self.unstarted.lock().push((place, found));
                } else {
                    work(&mut state, place, found);
                }
            }
            let quick = started.elapsed() < QUICK * count;
            size = if quick { (size * 2).min(BATCH) } else { 1 };
        }
        self.set_aside(window);
        done(state);
    }

    /// Fills `batch` with up to `size` tenants and their places in the
    /// run: from the worker's `window` on the walk, topped up from the
    /// shared source while it has `more`. A directory that cannot be
    /// listed is kept as a listing error.
    fn fill(
        &self,
        batch: &mut Vec<(usize, Found)>,
        size: usize,
        window: &mut Window<'_>,
        more: &mut bool,
    ) {
        // Whether `batch` holds tenants of a window: each holds its part's
        // directory open until it is done.
        let mut walked = false;
        while batch.len() < size {
            if batch.is_empty() {
                window.retry(&mut |e| self.listing_error(e));
            }
            // A window is taken whole and walked out before the next: its
            // tenants come as one stretch of inode order. A batch takes
            // one window's tenants at most, so that a worker holds no more
            // directories open than its window has parts, however few
            // tenants each part has.
            if *more && window.is_empty() {
                if walked {
                    break;
                }
                *more = self.top_up(batch, size, window);
            }
            match window.next(&mut |e| self.listing_error(e)) {
                Some(found) => {
                    walked = true;
                    batch.push((self.place(), found));
                }
                // The batch's tenants hold directories open: done first.
                None if window.is_waiting() && !batch.is_empty() => break,
                None if !*more && window.is_empty() => break,
                // `batch` was filled by tenants that come whole, or a part
                // waits for descriptors.
                None => {}
            }
        }
    }

    /// Takes parts of the walk into `window` until it is full, and the
    /// tenants that come whole (a list's, one right in the root) into
    /// `batch` until it has `size`; `false` once the source has no more.
    /// A part is read outside the source's lock.
    fn top_up(
        &self,
        batch: &mut Vec<(usize, Found)>,
        size: usize,
        window: &mut Window<'_>,
    ) -> bool {
        while !window.is_full() && batch.len() < size {
            let piece = self.source.lock().next_piece(&self.handed);
            match piece {
                None => return false,
                Some(Ok(Piece::Tenant(place, found))) => batch.push((place, found)),
                Some(Ok(Piece::Walk(part))) => window.add(part, &mut |e| self.listing_error(e)),
                Some(Err(e)) => self.listing_error(e),
            }
        }
        true
    }

    fn listing_error(&self, e: Error) {
        self.source.lock().listing_errors.push(Arc::new(e));
    }

    fn place(&self) -> usize {
        next_place(&self.handed)
    }

    /// Keeps the rest of the parts of the walk that a stopped worker never
    /// started, for the report.
    fn set_aside(&self, rest: Window<'_>) {
        for next in rest.rest() {
            match next {
                Ok(found) => self.unstarted.lock().push((self.place(), found)),
                Err(e) => self.listing_error(e),
            }
        }
    }

    /// The tenants never started (after a stop), in report order, and the
    /// listing errors.
    pub(crate) fn finish(self) -> (Vec<TenantName>, Vec<Arc<Error>>) {
        let (walked, root, handed, owns_dir) = (self.walked, self.root, self.handed, self.owns_dir);
        let mut rest = self.unstarted.into_inner();
        let mut source = self.source.into_inner();
        let tenants: Box<dyn Iterator<Item = Result<Found>>> = match source.tenants {
            Tenants::Listed(listed) => Box::new(listed.map(Ok)),
            Tenants::Walked(walker) => Box::new(walker),
        };
        for next in tenants {
            match next {
                Ok(found) => rest.push((next_place(&handed), found)),
                Err(e) => source.listing_errors.push(Arc::new(e)),
            }
        }
        rest.retain(|(_, found)| !walked || is_listed(found, root, owns_dir));
        let rest = rest.into_iter().map(|(place, found)| (place, found.tenant));
        let skipped = in_report_order(rest.collect(), walked, |t| t);
        (skipped, source.listing_errors)
    }
}

impl Source {
    /// The next tenant of a list (its place taken from `handed` under the
    /// lock, so that places follow the list), or the next part of the walk.
    fn next_piece(&mut self, handed: &AtomicUsize) -> Option<Result<Piece>> {
        match &mut self.tenants {
            Tenants::Listed(listed) => {
                let found = listed.next()?;
                Some(Ok(Piece::Tenant(next_place(handed), found)))
            }
            Tenants::Walked(walker) => Some(walker.next_part()?.map(|part| match part {
                Part::Subtree(walker) => Piece::Walk(walker),
                Part::Found(found) => Piece::Tenant(next_place(handed), found),
            })),
        }
    }
}

/// The next place in the run (unique; in list order when taken under the
/// source's lock).
fn next_place(handed: &AtomicUsize) -> usize {
    handed.fetch_add(1, Ordering::Relaxed)
}

/// `rows` (each with its place in the run) sorted by tenant name when the
/// run walked the root, else in the caller's order.
pub(crate) fn in_report_order<T>(
    mut rows: Vec<(usize, T)>,
    walked: bool,
    tenant: impl Fn(&T) -> &TenantName,
) -> Vec<T> {
    if walked {
        rows.sort_by(|a, b| tenant(&a.1).cmp(tenant(&b.1)));
    } else {
        rows.sort_by_key(|row| row.0);
    }
    rows.into_iter().map(|(_, row)| row).collect()
}

/// Whether `tenants()` would list `found`: a database (or what cannot be
/// told apart from one), the tenant's own directory without one, or a
/// tenant a replace that died left fenced off.
fn is_listed(found: &Found, root: &Path, owns_dir: bool) -> bool {
    let at = TenantPath::new(root, &found.path, owns_dir);
    found.interrupted || may_be_database(found, root) || incomplete(&found.tenant, at).is_some()
}

/// Whether a regular file is, or may be, where `found`'s database should
/// be (what `tenants()` checks before listing a tenant). `true` when it
/// cannot be looked at (out of descriptors, say): a run that skipped such
/// a tenant would drop it without a word, whereas reading it reports why
/// it cannot be.
pub(crate) fn may_be_database(found: &Found, root: &Path) -> bool {
    !matches!(
        occupant(root, &found.path),
        Ok(Occupant::Nothing | Occupant::Other(_))
    )
}
