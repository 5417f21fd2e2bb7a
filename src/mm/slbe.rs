//! SLB entries for the kernel's 256M segments and the VSID scheme.
//!
//! The kernel's effective address space is split by the top nibble:
//! `0xc` = linear map of RAM, `0xd` = vmalloc, `0xe` = I/O (ioremap).
//! Every kernel segment gets a VSID derived only from its ESID, so SLB misses
//! can be resolved without any lookup table.
//!
//! VSID scheme (Linux 2.6): proto-VSID = ESID = `ea >> 28` (36 bits), then
//! `vsid = esid * 200730139 mod (2^36 - 1)`. The multiplier scatters the
//! consecutive ESIDs of a region over the whole VSID space, so their hashes
//! (VSID xor page) land in different HPT groups instead of piling up.

use bitflags::bitflags;
use core::fmt;

/// Kernel address regions, by the top nibble of the effective address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Region {
    Linear,
    Vmalloc,
    Io,
}

impl Region {
    /// First effective address of the region.
    pub const fn base(self) -> u64 {
        match self {
            Region::Linear => 0xc000_0000_0000_0000,
            Region::Vmalloc => 0xd000_0000_0000_0000,
            Region::Io => 0xe000_0000_0000_0000,
        }
    }
}

/// None for everything outside the three kernel regions, in particular for
/// user addresses (top nibble 0): those must never get a kernel VSID.
pub const fn region_of(ea: u64) -> Option<Region> {
    match ea >> 60 {
        0xc => Some(Region::Linear),
        0xd => Some(Region::Vmalloc),
        0xe => Some(Region::Io),
        _ => None,
    }
}

/// log2 of the segment size.
pub const SEGMENT_SHIFT: u32 = 28;
/// Bits of the effective address that select the segment.
pub const ESID_MASK: u64 = 0xffff_ffff_f000_0000;
/// Number of bits in a kernel VSID.
pub const VSID_BITS: u32 = 36;
/// The modulus of the scramble, 2^36 - 1.
pub const VSID_MODULUS: u64 = (1 << VSID_BITS) - 1;
/// The scramble multiplier. It is prime and does not divide 2^36 - 1
/// (= 3^3 * 5 * 7 * 13 * 19 * 37 * 73 * 109), so multiplication by it is a
/// bijection on the residues mod 2^36 - 1: distinct ESIDs below 2^36 - 1 get
/// distinct VSIDs. The only ESIDs that map to VSID 0 are 0 and 2^36 - 1,
/// neither of which is in a kernel region (top nibble 0 and 0xf).
pub const VSID_MULTIPLIER: u64 = 200_730_139;

/// The kernel VSID for the segment containing `ea`.
///
/// `esid * VSID_MULTIPLIER` is below 2^64 (36 + 28 bits), and the reduction
/// mod 2^36 - 1 folds the high part onto the low part (2^36 = 1 mod 2^36 - 1)
/// rather than dividing, as in Linux. Defined for any `ea`, but only
/// collision-free and non-zero for addresses in a [`Region`].
pub const fn kernel_vsid(ea: u64) -> u64 {
    let esid = ea >> SEGMENT_SHIFT;
    let x = esid * VSID_MULTIPLIER;
    let x = (x >> VSID_BITS) + (x & VSID_MODULUS);
    // x < 2^28 + 2^36, so one more fold leaves x <= 2^36 - 1 + 1.
    let x = (x >> VSID_BITS) + (x & VSID_MODULUS);
    if x == VSID_MODULUS {
        0
    } else {
        x
    }
}

bitflags! {
    /// Flag bits of the SLB VSID word (`slbmte` RS, `slbmfev` result).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SlbFlags: u64 {
        /// Supervisor key.
        const KS = 0x800;
        /// Problem-state key.
        const KP = 0x400;
        /// No-execute segment.
        const N  = 0x200;
        /// Large page (with LP); clear = 4K pages.
        const L  = 0x100;
        /// Class (for slbie of a class).
        const C  = 0x80;
    }
}

/// Kernel segments: Ks=0 so supervisor accesses use key 0 (pp 0..2 = RW),
/// Kp=1 so user accesses use key 1 and kernel-only pp values deny them.
pub const KERNEL_SLB_FLAGS: SlbFlags = SlbFlags::KP;

