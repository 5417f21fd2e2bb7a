//! The kernel's software page tables (init_mm) for the vmalloc (0xd...) and I/O (0xe...)
//! regions: per region a three-level tree of 512-entry tables (PGD → PMD → PTE page), covering
//! 512 GiB of each region with 4K pages.
//!
//! | EA bits (region offset) | 38..30 | 29..21 | 20..12 | 11..0 |
//! |---|---|---|---|---|
//! | | PGD index | PMD index | PTE index | page offset |
//!
//! Upper-level entries hold the linear address of the next table. **No entry is ever empty**:
//! a missing table is a pointer to a shared, all-absent table of the next level (`EMPTY_PMD`,
//! whose entries point to `EMPTY_PT`, whose PTEs are 0), and the per-CPU roots of regions
//! without a tree point to `EMPTY_PGD`. So hash_page's walk is three dependent loads with no
//! test at all: an address without page tables ends on a zero PTE, which the take reports as
//! not present (the slow path then names the missing table, see `has_table`). The empty
//! tables are made read-only in the HPT, so a stray write into them oopses instead of
//! mapping a page everywhere. Tables live in the bolted linear zone, so hash_page can walk
//! them without faulting.
//!
//! Lock-free walking: tables are created under page_table_lock, filled, then published with a
//! release store. The walker needs no barrier: each level's load takes its address from the
//! previous load, and POWER orders such dependent loads (the asm loads below keep the compiler
//! from breaking the dependency). **Page-table pages are never freed** (the rule that makes the
//! walk safe at any time, on any CPU, in any context): vfree clears PTEs, the tables stay. The
//! cost is bounded by the region sizes actually used.
//!
//! Both roots exist from boot on, and every CPU keeps the 16 roots in its per-CPU area indexed
//! by the top nibble of the address.

use super::frame::{self, Zone};
use crate::hash::cell::PteSlot;
use core::sync::atomic::{AtomicU64, Ordering::*};

pub use super::layout::REGION_SPAN;
const ENTRIES: usize = 512;

#[repr(C, align(4096))]
struct Table([AtomicU64; ENTRIES]);

static ROOTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The shared all-absent tables, by level: [PGD-level (entries → EMPTY_PMD), PMD-level
/// (entries → EMPTY_PT), PTE page (zeros)]. Set once by `init`, read-only in the HPT after.
static EMPTY: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
const EMPTY_PGD: usize = 0;
const EMPTY_PMD: usize = 1;
const EMPTY_PT: usize = 2;

fn empty(level: usize) -> u64 {
    EMPTY[level].load(Relaxed)
}

pub static TABLE_PAGES: AtomicU64 = AtomicU64::new(0);

/// Region nibbles (EA bits 63:60) with a page-table tree, in ROOTS order.
const REGION_NIBBLES: [usize; 2] = [0xd, 0xe];

fn indices(ea: u64) -> Option<(usize, usize, usize, usize)> {
    super::layout::table_indices(ea)
}

fn table(addr: u64) -> &'static Table {
    // SAFETY: every table pointer was published by `alloc_table` after filling a linear-zone
    // page that is never freed.
    unsafe { &*(addr as *const Table) }
}

/// Creates the empty tables and both roots (boot CPU, before any other CPU runs).
pub fn init() -> Result<(), frame::FrameError> {
    let pt = alloc_table(0)?;
    let pmd = alloc_table(pt)?;
    let pgd = alloc_table(pmd)?;
    for (e, v) in EMPTY.iter().zip([pgd, pmd, pt]) {
        e.store(v, Relaxed);
    }
    for r in &ROOTS {
        r.store(alloc_table(pmd)?, Release);
    }
    Ok(())
}

/// The linear addresses of the shared empty tables (to make them read-only in the HPT).
pub fn empty_tables() -> [u64; 3] {
    [empty(EMPTY_PGD), empty(EMPTY_PMD), empty(EMPTY_PT)]
}

/// Gives `cpu` its copy of the roots, indexed by region nibble; every other nibble gets the
/// empty PGD.
pub fn install(p: &crate::arch::ppc64::percpu::Paca) {
    for r in p.pgd.iter() {
        r.store(empty(EMPTY_PGD), Relaxed);
    }
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
    // `reg_nonzero`: as the base of `ldx`, r0 would read as the constant 0.
    unsafe {
        core::arch::asm!("ldx {v}, {t}, {o}", v = lateout(reg) v, t = in(reg_nonzero) table, o = in(reg) byte_off, options(nostack, readonly, preserves_flags))
    };
    v
}

