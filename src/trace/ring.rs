//! The per-CPU rings, switching groups on and off, the traced 0x300 entry and the dump.
//!
//! Each CPU writes only its own ring. A record is reserved with one atomic add on the ring's
//! head (`ldarx`/`stdcx.`: an interrupt that records in between takes the next slot, and the
//! interrupted add retries), filled with interrupts masked (only a system reset or machine
//! check can cut in, and then the slot is recognised as torn by its sequence number), and
//! committed by storing its header word last. No lock, so a record can be written from any
//! context, including a CPU that deadlocked against itself and the system reset that stops it.

use super::event::{pack_w0, Event, GroupList, Groups, Line, Mark, Outcome, Rec};
use super::site;
use crate::arch::ppc64::exception::{self, ExcFrame};
use crate::arch::ppc64::{boot, hcall, insn, percpu};
use crate::arch::ppc64::percpu::MAX_CPUS;
use crate::hash::stats;
use crate::sync::irq;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

/// Records per CPU (a power of two, and not a multiple of 2^16: see `event::pack_w0`).
pub const RING_LEN: usize = 4096;
const _: () = assert!(RING_LEN.is_power_of_two() && RING_LEN < 1 << 16);

#[repr(C)]
pub struct Slot {
    tb: AtomicU64,
    w0: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

#[repr(C, align(128))]
pub struct Ring {
    /// Records ever reserved on this CPU; the next one goes to `slots[head % RING_LEN]`.
    head: AtomicU64,
    slots: [Slot; RING_LEN],
}

impl Ring {
    const fn new() -> Ring {
        const Z: AtomicU64 = AtomicU64::new(0);
        Ring { head: Z, slots: [const { Slot { tb: Z, w0: Z, a: Z, b: Z } }; RING_LEN] }
    }
}

/// The rings, by CPU number (named for scripts/helpers.gdb `trace-dump`).
#[no_mangle]
pub static TRACE_RINGS: [Ring; MAX_CPUS] = [const { Ring::new() }; MAX_CPUS];

/// What a debugger needs to read the rings without debug info for them: ring count, ring
/// stride, offset of the slots in a ring, slot size, ring length, offset of the header word
/// in a slot. (`used`: nothing in the kernel reads it.)
#[no_mangle]
#[used]
pub static TRACE_LAYOUT: [u64; 6] = [
    MAX_CPUS as u64,
    core::mem::size_of::<Ring>() as u64,
    core::mem::offset_of!(Ring, slots) as u64,
    core::mem::size_of::<Slot>() as u64,
    RING_LEN as u64,
    core::mem::offset_of!(Slot, w0) as u64,
];
const _: () = assert!(core::mem::size_of::<Slot>() == 32 && core::mem::offset_of!(Slot, tb) == 0);

/// The groups being recorded.
static GROUPS: AtomicU32 = AtomicU32::new(0);
/// The groups `trace=` asked for (tests put them back when they are done).
static BOOT_GROUPS: AtomicU32 = AtomicU32::new(0);
/// Set by `freeze` (`trace.stop=`) and by the dump: nothing more is recorded.
static FROZEN: AtomicBool = AtomicBool::new(false);
static DUMPED: AtomicBool = AtomicBool::new(false);
/// The design entry the traced 0x300 entry calls (`hash_fault_route`).
static HASH_INNER: AtomicU64 = AtomicU64::new(0);
/// The hcall each CPU has in flight, by exception depth: the end of a call knows only its
/// status, and an interrupt may make calls of its own between a call's begin and end (H_CEDE
/// returns with EE on).
const HCALL_DEPTHS: usize = 16;
static HCALL_OP: [[AtomicU64; HCALL_DEPTHS]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; HCALL_DEPTHS] }; MAX_CPUS];

pub fn groups() -> Groups {
    Groups::from_bits_truncate(GROUPS.load(Relaxed))
}

pub fn boot_groups() -> Groups {
    Groups::from_bits_truncate(BOOT_GROUPS.load(Relaxed))
}

pub fn frozen() -> bool {
    FROZEN.load(Relaxed)
}

/// Whether events of `ev`'s group are being recorded now.
#[inline(always)]
pub fn on(ev: Event) -> bool {
    let g = GROUPS.load(Relaxed);
    !FROZEN.load(Relaxed) && g != 0 && (ev.group().is_empty() || g & ev.group().bits() != 0)
}

/// The `trace=` bootarg: switch the groups on before anything else runs.
pub fn init(g: Groups) {
    BOOT_GROUPS.store(g.bits(), Relaxed);
    if !g.is_empty() {
        set_groups(g);
    }
}

extern "C" {
    static slb_vector_branch: u32;
    static slb_miss: u32;
    static slb_miss_other: u32;
}

