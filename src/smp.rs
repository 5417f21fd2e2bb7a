//! Secondary CPUs: started with RTAS `start-cpu` into boot/entry.S's `secondary_entry` (on
//! powernv: OPAL_START_CPU into `opal_secondary_entry`), each with its own per-CPU area,
//! exception and kernel stacks, bolted SLB entry and decrementer. Idle CPUs wait in H_CEDE
//! (powernv: poll their work slot); work is handed over through a per-CPU slot and an H_PROD.
//! `stop_others` uses H_SIGNAL_SYS_RESET (on powernv the BMC's NMI, `powernv::nmi_all`): a
//! non-maskable system reset, vector 0x100, so even a CPU spinning with interrupts off stops —
//! and reports where it was.

use crate::arch::ppc64::exception::ExcFrame;
use crate::arch::ppc64::irq;
use crate::arch::ppc64::{boot, hcall, insn, of, percpu, platform, powernv, rtas, timer};
use crate::println;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use crate::arch::ppc64::hcall::H_SIGNAL_SYS_RESET;
const H_SIGNAL_SYS_RESET_ALLBUTSELF: i64 = -2;

static NCPUS: AtomicUsize = AtomicUsize::new(1);
static STOPPING: AtomicBool = AtomicBool::new(false);
/// CPU that is stopping the machine (valid while STOPPING).
static STOPPER: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Per-CPU work slot: a `fn(usize)` to run, 0 = none.
static WORK: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static DONE: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
/// Where a CPU was when the system reset that stopped it arrived.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoppedAt {
    pub nip: u64,
    pub lr: u64,
    pub sp: u64,
    /// The innermost exception frame it was handling (0 = none: thread context).
    pub frame: u64,
    /// Its exception nesting depth (0 = thread context).
    pub depth: u64,
}

static STOPPED_AT: [spin::Mutex<Option<StoppedAt>>; percpu::MAX_CPUS] =
    [const { spin::Mutex::new(None) }; percpu::MAX_CPUS];

/// Where `cpu` was when it was stopped, if it has been.
pub fn stopped_at(cpu: usize) -> Option<StoppedAt> {
    *STOPPED_AT[cpu].lock()
}

pub fn ncpus() -> usize {
    NCPUS.load(Relaxed)
}

/// The hand-off secondary `idx` consumes in boot/entry.S (its PACA, stack, entry point).
pub fn prepare_handoff(idx: usize) -> *const boot::MmuHandoff {
    boot::make_handoff(idx, false, secondary_main as *const () as u64, idx as u64)
}

/// Starts every CPU in /cpus (up to MAX_CPUS), one at a time. Returns how many are online:
/// CPUs 0..n-1. Each CPU gets its own hand-off, PACA and stack, so one that comes up after we
/// stopped waiting for it runs on its own (and idles: it is not counted); the CPUs after it
/// are not started, because the rest of the kernel numbers online CPUs 0..ncpus().
/// `prepare(cpu)` sets up what the memory layer keeps per CPU (page-table roots, the HPTE
/// table pointer) before the CPU runs: passed in, so that SMP bring-up sits below mm.
pub fn start_secondaries(prepare: fn(usize)) -> usize {
    let bi = boot::info();
    let mut online = 1;
    for idx in 1..bi.ncpus {
        let id = bi.cpu_ids[idx];
        let p = percpu::paca(0);
        percpu::init(
            idx,
            p.toc.load(Relaxed),
            p.exc_common.load(Relaxed),
            p.kmsr.load(Relaxed),
            p.slb_size.load(Relaxed),
            boot::BOLTED_SLB as u64,
        );
        prepare(idx);
        let h = prepare_handoff(idx);
        let started = if platform::powernv() {
            powernv::start_cpu(idx, id, h).map_err(|e| alloc::format!("OPAL_START_CPU: {e}"))
        } else {
            rtas::start_cpu(id, boot::secondary_entry_pa(), of::pa(h)).map_err(|e| alloc::format!("{e}"))
        };
        if let Err(e) = started {
            println!("smp: start-cpu {} failed: {}; not starting the CPUs after it", id, e);
            break;
        }
        let start = insn::mftb();
        while percpu::paca(idx).online.load(Acquire) == 0 && insn::mftb() - start <= timer::us_to_tb(2_000_000) {
            insn::cpu_relax();
        }
        if percpu::paca(idx).online.load(Acquire) == 0 {
            // RTAS reports 0 for a halted vCPU, 2 for one that runs (here: still on its way
            // in, with its own hand-off, so nothing it uses is ever handed to another CPU).
            let state = if platform::powernv() {
                match crate::arch::ppc64::opal::query_cpu_status(id) {
                    Ok(1) => "still in OPAL",
                    Ok(2) => "started by OPAL, not online yet",
                    Ok(_) => "in an unknown state",
                    Err(_) => "state unknown",
                }
            } else {
                match rtas::query_cpu_stopped_state(id) {
                    Ok(0) => "stopped",
                    Ok(2) => "running, not online yet",
                    Ok(_) => "in an unknown state",
                    Err(_) => "state unknown",
                }
            };
            println!(
                "smp: CPU {} (id {}) did not come online within 2 s ({}); not starting the CPUs after it",
                idx, id, state
            );
            break;
        }
        online += 1;
        NCPUS.store(online, Release);
    }
    online
}

