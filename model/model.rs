//! Model check of the PTE protocol with loom: every interleaving (up to a preemption bound) of
//! hash_page on two CPUs against a third that clears the PTE and flushes its HPTE (vfree), the
//! race the 2003 review worried about. The HPT is the host fake: each hypercall is one atomic
//! step, as the hypervisor makes it. Checked after every execution:
//! - no PTE is left BUSY;
//! - if the PTE is clear, no HPTE translates the page;
//! - at most one HPTE translates the page, and if one does, the PTE knows its slot;
//! - a store that completed left DIRTY in the PTE it went through (unless it was then cleared).

use super::access::Access;
use super::backend::fake::FakeHpt;
use super::backend::HashBackend;
use super::cell::{Atomic64, CasCell, PteCell};
use super::protocol::{clear_and_flush, hash_pte, Outcome};
use super::stats::Stats;
use crate::mm::hpte::{hash_4k, HptGeometry};
use crate::mm::pte::{Pte, PteFlags, PAGE_KERNEL};
use crate::mm::slbe::kernel_vsid;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;

struct LoomAtomic(AtomicU64);

impl Atomic64 for LoomAtomic {
    fn load_acquire(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    fn cas_weak(&self, old: u64, new: u64) -> Result<u64, u64> {
        self.0.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
    }
    fn store_release(&self, v: u64) {
        self.0.store(v, Ordering::Release)
    }
    fn spin_wait(&self) {
        loom::thread::yield_now();
    }
}

/// The fake HPT with a scheduling point before every hypercall, so loom also interleaves the
/// hypervisor's steps (each call itself stays atomic, as the hypervisor makes it).
struct LoomHpt {
    hpt: FakeHpt,
    tick: AtomicU64,
}

impl LoomHpt {
    fn point(&self) {
        self.tick.fetch_add(1, Ordering::SeqCst);
    }
    fn valid_entries(&self) -> Vec<(u64, crate::mm::hpte::Hpte)> {
        self.hpt.valid_entries()
    }
}

impl HashBackend for LoomHpt {
    fn geometry(&self) -> HptGeometry {
        self.hpt.geometry()
    }
    fn insert(&self, g: u64, v: u64, r: u64) -> Result<u64, super::backend::InsertError> {
        self.point();
        self.hpt.insert(g, v, r)
    }
    fn read_group(&self, g: u64) -> Result<[crate::mm::hpte::Hpte; 8], super::backend::HcallError> {
        self.point();
        self.hpt.read_group(g)
    }
    fn protect(&self, ptex: u64, avpn: u64, f: u64) -> Result<(), super::backend::ProtectError> {
        self.point();
        self.hpt.protect(ptex, avpn, f)
    }
    fn remove(&self, ptex: u64, avpn: u64) -> Result<crate::mm::hpte::Hpte, super::backend::RemoveError> {
        self.point();
        self.hpt.remove(ptex, avpn)
    }
    fn remove_unbolted(&self, ptex: u64) -> Result<crate::mm::hpte::Hpte, super::backend::RemoveError> {
        self.point();
        self.hpt.remove_unbolted(ptex)
    }
    fn read(&self, ptex: u64) -> crate::mm::hpte::Hpte {
        self.hpt.read(ptex)
    }
    fn random(&self) -> u64 {
        self.hpt.random()
    }
}

const EA: u64 = 0xd000_0000_0004_2000;

fn geo() -> HptGeometry {
    HptGeometry::new(19).unwrap()
}

/// Invariants over the final state.
fn check(cell: &CasCell<LoomAtomic>, hpt: &LoomHpt) {
    let pte = cell.load();
    let vsid = kernel_vsid(EA);
    let matching: Vec<(u64, _)> = hpt.valid_entries().into_iter().filter(|(_, h)| h.matches(vsid, EA)).collect();
    assert!(!pte.is_busy(), "PTE left BUSY: {pte}");
    assert!(matching.len() <= 1, "{} HPTEs translate one page", matching.len());
    if !pte.is_present() {
        assert!(matching.is_empty(), "HPTE {:?} survives a cleared PTE {pte}", matching);
    }
    if let Some((ptex, h)) = matching.first() {
        let slot = pte.slot().expect("an HPTE exists but the PTE has no slot bits");
        assert_eq!(geo().ptex(hash_4k(vsid, EA), slot), *ptex, "PTE slot bits do not name the live HPTE");
        assert_eq!(h.rpn(), pte.pfn());
    }
}

/// Faulting CPU: keeps re-executing the access while hash_page says Retry (as the real CPU
/// does via rfid), at most `tries` times.
fn fault(cell: &CasCell<LoomAtomic>, hpt: &LoomHpt, store: bool, tries: usize) -> Option<Outcome> {
    let st = Stats::new();
    let access = Access::from_data_fault(if store { 0x4200_0000 } else { 0x4000_0000 }, false);
    for _ in 0..tries {
        let o = hash_pte(cell, EA, kernel_vsid(EA), access, hpt, &st);
        if !matches!(o, Outcome::Retry(_)) {
            return Some(o);
        }
        loom::thread::yield_now();
    }
    None
}

fn model(body: impl Fn(Arc<CasCell<LoomAtomic>>, Arc<LoomHpt>) + Sync + Send + 'static) -> usize {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        r2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cell = Arc::new(CasCell(LoomAtomic(AtomicU64::new(Pte::new(0x77, PAGE_KERNEL).0))));
        let hpt = Arc::new(LoomHpt { hpt: FakeHpt::new(19), tick: AtomicU64::new(0) });
        body(cell.clone(), hpt.clone());
        check(&cell, &hpt);
    });
    runs.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn two_faulting_cpus_and_a_clear_and_flush() {
    let n = model(|cell, hpt| {
        let (c1, h1) = (cell.clone(), hpt.clone());
        let t1 = loom::thread::spawn(move || fault(&c1, &h1, true, 3));
        let (c2, h2) = (cell.clone(), hpt.clone());
        let t2 = loom::thread::spawn(move || fault(&c2, &h2, false, 3));
        let mut spins = 0;
        let old = clear_and_flush(&*cell, EA, kernel_vsid(EA), &*hpt, &mut spins).unwrap();
        let r1 = t1.join().unwrap();
        let _ = t2.join().unwrap();
        // Once cleared, nothing may resurrect the mapping: the final PTE is clear and (checked
        // in `check`) no HPTE translates the page.
        assert_eq!(cell.load().0, 0, "cleared PTE was overwritten (old {old})");
        // If the clear saw a PTE that a fault had published (HASHPTE), that fault's take set
        // ACCESSED in it (and DIRTY for the store, checked in the next model).
        if matches!(r1, Some(Outcome::Inserted { .. }) | Some(Outcome::Updated)) && old.is_present() && old.has_hashpte() {
            assert!(old.flags().contains(PteFlags::ACCESSED), "{old}");
        }
    });
    println!("loom: two hash_page CPUs x clear-and-flush: {n} interleavings explored");
    assert!(n > 100, "only {n} interleavings: the model is not exploring");
}

