//! hashkernel: a bare-metal big-endian ppc64 kernel for QEMU pseries whose hash-fault path
//! (`hash_page`) inserts HPTEs for vmalloc/ioremap addresses without taking any lock — the fix
//! for a 2003 ppc64 Linux deadlock — plus everything needed to prove it: the real vectors, SLB,
//! hypervisor HPT, Linux-style page tables, vmalloc, and the regression tests.
//!
//! Built for the `powerpc64-none.json` target it is the kernel; built for the host, the pure
//! modules (bit layouts, decisions, parsers, the PTE protocol) run as ordinary unit tests.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", feature(custom_test_frameworks))]
// The PTE take (hash/cell.rs) leaves its ldarx/stdcx. loop straight to the BUSY and denial
// paths (asm goto) and returns the taken values on the fall-through path only, like Linux's
// asm goto with outputs; this saves the status decoding on the hash-fault path.
#![cfg_attr(target_os = "none", feature(asm_goto_with_outputs))]
#![cfg_attr(all(target_os = "none", feature = "ktests"), test_runner(crate::ktest::cargo_test_runner))]
#![cfg_attr(target_os = "none", reexport_test_harness_main = "test_main")]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]
// Per-CPU tables are indexed by CPU number, and the loops say so ("for c in 0..ncpus").
#![allow(clippy::needless_range_loop)]
// trace_point! hands its values to the asm as `in(reg)` operands inside its unsafe block; its
// callers pass plain values (loads, addresses), and an operand list cannot be bound first
// without one arm per operand count.
#![allow(clippy::macro_metavars_in_unsafe)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod arch;
pub mod bootargs;
pub mod hash;
pub mod inject;
pub mod mm;
pub mod trace;

#[cfg(target_os = "none")]
pub mod console;
pub mod drivers;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod gdb_names;
#[cfg(target_os = "none")]
pub mod kmain;
#[cfg(all(target_os = "none", feature = "ktests"))]
pub mod ktest;
#[cfg(target_os = "none")]
pub mod report;
#[cfg(target_os = "none")]
pub mod run;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod trap;

#[cfg(target_os = "none")]
pub use kmain::kmain;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hashkernel is a kernel image: build it for powerpc64-none.json (plain `cargo build`).");
}
