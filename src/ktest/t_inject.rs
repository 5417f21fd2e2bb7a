//! inject:: tests — fault injection against the real hypervisor: each test arms a plan of its
//! own for a few accesses (`inject::with_plan`), so the rest of the suite runs without it.
//! The accesses are plain loads and stores (no probes) wherever the kernel must survive: a
//! refusal there is an oops, which fails the run.

use super::t_hash::fresh_page;
use crate::arch::ppc64::exception::{probe_read, probe_write, ExcFrame};
use crate::arch::ppc64::{boot, hcall, insn, timer};
use crate::hash::protocol::Hcall;
use crate::hash::reason::FaultReason;
use crate::hash::stats::{self, Counter};
use crate::inject::{self, Kind, Plan, Trigger};
use crate::ktest::TestResult;
use crate::mm::frame::Ledger;
use crate::mm::hpte::{avpn_for, hash_4k, Hpte, HpteV};
use crate::mm::pte::PteFlags;
use crate::mm::slbe::kernel_vsid;
use crate::mm::vmalloc::{self, VmError};
use crate::{kassert, kassert_eq, ktest};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

fn e(x: VmError) -> String {
    format!("{x}")
}

fn read(a: u64) -> u64 {
    // SAFETY: callers pass live, readable kernel mappings.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}

fn write(a: u64, v: u64) {
    // SAFETY: callers pass live, writable kernel mappings.
    unsafe { core::ptr::write_volatile(a as *mut u64, v) }
}

/// The invariants the SMP stress checks through H_READ, for one page: the PTE is not BUSY;
/// at most one HPTE translates the page; if one does, the PTE is present, its slot bits name
/// exactly that entry, and the entry maps the PTE's frame.
fn consistent(ea: u64) -> Result<(), String> {
    let pte = vmalloc::pte_of(ea).ok_or("no PTE")?;
    let mut hs = [(0, Hpte { v: 0, r: 0 }); 4];
    let n = vmalloc::find_hptes(ea, &mut hs);
    kassert!(!pte.is_busy(), "PTE of {ea:#x} left BUSY: {pte}");
    kassert!(n <= 1, "{n} HPTEs translate {ea:#x}");
    if n == 1 {
        let (ptex, h) = hs[0];
        let geo = boot::info().hpt();
        kassert!(pte.is_present(), "HPTE {ptex:#x} for a PTE that is not present: {pte}");
        kassert_eq!(pte.slot().map(|s| geo.ptex(hash_4k(kernel_vsid(ea), ea), s)), Some(ptex));
        kassert_eq!(h.rpn(), pte.pfn());
    }
    Ok(())
}

static IRQ_FN: AtomicU64 = AtomicU64::new(0);
static IRQ_ARG: AtomicU64 = AtomicU64::new(0);
static IRQ_DONE: AtomicBool = AtomicBool::new(false);

fn on_decrementer(_f: &mut ExcFrame) {
    // SAFETY: IRQ_FN only holds a `fn(u64)` stored by `in_interrupt`.
    let f: fn(u64) = unsafe { core::mem::transmute(IRQ_FN.load(Relaxed) as usize) };
    f(IRQ_ARG.load(Relaxed));
    IRQ_DONE.store(true, Release);
}

/// Runs `f(arg)` from a decrementer interrupt handler on this CPU and waits for it.
fn in_interrupt(f: fn(u64), arg: u64) -> Result<(), String> {
    IRQ_FN.store(f as usize as u64, Relaxed);
    IRQ_ARG.store(arg, Relaxed);
    IRQ_DONE.store(false, Relaxed);
    timer::set_hook(Some(on_decrementer));
    crate::arch::ppc64::irq::enable();
    timer::arm(512);
    let start = insn::mftb();
    while !IRQ_DONE.load(Acquire) && insn::mftb() - start < timer::us_to_tb(2_000_000) {
        insn::cpu_relax();
    }
    crate::arch::ppc64::irq::disable();
    timer::arm(timer::DEC_IDLE);
    timer::set_hook(None);
    kassert!(IRQ_DONE.load(Acquire), "the decrementer handler did not run within 2 s");
    Ok(())
}

ktest!("inject", only Pseries, lost_eviction_races_re_execute_even_in_interrupts);
fn lost_eviction_races_re_execute_even_in_interrupts() -> TestResult {
    // H_PTEG_FULL on every H_ENTER for 40 calls: both groups stay "full" after every eviction
    // round, as when other CPUs refill them as fast as this one evicts. One attempt makes 18
    // H_ENTER calls (primary, secondary, 8 rounds of two), then gives the access back to be
    // re-executed: the third attempt inserts. A bounded eviction that refused instead would
    // oops here (a plain store, from thread context and from an interrupt handler).
    let plan = Plan::default().with(Kind::EnterFull, Trigger::Every(1)).times(Kind::EnterFull, 40);
    for irq in [false, true] {
        let a = fresh_page()?;
        let r0 = stats::total().get(Counter::RetryEvictions);
        inject::with_plan(&plan, || {
            if irq {
                in_interrupt(|a| write(a, 0x1e), a)
            } else {
                write(a, 0x1e);
                Ok(())
            }
        })?;
        let retried = stats::total().get(Counter::RetryEvictions) - r0;
        let full = inject::injected_of(Kind::EnterFull);
        let v = read(a);
        let c = consistent(a);
        let h = vmalloc::find_hpte(a);
        vmalloc::vfree(a).map_err(e)?;
        c?;
        kassert_eq!(v, 0x1e);
        kassert_eq!(full, 40);
        kassert!(retried >= 2, "{} eviction re-executions (interrupt: {irq}): the access was not given back", retried);
        kassert!(h.is_some(), "no HPTE after the access went through");
    }
    Ok(())
}

/// Fills what is free of both HPTE groups of `ea` with unbolted entries of a VSID no region
/// uses (another partition's pages, say), so the next insert for `ea` must evict one.
fn crowd(ea: u64, dummies: &mut alloc::vec::Vec<(u64, u64)>, k: &mut u64) {
    let vsid = 0x0f_ffff_fd00u64;
    let geo = boot::info().hpt();
    let hash = hash_4k(kernel_vsid(ea), ea);
    for g in [geo.group_base(hash, false), geo.group_base(hash, true)] {
        while let Ok(ptex) =
            hcall::h_enter(0, g, avpn_for(vsid, *k << 23) | HpteV::VALID.bits(), (0x2000 << 12) | 0x10 | 0x2)
        {
            dummies.push((ptex, avpn_for(vsid, *k << 23)));
            *k += 1;
        }
    }
}

ktest!("inject", only Pseries, transient_hypervisor_answers_are_survived);
fn transient_hypervisor_answers_are_survived() -> TestResult {
    // Every transient kind, every few calls, on 16 pages that are loaded, stored, evicted and
    // made clean again (so H_ENTER, H_PROTECT and H_REMOVE all run), the groups of page 0
    // crowded before each access (so its inserts evict): every access completes, every page
    // stays consistent, and every kind fired.
    let plan = Plan::default()
        .with(Kind::EnterFull, Trigger::Every(3))
        .with(Kind::EnterBusy, Trigger::Every(5))
        .with(Kind::EnterLongBusy, Trigger::Every(7))
        .with(Kind::ProtectNotFound, Trigger::Every(2))
        .with(Kind::ProtectBusy, Trigger::Every(3))
        .with(Kind::RemoveNotFound, Trigger::Every(2))
        .with(Kind::RemoveBusy, Trigger::Every(3));
    let pages = 16u64;
    let a = vmalloc::vmalloc(pages * 4096).map_err(e)?;
    let s0 = stats::total();
    let (mut dummies, mut k) = (alloc::vec::Vec::new(), 0u64);
    let r = inject::with_plan(&plan, || -> crate::ktest::TestResult {
        for round in 0..12u64 {
            for p in 0..pages {
                let ea = a + p * 4096;
                if p == 0 {
                    crowd(ea, &mut dummies, &mut k);
                }
                if round % 2 == 0 {
                    kassert_eq!(read(ea + 8), if round == 0 { 0 } else { round - 1 + p });
                } else {
                    write(ea + 8, round + p);
                }
                consistent(ea)?;
                match round % 3 {
                    0 => {
                        vmalloc::evict_hpte(ea);
                    }
                    1 => {
                        vmalloc::change_protection(ea, PteFlags::DIRTY, PteFlags::empty()).map_err(e)?;
                    }
                    _ => {}
                }
                consistent(ea)?;
            }
        }
        Ok(())
    });
    let d = stats::total().since(&s0);
    let inj = inject::injected();
    vmalloc::vfree(a).map_err(e)?;
    for (ptex, avpn) in &dummies {
        let _ = hcall::h_remove(hcall::H_AVPN, *ptex, *avpn);
    }
    r?;
    for p in 0..pages {
        kassert!(vmalloc::find_hpte(a + p * 4096).is_none(), "HPTE left after vfree at page {p}");
    }
    for k in Kind::ALL.iter().filter(|k| k.is_transient()) {
        kassert!(inj[*k as usize] > 0, "{} never fired", k.name());
    }
    kassert!(
        d.get(Counter::RetryHvBusy) > 0 && d.get(Counter::InsertSecondary) > 0 && d.get(Counter::Evictions) > 0,
        "{d:?}"
    );
    kassert_eq!(d.get(Counter::HvRefusals), 0);
    Ok(())
}

ktest!("inject", only Pseries, permanent_hardware_failure_is_refused_and_claims_nothing);
fn permanent_hardware_failure_is_refused_and_claims_nothing() -> TestResult {
    // H_HARDWARE on H_ENTER, H_PROTECT, H_REMOVE: through a probe (which turns the oops the
    // kernel would print into an error carrying its reason) the fault is refused naming the
    // call and status, again on the next try (permanent), and the PTE never claims an HPTE
    // that does not exist.
    // H_ENTER: a fresh page gets no HPTE.
    let a = fresh_page()?;
    let before = vmalloc::pte_of(a).ok_or("no PTE")?;
    let plan = Plan::default().with(Kind::EnterHardware, Trigger::Every(1));
    let (r1, r2) = inject::with_plan(&plan, || (probe_read(a), probe_write(a, 1)));
    let after = vmalloc::pte_of(a).ok_or("no PTE")?;
    let h = vmalloc::find_hpte(a);
    vmalloc::vfree(a).map_err(e)?;
    for r in [r1.map(|_| ()), r2] {
        let f = r.err().ok_or("an access with H_ENTER failing went through")?;
        kassert_eq!(f.reason, FaultReason::Refused(Hcall::Enter, crate::arch::ppc64::papr::HcallError::Hardware));
        kassert_eq!(format!("{}", f.reason), "the hypervisor refused H_ENTER: H_HARDWARE");
    }
    kassert_eq!(after, before);
    kassert!(h.is_none(), "an HPTE exists although H_ENTER failed");

    // H_PROTECT: a clean page with a read-only HPTE; the store's upgrade fails; the PTE still
    // names the (unchanged, existing) read-only HPTE and is not DIRTY.
    let b = fresh_page()?;
    let _ = read(b);
    let clean = vmalloc::pte_of(b).ok_or("no PTE")?;
    let plan = Plan::default().with(Kind::ProtectHardware, Trigger::Every(1));
    let (w1, w2) = inject::with_plan(&plan, || (probe_write(b, 1), probe_write(b, 2)));
    let after = vmalloc::pte_of(b).ok_or("no PTE")?;
    let c = consistent(b);
    let h = vmalloc::find_hpte(b);
    vmalloc::vfree(b).map_err(e)?;
    for w in [w1, w2] {
        let f = w.err().ok_or("a store with H_PROTECT failing went through")?;
        kassert_eq!(format!("{}", f.reason), "the hypervisor refused H_PROTECT: H_HARDWARE");
    }
    c?;
    kassert_eq!(after, clean);
    kassert!(matches!(h, Some((_, h)) if h.pp() == 6), "the HPTE changed: {h:?}");

    // H_REMOVE (the eviction's): both groups of a fresh page filled with unbolted dummies (a
    // VSID no region uses), so the fault must evict; the removal fails; nothing is inserted.
    let c = fresh_page()?;
    let vsid = kernel_vsid(c);
    let geo = boot::info().hpt();
    let hash = hash_4k(vsid, c);
    let dummy_vsid = 0x0f_ffff_fe00u64;
    let mut dummies = alloc::vec::Vec::new();
    let mut k = 0u64;
    for g in [geo.group_base(hash, false), geo.group_base(hash, true)] {
        while let Ok(ptex) =
            hcall::h_enter(0, g, avpn_for(dummy_vsid, k << 23) | HpteV::VALID.bits(), (0x2000 << 12) | 0x10 | 0x2)
        {
            dummies.push((ptex, avpn_for(dummy_vsid, k << 23)));
            k += 1;
        }
    }
    let before = vmalloc::pte_of(c).ok_or("no PTE")?;
    let plan = Plan::default().with(Kind::RemoveHardware, Trigger::Every(1));
    let r = inject::with_plan(&plan, || probe_read(c));
    let after = vmalloc::pte_of(c).ok_or("no PTE")?;
    let h = vmalloc::find_hpte(c);
    let left = dummies
        .iter()
        .filter(|(p, avpn)| matches!(hcall::h_read(*p), Ok((v, _)) if v & 1 != 0 && v & !0x7f == *avpn))
        .count();
    for (ptex, avpn) in &dummies {
        let _ = hcall::h_remove(hcall::H_AVPN, *ptex, *avpn);
    }
    vmalloc::vfree(c).map_err(e)?;
    let f = r.err().ok_or("an access needing an eviction went through with H_REMOVE failing")?;
    kassert_eq!(format!("{}", f.reason), "the hypervisor refused H_REMOVE: H_HARDWARE");
    kassert_eq!(after, before);
    kassert!(h.is_none(), "an HPTE exists although the eviction failed");
    kassert_eq!(left, dummies.len());
    Ok(())
}

ktest!("inject", allocation_failures_are_named_errors);
fn allocation_failures_are_named_errors() -> TestResult {
    // Frame allocation failing: vmalloc says "out of memory" (never a panic), whether the
    // first frame or a later one fails, and gives back every frame it took; a page table that
    // cannot be allocated is the same error. Heap failure (vmalloc's bookkeeping) likewise;
    // an infallible heap allocation is never failed on purpose.
    let ledger = Ledger::now();
    let frame = |n: u32| Plan::default().with(Kind::Frame, Trigger::Every(n));
    let r1 = inject::with_plan(&frame(1), || vmalloc::vmalloc(4096));
    // Frames 1..3 succeed, the 4th fails: the three are given back.
    let r2 = inject::with_plan(&frame(4), || vmalloc::vmalloc(6 * 4096));
    // An address whose page table does not exist yet (page tables are never freed, and other
    // tests place areas far out too): the first free GiB from 40 GiB on.
    let far = (40u64..512)
        .map(|g| vmalloc::VMALLOC_START + (g << 30))
        .find(|&a| crate::mm::pgtable::walk(a).is_none())
        .ok_or("every GiB of the vmalloc region has page tables")?;
    let r3 = inject::with_plan(&frame(1), || vmalloc::set_pte_raw(far, 0, 0));
    let heap = Plan::default().with(Kind::Heap, Trigger::Every(1));
    let (r4, infallible) = inject::with_plan(&heap, || {
        let r = vmalloc::vmalloc(4096);
        let v: alloc::vec::Vec<u64> = alloc::vec![7; 64];
        (r, v.len())
    });
    // An interrupt handler that allocates while the thread it interrupted is inside a
    // fallible section is not failed on purpose (its allocation could not handle it: the
    // kernel would abort); the section's own allocation still is.
    let (in_irq, in_section) = inject::with_plan(&heap, || {
        inject::fallible(|| {
            let irq = in_interrupt(|n| IRQ_ARG.store(alloc::vec![n; 32].len() as u64, Relaxed), 5);
            let mut v: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
            (irq.map(|()| IRQ_ARG.load(Relaxed)), v.try_reserve_exact(16).is_err())
        })
    });
    let heap_fired = inject::injected_of(Kind::Heap);
    let leaked = ledger.leaked_since();
    kassert_eq!(r1, Err(VmError::OutOfMemory));
    kassert_eq!(r2, Err(VmError::OutOfMemory));
    kassert!(matches!(r3, Err(VmError::OutOfMemory)), "{r3:?}");
    kassert_eq!(r4, Err(VmError::OutOfMemory));
    kassert_eq!(format!("{}", VmError::OutOfMemory), "out of memory");
    kassert_eq!(infallible, 64);
    kassert_eq!(in_irq?, 32);
    kassert!(in_section, "the fallible section's own allocation was not failed");
    kassert_eq!(heap_fired, 1);
    kassert_eq!(leaked, 0);
    // And once disarmed, it works.
    let a = vmalloc::vmalloc(6 * 4096).map_err(e)?;
    write(a + 5 * 4096, 3);
    vmalloc::vfree(a).map_err(e)?;
    Ok(())
}

ktest!("inject", only Pseries, same_seed_same_failures);
fn same_seed_same_failures() -> TestResult {
    // On one CPU the decisions depend only on the plan, the seed and the calls: the same
    // workload under the same seed injects the same failures; another seed, others.
    let run = |seed: u64| -> Result<[u64; inject::KINDS], String> {
        let mut plan = Plan::default()
            .with(Kind::EnterBusy, Trigger::Ppm(300_000))
            .with(Kind::RemoveNotFound, Trigger::Ppm(300_000));
        plan.seed = seed;
        let a = vmalloc::vmalloc(8 * 4096).map_err(e)?;
        let r = inject::with_plan(&plan, || {
            for p in 0..8 {
                write(a + p * 4096, p);
                vmalloc::evict_hpte(a + p * 4096);
                write(a + p * 4096 + 8, p);
            }
            inject::injected()
        });
        vmalloc::vfree(a).map_err(e)?;
        Ok(r)
    };
    let (x, y, z) = (run(7)?, run(7)?, run(8)?);
    kassert_eq!(x, y);
    kassert!(x != z, "seeds 7 and 8 injected the same failures: {x:?}");
    kassert!(x[Kind::EnterBusy as usize] > 0 && x[Kind::RemoveNotFound as usize] > 0, "{x:?}");
    Ok(())
}

ktest!("inject", only Pseries, disarmed_the_default_path_is_back);
fn disarmed_the_default_path_is_back() -> TestResult {
    // Arming hypervisor kinds patches the 0x300 entry's call to the injecting design; disarming
    // puts back whichever design was on (the default, or the one `hash_page=` chose). Through
    // `design_entry`, so a traced run (whose call goes to the trace's entry first) checks the same.
    use crate::hash::fault::{design, design_entry, do_hash_fault_inject, Design};
    let at = |f: u64| design_entry() == f || design_entry() == f + 8;
    let (was, entry) = (design(), design_entry());
    kassert!(was != Design::Inject, "armed before the test: {:#x}", entry);
    let plan = Plan::default().with(Kind::EnterBusy, Trigger::Every(2));
    let (armed_design, armed_call) =
        inject::with_plan(&plan, || (design(), at(do_hash_fault_inject as *const () as u64)));
    kassert!(armed_design == Design::Inject && armed_call, "armed: {:?}, call {:#x}", armed_design, design_entry());
    kassert!(
        design() == was && design_entry() == entry,
        "after: {:?} (was {:?}), call {:#x} (was {:#x})",
        design(),
        was,
        design_entry(),
        entry
    );
    // Allocation kinds alone leave the fault path alone.
    let plan = Plan::default().with(Kind::Frame, Trigger::Every(1000));
    let d = inject::with_plan(&plan, design);
    kassert!(d == was, "{d:?}");
    Ok(())
}