extern "C" fn secondary_main(cpu: u64) -> ! {
    let me = cpu as usize;
    // SAFETY: DEC only schedules this CPU's next decrementer interrupt.
    unsafe { insn::mtdec(timer::DEC_IDLE) };
    percpu::paca(me).heartbeat.store(insn::mftb(), Relaxed);
    percpu::paca(me).online.store(1, Release);
    loop {
        let w = WORK[me].swap(0, AcqRel);
        if w != 0 {
            // SAFETY: WORK only holds `fn(usize)` pointers stored by `run_on`.
            let f: fn(usize) = unsafe { core::mem::transmute(w as usize) };
            f(me);
            DONE[me].fetch_add(1, Release);
            continue;
        }
        if STOPPING.load(Relaxed) {
            park();
        }
        // Idle until prodded (H_CEDE turns EE on; the decrementer is parked far away).
        if platform::powernv() {
            powernv::idle_until(|| WORK[me].load(Relaxed) != 0 || STOPPING.load(Relaxed));
        } else {
            hcall::h_cede();
            irq::disable();
        }
    }
}

/// Runs `f(cpu)` on secondary `cpu`. Returns a ticket for `wait`.
pub fn run_on(cpu: usize, f: fn(usize)) -> u64 {
    let ticket = DONE[cpu].load(Acquire) + 1;
    WORK[cpu].store(f as *const () as u64, Release);
    prod(cpu);
    ticket
}

fn prod(cpu: usize) {
    if platform::powernv() {
        powernv::kick(cpu);
    } else {
        let _ = hcall::h_prod(boot::info().cpu_ids[cpu] as u64);
    }
}

/// How often a waiter repeats an H_PROD that may have been lost (time-base ticks: 100 µs).
fn reprod_tb() -> u64 {
    timer::us_to_tb(100)
}

/// Waits until `cpu` has taken the work `run_on` gave it. The prod can be lost: PAPR says a
/// prod that comes before the target cedes makes that H_CEDE return at once, but QEMU 7.2
/// forgets it whenever the target's vCPU thread re-enters its execution loop
/// (`spapr_cpu_exec_enter` clears `prod`), which a running vCPU does all the time — so a prod
/// that lands between the idle loop's look at its work slot and its H_CEDE leaves the CPU
/// asleep until its decrementer fires (DEC_IDLE: about 4 s). Prodding again until the work is
/// taken closes that.
pub fn ensure_started(cpu: usize) {
    let mut last = insn::mftb();
    while WORK[cpu].load(Acquire) != 0 {
        if insn::mftb() - last > reprod_tb() {
            prod(cpu);
            last = insn::mftb();
        }
        insn::cpu_relax();
    }
}