/// Finds the PTE for `ea` without locks, from this CPU's copy of the roots. None if `ea` is
/// in no region with page tables, beyond their span, or any level is missing.
#[inline(always)]
pub fn walk(ea: u64) -> Option<&'static PteSlot> {
    walk_in(&crate::arch::ppc64::percpu::this().pgd, ea)
}

#[inline(always)]
pub fn walk_in(pgd: &[AtomicU64; 16], ea: u64) -> Option<&'static PteSlot> {
    // Region offset beyond the 2^39 bytes a tree spans (EA bits 59:39 not zero).
    if (ea << 4) >> 43 != 0 || !has_table(pgd, ea) {
        return None;
    }
    Some(walk_from(pgd[(ea >> 60) as usize].load(Relaxed), ea))
}

/// Whether `ea` (within the span) has a real PTE page, rather than the empty tables.
pub fn has_table(pgd: &[AtomicU64; 16], ea: u64) -> bool {
    let root = pgd[(ea >> 60) as usize].load(Relaxed);
    if root == empty(EMPTY_PGD) {
        return false;
    }
    let pmd = load_dep(root, (ea >> 27) & 0xff8);
    pmd != empty(EMPTY_PMD) && load_dep(pmd, (ea >> 18) & 0xff8) != empty(EMPTY_PT)
}

/// hash_page's walk, for an address the MMU has just translated through a segment (a data
/// storage interrupt's DAR): three dependent loads, no tests. The span check is left out
/// because the SLB only ever receives segments within the trees' span (`mm::slb`,
/// boot/vectors.S `slb_miss`, and the bolted linear segment, whose root is the empty PGD).
/// Where no table exists the result is a zero PTE in `EMPTY_PT`.
#[inline(always)]
pub fn walk_translated(ea: u64) -> &'static PteSlot {
    walk_from(crate::arch::ppc64::percpu::pgd_root(ea), ea)
}

#[inline(always)]
fn walk_from(root: u64, ea: u64) -> &'static PteSlot {
    let pmd = load_dep(root, (ea >> 27) & 0xff8);
    let pt = load_dep(pmd, (ea >> 18) & 0xff8);
    // `|`, not `+`: the page is 4 KiB aligned.
    let pte = pt | ((ea >> 9) & 0xff8);
    // SAFETY: every table entry points to a live table (a real one, or an empty one), never
    // freed; a PTE page is a Table of AtomicU64 and PteSlot a transparent AtomicU64, and `pte`
    // is an 8-aligned entry inside it.
    unsafe { &*(pte as *const PteSlot) }
}

/// A new table whose entries all hold `fill` (0 for a PTE page).
fn alloc_table(fill: u64) -> Result<u64, frame::FrameError> {
    let pa = frame::alloc(Zone::Linear)?;
    let va = super::layout::linear_va(pa);
    // SAFETY: a fresh linear-zone frame, mapped by the bolted linear mapping, owned by us and
    // not yet reachable by anyone else.
    let t = unsafe { &*(va as *const Table) };
    for e in t.0.iter() {
        e.store(fill, Relaxed);
    }
    TABLE_PAGES.fetch_add(1, Relaxed);
    Ok(va)
}

/// The table `slot` points to, created (entries `fill`) if it is the level's empty one.
fn ensure_level(slot: &AtomicU64, empty_here: u64, fill: u64) -> Result<u64, frame::FrameError> {
    let v = slot.load(Acquire);
    if v != empty_here {
        return Ok(v);
    }
    let t = alloc_table(fill)?;
    slot.store(t, Release);
    Ok(t)
}

/// Finds or creates the PTE for `ea`. The caller holds page_table_lock (the lock serialises
/// tree changes; walkers never need it).
pub fn ensure(ea: u64, _proof: &super::vmalloc::AreaList) -> Result<&'static PteSlot, frame::FrameError> {
    let (r, i1, i2, i3) = indices(ea).ok_or(frame::FrameError::Foreign(ea))?;
    let pgd = ROOTS[r].load(Acquire);
    let pmd = ensure_level(&table(pgd).0[i1], empty(EMPTY_PMD), empty(EMPTY_PT))?;
    let pt = ensure_level(&table(pmd).0[i2], empty(EMPTY_PT), 0)?;
    // SAFETY: as in `walk_translated`.
    Ok(unsafe { &*(&table(pt).0[i3] as *const AtomicU64 as *const PteSlot) })
}
