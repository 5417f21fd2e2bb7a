//! opal:: and native:: tests: what exists only on powernv — skiboot's interface and the HPT the
//! kernel owns (its registers, its locks, its invalidations).

use crate::arch::ppc64::powernv;
use crate::arch::ppc64::reg::{spr, Lpcr};
use crate::arch::ppc64::{boot, insn, opal, percpu, timer};
use crate::hash::backend::{HashBackend, RemoveError};
use crate::hash::hpt::Hpt;
use crate::hash::native::{HptMem, NATIVE};
use crate::ktest::TestResult;
use crate::mm::hpte::{avpn_for, hash_4k, tlbie_rb, HpteV, RPN_MASK};
use crate::mm::vmalloc::{self, VmError};
use crate::{kassert, kassert_eq, ktest};
use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering::*};

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

/// The LPC UART's scratch register (COM1 at I/O 0x3f8; skiboot's console, which never uses
/// the scratch register).
const UART_SCR: u32 = 0x3f8 + 7;

ktest!("opal", only PowerNv, lpc_io_round_trip);
fn lpc_io_round_trip() -> TestResult {
    // OPAL_LPC_WRITE then OPAL_LPC_READ of the same I/O port: two real calls into skiboot,
    // which drives the LPC bus through XSCOM.
    let old = opal::lpc_read_io(UART_SCR, 1).map_err(|x| format!("read: {x}"))?;
    let mut seen = [0u32; 2];
    for (i, v) in [0x5au32, 0xa5].into_iter().enumerate() {
        opal::lpc_write_io(UART_SCR, v, 1).map_err(|x| format!("write: {x}"))?;
        seen[i] = opal::lpc_read_io(UART_SCR, 1).map_err(|x| format!("read: {x}"))?;
    }
    opal::lpc_write_io(UART_SCR, old, 1).map_err(|x| format!("restore: {x}"))?;
    kassert_eq!(seen, [0x5a, 0xa5]);
    Ok(())
}

ktest!("opal", only PowerNv, device_tree_from_skiboot);
fn device_tree_from_skiboot() -> TestResult {
    let bi = boot::info();
    let n = powernv::info().ok_or("no powernv boot information")?;
    kassert_eq!(bi.firmware, boot::Firmware::Opal);
    kassert!(bi.model().contains("PowerNV"), "model {}", bi.model());
    kassert!(n.nreserved >= 1, "skiboot reserves its own memory, the tree says nothing");
    for &(s, end) in &n.reserved[..n.nreserved] {
        kassert!(s >= bi.linear_zone_end(), "firmware range {s:#x}..{end:#x} inside the linear zone");
    }
    kassert!(n.ipmi.is_some(), "no IPMI interface: the runner adds a BMC");
    // The CPUs are the tree's threads by PIR (POWER8: chip << 7 | core << 3 | thread).
    let ids = &bi.cpu_ids[..bi.ncpus];
    kassert!(ids.iter().enumerate().all(|(i, p)| !ids[..i].contains(p)), "PIRs {ids:?}");
    kassert_eq!(ids[0] as u64, insn::mfspr::<{ spr::PIR }>()); // the boot CPU is CPU 0
    Ok(())
}