pub fn is_done(cpu: usize, ticket: u64) -> bool {
    DONE[cpu].load(Acquire) >= ticket
}

pub fn wait(cpu: usize, ticket: u64) {
    let mut last = insn::mftb();
    while !is_done(cpu, ticket) {
        // Not taken yet: the prod may have been lost (see `ensure_started`).
        if WORK[cpu].load(Acquire) != 0 && insn::mftb() - last > reprod_tb() {
            prod(cpu);
            last = insn::mftb();
        }
        insn::cpu_relax();
    }
}

/// A reusable sense-reversing barrier for `n` participants.
pub struct Barrier {
    count: AtomicUsize,
    sense: AtomicBool,
}

impl Barrier {
    pub const fn new() -> Barrier {
        Barrier { count: AtomicUsize::new(0), sense: AtomicBool::new(false) }
    }
    pub fn wait(&self, n: usize) {
        let s = !self.sense.load(Acquire);
        if self.count.fetch_add(1, AcqRel) + 1 == n {
            self.count.store(0, Relaxed);
            self.sense.store(s, Release);
        } else {
            while self.sense.load(Acquire) != s {
                insn::cpu_relax();
                if STOPPING.load(Relaxed) {
                    park();
                }
            }
        }
    }
}

impl Barrier {
    /// `wait`, giving up after `tb` time-base ticks (returns false); the barrier is then
    /// unusable, which is fine for its one caller, a failing test.
    pub fn wait_timeout(&self, n: usize, tb: u64) -> bool {
        let s = !self.sense.load(Acquire);
        if self.count.fetch_add(1, AcqRel) + 1 == n {
            self.count.store(0, Relaxed);
            self.sense.store(s, Release);
            return true;
        }
        let start = insn::mftb();
        while self.sense.load(Acquire) != s {
            insn::cpu_relax();
            if insn::mftb() - start > tb {
                return false;
            }
        }
        true
    }
}

impl Default for Barrier {
    fn default() -> Self {
        Self::new()
    }
}

/// Stops every other CPU (NMI-style, works with their interrupts off) so one CPU's report is
/// not buried under the others' output. Idempotent; only the first caller proceeds.
pub fn stop_others() {
    if ncpus() <= 1 {
        return;
    }
    let me = percpu::cpu_id();
    if STOPPING.swap(true, AcqRel) {
        // Someone is already stopping the machine. If it is another CPU, its report wins:
        // stay out of its way (its system reset will park us, or we park ourselves).
        if STOPPER.load(Acquire) != me {
            park();
        }
        return;
    }
    STOPPER.store(me, Release);
    // With interrupts off this CPU's own system reset (powernv: the NMI reaches every CPU)
    // cannot land in exception entry code, where it could not be returned from; with MSR[RI]
    // on it can be returned from even when the caller is the hash-fault slow path (which runs
    // with RI off), so RI is on until this CPU's own NMI has come and gone. Nothing here
    // touches memory that could take a hash fault.
    let on = irq::save_disable();
    if platform::powernv() {
        // The cheap way first: a CPU that is idle (napping) or waits in a barrier sees
        // STOPPING once kicked and parks itself. The NMI costs two BMC round trips (about a
        // second under QEMU), so it is kept for CPUs that do not answer (interrupts off, as a
        // deadlocked one).
        for c in (0..ncpus()).filter(|&c| c != me) {
            powernv::kick(c);
        }
        if !others_parked(me, 20_000) {
            let ri_was = insn::mfmsr() & crate::arch::ppc64::reg::Msr::RI.bits();
            insn::mtmsrd_ee_ri(crate::arch::ppc64::reg::Msr::RI.bits());
            OWN_NMI.store(false, Release);
            match powernv::nmi_all() {
                Ok(()) => {
                    others_parked(me, 500_000);
                    let start = insn::mftb();
                    while !OWN_NMI.load(Acquire) && insn::mftb() - start < timer::us_to_tb(500_000) {
                        insn::cpu_relax();
                    }
                }
                Err(e) => println!("smp: no NMI for the other CPUs ({e}); they keep running"),
            }
            powernv::nmi_done();
            insn::mtmsrd_ee_ri(ri_was);
        }
    } else {
        let _ = hcall::hcall(H_SIGNAL_SYS_RESET, [H_SIGNAL_SYS_RESET_ALLBUTSELF as u64, 0, 0, 0]);
        others_parked(me, 500_000);
    }
    irq::restore(on);
}

