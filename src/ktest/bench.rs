//! In-kernel benchmarks (`bench=hash|smp|vmalloc|all`). Every figure is printed as a
//! machine-readable line `BENCH name value unit` (scripts/bench.sh collects them).
//!
//! Path lengths come from PMC5, which counts completed instructions under TCG once MMCR0's
//! freeze bit is clear. Each path is measured as (PMC5 delta across one faulting access) minus
//! (delta across the same access when it does not fault), so the result is the instructions
//! from the vector to `rfid`, with the hypercall's `sc` counted as one.

use crate::arch::ppc64::{boot, hcall, insn, percpu, timer};
use crate::hash::cell::PteCell;
use crate::hash::stats::{self, Counter};
use crate::mm::hpte::{avpn_for, hash_4k, HpteV};
use crate::mm::pte::{Pte, PteFlags, PAGE_KERNEL};
use crate::mm::slbe::kernel_vsid;
use crate::mm::{pgtable, vmalloc};
use crate::println;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

fn pmc_on() {
    // SAFETY: MMCR0 = 0 un-freezes the counters; no interrupts are enabled (PMAE=0).
    unsafe { insn::mtmmcr0(0) };
}

/// PMC5 delta across one load from `a` (the load included).
#[inline(never)]
fn pmc_load(a: u64) -> u64 {
    let (s, e): (u64, u64);
    // SAFETY: callers pass a mapped address; the load may fault and be resolved by hash_page.
    unsafe { asm!("mfspr {s}, 775", "ld {t}, 0({p})", "mfspr {e}, 775", s = out(reg) s, e = out(reg) e, t = out(reg) _, p = in(reg_nonzero) a, options(nostack)) };
    e.wrapping_sub(s)
}

#[inline(never)]
fn pmc_store(a: u64) -> u64 {
    let (s, e): (u64, u64);
    // SAFETY: as pmc_load, for a writable mapping.
    unsafe { asm!("mfspr {s}, 775", "std {s}, 0({p})", "mfspr {e}, 775", s = out(reg) s, e = out(reg) e, p = in(reg_nonzero) a, options(nostack)) };
    e.wrapping_sub(s)
}

#[inline(never)]
fn pmc_probe(a: u64) -> u64 {
    let s = insn::mfpmc5();
    let _ = crate::arch::ppc64::exception::probe_read(a);
    insn::mfpmc5().wrapping_sub(s)
}

fn e(x: vmalloc::VmError) -> alloc::string::String {
    alloc::format!("{x}")
}

