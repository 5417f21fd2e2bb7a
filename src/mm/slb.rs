//! SLB miss handling in Rust, for the 0x480 instruction-segment miss (the 0x380 data-segment
//! miss is handled in assembly, boot/vectors.S `slb_miss`, with the same table and policy).
//! Slots 0..BOLTED_SLB hold the bolted linear segment and are never victimised; the rest are
//! reused round robin per CPU. This code touches only the per-CPU area and kernel data, all
//! bolted, so it cannot fault itself.

use super::slbe::SlbEntry;
use super::slbe::{region_of, Region, ESID_MASK, SEGMENTS, SLB_ESID_V};
use crate::arch::ppc64::boot::BOLTED_SLB;
use crate::arch::ppc64::exception::{ExcFrame, Handled};
use crate::arch::ppc64::{insn, percpu};
use crate::hash::reason::FaultReason;
use core::sync::atomic::Ordering::Relaxed;

/// Installs a segment for `ea` if it lies in a region that gets segments on demand.
pub fn handle_miss(_f: &mut ExcFrame, ea: u64, instr: bool) -> Handled {
    let Some(rs) = SEGMENTS.rs(ea) else {
        return Handled::Bad(FaultReason::Other(match region_of(ea) {
            Some(Region::Linear) => "linear-map address outside the bolted segment",
            Some(_) => "address beyond the page tables' span (segment miss)",
            None => "address in no kernel region (segment miss)",
        }));
    };
    let p = percpu::this();
    let size = p.slb_size.load(Relaxed);
    let mut slot = p.slb_next.load(Relaxed);
    if slot >= size || slot < BOLTED_SLB as u64 {
        slot = BOLTED_SLB as u64;
    }
    p.slb_next.store(if slot + 1 >= size { BOLTED_SLB as u64 } else { slot + 1 }, Relaxed);
    // SAFETY: `slot` is not bolted (checked above) and the entry maps a kernel region segment.
    unsafe { insn::slbmte(rs, (ea & ESID_MASK) | SLB_ESID_V | slot) };
    p.stats.count(if instr { crate::hash::stats::Counter::IsegMiss } else { crate::hash::stats::Counter::DsegMiss });
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