/// Valid bit of the ESID word.
pub const SLB_ESID_V: u64 = 0x0800_0000;
/// VSID field of the VSID word (256M segments).
pub const SLB_VSID_MASK: u64 = 0x3fff_ffff_ffff_f000;
pub const SLB_VSID_SHIFT: u32 = 12;
/// Segment size field of the VSID word (00 = 256M).
pub const SLB_VSID_B_MASK: u64 = 0xc000_0000_0000_0000;
/// `slbmte` takes the entry number in the low 12 bits of RB; the bits between
/// it and V are reserved. The architecture allows up to 4096 entries, but no
/// implementation has more than 64 (QEMU: 32 for POWER7 and later), so this
/// module refuses anything larger.
pub const SLB_INDEX_LIMIT: usize = 64;
/// SLB size of QEMU's POWER7/8/9/10 models: the valid indices for `slbmte`.
pub const QEMU_SLB_SIZE: usize = 32;

/// One SLB entry in decoded form. `esid` and `vsid` are the segment numbers,
/// not the shifted register words.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SlbEntry {
    /// `ea >> 28`
    pub esid: u64,
    pub vsid: u64,
    pub flags: SlbFlags,
    pub valid: bool,
    /// The SLB slot this entry is loaded into (only carried by RB; reads back
    /// as whatever index bits the word given to `from_raw` had).
    pub index: u16,
}

impl SlbEntry {
    /// A valid kernel entry for the segment containing `ea`, to be written
    /// to slot `index`.
    ///
    /// Panics if `ea` is not in a kernel region (a user segment with a kernel
    /// VSID would alias kernel memory) or if `index` cannot be encoded.
    pub const fn kernel(ea: u64, index: usize) -> SlbEntry {
        assert!(region_of(ea).is_some(), "not a kernel address");
        assert!(index < SLB_INDEX_LIMIT, "SLB index out of range");
        SlbEntry {
            esid: ea >> SEGMENT_SHIFT,
            vsid: kernel_vsid(ea),
            flags: KERNEL_SLB_FLAGS,
            valid: true,
            index: index as u16,
        }
    }

    /// The RB operand of `slbmte`: ESID | V | index.
    pub const fn rb(self) -> u64 {
        ((self.esid << SEGMENT_SHIFT) & ESID_MASK)
            | if self.valid { SLB_ESID_V } else { 0 }
            | (self.index as u64 & 0xfff)
    }

    /// The RS operand of `slbmte`: VSID << 12 | flags (B = 00, 256M).
    pub const fn rs(self) -> u64 {
        ((self.vsid << SLB_VSID_SHIFT) & SLB_VSID_MASK) | self.flags.bits()
    }

    /// Decodes an entry as read back with `slbmfee`/`slbmfev` (or an RB/RS
    /// pair as given to `slbmte`). The segment size field is ignored: only
    /// 256M segments are used.
    pub const fn from_raw(rb_or_esid_word: u64, vsid_word: u64) -> SlbEntry {
        SlbEntry {
            esid: (rb_or_esid_word & ESID_MASK) >> SEGMENT_SHIFT,
            vsid: (vsid_word & SLB_VSID_MASK) >> SLB_VSID_SHIFT,
            flags: SlbFlags::from_bits_truncate(vsid_word),
            valid: rb_or_esid_word & SLB_ESID_V != 0,
            index: (rb_or_esid_word & 0xfff) as u16,
        }
    }

    pub const fn is_valid(self) -> bool {
        self.valid
    }

    pub const fn ea_base(self) -> u64 {
        self.esid << SEGMENT_SHIFT
    }

    pub const fn vsid(self) -> u64 {
        self.vsid
    }

    /// Whether this (valid) entry translates `ea`.
    pub const fn contains(self, ea: u64) -> bool {
        self.valid && ea >> SEGMENT_SHIFT == self.esid
    }
}

/// Example: `slb[2] ea=0xd000000000000000 esid=0xd00000000 vsid=0xf09b89af5 Kp V`.
impl fmt::Display for SlbEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slb[{}] ea={:#018x} esid={:#x} vsid={:#x}", self.index, self.ea_base(), self.esid, self.vsid)?;
        let names: [(SlbFlags, &str); 5] = [
            (SlbFlags::KS, " Ks"),
            (SlbFlags::KP, " Kp"),
            (SlbFlags::N, " N"),
            (SlbFlags::L, " L"),
            (SlbFlags::C, " C"),
        ];
        for (flag, name) in names {
            if self.flags.contains(flag) {
                f.write_str(name)?;
            }
        }
        f.write_str(if self.valid { " V" } else { " invalid" })
    }
}

