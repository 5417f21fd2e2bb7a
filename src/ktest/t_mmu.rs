//! mmu:: tests: translation, bolted HPTEs through H_READ, SLB misses and eviction, faults.

use crate::arch::ppc64::exception::{probe_read, ProbeFault};
use crate::arch::ppc64::reg::{Dsisr, Msr};
use crate::arch::ppc64::{boot, insn, percpu};
use crate::hash::backend::{HashBackend, InsertError};
use crate::hash::hpt::Hpt;
use crate::hash::stats::{self, Counter};
use crate::ktest::TestResult;
use crate::mm::hpte::{avpn_for, hash_4k, Hpte, HpteV};
use crate::mm::slbe::{kernel_vsid, SlbEntry};
use crate::mm::vmalloc;
use crate::{kassert, kassert_eq, ktest};
use core::sync::atomic::Ordering::Relaxed;

ktest!("mmu", translation_is_on);
fn translation_is_on() -> TestResult {
    let msr = Msr::from_bits_retain(insn::mfmsr());
    kassert!(msr.contains(Msr::IR | Msr::DR | Msr::SF | Msr::ME | Msr::RI), "MSR {}", msr);
    let pc = translation_is_on as *const () as u64;
    kassert!(pc >> 60 == 0xc, "running at {:#x}, not the link address", pc);
    Ok(())
}

/// The HPTE the boot stub bolted for linear address `ea`, found through H_READ (powernv: in
/// the kernel's own table).
fn bolted_hpte(ea: u64) -> Option<Hpte> {
    let geo = boot::info().hpt();
    let vsid = kernel_vsid(ea);
    let hash = hash_4k(vsid, ea);
    for sec in [false, true] {
        let g = geo.group_base(hash, sec);
        for i in 0..8 {
            let h: Hpte = Hpt.read(g + i);
            if h.matches_in(vsid, ea, sec) {
                return Some(h);
            }
        }
    }
    None
}

ktest!("mmu", bolted_linear_entries_match);
fn bolted_linear_entries_match() -> TestResult {
    let stack_var = 0u64;
    let candidates = [
        bolted_hpte as *const () as u64,                                // kernel text
        &stack_var as *const u64 as u64,                                // boot stack
        percpu::this() as *const _ as u64,                              // per-CPU area
        crate::mm::KERNEL_BASE + boot::info().linear_zone_end() - 4096, // last bolted page
    ];
    for ea in candidates {
        let ea = ea & !0xfff;
        let h = bolted_hpte(ea).ok_or_else(|| alloc::format!("no HPTE for bolted {ea:#x}"))?;
        kassert!(h.is_bolted(), "{ea:#x}: {h}");
        kassert_eq!(h.rpn(), (ea & 0x0fff_ffff_ffff_ffff) >> 12);
        kassert_eq!(h.avpn(), avpn_for(kernel_vsid(ea), ea));
        kassert_eq!(h.r & 0x78, 0x10); // WIMG = M
    }
    Ok(())
}

