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

/// The linear mapping: VA = KERNEL_BASE + PA.
pub const KERNEL_BASE: u64 = 0xc000_0000_0000_0000;

#[cfg(target_os = "none")]
mod kernel {
    use crate::arch::ppc64::boot;
    use alloc::string::String;

    /// Frames, heap, page tables. Runs once on the boot CPU with translation on.
    pub fn init() {
        let bi = boot::info();
        let (ks, ke) = boot::kernel_range();
        let kpa = (ks & 0x0fff_ffff_ffff_ffff, ke & 0x0fff_ffff_ffff_ffff);
        // Low 64 KiB: the vectors (0..0x1800) and the firmware's leftovers; then the image.
        super::frame::init(bi.mem_size, bi.linear_zone_end(), &[(0, 0x10000), (kpa.0 & !0xffff, kpa.1)]);
        super::heap::init(ke);
    }

    /// One line naming what an address is, for oops reports.
    pub fn describe_address(ea: u64) -> Option<String> {
        use super::slbe::{region_of, Region};
        Some(match region_of(ea)? {
            Region::Linear => {
                let (ks, ke) = boot::kernel_range();
                if ea >= ks && ea < ke {
                    alloc::format!("{ea:#x} is in the kernel image")
                } else if ea - boot::KERNEL_BASE < boot::info().linear_zone_end() {
                    alloc::format!("{ea:#x} is in the bolted linear zone")
                } else {
                    alloc::format!("{ea:#x} is in the linear region beyond the bolted zone")
                }
            }
            Region::Vmalloc | Region::Io => match super::vmalloc::describe(ea) {
                Some(d) => alloc::format!("{ea:#x}: {d}"),
                None => alloc::format!("{ea:#x} is in the {} region, in no area", super::vmalloc::region_name(region_of(ea)?)),
            },
        })
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;
