//! The native HPT backend (powernv): no hypervisor owns the hashed page table, the kernel does.
//! What H_ENTER/H_PROTECT/H_REMOVE did inside the hypervisor happens here, the way Linux's
//! hash_native.c does it on bare metal:
//!
//! - every writer of an HPTE first takes a per-HPTE lock, a software bit in dword 0
//!   (`HpteV::LOCK`), with one `ldarx`/`stdcx.` that also checks the value it expects;
//! - an insert writes dword 1 (the real page number and protection), then `eieio`, then dword 0
//!   with the valid bit — which also drops the lock — then `ptesync`, so the MMU can never see
//!   a valid entry with a stale second doubleword;
//! - a removal clears the valid bit but keeps the lock, invalidates the TLBs
//!   (`ptesync; tlbie; eieio; tlbsync; ptesync`) and only then stores 0; a protection change
//!   rewrites dword 1 and invalidates, also under the lock. So an unlocked invalid entry has
//!   no translation left in any TLB, and a flush that finds nothing (someone else removed the
//!   entry) may free the page at once: it waited for any removal in flight.
//!
//! The algorithms are generic over [`HptMem`], the memory operations and barriers: the kernel
//! implements them with asm on the real table, host tests with atomics and an operation log,
//! and the loom model with loom atomics and a simulated TLB. The same code runs in all three.
//!
//! Every lock holder runs with interrupts off (the fault path has them off; the other entry
//! points turn them off) and never waits for anything but another holder, so a lock is held
//! for a bounded time and an interrupt handler can never spin on a lock its own CPU holds.

use super::backend::{HashBackend, HcallError, InsertError, ProtectError, RemoveError};
use crate::mm::hpte::{
    tlbie_rb, HptGeometry, Hpte, HpteR, HpteV, AVPN_MASK, KEY_HI_MASK, KEY_LO_MASK, PP_MASK, V_SSIZE_MASK,
};

const VALID: u64 = HpteV::VALID.bits();
const LOCK: u64 = HpteV::LOCK.bits();
const BOLTED: u64 = HpteV::BOLTED.bits();

/// Memory operations on a hashed page table of 16-byte entries (dword 0 = v, dword 1 = r).
/// An entry is named by a `Slot` (its address in the kernel), found once per operation.
pub trait HptMem {
    type Slot: Copy;
    fn geometry(&self) -> HptGeometry;
    /// The entry at `ptex`.
    fn slot(&self, ptex: u64) -> Self::Slot;
    /// The entry `n` places after `s` (within its group).
    fn next(&self, s: Self::Slot, n: u64) -> Self::Slot;
    fn load_v(&self, s: Self::Slot) -> u64;
    fn load_r(&self, s: Self::Slot) -> u64;
    /// Atomically replaces dword 0 `expect` (which has no LOCK bit) by `expect | LOCK`, with
    /// acquire ordering; false if dword 0 is not `expect` any more.
    fn try_lock(&self, s: Self::Slot, expect: u64) -> bool;
    fn store_r(&self, s: Self::Slot, r: u64);
    /// Orders the stores before it before the stores after it, as seen by the MMU (`eieio`).
    fn order_stores(&self);
    /// Stores dword 0. Without LOCK in `v` this releases the lock; the caller has ordered
    /// what must precede it.
    fn store_v(&self, s: Self::Slot, v: u64);
    /// Makes the table updates so far visible to every CPU's table walk (`ptesync`).
    fn table_sync(&self);
    /// Removes the translation for the page whose `tlbie` operand is `rb` from every CPU's TLB
    /// and waits until it is gone: `ptesync; tlbie; eieio; tlbsync; ptesync`.
    fn invalidate(&self, rb: u64);
    /// Runs `f` with this CPU's interrupts off.
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    /// A pause in a wait for another CPU's lock.
    fn relax(&self) {}
    fn random(&self) -> u64;
    /// See `HashBackend::hpte_r`.
    #[inline(always)]
    fn hpte_r(&self, pte: crate::mm::pte::Pte) -> u64 {
        super::protocol::HPTE_R.r(pte)
    }
}

