//! In-kernel benchmarks (`bench=hash|smp|vmalloc|all`). Every figure is printed as a
//! machine-readable line `BENCH name value unit` (scripts/bench.sh collects them).
//!
//! Path lengths are counted outside the guest, exactly: each measured access is bracketed by
//! `count_mark(tag)` … `count_mark(0)`, and the instruction-counting TCG plugin
//! (tools/insncount, `--count-insns` in the runner) counts every exception window (vector to
//! `rfid`) that begins inside the bracket. The kernel prints `BENCHTAG tag name` so the host
//! can name them, and checks through its own counters that each access really took the path
//! the name promises (a bench whose setup went wrong fails instead of printing a wrong figure).

use crate::arch::ppc64::{boot, hcall, insn, papr, percpu, timer};
use crate::hash::backend::HashBackend;
use crate::hash::cell::PteCell;
use crate::hash::fault::Design;
use crate::hash::hpt::Hpt;
use crate::hash::stats::{self, Counter};
use crate::mm::hpte::{avpn_for, hash_4k, hpte_for, page_for_group, HpteV};
use crate::mm::pte::{Pte, PteFlags, PAGE_KERNEL};
use crate::mm::slbe::kernel_vsid;
use crate::mm::{pgtable, vmalloc};
use crate::println;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::*};

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
        match Hpt.insert(g, v, (0x2000 << 12) | 0x10 | 0x2) {
            Ok(p) => out.push((p, avpn)),
            Err(_) => break,
        }
    }
}