ktest!("native", only PowerNv, mmu_registers_name_the_kernels_table);
fn mmu_registers_name_the_kernels_table() -> TestResult {
    let n = powernv::info().ok_or("no powernv boot information")?;
    let geo = boot::hpt();
    // POWER8: SDR1; ISA 3.0: the same value as entry 0 (LPID 0) of the table PTCR names.
    let sdr1 = if n.ptcr != 0 {
        kassert_eq!(insn::mfspr::<{ spr::PTCR }>(), n.ptcr);
        // SAFETY: the partition table, in the bolted zone (reserved, set up at boot).
        unsafe { core::ptr::read_volatile((boot::KERNEL_BASE + (n.ptcr & !0xfff)) as *const u64) }
    } else {
        insn::mfspr::<{ spr::SDR1 }>()
    };
    let lpcr = Lpcr::from_bits_retain(insn::mfspr::<{ spr::LPCR }>());
    kassert!(!lpcr.intersects(Lpcr::HR | Lpcr::UPRT), "not hash mode: LPCR {:#x}", lpcr.bits());
    kassert_eq!(sdr1, n.sdr1);
    kassert_eq!(sdr1 & !0x1f, n.hpt_pa); // HTABORG
    kassert_eq!((sdr1 & 0x1f) as u32 + 18, geo.shift()); // HTABSIZE
    kassert_eq!(n.hpt_pa % geo.bytes(), 0); // aligned to its size
    kassert!(n.hpt_pa + geo.bytes() <= boot::info().linear_zone_end(), "the table is outside the bolted zone");
    kassert!(lpcr.contains(Lpcr::AIL_3) && !lpcr.contains(Lpcr::HDICE), "LPCR {:#x}", lpcr.bits());
    for c in 0..crate::smp::ncpus() {
        kassert_eq!(percpu::paca(c).hpt_base.load(Relaxed), boot::KERNEL_BASE + n.hpt_pa);
    }
    Ok(())
}

ktest!("native", only PowerNv, translation_stays_until_tlbie);
fn translation_stays_until_tlbie() -> TestResult {
    // The MMU caches translations: an HPTE rewritten in memory changes nothing until the
    // invalidation sequence (ptesync; tlbie; eieio; tlbsync; ptesync) drops the old one. So
    // every change the native backend makes to a valid entry ends in that sequence.
    let a = vmalloc::vmalloc(2 * 4096).map_err(e)?;
    let b = a + 4096;
    write(a, 0xaaaa);
    write(b, 0xbbbb);
    let (ptex, h) = vmalloc::find_hpte(a).ok_or("no HPTE for the first page")?;
    let pfn_b = vmalloc::pte_of(b).ok_or("no PTE")?.pfn();
    let m = &NATIVE.mem;
    let s = m.slot(ptex);
    let rb = tlbie_rb(boot::hpt(), ptex, h.v);
    // Interrupts off: nothing else runs on this CPU between the steps.
    let on = crate::arch::ppc64::irq::save_disable();
    let _ = read(a); // the translation of `a` is in this CPU's TLB now
    let locked = m.try_lock(s, h.v);
    m.store_r(s, (h.r & !RPN_MASK) | (pfn_b << 12));
    m.store_v(s, h.v);
    m.table_sync();
    let before = read(a);
    m.invalidate(rb);
    let after = read(a);
    // Put the entry back the way the protocol left it.
    let relocked = m.try_lock(s, h.v);
    m.store_r(s, h.r);
    m.invalidate(rb);
    m.store_v(s, h.v);
    crate::arch::ppc64::irq::restore(on);
    let back = read(a);
    vmalloc::vfree(a).map_err(e)?;
    kassert!(locked && relocked, "could not take the entry's lock");
    kassert_eq!(before, 0xaaaa); // the old translation, still cached
    kassert_eq!(after, 0xbbbb); // the invalidation made the MMU read the new entry
    kassert_eq!(back, 0xaaaa);
    Ok(())
}

static HELD_PTEX: AtomicU64 = AtomicU64::new(0);
static HELD_V: AtomicU64 = AtomicU64::new(0);
/// 0 idle, 1 holding the lock, 2 could not take it, 3 about to release it.
static HOLDER: AtomicU64 = AtomicU64::new(0);
static GO: AtomicU64 = AtomicU64::new(0);
const HOLD_US: u64 = 5_000;