/// The bits of dword 1 a protection change rewrites, and their new values for H_PROTECT-style
/// `flags` (the hypervisor's encoding, `mm::hpte::h_protect_flags`, decoded as QEMU 7.2 does).
pub const fn protect_r(r: u64, flags: u64) -> u64 {
    let mask = HpteR::PP0.bits() | PP_MASK | HpteR::N.bits() | KEY_HI_MASK | KEY_LO_MASK;
    let new = ((flags << 55) & HpteR::PP0.bits())
        | ((flags << 48) & KEY_HI_MASK)
        | (flags & (PP_MASK | HpteR::N.bits() | KEY_LO_MASK));
    (r & !mask) | new
}

/// Whether dword 0 `v` is a valid entry for `avpn` (the hypervisor's AVPN check: segment size
/// and AVPN, ignoring the software bits, L, H and V).
#[inline(always)]
pub const fn avpn_matches(v: u64, avpn: u64) -> bool {
    v & VALID != 0 && v & (V_SSIZE_MASK | AVPN_MASK) == avpn & (V_SSIZE_MASK | AVPN_MASK)
}

/// The native backend over the memory `M`.
pub struct NativeHpt<M: HptMem> {
    pub mem: M,
}

impl<M: HptMem> NativeHpt<M> {
    /// Invalidates the entry at `ptex` (dword 0 `v`, locked by us) and unlocks it empty.
    #[inline(always)]
    fn kill_locked(&self, ptex: u64, s: M::Slot, v: u64) {
        let m = &self.mem;
        m.store_v(s, LOCK);
        m.invalidate(tlbie_rb(m.geometry(), ptex, v));
        m.store_v(s, 0);
    }

    /// Takes the lock of the valid entry `s` for `avpn`, waiting while another CPU holds it.
    /// `Some(v)`: locked, `v` is dword 0 without the lock; None: no such entry (and no change
    /// to it in flight).
    fn lock_matching(&self, s: M::Slot, avpn: u64) -> Option<u64> {
        let m = &self.mem;
        loop {
            let v = m.load_v(s);
            if v & LOCK != 0 {
                m.relax();
                continue;
            }
            if !avpn_matches(v, avpn) {
                return None;
            }
            if m.try_lock(s, v) {
                return Some(v);
            }
        }
    }
}

impl<M: HptMem> HashBackend for NativeHpt<M> {
    #[inline(always)]
    fn geometry(&self) -> HptGeometry {
        self.mem.geometry()
    }

    /// The first slot that is neither valid nor locked; a slot another CPU is filling is
    /// skipped, not waited for. Called with interrupts off (the fault path, boot).
    #[inline(always)]
    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
        let m = &self.mem;
        let g = group_ptex & !7;
        let first = m.slot(g);
        let mut i = 0;
        while i < 8 {
            let s = m.next(first, i);
            let cur = m.load_v(s);
            if cur & (VALID | LOCK) == 0 && m.try_lock(s, cur) {
                m.store_r(s, r);
                m.order_stores();
                m.store_v(s, (v | VALID) & !LOCK);
                m.table_sync();
                return Ok(g + i);
            }
            i += 1;
        }
        Err(InsertError::Full)
    }

    fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError> {
        let g = group_ptex & !7;
        Ok(core::array::from_fn(|i| self.read(g + i as u64)))
    }

    fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
        let m = &self.mem;
        m.critical(|| {
            let s = m.slot(ptex);
            let v = self.lock_matching(s, avpn).ok_or(ProtectError::NotFound)?;
            m.store_r(s, protect_r(m.load_r(s), hprot_flags));
            m.invalidate(tlbie_rb(m.geometry(), ptex, v));
            m.store_v(s, v);
            Ok(())
        })
    }

    fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError> {
        let m = &self.mem;
        m.critical(|| {
            let s = m.slot(ptex);
            let v = self.lock_matching(s, avpn).ok_or(RemoveError::NotFound)?;
            let r = m.load_r(s);
            self.kill_locked(ptex, s, v);
            Ok(Hpte { v, r })
        })
    }

    /// The eviction: never waits (it runs in the fault path): a locked, invalid or bolted
    /// entry is NotFound, and the protocol picks another victim.
    #[inline(always)]
    fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError> {
        let m = &self.mem;
        let s = m.slot(ptex);
        let v = m.load_v(s);
        if v & (VALID | LOCK | BOLTED) != VALID || !m.try_lock(s, v) {
            return Err(RemoveError::NotFound);
        }
        self.kill_locked(ptex, s, v);
        Ok(Hpte::EMPTY)
    }

    fn read(&self, ptex: u64) -> Hpte {
        let s = self.mem.slot(ptex);
        Hpte { v: self.mem.load_v(s), r: self.mem.load_r(s) }
    }

    fn random(&self) -> u64 {
        self.mem.random()
    }

    #[inline(always)]
    fn hpte_r(&self, pte: crate::mm::pte::Pte) -> u64 {
        self.mem.hpte_r(pte)
    }
}

