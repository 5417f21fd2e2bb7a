//! The Linux-style software page-table entry.
//!
//! The hash MMU never walks these tables: the hardware (here: QEMU on behalf of
//! the pseries hypervisor) only looks at the hashed page table (HPT). The
//! software PTE is the authoritative description of a mapping, and `hash_page`
//! derives HPTEs from it on demand. It also records *where* the HPTE was put
//! (`HASHPTE` + slot) so that unmapping or changing protection can find and
//! flush exactly that HPTE with `H_REMOVE`/`H_PROTECT` instead of searching
//! both groups.
//!
//! Layout of the 64-bit value:
//!
//! | bits        | name       | meaning                                             |
//! |-------------|------------|-----------------------------------------------------|
//! | 0x0001      | PRESENT    | translation valid (software)                        |
//! | 0x0002      | USER       | problem-state access allowed                        |
//! | 0x0004      | EXEC       | instruction fetch allowed (inverted into HPTE N)    |
//! | 0x0008      | GUARDED    | HPTE G                                              |
//! | 0x0010      | COHERENT   | HPTE M                                              |
//! | 0x0020      | NO_CACHE   | HPTE I                                              |
//! | 0x0040      | WRITETHRU  | HPTE W                                              |
//! | 0x0080      | DIRTY      | changed (set by hash_page on a store)               |
//! | 0x0100      | ACCESSED   | referenced                                          |
//! | 0x0200      | RW         | write allowed                                       |
//! | 0x0400      | HASHPTE    | an HPTE may exist for this PTE                      |
//! | 0x0800      | BUSY       | bit-lock: PTE+HPTE being updated                    |
//! | 0x7000      | GROUP_IX   | 3-bit slot index within the HPTE group (shift 12)   |
//! | 0x8000      | SECONDARY  | HPTE is in the secondary group                      |
//! | bits 16..63 | PFN        | physical frame number (`PFN_SHIFT` = 16)            |
//!
//! `HPTEFLAGS = BUSY | HASHPTE | SECONDARY | GROUP_IX` is the hash-table
//! bookkeeping: it is owned by `hash_page`/the flush paths, never by whoever
//! decides what a page maps to, which is why [`Pte::new`] refuses to take it.
//!
//! The PFN counts 4 KiB frames (the kernel's only page size), so a PTE can
//! describe 2^48 frames = 2^60 bytes, more than any real address.

use bitflags::bitflags;
use core::fmt;

bitflags! {
    /// Low 16 bits of a [`Pte`].
    ///
    /// `GROUP_IX` is a 3-bit *field*, not a flag: use [`HptSlot`] to read or
    /// write it, and `intersects` rather than `contains` when testing it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        const PRESENT   = 0x0001;
        const USER      = 0x0002;
        const EXEC      = 0x0004;
        const GUARDED   = 0x0008;
        const COHERENT  = 0x0010;
        const NO_CACHE  = 0x0020;
        const WRITETHRU = 0x0040;
        const DIRTY     = 0x0080;
        const ACCESSED  = 0x0100;
        const RW        = 0x0200;
        const HASHPTE   = 0x0400;
        const BUSY      = 0x0800;
        const GROUP_IX  = 0x7000;
        const SECONDARY = 0x8000;
    }
}

/// Hash-table bookkeeping bits, see the module documentation.
pub const HPTEFLAGS: PteFlags =
    PteFlags::BUSY.union(PteFlags::HASHPTE).union(PteFlags::SECONDARY).union(PteFlags::GROUP_IX);

impl PteFlags {
    /// Same as the module-level [`HPTEFLAGS`], reachable through the type.
    pub const HPTEFLAGS: PteFlags = HPTEFLAGS;
}

/// Shift of the PFN inside a PTE: the low 16 bits are flags.
pub const PFN_SHIFT: u32 = 16;
/// Largest PFN that fits above the flag bits.
pub const PFN_MAX: u64 = u64::MAX >> PFN_SHIFT;
/// log2 of the (only) page size.
pub const PAGE_SHIFT: u32 = 12;
/// Bit position of the `GROUP_IX` field.
pub const GROUP_IX_SHIFT: u32 = 12;