ktest!("mmu", every_bolted_entry_is_what_rust_computes);
/// boot/entry.S's bolting loop computes each linear page's hash, AVPN and HPTE words itself (the
/// stub must run before translation, and stays small); this checks its arithmetic against the
/// typed Rust definitions for EVERY bolted page: the entry sits in the group `hash_4k` names
/// (primary, or secondary with the H bit), and both words equal `hpte_for(.., bolted)` for
/// PAGE_KERNEL_X (dword 1 as bolted: M, PP=00, R and C preset). Pages changed after boot on
/// purpose are checked for that: the stack guard pages have no entry, and the shared empty page
/// tables are read-only. (powernv bolts in Rust through the native backend: the same check.)
fn every_bolted_entry_is_what_rust_computes() -> TestResult {
    use crate::mm::hpte::{hpte_for, HpteR, PP_MASK};
    use crate::mm::pte::PAGE_KERNEL_X;
    let pages = boot::info().linear_zone_end() >> 12;
    let empty = crate::mm::pgtable::empty_tables();
    let (mut checked, mut guards, mut read_only) = (0u64, 0u64, 0u64);
    for pfn in 0..pages {
        let ea = crate::mm::KERNEL_BASE | (pfn << 12);
        let found = bolted_hpte(ea);
        if crate::mm::guard_page_of(ea).is_some() {
            kassert!(found.is_none(), "the guard page at {ea:#x} has an HPTE: {}", found.unwrap_or_default());
            guards += 1;
            continue;
        }
        let h = found.ok_or_else(|| alloc::format!("no bolted HPTE for {ea:#x}"))?;
        let secondary = h.v & HpteV::SECONDARY.bits() != 0;
        let want = hpte_for(kernel_vsid(ea), ea, pfn, PAGE_KERNEL_X, secondary, true);
        // QEMU's H_ENTER also sets a software bit of its own in dword 0 (0x40,
        // HPTE64_V_HPTE_DIRTY: migration's dirty tracking, hw/ppc/spapr_softmmu.c), and H_READ
        // returns it: not ours to compare.
        kassert!(h.v & !0x40 == want.v, "{ea:#x}: bolted {h}, Rust computes {want}");
        if empty.contains(&ea) {
            // protect_empty_tables made it read-only (and no-execute) with H_PROTECT:
            // everything else as bolted.
            let prot = PP_MASK | HpteR::PP0.bits() | HpteR::N.bits();
            kassert!(h.r & !prot == want.r & !prot, "{ea:#x}: bolted {h}, Rust computes {want}");
            kassert!(h.r & PP_MASK != want.r & PP_MASK, "the empty table at {ea:#x} is still writable: {h}");
            read_only += 1;
        } else {
            kassert!(h.r == want.r, "{ea:#x}: bolted {h}, Rust computes {want}");
        }
        checked += 1;
    }
    kassert!(checked + guards == pages && guards > 0 && read_only == empty.len() as u64);
    if !crate::bootargs::quiet() {
        crate::println!(
            "mmu: {checked} bolted HPTEs equal Rust's hpte_for, {guards} guard pages unmapped, {read_only} empty tables read-only"
        );
    }
    Ok(())
}

ktest!("mmu", unmapped_linear_address_faults);
fn unmapped_linear_address_faults() -> TestResult {
    let bi = boot::info();
    if bi.mem_size <= bi.linear_zone_end() + (16 << 20) {
        return Ok(()); // nothing beyond the bolted zone inside segment 0
    }
    let ea = crate::mm::KERNEL_BASE + bi.linear_zone_end() + (8 << 20) + 0x18;
    match probe_read(ea) {
        Ok(v) => Err(alloc::format!("read {v:#x} from unmapped {ea:#x}")),
        Err(ProbeFault { trap, dar, dsisr, .. }) => {
            kassert_eq!(trap, 0x300);
            kassert_eq!(dar, ea);
            kassert!(Dsisr::from_bits_retain(dsisr as u32).contains(Dsisr::NOPTE), "DSISR {:#x}", dsisr);
            Ok(())
        }
    }
}

ktest!("mmu", wild_address_is_a_segment_fault);
fn wild_address_is_a_segment_fault() -> TestResult {
    let ea = 0x5000_0000_dead_0000;
    match probe_read(ea) {
        Ok(_) => Err("read from a wild address succeeded".into()),
        Err(f) => {
            kassert_eq!(f.trap, 0x380);
            kassert_eq!(f.dar, ea);
            Ok(())
        }
    }
}

fn invalidate_segment(ea: u64) {
    // SAFETY: vmalloc segments are never bolted; the next access just misses again.
    unsafe { insn::slbie(ea) };
}

