//! The kernel event trace (src/trace): trace points patched on and off, the ring's wrap,
//! concurrent writers with interrupts nesting into them, and the 2003 scenario as the trace
//! shows it with the lock-free hash_page. (The locked design's deadlock cannot be a test that
//! returns: scripts/ci.sh checks its dump with scripts/trace.py.)
//!
//! Each test switches the groups it needs on and puts back what `trace=` chose. A run whose
//! recording was stopped on purpose (`trace.stop=`) keeps its rings: the tests that would
//! write into them say so and pass without writing.

use crate::arch::ppc64::exception::ExcFrame;
use crate::arch::ppc64::{insn, percpu, timer};
use crate::bootargs::IrqMode;
use crate::ktest::TestResult;
use crate::run::irqtest;
use crate::smp;
use crate::trace::event::{scan_lock_holds, Event, Groups, Mark, Outcome};
use crate::trace::{self, site, RING_LEN};
use crate::{kassert, kassert_eq, ktest};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// Runs `f` with `g` recorded, then puts the boot-time groups back. None if recording was
/// stopped for good (`trace.stop=`): the rings are not to be touched then.
fn with_groups<R>(g: Groups, f: impl FnOnce() -> R) -> Option<R> {
    if trace::frozen() {
        crate::println!("  (trace.stop= froze the rings for the dump: not written by this test)");
        return None;
    }
    trace::control::set_groups(g);
    let r = f();
    trace::control::set_groups(trace::boot_groups());
    Some(r)
}

extern "C" {
    static slb_vector_branch: u32;
    static slb_miss: u32;
    static slb_miss_other: u32;
}

fn word(at: u64) -> u32 {
    // SAFETY: an aligned word of kernel text.
    unsafe { core::ptr::read_volatile(at as *const u32) }
}

ktest!("trace", points_are_nops_when_off_and_branches_when_on);
fn points_are_nops_when_off_and_branches_when_on() -> TestResult {
    use crate::hash::fault::{call_target, design_entry};
    let sites = site::sites();
    // Every event that has a trace point in the kernel has at least one (the hash outcome, the
    // watchdog and marks are recorded by code, not by a patched point).
    for ev in Event::ALL.into_iter().filter(|e| !matches!(e, Event::HashOutcome | Event::Watchdog | Event::Mark)) {
        kassert!(sites.iter().any(|s| trace::event::code_event(s.code) == Some(ev)), "no trace point for {ev:?}");
    }
    let slb_at = &raw const slb_vector_branch as u64;
    let (to_asm, to_generic) = (&raw const slb_miss as u64, &raw const slb_miss_other as u64);
    let check = |g: Groups| -> Result<(), String> {
        for s in sites {
            let ev = trace::event::code_event(s.code).expect("a known event");
            let w = word(s.at);
            if g.intersects(ev.group()) {
                kassert_eq!(w, site::branch(s.at, s.stub));
            } else {
                kassert!(w == site::NOP, "{ev:?} point at {:#x} is {w:#010x} with {g:?} on, not a nop", s.at);
            }
        }
        let slb = site::branch_target(slb_at, word(slb_at));
        kassert_eq!(slb, if g.contains(Groups::EXC) { to_generic } else { to_asm });
        let traced = call_target() == site::traced_hash_entry();
        kassert_eq!(traced, g.intersects(Groups::EXC | Groups::HASH));
        kassert!(design_entry() != site::traced_hash_entry());
        Ok(())
    };
    let r = with_groups(Groups::empty(), || -> Result<(), String> {
        check(Groups::empty())?;
        let entry = design_entry();
        for g in [Groups::LOCK, Groups::HASH, Groups::EXC | Groups::TIMER, Groups::all(), Groups::empty()] {
            trace::control::set_groups(g);
            check(g)?;
            kassert_eq!(design_entry(), entry);
        }
        Ok(())
    });
    if let Some(r) = r {
        r?;
    }
    crate::println!("  {} trace points; all nops with tracing off", sites.len());
    Ok(())
}

const MAGIC: u64 = 0x7ace_0000_0000_0000;

ktest!("trace", ring_wraps_keeping_the_newest);
fn ring_wraps_keeping_the_newest() -> TestResult {
    let cpu = percpu::cpu_id();
    let n = RING_LEN as u64 + 1000;
    // Only marks: no group whose trace points fire here (the watchdog records only in reports).
    let Some((h0, h1)) = with_groups(Groups::WATCHDOG, || {
        let h0 = trace::head(cpu);
        for i in 0..n {
            trace::mark(Mark::Test, MAGIC, i);
        }
        (h0, trace::head(cpu))
    }) else {
        return Ok(());
    };
    kassert_eq!(h1 - h0, n);
    let mut seen = 0u64;
    let mut bad = None;
    let c = trace::for_each(cpu, 0, |r| {
        // The oldest records left are the last RING_LEN written, in order.
        let want = n - RING_LEN as u64 + seen;
        if bad.is_none() && (r.ev != Event::Mark || r.a != MAGIC || r.b != want || r.index != h0 + want) {
            bad = Some(*r);
        }
        seen += 1;
    });
    kassert!(bad.is_none(), "record {seen} after the wrap is {bad:?}");
    kassert_eq!(seen, RING_LEN as u64);
    kassert_eq!(c.first, h1 - RING_LEN as u64);
    kassert_eq!(c.torn, 0);
    Ok(())
}

