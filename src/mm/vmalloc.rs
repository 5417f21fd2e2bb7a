//! vmalloc/vfree and ioremap/iounmap: virtually contiguous kernel mappings in the 0xd... and
//! 0xe... regions, built page by page in the software page tables.
//!
//! Everything that changes the tree or the area list runs under `PAGE_TABLE_LOCK`, which — as
//! in the 2003 kernel — does not mask interrupts. Mapping writes PTEs only; the HPTE is inserted
//! by hash_page on first touch. Unmapping clears each PTE with the BUSY-waiting atomic update
//! and removes the HPTE its slot bits name, under the lock, before the frames are freed.

use super::frame::{self, Zone, PAGE_SIZE};
use super::pgtable;
use super::pte::{Pte, PteFlags, PAGE_KERNEL, PAGE_KERNEL_IO};
use super::slbe::{kernel_vsid, Region};
use crate::arch::ppc64::boot;
use crate::hash::cell::PteCell;
use crate::hash::hpt::Hpt;
use crate::hash::inject::PSERIES as INJECTING;
use crate::hash::protocol;
use crate::sync::PtLock;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const VMALLOC_START: u64 = 0xd000_0000_0000_0000;
pub const VMALLOC_END: u64 = VMALLOC_START + (64 << 30);
pub const IOREMAP_START: u64 = 0xe000_0000_0000_0000;
pub const IOREMAP_END: u64 = IOREMAP_START + (64 << 30);
/// Largest single vmalloc.
pub const VMALLOC_MAX: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmError {
    ZeroSize,
    TooLarge(u64),
    OutOfMemory,
    OutOfVirtualSpace,
    /// vfree/iounmap of an address that is not the start of a live area.
    NotAnArea(u64),
    /// ... that is inside an area but not its start.
    NotStart {
        addr: u64,
        area: u64,
    },
    /// ... that was freed already.
    DoubleFree(u64),
    /// vfree of an ioremap area or iounmap of a vmalloc area.
    WrongKind(u64),
    /// ioremap of RAM.
    IsRam(u64),
    Overflow,
    /// A PTE in the range to map is not empty: someone else's mapping (or a stale entry) that
    /// must not be overwritten.
    PteInUse {
        ea: u64,
        pte: u64,
    },
    /// change_protection of an address without a present PTE.
    NotMapped(u64),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmError::ZeroSize => f.write_str("zero size"),
            VmError::TooLarge(s) => write!(f, "size {s:#x} exceeds the limit {VMALLOC_MAX:#x}"),
            VmError::OutOfMemory => f.write_str("out of memory"),
            VmError::OutOfVirtualSpace => f.write_str("out of virtual address space"),
            VmError::NotAnArea(a) => write!(f, "{a:#x} is not a live area"),
            VmError::NotStart { addr, area } => write!(f, "{addr:#x} is inside the area at {area:#x}, not its start"),
            VmError::DoubleFree(a) => write!(f, "double free of the area at {a:#x}"),
            VmError::WrongKind(a) => write!(f, "{a:#x} is an area of the other kind (vmalloc vs ioremap)"),
            VmError::IsRam(p) => write!(f, "physical {p:#x} is RAM, not device memory"),
            VmError::Overflow => f.write_str("address range overflows"),
            VmError::PteInUse { ea, pte } => write!(f, "the PTE for {ea:#x} is in use ({pte:#x}): not overwriting it"),
            VmError::NotMapped(a) => write!(f, "{a:#x} has no present PTE"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vmalloc,
    Ioremap { phys: u64 },
}

pub struct Area {
    pub start: u64,
    pub pages: u64,
    pub kind: Kind,
    pub owner: &'static Location<'static>,
    pub frames: Vec<u64>,
}

impl Area {
    /// End of the mapping; the guard page follows it.
    pub fn end(&self) -> u64 {
        self.start + self.pages * PAGE_SIZE
    }
}

pub struct AreaList {
    areas: BTreeMap<u64, Area>,
    recently_freed: [u64; 16],
    next_freed: usize,
}

/// The 2003 `page_table_lock` (of init_mm): serialises the tree and the area lists. Taken with
/// interrupts enabled, never masked — see sync/ptlock.rs.
pub static PAGE_TABLE_LOCK: PtLock<AreaList> =
    PtLock::new("page_table_lock", AreaList { areas: BTreeMap::new(), recently_freed: [0; 16], next_freed: 0 });

/// Test hook run inside the critical section (the interrupt test driver arms the decrementer
/// here). 0 = none.
static CRIT_HOOK: AtomicU64 = AtomicU64::new(0);
pub static CRIT_SECTIONS: AtomicU64 = AtomicU64::new(0);

pub fn set_crit_hook(f: Option<fn()>) {
    CRIT_HOOK.store(f.map(|f| f as *const () as u64).unwrap_or(0), Relaxed);
}

#[inline]
fn crit_hook() {
    CRIT_SECTIONS.fetch_add(1, Relaxed);
    let h = CRIT_HOOK.load(Relaxed);
    if h != 0 {
        // SAFETY: CRIT_HOOK only holds a `fn()` stored by set_crit_hook.
        let f: fn() = unsafe { core::mem::transmute(h as usize) };
        f();
    }
}

fn find_gap(list: &AreaList, lo: u64, hi: u64, pages: u64) -> Option<u64> {
    // Every area that starts below `hi`: one that starts below `lo` may still reach into it.
    super::layout::find_gap(list.areas.range(..hi).map(|(_, a)| (a.start, a.end())), lo, hi, pages)
}

/// Maps `pfns` at `start`, page by page. Every PTE must be empty: a PTE in use is never
/// overwritten (the old value, and any HPTE its slot bits name, would be lost). On an error the
/// pages this call mapped are unmapped again and nothing else is touched.
fn map_pages(list: &mut AreaList, start: u64, pfns: impl Iterator<Item = u64>, flags: PteFlags) -> Result<(), VmError> {
    let mut spins = 0;
    let mut mapped = 0;
    let mut result = Ok(());
    for (i, pfn) in pfns.enumerate() {
        let ea = start + i as u64 * PAGE_SIZE;
        let slot = match pgtable::ensure(ea, list) {
            Ok(s) => s,
            Err(_) => {
                result = Err(VmError::OutOfMemory);
                break;
            }
        };
        // Under page_table_lock only hash_page can change a PTE concurrently, and it never
        // touches one that is not present, so an empty PTE stays empty until the write below.
        let cur = slot.load();
        if cur.raw() != 0 {
            result = Err(VmError::PteInUse { ea, pte: cur.raw() });
            break;
        }
        slot.update(u64::MAX, Pte::new(pfn, flags).raw(), &mut spins);
        mapped += 1;
    }
    if result.is_err() {
        unmap_pages(start, mapped);
    }
    result
}

fn unmap_pages(start: u64, pages: u64) {
    let mut spins = 0;
    for i in 0..pages {
        let ea = start + i * PAGE_SIZE;
        if let Some(slot) = pgtable::walk(ea) {
            clear_and_flush(slot, ea, &mut spins);
        }
    }
}

/// Clears one PTE and flushes its HPTE. If the hypervisor will not remove the entry, a
/// translation to a frame that is about to be freed may survive: that cannot be undone, so it
/// stops the kernel, naming the call.
fn clear_and_flush(slot: &crate::hash::cell::PteSlot, ea: u64, spins: &mut u64) -> Pte {
    let r = if crate::inject::hcalls_armed() {
        protocol::clear_and_flush(slot, ea, kernel_vsid(ea), &INJECTING, spins)
    } else {
        protocol::clear_and_flush(slot, ea, kernel_vsid(ea), &Hpt, spins)
    };
    match r {
        Ok(old) => old,
        Err(e) => {
            panic!("H_REMOVE refused ({e}) while unmapping {ea:#x}: its HPTE may still translate a frame being freed")
        }
    }
}

/// Flushes the HPTE `pte` names, stopping the kernel if the hypervisor refuses (as above).
fn flush(pte: Pte, ea: u64) -> bool {
    let r = if crate::inject::hcalls_armed() {
        protocol::flush_hpte(pte, ea, kernel_vsid(ea), &INJECTING)
    } else {
        protocol::flush_hpte(pte, ea, kernel_vsid(ea), &Hpt)
    };
    match r {
        Ok(removed) => removed,
        Err(e) => panic!("H_REMOVE refused ({e}) while flushing {ea:#x}: the HPTE may outlive its PTE"),
    }
}

/// Allocates `size` bytes (rounded up to pages) of virtually contiguous kernel memory, zeroed.
#[track_caller]
pub fn vmalloc(size: u64) -> Result<u64, VmError> {
    vmalloc_flags(size, PAGE_KERNEL)
}

#[track_caller]
pub fn vmalloc_flags(size: u64, flags: PteFlags) -> Result<u64, VmError> {
    vmalloc_range(size, flags, VMALLOC_START, VMALLOC_END)
}

/// `vmalloc_flags` with the area placed in [lo, hi) of the vmalloc region (its guard page
/// included), like Linux's `__vmalloc_node_range`: with `hi = lo + size + PAGE_SIZE` the area
/// starts exactly at `lo` or the call fails (`OutOfVirtualSpace`). The benchmarks use it for
/// pages in chosen segments (pages that share one HPTE group lie in different segments).
#[track_caller]
pub fn vmalloc_range(size: u64, flags: PteFlags, lo: u64, hi: u64) -> Result<u64, VmError> {
    let owner = Location::caller();
    if lo < VMALLOC_START || hi > VMALLOC_END || lo >= hi || !lo.is_multiple_of(PAGE_SIZE) {
        return Err(VmError::Overflow);
    }
    if size == 0 {
        return Err(VmError::ZeroSize);
    }
    if size > VMALLOC_MAX {
        return Err(VmError::TooLarge(size));
    }
    let pages = size.div_ceil(PAGE_SIZE);
    let mut frames = Vec::new();
    crate::inject::fallible(|| frames.try_reserve_exact(pages as usize)).map_err(|_| VmError::OutOfMemory)?;
    for _ in 0..pages {
        match frame::alloc(Zone::High) {
            Ok(pa) => frames.push(pa),
            Err(_) => {
                for pa in frames {
                    let _ = frame::free(pa);
                }
                return Err(VmError::OutOfMemory);
            }
        }
    }
    // Frames come back from vfree with their last owner's data, and high frames have no
    // mapping but this one: a read-only area is mapped writable first, zeroed, then remapped
    // with its own flags.
    let zero_flags = flags | PteFlags::RW;
    let start;
    {
        let mut list = PAGE_TABLE_LOCK.lock();
        let Some(s) = find_gap(&list, lo, hi, pages) else {
            drop(list);
            for pa in frames {
                let _ = frame::free(pa);
            }
            return Err(VmError::OutOfVirtualSpace);
        };
        start = s;
        if let Err(e) = map_pages(&mut list, start, frames.iter().map(|pa| pa >> 12), zero_flags) {
            drop(list);
            for pa in frames {
                let _ = frame::free(pa);
            }
            return Err(e);
        }
        crit_hook();
        list.areas.insert(start, Area { start, pages, kind: Kind::Vmalloc, owner, frames });
        crate::trace_point!(crate::trace::code(crate::trace::Event::Vmalloc, 0), start, pages);
    }
    // Zero through the new mapping (outside the lock: the first touch of each page is a hash
    // fault, and hash_page=locked takes page_table_lock).
    // SAFETY: [start, start+pages*4K) was just mapped RW for us alone.
    unsafe { core::ptr::write_bytes(start as *mut u8, 0, (pages * PAGE_SIZE) as usize) };
    if zero_flags != flags {
        // The area is in the list, so its range is ours: clear each PTE with its HPTE and map it
        // again as asked, clean (no ACCESSED/DIRTY from the zeroing).
        let mut list = PAGE_TABLE_LOCK.lock();
        let pfns: Vec<u64> = list.areas[&start].frames.iter().map(|pa| pa >> 12).collect();
        unmap_pages(start, pages);
        if let Err(e) = map_pages(&mut list, start, pfns.into_iter(), flags) {
            // Cannot happen (the PTEs were just cleared, the tables exist): give the area back.
            let a = list.areas.remove(&start).expect("inserted above");
            drop(list);
            for pa in a.frames {
                let _ = frame::free(pa);
            }
            return Err(e);
        }
    }
    Ok(start)
}

fn take_area(list: &mut AreaList, addr: u64, want: fn(&Kind) -> bool) -> Result<Area, VmError> {
    match list.areas.get(&addr) {
        Some(a) if !want(&a.kind) => return Err(VmError::WrongKind(addr)),
        Some(_) => {}
        None => {
            if let Some((_, a)) = list.areas.range(..=addr).next_back() {
                if addr < a.end() + PAGE_SIZE {
                    return Err(VmError::NotStart { addr, area: a.start });
                }
            }
            if list.recently_freed.contains(&addr) {
                return Err(VmError::DoubleFree(addr));
            }
            return Err(VmError::NotAnArea(addr));
        }
    }
    let a = list.areas.remove(&addr).expect("checked above");
    let i = list.next_freed;
    list.recently_freed[i] = addr;
    list.next_freed = (i + 1) % list.recently_freed.len();
    Ok(a)
}

/// Frees an area returned by `vmalloc`. After it returns no HPTE translates the area.
pub fn vfree(addr: u64) -> Result<(), VmError> {
    let area = {
        let mut list = PAGE_TABLE_LOCK.lock();
        let a = take_area(&mut list, addr, |k| matches!(k, Kind::Vmalloc))?;
        unmap_pages(a.start, a.pages);
        crate::trace_point!(crate::trace::code(crate::trace::Event::Vfree, 0), addr);
        crit_hook();
        a
    };
    for pa in area.frames {
        if let Err(e) = frame::free(pa) {
            crate::println!("vfree: {e}");
        }
    }
    Ok(())
}

/// Maps device memory [phys, phys+size) cache-inhibited and guarded; returns the address of
/// `phys` in the I/O region.
#[track_caller]
pub fn ioremap(phys: u64, size: u64) -> Result<u64, VmError> {
    let owner = Location::caller();
    if size == 0 {
        return Err(VmError::ZeroSize);
    }
    let end = phys.checked_add(size).ok_or(VmError::Overflow)?;
    if end > 1 << 50 {
        return Err(VmError::Overflow);
    }
    let mem = boot::info().mem_size;
    if phys < mem {
        return Err(VmError::IsRam(phys));
    }
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (end - first).div_ceil(PAGE_SIZE);
    if pages * PAGE_SIZE > VMALLOC_MAX {
        return Err(VmError::TooLarge(size));
    }
    let mut list = PAGE_TABLE_LOCK.lock();
    let start = find_gap(&list, IOREMAP_START, IOREMAP_END, pages).ok_or(VmError::OutOfVirtualSpace)?;
    map_pages(&mut list, start, (0..pages).map(|i| (first >> 12) + i), PAGE_KERNEL_IO)?;
    list.areas.insert(start, Area { start, pages, kind: Kind::Ioremap { phys: first }, owner, frames: Vec::new() });
    crate::trace_point!(crate::trace::code(crate::trace::Event::Vmalloc, 1), start, pages);
    Ok(start + (phys - first))
}

pub fn iounmap(addr: u64) -> Result<(), VmError> {
    let base = addr & !(PAGE_SIZE - 1);
    let mut list = PAGE_TABLE_LOCK.lock();
    let a = take_area(&mut list, base, |k| matches!(k, Kind::Ioremap { .. }))?;
    unmap_pages(a.start, a.pages);
    crate::trace_point!(crate::trace::code(crate::trace::Event::Vfree, 1), base);
    Ok(())
}

/// Describes the area (or guard page) holding `ea`, without blocking (oops path).
pub fn describe(ea: u64) -> Option<alloc::string::String> {
    let list = PAGE_TABLE_LOCK.try_lock()?;
    let (_, a) = list.areas.range(..=ea).next_back()?;
    let what = match a.kind {
        Kind::Vmalloc => "vmalloc",
        Kind::Ioremap { .. } => "ioremap",
    };
    if ea < a.end() {
        Some(alloc::format!(
            "inside {} area {:#x}..{:#x} ({} pages) allocated at {}:{}",
            what,
            a.start,
            a.end(),
            a.pages,
            a.owner.file(),
            a.owner.line()
        ))
    } else if ea < a.end() + PAGE_SIZE {
        Some(alloc::format!(
            "GUARD PAGE after {} area {:#x}..{:#x} allocated at {}:{}",
            what,
            a.start,
            a.end(),
            a.owner.file(),
            a.owner.line()
        ))
    } else {
        None
    }
}

/// (number of areas, mapped pages) of each kind.
pub fn usage() -> (usize, u64, usize, u64) {
    let list = PAGE_TABLE_LOCK.lock();
    let mut r = (0, 0, 0, 0);
    for a in list.areas.values() {
        match a.kind {
            Kind::Vmalloc => {
                r.0 += 1;
                r.1 += a.pages
            }
            Kind::Ioremap { .. } => {
                r.2 += 1;
                r.3 += a.pages
            }
        }
    }
    r
}

pub fn region_name(r: Region) -> &'static str {
    match r {
        Region::Linear => "linear",
        Region::Vmalloc => "vmalloc",
        Region::Io => "ioremap",
    }
}