fn drop_dummies(d: &mut Vec<(u64, u64)>) {
    for (p, avpn) in d.drain(..) {
        let _ = Hpt.remove(p, avpn);
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
fn measured(
    tag: u8,
    mut prep: impl FnMut(),
    access: impl Fn(),
    check: impl Fn(&stats::Snapshot) -> bool,
    what: &str,
) -> Result<(), String> {
    for i in 0..REPS {
        prep();
        let s0 = stats::this().snapshot();
        insn::count_mark(tag);
        access();
        insn::count_mark(0);
        let d = stats::this().snapshot().since(&s0);
        if !check(&d) {
            return Err(alloc::format!("repetition {i} of {what} did not take that path: {d:?}"));
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

    measured(
        tag(design, 0),
        || unhash(a),
        || {
            load(a);
        },
        |d| c(d, Counter::InsertPrimary) == 1 && d.faults() == 1,
        "insert_primary",
    )?;
    measured(
        tag(design, 3),
        || {
            unhash(a);
            load(a);
        },
        || store(a, 1),
        |d| c(d, Counter::Updates) == 1 && d.faults() == 1,
        "hpte_update",
    )?;
    let guard = a + 4096;
    measured(
        tag(design, 5),
        || {},
        || {
            let _ = crate::arch::ppc64::exception::probe_read(guard);
        },
        |d| c(d, Counter::BadAccess) >= 1,
        "bad_access",
    )?;
    measured(
        tag(design, 6),
        // SAFETY: vmalloc segments are never bolted; the next access misses and reloads.
        || unsafe { insn::slbie(a) },
        || {
            load(a);
        },
        |d| c(d, Counter::DsegMiss) == 1 && d.faults() == 0,
        "segment_miss",
    )?;
    measured(
        tag(design, 7),
        || {
            unhash(a);
            // SAFETY: as above.
            unsafe { insn::slbie(a) }
        },
        || {
            load(a);
        },
        |d| c(d, Counter::DsegMiss) == 1 && c(d, Counter::InsertPrimary) == 1,
        "segment_miss_then_hash",
    )?;

    let mut dummies = Vec::new();
    let mut k = 0;
    measured(
        tag(design, 1),
        || {
            drop_dummies(&mut dummies);
            unhash(a);
            fill_group(pg, true, &mut dummies, &mut k);
        },
        || {
            load(a);
        },
        |d| c(d, Counter::InsertSecondary) == 1 && d.faults() == 1,
        "insert_secondary",
    )?;
    // Both groups full of ordinary (evictable) entries: the usual eviction.
    measured(
        tag(design, 2),
        || {
            drop_dummies(&mut dummies);
            unhash(a);
            fill_group(pg, false, &mut dummies, &mut k);
            fill_group(sg, false, &mut dummies, &mut k);
        },
        || {
            load(a);
        },
        |d| c(d, Counter::Evictions) == 1 && d.resolved() == 1 && d.faults() == 1,
        "insert_after_eviction",
    )?;
    // The primary group all bolted: the victim search may look there first and move on.
    measured(
        tag(design, 8),
        || {
            drop_dummies(&mut dummies);
            unhash(a);
            fill_group(pg, true, &mut dummies, &mut k);
            fill_group(sg, false, &mut dummies, &mut k);
        },
        || {
            load(a);
        },
        |d| c(d, Counter::Evictions) == 1 && d.resolved() == 1 && d.faults() == 1,
        "insert_after_eviction_bolted_primary",
    )?;
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
        return Err("no BUSY run saw a re-execution".into());
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

// ---------------------------------------------------------------- measured SMP phases
//
// Every SMP benchmark runs in rounds: CPU 0 prepares the round (`prep`: make the pages fault
// again), then every CPU runs one *window* of the work between two barriers. Each CPU brackets
// its own window with a snapshot of its own counters and the time base, so only what happens
// inside the windows is reported: faults of the preparation (vmalloc zeroing the pages through
// their mapping, CPU 0 only) and the barriers never are. A round's wall time runs from the
// earliest window start to the latest window end (the time base is one clock for all vCPUs).

/// What a window runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Work {
    /// One store to each page of this CPU's area (disjoint), or of the one shared area starting
    /// at a different offset on each CPU (shared). Every store to a page without an HPTE is a
    /// hash fault that inserts one; nothing is evicted inside a window.
    Touch = 0,
    /// `CEILING_ITERS` × (a system call that returns at once + `H_READ` of a bolted HPTE).
    Ceiling = 1,
    /// Only the system call.
    Trap = 2,
    /// Only the `H_READ`.
    Hcall = 3,
    /// One store to each of this CPU's contention pages (`bench=contention`).
    Contend = 4,
    /// `CEILING_ITERS` stores to this CPU's page without an HPTE, under `Design::Ceiling`: each
    /// a data storage interrupt through the hash fault's own entry and exit around one H_READ,
    /// the access skipped (`do_hash_fault_ceiling`).
    Dsi = 5,
    /// The touches of `Touch` (disjoint), with hash_vector branching to `exc_fault_ceiling`:
    /// each fault makes one prepared H_ENTER and returns, and the store re-executes.
    Enter = 6,
}

const WORKS: [Work; 7] = [Work::Touch, Work::Ceiling, Work::Trap, Work::Hcall, Work::Contend, Work::Dsi, Work::Enter];

/// Per-CPU record words: iterations, time-base ticks inside windows, this round's window start
/// and end, failed hypercalls, then the counter deltas inside windows.
const R_ITERS: usize = 0;
const R_TB: usize = 1;
const R_START: usize = 2;
const R_END: usize = 3;
const R_BAD: usize = 4;
const R_STATS: usize = 5;
const R_WORDS: usize = R_STATS + stats::N;
static REC: [[AtomicU64; R_WORDS]; percpu::MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; R_WORDS] }; percpu::MAX_CPUS];

static P_WORK: AtomicU8 = AtomicU8::new(0);
/// Marker tag for the instruction counter (0: none) while a window runs.
static P_TAG: AtomicU8 = AtomicU8::new(0);
static P_QUIT: AtomicBool = AtomicBool::new(false);
static P_START: PhaseBarrier = PhaseBarrier::new();
static P_END: PhaseBarrier = PhaseBarrier::new();
/// The longest a barrier waiter sleeps in one H_CEDE (µs): the decrementer wakes it.
const CEDE_US: u64 = 1000;
/// How long a barrier waiter spins before it cedes its vCPU (time-base ticks).
static P_SPIN_TB: AtomicU64 = AtomicU64::new(0);
/// `bench.wait=relax`: waiters spin with `or 1,1,1` and never cede (the kernel's other barriers).
static P_RELAX: AtomicBool = AtomicBool::new(false);
/// Hypercalls the harness makes outside the windows (H_PROD, H_CEDE, the preparation's
/// H_REMOVE), all CPUs: `bench=faults` reports them beside QEMU's lock profile.
static HARNESS_HCALLS: AtomicU64 = AtomicU64::new(0);

/// The phases' barrier. A waiting vCPU must not take from the ones still working: under MTTCG
/// a spinning vCPU holds a host core (with `or 1,1,1` in its loop, as `smp::Barrier` has, it
/// also takes QEMU's big lock twice per turn), and with more vCPUs than host cores the workers
/// wait for it. So a waiter spins with plain loads for at most `P_SPIN_TB`, then gives its
/// host thread up with H_CEDE; the last arriver wakes every other participant with H_PROD.
/// A prod can be lost (QEMU forgets one that reaches a running vCPU: see
/// `smp::ensure_started`), so each H_CEDE is bounded by the decrementer (`CEDE_US`): a lost
/// wake-up costs at most that, never the seconds of DEC_IDLE.
/// `bench.wait=relax` makes it spin like `smp::Barrier` instead, for comparison.
struct PhaseBarrier {
    count: core::sync::atomic::AtomicUsize,
    sense: AtomicBool,
}

impl PhaseBarrier {
    const fn new() -> Self {
        PhaseBarrier { count: core::sync::atomic::AtomicUsize::new(0), sense: AtomicBool::new(false) }
    }

    fn wait(&self, n: usize) {
        let s = !self.sense.load(Acquire);
        if self.count.fetch_add(1, AcqRel) + 1 == n {
            self.count.store(0, Relaxed);
            self.sense.store(s, Release);
            let me = percpu::cpu_id();
            for c in (0..n).filter(|c| *c != me) {
                let _ = hcall::h_prod(boot::info().cpu_ids[c] as u64);
            }
            HARNESS_HCALLS.fetch_add(n as u64 - 1, Relaxed);
            return;
        }
        if P_RELAX.load(Relaxed) {
            while self.sense.load(Acquire) != s {
                insn::cpu_relax();
            }
            return;
        }
        let t0 = insn::mftb();
        let spin = P_SPIN_TB.load(Relaxed);
        while self.sense.load(Acquire) != s {
            if insn::mftb() - t0 < spin {
                core::hint::spin_loop();
            } else {
                timer::arm(timer::us_to_tb(CEDE_US));
                hcall::h_cede();
                crate::arch::ppc64::irq::disable();
                timer::arm(timer::DEC_IDLE);
                HARNESS_HCALLS.fetch_add(1, Relaxed);
            }
        }
    }
}

static P_SHARED: AtomicBool = AtomicBool::new(false);
static P_AREA: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static P_PAGES: AtomicU64 = AtomicU64::new(0);
/// The bolted HPTE the ceiling reads.
static P_PTEX: AtomicU64 = AtomicU64::new(0);
/// Each CPU's contention pages.
const MAX_CPAGES: usize = 8;
static P_CPAGES: [[AtomicU64; MAX_CPAGES]; percpu::MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_CPAGES] }; percpu::MAX_CPUS];
static P_NCPAGES: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// Iterations of the ceiling's loop per window: as many as a touch window has faults.
const CEILING_ITERS: u64 = 2048;
const TOUCH_PAGES: u64 = 2048;

fn touch(cpu: usize, n: usize) -> u64 {
    let shared = P_SHARED.load(Relaxed);
    let pages = P_PAGES.load(Relaxed);
    let area = if shared { P_AREA[0].load(Acquire) } else { P_AREA[cpu].load(Acquire) };
    for i in 0..pages {
        let p = if shared { (i + cpu as u64 * pages / n as u64) % pages } else { i };
        // SAFETY: the area stays mapped until the phase ends (it is freed after the last round).
        unsafe { core::ptr::write_volatile((area + p * 4096 + 8 * cpu as u64) as *mut u64, i) };
    }
    pages
}

/// Each CPU's page for `Work::Dsi`, and how many faults `do_hash_fault_ceiling` took per CPU.
static P_DSI_PAGE: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static DSI_TAKEN: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// The 0x300 handler under `Design::Ceiling` (the `bl` of hash_fault_entry patched here by
/// `select`): no hash_page — one H_READ of the bolted HPTE, and the faulting access is skipped
/// (the saved NIP moves past it). Same calling convention as `do_hash_fault`.
#[no_mangle]
pub extern "C" fn do_hash_fault_ceiling(_dar: u64, _dsisr: u64, _srr1: u64) {
    let _ = hcall::hcall(hcall::H_READ, [0, P_PTEX.load(Relaxed), 0, 0]);
    let p = percpu::this();
    let c = &DSI_TAKEN[p.cpu.load(Relaxed) as usize];
    c.store(c.load(Relaxed) + 1, Relaxed);
    let f = (p.hash_frame.load(Relaxed) + crate::arch::ppc64::exception::HDR_SIZE as u64)
        as *mut crate::arch::ppc64::exception::ExcFrame;
    // SAFETY: this CPU's hash frame, in use by this very fault; the exit restores SRR0 from it.
    unsafe { (*f).nip += 4 };
}