/// Writers on every CPU at once, decrementer interrupts recording into the same rings between
/// their records. Each writer paces its records (one every 10 microseconds); if its CPU has
/// not taken `MIN_IRQS` interrupts by then, it adds one record after each further interrupt
/// until it has (3 s at most): when they arrive depends on how busy the host is (QEMU delivers
/// the decrementer from a host timer, and 8 vCPUs may share 2 host cores). At most
/// WRITES + MIN_IRQS + 4 * MAX_IRQS records per ring: it holds them all.
const WRITES: u64 = 600;
const MIN_IRQS: u64 = 10;
const MAX_IRQS: u64 = 200;
const _: () = assert!(WRITES + MIN_IRQS + 4 * MAX_IRQS < RING_LEN as u64);
static GO: smp::Barrier = smp::Barrier::new();
static WRITING: AtomicBool = AtomicBool::new(false);
static IRQS: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static START: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static WRITTEN: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static NCPU: AtomicU64 = AtomicU64::new(0);
const DEC_MAGIC: u64 = 0xdec0_0000_0000_0000;

fn on_dec(_f: &mut ExcFrame) {
    let me = percpu::cpu_id();
    let n = IRQS[me].fetch_add(1, Relaxed) + 1;
    trace::mark(Mark::Test, DEC_MAGIC | me as u64, n);
    if WRITING.load(Relaxed) && n < MAX_IRQS {
        timer::arm(timer::us_to_tb(15));
    }
}

fn writer(me: usize) {
    GO.wait(NCPU.load(Acquire) as usize);
    START[me].store(trace::head(me), Release);
    let step = timer::us_to_tb(10);
    let give_up = insn::mftb() + timer::us_to_tb(3_000_000);
    crate::arch::ppc64::irq::enable();
    timer::arm(timer::us_to_tb(5));
    let mut i = 0;
    while i < WRITES {
        trace::mark(Mark::Test, MAGIC | me as u64, i);
        i += 1;
        let next = insn::mftb() + step;
        while insn::mftb() < next {
            insn::cpu_relax();
        }
    }
    while IRQS[me].load(Relaxed) < MIN_IRQS && insn::mftb() < give_up {
        let seen = IRQS[me].load(Relaxed);
        while IRQS[me].load(Relaxed) == seen && insn::mftb() < give_up {
            insn::cpu_relax();
        }
        trace::mark(Mark::Test, MAGIC | me as u64, i);
        i += 1;
    }
    crate::arch::ppc64::irq::disable();
    timer::arm(timer::DEC_IDLE);
    WRITTEN[me].store(i, Release);
}
ktest!("trace", concurrent_writers_and_nested_interrupts_keep_every_record);
fn concurrent_writers_and_nested_interrupts_keep_every_record() -> TestResult {
    let n = smp::ncpus();
    NCPU.store(n as u64, Release);
    for c in &IRQS {
        c.store(0, Relaxed);
    }
    let done = with_groups(Groups::EXC | Groups::TIMER, || {
        WRITING.store(true, Relaxed);
        timer::set_hook(Some(on_dec));
        let tickets: alloc::vec::Vec<u64> = (1..n).map(|c| smp::run_on(c, writer)).collect();
        writer(0);
        for (c, t) in (1..n).zip(tickets) {
            smp::wait(c, t);
        }
        WRITING.store(false, Relaxed);
        timer::set_hook(None);
    });
    if done.is_none() {
        return Ok(());
    }
    for cpu in 0..n {
        let from = START[cpu].load(Acquire);
        let head = trace::head(cpu);
        kassert!(head - from <= RING_LEN as u64, "CPU {cpu} wrote {} records: more than the ring holds", head - from);
        let (mut writes, mut decs, mut entries, mut exits, mut dec_events) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut next_index, mut last_tb) = (from, 0);
        let mut problem: Option<String> = None;
        let c = trace::for_each(cpu, from, |r| {
            let mut bad = |what: &str| {
                problem.get_or_insert_with(|| alloc::format!("CPU {cpu}: {what}: {r:?}"));
            };
            if r.index != next_index {
                bad("a record is missing before this one");
            }
            next_index = r.index + 1;
            if r.tb < last_tb {
                bad("time went backwards");
            }
            last_tb = r.tb;
            match r.ev {
                Event::Mark if r.a == MAGIC | cpu as u64 => {
                    if r.b != writes || r.depth != 0 {
                        bad("the writer's records are not 0, 1, 2, ... in thread context");
                    }
                    writes += 1;
                }
                Event::Mark if r.a == DEC_MAGIC | cpu as u64 => {
                    decs += 1;
                    if r.b != decs || r.depth != 1 {
                        bad("the interrupt's records are not 1, 2, 3, ... at depth 1");
                    }
                }
                Event::Mark => bad("another CPU's record in this ring"),
                Event::ExcEntry if r.c == 0x900 && r.depth == 1 => entries += 1,
                Event::ExcExit if r.c == 0x900 && r.depth == 1 => exits += 1,
                Event::Decrementer if r.depth == 1 => dec_events += 1,
                _ => bad("an event this test did not cause"),
            }
        });
        if let Some(p) = problem {
            return Err(p);
        }
        kassert_eq!(c.torn, 0);
        kassert_eq!(next_index, head);
        kassert_eq!(writes, WRITTEN[cpu].load(Acquire));
        kassert!(writes >= WRITES, "CPU {cpu} wrote {writes} records");
        let irqs = IRQS[cpu].load(Relaxed);
        kassert!(irqs >= MIN_IRQS, "CPU {cpu} took only {irqs} decrementer interrupts while writing {writes} records (3 s at most): too few nested");
        kassert!(decs == irqs && entries == irqs && exits == irqs && dec_events == irqs,
                 "CPU {cpu}: {irqs} interrupts, but {entries} entries, {dec_events} decrementer events, {decs} marks, {exits} exits");
        crate::println!("  CPU {}: {} records in order: {} written in thread context, {} decrementer interrupts nested into them (entry, decrementer, mark, exit each)", cpu, head - from, writes, irqs);
    }
    Ok(())
}

