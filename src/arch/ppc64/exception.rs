//! Exception frames as boot/vectors.S saves them, the probes (loads, stores and fetches whose
//! fault is turned into an error), and the back-chain walk. The dispatch the vectors call
//! (`exception_entry`, `hash_fault_slow_path`) lives above the handlers, in `crate::trap`, and
//! the reports in `crate::report`; whatever the handler leaves in the frame is restored by
//! `rfid`.

use super::percpu;
use super::reg::{self, Msr};
use crate::hash::reason::FaultReason;
pub use crate::hash::reason::Handled;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;

/// The saved state. Handlers may change `nip`, `msr` and GPRs; the exit path restores them.
#[repr(C)]
#[derive(Clone)]
pub struct ExcFrame {
    pub gpr: [u64; 32],
    pub nip: u64,
    pub msr: u64,
    pub ctr: u64,
    pub lr: u64,
    pub xer: u64,
    pub cr: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub trap: u64,
    /// The innermost generic exception frame this one interrupted (0 = none), kept so a report
    /// about the interrupted state can still find it.
    pub prev_frame: u64,
}

/// ABI stack-frame header below the frame (back chain, CR, LR save, ... 112 bytes keep the
/// ELFv2 minimum plus a parameter save area for callees that want one).
pub const HDR_SIZE: usize = 112;
pub const FRAME_TOTAL: usize = HDR_SIZE + core::mem::size_of::<ExcFrame>();
const _: () = assert!(FRAME_TOTAL.is_multiple_of(16));

impl ExcFrame {
    pub fn msr(&self) -> Msr {
        Msr::from_bits_retain(self.msr)
    }
    pub fn from_user(&self) -> bool {
        self.msr().contains(Msr::PR)
    }
}

extern "C" {
    static probe_load64_insn: u8;
    static probe_store64_insn: u8;
    static probe_fixup: u8;
    static probe_exec_ret: u8;
    static probe_exec_fixup: u8;
    static exc_return: u8;
    static hash_fault_call: u8;
    static hash_fault_slow_ret: u8;
    static hash_nested_trap: u8;
}

/// Whether `nip` is the trap that stops a hash fault taken inside the hash-fault handler or
/// exception entry/exit (boot/vectors.S `hash_nested_trap`).
pub fn is_hash_nested_trap(nip: u64) -> bool {
    nip == &raw const hash_nested_trap as u64
}

/// This CPU's hash-fault frame (boot/vectors.S `hash_fault_entry` fills it: the volatile
/// registers, CR, LR, CTR, XER, SRR0/1 and DAR of the fault being handled, or of the last one).
pub fn hash_frame() -> &'static ExcFrame {
    let f = percpu::this().hash_frame.load(Relaxed) + HDR_SIZE as u64;
    // SAFETY: the fixed frame at the top of this CPU's hash stack, set up before the CPU takes
    // faults; it is only written by this CPU's hash-fault entry.
    unsafe { &*(f as *const ExcFrame) }
}

/// The reason for the last fault a probe absorbed, one slot per CPU.
struct ProbeWhy(core::cell::UnsafeCell<FaultReason>);

// SAFETY: each CPU touches only its own slot, and only with interrupts off: `try_fixup` runs
// in exception context, and `take_probe_fault` inside the probe's masked section; so no two
// accesses to one slot ever overlap.
unsafe impl Sync for ProbeWhy {}

static PROBE_WHY: [ProbeWhy; percpu::MAX_CPUS] =
    [const { ProbeWhy(core::cell::UnsafeCell::new(FaultReason::Other("(no reason recorded)"))) }; percpu::MAX_CPUS];

