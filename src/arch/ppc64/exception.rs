//! Exception frames, dispatch and the oops report. boot/vectors.S saves the register state
//! on the per-CPU exception stack and calls `exception_entry` with translation on and EE off
//! (or, for a hash fault that needs more than an HPTE, `hash_fault_slow_path` on the hash
//! stack); whatever the handler leaves in the frame is restored by `rfid`.

use super::percpu;
use super::reg::{self, Dsisr, IsiSrr1, Msr, ProgramSrr1};
use crate::hash::reason::FaultReason;
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
const _: () = assert!(FRAME_TOTAL % 16 == 0);

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

/// This CPU's hash-fault frame (boot/vectors.S `hash_fault_entry` fills it: the volatile
/// registers, CR, LR, CTR, XER, SRR0/1 and DAR of the fault being handled, or of the last one).
pub fn hash_frame() -> &'static ExcFrame {
    let f = percpu::this().hash_frame.load(Relaxed) + HDR_SIZE as u64;
    // SAFETY: the fixed frame at the top of this CPU's hash stack, set up before the CPU takes
    // faults; it is only written by this CPU's hash-fault entry.
    unsafe { &*(f as *const ExcFrame) }
}

/// What a fault handler concluded.
pub enum Handled {
    /// Translation installed (or retry): re-execute the access.
    Done,
    /// The access is not allowed / the address is not mapped: fixup or oops.
    Bad(FaultReason),
}

/// The reason for the pending oops, between `exception_entry` asking for the slow path and
/// `exception_slow` (only this CPU touches its slot, with interrupts off).
static OOPS_WHY: [spin::Mutex<Option<FaultReason>>; percpu::MAX_CPUS] = [const { spin::Mutex::new(None) }; percpu::MAX_CPUS];

/// The reason for the last fault a probe absorbed, one slot per CPU.
struct ProbeWhy(core::cell::UnsafeCell<FaultReason>);

// SAFETY: each CPU touches only its own slot, and only with interrupts off: `try_fixup` runs
// in exception context, and `take_probe_fault` inside the probe's masked section; so no two
// accesses to one slot ever overlap.
unsafe impl Sync for ProbeWhy {}

static PROBE_WHY: [ProbeWhy; percpu::MAX_CPUS] =
    [const { ProbeWhy(core::cell::UnsafeCell::new(FaultReason::Other("(no reason recorded)"))) }; percpu::MAX_CPUS];

/// Called by vectors.S with r14-r31 not yet saved in the frame. Returns 0 to return from the
/// exception, 1 to have the assembly save them and call `exception_slow` (the oops).
#[no_mangle]
extern "C" fn exception_entry(f: &mut ExcFrame) -> u64 {
    let p = percpu::this();
    // Plain load/store: only this CPU touches its own depth/last_frame, and nested exceptions
    // restore what they change before returning.
    let prev = p.last_frame.load(Relaxed);
    f.prev_frame = prev;
    p.last_frame.store(f as *mut ExcFrame as u64, Relaxed);
    p.depth.store(p.depth.load(Relaxed) + 1, Relaxed);
    crate::trace_point!(crate::trace::code(crate::trace::Event::ExcEntry, 0), f as *mut ExcFrame);
    let r = match dispatch(f) {
        Some(why) => {
            *OOPS_WHY[p.cpu.load(Relaxed) as usize].lock() = Some(why);
            1
        }
        None => 0,
    };
    if r == 0 {
        crate::trace_point!(crate::trace::code(crate::trace::Event::ExcExit, 0), f as *mut ExcFrame);
    }
    p.depth.store(p.depth.load(Relaxed) - 1, Relaxed);
    p.last_frame.store(prev, Relaxed);
    r
}

/// A hash fault the fast path could not resolve (a denial, an address without page tables,
/// a DSISR that is not a hash miss): the frame on the hash stack is complete now. Returns when
/// the access may be re-executed (a fixup, a user-mode fault handed back to the kernel, or the
/// page became valid meanwhile); otherwise reports and stops.
#[no_mangle]
extern "C" fn hash_fault_slow_path(f: &mut ExcFrame, why: u64) {
    let why = crate::hash::fault::slow_reason(FaultReason::decode(why), f.dar);
    if !recover(f, why) {
        oops(f, &why)
    }
    crate::trace_point!(crate::trace::code(crate::trace::Event::ExcExit, 0), f as *mut ExcFrame);
}

