//! SLB miss handling (0x380 data segment, 0x480 instruction segment) for the vmalloc and I/O
//! regions. Slots 0..BOLTED_SLB hold the bolted linear segment and are never victimised; the
//! rest are reused round robin per CPU. This code touches only the per-CPU area and kernel
//! text/data, all bolted, so it cannot fault itself.

use super::slbe::{region_of, Region, SlbEntry};
use crate::arch::ppc64::boot::BOLTED_SLB;
use crate::arch::ppc64::exception::{ExcFrame, Handled};
use crate::arch::ppc64::{insn, percpu};
use core::sync::atomic::Ordering::Relaxed;

/// Installs a segment for `ea` if it lies in a region that gets segments on demand.
pub fn handle_miss(f: &mut ExcFrame, ea: u64, instr: bool) -> Handled {
    match region_of(ea) {
        Some(Region::Vmalloc) | Some(Region::Io) => {}
        Some(Region::Linear) => return Handled::Bad("linear-map address outside the bolted segment"),
        None => return Handled::Bad("address in no kernel region (segment miss)"),
    }
    let p = percpu::this();
    let size = p.slb_size.load(Relaxed);
    let mut slot = p.slb_next.load(Relaxed);
    if slot >= size || slot < BOLTED_SLB as u64 {
        slot = BOLTED_SLB as u64;
    }
    p.slb_next.store(if slot + 1 >= size { BOLTED_SLB as u64 } else { slot + 1 }, Relaxed);
    let e = SlbEntry::kernel(ea, slot as usize);
    // SAFETY: `slot` is not bolted (checked above) and the entry maps a kernel region segment.
    unsafe { insn::slbmte(e.rs(), e.rb()) };
    crate::hash::stats::this().count(if instr { crate::hash::stats::Counter::IsegMiss } else { crate::hash::stats::Counter::DsegMiss });
    crate::hash::fault::prefault_after_segment_miss(ea, instr, f.from_user());
    Handled::Done
}

/// Current SLB contents: (slot, entry) for valid entries.
pub fn dump(mut f: impl FnMut(usize, SlbEntry)) {
    let size = percpu::this().slb_size.load(Relaxed);
    for i in 0..size {
        let (e, v) = insn::slbmfe(i);
        let ent = SlbEntry::from_raw(e | i, v);
        if ent.is_valid() {
            f(i as usize, ent);
        }
    }
}
