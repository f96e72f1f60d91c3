//! Which pool the calling thread is making a connection for. A
//! `connection_init` hook runs while its connection is made, on a
//! connector thread or on a cold open's lead; if it asks for a connection
//! to the same tenant and none is idle, the only one that could come is
//! the one it is itself making. Such a wait is refused, not sat out until
//! `connection_timeout` (the cold open's own lead is refused earlier, by
//! its flight: see `flight.rs`).

use std::cell::Cell;

use super::pool_state::PoolState;

thread_local! {
    /// The address of the `PoolState` of the pool whose connection this
    /// thread is making (0: none). An address, only compared.
    static MAKING_FOR: Cell<usize> = const { Cell::new(0) };
}

/// While alive, this thread is making a connection for one pool; dropped,
/// it restores what was there (a hook may open another tenant, whose
/// connection is made inside this one's).
pub(super) struct SettingUp {
    previous: usize,
}

impl SettingUp {
    /// Marks this thread as making a connection for the pool of `state`.
    pub(super) fn enter(state: &PoolState) -> SettingUp {
        let address = std::ptr::from_ref(state).addr();
        SettingUp {
            previous: MAKING_FOR.replace(address),
        }
    }
}

impl Drop for SettingUp {
    fn drop(&mut self) {
        MAKING_FOR.set(self.previous);
    }
}

/// Whether this thread is making a connection for the pool of `state`.
pub(super) fn making_for(state: &PoolState) -> bool {
    MAKING_FOR.get() == std::ptr::from_ref(state).addr()
}