/// Waits up to `us` for every other online CPU to park; whether they all did.
fn others_parked(me: usize, us: u64) -> bool {
    let start = insn::mftb();
    for c in (0..ncpus()).filter(|&c| c != me) {
        while percpu::paca(c).online.load(Acquire) != 2 {
            if insn::mftb() - start >= timer::us_to_tb(us) {
                return false;
            }
            insn::cpu_relax();
        }
    }
    true
}

/// powernv: the stopper's own NMI has arrived (it returns from it: `is_stopper`).
static OWN_NMI: AtomicBool = AtomicBool::new(false);

pub fn own_nmi_arrived() {
    OWN_NMI.store(true, Release);
}

pub fn stopping() -> bool {
    STOPPING.load(Relaxed)
}

/// The 0x100 system reset: another CPU is stopping the machine. Record where we were, park.
pub fn system_reset(f: &mut ExcFrame) -> ! {
    record_stop(f);
    park()
}

/// CPUs the NMI found inside OPAL (powernv): they park as soon as the call returns, so that no
/// CPU stays parked holding one of OPAL's locks (the console's: the stopper still prints).
static PARK_AFTER_OPAL: [AtomicBool; percpu::MAX_CPUS] = [const { AtomicBool::new(false) }; percpu::MAX_CPUS];

/// The system reset of a CPU that was running OPAL code (recoverable: MSR[RI] = 1).
pub fn system_reset_in_firmware(f: &mut ExcFrame) -> crate::arch::ppc64::exception::Handled {
    record_stop(f);
    PARK_AFTER_OPAL[percpu::cpu_id()].store(true, Release);
    crate::arch::ppc64::exception::Handled::Done
}

/// Called after every OPAL call.
#[inline(always)]
pub fn after_firmware_call() {
    if STOPPING.load(Relaxed) && PARK_AFTER_OPAL[percpu::cpu_id()].load(Acquire) {
        park()
    }
}

fn record_stop(f: &ExcFrame) {
    let me = percpu::cpu_id();
    let sp = f.gpr[1];
    let inner = crate::arch::ppc64::exception::innermost_frame(me, sp, f.prev_frame);
    // This exception's own level is not part of what was interrupted.
    let depth = percpu::this().depth.load(Relaxed) - 1 + percpu::on_hash_stack(me, sp) as u64;
    let mut at = STOPPED_AT[me].lock();
    if at.is_some() {
        return; // the first system reset says where this CPU was; later ones find it parked
    }
    *at = Some(StoppedAt {
        nip: f.nip,
        lr: f.lr,
        sp,
        frame: inner.map(|x| x as *const ExcFrame as u64).unwrap_or(0),
        depth,
    });
}

fn park() -> ! {
    let me = percpu::cpu_id();
    irq::disable();
    percpu::paca(me).online.store(2, Release);
    loop {
        if platform::powernv() {
            powernv::nap();
            continue;
        }
        hcall::h_cede();
        irq::disable();
    }
}

/// Whether this CPU has parked for the stop (`park`).
pub fn parked_here() -> bool {
    STOPPING.load(Relaxed) && percpu::this().online.load(Relaxed) == 2
}

/// Whether this CPU is the one stopping the machine: on powernv the NMI reaches every CPU,
/// the stopper included, which then just returns from it.
pub fn is_stopper() -> bool {
    STOPPING.load(Acquire) && STOPPER.load(Acquire) == percpu::cpu_id()
}
