//! A tiny problem-state (MSR[PR]=1) trampoline for tests of user accesses to kernel pages.

use crate::arch::ppc64::exception::{ExcFrame, Handled};

pub fn syscall(_f: &mut ExcFrame) -> Handled {
    Handled::Bad("system call from an unexpected context")
}