/// Records `g` from now on: patches every trace point of those groups to its stub and every
/// other one back to a `nop`. While exceptions are traced, the 0x380 vector takes the generic
/// path (whose entry and exit are trace points) instead of the assembly-only segment miss;
/// while exceptions or hash_page are traced, the 0x300 entry calls `do_hash_fault_traced`,
/// which calls the selected design. So with tracing off neither path has an instruction more.
/// Call it while no other CPU takes exceptions through code being patched (boot, or a test
/// with the other CPUs idle), like `hash::fault::select`.
pub fn set_groups(g: Groups) {
    GROUPS.store(g.bits(), Relaxed);
    for s in site::sites() {
        let on = super::event::code_event(s.code).is_some_and(|e| g.intersects(e.group()));
        // SAFETY: a trace point's nop, and the branch to its stub, which returns right after it.
        unsafe { site::patch(s.at, if on { site::branch(s.at, s.stub) } else { site::NOP }) };
    }
    let at = &raw const slb_vector_branch as u64;
    let to = if g.contains(Groups::EXC) { &raw const slb_miss_other as u64 } else { &raw const slb_miss as u64 };
    // SAFETY: the last instruction of the AIL block's 0x380 vector, a branch to either of two
    // paths that start from the same register state (boot/vectors.S).
    unsafe { site::patch(at, site::branch(at, to)) };
    crate::hash::fault::select(crate::hash::fault::design());
}

/// Recording was stopped by `freeze` (not by the dump).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Stops recording for good (`trace.stop=`): the rings keep what they hold for the dump.
pub fn freeze() {
    mark(Mark::Stopped, 0, 0);
    STOPPED.store(true, Relaxed);
    FROZEN.store(true, Relaxed);
}

/// For `hash::fault::select`: where the 0x300 entry's call goes for design entry `target`.
pub fn hash_fault_route(target: u64) -> u64 {
    let traced = site::traced_hash_entry();
    if target != traced {
        HASH_INNER.store(target, Relaxed);
    }
    if groups().intersects(Groups::EXC | Groups::HASH) { traced } else { target }
}

/// The design entry a call to `target` ends up in (`target` itself unless it is the traced
/// entry).
pub fn hash_fault_design_entry(target: u64) -> u64 {
    if target == site::traced_hash_entry() { HASH_INNER.load(Relaxed) } else { target }
}

/// The 0x300 entry while exceptions or hash_page are traced: the exception's entry, the
/// design's own handler, its outcome (from the counters it moved) and, unless it goes on to
/// the slow path (which records its own exit), the exit.
#[no_mangle]
extern "C" fn do_hash_fault_traced(dar: u64, dsisr: u64, srr1: u64) {
    let nip = exception::hash_frame().nip;
    let depth = percpu::exception_depth();
    let before = stats::this().snapshot();
    record_at(Event::ExcEntry, depth, 0x300, dar, nip);
    let inner = HASH_INNER.load(Relaxed);
    // SAFETY: HASH_INNER holds a design's entry decoded from the `bl` that `select` built
    // (the local entry of an `extern "C" fn(u64, u64, u64)`; r2 is the kernel's one TOC).
    let design: extern "C" fn(u64, u64, u64) = unsafe { core::mem::transmute(inner as usize) };
    design(dar, dsisr, srr1);
    let verdict = percpu::this().hash_verdict.load(Relaxed);
    let moved = stats::this().snapshot().since(&before);
    record_at(Event::HashOutcome, depth, Outcome::from_delta(&moved) as u32, dar, verdict);
    if verdict == 0 {
        record_at(Event::ExcExit, depth, 0x300, nip, 0);
    }
}

