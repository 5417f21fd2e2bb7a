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
//! release store. The walker needs no barrier: each level's load takes its address from the
//! previous load, and POWER orders such dependent loads (the asm loads below keep the compiler
//! from breaking the dependency). **Page-table pages are never freed** (the rule that makes the
//! walk safe at any time, on any CPU, in any context): vfree clears PTEs, the tables stay. The
//! cost is bounded by the region sizes actually used.
//!
//! Both roots exist from boot on, and every CPU keeps them in its per-CPU area indexed by the
//! top nibble of the address, so hash_page's first load is also its region check.

use super::frame::{self, Zone};
use crate::hash::cell::PteSlot;
use core::sync::atomic::{AtomicU64, Ordering::*};

pub use super::layout::REGION_SPAN;
const ENTRIES: usize = 512;

#[repr(C, align(4096))]
struct Table([AtomicU64; ENTRIES]);

static ROOTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

pub static TABLE_PAGES: AtomicU64 = AtomicU64::new(0);

/// Region nibbles (EA bits 63:60) with a page-table tree, in ROOTS order.
const REGION_NIBBLES: [usize; 2] = [0xd, 0xe];

fn indices(ea: u64) -> Option<(usize, usize, usize, usize)> {
    super::layout::table_indices(ea)
}

fn table(addr: u64) -> &'static Table {
    // SAFETY: every non-zero table pointer was published by `alloc_table` after zeroing a
    // linear-zone page that is never freed.
    unsafe { &*(addr as *const Table) }
}

/// Creates both roots (boot CPU, before any other CPU runs).
pub fn init() -> Result<(), frame::FrameError> {
    for r in &ROOTS {
        ensure_level(r)?;
    }
    Ok(())
}

/// Gives `cpu` its copy of the roots, indexed by region nibble.
pub fn install(p: &crate::arch::ppc64::percpu::Paca) {
    for (r, &nib) in ROOTS.iter().zip(REGION_NIBBLES.iter()) {
        p.pgd[nib].store(r.load(Acquire), Relaxed);
    }
}

/// One 8-byte load whose address comes from the previous level's load: an asm load, so the
/// compiler keeps the address dependency that orders it on POWER.
#[inline(always)]
fn load_dep(table: u64, byte_off: u64) -> u64 {
    let v: u64;
    // SAFETY: `table` is a live page-table page (never freed) and `byte_off` < 4096, 8-aligned.
    unsafe { core::arch::asm!("ldx {v}, {t}, {o}", v = lateout(reg) v, t = in(reg) table, o = in(reg) byte_off, options(nostack, readonly, preserves_flags)) };
    v
}

/// Finds the PTE for `ea` without locks (hash_page's walk), from this CPU's copy of the roots.
/// None if `ea` is in no region with page tables, beyond their span, or any level is missing.
#[inline(always)]
pub fn walk(ea: u64) -> Option<&'static PteSlot> {
    walk_in(&crate::arch::ppc64::percpu::this().pgd, ea)
}

#[inline(always)]
pub fn walk_in(pgd: &[AtomicU64; 16], ea: u64) -> Option<&'static PteSlot> {
    // Region offset beyond the 2^39 bytes a tree spans (EA bits 59:39 not zero).
    if (ea << 4) >> 43 != 0 {
        return None;
    }
    walk_translated(pgd, ea)
}

/// `walk_in` for an address the MMU has just translated through a segment (a data storage
/// interrupt's DAR): the span check is left out, because the SLB only ever receives segments
/// within the trees' span (`mm::slb`, boot/vectors.S `slb_miss`, and the bolted linear
/// segment, whose root is 0).
#[inline(always)]
pub fn walk_translated(pgd: &[AtomicU64; 16], ea: u64) -> Option<&'static PteSlot> {
    let root = pgd[(ea >> 60) as usize].load(Relaxed);
    if root == 0 {
        return None;
    }
    let pmd = load_dep(root, (ea >> 27) & 0xff8);
    if pmd == 0 {
        return None;
    }
    let pt = load_dep(pmd, (ea >> 18) & 0xff8);
    if pt == 0 {
        return None;
    }
    // `|`, not `+`: the page is 4 KiB aligned, and the compiler can see the result is non-null.
    let pte = pt | ((ea >> 9) & 0xff8);
    // SAFETY: a PTE page is a Table of AtomicU64 (never freed), and PteSlot is a transparent
    // AtomicU64; `pte` is an 8-aligned entry inside it.
    Some(unsafe { &*(pte as *const PteSlot) })
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
