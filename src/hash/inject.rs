//! The injecting `HashBackend`: wraps any backend (the hypervisor's, or `FakeHpt` in host
//! tests) and, when its `Injector` says so, answers a call with an error PAPR allows instead
//! of (or after) making it. See `crate::inject` for the kinds and why each answer is legal.
//!
//! "Not found" is made true before it is reported: the entry is removed (AVPN-checked, or
//! unless bolted, as the call asked) with the real call, so the caller's view — the entry is
//! gone — matches the table's. A refused removal (busy) turns the injection off for that call.
//! H_BUSY, long busy and H_HARDWARE are answered without making the call, so nothing changes.

use super::backend::{HashBackend, HcallError, InsertError, ProtectError, RemoveError};
use super::protocol::Hcall;
use crate::inject::{Kind, Site};
use crate::mm::hpte::{HptGeometry, Hpte};
use crate::mm::pte::Pte;

/// Decides, call by call, whether to fail it and how.
pub trait Injector {
    /// Counts one call at `site`; Some(kind) if it is to fail.
    fn fire(&self, site: Site) -> Option<Kind>;
}

/// `inner`, with failures injected as `inj` decides.
pub struct Injecting<'a, B: HashBackend, I: Injector> {
    pub inner: &'a B,
    pub inj: &'a I,
}

/// The long-busy codes (H_LONG_BUSY_ORDER_1_MSEC .. _100_SEC).
const LONG_BUSY: core::ops::RangeInclusive<i16> = 9900..=9905;

impl<B: HashBackend, I: Injector> HashBackend for Injecting<'_, B, I> {
    #[inline(always)]
    fn geometry(&self) -> HptGeometry {
        self.inner.geometry()
    }

    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
        match self.inj.fire(Site::Enter) {
            Some(Kind::EnterHardware) => Err(InsertError::Refused(HcallError::Hardware)),
            Some(Kind::EnterFull) => Err(InsertError::Full),
            Some(Kind::EnterBusy) => Err(InsertError::Refused(HcallError::Busy(1))),
            Some(Kind::EnterLongBusy) => {
                let n = (LONG_BUSY.end() - LONG_BUSY.start() + 1) as u64;
                Err(InsertError::Refused(HcallError::Busy(LONG_BUSY.start() + (self.inner.random() % n) as i16)))
            }
            _ => self.inner.insert(group_ptex, v, r),
        }
    }

    fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError> {
        self.inner.read_group(group_ptex)
    }

    fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
        match self.inj.fire(Site::Protect) {
            Some(Kind::ProtectHardware) => Err(ProtectError::Refused(HcallError::Hardware)),
            Some(Kind::ProtectBusy) => Err(ProtectError::Refused(HcallError::Busy(1))),
            Some(Kind::ProtectNotFound) => match self.inner.remove(ptex, avpn) {
                Ok(_) | Err(RemoveError::NotFound) => Err(ProtectError::NotFound),
                Err(RemoveError::Refused(_)) => self.inner.protect(ptex, avpn, hprot_flags),
            },
            _ => self.inner.protect(ptex, avpn, hprot_flags),
        }
    }

    fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError> {
        match self.inj.fire(Site::Remove) {
            Some(Kind::RemoveHardware) => Err(RemoveError::Refused(HcallError::Hardware)),
            Some(Kind::RemoveBusy) => Err(RemoveError::Refused(HcallError::Busy(1))),
            Some(Kind::RemoveNotFound) => match self.inner.remove(ptex, avpn) {
                Ok(_) | Err(RemoveError::NotFound) => Err(RemoveError::NotFound),
                Err(e) => Err(e),
            },
            _ => self.inner.remove(ptex, avpn),
        }
    }

    fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError> {
        match self.inj.fire(Site::Remove) {
            Some(Kind::RemoveHardware) => Err(RemoveError::Refused(HcallError::Hardware)),
            Some(Kind::RemoveBusy) => Err(RemoveError::Refused(HcallError::Busy(1))),
            Some(Kind::RemoveNotFound) => match self.inner.remove_unbolted(ptex) {
                Ok(_) | Err(RemoveError::NotFound) => Err(RemoveError::NotFound),
                Err(e) => Err(e),
            },
            _ => self.inner.remove_unbolted(ptex),
        }
    }

    fn read(&self, ptex: u64) -> Hpte {
        self.inner.read(ptex)
    }

    fn random(&self) -> u64 {
        self.inner.random()
    }

    #[inline(always)]
    fn hpte_r(&self, pte: Pte) -> u64 {
        self.inner.hpte_r(pte)
    }
}