/// Segments per on-demand region that the page tables can reach (2^39 bytes / 256M).
pub const REGION_SEGMENTS: usize = 1 << (39 - SEGMENT_SHIFT);

/// The `slbmte` RS word (VSID | flags) of every segment of the vmalloc and I/O regions,
/// computed at compile time from [`kernel_vsid`]: the 0x380 handler (assembly) loads its entry
/// instead of computing the scramble, so the VSID scheme has one definition.
/// Index: [`SegmentTable::index`].
#[repr(C, align(4096))]
pub struct SegmentTable(pub [u64; 2 * REGION_SEGMENTS]);

impl SegmentTable {
    const fn build() -> SegmentTable {
        let mut t = [0u64; 2 * REGION_SEGMENTS];
        let mut i = 0;
        while i < 2 * REGION_SEGMENTS {
            let base = if i < REGION_SEGMENTS { Region::Vmalloc.base() } else { Region::Io.base() };
            let ea = base + (((i % REGION_SEGMENTS) as u64) << SEGMENT_SHIFT);
            t[i] = SlbEntry::kernel(ea, 0).rs();
            i += 1;
        }
        SegmentTable(t)
    }

    /// The entry for `ea`: vmalloc segments first, then I/O. None outside the two regions'
    /// page-table span. (The assembly computes `((ea >> 60) - 0xd) * REGION_SEGMENTS +
    /// ((ea >> 28) & (REGION_SEGMENTS - 1))` after the same checks.)
    pub const fn index(ea: u64) -> Option<usize> {
        let r = match region_of(ea) {
            Some(Region::Vmalloc) => 0,
            Some(Region::Io) => 1,
            _ => return None,
        };
        if (ea << 4) >> 43 != 0 {
            return None;
        }
        Some(r * REGION_SEGMENTS + ((ea >> SEGMENT_SHIFT) as usize & (REGION_SEGMENTS - 1)))
    }

    pub const fn rs(&self, ea: u64) -> Option<u64> {
        match Self::index(ea) {
            Some(i) => Some(self.0[i]),
            None => None,
        }
    }
}

