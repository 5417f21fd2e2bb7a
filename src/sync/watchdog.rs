//! Deadlock watchdog. CPUs running a workload publish a heartbeat (time base) in their per-CPU
//! area; one other CPU runs `run` and, when a watched CPU makes no progress for
//! `watchdog.ms` (default 200 ms of guest time), prints a deadlock report — which CPU, the
//! NIP/LR of its innermost exception frame and where it actually spins (captured with a
//! system reset), which lock it spins on and who holds it — and fails the run.
//!
//! With a single CPU there is nobody to watch: then the lock itself reports (`spinning`), when
//! it has spun for the same time on a lock that this very CPU holds in an interrupted context.

use super::ptlock::{Holder, LockHead};
use crate::arch::ppc64::exception::ExcFrame;
use crate::arch::ppc64::{insn, percpu, reg, timer};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// A watchdog CPU is running.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static WATCHED: [AtomicBool; percpu::MAX_CPUS] = [const { AtomicBool::new(false) }; percpu::MAX_CPUS];
static TIMEOUT_TB: AtomicU64 = AtomicU64::new(0);
/// Time base when a deadlock was detected (for latency statistics).
pub static DETECTED_AT: AtomicU64 = AtomicU64::new(0);

pub fn set_timeout_ms(ms: u64) {
    TIMEOUT_TB.store(timer::us_to_tb(ms * 1000), Relaxed);
}

fn timeout_tb() -> u64 {
    let t = TIMEOUT_TB.load(Relaxed);
    if t == 0 {
        timer::us_to_tb(200_000)
    } else {
        t
    }
}

#[inline(always)]
pub fn touch() {
    percpu::this().heartbeat.store(insn::mftb(), Relaxed);
}

pub fn watch(cpu: usize, on: bool) {
    percpu::paca(cpu).heartbeat.store(insn::mftb(), Relaxed);
    WATCHED[cpu].store(on, Release);
}

/// The watchdog loop (runs on its own CPU until `stop`).
pub fn run(me: usize) {
    ACTIVE.store(true, Release);
    while !STOP.load(Acquire) {
        let now = insn::mftb();
        for c in 0..crate::smp::ncpus() {
            if c == me || !WATCHED[c].load(Acquire) {
                continue;
            }
            let hb = percpu::paca(c).heartbeat.load(Relaxed);
            if now > hb && now - hb > timeout_tb() {
                report(c, now - hb);
            }
        }
        timer::udelay(1000);
    }
    ACTIVE.store(false, Release);
    STOP.store(false, Release);
}

pub fn stop() {
    if ACTIVE.load(Acquire) {
        STOP.store(true, Release);
        while ACTIVE.load(Acquire) {
            insn::cpu_relax();
        }
    }
}

/// The name of the lock at `addr`: a CPU's `spinning_on` or a lock trace event's address,
/// which only `PtLock` stores (0: none).
pub fn describe_lock(addr: u64) -> &'static str {
    lock_at(addr).map_or("(none)", |h| h.name)
}

fn lock_at(addr: u64) -> Option<&'static LockHead> {
    // SAFETY: nonzero values come from `PtLock::lock` (spinning_on, trace events) and locks
    // are statics, so `addr` is a live `PtLock<T>`.
    (addr != 0).then(|| unsafe { LockHead::at(addr) })
}

fn holder_str(h: Option<Holder>) -> alloc::string::String {
    match h {
        None => "nobody (free now)".into(),
        Some(h) => {
            let ctx = if h.depth == 0 {
                "thread context (interrupted inside its critical section)".into()
            } else {
                alloc::format!("exception context (depth {})", h.depth)
            };
            match h.site {
                Some(s) => alloc::format!("CPU {} in {}, taken at {}:{}", h.cpu, ctx, s.file(), s.line()),
                None => alloc::format!("CPU {} in {}", h.cpu, ctx),
            }
        }
    }
}