fn dsi_loop(cpu: usize, iters: u64) -> u64 {
    let a = P_DSI_PAGE[cpu].load(Relaxed);
    for i in 0..iters {
        // SAFETY: a mapped page; under Design::Ceiling the store faults and is skipped.
        unsafe { core::ptr::write_volatile((a + 8 * cpu as u64) as *mut u64, i) };
    }
    iters
}

fn contend(cpu: usize) -> u64 {
    let k = P_NCPAGES[cpu].load(Relaxed);
    for i in 0..k as usize {
        let a = P_CPAGES[cpu][i].load(Relaxed);
        // SAFETY: the contention pages stay mapped until the phase ends.
        unsafe { core::ptr::write_volatile((a + 8 * cpu as u64) as *mut u64, i as u64) };
    }
    k
}

/// A system call that returns at once: only while this CPU's generic path is `exc_ceiling`.
#[inline(always)]
fn null_syscall() {
    // SAFETY: exc_ceiling (installed by `ceiling_path`) returns from the 0xc00 at once and
    // restores every register it uses, CR included; SRR0/SRR1 are not state Rust can see.
    unsafe { core::arch::asm!("sc", options(nostack, preserves_flags)) };
}

/// The ceiling's loop: returns the number of failed H_READs.
fn ceiling_loop<const TRAP: bool, const HCALL: bool>(iters: u64, ptex: u64) -> u64 {
    let mut bad = 0;
    for _ in 0..iters {
        if TRAP {
            null_syscall();
        }
        if HCALL && hcall::hcall(hcall::H_READ, [0, ptex, 0, 0]).0 != 0 {
            bad += 1;
        }
    }
    bad
}

fn window(cpu: usize, n: usize) {
    let work = WORKS[P_WORK.load(Relaxed) as usize];
    let tag = P_TAG.load(Relaxed);
    let ptex = P_PTEX.load(Relaxed);
    let s0 = stats::this().snapshot();
    if tag != 0 {
        insn::count_mark(tag);
    }
    let t0 = insn::mftb();
    let (iters, bad) = match work {
        Work::Touch => (touch(cpu, n), 0),
        Work::Ceiling => (CEILING_ITERS, ceiling_loop::<true, true>(CEILING_ITERS, ptex)),
        Work::Trap => (CEILING_ITERS, ceiling_loop::<true, false>(CEILING_ITERS, ptex)),
        Work::Hcall => (CEILING_ITERS, ceiling_loop::<false, true>(CEILING_ITERS, ptex)),
        Work::Contend => (contend(cpu), 0),
        Work::Dsi => (dsi_loop(cpu, CEILING_ITERS), 0),
        Work::Enter => {
            let n = touch(cpu, n);
            (n, n.abs_diff(fault_ceiling_used(cpu)))
        }
    };
    let t1 = insn::mftb();
    if tag != 0 {
        insn::count_mark(0);
    }
    let d = stats::this().snapshot().since(&s0);
    let r = &REC[cpu];
    let add = |w: usize, v: u64| r[w].store(r[w].load(Relaxed) + v, Relaxed);
    add(R_ITERS, iters);
    add(R_TB, t1 - t0);
    add(R_BAD, bad);
    r[R_START].store(t0, Relaxed);
    r[R_END].store(t1, Relaxed);
    for (i, v) in d.0.iter().enumerate() {
        add(R_STATS + i, *v);
    }
}

fn phase_worker(cpu: usize) {
    let n = crate::smp::ncpus();
    loop {
        P_START.wait(n);
        if P_QUIT.load(Acquire) {
            break;
        }
        window(cpu, n);
        P_END.wait(n);
    }
}

/// One CPU's share of a phase: what happened inside its windows.
#[derive(Clone, Copy, Default, Debug)]
struct CpuRec {
    iters: u64,
    tb: u64,
    bad: u64,
    d: stats::Snapshot,
}

struct Phase {
    rounds: u64,
    wall_tb: u64,
    cpus: Vec<CpuRec>,
}

impl Phase {
    fn sum(&self) -> CpuRec {
        let mut t = CpuRec::default();
        for c in &self.cpus {
            t.iters += c.iters;
            t.tb += c.tb;
            t.bad += c.bad;
            t.d.add(&c.d);
        }
        t
    }
    fn per_s(&self, x: u64) -> u64 {
        per_s(x, self.wall_tb)
    }
}

fn per_s(x: u64, tb: u64) -> u64 {
    if tb == 0 {
        0
    } else {
        (x as u128 * timer::tb_freq() as u128 / tb as u128) as u64
    }
}

fn us(tb: u64) -> u64 {
    tb * 1_000_000 / timer::tb_freq()
}

/// Runs rounds of `work` on every online CPU until there were at least `min_rounds` and
/// `min_wall_tb` of wall time; `prep` runs on CPU 0 before each round, while the others wait.
fn run_phase(
    work: Work,
    tag: u8,
    min_rounds: u64,
    min_wall_tb: u64,
    mut prep: impl FnMut() -> Result<(), String>,
) -> Result<Phase, String> {
    let n = crate::smp::ncpus();
    // The contention phases want every CPU to leave the start barrier at the same moment (their
    // preparation is short, so the others are still spinning); the timed ones want waiters out
    // of the way at once.
    P_SPIN_TB.store(if work == Work::Contend { timer::us_to_tb(200) } else { 0 }, Relaxed);
    for r in REC.iter() {
        for w in r {
            w.store(0, Relaxed);
        }
    }
    P_WORK.store(work as u8, Relaxed);
    P_TAG.store(tag, Relaxed);
    P_QUIT.store(false, Release);
    let tickets: Vec<(usize, u64)> = (1..n).map(|c| (c, crate::smp::run_on(c, phase_worker))).collect();
    for (c, _) in &tickets {
        crate::smp::ensure_started(*c);
    }
    let (mut rounds, mut wall) = (0u64, 0u64);
    let mut result = Ok(());
    while rounds < min_rounds || wall < min_wall_tb {
        if let Err(e) = prep() {
            result = Err(e);
            break;
        }
        P_START.wait(n);
        window(0, n);
        P_END.wait(n);
        let start = (0..n).map(|c| REC[c][R_START].load(Relaxed)).min().unwrap_or(0);
        let end = (0..n).map(|c| REC[c][R_END].load(Relaxed)).max().unwrap_or(0);
        wall += end.saturating_sub(start);
        rounds += 1;
    }
    P_QUIT.store(true, Release);
    P_START.wait(n);
    for (c, t) in tickets {
        crate::smp::wait(c, t);
    }
    P_TAG.store(0, Relaxed);
    result?;
    let cpus = (0..n)
        .map(|c| {
            let r = &REC[c];
            CpuRec {
                iters: r[R_ITERS].load(Relaxed),
                tb: r[R_TB].load(Relaxed),
                bad: r[R_BAD].load(Relaxed),
                d: stats::Snapshot(core::array::from_fn(|i| r[R_STATS + i].load(Relaxed))),
            }
        })
        .collect();
    Ok(Phase { rounds, wall_tb: wall, cpus })
}

