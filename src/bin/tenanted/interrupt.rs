//! Ctrl-C (and SIGTERM, SIGHUP): the first lets the work in hand finish
//! and starts no more; a second exits at once.

use crate::output::errln;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code of an interrupted run, as shells report SIGINT.
pub const INTERRUPTED: u8 = 130;

/// For runs over many tenants at once: the first Ctrl-C sets the flag
/// (running tenants finish, no new one starts).
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    on_ctrl_c(
        "interrupted: letting running tenants finish, starting no more (Ctrl-C again to abort)",
    )
}

/// For operations that fence a tenant off (destroy, restore, re-key),
/// one tenant at a time: the first Ctrl-C sets the flag and the tenant
/// in hand is finished, since an operation stopped half way leaves its
/// tenant fenced off until something finishes it.
pub fn finish_the_tenant_in_hand_on_ctrl_c() -> Arc<AtomicBool> {
    on_ctrl_c(
        "interrupted: finishing the tenant in hand, starting no other (Ctrl-C again to abort: the tenant may then stay fenced off until `tenanted cleanup`, or after a restore or re-key its next checkout)",
    )
}

/// Whether Ctrl-C was pressed.
pub fn was_interrupted(flag: &AtomicBool) -> bool {
    flag.load(Ordering::SeqCst)
}

/// The exit code of a command that would exit `code`: [`INTERRUPTED`]
/// once Ctrl-C was pressed.
pub fn unless_interrupted(flag: &AtomicBool, code: u8) -> u8 {
    match was_interrupted(flag) {
        true => INTERRUPTED,
        false => code,
    }
}

fn on_ctrl_c(said: &'static str) -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(INTERRUPTED));
        }
        errln!("{said}");
    });
    if let Err(e) = installed {
        tracing::warn!(error = %e, "cannot handle Ctrl-C; it will stop the run abruptly");
    }
    cancel
}
