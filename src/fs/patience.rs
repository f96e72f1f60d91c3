//! Bounded waits on other processes.
//!
//! A wait on another process (a tenant's lock, the open gate, a destroy's
//! fence) never blocks in the kernel: a process stopped (SIGSTOP, a
//! debugger) or merely slow while it holds what we wait for would hold us
//! too, with no limit. Instead each wait repeats a non-blocking attempt
//! (`flock(LOCK_NB)`, `F_GETLK`) with short sleeps that double from 1 ms
//! up to 20 ms, until the operation's own deadline, measured from its
//! call; then it ends in `TenantBusy` (see `busy.rs`) saying what it
//! waited for and for how long.

use std::io;
use std::time::{Duration, Instant};

/// The first pause between attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause: how late a waiter may notice a release.
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

/// How long an operation may still wait, from its call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    started: Instant,
    deadline: Instant,
}

thread_local! {
    /// The patience of the operation this thread is in, if one set it
    /// (see [`Patience::scoped`]).
    static CURRENT: std::cell::Cell<Option<Patience>> = const { std::cell::Cell::new(None) };
}

/// The thread's current patience while it lives (see [`Patience::scoped`]).
#[derive(Debug)]
pub(crate) struct Scoped {
    /// Whether this guard set it (the outermost one does; it clears it).
    set: bool,
    /// Tied to the thread whose current patience it set.
    _here: std::marker::PhantomData<*const ()>,
}

impl Drop for Scoped {
    fn drop(&mut self) {
        if self.set {
            CURRENT.with(|c| c.set(None));
        }
    }
}

impl Patience {
    /// Makes this the thread's current patience until the guard drops,
    /// unless an outer operation set one: waits deep beneath an operation
    /// that are given no patience of their own (a key provider's lock of
    /// the keys directory) then end with the operation's deadline.
    pub(crate) fn scoped(&self) -> Scoped {
        let set = CURRENT.with(|c| match c.get() {
            Some(_) => false,
            None => {
                c.set(Some(*self));
                true
            }
        });
        Scoped {
            set,
            _here: std::marker::PhantomData,
        }
    }

    /// The thread's current patience (see [`scoped`](Self::scoped)), or a
    /// wait of `timeout` from now.
    // Its one caller, the keys directory's lock, is the `encryption`
    // feature's.
    #[cfg_attr(not(feature = "encryption"), allow(dead_code))]
    pub(crate) fn current_or(timeout: Duration) -> Patience {
        CURRENT
            .with(|c| c.get())
            .unwrap_or_else(|| Patience::new(timeout))
    }

    /// A wait of at most `timeout` from now.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self::since(Instant::now(), timeout)
    }

    /// A wait that ends `timeout` after `started` (the operation's call).
    pub(crate) fn since(started: Instant, timeout: Duration) -> Self {
        let deadline = started.checked_add(timeout).unwrap_or_else(far_future);
        Patience { started, deadline }
    }

    /// When the operation started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// When waiting must stop.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How long the operation has waited so far.
    pub(crate) fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs `attempt` until it gives `Some`, sleeping a little longer each
    /// time, at least once and never past the deadline: `Ok(None)` once
    /// the deadline has passed.
    ///
    /// # Errors
    ///
    /// The first error of `attempt`.
    pub(crate) fn retry<T>(
        &self,
        mut attempt: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(done) = attempt()? {
                return Ok(Some(done));
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(self.deadline - now));
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

/// A deadline no wait reaches (a timeout of `Duration::MAX`).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_done_or_the_deadline() {
        let patience = Patience::new(Duration::from_millis(30));
        let mut tries = 0;
        let done = patience.retry(|| {
            tries += 1;
            Ok((tries == 3).then_some(tries))
        });
        assert_eq!(done.unwrap(), Some(3));
        let never = patience.retry(|| Ok(None::<()>)).unwrap();
        assert!(never.is_none());
        assert!(patience.waited() >= Duration::from_millis(30));
        // Sleeps that double: a 30 ms wait takes a handful of attempts.
        let mut attempts = 0;
        Patience::new(Duration::from_millis(30))
            .retry(|| {
                attempts += 1;
                Ok(None::<()>)
            })
            .unwrap();
        assert!((2..=12).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn an_expired_wait_still_tries_once() {
        let patience = Patience::new(Duration::ZERO);
        assert_eq!(patience.retry(|| Ok(Some(1))).unwrap(), Some(1));
        let unbounded = Patience::new(Duration::MAX);
        assert!(unbounded.deadline() > Instant::now());
    }
}