// ---------------------------------------------------------------- the ceiling

/// The index of the bolted HPTE of the kernel's first page (the linear zone is bolted at boot):
/// the ceiling's cheap hypercall reads it.
fn bolted_ptex() -> Result<u64, String> {
    let ea = boot::KERNEL_BASE;
    let (ptex, h) = vmalloc::find_hpte(ea).ok_or("no HPTE for the kernel's first page")?;
    if !h.is_bolted() {
        return Err(alloc::format!("the HPTE of {ea:#x} at {ptex:#x} is not bolted"));
    }
    Ok(ptex)
}

/// Points every online CPU's generic path at `exc_ceiling` (returns the old pointers).
fn ceiling_path_on() -> Vec<u64> {
    extern "C" {
        static exc_ceiling: u8;
    }
    let entry = &raw const exc_ceiling as u64;
    // exc_ceiling sends every vector but 0xc00 on to exc_common, so the switch is safe at any
    // time, even while another CPU takes an interrupt.
    (0..crate::smp::ncpus()).map(|c| percpu::paca(c).exc_common.swap(entry, Relaxed)).collect()
}

fn ceiling_path_off(old: &[u64]) {
    for (c, v) in old.iter().enumerate() {
        percpu::paca(c).exc_common.store(*v, Relaxed);
    }
}

/// A ceiling phase is void if an iteration went wrong (`bad`, described by `what`) or if the
/// kernel's hash_page ran inside a window.
fn check_phase(name: &str, what: &str, p: &Phase) -> Result<(), String> {
    let t = p.sum();
    if t.bad != 0 || t.d.faults() != 0 {
        return Err(alloc::format!("{name}: {} {what}, {} hash faults inside the windows", t.bad, t.d.faults()));
    }
    Ok(())
}

fn check_ceiling(name: &str, p: &Phase) -> Result<(), String> {
    check_phase(name, "failed H_READs", p)
}

fn print_ceiling(name: &str, p: &Phase) {
    let n = p.cpus.len();
    let t = p.sum();
    for (c, r) in p.cpus.iter().enumerate() {
        println!(
            "BENCH {name}.smp{n}.cpu{c} {} iter/s (iterations={} busy_us={} wall_us={})",
            per_s(r.iters, r.tb),
            r.iters,
            us(r.tb),
            us(p.wall_tb)
        );
    }
    println!(
        "BENCH {name}.smp{n}.total {} iter/s (iterations={} wall_us={} rounds={} ptex={:#x})",
        p.per_s(t.iters),
        t.iters,
        us(p.wall_tb),
        p.rounds,
        P_PTEX.load(Relaxed)
    );
}

/// The most any hash-fault path can do on this platform: per iteration, one exception that
/// returns at once (a system call into `exc_ceiling`) and one cheap hypercall (H_READ of a
/// bolted HPTE) — the shape of a fault (exception, H_ENTER, rfid) with nothing of ours in it.
/// Also each half alone. Every CPU runs the loop on its own (disjoint: nothing shared).
pub fn bench_ceiling(ms: u64) -> Result<(), String> {
    P_PTEX.store(bolted_ptex()?, Relaxed);
    let old = ceiling_path_on();
    let mut result = Ok(());
    for (name, work) in [("ceiling", Work::Ceiling), ("ceiling_trap", Work::Trap), ("ceiling_hcall", Work::Hcall)] {
        match run_phase(work, 0, 1, timer::us_to_tb(ms * 1000), || Ok(()))
            .and_then(|p| check_ceiling(name, &p).map(|_| p))
        {
            Ok(p) => print_ceiling(name, &p),
            Err(x) => {
                result = Err(x);
                break;
            }
        }
    }
    ceiling_path_off(&old);
    result?;
    dsi_ceiling(ms)?;
    let n = crate::smp::ncpus();
    P_PAGES.store(TOUCH_PAGES, Relaxed);
    let mut areas = Vec::new();
    let mut r = Ok(());
    for _ in 0..n {
        match vmalloc::vmalloc_flags(TOUCH_PAGES * 4096, PAGE_KERNEL) {
            Ok(a) => areas.push(a),
            Err(x) => r = Err(e(x)),
        }
    }
    let p = r.and_then(|_| fault_ceiling_phase(&areas, timer::us_to_tb(ms * 1000), 0));
    for a in &areas {
        vmalloc::vfree(*a).map_err(e)?;
    }
    print_ceiling("ceiling_fault", &p?);
    Ok(())
}

/// The ceiling with a fault's own delivery: a store to a page without an HPTE raises a real
/// data storage interrupt (QEMU's MMU search fails), through the 0x300 entry and exit, around
/// the same H_READ — everything of a hash fault but hash_page, its H_ENTER and the re-executed
/// access. The gap between this and `ceiling` is what a fault costs QEMU beyond a system call.
fn dsi_ceiling(ms: u64) -> Result<(), String> {
    let n = crate::smp::ncpus();
    let a = vmalloc::vmalloc(n as u64 * 4096).map_err(e)?;
    for c in 0..n {
        unhash_fast(a + c as u64 * 4096);
        P_DSI_PAGE[c].store(a + c as u64 * 4096, Release);
        DSI_TAKEN[c].store(0, Relaxed);
    }
    let was = crate::hash::fault::design();
    crate::hash::fault::select(Design::Ceiling);
    let p = run_phase(Work::Dsi, 0, 1, timer::us_to_tb(ms * 1000), || Ok(()));
    crate::hash::fault::select(was);
    vmalloc::vfree(a).map_err(e)?;
    let p = p?;
    check_ceiling("ceiling_dsi", &p)?;
    for (c, r) in p.cpus.iter().enumerate() {
        let taken = DSI_TAKEN[c].load(Relaxed);
        if taken != r.iters {
            return Err(alloc::format!(
                "ceiling_dsi: CPU {c} took {taken} data storage interrupts for {} stores",
                r.iters
            ));
        }
    }
    print_ceiling("ceiling_dsi", &p);
    Ok(())
}

