//! The interrupt test driver: the 2003 deadlock, reproduced on demand.
//!
//! The decrementer's handler writes into a vmalloc buffer page whose HPTE it removed the time
//! before (so every touch is a hash fault, and every third one a segment fault first). The
//! interrupted code is inside vmalloc/vfree holding page_table_lock with MSR[EE]=1.
//!
//! - deterministic: a hook inside the critical section arms the decrementer and waits until
//!   it has fired, so every iteration hits the window;
//! - random: the handler re-arms the decrementer with a pseudo-random interval while a loop
//!   vmallocs/vfrees, to show the window is reachable without the hook.
//!
//! With hash_page=lockfree the handler's fault completes; with hash_page=locked it spins on
//! page_table_lock held by the code it interrupted: the watchdog (or, with one CPU, the lock's
//! self-check) reports the deadlock.

use crate::arch::ppc64::exception::ExcFrame;
use crate::arch::ppc64::irq;
use crate::arch::ppc64::{insn, percpu, timer};
use crate::bootargs::IrqMode;
use crate::hash::stats::{self, Counter};
use crate::mm::vmalloc::{self, PAGE_TABLE_LOCK};
use crate::sync::watchdog;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

const PAGES: u64 = 16;

static BUF: AtomicU64 = AtomicU64::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
static FIRED: AtomicBool = AtomicBool::new(false);
static RANDOM: AtomicBool = AtomicBool::new(false);
static SEQ: AtomicU64 = AtomicU64::new(0);
static RNG: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);
static IRQS: AtomicU64 = AtomicU64::new(0);
static IN_CRIT: AtomicU64 = AtomicU64::new(0);
static IRQ_HASH_FAULTS: AtomicU64 = AtomicU64::new(0);
static IRQ_SEG_FAULTS: AtomicU64 = AtomicU64::new(0);
static MISSED: AtomicU64 = AtomicU64::new(0);
/// Interrupts that both arrived inside the critical section and took a hash fault themselves.
static CRIT_AND_FAULT: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    pub iterations: u64,
    pub interrupts: u64,
    pub in_critical_section: u64,
    /// Interrupts inside the critical section that themselves took a hash fault: the 2003 window.
    pub window_hits: u64,
    pub hash_faults_in_irq: u64,
    pub segment_faults_in_irq: u64,
    pub missed_windows: u64,
    pub data_ok: bool,
    pub elapsed_tb: u64,
    /// vmalloc calls that failed with `VmError::OutOfMemory` (injected frame or heap failures):
    /// a named error the loop counts and goes on from.
    pub out_of_memory: u64,
    /// Frames the run took and did not give back (see `frame::Ledger`): must be 0.
    pub frames_leaked: i64,
    /// Failures injected during the run (all kinds; 0 without `inject=`).
    pub injected: u64,
}

