//! One fleet run: the [`Feed`] hands tenants to the workers, each worker
//! keeps a tally of its own ([`Tally`]), and the run reports progress,
//! stops on the caller's cancel flag (or when the operation asks), and
//! puts the rows in report order at the end.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::feed::{Feed, in_report_order};
use super::options::{FleetOptions, Progress};
use crate::crypt;
use crate::error::{Error, Result};
use crate::fs::faults;
use crate::name::TenantName;
use crate::paths::{Found, Mode, RootConfig};

/// One tenant's row in a fleet report.
pub(crate) trait Line: Send {
    /// The tenant it is about.
    fn tenant(&self) -> &TenantName;
}

/// What a fleet operation counts as its workers go: its totals, and which
/// rows its report lists.
pub(crate) trait Tally: Send {
    /// One tenant's row.
    type Row: Line;

    /// Counts `row`; whether the report lists it.
    fn count(&mut self, row: &Self::Row) -> bool;

    /// Adds another worker's totals.
    fn absorb(&mut self, other: &Self);
}

/// The tally of a run whose report lists every tenant's row and counts
/// nothing beside (a backup, a rebuild).
pub(crate) struct Lines<R>(PhantomData<R>);

impl<R> Lines<R> {
    pub(crate) fn new() -> Self {
        Lines(PhantomData)
    }
}

impl<R: Line> Tally for Lines<R> {
    type Row = R;

    fn count(&mut self, _: &R) -> bool {
        true
    }

    fn absorb(&mut self, _: &Self) {}
}

/// A run in progress, shared by its workers.
pub(crate) struct Run<'a> {
    feed: Feed<'a>,
    options: &'a FleetOptions,
    /// Tenants in the run, counted before it starts (only for progress).
    total: usize,
    done: AtomicUsize,
    stop: AtomicBool,
}

impl Run<'_> {
    /// The root directory, every tenant's path reached from it.
    pub(crate) fn root(&self) -> &Path {
        self.feed.root
    }

    /// Whether the tenants come from the walk (not the caller's list).
    pub(crate) fn walked(&self) -> bool {
        self.feed.walked
    }

    /// Tells the progress callback that `tenant` is done.
    pub(crate) fn progress(&self, tenant: &TenantName, ok: bool) {
        if let Some(progress) = &self.options.progress {
            let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            progress(&Progress {
                done,
                // Tenants created since the count was taken are counted in.
                total: self.total.max(done),
                tenant: tenant.clone(),
                ok,
            });
        }
    }

    /// Starts no more tenants (`fail_fast`).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.options.cancelled()
    }
}

/// What a finished run found: the operation's tally, the rows it lists in
/// report order, and what every fleet report says besides.
pub(crate) struct Finished<T: Tally> {
    pub(crate) tally: T,
    pub(crate) rows: Vec<T::Row>,
    /// Tenants not started (a cancel, `fail_fast`).
    pub(crate) skipped: Vec<TenantName>,
    /// Whether the caller's cancel flag stopped the run.
    pub(crate) cancelled: bool,
    /// Whether the operation stopped the run ([`Run::stop`]) before every
    /// tenant was started, and no cancel did.
    pub(crate) stopped: bool,
    /// Directories of the root that could not be read.
    pub(crate) listing_errors: Vec<Arc<Error>>,
    pub(crate) duration: Duration,
}

impl<'a> Run<'a> {
    /// A run over every tenant of `root` (or `options.only`): the names
    /// checked, the walk started, and, for progress, the tenants counted.
    ///
    /// # Errors
    ///
    /// A bad name in `only`, a bad template, a root that cannot be walked;
    /// a key provider that cannot open the root's keys (see
    /// `KeyProvider::check_root_keys`).
    pub(crate) fn new(root: &'a RootConfig, options: &'a FleetOptions) -> Result<Self> {
        crypt::check_root_keys(root.root_dir())?;
        let only = options.only.as_deref();
        let feed = Feed::new(root, only)?;
        let total = match options.progress {
            Some(_) => fleet_size(root, only)?,
            None => 0,
        };
        Ok(Run::of(feed, options, total))
    }