/// `ceiling_fault`: the records `exc_fault_ceiling` consumes, per CPU, one per page of that
/// CPU's area: [page, group × 8 (after its H_ENTER: the slot it got), HPTE v, HPTE r].
/// Built before the phase, with the HPTE hash_page would insert for the page, and ended by a
/// record whose page no fault has (`NO_PAGE`), so a fault after the last one is handed on.
struct FaultCeiling {
    recs: Vec<Vec<[u64; 4]>>,
    /// hash_vector's own branch (to hash_fault_entry), put back by `off`.
    branch: u32,
}

const NO_PAGE: u64 = u64::MAX;

static P_CEIL_BASE: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

extern "C" {
    static hash_vector_branch: u32;
    static exc_fault_ceiling: u8;
}

/// Records `exc_fault_ceiling` consumed on `cpu` since the round began (each one a fault).
fn fault_ceiling_used(cpu: usize) -> u64 {
    (percpu::paca(cpu).ceil_next.load(Relaxed) - P_CEIL_BASE[cpu].load(Relaxed)) / 32
}

fn patch_vector_branch(insn: u32) {
    let site = &raw const hash_vector_branch as u64;
    // SAFETY: `site` is the branch of the 0x300 vector in the bolted, writable AIL block; one
    // aligned word, so a CPU fetching it sees either branch. Either is right for any fault at
    // any time: exc_fault_ceiling hands every fault but its CPU's next record's on to
    // hash_fault_entry, and every online CPU has a record pointer (`rewind` runs first).
    unsafe {
        core::ptr::write_volatile(site as *mut u32, insn);
        insn::sync_icache(site, 4);
    }
}

impl FaultCeiling {
    /// Records for the pages of `areas` (one per CPU, `pages` each), and the vector switched.
    fn on(areas: &[u64], pages: u64) -> Result<FaultCeiling, String> {
        if crate::arch::ppc64::platform::powernv() {
            return Err("the fault ceiling makes hypercalls: pseries only".into());
        }
        let geo = boot::hpt();
        let mut recs = Vec::new();
        for a in areas {
            let mut v = Vec::with_capacity(pages as usize);
            for i in 0..pages {
                let ea = a + i * 4096;
                unhash_fast(ea);
                let pte = pgtable::walk(ea).ok_or("fault ceiling: unmapped page")?.load();
                let vsid = kernel_vsid(ea);
                let h = hpte_for(vsid, ea, pte.pfn(), pte.flags() | PteFlags::ACCESSED | PteFlags::DIRTY, false, false);
                v.push([ea, geo.group_base(hash_4k(vsid, ea), false), h.v, h.r]);
            }
            v.push([NO_PAGE, 0, 0, 0]);
            recs.push(v);
        }
        // SAFETY: one aligned word of kernel text.
        let branch = unsafe { core::ptr::read_volatile(&raw const hash_vector_branch) };
        let site = &raw const hash_vector_branch as u64;
        let target = &raw const exc_fault_ceiling as u64;
        let mut fc = FaultCeiling { recs, branch };
        fc.rewind()?;
        patch_vector_branch(0x4800_0000 | ((target.wrapping_sub(site) as u32) & 0x03ff_fffc));
        Ok(fc)
    }

    /// Between rounds: removes the HPTEs the last round's records inserted (each must still be
    /// the one its record made: H_AVPN) and points every CPU at its first record again.
    fn rewind(&mut self) -> Result<(), String> {
        let mut result = Ok(());
        for (c, recs) in self.recs.iter_mut().enumerate() {
            let base = recs.as_ptr() as u64;
            let used = match P_CEIL_BASE[c].load(Relaxed) {
                b if b == base => (percpu::paca(c).ceil_next.load(Relaxed) - b) / 32,
                _ => 0,
            };
            for r in recs[..used as usize].iter_mut() {
                if let Err(x) = hcall::h_remove(papr::H_AVPN, r[1], r[2] & !0x7f) {
                    result = Err(alloc::format!("ceiling_fault: H_REMOVE of {:#x} for {:#x}: {x}", r[1], r[0]));
                }
                HARNESS_HCALLS.fetch_add(1, Relaxed);
                r[1] &= !7;
            }
            P_CEIL_BASE[c].store(base, Relaxed);
            percpu::paca(c).ceil_next.store(base, Relaxed);
        }
        result
    }

    fn off(mut self) -> Result<(), String> {
        patch_vector_branch(self.branch);
        self.rewind()
    }
}

/// The ceiling in a hash fault's own loop shape: each CPU stores once to each page of its own
/// area, as the disjoint fault benchmark does, and each store raises a real data storage
/// interrupt whose handler (`exc_fault_ceiling`) makes one H_ENTER prepared before the window
/// and returns; the store then re-executes and QEMU finds the entry. Everything a hash fault
/// costs the platform, nothing of the kernel's fault path. `areas`: one per CPU.
fn fault_ceiling_phase(areas: &[u64], budget: u64, tag: u8) -> Result<Phase, String> {
    P_SHARED.store(false, Relaxed);
    for (c, a) in areas.iter().enumerate() {
        P_AREA[c].store(*a, Release);
    }
    let mut fc = FaultCeiling::on(areas, P_PAGES.load(Relaxed))?;
    let p = run_phase(Work::Enter, tag, 1, budget, || fc.rewind());
    let off = fc.off();
    let p = p?;
    off?;
    check_phase("ceiling_fault", "stores without their H_ENTER", &p)?;
    Ok(p)
}

// ---------------------------------------------------------------- fault throughput

/// Rounds of each configuration are spread over this many passes, each pass measuring the
/// ceiling and then every configuration: a change in what else the host runs then moves the
/// ceiling and the faults alike, and their ratio stays meaningful.
const PASSES: u64 = 6;