/// Where the table goes: the top of the bolted linear zone, aligned to its size (SDR1's
/// HTABORG must be), so that the kernel reaches it through the bolted mapping.
pub const fn place_hpt(linear_end: u64, geo: HptGeometry) -> Option<u64> {
    let size = geo.bytes();
    if linear_end < 2 * size {
        return None;
    }
    Some((linear_end - size) & !(size - 1))
}

/// SDR1 for a table at physical `base` (POWER8 and earlier): HTABORG | HTABSIZE, where
/// HTABSIZE = log2(bytes) - 18.
pub const fn sdr1(base: u64, geo: HptGeometry) -> u64 {
    base | (geo.shift() as u64 - 18)
}

#[cfg(target_os = "none")]
pub use kernel::{Native, NATIVE};

#[cfg(target_os = "none")]
mod kernel {
    use super::*;
    use crate::arch::ppc64::{insn, percpu};
    use core::arch::asm;

    /// The table the kernel set up at boot, found through this CPU's per-CPU area (base and
    /// hash mask: one load each off r13).
    #[derive(Clone, Copy)]
    pub struct KernelHpt;

    pub type Native = NativeHpt<KernelHpt>;
    pub const NATIVE: Native = NativeHpt { mem: KernelHpt };

    impl HptMem for KernelHpt {
        /// The entry's linear address (the table is in the bolted zone).
        type Slot = u64;
        #[inline(always)]
        fn geometry(&self) -> HptGeometry {
            HptGeometry::from_hash_mask(percpu::load_field::<{ percpu::offsets::HASH_MASK }>())
        }
        #[inline(always)]
        fn slot(&self, ptex: u64) -> u64 {
            percpu::load_field::<{ percpu::offsets::HPT_BASE }>() + ptex * 16
        }
        #[inline(always)]
        fn next(&self, s: u64, n: u64) -> u64 {
            s + n * 16
        }
        #[inline(always)]
        fn load_v(&self, s: u64) -> u64 {
            // SAFETY: `s` is an entry of the bolted HPT (callers derive its index from the
            // geometry); a plain 8-byte load.
            unsafe { core::ptr::read_volatile(s as *const u64) }
        }
        #[inline(always)]
        fn load_r(&self, s: u64) -> u64 {
            // SAFETY: as load_v.
            unsafe { core::ptr::read_volatile((s + 8) as *const u64) }
        }
        #[inline(always)]
        fn try_lock(&self, s: u64, expect: u64) -> bool {
            // SAFETY: ldarx/stdcx. on an aligned doubleword of the bolted HPT; `isync` after a
            // successful stdcx. keeps later accesses from running ahead of the lock (acquire).
            // A changed dword 0 leaves through the label.
            unsafe {
                asm!("1: ldarx {t}, 0, {a}",
                     "cmpd {t}, {e}",
                     "bne- {changed}",
                     "ori {t}, {t}, {lock}",
                     "stdcx. {t}, 0, {a}",
                     "bne- 1b",
                     "isync",
                     t = out(reg) _, a = in(reg_nonzero) s, e = in(reg) expect,
                     lock = const LOCK, changed = label { return false }, out("cr0") _, options(nostack))
            };
            true
        }
        #[inline(always)]
        fn store_r(&self, s: u64, r: u64) {
            // SAFETY: as load_v; the caller holds the entry's lock.
            unsafe { core::ptr::write_volatile((s + 8) as *mut u64, r) }
        }
        #[inline(always)]
        fn order_stores(&self) {
            // SAFETY: a barrier.
            unsafe { asm!("eieio", options(nostack, preserves_flags)) }
        }
        #[inline(always)]
        fn store_v(&self, s: u64, v: u64) {
            // SAFETY: as load_v; the caller holds the entry's lock.
            unsafe { core::ptr::write_volatile(s as *mut u64, v) }
        }
        #[inline(always)]
        fn table_sync(&self) {
            // SAFETY: a barrier.
            unsafe { asm!("ptesync", options(nostack, preserves_flags)) }
        }
        #[inline(always)]
        fn invalidate(&self, rb: u64) {
            // SAFETY: tlbie only drops translations (RS = 0: LPID 0, the hypervisor's own);
            // the sequence is the ISA's for a PTE that was invalidated or changed.
            unsafe {
                asm!("ptesync", "tlbie {rb}, {rs}", "eieio", "tlbsync", "ptesync",
                     rb = in(reg) rb, rs = in(reg) 0u64, options(nostack, preserves_flags))
            }
        }
        #[inline(always)]
        fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
            let on = crate::arch::ppc64::irq::save_disable();
            let r = f();
            crate::arch::ppc64::irq::restore(on);
            r
        }
        #[inline(always)]
        fn relax(&self) {
            insn::cpu_relax()
        }
        #[inline(always)]
        fn random(&self) -> u64 {
            insn::mftb()
        }
        #[inline(always)]
        fn hpte_r(&self, pte: crate::mm::pte::Pte) -> u64 {
            let t = percpu::load_field::<{ percpu::offsets::HPTE_R }>();
            // SAFETY: `hpte_r` holds the address of the static `protocol::HPTE_R` (set by
            // mm::init_cpu before the CPU takes hash faults).
            let t = unsafe { &*(t as *const super::super::protocol::HpteRTable) };
            t.r(pte)
        }
    }
}

