//! Lock-usage validator (lockdep-style, much smaller): each lock class remembers one site where
//! it was taken with interrupts enabled and one where it was taken in interrupt/exception
//! context. Having both is a deadlock waiting to happen (the 2003 bug); the first time it is
//! seen, the validator prints both sites. On in debug and test builds, compiled out in release.

use super::ptlock::LockClass;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub static INVERSIONS: AtomicU64 = AtomicU64::new(0);
/// While set, an inversion is counted in EXPECTED instead of reported, and forgotten (tests
/// that exercise the locked design on purpose).
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static EXPECTED: AtomicU64 = AtomicU64::new(0);

/// Runs `f`, which is expected to produce an inconsistent usage of `class`; returns f's result
/// and whether the validator saw it (always false when the validator is compiled out). The
/// class forgets the interrupt-context site afterwards, so later code is judged on its own.
pub fn expecting<R>(class: &LockClass, f: impl FnOnce() -> R) -> (R, bool) {
    let before = EXPECTED.load(Relaxed);
    QUIET.store(true, Relaxed);
    let r = f();
    QUIET.store(false, Relaxed);
    class.in_irq_site.store(0, Relaxed);
    (r, EXPECTED.load(Relaxed) > before)
}

#[inline(always)]
pub fn acquire(class: &LockClass, name: &str, site: &'static Location<'static>) {
    if cfg!(debug_assertions) || cfg!(test) {
        check(class, name, site)
    }
}

fn check(class: &LockClass, name: &str, site: &'static Location<'static>) {
    let in_irq = crate::arch::ppc64::percpu::exception_depth() > 0;
    let irqs_on = crate::arch::ppc64::irq::enabled();
    let p = site as *const Location as usize;
    if in_irq {
        let _ = class.in_irq_site.compare_exchange(0, p, Relaxed, Relaxed);
    } else if irqs_on {
        let _ = class.irqs_on_site.compare_exchange(0, p, Relaxed, Relaxed);
    }
    let (a, b) = (class.irqs_on_site.load(Relaxed), class.in_irq_site.load(Relaxed));
    if a != 0 && b != 0 && QUIET.load(Relaxed) {
        EXPECTED.fetch_add(1, Relaxed);
        return;
    }
    if a != 0 && b != 0 && !class.reported.swap(true, Relaxed) {
        INVERSIONS.fetch_add(1, Relaxed);
        // SAFETY: both words hold `&'static Location`s stored above.
        let (a, b) = unsafe { (&*(a as *const Location), &*(b as *const Location)) };
        crate::println!("lockdep: inconsistent lock usage: '{}' is taken with interrupts enabled", name);
        crate::println!("lockdep:   at {}:{}", a.file(), a.line());
        crate::println!("lockdep: and in interrupt/exception context");
        crate::println!("lockdep:   at {}:{}", b.file(), b.line());
        crate::println!("lockdep: an interrupt arriving while the first holds it deadlocks this CPU");
    }
}

/// Whether the validator runs in this build.
pub const ENABLED: bool = cfg!(debug_assertions) || cfg!(test);