/// The PTE currently mapping `ea` (lock-free read).
pub fn pte_of(ea: u64) -> Option<Pte> {
    pgtable::walk(ea).map(|s| s.load())
}

/// Sets the PTE for `ea` to `raw` with the BUSY-waiting update (creating tables), returning the
/// old value. For tests and deliberate faults that need a PTE no allocator would produce
/// (a swap-entry pattern, a permission change without flush).
pub fn set_pte_raw(ea: u64, clr: u64, set: u64) -> Result<Pte, VmError> {
    let list = PAGE_TABLE_LOCK.lock();
    let slot = pgtable::ensure(ea, &list).map_err(|_| VmError::OutOfMemory)?;
    let mut spins = 0;
    Ok(slot.update(clr, set, &mut spins))
}

/// Clears the PTE for `ea` and flushes its HPTE (the unmap primitive, for one page).
pub fn clear_pte(ea: u64) -> Option<Pte> {
    let _list = PAGE_TABLE_LOCK.lock();
    let slot = pgtable::walk(ea)?;
    let mut spins = 0;
    Some(clear_and_flush(slot, ea, &mut spins))
}

/// Every valid HPTE that translates `ea` (primary group with H=0, secondary with H=1), read
/// through the hypervisor (H_READ), or from the table itself on powernv. More than one would
/// be a broken invariant.
pub fn find_hptes(ea: u64, out: &mut [(u64, crate::mm::hpte::Hpte); 4]) -> usize {
    use crate::hash::backend::HashBackend;
    use crate::mm::hpte::hash_4k;
    let geo = boot::hpt();
    let vsid = kernel_vsid(ea);
    let hash = hash_4k(vsid, ea);
    let mut n = 0;
    for secondary in [false, true] {
        let g = geo.group_base(hash, secondary);
        if let Ok(group) = Hpt.read_group(g) {
            for (i, h) in group.iter().enumerate() {
                if h.matches_in(vsid, ea, secondary) && n < out.len() {
                    out[n] = (g + i as u64, *h);
                    n += 1;
                }
            }
        }
    }
    n
}