/// Marker tags of `bench=smp`'s phases (printed as `BENCHTAG`): a timing plugin
/// (`--count-insns F,mode=time`) measures the same windows with the host's clock. Above the
/// contention tags (64 + design × 8 + scenario).
const SMP_TAG_SYSCALL: u8 = 200;
const SMP_TAG_DSI: u8 = 201;
const SMP_TAG_CEILING: u8 = 202;
/// + the index in CONFIGS.
const SMP_TAG_FAULTS: u8 = 203;

/// The fault configurations of `bench=smp`: design and whether the pages are shared.
const CONFIGS: [(Design, &str, bool); 4] = [
    (Design::LockFree, "lockfree", false),
    (Design::LockFree, "lockfree", true),
    (Design::Locked, "locked", false),
    (Design::Locked, "locked", true),
];

/// Hash faults per second against the ceiling measured in the same boot: every CPU stores once
/// to each page of its own area (disjoint) or of one shared area, and the pages are made to
/// fault again between rounds. Reported: resolved faults (HPTEs installed or updated) per
/// second, per CPU and in all, from the windows only; and the ceiling, interleaved with them.
pub fn bench_smp(ms: u64) -> Result<(), String> {
    let n = crate::smp::ncpus();
    let pages = TOUCH_PAGES;
    P_PAGES.store(pages, Relaxed);
    P_PTEX.store(bolted_ptex()?, Relaxed);
    let before: Vec<stats::Snapshot> = (0..n).map(|c| stats::of(c).snapshot()).collect();
    // The areas, once: vmalloc zeroes them through the new mapping, and those faults are CPU 0's,
    // outside every window (they are printed as outside_faults).
    let mut own = Vec::new();
    let mut shared = 0;
    let mut setup = || -> Result<(), String> {
        for _ in 0..n {
            own.push(vmalloc::vmalloc_flags(pages * 4096, PAGE_KERNEL).map_err(e)?);
        }
        shared = vmalloc::vmalloc_flags(pages * 4096, PAGE_KERNEL).map_err(e)?;
        Ok(())
    };
    let r = setup();
    let was = crate::hash::fault::design();
    let budget = timer::us_to_tb(ms * 1000 / PASSES);
    let mut ceiling: Option<Phase> = None;
    let mut dsi: Option<Phase> = None;
    let mut enter: Option<Phase> = None;
    let mut faults: [Option<Phase>; 4] = [None, None, None, None];
    let result = r.and_then(|_| {
        for c in 0..n {
            // The DSI ceiling's pages: this CPU's page of its own area, never hashed under
            // Design::Ceiling (a touch window unhashes it before it is touched again).
            P_DSI_PAGE[c].store(own[c], Release);
            DSI_TAKEN[c].store(0, Relaxed);
        }
        for _ in 0..PASSES {
            let old = ceiling_path_on();
            let p = run_phase(Work::Ceiling, SMP_TAG_SYSCALL, 1, budget, || Ok(()));
            ceiling_path_off(&old);
            let p = p?;
            check_ceiling("smp.ceiling", &p)?;
            merge(&mut ceiling, p);
            crate::hash::fault::select(Design::Ceiling);
            let p = run_phase(Work::Dsi, SMP_TAG_DSI, 1, budget, || {
                for c in 0..n {
                    unhash_fast(own[c]);
                }
                Ok(())
            });
            crate::hash::fault::select(was);
            let p = p?;
            check_ceiling("smp.ceiling_dsi", &p)?;
            merge(&mut dsi, p);
            merge(&mut enter, fault_ceiling_phase(&own, budget, SMP_TAG_CEILING)?);
            for (i, (design, _, sh)) in CONFIGS.iter().enumerate() {
                crate::hash::fault::select(*design);
                P_SHARED.store(*sh, Relaxed);
                let areas: Vec<u64> = if *sh { vec![shared] } else { own.clone() };
                for (c, a) in areas.iter().enumerate() {
                    P_AREA[c].store(*a, Release);
                }
                let p = run_phase(Work::Touch, SMP_TAG_FAULTS + i as u8, 1, budget, || {
                    for a in &areas {
                        for i in 0..pages {
                            unhash_fast(a + i * 4096);
                        }
                    }
                    Ok(())
                });
                crate::hash::fault::select(was);
                merge(&mut faults[i], p?);
            }
        }
        Ok(())
    });
    for a in own.iter().chain(core::iter::once(&shared)).filter(|a| **a != 0) {
        vmalloc::vfree(*a).map_err(e)?;
    }
    result?;
    let dsi = dsi.expect("measured");
    for (c, r) in dsi.cpus.iter().enumerate() {
        let taken = DSI_TAKEN[c].load(Relaxed);
        if taken != r.iters {
            return Err(alloc::format!(
                "smp.ceiling_dsi: CPU {c} took {taken} data storage interrupts for {} stores",
                r.iters
            ));
        }
    }
    println!("BENCH smp.passes.smp{n} {PASSES} passes");
    println!("BENCHTAG {SMP_TAG_SYSCALL} smp.ceiling.smp{n}");
    println!("BENCHTAG {SMP_TAG_DSI} smp.ceiling_dsi.smp{n}");
    println!("BENCHTAG {SMP_TAG_CEILING} smp.ceiling_fault.smp{n}");
    for (i, (_, mode, sh)) in CONFIGS.iter().enumerate() {
        let kind = if *sh { "shared" } else { "disjoint" };
        println!("BENCHTAG {} fault_rate.{mode}.{kind}.smp{n}", SMP_TAG_FAULTS + i as u8);
    }
    print_ceiling("smp.ceiling", ceiling.as_ref().expect("measured"));
    print_ceiling("smp.ceiling_dsi", &dsi);
    print_ceiling("smp.ceiling_fault", enter.as_ref().expect("measured"));
    let mut window_faults = vec![0u64; n];
    for (i, (_, mode, sh)) in CONFIGS.iter().enumerate() {
        let p = faults[i].as_ref().expect("measured");
        for (c, r) in p.cpus.iter().enumerate() {
            window_faults[c] += r.d.faults();
        }
        report_faults("fault_rate", mode, *sh, p)?;
    }
    // Everything else this CPU faulted on during the benchmark: the areas' zeroing.
    for c in 0..n {
        let outside = stats::of(c).snapshot().since(&before[c]).faults() - window_faults[c];
        println!("BENCH smp.outside_windows.smp{n}.cpu{c} {outside} faults");
    }
    Ok(())
}

