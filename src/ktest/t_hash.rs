//! hash_page:: tests, against the real hypervisor HPT.

use crate::arch::ppc64::boot;
use crate::arch::ppc64::exception::{probe_read, probe_write};
use crate::arch::ppc64::reg::Dsisr;
use crate::hash::access::{decide, Access, Step};
use crate::hash::backend::HashBackend;
use crate::hash::cell::{PteCell, PteSlot, Take};
use crate::hash::hpt::Hpt;
use crate::hash::stats::{self, Counter};
use crate::ktest::TestResult;
use crate::mm::hpte::{avpn_for, hash_4k, HpteV};
use crate::mm::pte::{Pte, PteFlags, PAGE_KERNEL, PAGE_KERNEL_RO};
use crate::mm::slbe::kernel_vsid;
use crate::mm::vmalloc::{self, VmError};
use crate::{kassert, kassert_eq, ktest};
use alloc::format;

fn e(x: VmError) -> alloc::string::String {
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

/// A page whose PTE is present but never hashed: vmalloc zeroes through the mapping, so take a
/// fresh page by clearing its HPTE by hand after allocation.
pub(super) fn fresh_page() -> Result<u64, alloc::string::String> {
    let a = vmalloc::vmalloc(4096).map_err(e)?;
    let p = vmalloc::pte_of(a).ok_or("no PTE")?;
    // Drop the HPTE and the A/D/slot bits: as if just mapped.
    let old = vmalloc::clear_pte(a).ok_or("no PTE")?;
    vmalloc::set_pte_raw(a, u64::MAX, Pte::new(old.pfn(), PAGE_KERNEL).raw()).map_err(e)?;
    kassert!(p.is_present());
    Ok(a)
}

ktest!("hash_page", faults_enter_at_the_ail_block);
fn faults_enter_at_the_ail_block() -> TestResult {
    // LPCR[AIL] = 3 (H_SET_MODE on pseries, written directly on powernv): a hash fault taken
    // with translation on enters the lean 0x300 entry at 0xc000000000004300, which records
    // the fault in this CPU's hash frame. Through the real-mode vectors it would take the
    // generic path (and still be served), leaving the hash frame alone.
    let a = fresh_page()?;
    let b = fresh_page()?;
    let _ = read(a);
    let after_a = crate::arch::ppc64::exception::hash_frame().dar;
    let _ = read(b);
    let after_b = crate::arch::ppc64::exception::hash_frame().dar;
    vmalloc::vfree(a).map_err(e)?;
    vmalloc::vfree(b).map_err(e)?;
    kassert!(after_a == a && after_b == b, "hash frame DAR {after_a:#x}, {after_b:#x} after faults on {a:#x}, {b:#x}: the faults did not come through the AIL block");
    Ok(())
}

ktest!("hash_page", first_touch_inserts_hpte);
fn first_touch_inserts_hpte() -> TestResult {
    let a = fresh_page()?;
    kassert!(vmalloc::find_hpte(a).is_none(), "HPTE before first touch");
    let ins = stats::this().get(Counter::InsertPrimary) + stats::this().get(Counter::InsertSecondary);
    let _ = read(a);
    let p = vmalloc::pte_of(a).ok_or("no PTE")?;
    let (ptex, h) = vmalloc::find_hpte(a).ok_or("no HPTE after first touch")?;
    let ins2 = stats::this().get(Counter::InsertPrimary) + stats::this().get(Counter::InsertSecondary);
    vmalloc::vfree(a).map_err(e)?;
    kassert_eq!(ins2, ins + 1);
    kassert!(p.flags().contains(PteFlags::ACCESSED | PteFlags::HASHPTE), "{p}");
    kassert!(!p.flags().contains(PteFlags::DIRTY), "a load set DIRTY: {p}");
    kassert!(!p.is_busy());
    let geo = boot::info().hpt();
    let slot = p.slot().ok_or("no slot bits")?;
    kassert_eq!(geo.ptex(hash_4k(kernel_vsid(a), a), slot), ptex);
    kassert_eq!(h.avpn(), avpn_for(kernel_vsid(a), a));
    kassert_eq!(h.rpn(), p.pfn());
    kassert_eq!(h.pp(), 6); // clean kernel page: read-only until the first store
    kassert_eq!(h.r & 0x78, 0x10); // M
    kassert!(h.r & 0x4 != 0, "vmalloc data must be no-execute");
    kassert!(!h.is_bolted());
    Ok(())
}

ktest!("hash_page", store_sets_dirty_load_only_accessed);
fn store_sets_dirty_load_only_accessed() -> TestResult {
    let a = fresh_page()?;
    let _ = read(a);
    let p1 = vmalloc::pte_of(a).ok_or("no PTE")?;
    let upd = stats::this().get(Counter::Updates);
    write(a, 42);
    let p2 = vmalloc::pte_of(a).ok_or("no PTE")?;
    let (_, h) = vmalloc::find_hpte(a).ok_or("no HPTE")?;
    let upd2 = stats::this().get(Counter::Updates);
    vmalloc::vfree(a).map_err(e)?;
    kassert!(p1.flags().contains(PteFlags::ACCESSED) && !p1.flags().contains(PteFlags::DIRTY), "{p1}");
    kassert!(p2.flags().contains(PteFlags::DIRTY), "{p2}");
    kassert_eq!(h.pp(), 0);
    kassert_eq!(upd2, upd + 1); // the store upgraded the HPTE with H_PROTECT
    Ok(())
}

ktest!("hash_page", store_to_read_only_is_bad_access);
fn store_to_read_only_is_bad_access() -> TestResult {
    let a = vmalloc::vmalloc_flags(4096, PAGE_KERNEL_RO).map_err(e)?;
    let _ = read(a);
    let before = vmalloc::pte_of(a).ok_or("no PTE")?;
    let bad = stats::this().get(Counter::BadAccess);
    let r = probe_write(a, 1);
    let after = vmalloc::pte_of(a).ok_or("no PTE")?;
    vmalloc::vfree(a).map_err(e)?;
    let f = r.err().ok_or("store to a read-only page succeeded")?;
    kassert_eq!(f.trap, 0x300);
    kassert!(
        Dsisr::from_bits_retain(f.dsisr as u32).contains(Dsisr::PROTFAULT | Dsisr::ISSTORE),
        "DSISR {:#x}",
        f.dsisr
    );
    kassert_eq!(before, after);
    kassert!(!after.flags().contains(PteFlags::DIRTY));
    kassert_eq!(stats::this().get(Counter::BadAccess), bad + 1);
    Ok(())
}

ktest!("hash_page", not_present_pte_gets_no_hpte);
fn not_present_pte_gets_no_hpte() -> TestResult {
    // A "swap entry": RW|ACCESSED-looking bits and a PFN, but no PRESENT.
    let ea = vmalloc::VMALLOC_START + (50u64 << 30);
    let swap = 0x0000_0abc_dead_0000u64 | PteFlags::RW.bits() | PteFlags::USER.bits();
    vmalloc::set_pte_raw(ea, u64::MAX, swap).map_err(e)?;
    let r = probe_read(ea);
    let w = probe_write(ea, 7);
    let after = vmalloc::pte_of(ea).ok_or("no PTE")?;
    let h = vmalloc::find_hpte(ea);
    vmalloc::set_pte_raw(ea, u64::MAX, 0).map_err(e)?;
    kassert!(r.is_err() && w.is_err(), "not-present page was accessible");
    kassert_eq!(after.raw(), swap);
    kassert!(h.is_none(), "HPTE inserted for a not-present PTE");
    Ok(())
}

ktest!("hash_page", reinserted_after_eviction);
fn reinserted_after_eviction() -> TestResult {
    let a = fresh_page()?;
    write(a, 5);
    let (ptex, _) = vmalloc::find_hpte(a).ok_or("no HPTE")?;
    Hpt.remove(ptex, avpn_for(kernel_vsid(a), a)).map_err(|x| format!("{x:?}"))?;
    kassert!(vmalloc::find_hpte(a).is_none());
    let v = read(a);
    let again = vmalloc::find_hpte(a);
    let p = vmalloc::pte_of(a).ok_or("no PTE")?;
    vmalloc::vfree(a).map_err(e)?;
    kassert_eq!(v, 5);
    let (ptex2, _) = again.ok_or("not re-inserted")?;
    let geo = boot::info().hpt();
    kassert_eq!(geo.ptex(hash_4k(kernel_vsid(a), a), p.slot().ok_or("slot")?), ptex2);
    Ok(())
}

ktest!("hash_page", permission_upgrade_uses_h_protect);
fn permission_upgrade_uses_h_protect() -> TestResult {
    let a = vmalloc::vmalloc_flags(4096, PAGE_KERNEL_RO).map_err(e)?;
    let _ = read(a);
    kassert!(probe_write(a, 1).is_err());
    // Upgrade the PTE in place (no flush: an upgrade needs none), keeping the HPTE.
    vmalloc::set_pte_raw(a, 0, PteFlags::RW.bits()).map_err(e)?;
    let upd = stats::this().get(Counter::Updates);
    let ins = stats::this().get(Counter::InsertPrimary) + stats::this().get(Counter::InsertSecondary);
    let w = probe_write(a, 77);
    let v = read(a);
    let upd2 = stats::this().get(Counter::Updates);
    let ins2 = stats::this().get(Counter::InsertPrimary) + stats::this().get(Counter::InsertSecondary);
    vmalloc::vfree(a).map_err(e)?;
    kassert!(w.is_ok(), "store after upgrade faulted: {:?}", w);
    kassert_eq!(v, 77);
    kassert_eq!(upd2, upd + 1);
    kassert_eq!(ins2, ins);
    Ok(())
}

ktest!("hash_page", full_groups_secondary_then_eviction_bolted_survive);
fn full_groups_secondary_then_eviction_bolted_survive() -> TestResult {
    let a = fresh_page()?;
    let vsid = kernel_vsid(a);
    let hash = hash_4k(vsid, a);
    let geo = boot::info().hpt();
    let dummy_vsid = 0x0f_ffff_ff00u64;
    let mut dummies = alloc::vec::Vec::new();
    // Fill the primary group with bolted dummies (a VSID no region uses).
    let pg = geo.group_base(hash, false);
    let sg = geo.group_base(hash, true);
    let mut k = 0u64;
    let mut fill = |g: u64, bolted: bool, dummies: &mut alloc::vec::Vec<(u64, u64)>| {
        while let Ok(ptex) = Hpt.insert(
            g,
            avpn_for(dummy_vsid, k << 23) | 1 | if bolted { HpteV::BOLTED.bits() } else { 0 },
            (0x2000 << 12) | 0x10 | 0x2,
        ) {
            dummies.push((ptex, avpn_for(dummy_vsid, k << 23)));
            k += 1;
        }
    };
    fill(pg, true, &mut dummies);
    let _ = read(a);
    let p = vmalloc::pte_of(a).ok_or("no PTE")?;
    let sec_ok = p.slot().map(|s| s.secondary).unwrap_or(false);
    // Now fill what is left of the secondary group too, re-fault: must evict (never bolted).
    let old = vmalloc::clear_pte(a).ok_or("no PTE")?;
    fill(sg, false, &mut dummies);
    vmalloc::set_pte_raw(a, u64::MAX, Pte::new(old.pfn(), PAGE_KERNEL).raw()).map_err(e)?;
    let ev = stats::this().get(Counter::Evictions);
    write(a, 9);
    let ev2 = stats::this().get(Counter::Evictions);
    let bolted_left = (0..8).filter(|i| Hpt.read(pg + i).v & 0x11 == 0x11).count();
    let v = read(a);
    vmalloc::vfree(a).map_err(e)?;
    for (ptex, avpn) in dummies {
        let _ = Hpt.remove(ptex, avpn);
    }
    kassert!(sec_ok, "with a full primary group the HPTE went to {p}");
    kassert!(ev2 > ev, "no eviction with both groups full");
    kassert_eq!(bolted_left, 8);
    kassert_eq!(v, 9);
    Ok(())
}

ktest!("hash_page", asm_take_matches_decide_exhaustively);
fn asm_take_matches_decide_exhaustively() -> TestResult {
    // The inline-asm ldarx/stdcx. step must implement access::decide bit for bit.
    let cell = PteSlot::new();
    let accesses = [
        Access::from_data_fault(0x4000_0000, false),
        Access::from_data_fault(0x4200_0000, false),
        Access::from_data_fault(0x4000_0000, true),
        Access::from_data_fault(0x4200_0000, true),
        Access::from_instruction_fault(false),
        Access::from_instruction_fault(true),
    ];
    let mut checked = 0u64;
    for low in 0..=0xffffu64 {
        let raw = low | 0x0012_3400_0000_0000;
        for &acc in &accesses {
            cell.0.store(raw, core::sync::atomic::Ordering::Relaxed);
            let got = cell.take(acc);
            let now = cell.load();
            match (decide(Pte(raw), acc), got) {
                (Step::Retry, Take::Busy) => {
                    kassert!(now.raw() == raw, "{raw:#x}: changed on busy");
                }
                (Step::Deny(_), Take::Denied(o)) => {
                    kassert!(o.raw() == raw && now.raw() == raw, "{raw:#x}: changed on deny");
                }
                (Step::Take { new }, Take::Taken { old, new: n2 }) => {
                    kassert!(old.raw() == raw && n2 == new && now == new, "{raw:#x} {acc:?}: {n2} vs {new}");
                }
                (want, got) => return Err(format!("{raw:#x} {acc:?}: decide {want:?} but asm {got:?}")),
            }
            checked += 1;
        }
    }
    kassert_eq!(checked, 65536 * 6);
    Ok(())
}

ktest!("hash_page", locked_mode_works_without_interrupts);
fn locked_mode_works_without_interrupts() -> TestResult {
    // The 2003 design still works when nothing interrupts vmalloc, and the lock validator
    // flags it: page_table_lock taken with interrupts on (vmalloc) and in exception context
    // (hash_page). The report is expected here, so it is counted instead of printed.
    let class = &vmalloc::PAGE_TABLE_LOCK.class;
    // Make sure the irqs-on side is known (vmalloc with EE on).
    crate::arch::ppc64::irq::enable();
    let warm = vmalloc::vmalloc(4096).map_err(e);
    crate::arch::ppc64::irq::disable();
    vmalloc::vfree(warm?).map_err(e)?;
    let was = crate::hash::fault::design();
    crate::hash::fault::set_locked_mode(true);
    let (r, flagged) = crate::sync::lockdep::expecting(class, || -> crate::ktest::TestResult {
        let a = vmalloc::vmalloc(8 * 4096).map_err(e)?;
        for i in 0..8 {
            write(a + i * 4096, i);
        }
        for i in 0..8 {
            kassert_eq!(read(a + i * 4096), i);
        }
        vmalloc::vfree(a).map_err(e)?;
        Ok(())
    });
    crate::hash::fault::select(was);
    r?;
    kassert!(flagged || !crate::sync::lockdep::ENABLED, "the lock validator did not flag the locked design");
    Ok(())
}

ktest!("hash_page", fault_counters_move);
fn fault_counters_move() -> TestResult {
    let f = stats::this().faults();
    let a = vmalloc::vmalloc(3 * 4096).map_err(e)?;
    vmalloc::vfree(a).map_err(e)?;
    kassert!(stats::this().faults() >= f + 3);
    Ok(())
}

ktest!("hash_page", user_access_to_kernel_page_refused_untouched);
fn user_access_to_kernel_page_refused_untouched() -> TestResult {
    use crate::run::user::{run_user_load, UserExit};
    // Sanity: a user page is readable from problem state.
    let upage = vmalloc::vmalloc_flags(4096, PteFlags::PRESENT | PteFlags::USER | PteFlags::RW | PteFlags::COHERENT)
        .map_err(e)?;
    let ok = run_user_load(upage).map_err(e)?;
    // A kernel page, never hashed, and one already hashed (HPTE with kernel-only PP).
    let k1 = fresh_page()?;
    let k2 = vmalloc::vmalloc(4096).map_err(e)?;
    write(k2, 3);
    let before1 = vmalloc::pte_of(k1).ok_or("no PTE")?;
    let before2 = vmalloc::pte_of(k2).ok_or("no PTE")?;
    let r1 = run_user_load(k1).map_err(e)?;
    let r2 = run_user_load(k2).map_err(e)?;
    let after1 = vmalloc::pte_of(k1).ok_or("no PTE")?;
    let after2 = vmalloc::pte_of(k2).ok_or("no PTE")?;
    let h1 = vmalloc::find_hpte(k1);
    for a in [upage, k1, k2] {
        vmalloc::vfree(a).map_err(e)?;
    }
    kassert_eq!(ok, UserExit::Syscall);
    kassert!(matches!(r1, UserExit::Fault { trap: 0x300, dar, .. } if dar == k1), "{r1:?}");
    kassert!(
        matches!(r2, UserExit::Fault { trap: 0x300, dar, dsisr } if dar == k2 && dsisr & 0x0800_0000 != 0),
        "{r2:?}"
    );
    kassert_eq!(before1, after1);
    kassert_eq!(before2, after2);
    kassert!(!after1.flags().contains(PteFlags::ACCESSED), "denied user access set ACCESSED");
    kassert!(h1.is_none(), "denied access inserted an HPTE");
    Ok(())
}

ktest!("hash_page", design_switch_patches_the_call);
fn design_switch_patches_the_call() -> TestResult {
    use crate::hash::fault::{
        design_entry as call_target, do_hash_fault, do_hash_fault_locked, do_hash_fault_native,
        do_hash_fault_native_locked, select, Design,
    };
    // ELFv2: a direct call goes to the local entry, 0 or 8 bytes past the symbol (TOC set-up).
    // (With tracing on the call goes through the trace's entry: `design_entry` looks past it.)
    let at = |f: u64| call_target() == f || call_target() == f + 8;
    // Each platform has its own instantiation of every design (its HPT backend).
    let (lf, lk) = if crate::arch::ppc64::platform::powernv() {
        (do_hash_fault_native as *const () as u64, do_hash_fault_native_locked as *const () as u64)
    } else {
        (do_hash_fault as *const () as u64, do_hash_fault_locked as *const () as u64)
    };
    let was = crate::hash::fault::design();
    if was == Design::LockFree {
        kassert!(at(lf), "the default call goes to {:#x}, not this platform's lock-free entry {lf:#x}", call_target());
    }
    let count = |f: &dyn Fn()| {
        let s0 = stats::this().snapshot();
        f();
        stats::this().snapshot().since(&s0)
    };
    let a = fresh_page()?;
    select(Design::Locked);
    let locked_call = at(lk);
    // The locked design takes page_table_lock in exception context: the lock validator's
    // report is expected here (see locked_mode_works_without_interrupts).
    let (d, _) = crate::sync::lockdep::expecting(&vmalloc::PAGE_TABLE_LOCK.class, || {
        count(&|| {
            let _ = read(a);
        })
    });
    select(Design::LockFree);
    let back = at(lf);
    let b = fresh_page()?;
    let d2 = count(&|| {
        let _ = read(b);
    });
    select(was);
    vmalloc::vfree(a).map_err(e)?;
    vmalloc::vfree(b).map_err(e)?;
    kassert!(locked_call, "after select(Locked) the call goes to {:#x}, not {lk:#x}", call_target());
    kassert!(back, "after select(LockFree) the call goes to {:#x}", call_target());
    kassert!(d.get(Counter::LockedFaults) == 1 && d.get(Counter::InsertPrimary) == 1, "locked design: {d:?}");
    kassert!(d2.get(Counter::LockedFaults) == 0 && d2.get(Counter::InsertPrimary) == 1, "lock-free design: {d2:?}");
    Ok(())
}

ktest!("hash_page", empty_page_tables_are_read_only);
fn empty_page_tables_are_read_only() -> TestResult {
    // Every walk of an address without page tables reads these shared tables: a store into
    // one must fault, not "map" a page for all such addresses.
    for va in crate::mm::pgtable::empty_tables() {
        let before = read(va);
        let r = probe_write(va, 0x1234_5000 | PAGE_KERNEL.bits());
        let f = r.err().ok_or(format!("store into the empty table at {va:#x} succeeded"))?;
        kassert_eq!(f.trap, 0x300);
        kassert!(
            Dsisr::from_bits_retain(f.dsisr as u32).contains(Dsisr::PROTFAULT | Dsisr::ISSTORE),
            "DSISR {:#x}",
            f.dsisr
        );
        kassert_eq!(read(va), before);
    }
    Ok(())
}

ktest!("hash_page", address_without_page_table_is_reported_as_such);
fn address_without_page_table_is_reported_as_such() -> TestResult {
    use crate::hash::access::Denied;
    use crate::hash::fault::slow_reason;
    use crate::hash::reason::FaultReason;
    // Inside the vmalloc region's span, far beyond any area: no table at any level below the
    // root. The walk ends in the empty tables; the take sees a zero PTE.
    let ea = vmalloc::VMALLOC_START + (300u64 << 30);
    kassert!(crate::mm::pgtable::walk(ea).is_none(), "{ea:#x} has a page table");
    let bad = stats::this().get(Counter::BadAccess);
    let r = probe_read(ea);
    let f = r.err().ok_or("load from an address without page tables succeeded")?;
    kassert_eq!(f.trap, 0x300);
    kassert_eq!(f.dar, ea);
    kassert_eq!(stats::this().get(Counter::BadAccess), bad + 1);
    kassert!(vmalloc::find_hpte(ea).is_none(), "an HPTE was inserted for {ea:#x}");
    kassert_eq!(slow_reason(FaultReason::Denied(Denied::NotPresent), ea), FaultReason::NoPageTable);
    let mapped = vmalloc::vmalloc(4096).map_err(e)?;
    let same = slow_reason(FaultReason::Denied(Denied::NotPresent), mapped);
    vmalloc::vfree(mapped).map_err(e)?;
    kassert_eq!(same, FaultReason::Denied(Denied::NotPresent));
    Ok(())
}

/// Puts a `blr` at `a` (a writable mapping) and makes it visible to instruction fetch.
fn put_blr(a: u64) {
    // SAFETY: `a` is a live, writable kernel mapping (the caller's page); dcbst/icbi only
    // write back and invalidate cache lines for that address.
    unsafe {
        core::ptr::write_volatile(a as *mut u32, 0x4e80_0020);
        core::arch::asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", "sync", "isync", in(reg) a);
    }
}

ktest!("hash_page", fetch_from_guarded_or_no_execute_is_refused_not_looped);
fn fetch_from_guarded_or_no_execute_is_refused_not_looped() -> TestResult {
    // An instruction fetch hash_page cannot make legal must come back refused — not be
    // "resolved" by re-inserting or re-protecting the same HPTE and re-executed forever with
    // EE off (the 0x400 path before it filtered SRR1 and denied EXEC on GUARDED pages).
    // GUARDED means device memory here: QEMU's H_ENTER refuses G on RAM (H_PARAMETER), so
    // the guarded page is an ioremap of the PCI I/O window with EXEC added. Nothing below
    // reads or writes it: a refused fetch never reaches the bus.
    use crate::arch::ppc64::exception::probe_exec;
    use crate::arch::ppc64::reg::IsiSrr1;
    use crate::hash::access::Denied;
    use crate::hash::reason::FaultReason;
    use crate::mm::hpte::hpte_for;
    use crate::mm::pte::{HptSlot, PAGE_KERNEL_X};
    // Control: the probe runs code that may run.
    let x = vmalloc::vmalloc_flags(4096, PAGE_KERNEL_X).map_err(e)?;
    put_blr(x);
    let ok = probe_exec(x);
    vmalloc::vfree(x).map_err(e)?;
    kassert!(ok.is_ok(), "a blr in an EXEC page did not run: {ok:?}");

    // EXEC|GUARDED without an HPTE: a hash miss; hash_page's access check denies EXEC on a
    // GUARDED page, changes nothing and inserts nothing.
    let g = vmalloc::ioremap(0x2000_0000_8000, 4096).map_err(e)?;
    vmalloc::set_pte_raw(g, 0, PteFlags::EXEC.bits()).map_err(e)?;
    let before = vmalloc::pte_of(g).ok_or("no PTE")?;
    let s0 = stats::this().snapshot();
    let r1 = probe_exec(g);
    let s1 = stats::this().snapshot();
    let after = vmalloc::pte_of(g).ok_or("no PTE")?;
    let h1 = vmalloc::find_hpte(g);
    // The same page with its HPTE in place (G set, N clear; entered by hand, since no data
    // access may touch the device): the fetch's SRR1 names N/G, which no HPTE update can fix
    // — refused before hash_page runs at all.
    let vsid = kernel_vsid(g);
    let geo = boot::info().hpt();
    let hp = hpte_for(vsid, g, before.pfn(), before.flags(), false, false);
    let entered = Hpt.insert(geo.group_base(hash_4k(vsid, g), false), hp.v, hp.r);
    let r2 = match entered {
        Ok(ptex) => {
            vmalloc::set_pte_raw(g, u64::MAX, before.with_slot(HptSlot::of_ptex(ptex, false)).raw()).map_err(e)?;
            Some(probe_exec(g))
        }
        Err(_) => None,
    };
    let s2 = stats::this().snapshot();
    let left = vmalloc::find_hpte(g);
    vmalloc::iounmap(g).map_err(e)?;
    let gone = vmalloc::find_hpte(g).is_none();
    let f1 = r1.err().ok_or("a fetch from an unhashed EXEC|GUARDED page ran")?;
    kassert_eq!(f1.trap, 0x400);
    kassert!(IsiSrr1::from_bits_truncate(f1.srr1).contains(IsiSrr1::NOPTE), "SRR1 {:#x}", f1.srr1);
    kassert_eq!(f1.reason, FaultReason::Denied(Denied::ExecGuarded));
    kassert_eq!(s1.since(&s0).get(Counter::BadAccess), 1);
    kassert_eq!(before, after);
    kassert!(h1.is_none(), "hash_page inserted an HPTE for a fetch it denied");
    let r2 = r2.ok_or(format!("H_ENTER of the guarded I/O HPTE: {:?}", entered))?;
    let f2 = r2.err().ok_or("a fetch through a guarded HPTE ran")?;
    kassert_eq!(f2.trap, 0x400);
    kassert!(IsiSrr1::from_bits_truncate(f2.srr1).contains(IsiSrr1::NOEXEC_GUARD), "SRR1 {:#x}", f2.srr1);
    kassert!(matches!(f2.reason, FaultReason::Other(s) if s.contains("no-execute or guarded")), "{}", f2.reason);
    kassert_eq!(s2.since(&s1).faults(), 0);
    kassert!(left.is_some(), "the guarded HPTE went away");
    kassert!(gone, "iounmap left the guarded HPTE");

    // A no-execute HPTE under a PTE that now says EXEC (changed without the flush that every
    // PTE writer does): the SRR1 cause is N, not a miss; it is refused, not upgraded.
    let n = vmalloc::vmalloc_flags(4096, PAGE_KERNEL).map_err(e)?;
    put_blr(n);
    vmalloc::set_pte_raw(n, 0, PteFlags::EXEC.bits()).map_err(e)?;
    let s3 = stats::this().snapshot();
    let r3 = probe_exec(n);
    let s4 = stats::this().snapshot();
    vmalloc::vfree(n).map_err(e)?;
    let f3 = r3.err().ok_or("a fetch through a no-execute HPTE ran: the ISI was 'resolved' by hash_page")?;
    kassert!(IsiSrr1::from_bits_truncate(f3.srr1).contains(IsiSrr1::NOEXEC_GUARD), "SRR1 {:#x}", f3.srr1);
    kassert_eq!(s4.since(&s3).faults(), 0);
    Ok(())
}