/// The HPTE translating `ea`, if any (see `find_hptes`).
pub fn find_hpte(ea: u64) -> Option<(u64, crate::mm::hpte::Hpte)> {
    let mut out = [(0, crate::mm::hpte::Hpte { v: 0, r: 0 }); 4];
    if find_hptes(ea, &mut out) > 0 {
        Some(out[0])
    } else {
        None
    }
}

/// Changes a present page's protection: clears `clr` and sets `set` in its PTE (waiting for
/// BUSY), keeping the HPTE-tracking bits, then removes the HPTE so the next access re-hashes
/// with the new rights (like Linux's change_protection + flush). Returns the old PTE, or
/// `NotMapped` without writing anything when `ea` has no present PTE: setting bits in an empty
/// PTE would leave a "not present, not empty" entry that the next vmalloc there must refuse.
pub fn change_protection(ea: u64, clr: PteFlags, set: PteFlags) -> Result<Pte, VmError> {
    let _list = PAGE_TABLE_LOCK.lock();
    let slot = pgtable::walk(ea).ok_or(VmError::NotMapped(ea))?;
    // Presence only changes under page_table_lock (hash_page never sets or clears PRESENT),
    // so it still holds when the update below runs.
    if !slot.load().is_present() {
        return Err(VmError::NotMapped(ea));
    }
    let mut spins = 0;
    let old =
        slot.update(clr.bits() & !PteFlags::HPTEFLAGS.bits(), set.bits() & !PteFlags::HPTEFLAGS.bits(), &mut spins);
    flush(old, ea);
    Ok(old)
}

/// Removes the HPTE `ea`'s PTE names and leaves the PTE's slot bits stale, as an eviction by
/// the hypervisor (or by another fault's insert) would. Lock-free, like hash_page; tests and
/// benchmarks use it to make the next touch a hash fault. Returns whether one was removed.
pub fn evict_hpte(ea: u64) -> bool {
    match pgtable::walk(ea) {
        Some(slot) => flush(slot.load(), ea),
        None => false,
    }
}

/// `evict_hpte` for a page that is mapped only: a cleared PTE is left alone (see
/// `run::stress::evict_live`).
pub fn evict_live_hpte(ea: u64) -> bool {
    match pgtable::walk(ea) {
        Some(slot) => {
            let pte = slot.load();
            pte.is_present() && flush(pte, ea)
        }
        None => false,
    }
}