/// Kernel data: no EXEC so that a stray jump into data faults instead of
/// executing it.
pub const PAGE_KERNEL: PteFlags = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::COHERENT);
/// Kernel read-only data (rodata, mapped tables).
pub const PAGE_KERNEL_RO: PteFlags = PteFlags::PRESENT.union(PteFlags::COHERENT);
/// Kernel text and anything else that must be fetched from.
pub const PAGE_KERNEL_X: PteFlags = PAGE_KERNEL.union(PteFlags::EXEC);
/// Device registers: caching-inhibited and guarded so that loads are neither
/// cached nor speculatively performed, which MMIO side effects require. Not
/// COHERENT: M has no meaning (and is discouraged) with I=1.
pub const PAGE_KERNEL_IO: PteFlags =
    PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::NO_CACHE).union(PteFlags::GUARDED);

/// Where in the HPT the HPTE of a PTE lives: which of the two candidate groups
/// and which of its 8 entries. Together with the hash of the address this
/// gives the exact HPTE index to flush.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HptSlot {
    pub secondary: bool,
    /// 0..=7
    pub index: u8,
}

impl HptSlot {
    /// Panics if `index` > 7: a larger index cannot be encoded and would
    /// silently point at a different HPTE.
    pub const fn new(secondary: bool, index: u8) -> HptSlot {
        assert!(index < 8, "HPTE group has 8 slots");
        HptSlot { secondary, index }
    }

    /// The encoding inside a PTE (`GROUP_IX` | `SECONDARY`), without HASHPTE.
    pub const fn bits(self) -> u64 {
        (((self.index & 7) as u64) << GROUP_IX_SHIFT) | if self.secondary { PteFlags::SECONDARY.bits() } else { 0 }
    }

    /// The slot of HPTE index `ptex` in its group (the group itself is implied by the hash).
    #[inline(always)]
    pub const fn of_ptex(ptex: u64, secondary: bool) -> HptSlot {
        HptSlot { secondary, index: (ptex & 7) as u8 }
    }

    /// Decodes the slot bits of a raw PTE value; all other bits are ignored.
    /// Does not look at HASHPTE: use [`Pte::slot`] when validity matters.
    pub const fn from_pte_bits(raw: u64) -> HptSlot {
        HptSlot {
            secondary: raw & PteFlags::SECONDARY.bits() != 0,
            index: ((raw & PteFlags::GROUP_IX.bits()) >> GROUP_IX_SHIFT) as u8,
        }
    }
}

/// `P3` = primary group, slot 3; `S3` = secondary group, slot 3.
impl fmt::Display for HptSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = if self.secondary { 'S' } else { 'P' };
        write!(f, "{}{}", g, self.index)
    }
}

/// A software PTE; see the module documentation for the layout.
///
/// `repr(transparent)` so page tables can be arrays of `Pte` (or of an atomic
/// u64 converted through [`Pte::raw`]) with no layout surprises.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Pte(pub u64);

impl Pte {
    pub const PFN_SHIFT: u32 = PFN_SHIFT;
    pub const NONE: Pte = Pte(0);

    /// Builds a PTE from scratch. HPTEFLAGS bits in `flags` are dropped
    /// because a fresh translation has no HPTE yet and must not inherit a
    /// lock or a slot. PFN bits above [`PFN_MAX`] are dropped as well (they
    /// cannot be represented); debug builds assert instead.
    pub const fn new(pfn: u64, flags: PteFlags) -> Pte {
        debug_assert!(pfn <= PFN_MAX, "PFN does not fit in a PTE");
        Pte(((pfn & PFN_MAX) << PFN_SHIFT) | (flags.bits() & !HPTEFLAGS.bits()))
    }