/// Makes the page at `a` look freshly mapped: no HPTE, no A/D, no slot bits.
fn unhash(a: u64) {
    let old = vmalloc::clear_pte(a).expect("mapped");
    vmalloc::set_pte_raw(a, u64::MAX, Pte::new(old.pfn(), PAGE_KERNEL).raw()).expect("remap");
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn fill_group(g: u64, bolted: bool, out: &mut Vec<(u64, u64)>, k: &mut u64) {
    let vsid = 0x0f_ffff_fe00u64;
    loop {
        let avpn = avpn_for(vsid, *k << 23);
        *k += 1;
        let v = avpn | HpteV::VALID.bits() | if bolted { HpteV::BOLTED.bits() } else { 0 };
        match hcall::h_enter(0, g, v, (0x2000 << 12) | 0x10 | 0x2) {
            Ok(p) => out.push((p, avpn)),
            Err(_) => break,
        }
    }
}

fn drop_dummies(d: &mut Vec<(u64, u64)>) {
    for (p, avpn) in d.drain(..) {
        let _ = hcall::h_remove(hcall::H_AVPN, p, avpn);
    }
}

const REPS: usize = 9;

/// Instruction counts of each hash-fault path, for the current hash_page mode.
fn hash_paths(tag: &str) -> Result<(), alloc::string::String> {
    pmc_on();
    let a = vmalloc::vmalloc(4096).map_err(e)?;
    let _ = pmc_load(a);
    let base_load = median((0..REPS).map(|_| pmc_load(a)).collect());
    let base_store = median((0..REPS).map(|_| pmc_store(a)).collect());
    let base_probe = median((0..REPS).map(|_| pmc_probe(a)).collect());

    // (a) insert into the primary group.
    let ins: Vec<u64> = (0..REPS).map(|_| { unhash(a); pmc_load(a) - base_load }).collect();
    // (d) HPTE update: store to a clean page whose HPTE is read-only.
    let upd: Vec<u64> = (0..REPS).map(|_| { unhash(a); let _ = pmc_load(a); pmc_store(a) - base_store }).collect();
    // (f) bad access: a guard page (probe absorbs the fault).
    let guard = a + 4096;
    let bad: Vec<u64> = (0..REPS).map(|_| pmc_probe(guard).saturating_sub(base_probe)).collect();
    // (g) 0x380 segment miss on a page that is hashed already.
    let seg: Vec<u64> = (0..REPS).map(|_| {
        // SAFETY: a vmalloc segment, never bolted.
        unsafe { insn::slbie(a) };
        pmc_load(a) - base_load
    }).collect();
    // (g') 0x380 and the page not hashed either: one exception does both.
    let seg_hash: Vec<u64> = (0..REPS).map(|_| {
        unhash(a);
        // SAFETY: as above.
        unsafe { insn::slbie(a) };
        pmc_load(a) - base_load
    }).collect();

    // (b) secondary insert and (c) insert after eviction.
    let geo = boot::info().hpt();
    let hash = hash_4k(kernel_vsid(a), a);
    let (pg, sg) = (geo.group_base(hash, false), geo.group_base(hash, true));
    let mut dummies = Vec::new();
    let mut k = 0;
    let mut sec = Vec::new();
    let mut evict = Vec::new();
    for _ in 0..REPS {
        unhash(a);
        fill_group(pg, true, &mut dummies, &mut k);
        sec.push(pmc_load(a) - base_load);
        unhash(a);
        fill_group(sg, false, &mut dummies, &mut k);
        let ev0 = stats::this().get(Counter::Evictions);
        let n = pmc_load(a) - base_load;
        if stats::this().get(Counter::Evictions) > ev0 {
            evict.push(n);
        }
        drop_dummies(&mut dummies);
    }
    vmalloc::vfree(a).map_err(e)?;

    let rows = [
        ("insert_primary", ins),
        ("insert_secondary", sec),
        ("insert_after_eviction", evict),
        ("hpte_update", upd),
        ("bad_access", bad),
        ("segment_miss", seg),
        ("segment_miss_then_hash", seg_hash),
    ];
    for (name, v) in rows {
        if v.is_empty() {
            println!("BENCH hash.{}.{} n/a insns", tag, name);
            continue;
        }
        let (mn, mx) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
        println!("BENCH hash.{}.{} {} insns (min {} max {} of {})", tag, name, median(v.clone()), mn, mx, v.len());
    }
    Ok(())
}

static BUSY_CLEAR_AT: AtomicU64 = AtomicU64::new(0);
static BUSY_EA: AtomicU64 = AtomicU64::new(0);
fn busy_clearer(_c: usize) {
    let slot = pgtable::walk(BUSY_EA.load(Acquire)).expect("mapped");
    while insn::mftb() < BUSY_CLEAR_AT.load(Acquire) {
        insn::cpu_relax();
    }
    slot.publish(slot.load().without(PteFlags::BUSY));
}

/// BUSY re-execution: another CPU holds BUSY for a while; each re-executed fault costs this.
fn busy_path(tag: &str) -> Result<(), alloc::string::String> {
    if crate::smp::ncpus() < 2 {
        println!("BENCH hash.{}.busy_reexecution n/a insns (needs 2 CPUs)", tag);
        return Ok(());
    }
    pmc_on();
    let a = vmalloc::vmalloc(4096).map_err(e)?;
    let base = median((0..REPS).map(|_| pmc_load(a)).collect());
    unhash(a);
    let ins = pmc_load(a) - base; // plain insert for reference
    let mut per = Vec::new();
    for _ in 0..5 {
        unhash(a);
        let slot = pgtable::walk(a).ok_or("no pte")?;
        slot.publish(slot.load().with(PteFlags::BUSY));
        BUSY_EA.store(a, Release);
        BUSY_CLEAR_AT.store(insn::mftb() + timer::us_to_tb(2000), Release);
        let r0 = stats::this().get(Counter::BusyRetries);
        let t = crate::smp::run_on(1, busy_clearer);
        let n = pmc_load(a) - base;
        crate::smp::wait(1, t);
        let k = stats::this().get(Counter::BusyRetries) - r0;
        if k == 0 || n <= ins {
            println!("bench: busy run: {} insns, {} re-executions, plain insert {}", n, k, ins);
        }
        if k > 0 && n > ins {
            per.push((n - ins) / k);
        }
    }
    vmalloc::vfree(a).map_err(e)?;
    if per.is_empty() {
        println!("BENCH hash.{}.busy_reexecution n/a insns", tag);
    } else {
        println!("BENCH hash.{}.busy_reexecution {} insns (per re-executed fault, median of {})", tag, median(per.clone()), per.len());
    }
    Ok(())
}

pub fn bench_hash() -> Result<(), alloc::string::String> {
    let (was_l, was_a) = (crate::hash::fault::locked_mode(), crate::hash::fault::asm_fast_path());
    for (tag, asm, locked) in [("lockfree", false, false), ("asm", true, false), ("locked", false, true)] {
        crate::hash::fault::set_locked_mode(locked);
        crate::hash::fault::set_asm_fast_path(asm);
        hash_paths(tag)?;
        busy_path(tag)?;
    }
    crate::hash::fault::set_locked_mode(was_l);
    crate::hash::fault::set_asm_fast_path(was_a);
    Ok(())
}

// ---------------------------------------------------------------- fault throughput

static T_SHARED: AtomicBool = AtomicBool::new(false);
static T_AREA: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static T_PAGES: AtomicU64 = AtomicU64::new(0);
static T_QUIT: AtomicBool = AtomicBool::new(false);
static T_START: crate::smp::Barrier = crate::smp::Barrier::new();
static T_END: crate::smp::Barrier = crate::smp::Barrier::new();
static T_TB: AtomicU64 = AtomicU64::new(0);

/// One round: every CPU stores to each page of its area once (disjoint: its own fresh area;
/// shared: all CPUs walk the same fresh area, starting at different offsets). Every first touch
/// is a hash fault that inserts an HPTE; nothing is evicted inside the timed window, so no
/// H_REMOVE (and its global TLB flush in QEMU) disturbs the measurement.
fn touch_round(cpu: usize, n: usize) {
    let shared = T_SHARED.load(Relaxed);
    let pages = T_PAGES.load(Relaxed);
    let area = if shared { T_AREA[0].load(Acquire) } else { T_AREA[cpu].load(Acquire) };
    for i in 0..pages {
        let p = if shared { (i + cpu as u64 * pages / n as u64) % pages } else { i };
        // SAFETY: the area is mapped until the round ends (barrier below).
        unsafe { core::ptr::write_volatile((area + p * 4096 + 8 * cpu as u64) as *mut u64, i) };
    }
}

fn touch_worker(cpu: usize) {
    let n = crate::smp::ncpus();
    loop {
        T_START.wait(n);
        if T_QUIT.load(Acquire) {
            break;
        }
        touch_round(cpu, n);
        T_END.wait(n);
    }
}

pub fn bench_throughput(total_ms: u64) -> Result<(), alloc::string::String> {
    let n = crate::smp::ncpus();
    let pages = 2048u64;
    T_PAGES.store(pages, Relaxed);
    let mode = if crate::hash::fault::locked_mode() { "locked" } else { "lockfree" };
    for shared in [false, true] {
        T_SHARED.store(shared, Relaxed);
        T_QUIT.store(false, Release);
        let s0: Vec<[u64; 16]> = (0..n).map(|c| stats::of(c).snapshot()).collect();
        let tickets: Vec<(usize, u64)> = (1..n).map(|c| (c, crate::smp::run_on(c, touch_worker))).collect();
        let mut timed = 0u64;
        let mut rounds = 0u64;
        while timed < timer::us_to_tb(total_ms * 1000) {
            for c in 0..if shared { 1 } else { n } {
                let a = vmalloc::vmalloc_flags(pages * 4096, PAGE_KERNEL).map_err(e)?;
                // vmalloc zeroes through the mapping: drop those HPTEs so the round starts cold.
                for p in 0..pages {
                    unhash_fast(a + p * 4096);
                }
                T_AREA[c].store(a, Release);
            }
            T_START.wait(n);
            let t0 = insn::mftb();
            touch_round(0, n);
            T_END.wait(n);
            timed += insn::mftb() - t0;
            rounds += 1;
            for c in 0..if shared { 1 } else { n } {
                vmalloc::vfree(T_AREA[c].load(Acquire)).map_err(e)?;
            }
        }
        T_QUIT.store(true, Release);
        T_START.wait(n);
        for (c, t) in tickets {
            crate::smp::wait(c, t);
        }
        T_TB.store(timed, Relaxed);
        let (mut faults, mut inserts, mut retries) = (0, 0, 0);
        let kind = if shared { "shared" } else { "disjoint" };
        for c in 0..n {
            let now = stats::of(c).snapshot();
            let d = |k: Counter| now[k as usize] - s0[c][k as usize];
            let f = d(Counter::Faults);
            faults += f;
            inserts += d(Counter::InsertPrimary) + d(Counter::InsertSecondary) + d(Counter::Updates);
            retries += d(Counter::BusyRetries);
            println!("BENCH fault_rate.{}.{}.smp{}.cpu{} {} faults/s", mode, kind, n, c, f * timer::tb_freq() / timed);
        }
        // Faults during vmalloc's own zeroing happen outside the timed window: count only the
        // touches (pages x CPUs x rounds) as completed accesses.
        let touches = pages * n as u64 * rounds;
        println!("BENCH fault_rate.{}.{}.smp{}.total {} faults/s ({} HPTEs installed/s, {} BUSY re-executions, {} touches in {} rounds)",
                 mode, kind, n, faults * timer::tb_freq() / timed, inserts * timer::tb_freq() / timed, retries, touches, rounds);
    }
    Ok(())
}

/// Removes the HPTE of a page vmalloc just zeroed and resets its PTE to "never hashed".
fn unhash_fast(ea: u64) {
    vmalloc::evict_hpte(ea);
    if let Some(slot) = pgtable::walk(ea) {
        // No other CPU touches the area before the round starts: a plain store is enough.
        slot.publish(Pte::new(slot.load().pfn(), PAGE_KERNEL));
    }
}

/// vmalloc + first touch + vfree per page, and ioremap + iounmap.
pub fn bench_vmalloc() -> Result<(), alloc::string::String> {
    let pages = 64u64;
    let rounds = 20u64;
    let t0 = insn::mftb();
    for _ in 0..rounds {
        let a = vmalloc::vmalloc(pages * 4096).map_err(e)?;
        for p in 0..pages {
            // SAFETY: fresh area.
            unsafe { core::ptr::write_volatile((a + p * 4096 + 8) as *mut u64, p) };
        }
        vmalloc::vfree(a).map_err(e)?;
    }
    let ns = (insn::mftb() - t0) * 1_000_000_000 / timer::tb_freq() / (pages * rounds);
    println!("BENCH vmalloc_touch_vfree_per_page {} ns", ns);
    let t0 = insn::mftb();
    for _ in 0..200 {
        let io = vmalloc::ioremap(0x2000_0000_0000, 4096).map_err(e)?;
        vmalloc::iounmap(io).map_err(e)?;
    }
    let ns = (insn::mftb() - t0) * 1_000_000_000 / timer::tb_freq() / 200;
    println!("BENCH ioremap_iounmap {} ns", ns);
    Ok(())
}

pub fn run(which: &str) -> Result<(), alloc::string::String> {
    let all = which == "all";
    if all || which == "hash" {
        bench_hash()?;
    }
    if all || which == "smp" {
        for locked in [false, true] {
            crate::hash::fault::set_locked_mode(locked);
            bench_throughput(300)?;
        }
        crate::hash::fault::set_locked_mode(false);
    }
    if all || which == "vmalloc" {
        bench_vmalloc()?;
    }
    Ok(())
}