/// A trace point fired (`site::trace_from_site`): turn the registers it saved into a record.
pub(super) fn from_site(ev: Event, payload: u32, x: u64, y: u64, z: u64) {
    let depth = percpu::exception_depth();
    match ev {
        Event::ExcEntry | Event::ExcExit => {
            // SAFETY: exception trace points pass their frame (exception_entry,
            // hash_fault_slow_path), live while they run.
            let f = unsafe { &*(x as *const ExcFrame) };
            // A frame that interrupted the hash-fault handler (a system reset stopping a CPU
            // stuck in it) lies on the exception stack, one level inside that handler.
            let cpu = percpu::cpu_id();
            let depth = percpu::this().depth.load(Relaxed) + percpu::on_hash_stack(cpu, f.gpr[1]) as u64
                + percpu::on_hash_stack(cpu, percpu::sp()) as u64;
            if ev == Event::ExcEntry {
                record_at(ev, depth, f.trap as u32, f.dar, f.nip)
            } else {
                record_at(ev, depth, f.trap as u32, f.nip, 0)
            }
        }
        Event::Decrementer => {
            // SAFETY: the decrementer's frame, passed by its handler.
            let f = unsafe { &*(x as *const ExcFrame) };
            record_at(ev, depth, 0, f.nip, 0)
        }
        Event::HcallBegin | Event::HcallEnd => {
            let slot = &HCALL_OP[percpu::cpu_id()][(depth as usize).min(HCALL_DEPTHS - 1)];
            let op = if ev == Event::HcallBegin {
                slot.store(x, Relaxed);
                x
            } else {
                slot.load(Relaxed)
            };
            // The console's own output would bury everything else (and the dump prints).
            if op == hcall::H_PUT_TERM_CHAR {
                return;
            }
            if ev == Event::HcallBegin { record_at(ev, depth, op as u32, y, z) } else { record_at(ev, depth, op as u32, x, y) }
        }
        Event::Hcall => record_at(ev, depth, payload, x, y),
        Event::PteTake => record_at(ev, depth, x as u32, y, z),
        Event::PtePublish => record_at(ev, depth, x as u32, y, 0),
        Event::LockAcquire | Event::LockContended => {
            // SAFETY: lock trace points pass the lock's address (sync::ptlock).
            let h = unsafe { crate::sync::ptlock::LockHead::at(x) };
            // Acquire: we hold it now (state and site are ours). Contended: the holder's.
            record_at(ev, depth, h.state.load(Relaxed) as u32, x, h.site.load(Relaxed) as u64)
        }
        Event::LockRelease => record_at(ev, depth, 0, x, 0),
        Event::Vmalloc => record_at(ev, depth, payload, x, y),
        Event::Vfree => record_at(ev, depth, payload, x, 0),
        Event::HashOutcome | Event::Watchdog | Event::Mark => record_at(ev, depth, payload, x, y),
    }
}

/// Records `ev` now, if its group is on.
pub fn record(ev: Event, c: u32, a: u64, b: u64) {
    if on(ev) {
        record_at(ev, percpu::exception_depth(), c, a, b)
    }
}

pub fn mark(m: Mark, a: u64, b: u64) {
    record(Event::Mark, m as u32, a, b)
}

fn record_at(ev: Event, depth: u64, c: u32, a: u64, b: u64) {
    if !on(ev) {
        return;
    }
    write(&TRACE_RINGS[percpu::cpu_id()], ev, depth, c, a, b);
}

fn write(r: &Ring, ev: Event, depth: u64, c: u32, a: u64, b: u64) {
    let was = irq::save_disable();
    let tb = insn::mftb();
    let i = r.head.fetch_add(1, Relaxed);
    let s = &r.slots[i as usize % RING_LEN];
    s.tb.store(tb, Relaxed);
    s.a.store(a, Relaxed);
    s.b.store(b, Relaxed);
    s.w0.store(pack_w0(ev, depth, i, c), Release);
    irq::restore(was);
}

/// What a ring holds: the records from history position `from` on (or from the oldest one
/// still there), oldest first; the number overwritten before them; the number torn.
pub struct Contents {
    pub head: u64,
    pub first: u64,
    pub torn: u64,
}

/// Calls `f` with each record of `cpu`'s ring from position `from` on, oldest first.
pub fn for_each(cpu: usize, from: u64, mut f: impl FnMut(&Rec)) -> Contents {
    let r = &TRACE_RINGS[cpu];
    let head = r.head.load(Acquire);
    let first = head.saturating_sub(RING_LEN as u64).max(from.min(head));
    let mut torn = 0;
    for i in first..head {
        let s = &r.slots[i as usize % RING_LEN];
        let w0 = s.w0.load(Acquire);
        let rec = Rec::decode(i, s.tb.load(Relaxed), w0, s.a.load(Relaxed), s.b.load(Relaxed));
        // Written again meanwhile (a live reader): not the record read.
        match rec.filter(|_| s.w0.load(Acquire) == w0) {
            Some(rec) => f(&rec),
            None => torn += 1,
        }
    }
    Contents { head, first, torn }
}

/// Records of `cpu` from position `from` on (tests).
pub fn events(cpu: usize, from: u64) -> alloc::vec::Vec<Rec> {
    let mut v = alloc::vec::Vec::new();
    for_each(cpu, from, |r| v.push(*r));
    v
}

/// The next history position of `cpu`'s ring (tests take it before what they look at).
pub fn head(cpu: usize) -> u64 {
    TRACE_RINGS[cpu].head.load(Acquire)
}

