//! In-kernel benchmarks (`bench=hash|smp|vmalloc|all`). Every figure is printed as a
//! machine-readable line `BENCH name value unit` (scripts/bench.sh collects them).
//!
//! Path lengths are counted outside the guest, exactly: each measured access is bracketed by
//! `count_mark(tag)` … `count_mark(0)`, and the instruction-counting TCG plugin
//! (tools/insncount, `--count-insns` in the runner) counts every exception window (vector to
//! `rfid`) that begins inside the bracket. The kernel prints `BENCHTAG tag name` so the host
//! can name them, and checks through its own counters that each access really took the path
//! the name promises (a bench whose setup went wrong fails instead of printing a wrong figure).

use crate::arch::ppc64::{boot, hcall, insn, percpu, timer};
use crate::hash::cell::PteCell;
use crate::hash::stats::{self, Counter};
use crate::mm::hpte::{avpn_for, hash_4k, HpteV};
use crate::mm::pte::{Pte, PteFlags, PAGE_KERNEL};
use crate::mm::slbe::kernel_vsid;
use crate::mm::{pgtable, vmalloc};
use crate::println;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

fn e(x: vmalloc::VmError) -> String {
    alloc::format!("{x}")
}

/// Makes the page at `a` look freshly mapped: no HPTE, no A/D, no slot bits.
fn unhash(a: u64) {
    let old = vmalloc::clear_pte(a).expect("mapped");
    vmalloc::set_pte_raw(a, u64::MAX, Pte::new(old.pfn(), PAGE_KERNEL).raw()).expect("remap");
}