#[test]
fn concurrent_faults_insert_exactly_one_hpte() {
    let n = model(|cell, hpt| {
        let (c1, h1) = (cell.clone(), hpt.clone());
        let t1 = loom::thread::spawn(move || fault(&c1, &h1, true, 4));
        let r0 = fault(&cell, &hpt, false, 4);
        let r1 = t1.join().unwrap();
        let pte = cell.load();
        // Both accesses eventually complete (no spurious denial), the store's DIRTY is there.
        assert!(r0.is_some() && r1.is_some(), "{r0:?} {r1:?}");
        assert!(!matches!(r0, Some(Outcome::Denied(_))) && !matches!(r1, Some(Outcome::Denied(_))));
        assert!(pte.flags().contains(PteFlags::DIRTY | PteFlags::ACCESSED | PteFlags::HASHPTE), "{pte}");
        let vsid = kernel_vsid(EA);
        assert_eq!(hpt.valid_entries().iter().filter(|(_, h)| h.matches(vsid, EA)).count(), 1);
    });
    println!("loom: two concurrent faults on one PTE: {n} interleavings explored");
    assert!(n > 10);
}

#[test]
fn eviction_against_update_reinserts() {
    // A third party (the hypervisor, another CPU's eviction) removes the HPTE while a CPU
    // upgrades it (store to a clean page): the update falls back to insert.
    let n = model(|cell, hpt| {
        assert!(fault(&cell, &hpt, false, 1).is_some());
        let (c1, h1) = (cell.clone(), hpt.clone());
        let t1 = loom::thread::spawn(move || fault(&c1, &h1, true, 4));
        let pte = cell.load();
        if let Some(slot) = pte.slot() {
            let vsid = kernel_vsid(EA);
            let _ = hpt.remove(geo().ptex(hash_4k(vsid, EA), slot), crate::mm::hpte::avpn_for(vsid, EA));
        }
        assert!(t1.join().unwrap().is_some());
        assert!(cell.load().flags().contains(PteFlags::DIRTY));
    });
    println!("loom: eviction x HPTE update: {n} interleavings explored");
}


/// The 2003 bug, on purpose: a clear that does not wait for BUSY. The model must catch it
/// (otherwise the checks above prove nothing).
struct NoBusyWait(CasCell<LoomAtomic>);

impl PteCell for NoBusyWait {
    fn load(&self) -> Pte {
        self.0.load()
    }
    fn take(&self, a: Access) -> super::cell::Take {
        self.0.take(a)
    }
    fn publish(&self, v: Pte) {
        self.0.publish(v)
    }
    fn update(&self, clr: u64, set: u64, _spins: &mut u64) -> Pte {
        loop {
            let old = self.0 .0.load_acquire();
            if self.0 .0.cas_weak(old, (old & !clr) | set).is_ok() {
                return Pte(old);
            }
        }
    }
}

#[test]
fn model_catches_a_clear_that_ignores_busy() {
    let r = std::panic::catch_unwind(|| {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let cell = Arc::new(NoBusyWait(CasCell(LoomAtomic(AtomicU64::new(Pte::new(0x77, PAGE_KERNEL).0)))));
            let hpt = Arc::new(LoomHpt { hpt: FakeHpt::new(19), tick: AtomicU64::new(0) });
            let (c1, h1) = (cell.clone(), hpt.clone());
            let t1 = loom::thread::spawn(move || {
                let st = Stats::new();
                let a = Access::from_data_fault(0x4200_0000, false);
                let _ = hash_pte(&*c1, EA, kernel_vsid(EA), a, &*h1, &st);
            });
            let mut spins = 0;
            let _ = clear_and_flush(&*cell, EA, kernel_vsid(EA), &*hpt, &mut spins);
            t1.join().unwrap();
            assert_eq!(cell.load().0, 0, "cleared PTE resurrected");
            let vsid = kernel_vsid(EA);
            assert!(hpt.valid_entries().iter().all(|(_, h)| !h.matches(vsid, EA)), "stale HPTE after clear");
        });
    });
    assert!(r.is_err(), "loom did not find the race in a clear that ignores BUSY");
    println!("loom: a clear that ignores BUSY is caught (the 2003 objection)");
}
