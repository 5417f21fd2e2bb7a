//! Which machine the kernel runs on, decided once at entry by what the firmware passed:
//! pseries (a PAPR guest: SLOF/VOF with an Open Firmware client interface in r5, hypercalls,
//! RTAS, the hypervisor's HPT) or powernv (bare metal under skiboot: a flattened device tree in
//! r3, OPAL calls, MSR[HV] = 1, the kernel's own HPT). Code that differs asks here; the
//! hash-fault path does not (its call is patched to the platform's instantiation at boot).

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Platform {
    Pseries,
    PowerNv,
}

static POWERNV: AtomicBool = AtomicBool::new(false);

/// Called by the powernv entry before anything prints.
pub fn set_powernv() {
    POWERNV.store(true, Relaxed);
}

#[inline(always)]
pub fn powernv() -> bool {
    POWERNV.load(Relaxed)
}

pub fn get() -> Platform {
    if powernv() {
        Platform::PowerNv
    } else {
        Platform::Pseries
    }
}

impl Platform {
    pub const fn name(self) -> &'static str {
        match self {
            Platform::Pseries => "pseries",
            Platform::PowerNv => "powernv",
        }
    }
}

/// Failure before the console lock and per-CPU state are usable (real mode, early boot).
#[cfg(target_os = "none")]
pub fn fail_early() -> ! {
    crate::console::early_puts("hashkernel: exit status 1 (early boot)\r\n");
    if powernv() {
        let _ = super::opal::power_down();
        super::insn::halt()
    }
    super::rtas::os_term("early boot failure");
    super::insn::halt()
}
