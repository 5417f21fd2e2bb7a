//! Model check of the native HPT backend (src/hash/native.rs, powernv) with loom: the very
//! `NativeHpt` code, over a memory whose HPT entries are loom atomics and whose MMU is
//! modelled too — one TLB per CPU, filled by a table walk that reads dword 0 then dword 1, and
//! emptied by `tlbie` (which waits for a walk in progress on that CPU, as tlbsync does).
//! Checked, over every interleaving (preemption bound 3):
//! - a walk concurrent with an insert finds either no entry or the complete new one, never a
//!   valid dword 0 with the slot's old dword 1 (the store order: dword 1, eieio, dword 0);
//! - once a removal returns — found it or not — no CPU translates the page any more, so the
//!   caller may free it: a concurrent eviction keeps the entry locked until its tlbie is done.
//! Two mutants must be caught: the valid bit stored before the second doubleword, and an
//! eviction that unlocks the entry before invalidating the TLBs.

use super::backend::HashBackend;
use super::native::{HptMem, NativeHpt};
use crate::mm::hpte::{avpn_for, hash_4k, HptGeometry, Hpte, HpteV};
use crate::mm::slbe::kernel_vsid;
use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::*};
use loom::sync::{Arc, Mutex};

const EA: u64 = 0xd000_0000_0004_2000;
const CPUS: usize = 3;
/// What the slot held before (a page this mapping never had).
const STALE_RPN: u64 = 0x666;
const NEW_RPN: u64 = 0x1234;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mutant {
    None,
    /// store_v performs the pending second doubleword only after dword 0.
    ValidBeforeR,
    /// invalidate() is put off until after the next store to dword 0 (the unlock).
    UnlockBeforeTlbie,
}

/// The primary group of EA as loom atomics, the per-CPU TLBs, and the order of operations a
/// mutant may get wrong.
struct Mem {
    geo: HptGeometry,
    base: u64,
    v: Vec<AtomicU64>,
    r: Vec<AtomicU64>,
    /// Per CPU: the real page its TLB translates EA to (None: no entry). The lock stands for
    /// "a walk or an invalidation is in progress on that CPU".
    tlb: Vec<Mutex<Option<u64>>>,
    mutant: Mutant,
    pending_r: Mutex<Option<(usize, u64)>>,
    pending_inval: Mutex<Option<u64>>,
}

impl Mem {
    fn new(mutant: Mutant) -> Mem {
        let geo = HptGeometry::new(19).unwrap();
        let base = geo.group_base(hash_4k(kernel_vsid(EA), EA), false);
        Mem {
            geo,
            base,
            v: (0..8).map(|_| AtomicU64::new(0)).collect(),
            // Every slot still holds an old second doubleword.
            r: (0..8).map(|_| AtomicU64::new((STALE_RPN << 12) | 0x190)).collect(),
            tlb: (0..CPUS).map(|_| Mutex::new(None)).collect(),
            mutant,
            pending_r: Mutex::new(None),
            pending_inval: Mutex::new(None),
        }
    }

    fn va() -> u64 {
        (kernel_vsid(EA) << 28) | (EA & 0x0fff_f000)
    }

    /// The MMU of `cpu` translating EA: its TLB, else a walk of the group (dword 0, and for a
    /// match dword 1), whose result it caches.
    fn translate(&self, cpu: usize) -> Option<u64> {
        let mut t = self.tlb[cpu].lock().unwrap();
        if t.is_some() {
            return *t;
        }
        let want = avpn_for(kernel_vsid(EA), EA);
        for i in 0..8 {
            let v = self.v[i].load(Acquire);
            if v & HpteV::VALID.bits() != 0 && v & crate::mm::hpte::AVPN_MASK == want {
                let r = self.r[i].load(Acquire);
                *t = Some(Hpte { v, r }.rpn());
                return *t;
            }
        }
        None
    }

    fn flush_all_tlbs(&self, rb: u64) {
        assert_eq!(rb, Self::va(), "tlbie operand is not the page's VA");
        fence(SeqCst);
        for t in &self.tlb {
            *t.lock().unwrap() = None;
        }
        fence(SeqCst);
    }
}