fn rand() -> u64 {
    let mut x = RNG.load(Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.store(x, Relaxed);
    x
}

/// The decrementer handler of the test driver (interrupt context, EE off).
fn on_decrementer(_f: &mut ExcFrame) {
    let t_in = insn::mftb();
    let me = percpu::cpu_id() as u64;
    IRQS.fetch_add(1, Relaxed);
    let in_crit = matches!(PAGE_TABLE_LOCK.holder(), Some(h) if h.cpu == me && h.depth == 0);
    if in_crit {
        IN_CRIT.fetch_add(1, Relaxed);
    }
    let seq = SEQ.fetch_add(1, Relaxed);
    let page = seq % PAGES;
    let ea = BUF.load(Relaxed) + page * 4096 + 8 * ((seq / PAGES) % 512);
    if seq.is_multiple_of(3) {
        // SAFETY: vmalloc segments are never bolted; the access below misses and reinstalls.
        unsafe { insn::slbie(ea) };
    }
    let st = stats::this();
    let (h0, s0) = (st.faults(), st.get(Counter::DsegMiss));
    // SAFETY: the buffer stays allocated for the whole run; this is the touch that faults.
    unsafe { core::ptr::write_volatile(ea as *mut u64, seq ^ 0xfeed_0000_0000) };
    let faults = st.faults() - h0;
    IRQ_HASH_FAULTS.fetch_add(faults, Relaxed);
    if in_crit && faults > 0 {
        CRIT_AND_FAULT.fetch_add(1, Relaxed);
    }
    IRQ_SEG_FAULTS.fetch_add(st.get(Counter::DsegMiss) - s0, Relaxed);
    vmalloc::evict_hpte(ea);
    FIRED.store(true, Release);
    if RANDOM.load(Relaxed) {
        // At least twice this handler's own time until the next one: on a slow or loaded
        // host (the time base is host time) a fixed interval could leave the interrupted
        // thread no time at all, and the watchdog would rightly call that no progress.
        let busy = insn::mftb() - t_in;
        timer::arm(timer::us_to_tb(3) + rand() % timer::us_to_tb(40) + 2 * busy);
    }
}

/// Runs inside vmalloc's/vfree's critical section (page_table_lock held, EE on).
fn in_critical_section() {
    // After a few real misses the run has failed anyway: stop waiting a second each time.
    if !ARMED.load(Relaxed) || MISSED.load(Relaxed) >= 3 {
        return;
    }
    FIRED.store(false, Relaxed);
    timer::arm(512);
    // The decrementer fires within microseconds of guest time, but the time base is host
    // time: a vCPU thread the host deschedules (8 vCPUs on 2 cores) can see a long jump before
    // the pending interrupt is taken. So wait long, feeding the watchdog; a real miss (the
    // interrupt never comes) still ends the wait and fails the deterministic check.
    let start = insn::mftb();
    while !FIRED.load(Acquire) {
        insn::cpu_relax();
        watchdog::touch();
        if insn::mftb() - start > timer::us_to_tb(1_000_000) {
            MISSED.fetch_add(1, Relaxed);
            break;
        }
    }
}

pub fn run(mode: IrqMode, iterations: u64) -> Result<Report, alloc::string::String> {
    for a in [&IRQS, &IN_CRIT, &IRQ_HASH_FAULTS, &IRQ_SEG_FAULTS, &MISSED, &SEQ, &CRIT_AND_FAULT] {
        a.store(0, Relaxed);
    }
    let ledger = crate::mm::frame::Ledger::now();
    let injected0: u64 = crate::inject::injected().iter().sum();
    // The handler's buffer is the scenario's scaffolding: no injected allocation failure.
    let buf =
        crate::inject::suspend_allocs(|| vmalloc::vmalloc(PAGES * 4096)).map_err(|e| alloc::format!("vmalloc: {e}"))?;
    for p in 0..PAGES {
        vmalloc::evict_hpte(buf + p * 4096);
    }
    BUF.store(buf, Release);
    RANDOM.store(mode == IrqMode::Random, Relaxed);
    timer::set_hook(Some(on_decrementer));
    vmalloc::set_crit_hook(Some(in_critical_section));
    let me = percpu::cpu_id();
    watchdog::watch(me, true);
    crate::trace::mark(crate::trace::Mark::IrqtestStart, iterations, mode as u64);
    let t0 = insn::mftb();
    irq::enable();
    if mode == IrqMode::Random {
        timer::arm(timer::us_to_tb(5));
    }
    let mut err = None;
    let mut out_of_memory = 0;
    for i in 0..iterations {
        watchdog::touch();
        ARMED.store(mode == IrqMode::Deterministic && i % 2 == 0, Relaxed);
        let a = match vmalloc::vmalloc(4096) {
            Ok(a) => a,
            // Out of frames (or heap) is an error vmalloc must report, not survive: with
            // injected allocation failures it is expected, and the window is lost for this
            // iteration (the critical section comes after the allocation).
            Err(vmalloc::VmError::OutOfMemory) => {
                out_of_memory += 1;
                continue;
            }
            Err(e) => {
                err = Some(alloc::format!("vmalloc: {e}"));
                break;
            }
        };
        ARMED.store(mode == IrqMode::Deterministic && i % 2 == 1, Relaxed);
        if let Err(e) = vmalloc::vfree(a) {
            err = Some(alloc::format!("vfree: {e}"));
            break;
        }
    }
    ARMED.store(false, Relaxed);
    RANDOM.store(false, Relaxed);
    irq::disable();
    crate::trace::mark(crate::trace::Mark::IrqtestEnd, CRIT_AND_FAULT.load(Relaxed), IRQS.load(Relaxed));
    timer::arm(timer::DEC_IDLE);
    let elapsed = insn::mftb() - t0;
    watchdog::watch(me, false);
    timer::set_hook(None);
    vmalloc::set_crit_hook(None);
    // Read back everything the handler wrote through the vmalloc mapping.
    let n = SEQ.load(Relaxed);
    let mut data_ok = true;
    for seq in n.saturating_sub(PAGES * 512)..n {
        let ea = buf + (seq % PAGES) * 4096 + 8 * ((seq / PAGES) % 512);
        // SAFETY: the buffer is still allocated.
        if unsafe { core::ptr::read_volatile(ea as *const u64) } != seq ^ 0xfeed_0000_0000 {
            data_ok = false;
        }
    }
    vmalloc::vfree(buf).map_err(|e| alloc::format!("vfree: {e}"))?;
    if let Some(e) = err {
        return Err(e);
    }
    let frames_leaked = ledger.leaked_since();
    let injected = crate::inject::injected().iter().sum::<u64>() - injected0;
    Ok(Report {
        iterations,
        interrupts: IRQS.load(Relaxed),
        in_critical_section: IN_CRIT.load(Relaxed),
        window_hits: CRIT_AND_FAULT.load(Relaxed),
        hash_faults_in_irq: IRQ_HASH_FAULTS.load(Relaxed),
        segment_faults_in_irq: IRQ_SEG_FAULTS.load(Relaxed),
        missed_windows: MISSED.load(Relaxed),
        data_ok,
        elapsed_tb: elapsed,
        out_of_memory,
        frames_leaked,
        injected,
    })
}

/// Runs the scenario and checks what the regression asserts; prints the counters.
pub fn run_checked(mode: IrqMode, iterations: u64) -> Result<Report, alloc::string::String> {
    let r = run(mode, iterations)?;
    let ms = r.elapsed_tb * 1000 / timer::tb_freq();
    crate::println!(
        "irqtest ({:?}): {} iterations in {} ms: {} interrupts, {} inside vmalloc/vfree's critical section (page_table_lock held, EE=1), {} of those took a hash fault, {} hash faults served in interrupt context ({} after a segment miss), {} missed windows, data {}, {} frames leaked",
        mode, r.iterations, ms, r.interrupts, r.in_critical_section, r.window_hits, r.hash_faults_in_irq, r.segment_faults_in_irq, r.missed_windows,
        if r.data_ok { "verified" } else { "CORRUPT" }, r.frames_leaked
    );
    crate::result!(
        "irqtest",
        mode = if mode == IrqMode::Random { "random" } else { "deterministic" },
        iterations = r.iterations,
        in_window = r.in_critical_section,
        window_hits = r.window_hits,
        irq_faults = r.hash_faults_in_irq,
        missed = r.missed_windows,
        data_ok = r.data_ok,
        frames_leaked = r.frames_leaked
    );
    if crate::inject::armed() || r.injected > 0 {
        crate::println!(
            "irqtest: fault injection: {} failures injected, {} vmalloc calls returned the named error 'out of memory'",
            r.injected,
            r.out_of_memory
        );
    }
    if r.window_hits == 0 {
        return Err(
            "no interrupt both arrived inside the critical section and took a hash fault: window not exercised".into(),
        );
    }
    // Each iteration whose vmalloc succeeded has one armed critical section.
    let windows = r.iterations - r.out_of_memory;
    if mode == IrqMode::Deterministic && (r.window_hits < windows || r.missed_windows != 0) {
        return Err(alloc::format!(
            "deterministic mode hit the window {} times in {} iterations ({} without an area)",
            r.window_hits,
            r.iterations,
            r.out_of_memory
        ));
    }
    if !r.data_ok {
        return Err("data written by the interrupt handler did not read back".into());
    }
    if r.frames_leaked != 0 {
        return Err(alloc::format!("{} frames leaked (taken and not given back)", r.frames_leaked));
    }
    if r.out_of_memory > 0 && !crate::inject::armed() {
        return Err(alloc::format!("{} vmalloc calls ran out of memory without injected failures", r.out_of_memory));
    }
    Ok(r)
}

/// Runs `f` with the deadlock watchdog on another CPU (if there is one).
pub fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    let have = crate::smp::ncpus() >= 2 && percpu::cpu_id() == 0;
    let ticket = if have { Some(crate::smp::run_on(1, watchdog::run)) } else { None };
    if have {
        while !watchdog::ACTIVE.load(Acquire) {
            insn::cpu_relax();
        }
    }
    let r = f();
    if let Some(t) = ticket {
        watchdog::stop();
        crate::smp::wait(1, t);
    }
    r
}