    pub const fn raw(self) -> u64 {
        self.0
    }

    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_truncate(self.0 & 0xffff)
    }

    pub const fn pfn(self) -> u64 {
        self.0 >> PFN_SHIFT
    }

    /// Physical address of the frame (4 KiB pages).
    pub const fn paddr(self) -> u64 {
        self.pfn() << PAGE_SHIFT
    }

    pub const fn is_present(self) -> bool {
        self.0 & PteFlags::PRESENT.bits() != 0
    }

    /// True for a PTE that maps nothing and holds no software payload. A
    /// cleared PTE may still carry slot bits until its HPTE is flushed, so
    /// those are ignored here.
    pub const fn is_none(self) -> bool {
        self.0 & !HPTEFLAGS.bits() == 0
    }

    /// Someone holds the PTE bit-lock; nobody else may change PTE or HPTE.
    pub const fn is_busy(self) -> bool {
        self.0 & PteFlags::BUSY.bits() != 0
    }

    /// An HPTE may exist for this PTE; it must be flushed before the
    /// translation changes.
    pub const fn has_hashpte(self) -> bool {
        self.0 & PteFlags::HASHPTE.bits() != 0
    }

    /// The recorded HPTE slot, or None when no HPTE can exist (the slot
    /// bits are meaningless without HASHPTE).
    pub const fn slot(self) -> Option<HptSlot> {
        if self.has_hashpte() {
            Some(HptSlot::from_pte_bits(self.0))
        } else {
            None
        }
    }

    /// Records that an HPTE now lives in `s`. Keeps every other bit
    /// (including BUSY: the caller still owns the lock).
    pub const fn with_slot(self, s: HptSlot) -> Pte {
        let cleared = self.0 & !(PteFlags::GROUP_IX.bits() | PteFlags::SECONDARY.bits());
        Pte(cleared | PteFlags::HASHPTE.bits() | s.bits())
    }

    pub const fn without_hpte_flags(self) -> Pte {
        Pte(self.0 & !HPTEFLAGS.bits())
    }

    pub const fn with(self, f: PteFlags) -> Pte {
        Pte(self.0 | f.bits())
    }

    pub const fn without(self, f: PteFlags) -> Pte {
        Pte(self.0 & !f.bits())
    }

    /// The software payload of a non-present PTE (everything except the
    /// hash-table bookkeeping); for a present PTE this is just the PTE
    /// without HPTEFLAGS.
    pub const fn swap_bits(self) -> u64 {
        self.0 & !HPTEFLAGS.bits()
    }
}

impl Default for Pte {
    fn default() -> Self {
        Pte::NONE
    }
}

impl From<Pte> for u64 {
    fn from(p: Pte) -> u64 {
        p.0
    }
}

impl From<u64> for Pte {
    fn from(v: u64) -> Pte {
        Pte(v)
    }
}

