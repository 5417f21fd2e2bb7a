//! Kernel event trace, ftrace-like: per-CPU lock-free rings of timestamped events (exception
//! entry/exit, hash_page outcomes, PTE take/publish, hypervisor calls, page_table_lock,
//! vmalloc/vfree, the decrementer, the watchdog's report), off by default and chosen by group
//! with the `trace=` bootarg. A trace point costs one `nop` while its group is off (`site`);
//! the 0x300 and 0x380 paths have none at all, being re-routed only while traced (`ring`).
//! The rings are dumped in a compact text form on exit, on an oops and inside the deadlock
//! report; scripts/trace.py turns a dump into Chrome trace-event JSON and an SVG timeline, and
//! scripts/helpers.gdb `trace-dump` prints the same from a live or stopped kernel.

#[cfg(target_os = "none")]
pub mod control;
#[cfg(target_os = "none")]
pub mod dump;
pub mod event;
#[cfg(target_os = "none")]
pub mod ring;
#[cfg(target_os = "none")]
pub mod site;

#[cfg(target_os = "none")]
pub use dump::dump;
pub use event::{code, Event, Groups, Mark};
#[cfg(target_os = "none")]
pub use ring::*;