fn report(cpu: usize, stalled_tb: u64) -> ! {
    crate::console::emergency();
    DETECTED_AT.store(insn::mftb(), Relaxed);
    let p = percpu::paca(cpu);
    let lock = p.spinning_on.load(Relaxed);
    let holder = lock_at(lock).and_then(LockHead::holder);
    crate::trace::record(crate::trace::Event::Watchdog, cpu as u32, stalled_tb, lock);
    let me = percpu::cpu_id();
    crate::report::fatal("deadlock", |w| {
        // The other CPUs are stopped now: the stuck one recorded where it was.
        let ms = stalled_tb * 1000 / timer::tb_freq();
        let _ = writeln!(w, "==================[ DEADLOCK DETECTED ]==================");
        let _ = writeln!(w, "watchdog (CPU {}): CPU {} made no progress for {} ms", me, cpu, ms);
        let _ = writeln!(w, "result: deadlock detector=watchdog cpu={} lock={} ms={}", cpu, describe_lock(lock), ms);
        let (frame, depth) = match crate::smp::stopped_at(cpu) {
            Some(at) => {
                let _ =
                    writeln!(w, "  CPU {} was spinning at NIP {:#018x} LR {:#018x} (system reset)", cpu, at.nip, at.lr);
                // SAFETY: the stopped CPU recorded its innermost live frame; it is parked now.
                ((at.frame != 0).then(|| unsafe { &*(at.frame as *const ExcFrame) }), at.depth)
            }
            None => {
                let _ = writeln!(w, "  CPU {} did not answer the system reset; its state as last recorded:", cpu);
                (
                    crate::arch::ppc64::exception::innermost_frame(cpu, 0, p.last_frame.load(Relaxed)),
                    p.depth.load(Relaxed),
                )
            }
        };
        print_frame(w, cpu, frame, depth);
        let _ = writeln!(w, "  spinning on: {} ({:#x})", describe_lock(lock), lock);
        let _ = writeln!(w, "  held by: {}", holder_str(holder));
        // Every CPU's ring, the stuck one's included (stopped now: its ring no longer changes).
        crate::trace::dump("deadlock", Some(cpu));
        let _ = writeln!(w, "==========================================================");
    })
}

/// Called from a lock's spin loop. With no watchdog CPU (e.g. --smp 1), a CPU that spins for
/// the watchdog timeout on a lock it holds itself (in an interrupted context) reports here.
#[inline(always)]
pub fn spinning(lock_addr: u64, start_tb: u64, holder: Option<Holder>) {
    if ACTIVE.load(Relaxed) {
        return;
    }
    let now = insn::mftb();
    if now - start_tb < timeout_tb() {
        return;
    }
    let me = percpu::cpu_id() as u64;
    if let Some(h) = holder {
        if h.cpu == me {
            crate::console::emergency();
            DETECTED_AT.store(now, Relaxed);
            crate::trace::record(crate::trace::Event::Watchdog, me as u32, now - start_tb, lock_addr);
            let me = me as usize;
            let f = crate::arch::ppc64::exception::innermost_frame(
                me,
                percpu::sp(),
                percpu::this().last_frame.load(Relaxed),
            );
            let depth = percpu::exception_depth();
            crate::report::fatal("deadlock", |w| {
                let _ = writeln!(w, "==================[ DEADLOCK DETECTED ]==================");
                let _ = writeln!(
                    w,
                    "result: deadlock detector=self_check cpu={} lock={} ms={}",
                    me,
                    describe_lock(lock_addr),
                    (now - start_tb) * 1000 / timer::tb_freq()
                );
                let _ = writeln!(
                    w,
                    "lock self-check (no watchdog CPU): CPU {} spun {} ms on {} ({:#x})",
                    me,
                    (now - start_tb) * 1000 / timer::tb_freq(),
                    describe_lock(lock_addr),
                    lock_addr
                );
                let _ = writeln!(w, "  spinning on: {} ({:#x})", describe_lock(lock_addr), lock_addr);
                let _ = writeln!(w, "  held by: {}", holder_str(Some(h)));
                print_frame(w, me, f, depth);
                crate::trace::dump("deadlock", Some(me));
                let _ = writeln!(w, "==========================================================");
            })
        }
    }
}

fn print_frame(w: &mut dyn Write, cpu: usize, f: Option<&ExcFrame>, depth: u64) {
    if let Some(f) = f {
        let _ = writeln!(
            w,
            "  last exception frame: {} ({:#x}) NIP {:#018x} LR {:#018x} DAR {:#018x}",
            reg::vector_name(f.trap),
            f.trap,
            f.nip,
            f.lr,
            f.dar
        );
        let _ = writeln!(w, "  exception depth: {}", depth);
        let _ = writeln!(w, "  call trace of CPU {} at that fault (innermost first):", cpu);
        crate::arch::ppc64::exception::backtrace_from(w, f.gpr[1], Some(f.nip));
    } else {
        let _ = writeln!(w, "  exception depth: {}", depth);
    }
}
