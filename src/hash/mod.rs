//! The reason this project exists: the hash-fault path. `access` decides (pure), `cell` does
//! the atomic PTE update (ldarx/stdcx. on ppc64), `backend` talks to the HPT (hypercalls, or a
//! fake on the host; `native` when the kernel owns the table on powernv), `inject` wraps a
//! backend with injected failures, `protocol` ties them together generically, `design` holds
//! the steps in which the 2003 designs differ, `fault` is the 0x300/0x400 entry, `hpt` the
//! platform's table for everything outside the fault path.
pub mod access;
pub mod backend;
pub mod cell;
pub mod design;
#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod hpt;
pub mod inject;
pub mod native;
pub mod protocol;
pub mod reason;
pub mod stats;