ktest!("mmu", slb_miss_on_vmalloc_is_handled_and_counted);
fn slb_miss_on_vmalloc_is_handled_and_counted() -> TestResult {
    let a = vmalloc::vmalloc(4096).map_err(|e| alloc::format!("{e}"))?;
    invalidate_segment(a);
    let before = stats::this().get(Counter::DsegMiss);
    // SAFETY: `a` is a live vmalloc page.
    unsafe { core::ptr::write_volatile(a as *mut u64, 0x1234) };
    let after = stats::this().get(Counter::DsegMiss);
    // SAFETY: as above.
    let v = unsafe { core::ptr::read_volatile(a as *const u64) };
    vmalloc::vfree(a).map_err(|e| alloc::format!("{e}"))?;
    kassert_eq!(v, 0x1234);
    kassert_eq!(after, before + 1);
    Ok(())
}

ktest!("mmu", more_segments_than_slb_slots);
fn more_segments_than_slb_slots() -> TestResult {
    // Map one page in each of 48 different 256M segments of the vmalloc region, touch them
    // all twice: the SLB (32 slots, 1 bolted) must evict round robin, never the bolted slot.
    let base = vmalloc::VMALLOC_START + (32u64 << 30);
    let n = 48u64;
    let frame = crate::mm::frame::alloc(crate::mm::frame::Zone::High).map_err(|e| alloc::format!("{e}"))?;
    let pte = crate::mm::pte::Pte::new(frame >> 12, crate::mm::pte::PAGE_KERNEL);
    for i in 0..n {
        vmalloc::set_pte_raw(base + (i << 28), u64::MAX, pte.raw()).map_err(|e| alloc::format!("{e}"))?;
    }
    let before = stats::this().get(Counter::DsegMiss);
    let (e0, v0) = insn::slbmfe(0);
    let mut sum = 0u64;
    for round in 0..2 {
        for i in 0..n {
            let p = (base + (i << 28) + 8 * i) as *mut u64;
            // SAFETY: every one of these EAs maps the test frame.
            unsafe {
                if round == 0 {
                    core::ptr::write_volatile(p, i);
                }
                sum += core::ptr::read_volatile(p);
            }
        }
    }
    let misses = stats::this().get(Counter::DsegMiss) - before;
    let (e1, v1) = insn::slbmfe(0);
    for i in 0..n {
        vmalloc::clear_pte(base + (i << 28));
    }
    let _ = crate::mm::frame::free(frame);
    kassert_eq!((e0, v0), (e1, v1));
    kassert!(SlbEntry::from_raw(e1, v1).is_valid(), "bolted slot 0 lost");
    kassert_eq!(sum, 2 * (0..n).sum::<u64>());
    kassert!(misses >= n + (n - 31), "only {} segment misses for {} segments x2", misses, n);
    Ok(())
}

ktest!("mmu", h_enter_into_full_group_reports_pteg_full);
fn h_enter_into_full_group_reports_pteg_full() -> TestResult {
    // A VSID no kernel region uses, so the test cannot disturb real translations.
    let vsid = 0x0f_ffff_fff0u64;
    let geo = boot::info().hpt();
    let ea = 0x0000_0000_0123_4000u64;
    let g = geo.group_base(hash_4k(vsid, ea), false);
    let taken = (0..8).filter(|i| Hpt.read(g + i).v & 1 != 0).count() as u64;
    let mut used = alloc::vec::Vec::new();
    let mut full_after = None;
    for i in 0..9u64 {
        let v = avpn_for(vsid, ea + (i << 23)) | HpteV::VALID.bits();
        let r = ((0x1000 + i) << 12) | 0x10 | 0x2;
        match Hpt.insert(g, v, r) {
            Ok(ptex) => used.push((ptex, v)),
            Err(InsertError::Full) => {
                full_after = Some(i);
                break;
            }
            Err(e) => {
                full_after = None;
                crate::println!("insert #{}: {:?}", i, e);
                break;
            }
        }
    }
    for (ptex, v) in &used {
        let _ = Hpt.remove(*ptex, v & !0x7f);
    }
    kassert_eq!(full_after, Some(8 - taken));
    Ok(())
}

ktest!("mmu", exception_depth_is_balanced);
fn exception_depth_is_balanced() -> TestResult {
    kassert_eq!(percpu::this().depth.load(Relaxed), 0);
    let _ = probe_read(0x5000_0000_0000_0000);
    kassert_eq!(percpu::this().depth.load(Relaxed), 0);
    Ok(())
}