impl HptMem for Mem {
    type Slot = usize;
    fn geometry(&self) -> HptGeometry {
        self.geo
    }
    fn slot(&self, ptex: u64) -> usize {
        let i = ptex.wrapping_sub(self.base);
        assert!(i < 8, "ptex {ptex:#x} outside the modelled group");
        i as usize
    }
    fn next(&self, s: usize, n: u64) -> usize {
        s + n as usize
    }
    fn load_v(&self, s: usize) -> u64 {
        self.v[s].load(Acquire)
    }
    fn load_r(&self, s: usize) -> u64 {
        self.r[s].load(Acquire)
    }
    fn try_lock(&self, s: usize, expect: u64) -> bool {
        self.v[s].compare_exchange(expect, expect | HpteV::LOCK.bits(), Acquire, Relaxed).is_ok()
    }
    fn store_r(&self, s: usize, r: u64) {
        if self.mutant == Mutant::ValidBeforeR {
            *self.pending_r.lock().unwrap() = Some((s, r));
        } else {
            self.r[s].store(r, Relaxed);
        }
    }
    fn order_stores(&self) {
        // eieio: the stores before it reach the table before the stores after it.
        fence(Release);
    }
    fn store_v(&self, s: usize, v: u64) {
        self.v[s].store(v, Release);
        if let Some((ps, r)) = self.pending_r.lock().unwrap().take() {
            self.r[ps].store(r, Release);
        }
        if let Some(rb) = self.pending_inval.lock().unwrap().take() {
            self.flush_all_tlbs(rb);
        }
    }
    fn table_sync(&self) {
        fence(SeqCst);
    }
    fn invalidate(&self, rb: u64) {
        if self.mutant == Mutant::UnlockBeforeTlbie {
            *self.pending_inval.lock().unwrap() = Some(rb);
        } else {
            self.flush_all_tlbs(rb);
        }
    }
    fn relax(&self) {
        loom::thread::yield_now();
    }
    fn random(&self) -> u64 {
        0
    }
}

fn new_hpte() -> Hpte {
    crate::mm::hpte::hpte_for(kernel_vsid(EA), EA, NEW_RPN, crate::mm::pte::PAGE_KERNEL, false, false)
}

fn check(name: &str, mutant: Mutant, body: fn(Arc<NativeHpt<Mem>>)) -> usize {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        r2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body(Arc::new(NativeHpt { mem: Mem::new(mutant) }));
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    if mutant == Mutant::None {
        println!("loom: native HPT, {name}: {n} interleavings explored");
    }
    n
}

/// An insert into the group while another CPU's MMU walks it.
fn insert_vs_walk(hpt: Arc<NativeHpt<Mem>>) {
    let h = hpt.clone();
    let walker = loom::thread::spawn(move || h.mem.translate(1));
    let e = new_hpte();
    let g = hpt.mem.base;
    hpt.insert(g, e.v, e.r).unwrap();
    let seen = walker.join().unwrap();
    assert!(seen.is_none() || seen == Some(NEW_RPN), "a walk saw the valid bit with the slot's old second doubleword: page {seen:#x?}");
    assert_eq!(hpt.mem.translate(0), Some(NEW_RPN));
}

/// CPU 0 removes the entry (vfree's flush) while CPU 2 evicts it (another fault needing the
/// slot) and CPU 1 keeps using the page; once CPU 0's removal has returned, it frees the page:
/// from then on no CPU may translate to it.
fn remove_vs_eviction(hpt: Arc<NativeHpt<Mem>>) {
    let e = new_hpte();
    let g = hpt.mem.base;
    let p = hpt.insert(g, e.v, e.r).unwrap();
    // CPU 1's TLB has the translation already (it used the page).
    assert_eq!(hpt.mem.translate(1), Some(NEW_RPN));
    let freed = Arc::new(AtomicBool::new(false));
    let (h1, f1) = (hpt.clone(), freed.clone());
    let user = loom::thread::spawn(move || {
        if f1.load(Acquire) {
            let t = h1.mem.translate(1);
            assert!(t != Some(NEW_RPN), "CPU 1 still translates a page that was freed after its flush returned");
        }
    });
    let h2 = hpt.clone();
    let evictor = loom::thread::spawn(move || {
        let _ = h2.remove_unbolted(p);
    });
    let r = hpt.remove(p, avpn_for(kernel_vsid(EA), EA));
    assert!(matches!(r, Ok(_) | Err(super::backend::RemoveError::NotFound)), "{r:?}");
    freed.store(true, Release);
    user.join().unwrap();
    evictor.join().unwrap();
    assert!(hpt.mem.v.iter().all(|v| v.load(Acquire) == 0), "an entry or a lock is left behind");
}

#[test]
fn native_insert_is_never_seen_half_written() {
    assert!(check("insert x table walk", Mutant::None, insert_vs_walk) > 5);
}

#[test]
fn native_removal_leaves_no_translation() {
    assert!(check("flush x eviction x a CPU using the page", Mutant::None, remove_vs_eviction) > 10);
}

fn caught(mutant: Mutant, body: fn(Arc<NativeHpt<Mem>>)) -> bool {
    std::panic::catch_unwind(|| check("mutant", mutant, body)).is_err()
}

#[test]
fn model_catches_valid_bit_before_second_doubleword() {
    assert!(caught(Mutant::ValidBeforeR, insert_vs_walk), "loom did not find a walk that sees the valid bit before dword 1");
    println!("loom: native HPT: the valid bit stored before the second doubleword is caught");
}

#[test]
fn model_catches_unlock_before_tlbie() {
    assert!(caught(Mutant::UnlockBeforeTlbie, remove_vs_eviction), "loom did not find a translation surviving a returned flush");
    println!("loom: native HPT: an eviction that unlocks before its tlbie is caught");
}
