//! The page-table lock, as in 2003: a plain spin lock that does NOT mask interrupts (that is the
//! scenario this project exists for — do not "fix" it here). It records who holds it (CPU,
//! context, call site) so a deadlock report can name the holder, and it feeds the lock-usage
//! validator (lockdep-style: taken with interrupts on *and* taken in interrupt context = bug).

use crate::arch::ppc64::{insn, percpu};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

const FREE: u64 = 0;

/// `repr(C)`, `state`, `site` and `name` first: a trace point and the watchdog pass only the
/// lock's address, and read who holds it, from where and the lock's name through `LockHead`,
/// whatever `T` is. (The fields stay the lock's own rather than a nested head: the fault path
/// under `hash_page=locked` takes this lock, and a nested head cost it 4 instructions.)
#[repr(C)]
pub struct PtLock<T> {
    /// 0 free; else (cpu + 1) | depth << 16: who holds it and in which context.
    state: AtomicU64,
    /// The `&'static Location` of the holder's `lock()` call (0: none or `try_lock`).
    site: AtomicUsize,
    pub name: &'static str,
    pub class: LockClass,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached through a guard, which exists only while `state` is ours.
unsafe impl<T: Send> Sync for PtLock<T> {}

/// The first fields of every `PtLock<T>`, whatever its `T` (both are `repr(C)`).
#[repr(C)]
pub struct LockHead {
    pub state: AtomicU64,
    pub site: AtomicUsize,
    pub name: &'static str,
}

impl LockHead {
    /// The head of the lock at `addr` (a trace point's value, a CPU's `spinning_on`).
    ///
    /// # Safety
    /// `addr` must be the address of a live `PtLock<T>`.
    pub unsafe fn at<'a>(addr: u64) -> &'a LockHead {
        // SAFETY: delegated; a PtLock<T> starts with the three fields of LockHead (repr(C)).
        unsafe { &*(addr as *const LockHead) }
    }

    pub fn holder(&self) -> Option<Holder> {
        holder_of(self.state.load(Relaxed), self.site.load(Relaxed))
    }
}

fn holder_of(state: u64, site: usize) -> Option<Holder> {
    if state == FREE {
        return None;
    }
    Some(Holder {
        cpu: (state & 0xffff) - 1,
        depth: state >> 16,
        // SAFETY: `site` only ever holds a `&'static Location` stored by `lock`.
        site: if site == 0 { None } else { Some(unsafe { &*(site as *const Location<'static>) }) },
    })
}

/// Lock-usage validator state for one lock class.
pub struct LockClass {
    pub irqs_on_site: AtomicUsize,
    pub in_irq_site: AtomicUsize,
    pub reported: AtomicBool,
}

impl LockClass {
    pub const fn new() -> Self {
        LockClass {
            irqs_on_site: AtomicUsize::new(0),
            in_irq_site: AtomicUsize::new(0),
            reported: AtomicBool::new(false),
        }
    }
}

impl Default for LockClass {
    fn default() -> Self {
        Self::new()
    }
}

pub struct PtGuard<'a, T> {
    lock: &'a PtLock<T>,
}

/// Who holds a lock, for reports.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    pub cpu: u64,
    pub depth: u64,
    pub site: Option<&'static Location<'static>>,
}

impl<T> PtLock<T> {
    pub const fn new(name: &'static str, v: T) -> Self {
        PtLock {
            name,
            state: AtomicU64::new(FREE),
            site: AtomicUsize::new(0),
            class: LockClass::new(),
            data: UnsafeCell::new(v),
        }
    }

    fn me() -> u64 {
        let p = percpu::this();
        (p.cpu.load(Relaxed) + 1) | (percpu::exception_depth() << 16)
    }

    #[track_caller]
    pub fn lock(&self) -> PtGuard<'_, T> {
        let site = Location::caller();
        crate::sync::lockdep::acquire(&self.class, self.name, site);
        let me = Self::me();
        if self.state.compare_exchange(FREE, me, Acquire, Relaxed).is_err() {
            let p = percpu::this();
            let addr = self as *const Self as *const u8 as u64;
            crate::trace_point!(crate::trace::code(crate::trace::Event::LockContended, 0), addr);
            p.spinning_on.store(addr, Relaxed);
            let start = insn::mftb();
            loop {
                while self.state.load(Relaxed) != FREE {
                    insn::cpu_relax();
                    crate::sync::watchdog::spinning(addr, start, self.holder());
                }
                if self.state.compare_exchange_weak(FREE, me, Acquire, Relaxed).is_ok() {
                    break;
                }
            }
            p.spinning_on.store(0, Relaxed);
        }
        self.site.store(site as *const Location as usize, Relaxed);
        crate::trace_point!(crate::trace::code(crate::trace::Event::LockAcquire, 0), self as *const Self);
        PtGuard { lock: self }
    }

    pub fn try_lock(&self) -> Option<PtGuard<'_, T>> {
        if self.state.compare_exchange(FREE, Self::me(), Acquire, Relaxed).is_ok() {
            crate::trace_point!(crate::trace::code(crate::trace::Event::LockAcquire, 0), self as *const Self);
            Some(PtGuard { lock: self })
        } else {
            None
        }
    }

    pub fn holder(&self) -> Option<Holder> {
        holder_of(self.state.load(Relaxed), self.site.load(Relaxed))
    }

    pub fn is_locked(&self) -> bool {
        self.state.load(Relaxed) != FREE
    }
}

impl<T> Deref for PtGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for PtGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for PtGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.site.store(0, Relaxed);
        self.lock.state.store(FREE, Release);
        crate::trace_point!(crate::trace::code(crate::trace::Event::LockRelease, 0), self.lock as *const PtLock<T>);
    }
}

// `LockHead::at` reads these three fields of any `PtLock<T>` through its address.
const _: () = {
    use core::mem::offset_of;
    type P = PtLock<()>;
    assert!(offset_of!(P, state) == offset_of!(LockHead, state));
    assert!(offset_of!(P, site) == offset_of!(LockHead, site));
    assert!(offset_of!(P, name) == offset_of!(LockHead, name));
};
