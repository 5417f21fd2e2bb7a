//! The fatal reports: oops, panic, deadlock (the watchdog's and the lock self-check's) and
//! exception-stack overflow. One writer: each report silences the UART (the emergency
//! console), stops the other CPUs, prints its body under the console lock with the shared
//! pieces below (register block, call trace), and ends the run through `exit::exit_failure`,
//! which dumps the trace rings and prints the runner's sentinel.
//!
//! It sits below the memory layer: what an address is (`mm::describe_address`) is passed in by
//! the caller that knows (the trap dispatch), so a report works whatever state mm is in.

use crate::arch::ppc64::exception::{self, ExcFrame};
use crate::arch::ppc64::percpu;
use crate::arch::ppc64::reg::{self, Dsisr, IsiSrr1, Msr, ProgramSrr1};
use core::fmt::{Display, Write};

/// Runs `body` as a fatal report about reason `reason`, then fails the run. Never returns.
pub fn fatal(reason: &str, body: impl FnOnce(&mut dyn Write)) -> ! {
    crate::console::emergency();
    crate::smp::stop_others();
    crate::console::with_console(|w| body(w));
    crate::exit::exit_failure(reason)
}

/// The saved registers of `f`, with the vector-specific lines (DAR/DSISR, the fetch address
/// and its SRR1 reason, the program-check reason and the hash frame of a nested hash fault).
pub fn registers(w: &mut dyn Write, f: &ExcFrame) {
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
            if exception::is_hash_nested_trap(f.nip) {
                let h = exception::hash_frame();
                let _ = writeln!(w, "the hash fault (this CPU's hash frame): NIP {:#018x}  DAR {:#018x}", h.nip, h.dar);
                let _ = writeln!(w, "its SRR1: {}", Msr::from_bits_retain(h.msr));
            }
        }
        _ => {
            let _ = writeln!(w, "DAR: {:#018x}  DSISR: {:#010x}", f.dar, f.dsisr);
        }
    }
}

fn gprs(w: &mut dyn Write, f: &ExcFrame) {
    for row in 0..8 {
        let _ = write!(w, "GPR{:02}:", row * 4);
        for c in 0..4 {
            let _ = write!(w, " {:016x}", f.gpr[row * 4 + c]);
        }
        let _ = writeln!(w);
    }
}

/// "Call trace:" and the back chain from `sp` (`first`: the innermost PC, if known).
pub fn call_trace(w: &mut dyn Write, sp: u64, first: Option<u64>) {
    let _ = writeln!(w, "Call trace:");
    exception::backtrace_from(w, sp, first);
}

/// An exception the kernel cannot handle. `address`: what the faulting address is, if the
/// caller knows (a NULL dereference, a guard page, a vmalloc area, ...).
pub fn oops(f: &ExcFrame, why: &dyn Display, address: Option<&str>) -> ! {
    let cpu = percpu::cpu_id();
    fatal("oops", |w| {
        let _ = writeln!(w, "------------[ oops ]------------");
        let _ = writeln!(w, "Oops: {} ({:#x}) on CPU {}: {}", reg::vector_name(f.trap), f.trap, cpu, why);
        let _ = writeln!(w, "result: oops vector={:#x} cpu={}", f.trap, cpu);
        registers(w, f);
        if let Some(a) = address {
            let _ = writeln!(w, "address: {}", a);
        }
        gprs(w, f);
        call_trace(w, f.gpr[1], Some(f.nip));
        let _ = writeln!(w, "--------------------------------");
    })
}

/// A Rust panic (the `#[panic_handler]` in kmain calls this).
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    let cpu = percpu::cpu_id();
    let sp: u64;
    // SAFETY: reads r1.
    unsafe { core::arch::asm!("mr {0}, 1", out(reg) sp) };
    fatal("panic", |w| {
        let _ = writeln!(w, "------------[ kernel panic on CPU {} ]------------", cpu);
        match info.location() {
            Some(l) => {
                let _ = writeln!(w, "panicked at {}:{}:{}:", l.file(), l.line(), l.column());
            }
            None => {
                let _ = writeln!(w, "panicked:");
            }
        }
        let _ = writeln!(w, "  {}", info.message());
        call_trace(w, sp, None);
    })
}

/// Called (from assembly) when the exception stack would overflow.
#[no_mangle]
extern "C" fn exception_stack_overflow(nip: u64, trap: u64) -> ! {
    // Straight to the hypervisor console first: this CPU's stacks are what just ran out.
    crate::console::emergency();
    crate::console::early_puts("FATAL: exception stack overflow\n");
    fatal("exception stack overflow", |w| {
        let _ =
            writeln!(w, "exception stack overflow on CPU {}: vector {:#x} at NIP {:#x}", percpu::cpu_id(), trap, nip);
    })
}