/// On another CPU: takes the entry's lock, waits for GO, holds it HOLD_US longer, says it is
/// about to release it, then gives it back unchanged.
fn hold_lock(_cpu: usize) {
    let m = &NATIVE.mem;
    let s = m.slot(HELD_PTEX.load(Acquire));
    let v = HELD_V.load(Acquire);
    let on = crate::arch::ppc64::irq::save_disable();
    if m.try_lock(s, v) {
        HOLDER.store(1, Release);
        let t = insn::mftb();
        while GO.load(Acquire) == 0 && insn::mftb() - t < timer::us_to_tb(2_000_000) {
            insn::cpu_relax();
        }
        timer::udelay(HOLD_US);
        HOLDER.store(3, Release);
        // The unlocking store comes after HOLDER = 3 (lwsync): whoever takes the lock next
        // sees 3.
        insn::lwsync();
        m.store_v(s, v);
    } else {
        HOLDER.store(2, Release);
    }
    crate::arch::ppc64::irq::restore(on);
}

ktest!("native", only PowerNv, writers_wait_for_the_hpte_lock);
fn writers_wait_for_the_hpte_lock() -> TestResult {
    // A removal of an entry whose lock another CPU holds waits until it is released, then
    // finds and removes it (a removal that returned "not found" or went ahead meanwhile would
    // let the caller free a page the other CPU is still mapping); an insert into the group
    // skips a free slot that is locked.
    if crate::smp::ncpus() < 2 {
        crate::println!("  (one CPU: nobody else can hold a lock; run with --smp 2)");
        return Ok(());
    }
    let vsid = 0x0f_ffff_fa00u64; // no kernel region uses it
    let ea = 0x0000_0000_0345_6000u64;
    let g = boot::hpt().group_base(hash_4k(vsid, ea), false);
    let v = avpn_for(vsid, ea) | HpteV::VALID.bits();
    let r = (0x2000 << 12) | 0x10 | 0x2;
    let ptex = Hpt.insert(g, v, r).map_err(|x| format!("insert: {x:?}"))?;
    // The next free slot of the group, locked as if another CPU were filling it.
    let free = (g..g + 8).find(|&p| !Hpt.read(p).is_valid()).ok_or("no free slot left in the group")?;
    let m = &NATIVE.mem;
    let pre = crate::arch::ppc64::irq::save_disable();
    let took = m.try_lock(m.slot(free), 0);
    crate::arch::ppc64::irq::restore(pre);
    let v2 = avpn_for(vsid, ea + (1 << 23)) | HpteV::VALID.bits();
    let other = Hpt.insert(g, v2, r);
    let pre = crate::arch::ppc64::irq::save_disable();
    m.store_v(m.slot(free), 0);
    crate::arch::ppc64::irq::restore(pre);
    // Another CPU takes the first entry's lock.
    HELD_PTEX.store(ptex, Release);
    HELD_V.store(v, Release);
    HOLDER.store(0, Release);
    GO.store(0, Release);
    let ticket = crate::smp::run_on(1, hold_lock);
    let start = insn::mftb();
    while HOLDER.load(Acquire) == 0 && insn::mftb() - start < timer::us_to_tb(2_000_000) {
        insn::cpu_relax();
    }
    let held = HOLDER.load(Acquire);
    GO.store(1, Release);
    let removed = Hpt.remove(ptex, avpn_for(vsid, ea));
    let holder_after = HOLDER.load(Acquire);
    crate::smp::wait(1, ticket);
    if let Ok(p) = other {
        let _ = Hpt.remove(p, avpn_for(vsid, ea + (1 << 23)));
    }
    let again = Hpt.remove(ptex, avpn_for(vsid, ea));
    kassert!(took, "could not lock the free slot");
    kassert!(matches!(other, Ok(p) if p != free), "an insert took the locked free slot {free}: {other:?}");
    kassert_eq!(held, 1);
    kassert!(removed.is_ok(), "the removal did not find the entry once the lock was free: {removed:?}");
    kassert_eq!(holder_after, 3); // the removal returned only after the holder let go
    kassert_eq!(again, Err(RemoveError::NotFound));
    Ok(())
}