ktest!("trace", lockfree_fault_completes_inside_the_lock_hold);
fn lockfree_fault_completes_inside_the_lock_hold() -> TestResult {
    if crate::hash::fault::locked_mode() {
        return crate::ktest::skip("lock-free only (booted with hash_page=locked)");
    }
    const ITER: u64 = 8;
    let cpu = percpu::cpu_id();
    let g = Groups::EXC | Groups::LOCK | Groups::HASH | Groups::TIMER;
    let Some((from, r)) = with_groups(g, || {
        let from = trace::head(cpu);
        (from, irqtest::with_watchdog(|| irqtest::run_checked(IrqMode::Deterministic, ITER)))
    }) else {
        return Ok(());
    };
    r?;
    kassert!(trace::head(cpu) - from <= RING_LEN as u64, "the scenario wrapped the ring");
    let evs = trace::events(cpu, from);
    let lock = &crate::mm::vmalloc::PAGE_TABLE_LOCK as *const _ as *const u8 as u64;
    let s = scan_lock_holds(&evs, lock);
    kassert!(s.deadlock.is_none(), "a fault inside the hold found the lock taken: {s:?}");
    kassert!(
        s.holds_with_completed_fault >= ITER,
        "{} of {} lock holds had a decrementer whose 0x300 completed inside (want {ITER})",
        s.holds_with_completed_fault,
        s.holds
    );
    // The faults inside the decrementer were resolved by hash_page, and their segments were
    // installed on the traced (generic) 0x380 path.
    let nested_inserts = evs
        .iter()
        .filter(|r| {
            r.ev == Event::HashOutcome
                && r.depth == 2
                && matches!(
                    Outcome::from_u8(r.c as u8),
                    Some(Outcome::InsertedPrimary | Outcome::InsertedSecondary | Outcome::Updated | Outcome::Evicted)
                )
        })
        .count() as u64;
    kassert!(nested_inserts >= ITER, "{nested_inserts} hash faults inside an interrupt resolved");
    let segs = evs.iter().filter(|r| r.ev == Event::ExcEntry && r.c == 0x380).count();
    kassert!(segs >= 1, "no 0x380 recorded (the handler drops its segment every third time)");
    crate::println!(
        "  {} lock holds, {} with a 0x300 completing inside the decrementer inside them; {} records",
        s.holds,
        s.holds_with_completed_fault,
        evs.len()
    );
    Ok(())
}

ktest!("trace", untraced_run_records_nothing);
fn untraced_run_records_nothing() -> TestResult {
    if !trace::boot_groups().is_empty() {
        return Ok(());
    }
    // With trace= absent nothing is on: a vmalloc, a fault and a lock leave no record.
    let cpu = percpu::cpu_id();
    let h0 = trace::head(cpu);
    let a = crate::mm::vmalloc::vmalloc(4096).map_err(|e| alloc::format!("{e}"))?;
    // SAFETY: the page was just allocated for this test.
    unsafe { core::ptr::write_volatile(a as *mut u64, 1) };
    crate::mm::vmalloc::vfree(a).map_err(|e| alloc::format!("{e}"))?;
    kassert_eq!(trace::head(cpu), h0);
    kassert_eq!(site::count_on(), 0);
    Ok(())
}
