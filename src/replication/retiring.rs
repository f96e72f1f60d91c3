//! Idle tenants let go of on threads of their own, so that a scan of
//! `tenanted replicate` never waits for one.
//!
//! Letting go of a tenant waits for its replica (`sync -wait`: the
//! upload), which takes as long as the store does: a second, or the
//! whole 30 s timeout when the store stalls. A scan that waited for
//! every idle tenant before it registered the written ones held every
//! newly written tenant unregistered for that long, and under a backlog
//! (thousands of tenants going idle at once after a burst of writes) for
//! minutes: the RPO did not hold (review R5). Here a scan registers the
//! written tenants first, hands the idle ones to [`WORKERS`] threads, and
//! goes on; each later scan collects what was let go of.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::control::ControlSocket;
use super::tenant_files::{Signature, TenantFiles};
use crate::name::TenantName;

/// How many idle tenants are synced and let go of at once.
pub(crate) const WORKERS: usize = 8;

/// One idle tenant to let go of.
pub(crate) struct Retirement {
    pub(crate) tenant: TenantName,
    /// The root and the database's path in it.
    pub(crate) root: PathBuf,
    pub(crate) db: PathBuf,
    /// The database's path as Litestream has it.
    pub(crate) absolute: PathBuf,
    pub(crate) socket: ControlSocket,
    /// Its files as the scan that found it idle saw them.
    pub(crate) seen: Signature,
}

/// What became of a retirement.
pub(crate) enum Retired {
    /// Still registered: the sync failed, or it was written meanwhile.
    Kept,
    /// Let go of, with its files' signature when its replica was
    /// complete (`None`: written as it was let go, register it again).
    LetGo(Option<Signature>),
}

/// The retirement threads and what is in flight.
pub(crate) struct Retiring {
    jobs: Option<Sender<Retirement>>,
    done: Receiver<(TenantName, Retired)>,
    workers: Vec<JoinHandle<()>>,
    in_flight: HashSet<TenantName>,
    /// Set when the supervisor stops: queued retirements are skipped.
    cancel: Arc<AtomicBool>,
}

impl Retiring {
    /// Starts the threads.
    pub(crate) fn new() -> Retiring {
        let (jobs, queue) = channel::<Retirement>();
        let (report, done) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let cancel = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| {
                let (queue, report, cancel) =
                    (Arc::clone(&queue), report.clone(), Arc::clone(&cancel));
                std::thread::spawn(move || work(&queue, &report, &cancel))
            })
            .collect();
        Retiring {
            jobs: Some(jobs),
            done,
            workers,
            in_flight: HashSet::new(),
            cancel,
        }
    }

    /// Whether `tenant` is being let go of.
    pub(crate) fn busy(&self, tenant: &TenantName) -> bool {
        self.in_flight.contains(tenant)
    }

    /// Hands `retirement` to the threads.
    pub(crate) fn submit(&mut self, retirement: Retirement) {
        let tenant = retirement.tenant.clone();
        if let Some(jobs) = &self.jobs
            && jobs.send(retirement).is_ok()
        {
            self.in_flight.insert(tenant);
        }
    }

    /// The retirements finished since the last call.
    pub(crate) fn finished(&mut self) -> Vec<(TenantName, Retired)> {
        let done: Vec<_> = self.done.try_iter().collect();
        for (tenant, _) in &done {
            self.in_flight.remove(tenant);
        }
        done
    }

    /// Skips what is queued, waits for the retirements under way, and
    /// ends the threads.
    pub(crate) fn stop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        self.in_flight.clear();
    }
}

impl Drop for Retiring {
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(
    queue: &Mutex<Receiver<Retirement>>,
    report: &Sender<(TenantName, Retired)>,
    cancel: &AtomicBool,
) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(retirement) = next else {
            return;
        };
        let outcome = match cancel.load(Ordering::SeqCst) {
            true => Retired::Kept,
            false => retire(&retirement),
        };
        if report.send((retirement.tenant, outcome)).is_err() {
            return;
        }
    }
}

/// Syncs the tenant with `sync -wait` and, if nothing was written
/// meanwhile, lets go of it. Its files' signature is the one taken before
/// the let-go, and only if they are still so after it: a write landing
/// between Litestream's last sync and a look taken after would otherwise
/// pass for replicated, and the tenant never be registered again until
/// written once more. The checkpoint Litestream's close makes as it lets
/// go writes no new content and leaves the signature as it was (see
/// [`Signature`]'s equality): a quiet tenant is let go of for good.
fn retire(r: &Retirement) -> Retired {
    let wait = Duration::from_secs(30);
    let look = || TenantFiles::open(&r.root, &r.db).ok()?.signature();
    if r.socket.sync(&r.absolute, true, wait).is_err() {
        return Retired::Kept;
    }
    let before = look();
    if before != Some(r.seen) {
        return Retired::Kept;
    }
    if r.socket.unregister(&r.absolute, wait).is_err() {
        return Retired::Kept;
    }
    let complete = look() == before;
    Retired::LetGo(before.filter(|_| complete))
}
