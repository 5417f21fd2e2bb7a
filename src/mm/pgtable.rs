//! The kernel's software page tables (init_mm) for the vmalloc (0xd...) and I/O (0xe...)
//! regions: per region a three-level tree of 512-entry tables (PGD → PMD → PTE page), covering
//! 512 GiB of each region with 4K pages.
//!
//! | EA bits (region offset) | 38..30 | 29..21 | 20..12 | 11..0 |
//! |---|---|---|---|---|
//! | | PGD index | PMD index | PTE index | page offset |
//!
//! Upper-level entries hold the linear address of the next table (0 = none). Tables live in
//! the bolted linear zone, so hash_page can walk them without faulting.
//!
//! Lock-free walking: tables are created under page_table_lock, zeroed, then published with a
//! release store; the walker reads with acquire loads. **Page-table pages are never freed** (the
//! rule that makes the walk safe at any time, on any CPU, in any context): vfree clears PTEs,
//! the tables stay. The cost is bounded by the region sizes actually used.

use super::frame::{self, Zone};
use crate::hash::cell::PteSlot;
use core::sync::atomic::{AtomicU64, Ordering::*};

pub use super::layout::REGION_SPAN;
const ENTRIES: usize = 512;

#[repr(C, align(4096))]
struct Table([AtomicU64; ENTRIES]);

static ROOTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Address of the root pointers (vmalloc, I/O), for the assembly fast path.
pub fn roots_addr() -> u64 {
    ROOTS.as_ptr() as u64
}
pub static TABLE_PAGES: AtomicU64 = AtomicU64::new(0);

fn indices(ea: u64) -> Option<(usize, usize, usize, usize)> {
    super::layout::table_indices(ea)
}

fn table(addr: u64) -> &'static Table {
    // SAFETY: every non-zero table pointer was published by `alloc_table` after zeroing a
    // linear-zone page that is never freed.
    unsafe { &*(addr as *const Table) }
}

/// Finds the PTE for `ea` without locks (hash_page's walk). None if any level is missing.
#[inline]
pub fn walk(ea: u64) -> Option<&'static PteSlot> {
    let (r, i1, i2, i3) = indices(ea)?;
    let pgd = ROOTS[r].load(Acquire);
    if pgd == 0 {
        return None;
    }
    let pmd = table(pgd).0[i1].load(Acquire);
    if pmd == 0 {
        return None;
    }
    let pt = table(pmd).0[i2].load(Acquire);
    if pt == 0 {
        return None;
    }
    // SAFETY: a PTE page is a Table of AtomicU64, and PteSlot is a transparent AtomicU64.
    Some(unsafe { &*(&table(pt).0[i3] as *const AtomicU64 as *const PteSlot) })
}

fn alloc_table() -> Result<u64, frame::FrameError> {
    let pa = frame::alloc(Zone::Linear)?;
    let va = pa | super::KERNEL_BASE;
    // SAFETY: a fresh linear-zone frame, mapped by the bolted linear mapping, owned by us.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, 4096) };
    TABLE_PAGES.fetch_add(1, Relaxed);
    Ok(va)
}

fn ensure_level(slot: &AtomicU64) -> Result<u64, frame::FrameError> {
    let v = slot.load(Acquire);
    if v != 0 {
        return Ok(v);
    }
    let t = alloc_table()?;
    slot.store(t, Release);
    Ok(t)
}

/// Finds or creates the PTE for `ea`. The caller holds page_table_lock (the lock serialises
/// tree changes; walkers never need it).
pub fn ensure(ea: u64, _proof: &super::vmalloc::AreaList) -> Result<&'static PteSlot, frame::FrameError> {
    let (r, i1, i2, i3) = indices(ea).ok_or(frame::FrameError::Foreign(ea))?;
    let pgd = ensure_level(&ROOTS[r])?;
    let pmd = ensure_level(&table(pgd).0[i1])?;
    let pt = ensure_level(&table(pmd).0[i2])?;
    // SAFETY: as in `walk`.
    Ok(unsafe { &*(&table(pt).0[i3] as *const AtomicU64 as *const PteSlot) })
}
