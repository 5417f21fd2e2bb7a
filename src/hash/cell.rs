//! The atomic PTE update, the only way any code changes a PTE.
//!
//! `take` is hash_page's single atomic step: in one `ldarx`/`stdcx.` loop it checks BUSY, checks
//! the access against the PTE, and sets BUSY|ACCESSED(|DIRTY) — so the permission check and
//! taking the bit-lock cannot be separated by another CPU's update. `update` is the primitive
//! for every other writer (map, clear-and-flush): it waits while BUSY is held, so it can never
//! slip between hash_page's two PTE writes (the objection in the 2003 review). `publish` is the
//! BUSY holder's final store, with release ordering.
//!
//! ppc64: inline asm on the PTE word. Host: a portable version over any `Atomic64` (core's
//! AtomicU64 for unit tests, loom's for the model check) that follows the same decision
//! function, `access::decide`.

use super::access::{decide, Access, Step};
use crate::mm::pte::{Pte, PteFlags};

/// Result of hash_page's atomic step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// BUSY was set by us; `old` is the value we replaced.
    Taken { old: Pte, new: Pte },
    /// Someone else holds BUSY: change nothing, re-execute the access.
    Busy,
    /// The access is not allowed: nothing was written.
    Denied(Pte),
    /// The reservation was lost (the PTE changed between ldarx and stdcx.): nothing was
    /// written; re-execute the access, which takes a fresh look.
    Lost,
}

pub trait PteCell {
    fn load(&self) -> Pte;
    /// hash_page's atomic check-and-take: one attempt. On BUSY or a denial the ppc64 version
    /// leaves its reservation on the PTE word in place: every exception exit clears any
    /// reservation (`stdcx.` in boot/vectors.S, as Linux does), and every `stdcx.` in the
    /// kernel follows its own `ldarx`, so a leftover reservation cannot complete anything.
    fn take(&self, access: Access) -> Take;
    /// Final store by the BUSY holder (release: the HPTE work happens-before the new PTE).
    fn publish(&self, v: Pte);
    /// `new = f(old)` atomically, waiting while BUSY is set; returns the old value.
    /// `spins` counts BUSY waits.
    fn update(&self, clr: u64, set: u64, spins: &mut u64) -> Pte;
    /// Compare-and-swap (strong, acquire and release): the designs without BUSY
    /// (`hash::design`) take and record with it. Err: the value found instead.
    fn cas(&self, old: Pte, new: Pte) -> Result<(), Pte>;
}

#[cfg(target_os = "none")]
mod ppc64 {
    use super::*;
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// A page-table entry in memory.
    #[repr(transparent)]
    pub struct PteSlot(pub AtomicU64);

    impl PteSlot {
        pub const fn new() -> PteSlot {
            PteSlot(AtomicU64::new(0))
        }
    }

    impl Default for PteSlot {
        fn default() -> Self {
            Self::new()
        }
    }

    const BUSY: u64 = PteFlags::BUSY.bits();
    const TAKE: u32 = crate::trace::code(crate::trace::Event::PteTake, 0);
    const PUBLISH: u32 = crate::trace::code(crate::trace::Event::PtePublish, 0);