/// Debug is the same as Display: a raw hex dump alone is useless when
/// staring at a failed assertion.
impl fmt::Debug for Pte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Examples:
/// `pte 0x0000000001230783 pfn=0x123 P U RW A D`,
/// `pte 0x0000000000000000 none`,
/// `pte 0x0000000000abc000 not-present swap=0xabc000` (HPTE bookkeeping bits
/// are left out of the swap payload and printed separately).
///
/// Legend: P present, U user, RW/RO writable or not, X exec, A accessed,
/// D dirty, M coherent, I cache-inhibited, G guarded, WT write-through,
/// HASHPTE + slot (P = primary / S = secondary group, then index), BUSY.
impl fmt::Display for Pte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pte {:#018x}", self.0)?;
        let fl = self.flags();
        if self.is_none() {
            f.write_str(" none")?;
        } else if !self.is_present() {
            write!(f, " not-present swap={:#x}", self.swap_bits())?;
        } else {
            write!(f, " pfn={:#x} P", self.pfn())?;
            let names: [(PteFlags, &str); 9] = [
                (PteFlags::USER, " U"),
                (PteFlags::RW, " RW"),
                (PteFlags::EXEC, " X"),
                (PteFlags::ACCESSED, " A"),
                (PteFlags::DIRTY, " D"),
                (PteFlags::COHERENT, " M"),
                (PteFlags::NO_CACHE, " I"),
                (PteFlags::GUARDED, " G"),
                (PteFlags::WRITETHRU, " WT"),
            ];
            for (flag, name) in names {
                if fl.contains(flag) {
                    f.write_str(name)?;
                } else if flag == PteFlags::RW {
                    f.write_str(" RO")?;
                }
            }
        }
        match self.slot() {
            Some(s) => write!(f, " HASHPTE slot={}", s)?,
            None => {
                let stale = self.0 & (PteFlags::GROUP_IX.bits() | PteFlags::SECONDARY.bits());
                if stale != 0 {
                    write!(f, " slotbits={:#x}", stale)?;
                }
            }
        }
        if self.is_busy() {
            f.write_str(" BUSY")?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn flag_values_match_layout() {
        assert_eq!(PteFlags::PRESENT.bits(), 0x0001);
        assert_eq!(PteFlags::USER.bits(), 0x0002);
        assert_eq!(PteFlags::EXEC.bits(), 0x0004);
        assert_eq!(PteFlags::GUARDED.bits(), 0x0008);
        assert_eq!(PteFlags::COHERENT.bits(), 0x0010);
        assert_eq!(PteFlags::NO_CACHE.bits(), 0x0020);
        assert_eq!(PteFlags::WRITETHRU.bits(), 0x0040);
        assert_eq!(PteFlags::DIRTY.bits(), 0x0080);
        assert_eq!(PteFlags::ACCESSED.bits(), 0x0100);
        assert_eq!(PteFlags::RW.bits(), 0x0200);
        assert_eq!(PteFlags::HASHPTE.bits(), 0x0400);
        assert_eq!(PteFlags::BUSY.bits(), 0x0800);
        assert_eq!(PteFlags::GROUP_IX.bits(), 0x7000);
        assert_eq!(PteFlags::SECONDARY.bits(), 0x8000);
        assert_eq!(PteFlags::all().bits(), 0xffff);
        assert_eq!(HPTEFLAGS.bits(), 0xfc00);
        assert_eq!(PteFlags::HPTEFLAGS, HPTEFLAGS);
        assert_eq!(Pte::PFN_SHIFT, 16);
        assert_eq!(PFN_MAX, 0xffff_ffff_ffff);
    }

    #[test]
    fn presets() {
        assert_eq!(PAGE_KERNEL.bits(), 0x0211);
        assert_eq!(PAGE_KERNEL_RO.bits(), 0x0011);
        assert_eq!(PAGE_KERNEL_X.bits(), 0x0215);
        assert_eq!(PAGE_KERNEL_IO.bits(), 0x0229);
        for p in [PAGE_KERNEL, PAGE_KERNEL_RO, PAGE_KERNEL_X, PAGE_KERNEL_IO] {
            assert!(p.contains(PteFlags::PRESENT));
            assert!(!p.contains(PteFlags::USER));
            assert!(!p.intersects(HPTEFLAGS));
        }
        assert!(!PAGE_KERNEL.contains(PteFlags::EXEC));
        assert!(!PAGE_KERNEL_IO.contains(PteFlags::EXEC));
        assert!(!PAGE_KERNEL_RO.contains(PteFlags::RW));
    }

    #[test]
    fn new_and_accessors() {
        let p = Pte::new(0x123, PAGE_KERNEL);
        assert_eq!(p.raw(), 0x0123_0211);
        assert_eq!(p.pfn(), 0x123);
        assert_eq!(p.paddr(), 0x123000);
        assert_eq!(p.flags(), PAGE_KERNEL);
        assert!(p.is_present());
        assert!(!p.is_none());
        assert!(!p.is_busy());
        assert!(!p.has_hashpte());
        assert_eq!(p.slot(), None);
        assert_eq!(u64::from(p), p.raw());
        assert_eq!(Pte::from(p.raw()), p);
        assert_eq!(Pte::default(), Pte::NONE);
    }

    #[test]
    fn new_masks_hpteflags() {
        let p = Pte::new(7, PteFlags::all());
        assert_eq!(p.raw(), (7 << 16) | 0x03ff);
        assert!(!p.is_busy());
        assert!(!p.has_hashpte());
        assert_eq!(p.flags() & HPTEFLAGS, PteFlags::empty());
    }

    #[test]
    fn new_pfn_extremes() {
        assert_eq!(Pte::new(0, PteFlags::PRESENT).raw(), 1);
        let p = Pte::new(PFN_MAX, PteFlags::PRESENT);
        assert_eq!(p.pfn(), PFN_MAX);
        assert_eq!(p.raw(), 0xffff_ffff_ffff_0001);
        assert_eq!(p.paddr(), PFN_MAX << 12);
    }

    #[test]
    #[should_panic(expected = "PFN does not fit")]
    #[cfg(debug_assertions)]
    fn new_pfn_too_large_asserts_in_debug() {
        let _ = Pte::new(PFN_MAX + 1, PteFlags::PRESENT);
    }

    #[test]
    fn flags_ignores_pfn() {
        let p = Pte(0xffff_ffff_ffff_0000 | 0x0201);
        assert_eq!(p.flags(), PteFlags::PRESENT | PteFlags::RW);
        assert_eq!(Pte(u64::MAX).flags(), PteFlags::all());
    }

    #[test]
    fn is_none_ignores_hpteflags() {
        assert!(Pte::NONE.is_none());
        for bits in 0..=0xffffu64 {
            let p = Pte(bits);
            assert_eq!(p.is_none(), bits & !0xfc00 == 0, "{:#x}", bits);
        }
        assert!(!Pte(1 << 16).is_none());
        assert!(!Pte(PteFlags::DIRTY.bits()).is_none());
    }

    #[test]
    fn slot_bits_roundtrip() {
        for secondary in [false, true] {
            for index in 0..8u8 {
                let s = HptSlot::new(secondary, index);
                let b = s.bits();
                assert_eq!(b, ((index as u64) << 12) | if secondary { 0x8000 } else { 0 });
                assert_eq!(b & !0xf000, 0);
                assert_eq!(HptSlot::from_pte_bits(b), s);
                // Surrounding bits must not leak into the decoded slot.
                assert_eq!(HptSlot::from_pte_bits(b | 0xffff_ffff_ffff_0fff), s);
            }
        }
    }

    #[test]
    #[should_panic(expected = "8 slots")]
    fn slot_index_out_of_range_panics() {
        let _ = HptSlot::new(false, 8);
    }

    #[test]
    fn slot_display() {
        assert_eq!(format!("{}", HptSlot::new(false, 0)), "P0");
        assert_eq!(format!("{}", HptSlot::new(true, 7)), "S7");
    }

    #[test]
    fn slot_requires_hashpte() {
        let s = HptSlot::new(true, 5);
        let p = Pte(Pte::new(1, PAGE_KERNEL).raw() | s.bits());
        assert_eq!(p.slot(), None);
        let p = p.with(PteFlags::HASHPTE);
        assert_eq!(p.slot(), Some(s));
    }

    #[test]
    fn with_slot_replaces_old_slot_and_keeps_rest() {
        let base = Pte::new(0xabc, PAGE_KERNEL_X | PteFlags::DIRTY | PteFlags::ACCESSED).with(PteFlags::BUSY);
        for s1sec in [false, true] {
            for s1 in 0..8 {
                let first = base.with_slot(HptSlot::new(s1sec, s1));
                assert_eq!(first.slot(), Some(HptSlot::new(s1sec, s1)));
                for s2sec in [false, true] {
                    for s2 in 0..8 {
                        let s = HptSlot::new(s2sec, s2);
                        let p = first.with_slot(s);
                        assert_eq!(p.slot(), Some(s));
                        assert!(p.is_busy());
                        assert_eq!(p.pfn(), 0xabc);
                        assert_eq!(p.without_hpte_flags(), base.without_hpte_flags());
                        assert_eq!(p.raw() & 0x0fff, base.raw() & 0x0fff | 0x400);
                    }
                }
            }
        }
    }

    #[test]
    fn without_hpte_flags_clears_all_bookkeeping() {
        let p = Pte::new(9, PAGE_KERNEL).with_slot(HptSlot::new(true, 7)).with(PteFlags::BUSY);
        assert_eq!(p.raw() & 0xfc00, 0xfc00);
        let q = p.without_hpte_flags();
        assert_eq!(q, Pte::new(9, PAGE_KERNEL));
        assert_eq!(q.slot(), None);
        assert!(!q.is_busy());
    }

    #[test]
    fn with_without() {
        let p = Pte::new(1, PteFlags::PRESENT);
        let q = p.with(PteFlags::RW | PteFlags::DIRTY);
        assert_eq!(q.raw(), 0x1_0281);
        assert_eq!(q.without(PteFlags::DIRTY).raw(), 0x1_0201);
        assert_eq!(q.without(PteFlags::empty()), q);
        assert_eq!(q.with(PteFlags::empty()), q);
        assert_eq!(q.without(PteFlags::all()).raw(), 0x1_0000);
        // with/without never touch the PFN.
        assert_eq!(Pte(u64::MAX).without(PteFlags::all()).raw(), 0xffff_ffff_ffff_0000);
    }

    #[test]
    fn busy_and_hashpte_predicates() {
        assert!(Pte(0x800).is_busy());
        assert!(!Pte(0x7ff).is_busy());
        assert!(Pte(0x400).has_hashpte());
        assert!(!Pte(0xfbff).has_hashpte());
        assert!(Pte(1).is_present());
        assert!(!Pte(0xfffe).is_present());
    }

    #[test]
    fn display_present() {
        let p = Pte::new(0x123, PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY)
            .with_slot(HptSlot::new(true, 3));
        assert_eq!(format!("{}", p), "pte 0x000000000123b781 pfn=0x123 P RW A D HASHPTE slot=S3");
        assert_eq!(format!("{:?}", p), format!("{}", p));
    }

    #[test]
    fn display_all_attributes() {
        let p = Pte::new(0x1, PteFlags::all()).with(PteFlags::BUSY);
        assert_eq!(format!("{}", p), "pte 0x0000000000010bff pfn=0x1 P U RW X A D M I G WT BUSY");
    }

    #[test]
    fn display_read_only_kernel() {
        let p = Pte::new(0x42, PAGE_KERNEL_RO);
        assert_eq!(format!("{}", p), "pte 0x0000000000420011 pfn=0x42 P RO M");
        let p = Pte::new(0x42, PAGE_KERNEL_IO).with_slot(HptSlot::new(false, 0));
        assert_eq!(format!("{}", p), "pte 0x0000000000420629 pfn=0x42 P RW I G HASHPTE slot=P0");
    }

    #[test]
    fn display_none() {
        assert_eq!(format!("{}", Pte::NONE), "pte 0x0000000000000000 none");
        // A cleared PTE whose HPTE has not been flushed yet.
        let stale = Pte(0).with_slot(HptSlot::new(false, 2));
        assert_eq!(format!("{}", stale), "pte 0x0000000000002400 none HASHPTE slot=P2");
        assert_eq!(format!("{}", Pte(0x800)), "pte 0x0000000000000800 none BUSY");
        assert_eq!(format!("{}", Pte(0x3000)), "pte 0x0000000000003000 none slotbits=0x3000");
    }

    #[test]
    fn display_not_present() {
        assert_eq!(format!("{}", Pte(0xabc_0000)), "pte 0x000000000abc0000 not-present swap=0xabc0000");
        assert_eq!(
            format!("{}", Pte(0xabc_0000 | 0x0282 | 0xc400)),
            "pte 0x000000000abcc682 not-present swap=0xabc0282 HASHPTE slot=S4"
        );
    }
}