/// Lock-free faults on disjoint pages and nothing else, for `ms` of windows: the run QEMU's
/// lock profiler watches (scripts/bench.sh runs it twice, for two lengths, and divides the
/// difference in lock acquisitions by the difference in faults). Besides the faults it
/// reports every hypercall the harness made outside the windows.
pub fn bench_faults(ms: u64) -> Result<(), String> {
    let n = crate::smp::ncpus();
    let pages = TOUCH_PAGES;
    P_PAGES.store(pages, Relaxed);
    P_SHARED.store(false, Relaxed);
    let mut areas = Vec::new();
    for c in 0..n {
        let a = vmalloc::vmalloc_flags(pages * 4096, PAGE_KERNEL).map_err(e)?;
        P_AREA[c].store(a, Release);
        areas.push(a);
    }
    let was = crate::hash::fault::design();
    crate::hash::fault::select(Design::LockFree);
    let h0 = HARNESS_HCALLS.load(Relaxed);
    let p = run_phase(Work::Touch, 0, 1, timer::us_to_tb(ms * 1000), || {
        for a in &areas {
            for i in 0..pages {
                unhash_fast(a + i * 4096);
            }
        }
        Ok(())
    });
    let hcalls = HARNESS_HCALLS.load(Relaxed) - h0;
    crate::hash::fault::select(was);
    for a in &areas {
        vmalloc::vfree(*a).map_err(e)?;
    }
    let p = p?;
    report_faults("profile", "lockfree", false, &p)?;
    println!("BENCH profile.harness.smp{n} {hcalls} hcalls (H_PROD, H_CEDE and the preparation's H_REMOVE, outside the windows)");
    Ok(())
}

/// Adds one pass of a phase to the sum of the passes before.
fn merge(acc: &mut Option<Phase>, p: Phase) {
    match acc {
        None => *acc = Some(p),
        Some(a) => {
            a.rounds += p.rounds;
            a.wall_tb += p.wall_tb;
            for (x, y) in a.cpus.iter_mut().zip(p.cpus.iter()) {
                x.iters += y.iters;
                x.tb += y.tb;
                x.bad += y.bad;
                x.d.add(&y.d);
            }
        }
    }
}

fn report_faults(prefix: &str, mode: &str, shared: bool, p: &Phase) -> Result<(), String> {
    let n = p.cpus.len();
    let kind = if shared { "shared" } else { "disjoint" };
    let t = p.sum();
    let name = alloc::format!("{prefix}.{mode}.{kind}.smp{n}");
    for (c, r) in p.cpus.iter().enumerate() {
        println!(
            "BENCH {name}.cpu{c} {} resolved/s (resolved={} faults={} busy={} touches={} busy_us={} wall_us={})",
            per_s(r.d.resolved(), r.tb),
            r.d.resolved(),
            r.d.faults(),
            r.d.get(Counter::BusyRetries),
            r.iters,
            us(r.tb),
            us(p.wall_tb)
        );
    }
    println!("BENCH {name}.total {} resolved/s (faults_per_s={} resolved={} faults={} busy={} lost={} confers={} updates={} dseg={} touches={} wall_us={} rounds={})",
             p.per_s(t.d.resolved()), p.per_s(t.d.faults()), t.d.resolved(), t.d.faults(), t.d.get(Counter::BusyRetries), t.d.get(Counter::StcxFails),
             t.d.get(Counter::Confers), t.d.get(Counter::Updates), t.d.get(Counter::DsegMiss), t.iters, us(p.wall_tb), p.rounds);
    // The windows hold exactly the touches: on disjoint pages each touch is one fault that
    // inserts, so anything else counted (setup faults, a lost window) shows here.
    if !shared {
        for (c, r) in p.cpus.iter().enumerate() {
            if r.d.faults() != r.iters || r.d.resolved() != r.iters {
                return Err(alloc::format!(
                    "{name}: CPU {c} counted {} faults ({} resolved) in its windows for {} touches",
                    r.d.faults(),
                    r.d.resolved(),
                    r.iters
                ));
            }
        }
    } else if t.d.resolved() < TOUCH_PAGES * p.rounds {
        return Err(alloc::format!(
            "{name}: {} resolved faults for {} pages in {} rounds",
            t.d.resolved(),
            TOUCH_PAGES,
            p.rounds
        ));
    }
    Ok(())
}

/// Removes the HPTE of a page and resets its PTE to "never hashed", so the next touch faults.
fn unhash_fast(ea: u64) {
    if vmalloc::evict_hpte(ea) {
        HARNESS_HCALLS.fetch_add(1, Relaxed);
    }
    if let Some(slot) = pgtable::walk(ea) {
        // No CPU touches the page before the round starts: a plain store is enough.
        slot.publish(Pte::new(slot.load().pfn(), PAGE_KERNEL));
    }
}

// ---------------------------------------------------------------- contention, in instructions

/// The contention scenarios: each CPU's own pages, one page all CPUs store to, and one page per
/// CPU with all of them in one HPTE group.
pub const SCENARIOS: [&str; 3] = ["disjoint", "shared", "group"];
/// Marker tags: 64 + design * 8 + scenario (bench=hash uses 1..57).
pub fn contention_tag(design: usize, scenario: usize) -> u8 {
    (64 + design * 8 + scenario) as u8
}
const DISJOINT_PAGES: u64 = 8;
/// First vmalloc segment for the same-group pages: far above where vmalloc places areas.
const GROUP_SEGMENT: u64 = 16;

/// A primary HPTE group with no valid entry: the same-group pages all go there.
fn empty_group() -> Result<u64, String> {
    let geo = boot::hpt();
    let mask = geo.hash_mask();
    for k in 0..4096u64 {
        let g = (0x5a5a + k * 977) & mask;
        let base = g * 8;
        let mut empty = true;
        for q in [base, base + 4] {
            let four = hcall::h_read4(q).map_err(|x| alloc::format!("H_READ: {x}"))?;
            empty &= four.iter().all(|(v, _)| v & HpteV::VALID.bits() == 0);
        }
        if empty {
            return Ok(g);
        }
    }
    Err("no empty HPTE group found".into())
}

