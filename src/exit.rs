//! Ending the run. Success powers the machine off (QEMU exits 0); failure calls RTAS
//! `ibm,os-term`, which QEMU treats as a guest panic and, under `-action panic=exit-failure`
//! (the runner always passes it), turns into exit status 1. On powernv both ask the BMC to
//! power down through OPAL (QEMU exits 0; see `power_off_powernv`). A sentinel line comes first
//! so the runner can tell a kernel-chosen exit from QEMU dying, and which one it was.

use crate::arch::ppc64::{platform, rtas};

pub const SENTINEL: &str = "hashkernel: exit status";

/// The machine's `QEMUExit` (the name is historical: on powernv the same functions end the run
/// through OPAL).
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
    if platform::powernv() {
        power_off_powernv()
    }
    rtas::power_off();
    halt()
}

pub fn exit_failure(why: &str) -> ! {
    crate::smp::stop_others();
    crate::trace::dump(why, None);
    crate::println!("{} 1 ({})", SENTINEL, why);
    if platform::powernv() {
        power_off_powernv()
    }
    rtas::os_term(why);
    halt()
}

/// powernv ends every run the same way, by asking the BMC to power the machine off (QEMU
/// exits 0): this QEMU has neither `isa-debug-exit` nor `pvpanic-isa` for an LPC bus, and
/// `pvpanic-pci` would need the PHBs, whose link training costs skiboot 7.5 s per boot. The
/// runner's status comes from the sentinel line above (1 unless it says 0), as on pseries.
fn power_off_powernv() -> ! {
    let e = crate::arch::ppc64::opal::power_down();
    crate::println!("exit: OPAL could not power the machine off ({e}): no BMC? (the runner adds ipmi-bmc-sim)");
    halt()
}

use crate::arch::ppc64::insn::halt;