    /// As [`Run::new`], but the root's tenants are listed whole first and
    /// taken in name order (as `options.only` is taken in its order): for
    /// an operation whose report lists every tenant anyway, and whose
    /// callers see the tenants go by in order (`backup_all`).
    ///
    /// # Errors
    ///
    /// As [`Run::new`].
    pub(crate) fn in_order(root: &'a RootConfig, options: &'a FleetOptions) -> Result<Self> {
        if options.only.is_some() {
            return Run::new(root, options);
        }
        crypt::check_root_keys(root.root_dir())?;
        let (mut list, mut errors) = (Vec::new(), Vec::new());
        // The fleet run's walk (`Mode::Candidates`), which lists a tenant
        // whose destroy is still running (its read waits for the destroy
        // to decide); strays are listing errors, as in every run's walk.
        for found in root.walk(Mode::Candidates)?.reporting_strays() {
            // The walk's path, without its open directory: the list is
            // held whole, and keeping them would hold every bucket's
            // directory open for the whole run.
            match found.map(|f| Found { below: None, ..f }) {
                Ok(found) => list.push(found),
                Err(e) => errors.push(Arc::new(e)),
            }
        }
        list.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        let total = list.len();
        Ok(Run::of(
            Feed::listed(root.root_dir(), list, errors),
            options,
            total,
        ))
    }

    /// A run over the caller's `list` (tenants that are not the root's,
    /// such as a replica's), in its order; `root` is what
    /// [`Run::root`] gives the work.
    pub(crate) fn over(root: &'a Path, list: Vec<Found>, options: &'a FleetOptions) -> Self {
        let total = list.len();
        Run::of(Feed::listed(root, list, Vec::new()), options, total)
    }

