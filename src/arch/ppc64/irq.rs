//! Masking external and decrementer interrupts (MSR[EE]) on this CPU.

use crate::arch::ppc64::insn;
use crate::arch::ppc64::reg::Msr;

const EE: u64 = Msr::EE.bits();
const RI: u64 = Msr::RI.bits();

/// Disables EE, returning whether it was on.
#[inline(always)]
pub fn save_disable() -> bool {
    let on = insn::mfmsr() & EE != 0;
    if on {
        insn::mtmsrd_ee_ri(RI);
    }
    on
}

#[inline(always)]
pub fn restore(was_on: bool) {
    if was_on {
        insn::mtmsrd_ee_ri(EE | RI);
    }
}

#[inline(always)]
pub fn enable() {
    insn::mtmsrd_ee_ri(EE | RI);
}

#[inline(always)]
pub fn disable() {
    insn::mtmsrd_ee_ri(RI);
}

pub fn enabled() -> bool {
    insn::mfmsr() & EE != 0
}