    /// hash_page's atomic step. `$check` sets CR0 non-zero when the reserved value `{old}`
    /// lacks a bit of `need` (for a fetch, in `old ^ GUARDED`, so a GUARDED page is refused).
    /// Falls through with (old, new) when taken; BUSY and a denial leave through the labels.
    macro_rules! take_asm {
        ($cell:expr, $need:expr, $set:expr, $lost:block, $busy:block, $denied:block, [$($check:literal),+] $(, $extra:ident = $op:ident($cls:ident) $val:expr)?) => {{
            let (old, new): (u64, u64);
            // SAFETY: the cell is an aligned 8-byte PTE word (ldarx/stdcx. need natural
            // alignment). The asm writes the PTE only with stdcx. of `old | set` after both
            // checks passed on the reserved value; BUSY and a denial leave with the reservation
            // still held (see `PteCell::take`). `isync` after a successful stdcx. gives the
            // acquire ordering of a lock. The trace point after it (a `nop` unless hash_page is
            // traced) preserves every register (trace::site).
            unsafe {
                asm!(
                    "ldarx {old}, 0, {p}",
                    "andi. {t}, {old}, {busybit}",
                    "bne- {busy}",
                    $($check,)+
                    "bne- {denied}",
                    "or {new}, {old}, {set}",
                    "stdcx. {new}, 0, {p}",
                    "bne- {lost}",
                    "isync",
                    crate::trace_site_asm!("t_hi", "t_lo", "{p}", "{old}", "{new}"),
                    p = in(reg_nonzero) &$cell.0 as *const AtomicU64,
                    need = in(reg) $need,
                    set = in(reg) $set,
                    $($extra = $op($cls) $val,)?
                    busybit = const BUSY,
                    t_hi = const TAKE >> 16,
                    t_lo = const TAKE & 0xffff,
                    old = out(reg) old,
                    new = out(reg) new,
                    t = out(reg) _,
                    lost = label $lost,
                    busy = label $busy,
                    denied = label $denied,
                    out("cr0") _,
                    options(nostack),
                )
            };
            (old, new)
        }};
    }

    impl PteCell for PteSlot {
        #[inline(always)]
        fn load(&self) -> Pte {
            Pte(self.0.load(Ordering::Relaxed))
        }

        #[inline(always)]
        fn take(&self, access: Access) -> Take {
            let need = access.bits();
            // DIRTY only for stores: RW in the access selects it (branch-free: RW >> 2 is DIRTY).
            const _: () = assert!(PteFlags::RW.bits() >> 2 == PteFlags::DIRTY.bits());
            let set = BUSY | PteFlags::ACCESSED.bits() | (need & PteFlags::RW.bits()) >> 2;
            // BUSY and denials are rare and read the value again for the caller (only the
            // taken path needs the exact reserved value).
            let (old, new) = if access.contains(Access::EXEC) {
                // A fetch also needs GUARDED clear: test it as a needed bit of `old ^ GUARDED`.
                // Data faults (the hot path) never ask: no xor for them.
                let need = need | PteFlags::GUARDED.bits();
                take_asm!(self, need, set, { return Take::Lost }, { return Take::Busy },
                          { return Take::Denied(self.load()) },
                          ["xor {t}, {old}, {g}", "andc. {t}, {need}, {t}"], g = in(reg) PteFlags::GUARDED.bits())
            } else {
                take_asm!(
                    self,
                    need,
                    set,
                    { return Take::Lost },
                    { return Take::Busy },
                    { return Take::Denied(self.load()) },
                    ["andc. {t}, {need}, {old}"]
                )
            };
            Take::Taken { old: Pte(old), new: Pte(new) }
        }

        #[inline(always)]
        fn publish(&self, v: Pte) {
            // lwsync; std — release: the hypervisor call that installed the HPTE and every
            // earlier access are ordered before the PTE that advertises it. Then a trace point
            // (a `nop` unless hash_page is traced).
            // SAFETY: an aligned 8-byte store to the PTE word this cell is, after a release
            // barrier: what `AtomicU64::store(Release)` compiles to; the trace point preserves
            // every register (trace::site).
            unsafe {
                asm!(
                    "lwsync",
                    "std {v}, 0({p})",
                    crate::trace_site_asm!("t_hi", "t_lo", "{p}", "{v}", "0"),
                    p = in(reg_nonzero) &self.0 as *const AtomicU64,
                    v = in(reg) v.0,
                    t_hi = const PUBLISH >> 16,
                    t_lo = const PUBLISH & 0xffff,
                    options(nostack, preserves_flags),
                )
            };
        }