/// The slow path: the frame now holds every register. Never returns.
#[no_mangle]
extern "C" fn exception_slow(f: &mut ExcFrame) -> ! {
    let why = OOPS_WHY[percpu::cpu_id()].lock().take().unwrap_or(FaultReason::Other("(no reason recorded)"));
    percpu::this().last_frame.store(f as *mut ExcFrame as u64, Relaxed);
    oops(f, &why)
}

/// Handles the exception; Some(reason) means it cannot be handled: oops.
#[inline(always)]
fn dispatch(f: &mut ExcFrame) -> Option<FaultReason> {
    // MSR[RI] = 0 in the interrupted context: it was exception entry or exit code, or the
    // hash-fault handler, whose state this exception may have destroyed. Only the system
    // reset that stops the machine is expected there.
    if f.trap == 0x700 && f.nip == &raw const hash_nested_trap as u64 {
        return Some(FaultReason::Other(
            "a hash fault inside the hash-fault handler or exception entry/exit (MSR[RI]=0): unrecoverable",
        ));
    }
    if !f.msr().contains(Msr::RI) && !(f.trap == 0x100 && crate::smp::stopping()) {
        return Some(FaultReason::Other("unrecoverable exception (MSR[RI]=0: it interrupted exception entry/exit or the hash-fault handler)"));
    }
    let outcome = match f.trap {
        0x380 => crate::mm::slb::handle_miss(f, f.dar, false),
        0x480 => crate::mm::slb::handle_miss(f, f.nip, true),
        0x300 | 0x400 => crate::hash::fault::handle(f),
        0x900 => {
            crate::arch::ppc64::timer::decrementer_interrupt(f);
            Handled::Done
        }
        0x500 => crate::arch::ppc64::timer::external_interrupt(f),
        0xc00 => crate::ktest::user::syscall(f),
        // powernv: a parked CPU woken from its nap (a doorbell that was pending, the NMI, the
        // decrementer) stays parked: back to its nap loop.
        0x100 if crate::smp::parked_here() && super::reg::wake::reason(f.msr).is_some() => Handled::Done,
        // powernv: the end of a nap (an idle CPU's wake-up), unless the machine is stopping.
        0x100 if !crate::smp::stopping() && super::reg::wake::reason(f.msr).is_some() => {
            if super::reg::wake::reason(f.msr) == Some(super::reg::wake::DECREMENTER) {
                crate::arch::ppc64::timer::decrementer_interrupt(f);
            }
            Handled::Done
        }
        // A doorbell that arrived while its CPU was not napping, with interrupts on: the
        // wake-up it carried is in the work slot already.
        0xe80 if super::platform::powernv() => Handled::Done,
        // powernv's NMI reaches the CPU that asked for it too: it just goes on.
        0x100 if crate::smp::is_stopper() && f.msr().contains(Msr::RI) => {
            crate::smp::own_nmi_arrived();
            Handled::Done
        }
        0x100 if crate::smp::stopping() && f.msr().contains(Msr::RI) && super::platform::powernv() && f.nip >> 60 != 0xc => {
            crate::smp::system_reset_in_firmware(f)
        }
        0x100 if crate::smp::stopping() => crate::smp::system_reset(f),
        _ => Handled::Bad(FaultReason::Other("unexpected exception")),
    };
    match outcome {
        Handled::Bad(why) if !recover(f, why) => Some(why),
        _ => None,
    }
}

/// A fault the kernel will not resolve may still be expected: a probe's fixup, or the end of
/// a test's problem-state run. Rewrites the frame to resume there.
fn recover(f: &mut ExcFrame, why: FaultReason) -> bool {
    try_fixup(f, why) || crate::ktest::user::user_fault(f)
}

/// A fault on a probe instruction resumes at `probe_fixup` (returns 1), and a refused
/// instruction fetch at the address `probe_exec` branched to resumes at `probe_exec_fixup`;
/// either way the fault and the kernel's reason are recorded.
fn try_fixup(f: &mut ExcFrame, why: FaultReason) -> bool {
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
    let was = crate::sync::irq::save_disable();
    let r = f();
    crate::sync::irq::restore(was);
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
    if rc == 0 { Ok(v) } else { Err(take_probe_fault()) }
}

fn probe_write_raw(addr: u64, val: u64) -> Result<(), ProbeFault> {
    let rc: u64;
    // SAFETY: as probe_read; the caller owns whatever `addr` refers to if the store lands.
    unsafe {
        core::arch::asm!("bl probe_store64", inlateout("r3") addr => rc, in("r4") val,
                         out("lr") _, options(nostack))
    };
    if rc == 0 { Ok(()) } else { Err(take_probe_fault()) }
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
    if rc == 0 { Ok(()) } else { Err(take_probe_fault()) }
}

