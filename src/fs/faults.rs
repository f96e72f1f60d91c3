//! Injected file-system faults, for tests that fail every step of an
//! operation in turn (see `tests/fault_injection.rs`).
//!
//! A plan belongs to the thread that set it: tests run in parallel threads
//! of one process, and each must fail only its own steps. tenanted's
//! single-tenant operations run on the caller's thread, so a plan covers
//! all of their steps. Without the `testing` feature, [`check`] is empty
//! and inlined away.

/// The kinds of file-system step the seam (`sys.rs`) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum Step {
    /// Opening a file or directory.
    Open,
    /// Looking at a file (`stat`), or reading a directory.
    Stat,
    /// Reading file contents (a database's header, a migration's SQL).
    Read,
    /// Creating a file.
    Create,
    /// Making a directory.
    Mkdir,
    /// Writing file contents.
    Write,
    /// `fsync` of a file or directory.
    Sync,
    /// A hard link (publishing a new database).
    Link,
    /// A rename.
    Rename,
    /// Two names swapped in one step (`RENAME_EXCHANGE`).
    Swap,
    /// Removing a file or directory.
    Unlink,
    /// Taking a `flock`.
    Lock,
}

#[cfg(not(feature = "testing"))]
#[inline(always)]
pub(crate) fn check(_step: Step, _name: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether this thread has a fault plan: work it would hand to other
/// threads then runs on this one, so that every step is counted.
#[cfg(not(feature = "testing"))]
#[inline(always)]
pub(crate) fn plan_active() -> bool {
    false
}

/// Whether this thread's plan makes `syncfs` report no write errors, as
/// on Linux before 5.8 (see [`FaultPlan::syncfs_says_nothing`]).
#[cfg(not(feature = "testing"))]
#[inline(always)]
pub(crate) fn syncfs_silenced() -> bool {
    false
}

#[cfg(feature = "testing")]
pub(crate) use plan::{check, plan_active, syncfs_silenced};

#[cfg(feature = "testing")]
pub use plan::{FaultPlan, StepTaken};

#[cfg(feature = "testing")]
mod plan {
    use std::cell::RefCell;
    use std::io;
    use std::path::{Path, PathBuf};

    use super::Step;

    /// One step the seam took while a [`FaultPlan`] was active.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StepTaken {
        /// What kind of step.
        pub step: Step,
        /// The name it acted on (relative to its directory).
        pub name: PathBuf,
        /// Whether this step was made to fail.
        pub failed: bool,
    }

    /// What to run before a step, and which.
    type Interruption = (usize, Box<dyn FnOnce()>);

    #[derive(Default)]
    struct Active {
        fail_at: Option<(usize, i32)>,
        /// Kinds of step that always fail, each with its OS error.
        fail_every: Vec<(Step, i32)>,
        interrupt: Option<Interruption>,
        taken: Vec<StepTaken>,
        /// `syncfs` as on Linux before 5.8: no write error reported.
        silent_syncfs: bool,
    }

    thread_local! {
        static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
    }

    /// Records (and optionally fails) the file-system steps this thread
    /// takes until it is dropped.
    #[derive(Debug)]
    pub struct FaultPlan {
        _not_send: std::marker::PhantomData<*const ()>,
    }

    impl FaultPlan {
        /// Records every step, failing none.
        pub fn record() -> FaultPlan {
            Self::install(None, None)
        }

        /// Fails the `n`th step (counting from 1) with OS error `errno`
        /// (`libc::EIO`, `ENOSPC`, `EMFILE`, ...), recording every step.
        pub fn fail_step(n: usize, errno: i32) -> FaultPlan {
            Self::install(Some((n, errno)), None)
        }

        /// Runs `action` just before the `n`th step (counting from 1),
        /// failing none and recording every step: another party acting in
        /// the middle of an operation (a destroy while a backup copies).
        /// The plan is set aside while `action` runs, so its own steps are
        /// neither counted nor failed.
        pub fn interrupt_step(n: usize, action: impl FnOnce() + 'static) -> FaultPlan {
            Self::install(None, Some((n, Box::new(action))))
        }

        fn install(fail_at: Option<(usize, i32)>, interrupt: Option<Interruption>) -> FaultPlan {
            ACTIVE.with(|a| {
                *a.borrow_mut() = Some(Active {
                    fail_at,
                    fail_every: Vec::new(),
                    interrupt,
                    taken: Vec::new(),
                    silent_syncfs: false,
                });
            });
            FaultPlan {
                _not_send: std::marker::PhantomData,
            }
        }

        /// Fails every step of kind `step` as well, with OS error
        /// `errno`: a file system that cannot do it (`EINVAL` for
        /// [`Step::Swap`]). The step at the plan's own number fails with
        /// the plan's error.
        pub fn fail_every(self, step: Step, errno: i32) -> FaultPlan {
            ACTIVE.with(|a| {
                if let Some(active) = a.borrow_mut().as_mut() {
                    active.fail_every.push((step, errno));
                }
            });
            self
        }

        /// Runs as on Linux before 5.8, whose `syncfs` reports no write
        /// error (only a sync's own failure): what relies on `syncfs` to
        /// hear of one (`backup_all`) must sync each file itself.
        pub fn syncfs_says_nothing(self) -> FaultPlan {
            ACTIVE.with(|a| {
                if let Some(active) = a.borrow_mut().as_mut() {
                    active.silent_syncfs = true;
                }
            });
            self
        }

        /// The steps taken so far.
        pub fn steps(&self) -> Vec<StepTaken> {
            ACTIVE.with(|a| {
                a.borrow()
                    .as_ref()
                    .map(|a| a.taken.clone())
                    .unwrap_or_default()
            })
        }
    }

    impl Drop for FaultPlan {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.borrow_mut().take());
        }
    }

    pub(crate) fn plan_active() -> bool {
        ACTIVE.with(|a| a.borrow().is_some())
    }

    pub(crate) fn syncfs_silenced() -> bool {
        ACTIVE.with(|a| a.borrow().as_ref().is_some_and(|a| a.silent_syncfs))
    }

    pub(crate) fn check(step: Step, name: &Path) -> io::Result<()> {
        run_interruption();
        ACTIVE.with(|a| {
            let mut active = a.borrow_mut();
            let Some(active) = active.as_mut() else {
                return Ok(());
            };
            let n = active.taken.len() + 1;
            let fail = active.fail_at.filter(|&(at, _)| at == n).or_else(|| {
                let every = active.fail_every.iter().find(|&&(kind, _)| kind == step);
                every.map(|&(_, errno)| (n, errno))
            });
            active.taken.push(StepTaken {
                step,
                name: name.to_path_buf(),
                failed: fail.is_some(),
            });
            match fail {
                Some((_, errno)) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(()),
            }
        })
    }

    /// Runs the plan's interruption if the next step is its step, with the
    /// plan set aside meanwhile (see [`FaultPlan::interrupt_step`]).
    fn run_interruption() {
        let due = |a: &Active| matches!(a.interrupt, Some((at, _)) if at == a.taken.len() + 1);
        let set_aside = ACTIVE.with(|a| {
            let mut active = a.borrow_mut();
            match active.as_ref().is_some_and(due) {
                true => active.take(),
                false => None,
            }
        });
        let Some(mut active) = set_aside else {
            return;
        };
        if let Some((_, action)) = active.interrupt.take() {
            action();
        }
        ACTIVE.with(|a| *a.borrow_mut() = Some(active));
    }
}