/// One page per CPU, each in its own segment, all hashing to primary group `g`.
fn same_group_pages(n: usize, g: u64) -> Result<Vec<u64>, String> {
    let mask = boot::hpt().hash_mask();
    let mut out = Vec::new();
    let mut seg = GROUP_SEGMENT;
    while out.len() < n {
        let base = vmalloc::VMALLOC_START + (seg << 28);
        if base >= vmalloc::VMALLOC_END {
            break;
        }
        if let Some(off) = page_for_group(kernel_vsid(base), g, mask) {
            let ea = base + off;
            match vmalloc::vmalloc_range(4096, PAGE_KERNEL, ea, ea + 2 * 4096) {
                Ok(a) => out.push(a),
                Err(x) => {
                    for a in out {
                        let _ = vmalloc::vfree(a);
                    }
                    return Err(alloc::format!("a page at {ea:#x}: {x}"));
                }
            }
        }
        seg += 1;
    }
    if out.len() < n {
        for a in out {
            let _ = vmalloc::vfree(a);
        }
        return Err(alloc::format!("no {n} segments reach HPTE group {g:#x}"));
    }
    Ok(out)
}

/// Instructions per resolved fault under contention: every CPU stores to its pages at once,
/// `rounds` times, in each scenario and design. The windows carry a marker tag, so the counting
/// plugin (when present) counts every exception window of exactly these stores; the counters
/// the windows also bracket give the resolved faults, BUSY re-executions, lost reservations and
/// H_CONFERs. Without the plugin the markers cost one call each and the counters still print.
pub fn bench_contention(rounds: u64) -> Result<(), String> {
    let n = crate::smp::ncpus();
    let was = crate::hash::fault::design();
    let mut result = Ok(());
    'outer: for (di, (dname, design)) in
        [("lockfree", Design::LockFree), ("locked", Design::Locked)].into_iter().enumerate()
    {
        crate::hash::fault::select(design);
        for (si, sc) in SCENARIOS.iter().enumerate() {
            if let Err(x) = contention_one(n, di, dname, si, sc, rounds) {
                result = Err(x);
                break 'outer;
            }
        }
    }
    crate::hash::fault::select(was);
    result
}

fn contention_one(n: usize, di: usize, dname: &str, si: usize, sc: &str, rounds: u64) -> Result<(), String> {
    let tag = contention_tag(di, si);
    let name = alloc::format!("contention.{dname}.{sc}.smp{n}");
    println!("BENCHTAG {tag} {name}");
    // The areas, and each CPU's pages in them.
    let (areas, pages): (Vec<u64>, Vec<Vec<u64>>) = match sc {
        "disjoint" => {
            let a = vmalloc::vmalloc(n as u64 * DISJOINT_PAGES * 4096).map_err(e)?;
            (
                vec![a],
                (0..n)
                    .map(|c| (0..DISJOINT_PAGES).map(|i| a + (c as u64 * DISJOINT_PAGES + i) * 4096).collect())
                    .collect(),
            )
        }
        "shared" => {
            let a = vmalloc::vmalloc(4096).map_err(e)?;
            (vec![a], (0..n).map(|_| vec![a]).collect())
        }
        _ => {
            let g = empty_group()?;
            let a = same_group_pages(n, g)?;
            (a.clone(), a.iter().map(|p| vec![*p]).collect())
        }
    };
    for (c, ps) in pages.iter().enumerate() {
        for (i, p) in ps.iter().enumerate() {
            P_CPAGES[c][i].store(*p, Relaxed);
        }
        P_NCPAGES[c].store(ps.len() as u64, Release);
    }
    let mut distinct: Vec<u64> = pages.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let p = run_phase(Work::Contend, tag, rounds, 0, || {
        for a in &distinct {
            unhash_fast(*a);
        }
        Ok(())
    });
    for c in 0..n {
        P_NCPAGES[c].store(0, Relaxed);
    }
    for a in &areas {
        vmalloc::vfree(*a).map_err(e)?;
    }
    let p = p?;
    let t = p.sum();
    let d = &t.d;
    let inserts = d.get(Counter::InsertPrimary) + d.get(Counter::InsertSecondary);
    println!("BENCH {name} {} resolved (faults={} inserts={} secondary={} updates={} busy={} lost={} confers={} evictions={} locked={} dseg={} touches={} rounds={} tag={})",
             d.resolved(), d.faults(), inserts, d.get(Counter::InsertSecondary), d.get(Counter::Updates), d.get(Counter::BusyRetries),
             d.get(Counter::StcxFails), d.get(Counter::Confers), d.get(Counter::Evictions), d.get(Counter::LockedFaults),
             d.get(Counter::DsegMiss), t.iters, p.rounds, tag);
    // Each round every distinct page is hashed at least once; pages of one CPU only once.
    let want = distinct.len() as u64 * p.rounds;
    let exact = sc != "shared";
    if d.resolved() < want
        || (exact && d.resolved() != want)
        || d.faults() - d.resolved() != d.get(Counter::BusyRetries) + d.get(Counter::StcxFails)
    {
        return Err(alloc::format!(
            "{name}: {} resolved faults ({} in all) for {} pages x {} rounds: {:?}",
            d.resolved(),
            d.faults(),
            distinct.len(),
            p.rounds,
            d
        ));
    }
    Ok(())
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

pub fn run(which: &str, ms: u64, relax: bool) -> Result<(), alloc::string::String> {
    let all = which == "all";
    P_RELAX.store(relax, Relaxed);
    if crate::arch::ppc64::platform::powernv() && matches!(which, "ceiling" | "smp" | "faults" | "contention") {
        // The ceiling is an exception plus a hypercall, and the SMP windows cede and prod
        // through the hypervisor: pseries measurements.
        return Err(alloc::format!("bench={which} measures against the hypervisor's ceiling: pseries only"));
    }
    if all || which == "hash" {
        bench_hash()?;
    }
    // (`all` on powernv: the measurements that do not need the hypervisor.)
    let all_hv = all && !crate::arch::ppc64::platform::powernv();
    if all_hv || which == "ceiling" {
        bench_ceiling(ms)?;
    }
    if all_hv || which == "smp" {
        bench_smp(ms)?;
    }
    if which == "faults" {
        bench_faults(ms)?;
    }
    if all_hv || which == "contention" {
        bench_contention(CONTENTION_ROUNDS)?;
    }
    if all || which == "vmalloc" {
        bench_vmalloc()?;
    }
    Ok(())
}

/// Rounds per contention scenario: enough for the shared page to see the CPUs collide.
pub const CONTENTION_ROUNDS: u64 = 500;