ktest!("mmu", every_stack_has_an_unmapped_guard_page_below_it);
fn every_stack_has_an_unmapped_guard_page_below_it() -> TestResult {
    // Each CPU's kernel, exception and hash stack sits right above a guard page with no HPTE,
    // so an overflow faults (and the oops says STACK OVERFLOW) instead of running into what
    // lies below. For CPU 0's kernel stack, "right above" is checked against the stack this
    // very test runs on.
    use crate::arch::ppc64::boot::BOOT_STACK_SIZE;
    use crate::arch::ppc64::percpu::{exc_stack_bounds, guard_pages, hash_stack_bounds, GUARD_SIZE};
    let sp = percpu::sp();
    let mut seen = 0;
    for (g, what, cpu) in guard_pages() {
        let top = g + GUARD_SIZE as u64;
        match what {
            "exception stack" => kassert_eq!(exc_stack_bounds(cpu).0, top),
            "hash stack" => kassert_eq!(hash_stack_bounds(cpu).0, top),
            "kernel stack" if cpu == 0 => {
                kassert!(
                    sp > top && sp - top < BOOT_STACK_SIZE as u64,
                    "CPU 0 runs at {sp:#x}, not on the stack above the guard page at {g:#x}"
                )
            }
            "kernel stack" => {
                kassert_eq!(percpu::kstack_top(cpu) - crate::arch::ppc64::percpu::KSTACK_SIZE as u64, top)
            }
            other => return Err(alloc::format!("unknown stack '{other}'")),
        }
        kassert!(vmalloc::find_hpte(g).is_none(), "the guard page below CPU {cpu}'s {what} has an HPTE");
        let f =
            probe_read(g + 0x800).err().ok_or(alloc::format!("the guard page below CPU {cpu}'s {what} is readable"))?;
        kassert_eq!(f.trap, 0x300);
        let d = crate::mm::describe_address(g + 0x800).unwrap_or_default();
        kassert!(d.contains("STACK OVERFLOW") && d.contains(what), "{d}");
        seen += 1;
    }
    kassert_eq!(seen, 3 * percpu::MAX_CPUS);
    Ok(())
}

ktest!("mmu", exception_exits_drop_the_reservation);
fn exception_exits_drop_the_reservation() -> TestResult {
    // Both ways back from an exception that ran kernel code (the 0x300 entry's exit and the
    // generic path's) store conditionally before their rfid, as Linux does: a reservation
    // the handler left (a take that found BUSY, say) must not let the interrupted code's
    // stdcx. succeed. QEMU 7.2 drops the reservation on every interrupt and rfid anyway, so
    // no run can tell; the instructions can.
    extern "C" {
        static hash_fault_exit: u32;
        static exc_restore: u32;
    }
    const RFID: u32 = 0x4c00_0024;
    // stdcx. RS,RA,RB: primary opcode 31, extended opcode 214, Rc = 1.
    let is_stdcx = |i: u32| i & 0xfc00_07ff == 0x7c00_01ad;
    for (name, at) in
        [("hash_fault_exit", &raw const hash_fault_exit as u64), ("exc_restore", &raw const exc_restore as u64)]
    {
        let mut stdcx = None;
        let mut rfid = None;
        for k in 0..64u64 {
            // SAFETY: kernel text, read as data (it is in the bolted linear zone).
            let i = unsafe { core::ptr::read_volatile((at + 4 * k) as *const u32) };
            if is_stdcx(i) && stdcx.is_none() {
                stdcx = Some(k);
            }
            if i == RFID {
                rfid = Some(k);
                break;
            }
        }
        let rfid = rfid.ok_or(alloc::format!("no rfid within 64 instructions of {name}"))?;
        kassert!(matches!(stdcx, Some(s) if s < rfid), "{name}: no stdcx. before its rfid ({} instructions on)", rfid);
    }
    Ok(())
}