/// A table in host memory that logs every operation, for unit tests of the orderings.
#[cfg(not(target_os = "none"))]
pub mod host {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::*};
    use std::sync::Mutex;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        Lock(u64),
        StoreR(u64, u64),
        Order,
        StoreV(u64, u64),
        TableSync,
        Invalidate(u64),
    }

    pub struct HostHpt {
        pub geo: HptGeometry,
        pub v: Vec<AtomicU64>,
        pub r: Vec<AtomicU64>,
        pub log: Mutex<Vec<Op>>,
        rnd: AtomicU64,
    }

    impl HostHpt {
        pub fn new(shift: u32) -> HostHpt {
            let geo = HptGeometry::new(shift).unwrap();
            let n = geo.entries() as usize;
            HostHpt {
                geo,
                v: (0..n).map(|_| AtomicU64::new(0)).collect(),
                r: (0..n).map(|_| AtomicU64::new(0)).collect(),
                log: Mutex::new(Vec::new()),
                rnd: AtomicU64::new(0x1234_5678),
            }
        }
        pub fn take_log(&self) -> Vec<Op> {
            std::mem::take(&mut self.log.lock().unwrap())
        }
        fn push(&self, op: Op) {
            self.log.lock().unwrap().push(op);
        }
    }

    impl HptMem for HostHpt {
        /// The entry's index.
        type Slot = u64;
        fn geometry(&self) -> HptGeometry {
            self.geo
        }
        fn slot(&self, ptex: u64) -> u64 {
            ptex
        }
        fn next(&self, s: u64, n: u64) -> u64 {
            s + n
        }
        fn load_v(&self, p: u64) -> u64 {
            self.v[p as usize].load(Acquire)
        }
        fn load_r(&self, p: u64) -> u64 {
            self.r[p as usize].load(Acquire)
        }
        fn try_lock(&self, p: u64, expect: u64) -> bool {
            let ok = self.v[p as usize].compare_exchange(expect, expect | LOCK, Acquire, Relaxed).is_ok();
            if ok {
                self.push(Op::Lock(p));
            }
            ok
        }
        fn store_r(&self, p: u64, r: u64) {
            self.push(Op::StoreR(p, r));
            self.r[p as usize].store(r, Release);
        }
        fn order_stores(&self) {
            self.push(Op::Order);
        }
        fn store_v(&self, p: u64, v: u64) {
            self.push(Op::StoreV(p, v));
            self.v[p as usize].store(v, Release);
        }
        fn table_sync(&self) {
            self.push(Op::TableSync);
        }
        fn invalidate(&self, rb: u64) {
            self.push(Op::Invalidate(rb));
        }
        fn random(&self) -> u64 {
            self.rnd.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed)
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::host::{HostHpt, Op};
    use super::*;
    use crate::mm::hpte::{avpn_for, h_protect_flags, hash_4k, hpte_for};
    use crate::mm::pte::{PAGE_KERNEL, PAGE_KERNEL_RO};

    const VSID: u64 = 0x408f92c94;
    const EA: u64 = 0xd000_0000_0001_2000;

    fn be() -> NativeHpt<HostHpt> {
        NativeHpt { mem: HostHpt::new(19) }
    }

    fn entry() -> (u64, Hpte) {
        let geo = HptGeometry::new(19).unwrap();
        (geo.group_base(hash_4k(VSID, EA), false), hpte_for(VSID, EA, 0x1234, PAGE_KERNEL, false, false))
    }

    #[test]
    fn insert_writes_r_then_orders_then_valid_v_then_syncs() {
        let b = be();
        let (g, h) = entry();
        let p = b.insert(g, h.v & !VALID, h.r).unwrap();
        assert_eq!(p, g);
        assert_eq!(
            b.mem.take_log(),
            vec![Op::Lock(g), Op::StoreR(g, h.r), Op::Order, Op::StoreV(g, h.v), Op::TableSync]
        );
        assert_eq!(b.read(p), h, "valid, unlocked, the entry asked for");
    }

    #[test]
    fn insert_skips_valid_and_locked_slots_and_reports_full() {
        let b = be();
        let (g, h) = entry();
        b.mem.v[g as usize].store(VALID | (0x77 << 12), std::sync::atomic::Ordering::Relaxed);
        b.mem.v[g as usize + 1].store(LOCK, std::sync::atomic::Ordering::Relaxed); // being filled
        assert_eq!(b.insert(g, h.v, h.r), Ok(g + 2));
        for i in 3..8 {
            b.mem.v[(g + i) as usize].store(VALID, std::sync::atomic::Ordering::Relaxed);
        }
        assert_eq!(b.insert(g, h.v, h.r), Err(InsertError::Full));
    }

    #[test]
    fn remove_invalidates_before_unlocking() {
        let b = be();
        let (g, h) = entry();
        let p = b.insert(g, h.v, h.r).unwrap();
        b.mem.take_log();
        assert_eq!(b.remove(p, avpn_for(VSID, EA)), Ok(h));
        let rb = (VSID << 28) | (EA & 0x0fff_f000);
        assert_eq!(b.mem.take_log(), vec![Op::Lock(p), Op::StoreV(p, LOCK), Op::Invalidate(rb), Op::StoreV(p, 0)]);
        assert_eq!(b.remove(p, avpn_for(VSID, EA)), Err(RemoveError::NotFound));
        assert!(b.mem.take_log().is_empty(), "nothing to lock or invalidate");
    }

    #[test]
    fn remove_checks_the_avpn() {
        let b = be();
        let (g, h) = entry();
        let p = b.insert(g, h.v, h.r).unwrap();
        assert_eq!(b.remove(p, avpn_for(VSID + 1, EA)), Err(RemoveError::NotFound));
        assert_eq!(b.read(p), h);
    }

    #[test]
    fn protect_rewrites_pp_under_the_lock_and_invalidates() {
        let b = be();
        let (g, h) = entry();
        let p = b.insert(g, h.v, h.r).unwrap();
        b.mem.take_log();
        b.protect(p, avpn_for(VSID, EA), h_protect_flags(PAGE_KERNEL_RO)).unwrap();
        let want_r = hpte_for(VSID, EA, 0x1234, PAGE_KERNEL_RO, false, false).r;
        let rb = (VSID << 28) | (EA & 0x0fff_f000);
        assert_eq!(b.mem.take_log(), vec![Op::Lock(p), Op::StoreR(p, want_r), Op::Invalidate(rb), Op::StoreV(p, h.v)]);
        assert_eq!(b.read(p), Hpte { v: h.v, r: want_r });
    }

    #[test]
    fn eviction_never_takes_bolted_locked_or_empty_entries() {
        let b = be();
        let (g, h) = entry();
        let p = b.insert(g, h.v | BOLTED, h.r).unwrap();
        assert_eq!(b.remove_unbolted(p), Err(RemoveError::NotFound));
        assert_eq!(b.remove_unbolted(p + 1), Err(RemoveError::NotFound), "empty");
        b.mem.v[(p + 2) as usize].store(VALID | LOCK, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(b.remove_unbolted(p + 2), Err(RemoveError::NotFound), "another CPU holds it");
        let q = b.insert(g, h.v, h.r).unwrap();
        b.mem.take_log();
        assert_eq!(b.remove_unbolted(q), Ok(Hpte::EMPTY));
        let log = b.mem.take_log();
        assert_eq!(log.first(), Some(&Op::Lock(q)));
        assert_eq!(
            &log[1..],
            &[Op::StoreV(q, LOCK), Op::Invalidate((VSID << 28) | (EA & 0x0fff_f000)), Op::StoreV(q, 0)]
        );
    }

    #[test]
    fn protect_r_matches_qemu_h_protect() {
        // QEMU 7.2 spapr h_protect's r-word update, which the pseries backend relies on.
        for r in [0u64, u64::MAX, 0x8000_0000_0abc_0196, 0x0000_0000_0abc_0190] {
            for flags in [h_protect_flags(PAGE_KERNEL), h_protect_flags(PAGE_KERNEL_RO), 0x1ff, 0x3ff | (3 << 12)] {
                let mut q = r & !(HpteR::PP0.bits() | PP_MASK | HpteR::N.bits() | KEY_HI_MASK | KEY_LO_MASK);
                q |= (flags << 55) & HpteR::PP0.bits();
                q |= (flags << 48) & KEY_HI_MASK;
                q |= flags & (PP_MASK | HpteR::N.bits() | KEY_LO_MASK);
                assert_eq!(protect_r(r, flags), q);
            }
        }
    }

    #[test]
    fn placement_and_sdr1() {
        let geo = HptGeometry::new(23).unwrap();
        assert_eq!(place_hpt(64 << 20, geo), Some(56 << 20));
        assert_eq!(sdr1(56 << 20, geo), (56 << 20) | 5);
        assert_eq!(place_hpt(12 << 20, geo), None, "the table would crowd out the kernel");
        let geo = HptGeometry::new(24).unwrap();
        assert_eq!(place_hpt(60 << 20, geo), Some(32 << 20), "aligned to its size");
    }

    /// The protocol's own tests run against the native backend too: same outcomes as with the
    /// hypervisor's semantics (FakeHpt).
    #[test]
    fn protocol_against_native_backend() {
        use crate::hash::access::Access;
        use crate::hash::cell::{CasCell, PteCell};
        use crate::hash::protocol::{clear_and_flush, hash_pte, Outcome};
        use crate::hash::stats::Stats;
        use crate::mm::pte::{Pte, PteFlags};
        use std::sync::atomic::AtomicU64;
        let b = be();
        let st = Stats::new();
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        let load = Access::from_data_fault(0x4000_0000, false);
        let store = Access::from_data_fault(0x4200_0000, false);
        assert_eq!(hash_pte(&c, EA, VSID, load, &b, &st), Outcome::Inserted { secondary: false, evicted: 0 });
        assert_eq!(hash_pte(&c, EA, VSID, store, &b, &st), Outcome::Updated);
        let p = c.load();
        assert!(p.flags().contains(PteFlags::DIRTY));
        let h = b.read(b.geometry().ptex(hash_4k(VSID, EA), p.slot().unwrap()));
        assert_eq!(h.pp(), 0, "dirty kernel page writable");
        // Fill both groups: the next page with this hash evicts.
        let mut spins = 0;
        clear_and_flush(&c, EA, VSID, &b, &mut spins).unwrap();
        let geo = b.geometry();
        for sec in [false, true] {
            let g = geo.group_base(hash_4k(VSID, EA), sec);
            for i in 0..8 {
                b.mem.v[(g + i) as usize].store(
                    VALID | (0x99 << 12) | if i == 0 { BOLTED } else { 0 },
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        c.publish(Pte::new(0x4321, PAGE_KERNEL));
        assert!(matches!(hash_pte(&c, EA, VSID, load, &b, &st), Outcome::Inserted { evicted: 1.., .. }));
    }
}
