//! The SMP race stress: the 2003 reviewer's objection made real. CPUs fault concurrently on
//! shared vmalloc pages (stores, loads, and stores from their decrementer handlers) and evict
//! HPTEs behind each other's backs, while CPU 0 keeps replacing the areas (vmalloc a new one,
//! publish it, vfree the old one while others may still be touching it: clear-and-flush) and
//! flips page permissions. After every round all CPUs meet at a barrier and CPU 0 checks the
//! invariants against the hypervisor's own view of the HPT (H_READ), on every page of every
//! area the run ever created (a stale HPTE may outlive its area anywhere); once more after the
//! last area is freed, when every such PTE must be empty and untranslated.

use crate::arch::ppc64::exception::{probe_read, probe_write, ExcFrame};
use crate::arch::ppc64::irq;
use crate::arch::ppc64::{boot, insn, percpu, timer};
use crate::hash::cell::PteCell;
use crate::hash::stats::{self, Counter};
use crate::mm::hpte::{hash_4k, Hpte};
use crate::mm::pte::PteFlags;
use crate::mm::slbe::kernel_vsid;
use crate::mm::{pgtable, vmalloc};
use crate::println;
use crate::smp::{self, Barrier};
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

const SLOTS: usize = 6;
/// No progress at all for this long (guest time) counts as a stalled CPU.
const STALL_US: u64 = 1_000_000;
const MAX_PAGES: u64 = 4;

/// Per slot: area address, pages, generation.
static AREA: [[AtomicU64; 3]; SLOTS] = [const { [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)] }; SLOTS];
/// Per slot and page: generation at which the page was last written successfully (+1; 0 none).
static WRITTEN: [[AtomicU64; MAX_PAGES as usize]; SLOTS] =
    [const { [const { AtomicU64::new(0) }; MAX_PAGES as usize] }; SLOTS];
static ROUND_END: AtomicBool = AtomicBool::new(false);
static QUIT: AtomicBool = AtomicBool::new(false);
static BARRIER: Barrier = Barrier::new();
static NPART: AtomicU64 = AtomicU64::new(0);
static OPS: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// Touches the kernel refused for a reason a legal access can never have (a hypervisor
/// refusal, all-bolted groups, ...): each one is a violation.
static ILLEGAL_REFUSALS: AtomicU64 = AtomicU64::new(0);
static FIRST_ILLEGAL: AtomicU64 = AtomicU64::new(0);
/// Hash faults taken inside the decrementer hook (interrupt context).
static IRQ_FAULTS: AtomicU64 = AtomicU64::new(0);
static AGED: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
/// Self-test knobs: the workers only keep the barriers (no touches, no interrupts), so there
/// can be no contention; or CPU 0 plants a stale HPTE on a page of an area of its own below
/// every area the workers use, which the checks must find.
pub(crate) static WORKERS_IDLE: AtomicBool = AtomicBool::new(false);
pub(crate) static INJECT_STALE: AtomicBool = AtomicBool::new(false);
/// End the run after the round in which a stale HPTE was first found (the patch2003 test).
static STOP_AT_STALE: AtomicBool = AtomicBool::new(false);

/// A stale HPTE: valid, translating a page whose PTE is clear, or that vfree had just freed.
#[derive(Debug, Clone, Copy)]
pub struct Stale {
    pub ea: u64,
    pub pte: crate::mm::pte::Pte,
    pub ptex: u64,
    pub hpte: Hpte,
    /// The HPTE's frame, if vfree freed that frame from this page earlier in the run.
    pub freed_pfn: Option<u64>,
    /// Which check found it.
    pub found_by: &'static str,
    /// In which round (0: while setting up; `rounds`: the final scan).
    pub round: u64,
    /// Whether the same HPTE was still there at the end of that round, when every CPU had
    /// finished its faults (None: not looked at).
    pub persisted: Option<bool>,
}

