//! Ending the run. Success powers the machine off (QEMU exits 0); failure calls RTAS
//! `ibm,os-term`, which QEMU treats as a guest panic and, under `-action panic=exit-failure`
//! (the runner always passes it), turns into exit status 1. A sentinel line comes first so the
//! runner can tell a kernel-chosen exit from QEMU dying.

use crate::arch::ppc64::rtas;

pub const SENTINEL: &str = "hashkernel: exit status";

pub struct Pseries;

impl qemu_exit::QEMUExit for Pseries {
    fn exit(&self, code: u32) -> ! {
        if code == 0 {
            exit_success()
        } else {
            exit_failure("exit code")
        }
    }
    fn exit_success(&self) -> ! {
        exit_success()
    }
    fn exit_failure(&self) -> ! {
        exit_failure("failure")
    }
}

pub fn exit_success() -> ! {
    crate::smp::stop_others();
    crate::trace::dump("exit", None);
    crate::println!("{} 0", SENTINEL);
    rtas::power_off();
    halt()
}

pub fn exit_failure(why: &str) -> ! {
    crate::smp::stop_others();
    crate::trace::dump(why, None);
    crate::println!("{} 1 ({})", SENTINEL, why);
    rtas::os_term(why);
    halt()
}

/// Failure before the console lock and per-CPU state are usable (real mode, early boot).
pub fn fail_early() -> ! {
    crate::console::early_puts("hashkernel: exit status 1 (early boot)\r\n");
    rtas::os_term("early boot failure");
    halt()
}

fn halt() -> ! {
    loop {
        crate::arch::ppc64::insn::cpu_relax();
    }
}