/// A fault on a probe instruction resumes at `probe_fixup` (returns 1), and a refused
/// instruction fetch at the address `probe_exec` branched to resumes at `probe_exec_fixup`;
/// either way the fault and the kernel's reason are recorded.
pub fn try_fixup(f: &mut ExcFrame, why: FaultReason) -> bool {
    // SAFETY: addresses of assembly labels only.
    let (l, s) = unsafe { (&probe_load64_insn as *const u8 as u64, &probe_store64_insn as *const u8 as u64) };
    let resume = if f.nip == l || f.nip == s {
        &raw const probe_fixup as u64
    } else if f.trap == 0x400 && f.lr == &raw const probe_exec_ret as u64 && f.nip == f.ctr {
        // probe_exec's `bctrl`: LR is its return address, CTR the target, and the fetch of
        // the target's first instruction faulted (so the called code ran nothing).
        &raw const probe_exec_fixup as u64
    } else {
        return false;
    };
    let p = percpu::this();
    p.probe_fault[0].store(f.trap, Relaxed);
    p.probe_fault[1].store(f.dar, Relaxed);
    p.probe_fault[2].store(f.dsisr, Relaxed);
    p.probe_fault[3].store(1, Relaxed);
    p.probe_fault[4].store(f.msr, Relaxed);
    // SAFETY: this CPU's slot, interrupts off (see ProbeWhy).
    unsafe { *PROBE_WHY[p.cpu.load(Relaxed) as usize].0.get() = why };
    f.nip = resume;
    true
}

/// The innermost exception frame of CPU `cpu` whose code was running with stack pointer `sp`:
/// its hash frame if `sp` is on its hash stack (a hash fault in progress), else the innermost
/// generic frame `generic` (0 = none).
pub fn innermost_frame(cpu: usize, sp: u64, generic: u64) -> Option<&'static ExcFrame> {
    let p = percpu::paca(cpu);
    let f = if percpu::on_hash_stack(cpu, sp) { p.hash_frame.load(Relaxed) + HDR_SIZE as u64 } else { generic };
    // SAFETY: both are frames of that CPU on its bolted stacks; the hash frame is a fixed
    // location that always holds a (possibly old) frame; a generic last_frame stays valid
    // while that exception is in progress, which the callers (reports about a stopped or
    // spinning CPU) ensure.
    (f != 0).then(|| unsafe { &*(f as *const ExcFrame) })
}

/// Details of the last fault a probe absorbed on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeFault {
    pub trap: u64,
    pub dar: u64,
    pub dsisr: u64,
    /// Why the kernel did not resolve the fault (what an oops would have said).
    pub reason: FaultReason,
    /// SRR1 of the fault (for 0x400: the instruction-storage cause bits).
    pub srr1: u64,
}

fn take_probe_fault() -> ProbeFault {
    let p = percpu::this();
    p.probe_fault[3].store(0, Relaxed);
    ProbeFault {
        trap: p.probe_fault[0].load(Relaxed),
        dar: p.probe_fault[1].load(Relaxed),
        dsisr: p.probe_fault[2].load(Relaxed),
        // SAFETY: this CPU's slot, inside the probe's masked section (see ProbeWhy).
        reason: unsafe { *PROBE_WHY[p.cpu.load(Relaxed) as usize].0.get() },
        srr1: p.probe_fault[4].load(Relaxed),
    }
}

/// Loads 8 bytes from `addr`, turning a fault the kernel cannot resolve into an error instead
/// of an oops (tests and deliberate-fault paths use it).
pub fn probe_read(addr: u64) -> Result<u64, ProbeFault> {
    masked(|| probe_read_raw(addr))
}

pub fn probe_write(addr: u64, val: u64) -> Result<(), ProbeFault> {
    masked(|| probe_write_raw(addr, val))
}

/// Runs a probe with interrupts masked: the fault record is per CPU, and an interrupt handler
/// whose own probe faulted between this probe's fault and its reading of the record would
/// leave it the handler's fault (the stress's decrementer handlers probe too).
fn masked<R>(f: impl FnOnce() -> R) -> R {
    let was = crate::arch::ppc64::irq::save_disable();
    let r = f();
    crate::arch::ppc64::irq::restore(was);
    r
}

fn probe_read_raw(addr: u64) -> Result<u64, ProbeFault> {
    let (rc, v): (u64, u64);
    // SAFETY: probe_load64 is a leaf that reads r3 and returns r3/r4; a fault on its load is
    // fixed up by exception_entry.
    unsafe {
        core::arch::asm!("bl probe_load64", inlateout("r3") addr => rc, lateout("r4") v,
                         out("lr") _, options(nostack))
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(take_probe_fault())
    }
}

