//! The per-CPU rings, switching groups on and off, the traced 0x300 entry and the dump.
//!
//! Each CPU writes only its own ring. A record is reserved with one atomic add on the ring's
//! head (`ldarx`/`stdcx.`: an interrupt that records in between takes the next slot, and the
//! interrupted add retries), filled with interrupts masked (only a system reset or machine
//! check can cut in, and then the slot is recognised as torn by its sequence number), and
//! committed by storing its header word last. No lock, so a record can be written from any
//! context, including a CPU that deadlocked against itself and the system reset that stops it.

use super::event::{code_event, code_payload, pack_w0, Event, Groups, Mark, Outcome, Rec};
use super::site;
use crate::arch::ppc64::exception::{self, ExcFrame};
use crate::arch::ppc64::irq;
use crate::arch::ppc64::percpu::MAX_CPUS;
use crate::arch::ppc64::{hcall, insn, percpu};
use crate::hash::stats;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

/// Records per CPU (a power of two, and not a multiple of 2^16: see `event::pack_w0`).
pub const RING_LEN: usize = 4096;
const _: () = assert!(RING_LEN.is_power_of_two() && RING_LEN < 1 << 16);

#[repr(C)]
pub struct Slot {
    pub(super) tb: AtomicU64,
    pub(super) w0: AtomicU64,
    pub(super) a: AtomicU64,
    pub(super) b: AtomicU64,
}

#[repr(C, align(128))]
pub struct Ring {
    /// Records ever reserved on this CPU; the next one goes to `slots[head % RING_LEN]`.
    pub(super) head: AtomicU64,
    pub(super) slots: [Slot; RING_LEN],
}

impl Ring {
    const fn new() -> Ring {
        // A const, so that each use below is a fresh atomic (the array-init idiom).
        #[allow(clippy::declare_interior_mutable_const)]
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
pub(super) static GROUPS: AtomicU32 = AtomicU32::new(0);
/// The groups `trace=` asked for (tests put them back when they are done).
pub(super) static BOOT_GROUPS: AtomicU32 = AtomicU32::new(0);
/// Set by `freeze` (`trace.stop=`) and by the dump: nothing more is recorded.
pub(super) static FROZEN: AtomicBool = AtomicBool::new(false);
pub(super) static DUMPED: AtomicBool = AtomicBool::new(false);
/// The design entry the traced 0x300 entry calls (`hash_fault_route`).
static HASH_INNER: AtomicU64 = AtomicU64::new(0);
/// The hcall each CPU has in flight, by exception depth: the end of a call knows only its
/// status, and an interrupt may make calls of its own between a call's begin and end (H_CEDE
/// returns with EE on).
const HCALL_DEPTHS: usize = 16;
static HCALL_OP: [[AtomicU64; HCALL_DEPTHS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; HCALL_DEPTHS] }; MAX_CPUS];

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

/// Recording was stopped by `freeze` (not by the dump).
pub(super) static STOPPED: AtomicBool = AtomicBool::new(false);

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
    if groups().intersects(Groups::EXC | Groups::HASH) {
        traced
    } else {
        target
    }
}

/// The design entry a call to `target` ends up in (`target` itself unless it is the traced
/// entry).
pub fn hash_fault_design_entry(target: u64) -> u64 {
    if target == site::traced_hash_entry() {
        HASH_INNER.load(Relaxed)
    } else {
        target
    }
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

/// Called by `trace_stub_common` (trace::site) from a patched trace point: the stub calls
/// this symbol, so the trace points (platform level) need not import the rings.
#[no_mangle]
extern "C" fn trace_from_site(code: u64, x: u64, y: u64, z: u64) {
    if let Some(ev) = code_event(code) {
        from_site(ev, code_payload(code), x, y, z);
    }
}

/// A trace point fired: turn the registers it saved into a record.
fn from_site(ev: Event, payload: u32, x: u64, y: u64, z: u64) {
    let depth = percpu::exception_depth();
    match ev {
        Event::ExcEntry | Event::ExcExit => {
            // SAFETY: exception trace points pass their frame (exception_entry,
            // hash_fault_slow_path), live while they run.
            let f = unsafe { &*(x as *const ExcFrame) };
            // A frame that interrupted the hash-fault handler (a system reset stopping a CPU
            // stuck in it) lies on the exception stack, one level inside that handler.
            let cpu = percpu::cpu_id();
            let depth = percpu::this().depth.load(Relaxed)
                + percpu::on_hash_stack(cpu, f.gpr[1]) as u64
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
            if ev == Event::HcallBegin {
                record_at(ev, depth, op as u32, y, z)
            } else {
                record_at(ev, depth, op as u32, x, y)
            }
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
