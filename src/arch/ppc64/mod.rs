//! 64-bit PowerPC (Book III-S, hash MMU) on the PAPR pseries platform. `reg` is pure and
//! host-tested; the rest runs only on the target.
pub mod fdt;
pub mod opal;
pub mod papr;
pub mod platform;
pub mod reg;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod hcall;
#[cfg(target_os = "none")]
pub mod insn;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod of;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod powernv;
#[cfg(target_os = "none")]
pub mod rtas;
#[cfg(target_os = "none")]
pub mod timer;