        #[inline(always)]
        fn update(&self, clr: u64, set: u64, spins: &mut u64) -> Pte {
            let (old, n): (u64, u64);
            // SAFETY: as `take`; the loop waits (outside the reservation) while BUSY is set and
            // then stores (old & !clr) | set with stdcx.; `sync` first orders earlier stores.
            unsafe {
                asm!(
                    "sync",
                    "li {n}, 0",
                    "2:",
                    "ldarx {old}, 0, {p}",
                    "andi. {t}, {old}, {busy}",
                    "bne- 3f",
                    "andc {t}, {old}, {clr}",
                    "or {t}, {t}, {set}",
                    "stdcx. {t}, 0, {p}",
                    "bne- 2b",
                    "isync",
                    "b 9f",
                    "3:",
                    "addi {n}, {n}, 1",
                    "or 1,1,1",
                    "ld {t}, 0({p})",
                    "andi. {t}, {t}, {busy}",
                    "bne- 3b",
                    "or 2,2,2",
                    "b 2b",
                    "9:",
                    p = in(reg_nonzero) &self.0 as *const AtomicU64,
                    clr = in(reg) clr,
                    set = in(reg) set,
                    busy = const BUSY,
                    old = out(reg) old,
                    t = out(reg) _,
                    n = out(reg) n,
                    out("cr0") _,
                    options(nostack),
                )
            };
            *spins += n;
            Pte(old)
        }

        #[inline(always)]
        fn cas(&self, old: Pte, new: Pte) -> Result<(), Pte> {
            self.0.compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Acquire).map(|_| ()).map_err(Pte)
        }
    }
}

#[cfg(target_os = "none")]
pub use ppc64::PteSlot;

/// The 64-bit atomic operations the portable cell needs (core's or loom's AtomicU64).
pub trait Atomic64 {
    fn load_acquire(&self) -> u64;
    fn cas_weak(&self, old: u64, new: u64) -> Result<u64, u64>;
    fn store_release(&self, v: u64);
    /// Strong compare-and-swap: fails only if the value differs from `old`.
    fn cas(&self, old: u64, new: u64) -> Result<u64, u64> {
        loop {
            match self.cas_weak(old, new) {
                Err(cur) if cur == old => continue,
                r => return r,
            }
        }
    }
    /// Called in BUSY-wait loops (a model checker must be told the thread is waiting).
    fn spin_wait(&self) {
        core::hint::spin_loop();
    }
}

impl Atomic64 for core::sync::atomic::AtomicU64 {
    fn load_acquire(&self) -> u64 {
        self.load(core::sync::atomic::Ordering::Acquire)
    }
    fn cas_weak(&self, old: u64, new: u64) -> Result<u64, u64> {
        use core::sync::atomic::Ordering::*;
        self.compare_exchange_weak(old, new, AcqRel, Acquire)
    }
    fn store_release(&self, v: u64) {
        self.store(v, core::sync::atomic::Ordering::Release)
    }
}

/// Portable cell: the same protocol as the asm, expressed with compare-and-swap.
pub struct CasCell<A: Atomic64>(pub A);

impl<A: Atomic64> PteCell for CasCell<A> {
    fn load(&self) -> Pte {
        Pte(self.0.load_acquire())
    }

    fn take(&self, access: Access) -> Take {
        let old = Pte(self.0.load_acquire());
        match decide(old, access) {
            Step::Retry => Take::Busy,
            Step::Deny(_) => Take::Denied(old),
            Step::Take { new } => match self.0.cas_weak(old.0, new.0) {
                Ok(_) => Take::Taken { old, new },
                Err(_) => Take::Lost,
            },
        }
    }

    fn publish(&self, v: Pte) {
        self.0.store_release(v.0)
    }

    fn update(&self, clr: u64, set: u64, spins: &mut u64) -> Pte {
        loop {
            let old = self.0.load_acquire();
            if old & PteFlags::BUSY.bits() != 0 {
                *spins += 1;
                self.0.spin_wait();
                continue;
            }
            if self.0.cas_weak(old, (old & !clr) | set).is_ok() {
                return Pte(old);
            }
        }
    }

    fn cas(&self, old: Pte, new: Pte) -> Result<(), Pte> {
        self.0.cas(old.0, new.0).map(|_| ()).map_err(Pte)
    }
}
