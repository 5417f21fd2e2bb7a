//! Switching trace groups on and off. Patching the trace points is platform work (`site`),
//! but re-routing the 0x300 entry through the traced handler belongs to the hash-fault code,
//! so this part sits above it (`hash::fault::select`), unlike the rings, which any layer may
//! write.

use super::event::Groups;
use super::ring::{BOOT_GROUPS, GROUPS};
use super::site;
use core::sync::atomic::Ordering::Relaxed;

/// The `trace=` bootarg: switch the groups on before anything else runs.
pub fn init(g: Groups) {
    BOOT_GROUPS.store(g.bits(), Relaxed);
    if !g.is_empty() {
        set_groups(g);
    }
}

extern "C" {
    static slb_vector_branch: u32;
    static slb_miss: u32;
    static slb_miss_other: u32;
}

/// Records `g` from now on: patches every trace point of those groups to its stub and every
/// other one back to a `nop`. While exceptions are traced, the 0x380 vector takes the generic
/// path (whose entry and exit are trace points) instead of the assembly-only segment miss;
/// while exceptions or hash_page are traced, the 0x300 entry calls `do_hash_fault_traced`,
/// which calls the selected design. So with tracing off neither path has an instruction more.
/// Call it while no other CPU takes exceptions through code being patched (boot, or a test
/// with the other CPUs idle), like `hash::fault::select`.
pub fn set_groups(g: Groups) {
    GROUPS.store(g.bits(), Relaxed);
    for s in site::sites() {
        let on = super::event::code_event(s.code).is_some_and(|e| g.intersects(e.group()));
        // SAFETY: a trace point's nop, and the branch to its stub, which returns right after it.
        unsafe { site::patch(s.at, if on { site::branch(s.at, s.stub) } else { site::NOP }) };
    }
    let at = &raw const slb_vector_branch as u64;
    let to = if g.contains(Groups::EXC) { &raw const slb_miss_other as u64 } else { &raw const slb_miss as u64 };
    // SAFETY: the last instruction of the AIL block's 0x380 vector, a branch to either of two
    // paths that start from the same register state (boot/vectors.S).
    unsafe { site::patch(at, site::branch(at, to)) };
    crate::hash::fault::select(crate::hash::fault::design());
}