fn probe_write_raw(addr: u64, val: u64) -> Result<(), ProbeFault> {
    let rc: u64;
    // SAFETY: as probe_read; the caller owns whatever `addr` refers to if the store lands.
    unsafe {
        core::arch::asm!("bl probe_store64", inlateout("r3") addr => rc, in("r4") val,
                         out("lr") _, options(nostack))
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(take_probe_fault())
    }
}

/// Branches to `addr` (`bctrl`) and returns Ok once the code there returns, or the fault if
/// the kernel refuses to fetch its first instruction (tests of the 0x400 path: a refused
/// fetch must come back as an error, not oops, and above all not re-fault forever).
pub fn probe_exec(addr: u64) -> Result<(), ProbeFault> {
    masked(|| probe_exec_raw(addr))
}

fn probe_exec_raw(addr: u64) -> Result<(), ProbeFault> {
    let rc: u64;
    // SAFETY: probe_exec saves LR, calls `addr` with the ELFv2 convention and returns r3; the
    // callers' code at `addr` is a leaf that follows the ABI (a bare `blr` in the tests), so
    // it may clobber what the ELFv2 ABI lets a callee clobber, all declared (no FP or vector
    // state: the target is soft-float, and clobber_abi would name FP registers it cannot use).
    unsafe {
        core::arch::asm!("bl probe_exec", inlateout("r3") addr => rc,
                         out("r0") _, out("r4") _, out("r5") _, out("r6") _, out("r7") _, out("r8") _,
                         out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                         out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
                         out("ctr") _, out("lr") _, out("xer") _)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(take_probe_fault())
    }
}

/// Walks the ELFv2 back chain from stack pointer `sp`. A return address into `exc_return`
/// marks an exception frame: the walk prints the interrupted NIP and continues there.
pub fn backtrace_from(w: &mut dyn Write, mut sp: u64, first: Option<u64>) {
    // The exception entries call their Rust handler with `bl`; its prologue saves the return
    // address in the LR slot of the exception header, so these mark exception frames.
    let markers =
        [&raw const exc_return as u64, &raw const hash_fault_call as u64 + 4, &raw const hash_fault_slow_ret as u64];
    if let Some(pc) = first {
        let _ = writeln!(w, "  [{:#018x}]", pc);
    }
    // The chain may jump between stacks only through an exception header (interrupted code on
    // another stack); otherwise it must move up.
    let mut crossing = false;
    for _ in 0..32 {
        if !stack_addr_ok(sp) {
            break;
        }
        // SAFETY: stack_addr_ok checked that sp lies in a kernel stack in the bolted linear
        // mapping, so the back-chain word is readable without faulting.
        let next = unsafe { *(sp as *const u64) };
        if next == 0 || !stack_addr_ok(next) || (next <= sp && !crossing) {
            break;
        }
        crossing = false;
        // SAFETY: as above for `next`.
        let lr = unsafe { *((next + 16) as *const u64) };
        if lr == 0 {
            break;
        }
        if markers.contains(&lr) {
            // SAFETY: the exception header at `next` is followed by the saved frame.
            let ef = unsafe { &*((next + HDR_SIZE as u64) as *const ExcFrame) };
            let _ = writeln!(
                w,
                "  --- {} ({:#x}) at NIP {:#018x} LR {:#018x} DAR {:#018x} ---",
                reg::vector_name(ef.trap),
                ef.trap,
                ef.nip,
                ef.lr,
                ef.dar
            );
            let _ = writeln!(w, "  [{:#018x}]", ef.nip);
            sp = next;
            crossing = true;
            continue;
        }
        let _ = writeln!(w, "  [{:#018x}]", lr);
        sp = next;
    }
}

fn stack_addr_ok(sp: u64) -> bool {
    // Every kernel stack (boot, thread, exception, hash) is a static in the image; the guard
    // pages between them are unmapped, and a fault while reporting would bury the report.
    let (ks, ke) = super::boot::kernel_range();
    sp & 7 == 0
        && sp >= ks
        && sp + 32 <= ke
        && percpu::guard_page_of(sp).is_none()
        && percpu::guard_page_of(sp + 31).is_none()
}
