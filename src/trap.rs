//! Trap dispatch: the Rust side of every exception the vectors do not finish themselves.
//! boot/vectors.S saves the register state on the per-CPU exception stack and calls
//! `exception_entry` with translation on and EE off (or, for a hash fault the 0x300 fast path
//! could not resolve, `hash_fault_slow_path` on the hash stack). These names are the seam
//! between the platform and the kernel: the vectors call them by symbol, and this file, which
//! sits above the handlers, is the one place that knows which handler a vector goes to
//! (as Linux's `do_hash_fault` is declared for the vectors and defined by the mm code).
//!
//! The hot paths are not here: the 0x300 fast path and the 0x380 segment miss never leave
//! their assembly and the hash-fault design they call, so nothing here costs them an
//! instruction.

use crate::arch::ppc64::exception::{self, ExcFrame, Handled};
use crate::arch::ppc64::reg::{self, Msr};
use crate::arch::ppc64::{percpu, platform, timer};
use crate::hash::reason::FaultReason;
use crate::mm::slbe::{region_of, Region};
use core::sync::atomic::{
    AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The test harness's problem-state hooks (`run::user`): the system call that ends a
/// user-mode run and the fault that ends it. Registered slots, not calls into the tests, so
/// the trap path does not depend on test code; empty in a build without the tests.
static USER_SYSCALL: AtomicUsize = AtomicUsize::new(0);
static USER_FAULT: AtomicUsize = AtomicUsize::new(0);

/// Registers the user-mode hooks (the test harness, once, at start-up).
pub fn set_user_hooks(syscall: fn(&mut ExcFrame) -> Handled, fault: fn(&mut ExcFrame) -> bool) {
    USER_SYSCALL.store(syscall as usize, Release);
    USER_FAULT.store(fault as usize, Release);
}

fn user_syscall(f: &mut ExcFrame) -> Handled {
    match USER_SYSCALL.load(Acquire) {
        0 => Handled::Bad(FaultReason::Other("system call with no user-mode harness registered")),
        h => {
            // SAFETY: USER_SYSCALL only ever holds a `fn(&mut ExcFrame) -> Handled`.
            let h: fn(&mut ExcFrame) -> Handled =
                unsafe { core::mem::transmute::<usize, fn(&mut ExcFrame) -> Handled>(h) };
            h(f)
        }
    }
}

fn user_fault(f: &mut ExcFrame) -> bool {
    match USER_FAULT.load(Acquire) {
        0 => false,
        h => {
            // SAFETY: USER_FAULT only ever holds a `fn(&mut ExcFrame) -> bool`.
            let h: fn(&mut ExcFrame) -> bool = unsafe { core::mem::transmute::<usize, fn(&mut ExcFrame) -> bool>(h) };
            h(f)
        }
    }
}

/// The reason for the pending oops, between `exception_entry` asking for the slow path and
/// `exception_slow` (only this CPU touches its slot, with interrupts off).
static OOPS_WHY: [spin::Mutex<Option<FaultReason>>; percpu::MAX_CPUS] =
    [const { spin::Mutex::new(None) }; percpu::MAX_CPUS];

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
    crate::trace_point!(crate::trace::event::code(crate::trace::event::Event::ExcEntry, 0), f as *mut ExcFrame);
    let r = match dispatch(f) {
        Some(why) => {
            *OOPS_WHY[p.cpu.load(Relaxed) as usize].lock() = Some(why);
            1
        }
        None => 0,
    };
    if r == 0 {
        crate::trace_point!(crate::trace::event::code(crate::trace::event::Event::ExcExit, 0), f as *mut ExcFrame);
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
    crate::trace_point!(crate::trace::event::code(crate::trace::event::Event::ExcExit, 0), f as *mut ExcFrame);
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
    if f.trap == 0x700 && exception::is_hash_nested_trap(f.nip) {
        return Some(FaultReason::Other(
            "a hash fault inside the hash-fault handler or exception entry/exit (MSR[RI]=0): unrecoverable",
        ));
    }
    let stopping_reset = f.trap == 0x100 && crate::smp::stopping();
    if !f.msr().contains(Msr::RI) && !stopping_reset {
        return Some(FaultReason::Other(
            "unrecoverable exception (MSR[RI]=0: it interrupted exception entry/exit or the hash-fault handler)",
        ));
    }
    let outcome = match f.trap {
        0x380 => crate::mm::slb::handle_miss(f, f.dar, false),
        0x480 => crate::mm::slb::handle_miss(f, f.nip, true),
        0x300 | 0x400 => crate::hash::fault::handle(f),
        0x900 => {
            timer::decrementer_interrupt(f);
            Handled::Done
        }
        0x500 => timer::external_interrupt(f),
        0xc00 => user_syscall(f),
        // powernv: a parked CPU woken from its nap (a doorbell that was pending, the NMI, the
        // decrementer) stays parked: back to its nap loop.
        0x100 if crate::smp::parked_here() && reg::wake::reason(f.msr).is_some() => Handled::Done,
        // powernv: the end of a nap (an idle CPU's wake-up), unless the machine is stopping.
        0x100 if !crate::smp::stopping() && reg::wake::reason(f.msr).is_some() => {
            if reg::wake::reason(f.msr) == Some(reg::wake::DECREMENTER) {
                timer::decrementer_interrupt(f);
            }
            Handled::Done
        }
        // A doorbell that arrived while its CPU was not napping, with interrupts on: the
        // wake-up it carried is in the work slot already.
        0xe80 if platform::powernv() => Handled::Done,
        // powernv's NMI reaches the CPU that asked for it too: it just goes on.
        0x100 if crate::smp::is_stopper() && f.msr().contains(Msr::RI) => {
            crate::smp::own_nmi_arrived();
            Handled::Done
        }
        0x100
            if crate::smp::stopping()
                && f.msr().contains(Msr::RI)
                && platform::powernv()
                && region_of(f.nip) != Some(Region::Linear) =>
        {
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
    exception::try_fixup(f, why) || user_fault(f)
}

/// The oops for `f`: the report, with what the memory layer knows about the faulting address.
fn oops(f: &ExcFrame, why: &dyn core::fmt::Display) -> ! {
    let addr = if f.trap == 0x400 || f.trap == 0x480 { f.nip } else { f.dar };
    let note = if matches!(f.trap, 0x300 | 0x380 | 0x400 | 0x480) && addr < 0x10000 {
        Some(alloc::format!("{addr:#x}: NULL pointer dereference"))
    } else {
        crate::mm::describe_address(addr)
    };
    crate::report::oops(f, why, note.as_deref())
}
