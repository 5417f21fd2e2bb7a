//! Synchronisation: interrupt masking and interrupt-safe locks. The page-table lock is not
//! here on purpose: it is the 2003 `page_table_lock`, taken with interrupts enabled (mm/).
pub mod lockdep;
pub mod ptlock;
pub mod watchdog;

pub use ptlock::PtLock;

use crate::arch::ppc64::irq;

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering::*};

/// A spin lock that masks interrupts on this CPU while held, so an interrupt handler that
/// takes it cannot deadlock against the code it interrupted.
pub struct IrqSpin<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `locked`.
unsafe impl<T: Send> Sync for IrqSpin<T> {}

pub struct IrqSpinGuard<'a, T> {
    lock: &'a IrqSpin<T>,
    irq_was_on: bool,
}

impl<T> IrqSpin<T> {
    pub const fn new(v: T) -> Self {
        IrqSpin { locked: AtomicBool::new(false), data: UnsafeCell::new(v) }
    }

    pub fn lock(&self) -> IrqSpinGuard<'_, T> {
        let irq_was_on = irq::save_disable();
        while self.locked.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
            while self.locked.load(Relaxed) {
                crate::arch::ppc64::insn::cpu_relax();
            }
        }
        IrqSpinGuard { lock: self, irq_was_on }
    }
}

impl<T> Deref for IrqSpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqSpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqSpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Release);
        irq::restore(self.irq_was_on);
    }
}