pub static SEGMENTS: SegmentTable = SegmentTable::build();

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::HashSet;
    use std::format;

    // QEMU target/ppc/mmu-hash64.h
    const QEMU_SLB_ESID_ESID: u64 = 0xFFFFFFFFF0000000;
    const QEMU_SLB_ESID_V: u64 = 0x0000000008000000;
    const QEMU_SLB_VSID_VSID: u64 = 0x3FFFFFFFFFFFF000;
    const QEMU_SLB_VSID_B: u64 = 0xc000000000000000;

    fn slow_vsid(ea: u64) -> u64 {
        (((ea >> 28) as u128 * 200_730_139u128) % ((1u128 << 36) - 1)) as u64
    }

    #[test]
    fn constants_match_qemu() {
        assert_eq!(ESID_MASK, QEMU_SLB_ESID_ESID);
        assert_eq!(SLB_ESID_V, QEMU_SLB_ESID_V);
        assert_eq!(SLB_VSID_MASK, QEMU_SLB_VSID_VSID);
        assert_eq!(SLB_VSID_B_MASK, QEMU_SLB_VSID_B);
        assert_eq!(SlbFlags::KS.bits(), 0x800);
        assert_eq!(SlbFlags::KP.bits(), 0x400);
        assert_eq!(SlbFlags::N.bits(), 0x200);
        assert_eq!(SlbFlags::L.bits(), 0x100);
        assert_eq!(SlbFlags::C.bits(), 0x80);
        assert_eq!(VSID_MODULUS, 0xf_ffff_ffff);
    }

    #[test]
    fn regions() {
        assert_eq!(region_of(0xc000_0000_0000_0000), Some(Region::Linear));
        assert_eq!(region_of(0xcfff_ffff_ffff_ffff), Some(Region::Linear));
        assert_eq!(region_of(0xd000_0000_0000_0000), Some(Region::Vmalloc));
        assert_eq!(region_of(0xdfff_ffff_ffff_ffff), Some(Region::Vmalloc));
        assert_eq!(region_of(0xe000_0000_0000_0000), Some(Region::Io));
        assert_eq!(region_of(0xefff_ffff_ffff_ffff), Some(Region::Io));
        assert_eq!(region_of(0), None);
        assert_eq!(region_of(0x0000_7fff_ffff_ffff), None);
        assert_eq!(region_of(0xbfff_ffff_ffff_ffff), None);
        assert_eq!(region_of(0xf000_0000_0000_0000), None);
        assert_eq!(region_of(u64::MAX), None);
        for n in 0..16u64 {
            let r = region_of(n << 60);
            assert_eq!(r.is_some(), (0xc..=0xe).contains(&n));
        }
        for r in [Region::Linear, Region::Vmalloc, Region::Io] {
            assert_eq!(region_of(r.base()), Some(r));
        }
    }

    #[test]
    fn vsid_known_values() {
        assert_eq!(kernel_vsid(0), 0);
        assert_eq!(kernel_vsid(1 << 28), VSID_MULTIPLIER);
        assert_eq!(kernel_vsid(0x0fff_ffff), 0);
        // The only other ESID mapping to 0, outside every kernel region.
        assert_eq!(kernel_vsid(VSID_MODULUS << 28), 0);
        assert_eq!(kernel_vsid(0xc000_0000_0000_0000), slow_vsid(0xc000_0000_0000_0000));
    }

    #[test]
    fn fold_equals_modulo() {
        let mut ea = 0x1234_5678_9abc_def0u64;
        for _ in 0..100_000 {
            assert_eq!(kernel_vsid(ea), slow_vsid(ea), "ea={:#x}", ea);
            ea = ea.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        }
        for esid in [0u64, 1, 2, VSID_MODULUS - 1, VSID_MODULUS, 1 << 35, (1 << 36) - 2] {
            let ea = esid << 28;
            assert_eq!(kernel_vsid(ea), slow_vsid(ea), "esid={:#x}", esid);
        }
        // Low (in-segment) bits never matter.
        assert_eq!(kernel_vsid(0xd000_0000_0fff_ffff), kernel_vsid(0xd000_0000_0000_0000));
    }

    #[test]
    fn vsids_collision_free_nonzero_36bit() {
        let mut seen = HashSet::new();
        for r in [Region::Linear, Region::Vmalloc, Region::Io] {
            let first = r.base() >> 28;
            // Start, end and some middle of each region.
            let esids = (0..2000u64)
                .map(move |i| first + i)
                .chain((0..2000u64).map(move |i| first + 0x0fff_ffff - i))
                .chain((0..1000u64).map(move |i| first + 0x0800_0000 + i * 0x1_0001));
            for esid in esids {
                let ea = esid << 28;
                assert_eq!(region_of(ea), Some(r));
                let v = kernel_vsid(ea);
                assert_ne!(v, 0, "esid {:#x}", esid);
                assert!(v < (1 << 36));
                assert!(seen.insert(v), "collision at esid {:#x}", esid);
            }
        }
        assert_eq!(seen.len(), 3 * 5000);
    }

    #[test]
    fn kernel_entry_encoding() {
        let ea = 0xd000_0000_1234_5678u64;
        let e = SlbEntry::kernel(ea, 5);
        assert_eq!(e.esid, 0xd_0000_0001);
        assert_eq!(e.vsid, kernel_vsid(ea));
        assert_eq!(e.vsid(), e.vsid);
        assert_eq!(e.flags, SlbFlags::KP);
        assert!(e.is_valid());
        assert_eq!(e.ea_base(), 0xd000_0000_1000_0000);
        assert_eq!(e.rb(), 0xd000_0000_1000_0000 | 0x0800_0000 | 5);
        assert_eq!(e.rs(), (e.vsid << 12) | 0x400);
        // QEMU's ppc_store_slb checks: no reserved ESID bits, 256M segment,
        // 4K page encoding (L|LP = 0), slot within range.
        assert_eq!(e.rb() & !(QEMU_SLB_ESID_ESID | QEMU_SLB_ESID_V) & !0xfff, 0);
        assert_eq!(e.rs() & QEMU_SLB_VSID_B, 0);
        assert_eq!(e.rs() & 0x130, 0);
        assert!((e.rb() & 0xfff) < QEMU_SLB_SIZE as u64);
    }

    #[test]
    fn kernel_entry_extremes() {
        let e = SlbEntry::kernel(0xefff_ffff_ffff_ffff, SLB_INDEX_LIMIT - 1);
        assert_eq!(e.esid, 0xe_ffff_ffff);
        assert_eq!(e.rb(), 0xefff_ffff_f000_0000 | 0x0800_0000 | 63);
        let e = SlbEntry::kernel(0xc000_0000_0000_0000, 0);
        assert_eq!(e.rb(), 0xc000_0000_0800_0000);
    }

    #[test]
    #[should_panic(expected = "not a kernel address")]
    fn kernel_rejects_user_address() {
        let _ = SlbEntry::kernel(0x1000_0000, 0);
    }

    #[test]
    #[should_panic(expected = "SLB index out of range")]
    fn kernel_rejects_large_index() {
        let _ = SlbEntry::kernel(0xc000_0000_0000_0000, SLB_INDEX_LIMIT);
    }

    #[test]
    fn raw_roundtrip() {
        for (i, ea) in [0xc000_0000_0000_0000u64, 0xd123_4567_89ab_cdef, 0xe000_0000_f000_0000].into_iter().enumerate()
        {
            let e = SlbEntry::kernel(ea, i * 7);
            assert_eq!(SlbEntry::from_raw(e.rb(), e.rs()), e);
            // slbmfee returns ESID|V without the index.
            let back = SlbEntry::from_raw(e.rb() & !0xfff, e.rs());
            assert_eq!(back.index, 0);
            assert_eq!(back.esid, e.esid);
            assert_eq!(back.vsid, e.vsid);
            assert_eq!(back.flags, e.flags);
            assert!(back.is_valid());
        }
    }

    #[test]
    fn from_raw_decodes_fields() {
        let e = SlbEntry::from_raw(0x1234_5678_9000_0000, 0x4000_0000_0abc_dfff);
        assert!(!e.is_valid());
        assert_eq!(e.esid, 0x1_2345_6789);
        assert_eq!(e.vsid, 0xabcd);
        assert_eq!(e.flags, SlbFlags::all());
        assert_eq!(e.index, 0);
        let e = SlbEntry::from_raw(0, 0);
        assert!(!e.is_valid());
        assert_eq!(e.flags, SlbFlags::empty());
        let e = SlbEntry::from_raw(0x0800_0000 | 0xfff, 0);
        assert!(e.is_valid());
        assert_eq!(e.index, 0xfff);
    }

    #[test]
    fn contains() {
        let e = SlbEntry::kernel(0xc000_0000_2000_0000, 1);
        assert!(e.contains(0xc000_0000_2000_0000));
        assert!(e.contains(0xc000_0000_2fff_ffff));
        assert!(!e.contains(0xc000_0000_3000_0000));
        assert!(!e.contains(0xc000_0000_1fff_ffff));
        let inv = SlbEntry { valid: false, ..e };
        assert!(!inv.contains(0xc000_0000_2000_0000));
    }

    #[test]
    fn display() {
        let e = SlbEntry::kernel(0xd000_0000_0000_0000, 2);
        assert_eq!(format!("{}", e), "slb[2] ea=0xd000000000000000 esid=0xd00000000 vsid=0xf09b89af5 Kp V");
        let e = SlbEntry::from_raw(0, 0xfff);
        assert_eq!(format!("{}", e), "slb[0] ea=0x0000000000000000 esid=0x0 vsid=0x0 Ks Kp N L C invalid");
    }

    #[test]
    fn segment_table_matches_the_scramble() {
        assert_eq!(REGION_SEGMENTS, 2048);
        for base in [Region::Vmalloc.base(), Region::Io.base()] {
            for seg in [0u64, 1, 2, 255, 256, 1000, 2047] {
                let ea = base + (seg << SEGMENT_SHIFT) + 0x1234_567;
                let rs = SEGMENTS.rs(ea).unwrap();
                assert_eq!(rs, SlbEntry::kernel(ea, 5).rs());
                assert_eq!((rs & SLB_VSID_MASK) >> SLB_VSID_SHIFT, kernel_vsid(ea));
                // The assembly's index formula.
                let i = (((ea >> 60) - 0xd) as usize) * REGION_SEGMENTS + ((ea >> 28) as usize & 0x7ff);
                assert_eq!(SegmentTable::index(ea), Some(i));
            }
            assert_eq!(SEGMENTS.rs(base + (1 << 39)), None, "beyond the page-table span");
        }
        assert_eq!(SEGMENTS.rs(0xc000_0000_0000_0000), None);
        assert_eq!(SEGMENTS.rs(0), None);
        assert_eq!(SEGMENTS.rs(0xf000_0000_0000_0000), None);
    }
}