/// The kernel's injector: the armed plan, this CPU's counters (`crate::inject::fire`).
#[cfg(target_os = "none")]
pub struct Armed;

#[cfg(target_os = "none")]
impl Injector for Armed {
    #[inline]
    fn fire(&self, site: Site) -> Option<Kind> {
        crate::inject::fire(site)
    }
}

/// The hypervisor's backend with the armed plan's failures.
#[cfg(target_os = "none")]
pub const PSERIES: Injecting<'static, super::backend::Pseries, Armed> =
    Injecting { inner: &super::backend::Pseries, inj: &Armed };

/// The hypervisor call an injected kind stands for (for reports).
pub const fn hcall_of(k: Kind) -> Option<Hcall> {
    match k.site() {
        Site::Enter => Some(Hcall::Enter),
        Site::Protect => Some(Hcall::Protect),
        Site::Remove => Some(Hcall::Remove),
        Site::Frame | Site::Heap => None,
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use crate::hash::access::Access;
    use crate::hash::backend::fake::FakeHpt;
    use crate::hash::cell::{CasCell, PteCell};
    use crate::hash::protocol::{clear_and_flush, flush_hpte, hash_pte, Outcome, Retry};
    use crate::hash::stats::{Counter, Stats};
    use crate::inject::{stream_start, Plan, Trigger};
    use crate::mm::hpte::{avpn_for, hash_4k, HpteV};
    use crate::mm::pte::{PteFlags, PAGE_KERNEL};
    use crate::mm::slbe::kernel_vsid;
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::AtomicU64;

    /// The plan's decision with per-site call counters, as the kernel's `Armed` (one CPU).
    struct Host {
        plan: Plan,
        calls: RefCell<[u64; crate::inject::SITES]>,
        rng: Cell<u64>,
        fired: RefCell<Vec<Kind>>,
    }

    impl Host {
        fn new(plan: Plan) -> Host {
            Host {
                plan,
                calls: RefCell::new([0; crate::inject::SITES]),
                rng: Cell::new(stream_start(plan.seed, 0)),
                fired: RefCell::new(vec![]),
            }
        }
        fn count(&self, k: Kind) -> usize {
            self.fired.borrow().iter().filter(|&&x| x == k).count()
        }
    }

    impl Injector for Host {
        fn fire(&self, site: Site) -> Option<Kind> {
            let n = {
                let mut c = self.calls.borrow_mut();
                c[site as usize] += 1;
                c[site as usize]
            };
            let mut rng = self.rng.get();
            let k = self.plan.decide(site, n, &mut rng, |k| self.count(k) as u64);
            self.rng.set(rng);
            if let Some(k) = k {
                self.fired.borrow_mut().push(k);
            }
            k
        }
    }

    const EA: u64 = 0xd000_0000_0004_2000;

    fn load() -> Access {
        Access::from_data_fault(0x4000_0000, false)
    }
    fn store() -> Access {
        Access::from_data_fault(0x4200_0000, false)
    }

    /// Runs hash_pte until the access would go through (re-executing on Retry), at most
    /// `limit` times; returns the final outcome and the attempts.
    fn fault_until_done<B: HashBackend>(
        c: &CasCell<AtomicU64>,
        ea: u64,
        a: Access,
        be: &B,
        st: &Stats,
        limit: usize,
    ) -> (Outcome, usize) {
        for i in 1..=limit {
            match hash_pte(c, ea, kernel_vsid(ea), a, be, st) {
                Outcome::Retry(_) => continue,
                o => return (o, i),
            }
        }
        panic!("still retrying after {limit} attempts");
    }

    /// The invariant the stress checks through H_READ: the PTE is not BUSY, and it names an
    /// HPTE exactly when one translates the page, at that slot, for its frame.
    fn consistent(c: &CasCell<AtomicU64>, hpt: &FakeHpt, ea: u64) {
        let p = c.load();
        assert!(!p.is_busy(), "{p}");
        let vsid = kernel_vsid(ea);
        let hash = hash_4k(vsid, ea);
        let mut mine: Vec<(u64, Hpte)> = vec![];
        for sec in [false, true] {
            let g = hpt.geo.group_base(hash, sec);
            mine.extend((g..g + 8).map(|i| (i, hpt.read(i))).filter(|(_, h)| h.matches_in(vsid, ea, sec)));
        }
        match p.slot() {
            Some(s) if !mine.is_empty() => {
                assert_eq!(mine.len(), 1, "{mine:?}");
                assert_eq!(mine[0].0, hpt.geo.ptex(hash_4k(vsid, ea), s), "slot bits name another entry");
                assert_eq!(mine[0].1.rpn(), p.pfn());
            }
            // Stale slot bits are legal (an eviction); an HPTE the PTE does not know is not.
            Some(_) => {}
            None => assert!(mine.is_empty(), "HPTE for a PTE without HASHPTE: {p} {mine:?}"),
        }
    }

    #[test]
    fn enter_busy_and_long_busy_re_execute_then_insert() {
        let hpt = FakeHpt::new(19);
        let inj = Host::new(
            Plan::default().with(Kind::EnterBusy, Trigger::Every(2)).with(Kind::EnterLongBusy, Trigger::Every(3)),
        );
        let be = Injecting { inner: &hpt, inj: &inj };
        let st = Stats::new();
        let mut retries = 0;
        for page in 0..30u64 {
            let ea = EA + page * 4096;
            let before = Pte::new(0x100 + page, PAGE_KERNEL);
            let c = CasCell(AtomicU64::new(before.0));
            loop {
                match hash_pte(&c, ea, kernel_vsid(ea), load(), &be, &st) {
                    Outcome::Retry(Retry::HypervisorBusy) => {
                        retries += 1;
                        assert_eq!(c.load(), before, "a busy answer must leave the PTE as it was");
                    }
                    Outcome::Inserted { .. } => break,
                    o => panic!("{o:?}"),
                }
            }
            consistent(&c, &hpt, ea);
        }
        assert_eq!(retries, inj.count(Kind::EnterBusy) + inj.count(Kind::EnterLongBusy));
        assert!(inj.count(Kind::EnterBusy) > 0 && inj.count(Kind::EnterLongBusy) > 0);
        assert_eq!(st.get(Counter::RetryHvBusy), retries as u64);
        assert_eq!(hpt.valid_entries().len(), 30);
    }

    #[test]
    fn long_busy_codes_are_papr_long_busy() {
        let hpt = FakeHpt::new(19);
        let inj = Host::new(Plan::default().with(Kind::EnterLongBusy, Trigger::Every(1)));
        let be = Injecting { inner: &hpt, inj: &inj };
        for _ in 0..64 {
            match be.insert(0, HpteV::VALID.bits(), 0) {
                Err(InsertError::Refused(HcallError::Busy(rc))) => assert!(LONG_BUSY.contains(&rc), "{rc}"),
                o => panic!("{o:?}"),
            }
        }
        assert!(hpt.valid_entries().is_empty(), "a busy H_ENTER inserted an entry");
    }

    #[test]
    fn pteg_full_goes_secondary_or_evicts_and_stays_consistent() {
        let hpt = FakeHpt::new(19);
        let inj = Host::new(Plan::default().with(Kind::EnterFull, Trigger::Ppm(400_000)));
        let be = Injecting { inner: &hpt, inj: &inj };
        let st = Stats::new();
        for page in 0..200u64 {
            let ea = EA + page * 4096;
            let c = CasCell(AtomicU64::new(Pte::new(0x100 + page, PAGE_KERNEL).0));
            let (o, _) = fault_until_done(&c, ea, load(), &be, &st, 1000);
            assert!(matches!(o, Outcome::Inserted { .. }), "{o:?}");
            consistent(&c, &hpt, ea);
        }
        assert!(inj.count(Kind::EnterFull) > 50);
        assert!(st.get(Counter::InsertSecondary) > 0, "a full primary must lead to the secondary group");
    }

    #[test]
    fn protect_not_found_is_made_true_and_reinserted() {
        let hpt = FakeHpt::new(19);
        let st = Stats::new();
        let vsid = kernel_vsid(EA);
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        // A first, uninjected load inserts a read-only HPTE.
        assert!(matches!(hash_pte(&c, EA, vsid, load(), &hpt, &st), Outcome::Inserted { .. }));
        let old_ptex = hpt.geo.ptex(hash_4k(vsid, EA), c.load().slot().unwrap());
        // The store's H_PROTECT answers "not found": the entry must really be gone, and the
        // fault inserts a new, writable one.
        let inj = Host::new(Plan::default().with(Kind::ProtectNotFound, Trigger::Every(1)));
        let be = Injecting { inner: &hpt, inj: &inj };
        let o = hash_pte(&c, EA, vsid, store(), &be, &st);
        assert!(matches!(o, Outcome::Inserted { .. }), "{o:?}");
        assert_eq!(inj.count(Kind::ProtectNotFound), 1);
        assert_eq!(hpt.valid_entries().len(), 1, "the old entry was not removed: two HPTEs for one page");
        let p = c.load();
        assert!(p.flags().contains(PteFlags::DIRTY));
        let (ptex, h) = hpt.valid_entries()[0];
        assert_eq!(ptex, hpt.geo.ptex(hash_4k(vsid, EA), p.slot().unwrap()));
        assert_eq!(h.pp(), 0, "the new entry is writable");
        let _ = old_ptex;
        consistent(&c, &hpt, EA);
    }

    #[test]
    fn remove_not_found_still_removes() {
        let hpt = FakeHpt::new(19);
        let st = Stats::new();
        let vsid = kernel_vsid(EA);
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        hash_pte(&c, EA, vsid, store(), &hpt, &st);
        let inj = Host::new(Plan::default().with(Kind::RemoveNotFound, Trigger::Every(1)));
        let be = Injecting { inner: &hpt, inj: &inj };
        // flush reports "not removed", yet nothing translates the page afterwards.
        assert_eq!(flush_hpte(c.load(), EA, vsid, &be), Ok(false));
        assert!(hpt.valid_entries().is_empty());
        // And clear-and-flush after a fresh insert.
        c.publish(Pte::new(0x1234, PAGE_KERNEL));
        hash_pte(&c, EA, vsid, store(), &hpt, &st);
        let mut spins = 0;
        clear_and_flush(&c, EA, vsid, &be, &mut spins).unwrap();
        assert!(hpt.valid_entries().is_empty());
        assert_eq!(inj.count(Kind::RemoveNotFound), 2);
    }

    #[test]
    fn eviction_with_remove_not_found_and_busy_stays_consistent() {
        // Small HPT, many pages: groups fill, evictions run, H_REMOVE is answered "not found"
        // (after removing) or "busy" (without removing), H_ENTER full or busy at random.
        let hpt = FakeHpt::new(19);
        let plan = Plan::parse("transient:5%").unwrap();
        let inj = Host::new(plan);
        let be = Injecting { inner: &hpt, inj: &inj };
        let st = Stats::new();
        let vsid = kernel_vsid(EA);
        let hash = hash_4k(vsid, EA);
        // Fill both groups of EA with foreign unbolted entries, so every insert must evict.
        for sec in [false, true] {
            let g = hpt.geo.group_base(hash, sec);
            for i in 0..8 {
                hpt.set(g + i, Hpte { v: ((0x300 + i) << 12) | HpteV::VALID.bits(), r: 0 });
            }
        }
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        for round in 0..300 {
            let a = if round % 2 == 0 { load() } else { store() };
            let (o, _) = fault_until_done(&c, EA, a, &be, &st, 10_000);
            assert!(matches!(o, Outcome::Inserted { .. } | Outcome::Updated), "{o:?}");
            consistent(&c, &hpt, EA);
            // Evict it behind the PTE's back now and then, another CPU's entry taking the
            // slot (so the next insert must evict again), and make the page clean again.
            if round % 3 == 0 {
                let p = c.load();
                let ptex = hpt.geo.ptex(hash, p.slot().unwrap());
                let _ = hpt.remove(ptex, avpn_for(vsid, EA));
                hpt.set(ptex, Hpte { v: ((0x400 + round) << 12) | HpteV::VALID.bits(), r: 0 });
                let mut spins = 0;
                c.update(PteFlags::DIRTY.bits(), 0, &mut spins);
            }
        }
        assert!(st.get(Counter::Evictions) > 0);
        for k in [Kind::EnterFull, Kind::EnterBusy, Kind::RemoveNotFound, Kind::RemoveBusy, Kind::ProtectNotFound] {
            assert!(inj.count(k) > 0, "{k:?} never fired");
        }
    }

    #[test]
    fn hardware_is_permanent_refused_and_the_pte_claims_nothing() {
        for (kind, call) in [(Kind::EnterHardware, Hcall::Enter), (Kind::ProtectHardware, Hcall::Protect)] {
            let hpt = FakeHpt::new(19);
            let st = Stats::new();
            let vsid = kernel_vsid(EA);
            let before = Pte::new(0x1234, PAGE_KERNEL);
            let c = CasCell(AtomicU64::new(before.0));
            if kind == Kind::ProtectHardware {
                hash_pte(&c, EA, vsid, load(), &hpt, &st);
            }
            let mid = c.load();
            let inj = Host::new(Plan::default().with(kind, Trigger::Every(1)));
            let be = Injecting { inner: &hpt, inj: &inj };
            let entries = hpt.valid_entries();
            for _ in 0..3 {
                assert_eq!(hash_pte(&c, EA, vsid, store(), &be, &st), Outcome::Refused(call, HcallError::Hardware));
                // Restored exactly: no BUSY, no DIRTY claimed; the table unchanged.
                assert_eq!(c.load(), mid);
                assert_eq!(hpt.valid_entries(), entries);
                consistent(&c, &hpt, EA);
            }
            assert_eq!(inj.count(kind), 3, "{kind:?} is permanent: every call fails");
        }
        // H_REMOVE: a flush is refused, the entry is still there (the caller must not free).
        let hpt = FakeHpt::new(19);
        let st = Stats::new();
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        hash_pte(&c, EA, kernel_vsid(EA), load(), &hpt, &st);
        let inj = Host::new(Plan::default().with(Kind::RemoveHardware, Trigger::Every(1)));
        let be = Injecting { inner: &hpt, inj: &inj };
        assert_eq!(flush_hpte(c.load(), EA, kernel_vsid(EA), &be), Err(HcallError::Hardware));
        assert_eq!(hpt.valid_entries().len(), 1);
    }

    #[test]
    fn remove_busy_in_a_flush_is_asked_again() {
        let hpt = FakeHpt::new(19);
        let st = Stats::new();
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        hash_pte(&c, EA, kernel_vsid(EA), load(), &hpt, &st);
        let inj = Host::new(Plan::default().with(Kind::RemoveBusy, Trigger::Every(2)));
        let be = Injecting { inner: &hpt, inj: &inj };
        // Call 1 goes through: nothing to retry. Make the first call busy instead.
        inj.calls.borrow_mut()[Site::Remove as usize] = 1;
        assert_eq!(flush_hpte(c.load(), EA, kernel_vsid(EA), &be), Ok(true));
        assert_eq!(inj.count(Kind::RemoveBusy), 1);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn nothing_armed_passes_everything_through() {
        let hpt = FakeHpt::new(19);
        let inj = Host::new(Plan::default());
        let be = Injecting { inner: &hpt, inj: &inj };
        let st = Stats::new();
        let c = CasCell(AtomicU64::new(Pte::new(0x1234, PAGE_KERNEL).0));
        assert_eq!(
            hash_pte(&c, EA, kernel_vsid(EA), load(), &be, &st),
            Outcome::Inserted { secondary: false, evicted: 0 }
        );
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), store(), &be, &st), Outcome::Updated);
        assert!(inj.fired.borrow().is_empty());
        assert_eq!(hcall_of(Kind::RemoveBusy), Some(Hcall::Remove));
        assert_eq!(hcall_of(Kind::Frame), None);
    }
}