/// One CPU's share of a stress run.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuCounts {
    pub faults: u64,
    pub busy_retries: u64,
    pub stcx_fails: u64,
    pub touches: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StressReport {
    pub rounds: u64,
    pub cpus: usize,
    pub faults: u64,
    pub busy_retries: u64,
    pub stcx_fails: u64,
    pub evictions: u64,
    pub irq_faults: u64,
    pub checks: u64,
    pub violations: u64,
    pub refused: u64,
    pub replaced: u64,
    pub elapsed_tb: u64,
    pub aged: u64,
    /// Violations found by the final scan, after every area was freed.
    pub end_violations: u64,
    /// Address of the first violation (0: none).
    pub first_violation_at: u64,
    /// Pages (of every area the run created) each check scanned.
    pub pages_scanned: u64,
    /// Where the self-test planted its stale HPTE (0: not planted).
    pub planted_at: u64,
    /// Whether `stress_checked` found the vCPUs running in parallel (one measurement, which
    /// also decided what the run had to show).
    pub parallel: bool,
    /// The first stale HPTE found, if any.
    pub stale: Option<Stale>,
    /// Pages checked right after the vfree of their area (no HPTE may translate them).
    pub post_free_checks: u64,
    /// Hunting (`run_until_stale`): freed pages whose cleared PTE a late slot record had
    /// marked HASHPTE again with no HPTE left to find (another CPU's eviction removed it),
    /// reset so that vmalloc can map the address again.
    pub leftovers: u64,
    /// Per CPU.
    pub per_cpu: [CpuCounts; percpu::MAX_CPUS],
    /// vmalloc calls that returned `OutOfMemory` (injected allocation failures).
    pub out_of_memory: u64,
    /// Frames the run took and did not give back (`frame::Ledger`).
    pub frames_leaked: i64,
    /// Failures injected during the run, per kind (`inject::Kind` order).
    pub injected: [u64; crate::inject::KINDS],
    /// Touches refused for a reason a legal access cannot have (counted in `violations`).
    pub illegal_refusals: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A touch the kernel refused: fine if the page was freed or made read-only under it (the
/// reasons a racing unmap or permission change gives), a violation for any other reason — a
/// hypervisor refusal, all-bolted groups: what a legal access must never see.
fn refused(f: crate::arch::ppc64::exception::ProbeFault) {
    use crate::hash::access::Denied;
    use crate::hash::reason::FaultReason;
    REFUSED.fetch_add(1, Relaxed);
    if !matches!(f.reason, FaultReason::Denied(Denied::NotPresent | Denied::WriteToReadOnly) | FaultReason::NoPageTable)
    {
        if ILLEGAL_REFUSALS.fetch_add(1, Relaxed) < 10 {
            println!("stress: INVARIANT VIOLATED: a touch of {:#x} was refused: {}", f.dar, f.reason);
        }
        let _ = FIRST_ILLEGAL.compare_exchange(0, f.dar, Relaxed, Relaxed);
    }
}

/// Evicts the HPTE of a page that is mapped, as the hypervisor (or another fault's insert)
/// replaces a live entry. A cleared PTE is left alone: under a correct design it names no HPTE
/// anyway, and under `hash_page=patch2003` its leftover slot bits may name the stale HPTE the
/// checks are looking for — an eviction through them would destroy the evidence. vmalloc's
/// flush uses the injecting backend while injection is armed.
fn evict_live(ea: u64) {
    vmalloc::evict_live_hpte(ea);
}

/// One touch of a random shared page. Returns true if it went through.
fn touch(r: &mut Rng, cpu: u64) -> bool {
    let x = r.next();
    // A third of all touches go to one hot page, evicted each time, so CPUs race to hash the
    // very same PTE (BUSY re-executions, lost reservations). Hunting a stale HPTE, all of them
    // (and CPU 0 keeps freeing that page's area): the faults sit in the window more often.
    if x.is_multiple_of(3) || STOP_AT_STALE.load(Relaxed) {
        let hot = AREA[0][0].load(Acquire);
        if hot != 0 && AREA[0][1].load(Acquire) != 0 {
            evict_live(hot);
            return match probe_write(hot + 8 * (cpu % 512), cpu) {
                Ok(()) => true,
                Err(f) => {
                    refused(f);
                    false
                }
            };
        }
    }
    let k = (x % SLOTS as u64) as usize;
    let gen = AREA[k][2].load(Acquire);
    let addr = AREA[k][0].load(Acquire);
    let pages = AREA[k][1].load(Acquire);
    if addr == 0 || pages == 0 {
        return false;
    }
    let page = (x >> 8) % pages;
    let ea = addr + page * 4096 + 8 * (cpu % 512);
    let r = match (x >> 16) % 10 {
        0..=5 => {
            let r = probe_write(ea, (cpu << 56) | gen);
            // Only count it if the area was not replaced meanwhile.
            if r.is_ok() && AREA[k][2].load(Acquire) == gen {
                WRITTEN[k][page as usize].fetch_max(gen + 1, Relaxed);
            }
            r
        }
        6..=8 => probe_read(ea).map(|_| ()),
        _ => {
            evict_live(ea);
            Ok(())
        }
    };
    match r {
        Ok(()) => true,
        Err(f) => {
            refused(f);
            false
        }
    }
}

fn on_decrementer(_f: &mut ExcFrame) {
    let cpu = percpu::cpu_id() as u64;
    let mut r = Rng(insn::mftb() | 1);
    let f0 = stats::this().faults();
    touch(&mut r, cpu);
    IRQ_FAULTS.fetch_add(stats::this().faults() - f0, Relaxed);
    if !ROUND_END.load(Relaxed) {
        timer::arm(timer::us_to_tb(20) + r.next() % timer::us_to_tb(80));
    }
}

fn worker(cpu: usize) {
    let n = NPART.load(Acquire) as usize;
    let mut r = Rng(SEED.load(Relaxed) ^ (cpu as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    crate::sync::watchdog::touch();
    loop {
        BARRIER.wait(n); // round start
        if QUIT.load(Acquire) {
            break;
        }
        let idle = WORKERS_IDLE.load(Relaxed);
        if !idle {
            irq::enable();
            timer::arm(timer::us_to_tb(30));
        }
        // With 3 or more CPUs the last one ages the hot page (clears/sets ACCESSED with the
        // BUSY-waiting update) while the others hash it: lost reservations for real.
        let ager = n >= 3 && cpu == n - 1;
        while !ROUND_END.load(Acquire) {
            crate::sync::watchdog::touch();
            if idle {
                insn::cpu_relax();
            } else if ager && !r.next().is_multiple_of(4) {
                let hot = AREA[0][0].load(Acquire);
                if let Some(slot) = pgtable::walk(hot) {
                    let mut spins = 0;
                    slot.update(PteFlags::ACCESSED.bits(), 0, &mut spins);
                    AGED.fetch_add(1, Relaxed);
                }
            } else {
                touch(&mut r, cpu as u64);
            }
            OPS[cpu].fetch_add(1, Relaxed);
        }
        irq::disable();
        timer::arm(timer::DEC_IDLE);
        BARRIER.wait(n); // round end
    }
}

/// What the checks report into, and what they need to know about the run's history.
#[derive(Default)]
struct Findings {
    violations: u64,
    first_at: u64,
    /// Every page (and guard page) of every area the run created.
    history: BTreeSet<u64>,
    /// (page, frame) for every frame vfree freed from a page during the run.
    freed: BTreeSet<(u64, u64)>,
    stale: Option<Stale>,
    round: u64,
    post_free_checks: u64,
}

const STALE_CLEAR: &str = "valid HPTE for a clear/freed PTE";
const STALE_AFTER_VFREE: &str = "HPTE translates a page vfree has just freed";
const STALE_OTHER_FRAME: &str = "HPTE maps another frame";

impl Findings {
    fn bad(&mut self, what: &'static str, ea: u64, pte: crate::mm::pte::Pte, h: Option<(u64, Hpte)>) {
        self.violations += 1;
        if self.first_at == 0 {
            self.first_at = ea;
        }
        // The planted stale HPTE is expected: say so, so that logs searched for violations
        // do not count it. So is patch2003's: that test exists to find it.
        let tag = if INJECT_STALE.load(Relaxed) {
            "found the planted fault (expected)"
        } else if STOP_AT_STALE.load(Relaxed) {
            "found (expected under hash_page=patch2003)"
        } else {
            "INVARIANT VIOLATED"
        };
        // Whether the HPTE's frame is one that vfree freed from this very page.
        let freed = h.map(|(_, hpte)| hpte.rpn()).filter(|&f| self.freed.contains(&(ea, f)));
        if let (Some((ptex, hpte)), true, None) =
            (h, [STALE_CLEAR, STALE_AFTER_VFREE, STALE_OTHER_FRAME].contains(&what), self.stale)
        {
            let persisted = if what == STALE_AFTER_VFREE { None } else { Some(true) };
            self.stale =
                Some(Stale { ea, pte, ptex, hpte, freed_pfn: freed, found_by: what, round: self.round, persisted });
        }
        if self.violations <= 10 {
            let freed = match freed {
                Some(f) => alloc::format!(" (its frame {f:#x} was freed by a vfree of this page)"),
                None => alloc::string::String::new(),
            };
            match h {
                Some((ptex, h)) => {
                    println!("stress: {}: {} at {:#x}: {} / HPTE {:#x} {}{}", tag, what, ea, pte, ptex, h, freed)
                }
                None => println!("stress: {}: {} at {:#x}: {}{}", tag, what, ea, pte, freed),
            }
        }
    }
}

/// CPU 0 while everyone is quiet: every invariant, through H_READ, on every page of every area
/// the run created (`history`) — freed areas' pages included, wherever they lie. `all_freed`:
/// the final scan, after every area was freed: each PTE must be empty too.
fn check_invariants(all_freed: bool, f: &mut Findings) -> u64 {
    let mut checks = 0;
    let geo = boot::info().hpt();
    let history = core::mem::take(&mut f.history);
    for &ea in &history {
        let pte = vmalloc::pte_of(ea).unwrap_or(crate::mm::pte::Pte(0));
        let mut hs = [(0, Hpte { v: 0, r: 0 }); 4];
        let n = vmalloc::find_hptes(ea, &mut hs);
        checks += 1;
        if pte.is_busy() {
            f.bad("PTE left BUSY", ea, pte, None);
        }
        if all_freed && pte.raw() != 0 {
            f.bad("PTE not empty after every area was freed", ea, pte, None);
        }
        if n > 1 {
            f.bad("two HPTEs translate one page", ea, pte, Some(hs[1]));
        }
        if n >= 1 {
            let (ptex, h) = hs[0];
            if !pte.is_present() {
                f.bad(STALE_CLEAR, ea, pte, Some(hs[0]));
            } else if pte.slot().map(|s| geo.ptex(hash_4k(kernel_vsid(ea), ea), s)) != Some(ptex) {
                f.bad("HPTE its PTE does not know about (slot bits differ)", ea, pte, Some(hs[0]));
            } else if h.rpn() != pte.pfn() {
                f.bad(STALE_OTHER_FRAME, ea, pte, Some(hs[0]));
            } else if crate::mm::hpte::effective_access(h.pp(), false).1
                && !pte.flags().contains(PteFlags::RW | PteFlags::DIRTY)
            {
                f.bad("writable HPTE for a PTE that is not RW+DIRTY", ea, pte, Some(hs[0]));
            }
        }
    }
    f.history = history;
    if all_freed {
        return checks;
    }
    for k in 0..SLOTS {
        let gen = AREA[k][2].load(Relaxed);
        let addr = AREA[k][0].load(Relaxed);
        for p in 0..AREA[k][1].load(Relaxed) {
            checks += 1;
            if WRITTEN[k][p as usize].load(Relaxed) == gen + 1 {
                let pte = vmalloc::pte_of(addr + p * 4096).unwrap_or(crate::mm::pte::Pte(0));
                if !pte.flags().contains(PteFlags::DIRTY) {
                    f.bad("page written this round lacks DIRTY", addr + p * 4096, pte, None);
                }
            }
        }
    }
    checks
}

/// Records every page of the area at `start` (and its guard page) for the checks.
fn remember(history: &mut BTreeSet<u64>, start: u64, pages: u64) {
    for p in 0..=pages {
        history.insert(start + p * 4096);
    }
}

/// vmalloc calls that returned `OutOfMemory`, and other errors (violations: the stress only
/// asks for sizes that fit, and only CPU 0 frees, so nothing but a lack of memory may fail).
static OUT_OF_MEMORY: AtomicU64 = AtomicU64::new(0);
static VM_ERRORS: AtomicU64 = AtomicU64::new(0);

fn vm_error(what: &str, e: vmalloc::VmError) {
    if e == vmalloc::VmError::OutOfMemory && what == "vmalloc" {
        OUT_OF_MEMORY.fetch_add(1, Relaxed);
    } else {
        // The first ten are printed: a run that keeps failing (say on a PTE another design
        // left behind) must not spend its rounds on the console.
        if VM_ERRORS.fetch_add(1, Relaxed) < 10 {
            println!("stress: INVARIANT VIOLATED: {}: {}", what, e);
        }
    }
}

fn replace_area(k: usize, r: &mut Rng, f: &mut Findings) -> bool {
    let pages = 1 + r.next() % MAX_PAGES;
    let new = match vmalloc::vmalloc(pages * 4096) {
        Ok(a) => a,
        Err(e) => {
            vm_error("vmalloc", e);
            // A cleared PTE that a flawed design marked HASHPTE again (patch2003's second
            // update) would fail every later vmalloc at that address: counted above, then
            // emptied so the run goes on. An HPTE it may name stays for the checks to find.
            if let vmalloc::VmError::PteInUse { ea, pte } = e {
                if !crate::mm::pte::Pte(pte).is_present() {
                    let _ = vmalloc::set_pte_raw(ea, u64::MAX, 0);
                }
            }
            return false;
        }
    };
    remember(&mut f.history, new, pages);
    let old = AREA[k][0].load(Relaxed);
    let old_pages = AREA[k][1].load(Relaxed);
    // Publish the new area first; others may still be touching the old one while it is freed.
    AREA[k][1].store(0, Release);
    AREA[k][0].store(new, Release);
    AREA[k][2].fetch_add(1, AcqRel);
    AREA[k][1].store(pages, Release);
    if old != 0 {
        free_checked(old, old_pages, f);
    }
    true
}

/// vfree under the faulting CPUs, then at once, while they still run: no HPTE may translate
/// any page of the area (vfree's promise: the frames are free now). Only this CPU allocates,
/// so nobody can have mapped the range again yet.
fn free_checked(addr: u64, pages: u64, f: &mut Findings) {
    for p in 0..pages {
        if let Some(pte) = vmalloc::pte_of(addr + p * 4096) {
            f.freed.insert((addr + p * 4096, pte.pfn()));
        }
    }
    if let Err(e) = vmalloc::vfree(addr) {
        vm_error("vfree", e);
    }
    for p in 0..pages {
        let ea = addr + p * 4096;
        f.post_free_checks += 1;
        if let Some(h) = vmalloc::find_hpte(ea) {
            f.bad(STALE_AFTER_VFREE, ea, vmalloc::pte_of(ea).unwrap_or(crate::mm::pte::Pte(0)), Some(h));
        }
    }
}

/// While hunting under patch2003: a freed page's PTE that is not present but not empty either
/// (its late slot record set HASHPTE and the slot in the cleared PTE) and that no HPTE
/// translates (checked just now by `check_invariants`: another CPU's eviction removed it
/// first) is the flaw without its evidence. vmalloc refuses to map over it ("in use"), and as
/// it hands out the lowest free address, the freeing CPU would fail at that one address for
/// the rest of the hunt. Reset such PTEs (nobody maps them: this CPU alone allocates); returns
/// how many.
pub(crate) fn reset_leftovers(history: &BTreeSet<u64>) -> u64 {
    let live = |ea: u64| {
        (0..SLOTS).any(|k| {
            let a = AREA[k][0].load(Relaxed);
            a != 0 && ea >= a && ea < a + AREA[k][1].load(Relaxed) * 4096
        })
    };
    let mut n = 0;
    for &ea in history {
        if let Some(p) = vmalloc::pte_of(ea) {
            if !p.is_present() && p.raw() != 0 && !p.is_busy() && !live(ea) && vmalloc::find_hpte(ea).is_none() {
                let _ = vmalloc::set_pte_raw(ea, u64::MAX, 0);
                n += 1;
            }
        }
    }
    n
}

/// After a design that leaves stale HPTEs (patch2003): removes every HPTE that translates a
/// page of the run and empties PTEs that are not present (left with HASHPTE and slot bits),
/// so that later tests find the HPT and the page tables clean. Returns how many HPTEs it removed.
fn scrub(history: &BTreeSet<u64>) -> u64 {
    use crate::hash::backend::HashBackend;
    let mut removed = 0;
    for &ea in history {
        while let Some((ptex, _)) = vmalloc::find_hpte(ea) {
            if crate::hash::hpt::Hpt.remove(ptex, crate::mm::hpte::avpn_for(kernel_vsid(ea), ea)).is_err() {
                break;
            }
            removed += 1;
        }
        if let Some(p) = vmalloc::pte_of(ea) {
            if !p.is_present() && p.raw() != 0 {
                let _ = vmalloc::set_pte_raw(ea, u64::MAX, 0);
            }
        }
    }
    removed
}

pub fn run(rounds: u64, round_us: u64) -> Result<StressReport, alloc::string::String> {
    let n = smp::ncpus();
    NPART.store(n as u64, Release);
    QUIT.store(false, Relaxed);
    ROUND_END.store(false, Relaxed);
    SEED.store(insn::mftb() | 1, Relaxed);
    let mut r = Rng(SEED.load(Relaxed) ^ 0xabcdef);
    for a in [&OUT_OF_MEMORY, &VM_ERRORS, &ILLEGAL_REFUSALS, &FIRST_ILLEGAL, &REFUSED] {
        a.store(0, Relaxed);
    }
    let ledger = crate::mm::frame::Ledger::now();
    let injected0 = crate::inject::injected();
    let mut f = Findings::default();
    let planted = if INJECT_STALE.load(Relaxed) { Some(plant_stale_hpte(&mut f.history)?) } else { None };
    // The first areas are scaffolding: no injected allocation failure there.
    for k in 0..SLOTS {
        if !crate::inject::suspend_allocs(|| replace_area(k, &mut r, &mut f)) {
            return Err("vmalloc failed".into());
        }
    }
    let before = stats::total();
    let per_cpu_before: alloc::vec::Vec<stats::Snapshot> = (0..n).map(|c| stats::of(c).snapshot()).collect();
    IRQ_FAULTS.store(0, Relaxed);
    for c in 0..n {
        OPS[c].store(0, Relaxed);
    }
    timer::set_hook(Some(on_decrementer));
    let tickets: alloc::vec::Vec<(usize, u64)> = (1..n).map(|c| (c, smp::run_on(c, worker))).collect();
    let mut rep = StressReport { cpus: n, ..Default::default() };
    let t0 = insn::mftb();
    let mut idle_rounds = [0u64; percpu::MAX_CPUS];
    for _round in 0..rounds {
        ROUND_END.store(false, Release);
        let ops0: alloc::vec::Vec<u64> = (0..n).map(|c| OPS[c].load(Relaxed)).collect();
        BARRIER.wait(n);
        let end = insn::mftb() + timer::us_to_tb(round_us);
        while insn::mftb() < end {
            crate::sync::watchdog::touch();
            let x = r.next();
            // Hunting a stale HPTE, this CPU does nothing but replace the hot page's area: the
            // page every other CPU keeps faulting on is freed under them as often as possible.
            let what = if STOP_AT_STALE.load(Relaxed) { 0 } else { x % 8 };
            match what {
                0 | 1 => {
                    let k = if STOP_AT_STALE.load(Relaxed) { 0 } else { (x >> 8) as usize % SLOTS };
                    if replace_area(k, &mut r, &mut f) {
                        rep.replaced += 1;
                    }
                }
                2 => {
                    // Flip write permission on a random live page (downgrade flushes the HPTE).
                    let k = (x >> 8) as usize % SLOTS;
                    let a = AREA[k][0].load(Relaxed);
                    let p = (x >> 16) % AREA[k][1].load(Relaxed).max(1);
                    let (clr, set) = if x & (1 << 40) != 0 {
                        (PteFlags::RW, PteFlags::empty())
                    } else {
                        (PteFlags::empty(), PteFlags::RW)
                    };
                    // Only this CPU replaces areas: the page is live, so this cannot fail.
                    if let Err(e) = vmalloc::change_protection(a + p * 4096, clr, set) {
                        f.violations += 1;
                        println!(
                            "stress: INVARIANT VIOLATED: change_protection of live page {:#x}: {}",
                            a + p * 4096,
                            e
                        );
                    }
                }
                3 => {
                    // Page aging, as an LRU scan would do: clear ACCESSED on the hot page with
                    // the BUSY-waiting atomic update, racing the CPUs that are hashing it.
                    // (Only clearing: setting a bit could resurrect a PTE that vfree cleared.)
                    let hot = AREA[0][0].load(Acquire);
                    if let Some(slot) = pgtable::walk(hot) {
                        let mut spins = 0;
                        for _ in 0..32 {
                            slot.update(PteFlags::ACCESSED.bits(), 0, &mut spins);
                        }
                        AGED.fetch_add(32, Relaxed);
                    }
                }
                _ => {
                    touch(&mut r, 0);
                }
            }
        }
        ROUND_END.store(true, Release);
        if !BARRIER.wait_timeout(n, timer::us_to_tb(5_000_000)) {
            return Err("a CPU stalled: it did not reach the end-of-round barrier within 5 s".into());
        }
        // Everyone is quiet now: check.
        rep.checks += check_invariants(false, &mut f);
        if STOP_AT_STALE.load(Relaxed) && f.stale.is_none() {
            rep.leftovers += reset_leftovers(&f.history);
        }
        if let Some(st) = f.stale.as_mut().filter(|st| st.persisted.is_none()) {
            let mut hs = [(0, Hpte { v: 0, r: 0 }); 4];
            let n = vmalloc::find_hptes(st.ea, &mut hs);
            st.persisted =
                Some(hs[..n].iter().any(|&(p, h)| p == st.ptex && h.v == st.hpte.v && h.rpn() == st.hpte.rpn()));
        }
        // A vCPU thread can miss a 20 ms round when vCPUs outnumber host cores; a second
        // without a single touch is a stall (a hang is caught by the barrier timeout above).
        for c in 1..n {
            rep.checks += 1;
            if OPS[c].load(Relaxed) == ops0[c] {
                idle_rounds[c] += 1;
                if idle_rounds[c] * round_us >= STALL_US && (idle_rounds[c] - 1) * round_us < STALL_US {
                    f.violations += 1;
                    println!(
                        "stress: INVARIANT VIOLATED: CPU {} made no progress for {} ms (stalled)",
                        c,
                        STALL_US / 1000
                    );
                }
            } else {
                idle_rounds[c] = 0;
            }
        }
        rep.rounds += 1;
        f.round = rep.rounds;
        if STOP_AT_STALE.load(Relaxed) && f.stale.is_some() {
            break;
        }
    }
    QUIT.store(true, Release);
    BARRIER.wait(n);
    for (c, t) in tickets {
        smp::wait(c, t);
    }
    rep.elapsed_tb = insn::mftb() - t0;
    timer::set_hook(None);
    for k in 0..SLOTS {
        let pages = AREA[k][1].load(Relaxed);
        let a = AREA[k][0].swap(0, AcqRel);
        AREA[k][1].store(0, Release);
        if a != 0 {
            free_checked(a, pages, &mut f);
        }
        for p in 0..MAX_PAGES as usize {
            WRITTEN[k][p].store(0, Relaxed);
        }
    }
    // Every area is gone: nothing the run mapped may still be translated or set.
    let before_end = f.violations;
    rep.checks += check_invariants(true, &mut f);
    rep.end_violations = f.violations - before_end;
    rep.pages_scanned = f.history.len() as u64;
    rep.violations = f.violations;
    rep.first_violation_at = f.first_at;
    rep.post_free_checks = f.post_free_checks;
    rep.checks += f.post_free_checks;
    rep.stale = f.stale;
    if f.violations != 0 && !INJECT_STALE.load(Relaxed) {
        let n = scrub(&f.history);
        println!("stress: removed {} stale HPTEs and emptied the run's leftover PTEs, so later tests start clean", n);
    }
    if let Some(x) = planted {
        rep.planted_at = x;
        remove_planted(x)?;
    }
    // Every frame the run took must be back (page tables and heap growth aside).
    rep.frames_leaked = ledger.leaked_since();
    if rep.frames_leaked != 0 {
        rep.violations += 1;
        println!("stress: INVARIANT VIOLATED: {} frames leaked (taken and not given back)", rep.frames_leaked);
    }
    rep.out_of_memory = OUT_OF_MEMORY.load(Relaxed);
    rep.illegal_refusals = ILLEGAL_REFUSALS.load(Relaxed);
    rep.violations += rep.illegal_refusals + VM_ERRORS.load(Relaxed);
    if rep.first_violation_at == 0 {
        rep.first_violation_at = FIRST_ILLEGAL.load(Relaxed);
    }
    let inj = crate::inject::injected();
    rep.injected = core::array::from_fn(|i| inj[i] - injected0[i]);
    let delta = stats::total().since(&before);
    let d = |c: Counter| delta.get(c);
    rep.faults = delta.faults();
    rep.busy_retries = d(Counter::BusyRetries);
    rep.stcx_fails = d(Counter::StcxFails);
    rep.evictions = d(Counter::Evictions);
    rep.irq_faults = IRQ_FAULTS.load(Relaxed);
    rep.refused = REFUSED.swap(0, Relaxed);
    rep.aged = AGED.swap(0, Relaxed);
    for c in 0..n {
        let now = stats::of(c).snapshot().since(&per_cpu_before[c]);
        rep.per_cpu[c] = CpuCounts {
            faults: now.faults(),
            busy_retries: now.get(Counter::BusyRetries),
            stcx_fails: now.get(Counter::StcxFails),
            touches: OPS[c].load(Relaxed),
        };
    }
    Ok(rep)
}

/// The self-test's fault: a one-page area allocated before the workers' areas (so below all
/// of them: first fit), touched so that it has an HPTE, whose PTE is then cleared without the
/// flush — the HPTE outlives the mapping. The area stays allocated, so no one maps the page
/// again; only a check that scans every page the run created finds it.
fn plant_stale_hpte(history: &mut BTreeSet<u64>) -> Result<u64, alloc::string::String> {
    let x = vmalloc::vmalloc(4096).map_err(|e| alloc::format!("vmalloc: {e}"))?;
    remember(history, x, 1);
    probe_write(x, 1).map_err(|f| alloc::format!("touch of {x:#x} faulted: {f:?}"))?;
    vmalloc::set_pte_raw(x, u64::MAX, 0).map_err(|e| alloc::format!("set_pte_raw: {e}"))?;
    if vmalloc::find_hpte(x).is_none() {
        return Err(alloc::format!("no HPTE planted at {x:#x}"));
    }
    Ok(x)
}

fn remove_planted(x: u64) -> Result<(), alloc::string::String> {
    use crate::hash::backend::HashBackend;
    if let Some((ptex, _)) = vmalloc::find_hpte(x) {
        crate::hash::hpt::Hpt
            .remove(ptex, crate::mm::hpte::avpn_for(kernel_vsid(x), x))
            .map_err(|e| alloc::format!("HPTE removal: {e:?}"))?;
    }
    vmalloc::vfree(x).map_err(|e| alloc::format!("vfree: {e}"))
}

pub fn print_report(rep: &StressReport) {
    let ms = rep.elapsed_tb * 1000 / timer::tb_freq();
    println!("smp stress: {} CPUs, {} rounds in {} ms: {} faults ({} from interrupt context), {} BUSY re-executions, {} stcx. failures, {} evictions, {} areas replaced under the faulting CPUs, {} refused accesses (freed/read-only), {} PTE agings, {} invariant checks over {} pages (every page the run mapped, after each round and at the end; each freed area's pages right after its vfree), {} violations",
             rep.cpus, rep.rounds, ms, rep.faults, rep.irq_faults, rep.busy_retries, rep.stcx_fails, rep.evictions, rep.replaced, rep.refused, rep.aged, rep.checks, rep.pages_scanned, rep.violations);
    crate::result!(
        "stress",
        cpus = rep.cpus,
        rounds = rep.rounds,
        faults = rep.faults,
        busy = rep.busy_retries,
        checks = rep.checks,
        violations = rep.violations
    );
    for c in 0..rep.cpus {
        let d = rep.per_cpu[c];
        println!(
            "  CPU {}: {} faults, {} BUSY retries, {} stcx. failures, {} touches",
            c, d.faults, d.busy_retries, d.stcx_fails, d.touches
        );
    }
    let injected: u64 = rep.injected.iter().sum();
    if crate::inject::armed() || injected > 0 {
        use core::fmt::Write;
        let mut kinds = alloc::string::String::new();
        for k in crate::inject::Kind::ALL {
            if rep.injected[k as usize] > 0 {
                let _ = write!(kinds, " {}={}", k.name(), rep.injected[k as usize]);
            }
        }
        println!("smp stress: fault injection: {} failures injected ({}), {} vmalloc calls returned the named error 'out of memory', {} legal touches refused, {} frames leaked",
                 injected, kinds.trim_start(), rep.out_of_memory, rep.illegal_refusals, rep.frames_leaked);
    }
}

/// The stress under a design that has the 2003 race (`hash_page=patch2003`): rounds until the
/// checks find a stale HPTE, at most `max_rounds`. The report's `stale` says where.
pub fn run_until_stale(max_rounds: u64) -> Result<StressReport, alloc::string::String> {
    STOP_AT_STALE.store(true, Relaxed);
    let r = run(max_rounds, 20_000);
    STOP_AT_STALE.store(false, Relaxed);
    let rep = r?;
    print_report(&rep);
    Ok(rep)
}

/// What a stress run must have seen besides zero violations.
#[derive(Clone, Copy, Debug)]
pub struct Require {
    /// At least one BUSY re-execution: CPUs really contended for a PTE.
    pub busy: bool,
    /// At least one lost reservation (in the fault path or the direct take race).
    pub lost: bool,
}

/// Runs the stress and applies the pass criteria.
pub fn run_checked(rounds: u64, round_us: u64, require: Require) -> Result<StressReport, alloc::string::String> {
    let rep = run(rounds, round_us)?;
    print_report(&rep);
    if rep.violations != 0 {
        return Err(alloc::format!("{} invariant violations", rep.violations));
    }
    if rep.faults == 0 {
        return Err("no faults at all".into());
    }
    if require.busy && rep.busy_retries == 0 {
        return Err(alloc::format!("no BUSY re-execution with {} vCPUs running in parallel: the stress saw no contention, so it proves nothing", rep.cpus));
    }
    if require.lost {
        let (mut takes, mut lost) = (0, 0);
        for _ in 0..10 {
            let (t, l, _) = take_race(20_000);
            takes += t;
            lost += l;
            if lost + rep.stcx_fails > 0 {
                break;
            }
        }
        println!("smp stress: direct take race: {} takes, {} lost reservations", takes, lost);
        if rep.stcx_fails + lost == 0 {
            return Err(alloc::format!(
                "race not exercised: {} BUSY re-executions, {} stcx. failures in faults, {} in the direct take race",
                rep.busy_retries,
                rep.stcx_fails,
                lost
            ));
        }
    }
    Ok(rep)
}

/// The stress as the tests run it: contention is required where vCPUs run in parallel, and
/// the output says so where they cannot (one CPU, or vCPUs taking turns).
pub fn stress_checked(rounds: u64) -> Result<StressReport, alloc::string::String> {
    let n = smp::ncpus();
    let parallel = n >= 2 && parallel_vcpus();
    // Contention shows as BUSY re-executions only where there is a BUSY bit: the 2003 designs
    // (hash_page=patch2003, cas2) have none, and contention there shows as failed CASes.
    let busy_bit = crate::hash::fault::design().has_busy();
    let require = Require { busy: parallel && busy_bit, lost: parallel && n >= 4 };
    let why = if parallel && !busy_bit {
        "vCPUs run in parallel, but this design has no BUSY bit: BUSY re-executions not required"
    } else if parallel {
        if require.lost {
            "vCPUs run in parallel: BUSY re-executions and lost reservations required"
        } else {
            "vCPUs run in parallel: BUSY re-executions required"
        }
    } else if n < 2 {
        "one CPU: no contention possible, BUSY re-executions not required"
    } else {
        "vCPUs take turns (--accel single, or a busy host): BUSY re-executions not required"
    };
    println!("smp stress: {} rounds on {} CPU(s), {}", rounds, n, why);
    let mut rep = run_checked(rounds, 20_000, require)?;
    rep.parallel = parallel;
    Ok(rep)
}

static SPIN_COUNT: AtomicU64 = AtomicU64::new(0);
static SPIN_RUN: AtomicBool = AtomicBool::new(false);
fn spinner(_c: usize) {
    while SPIN_RUN.load(Acquire) {
        SPIN_COUNT.fetch_add(1, Relaxed);
    }
}

/// Whether CPU 1 runs at the same time as CPU 0 (MTTCG with a host core to spare), rather than
/// in turns with it (`--accel single`: one host thread runs the vCPUs one after the other and
/// switches when one cedes, executes `or 1,1,1` — QEMU ends the translation block with a pause
/// there, so `cpu_relax` yields — or every 100 ms). CPU 1 counts; CPU 0 watches the count
/// through 40 µs windows in a loop that never yields. Parallel = the count moved in at least 25
/// of 50 consecutive windows, within the first 2000 (80 ms). Taking turns, it moves only in a
/// window that spans a switch: once per 100 ms under `--accel single`, once per host time slice
/// when the host runs both vCPU threads on one core (it does for up to ~20 ms after CPU 1 wakes
/// up, and all along when other work keeps the other core busy).
pub fn parallel_vcpus() -> bool {
    if smp::ncpus() < 2 {
        return false;
    }
    SPIN_COUNT.store(0, Relaxed);
    SPIN_RUN.store(true, Release);
    let t = smp::run_on(1, spinner);
    // Let it start, yielding, so that a single-threaded QEMU runs it too.
    let start = insn::mftb();
    while SPIN_COUNT.load(Relaxed) == 0 && insn::mftb() - start < timer::us_to_tb(1_000_000) {
        insn::cpu_relax();
    }
    let mut parallel = false;
    if SPIN_COUNT.load(Relaxed) != 0 {
        // Bit i: whether the count moved in the i-th most recent window.
        let mut last50 = 0u64;
        for w in 0..2000 {
            let c0 = SPIN_COUNT.load(Relaxed);
            let end = insn::mftb() + timer::us_to_tb(40);
            while insn::mftb() < end {}
            last50 = ((last50 << 1) | (SPIN_COUNT.load(Relaxed) != c0) as u64) & ((1 << 50) - 1);
            if w >= 49 && last50.count_ones() >= 25 {
                parallel = true;
                break;
            }
        }
    }
    SPIN_RUN.store(false, Release);
    smp::wait(1, t);
    parallel
}

pub(crate) static TOGGLE_SLOT: crate::hash::cell::PteSlot = crate::hash::cell::PteSlot::new();
static TOGGLE_RUN: AtomicBool = AtomicBool::new(false);
static TOGGLES: AtomicU64 = AtomicU64::new(0);

fn toggler(_cpu: usize) {
    let mut spins = 0;
    let mut n = 0u64;
    while TOGGLE_RUN.load(Acquire) {
        TOGGLE_SLOT.update(PteFlags::ACCESSED.bits(), 0, &mut spins);
        TOGGLE_SLOT.update(0, PteFlags::ACCESSED.bits(), &mut spins);
        n += 2;
    }
    TOGGLES.store(n, Release);
}

/// hash_page's atomic step (`take` + `publish`) on CPU 0 back to back against CPU 1 aging the
/// same PTE with the BUSY-waiting update, for `us` microseconds. Returns (takes, stcx. failures,
/// agings). Under QEMU the fault path itself rarely loses a reservation (see docs); this race
/// runs the identical ldarx/stdcx. code where the windows can overlap.
pub fn take_race(us: u64) -> (u64, u64, u64) {
    use crate::hash::access::Access;
    use crate::hash::cell::Take;
    let pte = crate::mm::pte::Pte::new(0x1234, crate::mm::pte::PAGE_KERNEL);
    TOGGLE_SLOT.publish(pte);
    TOGGLE_RUN.store(true, Release);
    let t = smp::run_on(1, toggler);
    let lost = AtomicU64::new(0);
    let mut taken = 0u64;
    let end = insn::mftb() + timer::us_to_tb(us);
    while insn::mftb() < end {
        match TOGGLE_SLOT.take(Access::from_data_fault(0x4000_0000, false)) {
            Take::Taken { new, .. } => {
                taken += 1;
                TOGGLE_SLOT.publish(new.without(PteFlags::BUSY));
            }
            Take::Lost => {
                lost.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
    TOGGLE_RUN.store(false, Release);
    smp::wait(1, t);
    (taken, lost.load(Relaxed), TOGGLES.load(Acquire))
}

/// hash_page's `take` on a PTE word kept in a vmalloc page that is clean and has no HPTE.
/// The `ldarx` faults the page in read-only (clean pages get read-only HPTEs); the `stdcx.`
/// then takes a protection fault and hash_page upgrades the HPTE with H_PROTECT. Taking that
/// interrupt clears this CPU's reservation (QEMU 7.2: `powerpc_set_excp_state` and `do_rfi`
/// in target/ppc/excp_helper.c set `reserve_addr = -1`), so the re-executed `stdcx.` fails:
/// at least one lost reservation per take, on one CPU, whatever the accelerator or CPU count.
/// Returns (takes, lost reservations, H_PROTECT upgrades on this CPU).
pub fn interrupted_takes(n: u64) -> Result<(u64, u64, u64), alloc::string::String> {
    use crate::hash::access::Access;
    use crate::hash::cell::{PteSlot, Take};
    use crate::mm::pte::{Pte, PAGE_KERNEL};
    let page = vmalloc::vmalloc(4096).map_err(|e| alloc::format!("vmalloc: {e}"))?;
    // SAFETY: PteSlot is a transparent AtomicU64; the page is ours and 8-byte aligned, and
    // only this function uses it until the vfree below.
    let slot = unsafe { &*(page as *const PteSlot) };
    let updates0 = stats::this().get(Counter::Updates);
    let mut lost = 0;
    let mut result = Ok(());
    for i in 0..n {
        let pte = Pte::new(0x1000 + i, PAGE_KERNEL);
        slot.publish(pte);
        // Clean again, and its HPTE removed: the next access is a load fault.
        if let Err(e) = vmalloc::change_protection(page, PteFlags::DIRTY, PteFlags::empty()) {
            result = Err(alloc::format!("change_protection: {e}"));
            break;
        }
        // `take` reports a lost reservation instead of retrying (the fault path re-executes):
        // retry here, counting each loss, as hash_page's callers do.
        let mut fails = 0;
        let t = loop {
            match slot.take(Access::from_data_fault(0x4000_0000, false)) {
                Take::Lost if fails < 1000 => fails += 1,
                other => break other,
            }
        };
        let want = pte.raw() | PteFlags::BUSY.bits() | PteFlags::ACCESSED.bits();
        match t {
            Take::Taken { old, new } if old == pte && new.raw() == want && slot.load().raw() == want => {
                slot.publish(new.without(PteFlags::BUSY));
            }
            other => {
                result = Err(alloc::format!(
                    "take {i}: {other:?}, PTE word now {:#x} (want Taken, {want:#x})",
                    slot.load().raw()
                ));
                break;
            }
        }
        if fails == 0 {
            result = Err(alloc::format!(
                "take {i}: the stdcx. kept its reservation across the protection fault (or did not fault)"
            ));
            break;
        }
        lost += fails;
    }
    let updates = stats::this().get(Counter::Updates) - updates0;
    vmalloc::vfree(page).map_err(|e| alloc::format!("vfree: {e}"))?;
    result.map(|()| (n, lost, updates))
}