/// Prints every CPU's ring (`reason`: exit, oops, deadlock, ...; `stuck`: the CPU a deadlock
/// report is about), once per run and only if `trace=` asked for tracing (tests that switch
/// groups on for themselves leave no dump behind). Call it with the other CPUs
/// stopped (`smp::stop_others`): their rings do not change under the dump then. Uses no heap
/// and no lock but the console's, so it works from an oops and from the deadlock report.
pub fn dump(reason: &str, stuck: Option<usize>) {
    if boot_groups().is_empty() || DUMPED.swap(true, AcqRel) {
        return;
    }
    FROZEN.store(true, Release);
    let ncpus = crate::smp::ncpus();
    crate::println!(
        "trace: dump begin: reason={} stuck={} dumper={} cpus={} tb_hz={} ring={} groups={} stopped={}",
        Word(reason), Cpu(stuck), percpu::cpu_id(), ncpus, boot::info().tb_freq, RING_LEN, GroupList(groups()),
        STOPPED.load(Relaxed) as u8
    );
    let mut syms = Syms::new();
    let mut total = 0;
    for cpu in 0..ncpus {
        let r = &TRACE_RINGS[cpu];
        let head = r.head.load(Acquire);
        let first = head.saturating_sub(RING_LEN as u64);
        let tb0 = (first..head).find_map(|i| {
            let s = &r.slots[i as usize % RING_LEN];
            Rec::decode(i, s.tb.load(Relaxed), s.w0.load(Acquire), 0, 0).map(|r| r.tb)
        });
        let valid = {
            let mut n = 0;
            for_each(cpu, 0, |_| n += 1);
            n
        };
        crate::println!("trace: cpu {}: {} events recorded, {} overwritten, {} torn, tb0 {:x}", cpu, head, first, head - first - valid, tb0.unwrap_or(0));
        let mut prev = tb0.unwrap_or(0);
        for_each(cpu, 0, |rec| {
            crate::println!("{}", Line { cpu, prev_tb: prev, rec });
            prev = rec.tb;
            syms.note(rec);
        });
        total += valid;
    }
    syms.print();
    crate::println!("trace: dump end: {} events", total);
}

/// `s` as one word (spaces become underscores), for the dump's header.
struct Word<'a>(&'a str);

impl core::fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        self.0.chars().try_for_each(|c| f.write_char(if c.is_whitespace() { '_' } else { c }))
    }
}

/// A CPU number, or `-` for none.
struct Cpu(Option<usize>);

impl core::fmt::Display for Cpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "-"),
        }
    }
}

/// The addresses in a dump that the kernel can name (call sites, locks) and the hypervisor
/// calls seen, printed once each after the rings (no heap: a fixed table).
struct Syms {
    sites: [u64; 64],
    nsites: usize,
    locks: [u64; 8],
    nlocks: usize,
    hcalls: [u64; 32],
    nhcalls: usize,
}

impl Syms {
    fn new() -> Syms {
        Syms { sites: [0; 64], nsites: 0, locks: [0; 8], nlocks: 0, hcalls: [0; 32], nhcalls: 0 }
    }

    fn add(v: u64, t: &mut [u64], n: &mut usize) {
        if v != 0 && !t[..*n].contains(&v) && *n < t.len() {
            t[*n] = v;
            *n += 1;
        }
    }

    fn note(&mut self, r: &Rec) {
        match r.ev {
            Event::LockAcquire | Event::LockContended => {
                Self::add(r.b, &mut self.sites, &mut self.nsites);
                Self::add(r.a, &mut self.locks, &mut self.nlocks);
            }
            Event::Watchdog => Self::add(r.b, &mut self.locks, &mut self.nlocks),
            Event::Hcall | Event::HcallBegin | Event::HcallEnd => Self::add(r.c as u64, &mut self.hcalls, &mut self.nhcalls),
            _ => {}
        }
    }

    fn print(&self) {
        let (ks, ke) = boot::kernel_range();
        for &s in &self.sites[..self.nsites] {
            // Only addresses inside the image can be a `Location` this kernel stored.
            if s >= ks && s + core::mem::size_of::<core::panic::Location>() as u64 <= ke && s % 8 == 0 {
                // SAFETY: lock events store `&'static Location` pointers (ptlock.rs), and the
                // check above keeps a stray value from being read outside the image.
                let l = unsafe { &*(s as *const core::panic::Location<'static>) };
                crate::println!("trace: site {:x} {}:{}", s, l.file(), l.line());
            }
        }
        for &l in &self.locks[..self.nlocks] {
            crate::println!("trace: lock {:x} {}", l, crate::sync::watchdog::describe_lock(l));
        }
        for &h in &self.hcalls[..self.nhcalls] {
            crate::println!("trace: hcall {:x} {}", h, hcall::name(h));
        }
    }
}