/// Print everything a developer needs and fail the run.
pub fn oops(f: &ExcFrame, why: &dyn core::fmt::Display) -> ! {
    crate::console::emergency();
    crate::smp::stop_others();
    let cpu = percpu::cpu_id();
    crate::console::with_console(|w| {
        let _ = writeln!(w, "------------[ oops ]------------");
        let _ = writeln!(w, "Oops: {} ({:#x}) on CPU {}: {}", reg::vector_name(f.trap), f.trap, cpu, why);
        let _ = writeln!(w, "NIP: {:#018x}  LR: {:#018x}  CTR: {:#018x}", f.nip, f.lr, f.ctr);
        let _ = writeln!(w, "MSR: {}", f.msr());
        let _ = writeln!(w, "CR:  {:#010x}  XER: {:#010x}", f.cr, f.xer);
        match f.trap {
            0x300 | 0x380 | 0x600 => {
                let _ = writeln!(w, "DAR: {:#018x}  DSISR: {}", f.dar, Dsisr::from_bits_retain(f.dsisr as u32));
            }
            0x400 | 0x480 => {
                let _ = writeln!(w, "fetch address {:#018x}  SRR1 reason: {}", f.nip, IsiSrr1::from_bits_truncate(f.msr));
            }
            0x700 => {
                let _ = writeln!(w, "program check reason: {}", ProgramSrr1::from_bits_truncate(f.msr));
                if f.nip == &raw const hash_nested_trap as u64 {
                    let h = hash_frame();
                    let _ = writeln!(w, "the hash fault (this CPU's hash frame): NIP {:#018x}  DAR {:#018x}", h.nip, h.dar);
                    let _ = writeln!(w, "its SRR1: {}", Msr::from_bits_retain(h.msr));
                }
            }
            _ => {
                let _ = writeln!(w, "DAR: {:#018x}  DSISR: {:#010x}", f.dar, f.dsisr);
            }
        }
        let addr = if f.trap == 0x400 || f.trap == 0x480 { f.nip } else { f.dar };
        if matches!(f.trap, 0x300 | 0x380 | 0x400 | 0x480) && addr < 0x10000 {
            let _ = writeln!(w, "address: {:#x}: NULL pointer dereference", addr);
        } else if let Some(r) = crate::mm::describe_address(addr) {
            let _ = writeln!(w, "address: {}", r);
        }
        for row in 0..8 {
            let _ = write!(w, "GPR{:02}:", row * 4);
            for c in 0..4 {
                let _ = write!(w, " {:016x}", f.gpr[row * 4 + c]);
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w, "Call trace:");
        backtrace_from(w, f.gpr[1], Some(f.nip));
        let _ = writeln!(w, "--------------------------------");
    });
    crate::exit::exit_failure("oops");
}

/// Walks the ELFv2 back chain from stack pointer `sp`. A return address into `exc_return`
/// marks an exception frame: the walk prints the interrupted NIP and continues there.
pub fn backtrace_from(w: &mut dyn Write, mut sp: u64, first: Option<u64>) {
    // The exception entries call their Rust handler with `bl`; its prologue saves the return
    // address in the LR slot of the exception header, so these mark exception frames.
    let markers = [
        &raw const exc_return as u64,
        &raw const hash_fault_call as u64 + 4,
        &raw const hash_fault_slow_ret as u64,
    ];
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
            let _ = writeln!(w, "  --- {} ({:#x}) at NIP {:#018x} LR {:#018x} DAR {:#018x} ---",
                             reg::vector_name(ef.trap), ef.trap, ef.nip, ef.lr, ef.dar);
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
    sp & 7 == 0 && sp >= ks && sp + 32 <= ke && crate::mm::guard_page_of(sp).is_none() && crate::mm::guard_page_of(sp + 31).is_none()
}

/// Called (from assembly) when the exception stack would overflow.
#[no_mangle]
extern "C" fn exception_stack_overflow(nip: u64, trap: u64) -> ! {
    crate::console::emergency();
    crate::console::early_puts("FATAL: exception stack overflow\n");
    crate::println!("exception stack overflow on CPU {}: vector {:#x} at NIP {:#x}", percpu::cpu_id(), trap, nip);
    crate::exit::exit_failure("exception stack overflow");
}
