//! Memory management: frames, heap, the kernel's software page tables, vmalloc and ioremap,
//! and the pure bit layouts they share with the hash-fault path.
pub mod bitmap;
pub mod hpte;
pub mod layout;
pub mod pte;
pub mod slbe;

#[cfg(target_os = "none")]
pub mod frame;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod pgtable;
#[cfg(target_os = "none")]
pub mod slb;
#[cfg(target_os = "none")]
pub mod vmalloc;

pub use layout::{linear_pa, linear_va, KERNEL_BASE};

#[cfg(target_os = "none")]
mod kernel {
    use crate::arch::ppc64::boot;
    use alloc::string::String;

    /// Frames, heap, page tables. Runs once on the boot CPU with translation on.
    pub fn init() {
        let bi = boot::info();
        let (ks, ke) = boot::kernel_range();
        let kpa = (crate::mm::linear_pa(ks), crate::mm::linear_pa(ke));
        // Low 64 KiB: the vectors (0..0x1800) and the firmware's leftovers; then the image;
        // on powernv also the HPT and what skiboot keeps for itself.
        let mut reserved = [(0u64, 0u64); super::frame::MAX_RESERVED];
        reserved[0] = (0, 0x10000);
        reserved[1] = (kpa.0 & !0xffff, kpa.1);
        let mut n = 2;
        if crate::arch::ppc64::platform::powernv() {
            for r in crate::arch::ppc64::powernv::reserved(bi.mem_size) {
                assert!(n < reserved.len(), "more reserved memory ranges than the frame allocator keeps");
                reserved[n] = r;
                n += 1;
            }
        }
        super::frame::init(bi.mem_size, bi.linear_zone_end(), &reserved[..n]);
        super::heap::init(ke);
        if let Err(e) = super::pgtable::init() {
            panic!("no frames for the page-table roots: {e}");
        }
        unmap_guard_pages();
        protect_empty_tables();
    }

    /// Makes the shared empty page tables read-only in the HPT: every walk of an address
    /// without tables reads them, and a store into one would "map" that page for every such
    /// address at once. Nothing writes them after `pgtable::init` (hash_page never stores to
    /// a PTE that is not present), so a store is a bug, and now an oops.
    fn protect_empty_tables() {
        use crate::hash::backend::HashBackend;
        use crate::mm::hpte::h_protect_flags;
        use crate::mm::pte::PAGE_KERNEL_RO;
        for va in super::pgtable::empty_tables() {
            let Some((ptex, h)) = super::vmalloc::find_hpte(va) else {
                panic!("no bolted HPTE for the empty page table at {va:#x}");
            };
            if let Err(e) = crate::hash::hpt::Hpt.protect(ptex, h.avpn(), h_protect_flags(PAGE_KERNEL_RO)) {
                panic!("cannot make the empty page table at {va:#x} read-only: {e:?}");
            }
        }
    }

    /// The per-CPU MMU state the fault paths read: page-table roots, hash mask, segment table.
    pub fn init_cpu(cpu: usize) {
        let p = crate::arch::ppc64::percpu::paca(cpu);
        boot::init_cpu_mmu(cpu);
        // The fault path's HPTE dword-1 table, reached off r13 (hash::backend `hpte_r`).
        p.hpte_r.store(&crate::hash::protocol::HPTE_R as *const _ as u64, core::sync::atomic::Ordering::Relaxed);
        super::pgtable::install(p);
    }

    /// Removes the bolted linear HPTE of every stack's guard page, so that running off the end
    /// of a stack faults (and oopses) instead of writing into whatever lies below.
    fn unmap_guard_pages() {
        use crate::hash::backend::HashBackend;
        for (va, _, _) in crate::arch::ppc64::percpu::guard_pages() {
            if let Some((ptex, h)) = super::vmalloc::find_hpte(va) {
                if let Err(e) = crate::hash::hpt::Hpt.remove(ptex, h.avpn()) {
                    panic!("cannot unmap the stack guard page at {va:#x}: {e:?}");
                }
            }
        }
    }

    pub use crate::arch::ppc64::percpu::guard_page_of;

    /// One line naming what an address is, for oops reports.
    pub fn describe_address(ea: u64) -> Option<String> {
        use super::slbe::{region_of, Region};
        Some(match region_of(ea)? {
            Region::Linear => {
                let (ks, ke) = boot::kernel_range();
                if let Some((what, cpu)) = guard_page_of(ea) {
                    alloc::format!("{ea:#x} is in the guard page below CPU {cpu}'s {what}: STACK OVERFLOW")
                } else if ea >= ks && ea < ke {
                    alloc::format!("{ea:#x} is in the kernel image")
                } else if ea - boot::KERNEL_BASE < boot::info().linear_zone_end() {
                    alloc::format!("{ea:#x} is in the bolted linear zone")
                } else {
                    alloc::format!("{ea:#x} is in the linear region beyond the bolted zone")
                }
            }
            Region::Vmalloc | Region::Io => match super::vmalloc::describe(ea) {
                Some(d) => alloc::format!("{ea:#x}: {d}"),
                None => alloc::format!(
                    "{ea:#x} is in the {} region, in no area",
                    super::vmalloc::region_name(region_of(ea)?)
                ),
            },
        })
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;