    fn of(feed: Feed<'a>, options: &'a FleetOptions, total: usize) -> Self {
        Run {
            feed,
            options,
            total,
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Runs `work` on every tenant on `options.jobs` threads, each worker
    /// tallying into a `T` of its own made by `new`; `work` returns the
    /// tenant's row, or `None` for a walked candidate that is no tenant.
    pub(crate) fn each<T: Tally>(
        self,
        new: impl Fn() -> T + Sync,
        work: impl Fn(&Run<'_>, Found) -> Option<T::Row> + Sync,
    ) -> Finished<T> {
        let started = Instant::now();
        let all = Mutex::new((new(), Vec::new()));
        let start = || (new(), Vec::new());
        let step = |(tally, rows): &mut (T, Vec<(usize, T::Row)>), place, found| {
            if let Some(row) = work(&self, found) {
                keep(tally, rows, (place, row));
            }
        };
        let done = |(tally, rows): (T, Vec<(usize, T::Row)>)| absorb(&all, tally, rows);
        let jobs = self.options.jobs;
        self.feed
            .run(jobs, &|| self.should_stop(), &start, &step, &done);
        self.finished(started, all.into_inner())
    }

    /// As [`Run::each`], for work done in two steps: `begin` starts a
    /// tenant's work and gives it back unfinished ([`Begun::Unfinished`])
    /// or its row at once; `finish` ends up to `window` unfinished ones
    /// together (a backup syncs their copies at once), each keeping its
    /// place in the run, and gives their rows. `open` makes what a window
    /// shares, before its first tenant is begun (a backup's descriptor to
    /// sync through, which must predate the window's writes), and
    /// `finish` is given it. A full window is finished on a thread of its
    /// own while its worker begins the next one (a backup copies while
    /// the last copies sync), one window in flight per worker (its thread
    /// may still be ending when the next starts); where no thread can be
    /// had, the worker finishes it. A worker finishes what it holds before
    /// it stops, so every tenant begun has its row.
    pub(crate) fn each_windowed<T: Tally, W: Send, U: Send>(
        self,
        new: impl Fn() -> T + Sync,
        (window, open): (usize, impl Fn() -> W + Sync),
        begin: impl Fn(&Run<'_>, Found) -> Option<Begun<U, T::Row>> + Sync,
        finish: impl Fn(&Run<'_>, W, Vec<(usize, U)>) -> Vec<(usize, T::Row)> + Sync,
    ) -> Finished<T> {
        let started = Instant::now();
        let all = Mutex::new((new(), Vec::new()));
        // Under a test's fault plan (thread-local) a window is finished on
        // its worker's thread, so that the plan sees it (see `Feed::run`).
        let in_turn = faults::plan_active();
        std::thread::scope(|scope| {
            let finishing = Finishing {
                run: &self,
                finish: &finish,
                scope: (!in_turn).then_some(scope),
                threads: Mutex::new(Vec::new()),
            };
            let start = || Windowed {
                tally: new(),
                rows: Vec::new(),
                window: None,
                finishing: None,
            };
            let step = |worker: &mut Windowed<T, W, U>, place, found| {
                // Opened before the window's first tenant is begun.
                let (_, held) =
                    (worker.window).get_or_insert_with(|| (open(), Vec::with_capacity(window)));
                match begin(&self, found) {
                    None => {}
                    Some(Begun::Done(row)) => {
                        keep(&mut worker.tally, &mut worker.rows, (place, row))
                    }
                    Some(Begun::Unfinished(work)) => {
                        held.push((place, work));
                        if held.len() >= window {
                            finishing.flush(worker);
                        }
                    }
                }
            };
            let done = |mut worker: Windowed<T, W, U>| {
                finishing.flush(&mut worker);
                worker.settle();
                absorb(&all, worker.tally, worker.rows);
            };
            let jobs = self.options.jobs;
            self.feed
                .run(jobs, &|| self.should_stop(), &start, &step, &done);
            finishing.join_threads(|_| true);
        });
        self.finished(started, all.into_inner())
    }

    /// The run's report, once every worker is done.
    fn finished<T: Tally>(
        self,
        started: Instant,
        (tally, rows): (T, Vec<(usize, T::Row)>),
    ) -> Finished<T> {
        let rows = in_report_order(rows, self.feed.walked, Line::tenant);
        let cancelled = self.options.cancelled();
        let stopped = self.stop.load(Ordering::SeqCst);
        let (skipped, listing_errors) = self.feed.finish();
        Finished {
            tally,
            rows,
            cancelled: cancelled && !skipped.is_empty(),
            stopped: stopped && !cancelled && !skipped.is_empty(),
            skipped,
            listing_errors,
            duration: started.elapsed(),
        }
    }
}

/// A worker of [`Run::each_windowed`]: its tally and rows, its open
/// window (what the window shares, with the tenants begun in it and not
/// finished), and the rows of the window before, being finished on a
/// thread of its own while this one's tenants are begun.
struct Windowed<T: Tally, W, U> {
    tally: T,
    rows: Vec<(usize, T::Row)>,
    window: Option<(W, Vec<(usize, U)>)>,
    finishing: Option<Receiver<WindowRows<T>>>,
}

/// A window's rows, or the panic its thread met.
type WindowRows<T> = std::thread::Result<Placed<T>>;

impl<T: Tally, W, U> Windowed<T, W, U> {
    /// Waits for the window being finished, and keeps its rows; a panic
    /// met finishing it goes on in this worker, as it would have had the
    /// worker finished the window itself.
    fn settle(&mut self) {
        match self.finishing.take().map(|f| f.recv()) {
            None => {}
            Some(Ok(Ok(rows))) => self.keep_all(rows),
            Some(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            // Its thread sends before it ends, unwound or not.
            Some(Err(_)) => {}
        }
    }

    fn keep_all(&mut self, rows: Placed<T>) {
        for row in rows {
            keep(&mut self.tally, &mut self.rows, row);
        }
    }
}

/// How [`Run::each_windowed`] finishes a full window: on a thread of the
/// run's `scope` (so that its worker begins the next window meanwhile: a
/// backup copies while the last copies sync), one window at a time per
/// worker; or, without a scope, on the worker's own thread.
struct Finishing<'a, 'scope, 'env, F> {
    run: &'a Run<'a>,
    finish: &'a F,
    scope: Option<&'scope Scope<'scope, 'env>>,
    /// The threads started to finish windows, not yet joined.
    threads: Mutex<Vec<ScopedJoinHandle<'scope, ()>>>,
}

impl<'a: 'scope, 'scope, 'env, F: Sync> Finishing<'a, 'scope, 'env, F> {
    /// Joins the threads `which` picks (the run's last step: all of them).
    /// Joined, not left to the scope: the scope returns once each closure
    /// has returned, while its thread may still be ending, and a process
    /// that exits just then can corrupt its heap (see `Feed::run`).
    fn join_threads(&self, which: impl Fn(&ScopedJoinHandle<'scope, ()>) -> bool) {
        let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *self.threads.lock())
            .into_iter()
            .partition(which);
        self.threads.lock().extend(running);
        for thread in ended {
            // Its panic, caught, went to its worker with the rows.
            let _ = thread.join();
        }
    }

    /// Finishes `worker`'s open window, once the window before it is.
    fn flush<T: Tally, W: Send + 'scope, U: Send + 'scope>(&self, worker: &mut Windowed<T, W, U>)
    where
        F: Fn(&Run<'_>, W, Vec<(usize, U)>) -> Vec<(usize, T::Row)>,
        T::Row: 'scope,
    {
        let Some((shared, held)) = worker.window.take() else {
            return;
        };
        if held.is_empty() {
            return;
        }
        worker.settle();
        let (run, finish) = (self.run, self.finish);
        let Some(scope) = self.scope else {
            return worker.keep_all(finish(run, shared, held));
        };
        // Taken back if no thread can be had: the worker finishes it.
        let work = Arc::new(Mutex::new(Some((shared, held))));
        let theirs = Arc::clone(&work);
        let (rows, finishing) = sync_channel(1);
        let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
            let Some((shared, held)) = theirs.lock().take() else {
                return;
            };
            let finished = std::panic::catch_unwind(AssertUnwindSafe(|| finish(run, shared, held)));
            let _ = rows.send(finished);
        });
        match spawned {
            Ok(thread) => {
                worker.finishing = Some(finishing);
                // Those done with their windows, so that the list stays
                // as short as the run's workers.
                self.join_threads(ScopedJoinHandle::is_finished);
                self.threads.lock().push(thread);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to finish a window; finishing it on the worker's");
                if let Some((shared, held)) = work.lock().take() {
                    worker.keep_all(finish(run, shared, held));
                }
            }
        }
    }
}

/// What [`Run::each_windowed`]'s first step made of a tenant.
pub(crate) enum Begun<U, R> {
    /// Its row, at once (it failed, or needs no second step).
    Done(R),
    /// Work for the second step.
    Unfinished(U),
}

/// Counts `row` into a worker's tally, and keeps it if the report lists it.
fn keep<T: Tally>(tally: &mut T, rows: &mut Vec<(usize, T::Row)>, (place, row): (usize, T::Row)) {
    if tally.count(&row) {
        rows.push((place, row));
    }
}

/// Rows, each with its place in the run.
type Placed<T> = Vec<(usize, <T as Tally>::Row)>;

/// A tally and the rows it keeps, each with its place in the run.
type Gathered<T> = (T, Placed<T>);

/// Adds a finished worker's tally and rows to the run's.
fn absorb<T: Tally>(all: &Mutex<Gathered<T>>, tally: T, rows: Placed<T>) {
    let mut all = all.lock();
    all.0.absorb(&tally);
    all.1.extend(rows);
}

/// How many tenants a run has, for progress: the caller's list, or one
/// more walk of the root (only a run that reports progress pays for it),
/// the run's own kind of walk (a tenant whose destroy still runs is one
/// the run waits for). Its stray entries are not warned about: the run
/// reports them.
fn fleet_size(root: &RootConfig, only: Option<&[String]>) -> Result<usize> {
    match only {
        Some(names) => Ok(names.len()),
        None => Ok((root.walk(Mode::Candidates)?.reporting_strays())
            .filter(|t| t.is_ok())
            .count()),
    }
}