fn load(a: u64) -> u64 {
    // SAFETY: callers pass a mapped, readable address; the load may fault and be resolved.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}

fn store(a: u64, v: u64) {
    // SAFETY: callers pass a mapped, writable address.
    unsafe { core::ptr::write_volatile(a as *mut u64, v) }
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

/// The hash-fault paths, in tag order (tag = design * 16 + 1 + index).
pub const PATHS: [&str; 9] = [
    "insert_primary",
    "insert_secondary",
    "insert_after_eviction",
    "hpte_update",
    "busy_reexecution",
    "bad_access",
    "segment_miss",
    "segment_miss_then_hash",
    "insert_after_eviction_bolted_primary",
];

fn tag(design: usize, path: usize) -> u8 {
    (design * 16 + 1 + path) as u8
}

/// Runs `f` once per repetition inside the bracket of `tag`, and checks with `moved` that the
/// counters show the path was taken every time.
fn measured(tag: u8, mut prep: impl FnMut(), access: impl Fn(), check: impl Fn(&stats::Snapshot) -> bool, what: &str) -> Result<(), String> {
    for i in 0..REPS {
        prep();
        let s0 = stats::this().snapshot();
        insn::count_mark(tag);
        access();
        insn::count_mark(0);
        let d = stats::this().snapshot().since(&s0);
        if !check(&d) {
            return Err(alloc::format!("bench: repetition {i} of {what} did not take that path: {d:?}"));
        }
    }
    Ok(())
}

/// Every hash-fault path, for the current design.
fn hash_paths(design: usize, name: &str) -> Result<(), String> {
    for (i, p) in PATHS.iter().enumerate() {
        println!("BENCHTAG {} hash.{}.{}", tag(design, i), name, p);
    }
    let a = vmalloc::vmalloc(4096).map_err(e)?;
    let _ = load(a);
    let geo = boot::hpt();
    let hash = hash_4k(kernel_vsid(a), a);
    let (pg, sg) = (geo.group_base(hash, false), geo.group_base(hash, true));
    let c = |d: &stats::Snapshot, k: Counter| d.get(k);

    measured(tag(design, 0), || unhash(a), || { load(a); },
             |d| c(d, Counter::InsertPrimary) == 1 && d.faults() == 1, "insert_primary")?;
    measured(tag(design, 3), || { unhash(a); load(a); }, || store(a, 1),
             |d| c(d, Counter::Updates) == 1 && d.faults() == 1, "hpte_update")?;
    let guard = a + 4096;
    measured(tag(design, 5), || {}, || { let _ = crate::arch::ppc64::exception::probe_read(guard); },
             |d| c(d, Counter::BadAccess) >= 1, "bad_access")?;
    // SAFETY (both): vmalloc segments are never bolted; the next access misses and reloads.
    measured(tag(design, 6), || unsafe { insn::slbie(a) }, || { load(a); },
             |d| c(d, Counter::DsegMiss) == 1 && d.faults() == 0, "segment_miss")?;
    measured(tag(design, 7), || { unhash(a); unsafe { insn::slbie(a) } }, || { load(a); },
             |d| c(d, Counter::DsegMiss) == 1 && c(d, Counter::InsertPrimary) == 1, "segment_miss_then_hash")?;

    let mut dummies = Vec::new();
    let mut k = 0;
    measured(tag(design, 1), || { drop_dummies(&mut dummies); unhash(a); fill_group(pg, true, &mut dummies, &mut k); }, || { load(a); },
             |d| c(d, Counter::InsertSecondary) == 1 && d.faults() == 1, "insert_secondary")?;
    // Both groups full of ordinary (evictable) entries: the usual eviction.
    measured(tag(design, 2), || {
        drop_dummies(&mut dummies);
        unhash(a);
        fill_group(pg, false, &mut dummies, &mut k);
        fill_group(sg, false, &mut dummies, &mut k);
    }, || { load(a); }, |d| c(d, Counter::Evictions) == 1 && d.resolved() == 1 && d.faults() == 1, "insert_after_eviction")?;
    // The primary group all bolted: the victim search may look there first and move on.
    measured(tag(design, 8), || {
        drop_dummies(&mut dummies);
        unhash(a);
        fill_group(pg, true, &mut dummies, &mut k);
        fill_group(sg, false, &mut dummies, &mut k);
    }, || { load(a); }, |d| c(d, Counter::Evictions) == 1 && d.resolved() == 1 && d.faults() == 1, "insert_after_eviction_bolted_primary")?;
    drop_dummies(&mut dummies);
    vmalloc::vfree(a).map_err(e)?;
    if crate::hash::fault::design().has_busy() {
        busy_path(tag(design, 4))
    } else {
        // No bit-lock, so no BUSY re-execution: nothing to measure.
        Ok(())
    }
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

/// BUSY re-execution: another CPU holds BUSY for 2 ms; each re-executed fault is one window
/// (no hypercall; every 8th gives the CPU away with H_CONFER), and the last one inserts.
fn busy_path(tag: u8) -> Result<(), String> {
    if crate::smp::ncpus() < 2 {
        println!("bench: busy_reexecution needs 2 CPUs");
        return Ok(());
    }
    let a = vmalloc::vmalloc(4096).map_err(e)?;
    // Under the counting plugin the guest runs several times slower against the same time
    // base: hold BUSY for 20 ms, and count only runs that did re-execute.
    let mut runs = 0;
    for _ in 0..10 {
        unhash(a);
        let slot = pgtable::walk(a).ok_or("no pte")?;
        slot.publish(slot.load().with(PteFlags::BUSY));
        BUSY_EA.store(a, Release);
        BUSY_CLEAR_AT.store(insn::mftb() + timer::us_to_tb(20_000), Release);
        let r0 = stats::this().get(Counter::BusyRetries);
        let t = crate::smp::run_on(1, busy_clearer);
        insn::count_mark(tag);
        load(a);
        insn::count_mark(0);
        crate::smp::wait(1, t);
        if stats::this().get(Counter::BusyRetries) > r0 {
            runs += 1;
            if runs == 3 {
                break;
            }
        }
    }
    if runs == 0 {
        return Err("bench: no BUSY run saw a re-execution".into());
    }
    vmalloc::vfree(a).map_err(e)?;
    Ok(())
}

pub fn bench_hash() -> Result<(), String> {
    let was = crate::hash::fault::design();
    // Tags: design number * 16 + 1 + path (lockfree 1-9, locked 17-25, patch2003 33-41, cas2 49-57).
    for d in crate::hash::fault::Design::ALL {
        crate::hash::fault::select(d);
        let r = hash_paths(d as usize, d.name());
        crate::hash::fault::select(was);
        r?;
    }
    println!("bench: hash paths done (counts: tools/insncount, see scripts/bench.sh)");
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
        let s0: Vec<stats::Snapshot> = (0..n).map(|c| stats::of(c).snapshot()).collect();
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
            let d = stats::of(c).snapshot().since(&s0[c]);
            let f = d.faults();
            faults += f;
            inserts += d.resolved();
            retries += d.get(Counter::BusyRetries);
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
        let was = crate::hash::fault::design();
        for locked in [false, true] {
            crate::hash::fault::set_locked_mode(locked);
            bench_throughput(300)?;
        }
        crate::hash::fault::select(was);
    }
    if all || which == "vmalloc" {
        bench_vmalloc()?;
    }
    Ok(())
}
