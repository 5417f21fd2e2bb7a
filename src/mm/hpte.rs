//! Hashed page table entries (pre-ISA-3.0 format), the 256M/4K hash and HPT
//! group geometry.
//!
//! QEMU's pseries machine keeps using this format under PAPR even when it
//! emulates POWER9/10, because the HPT belongs to the hypervisor and the guest
//! only talks to it through `H_ENTER`/`H_REMOVE`/`H_PROTECT`/`H_READ`.
//!
//! Each HPTE is two doublewords:
//!
//! * `v` (dword 0): B (segment size, bits 63:62, 00 = 256M) | AVPN
//!   (`0x3fff_ffff_ffff_ff80`) | software bits `0x78` (of which BOLTED =
//!   `0x10`) | L `0x4` | H (secondary hash) `0x2` | V `0x1`.
//! * `r` (dword 1): PP0 (bit 63) | key hi (61:60) | RPN (`0x0fff_ffff_ffff_f000`)
//!   | key lo `0xe00` | R `0x100` | C `0x80` | WIMG `0x78` | N `0x4` | PP `0x3`.
//!
//! Storage protection: QEMU combines `pp = (r & 3) | ((r & PP0) >> 61)` and
//! looks it up with the key selected by the SLB entry and the privilege level
//! (Ks for supervisor, Kp for problem state). The kernel's segments use Ks=0
//! and Kp=1, so supervisor accesses use key 0 and user accesses key 1:
//!
//! | pp  | key 0 (supervisor) | key 1 (user) |
//! |-----|--------------------|--------------|
//! | 0   | RW                 | none         |
//! | 1   | RW                 | RO           |
//! | 2   | RW                 | RW           |
//! | 3   | RO                 | RO           |
//! | 6   | RO                 | none         |
//! | 4,5,7 | none             | none         |
//!
//! Instruction fetch additionally needs N=0 and G=0, and is otherwise allowed
//! wherever read is.

use crate::mm::pte::{HptSlot, PteFlags};
use bitflags::bitflags;
use core::fmt;

bitflags! {
    /// Flag bits of HPTE dword 0.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct HpteV: u64 {
        const VALID     = 0x1;
        const SECONDARY = 0x2;
        const LARGE     = 0x4;
        /// Software bit: the hypervisor must never evict this entry. Used for
        /// mappings that the fault path itself depends on.
        const BOLTED    = 0x10;
        /// Software bit, native HPT only (powernv): the entry is being written; whoever set
        /// it with ldarx/stdcx. owns both doublewords until a store of dword 0 without it.
        /// Linux's HPTE_V_LOCK. The MMU ignores it.
        const LOCK      = 0x8;
    }
}

bitflags! {
    /// Flag bits of HPTE dword 1.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct HpteR: u64 {
        const PP0 = 1 << 63;
        const R   = 0x100;
        const C   = 0x80;
        const W   = 0x40;
        const I   = 0x20;
        const M   = 0x10;
        const G   = 0x08;
        const N   = 0x4;
        const PP1 = 0x2;
        const PP2 = 0x1;
    }
}

/// Segment size field of dword 0 (00 = 256M, which is all the kernel uses).
pub const V_SSIZE_MASK: u64 = 0xc000_0000_0000_0000;
/// Abbreviated virtual page number field of dword 0.
pub const AVPN_MASK: u64 = 0x3fff_ffff_ffff_ff80;
/// Software-use bits of dword 0 (BOLTED is one of them).
pub const V_SW_MASK: u64 = 0x78;
/// Real page number field of dword 1 (a physical address, 4K aligned).
pub const RPN_MASK: u64 = 0x0fff_ffff_ffff_f000;
/// The two low PP bits of dword 1.
pub const PP_MASK: u64 = 0x3;
/// Storage key bits of dword 1 (left at 0 = AMR key 0, i.e. unrestricted).
pub const KEY_HI_MASK: u64 = 0x3000_0000_0000_0000;
pub const KEY_LO_MASK: u64 = 0x0000_0000_0000_0e00;
/// WIMG bits of dword 1.
pub const WIMG_MASK: u64 = 0x78;
/// Everything in dword 1 that `H_PROTECT` can change.
pub const R_PROT_MASK: u64 = HpteR::PP0.bits() | PP_MASK | HpteR::N.bits();

/// `H_PROTECT`/`H_REMOVE` flag: "check the AVPN I pass you". Not produced by
/// [`h_protect_flags`]; the caller ORs it in. QEMU compares the argument with
/// `v & !0x7f` (B + AVPN), so for the kernel's 256M segments the argument is
/// exactly [`avpn_for`]`(vsid, ea)`.
pub const H_AVPN: u64 = 1 << (63 - 32);

/// The AVPN of a 4K page in a 256M segment: VSID plus the 5 EA bits (27:23)
/// the hash cannot recover; the remaining page bits are implied by the group
/// the entry is found in.
pub const fn avpn_for(vsid: u64, ea: u64) -> u64 {
    ((vsid << 12) | (((ea & 0x0fff_ffff) >> 23) << 7)) & AVPN_MASK
}

/// Primary hash of a 4K page in a 256M segment. The VSID mask (39 bits) never
/// matters in practice because the largest HPT has 2^39 groups.
pub const fn hash_4k(vsid: u64, ea: u64) -> u64 {
    (vsid & 0x7f_ffff_ffff) ^ ((ea & 0x0fff_ffff) >> 12)
}

/// The offset, within a 256M segment of VSID `vsid`, of the 4K page whose primary hash lands in
/// group `group` of a table with hash mask `mask` — the inverse of [`hash_4k`] for one segment.
/// A segment has 2^16 pages, one per group of a 2^16-group table; with more groups the VSID's
/// upper bits decide which groups a segment reaches at all (None for the others). Pages that
/// share a group therefore lie in different segments (the benchmarks' contended group).
pub const fn page_for_group(vsid: u64, group: u64, mask: u64) -> Option<u64> {
    let p = (group ^ vsid) & mask;
    if p >> 16 != 0 {
        None
    } else {
        Some(p << 12)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Hpte {
    pub v: u64,
    pub r: u64,
}

impl Hpte {
    pub const EMPTY: Hpte = Hpte { v: 0, r: 0 };

    pub const fn is_valid(self) -> bool {
        self.v & HpteV::VALID.bits() != 0
    }

    pub const fn is_bolted(self) -> bool {
        self.v & HpteV::BOLTED.bits() != 0
    }

    pub const fn is_secondary(self) -> bool {
        self.v & HpteV::SECONDARY.bits() != 0
    }

    pub const fn avpn(self) -> u64 {
        self.v & AVPN_MASK
    }

    /// The VSID recorded in the AVPN (valid for 256M segments).
    pub const fn vsid(self) -> u64 {
        (self.v & AVPN_MASK) >> 12
    }

    /// The physical frame number (4K frames).
    pub const fn rpn(self) -> u64 {
        (self.r & RPN_MASK) >> 12
    }

    /// The 3-bit protection value QEMU indexes its tables with.
    pub const fn pp(self) -> u8 {
        ((self.r & PP_MASK) | ((self.r & HpteR::PP0.bits()) >> 61)) as u8
    }

    pub const fn r_flags(self) -> HpteR {
        HpteR::from_bits_truncate(self.r)
    }

    pub const fn v_flags(self) -> HpteV {
        HpteV::from_bits_truncate(self.v)
    }

    /// Whether this valid entry translates `ea` in the 256M segment `vsid`,
    /// regardless of which group it sits in. Use [`Hpte::matches_in`] when
    /// scanning a specific group, since a stray entry for a different page
    /// can share the AVPN in the other group.
    pub const fn matches(self, vsid: u64, ea: u64) -> bool {
        self.is_valid() && self.v & V_SSIZE_MASK == 0 && self.avpn() == avpn_for(vsid, ea)
    }

    /// Like [`Hpte::matches`] but also requires the H bit to be `secondary`;
    /// this is the comparison the MMU performs when searching a group.
    pub const fn matches_in(self, vsid: u64, ea: u64, secondary: bool) -> bool {
        self.matches(vsid, ea) && self.is_secondary() == secondary
    }
}

/// Example: `hpte v=0x0000000001234f93 r=0x8000000000abc016 V H BOLTED
/// vsid=0x1234 api=0x1f rpn=0xabc pp=6 N WIMG=--M-` (api = the EA bits 27:23
/// kept in the AVPN). Printed in one line so it fits a log entry.
impl fmt::Display for Hpte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hpte v={:#018x} r={:#018x}", self.v, self.r)?;
        f.write_str(if self.is_valid() { " V" } else { " invalid" })?;
        if self.is_secondary() {
            f.write_str(" H")?;
        }
        if self.is_bolted() {
            f.write_str(" BOLTED")?;
        }
        if self.v & HpteV::LOCK.bits() != 0 {
            f.write_str(" LOCKED")?;
        }
        if self.v & HpteV::LARGE.bits() != 0 {
            f.write_str(" L")?;
        }
        if self.v & V_SSIZE_MASK != 0 {
            write!(f, " B={}", self.v >> 62)?;
        }
        write!(f, " vsid={:#x} api={:#x} rpn={:#x} pp={}", self.vsid(), (self.v >> 7) & 0x1f, self.rpn(), self.pp())?;
        if self.r & HpteR::N.bits() != 0 {
            f.write_str(" N")?;
        }
        let r = self.r;
        let bit = |m: HpteR, c: char| if r & m.bits() != 0 { c } else { '-' };
        write!(f, " WIMG={}{}{}{}", bit(HpteR::W, 'W'), bit(HpteR::I, 'I'), bit(HpteR::M, 'M'), bit(HpteR::G, 'G'))?;
        if r & HpteR::R.bits() != 0 {
            f.write_str(" R")?;
        }
        if r & HpteR::C.bits() != 0 {
            f.write_str(" C")?;
        }
        let key = ((r & KEY_HI_MASK) >> 57) | ((r & KEY_LO_MASK) >> 9);
        if key != 0 {
            write!(f, " key={}", key)?;
        }
        Ok(())
    }
}

/// HPT size and the index arithmetic that depends on it. The size comes from
/// the `ibm,pft-size` property (log2 of the table in bytes). Held as the hash
/// mask, the one value the fault path needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HptGeometry {
    mask: u64,
}

/// Bytes per HPTE group (8 entries of 16 bytes).
pub const GROUP_BYTES: u64 = 128;
/// Entries per group.
pub const GROUP_ENTRIES: u64 = 8;
/// Bytes per HPTE.
pub const HPTE_BYTES: u64 = 16;

/// Why a geometry is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GeometryError {
    /// Outside PAPR's 2^18..2^46.
    OutOfRange(u32),
    /// 2^18 (guest RAM of 32 MiB or less): see [`HptGeometry::MIN_SHIFT`].
    TooSmall(u32),
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::OutOfRange(s) => write!(f, "ibm,pft-size {s} is outside PAPR's 18..46"),
            GeometryError::TooSmall(s) => write!(
                f,
                "ibm,pft-size {s}: a {} KiB HPT has 2^11 groups, so a primary and a secondary entry \
                 can share an AVPN and H_PROTECT/H_REMOVE could act on the wrong one; \
                 give the guest more than 32 MiB of RAM (--mem 64M or more)",
                (1u64 << s) >> 10
            ),
        }
    }
}

impl HptGeometry {
    /// PAPR allows 2^18 (256 KiB) up to 2^46. The kernel needs 2^19 or more: with 2^11 groups
    /// the hash mask covers exactly the 11 page-index bits the AVPN leaves out (EA bits 22:12),
    /// so a page's primary group can hold another page's secondary entry with the same AVPN.
    /// The hypervisor's AVPN check (H_PROTECT, H_REMOVE with H_AVPN) ignores the H bit, so a
    /// stale slot could then act on the other page's entry. From 2^12 groups up, the extra
    /// hash bit comes from AVPN bits, and equal AVPNs put the two pages' primary and
    /// secondary groups apart (`avpn_collision_only_at_2_18` below).
    pub const MIN_SHIFT: u32 = 19;
    pub const PAPR_MIN_SHIFT: u32 = 18;
    pub const MAX_SHIFT: u32 = 46;

    pub const fn new(shift: u32) -> Option<Self> {
        match Self::checked(shift) {
            Ok(g) => Some(g),
            Err(_) => None,
        }
    }

    pub const fn checked(shift: u32) -> Result<Self, GeometryError> {
        if shift < Self::PAPR_MIN_SHIFT || shift > Self::MAX_SHIFT {
            Err(GeometryError::OutOfRange(shift))
        } else if shift < Self::MIN_SHIFT {
            Err(GeometryError::TooSmall(shift))
        } else {
            Ok(HptGeometry { mask: (1 << (shift - 7)) - 1 })
        }
    }

    /// The geometry whose [`HptGeometry::hash_mask`] is `mask` (the per-CPU copy the fault
    /// path keeps). Only masks of accepted geometries are valid.
    #[inline(always)]
    pub const fn from_hash_mask(mask: u64) -> Self {
        HptGeometry { mask }
    }

    /// log2 of the table size in bytes.
    pub const fn shift(self) -> u32 {
        self.mask.trailing_ones() + 7
    }

    pub const fn bytes(self) -> u64 {
        (self.mask + 1) * GROUP_BYTES
    }

    pub const fn groups(self) -> u64 {
        self.bytes() / GROUP_BYTES
    }

    #[inline(always)]
    pub const fn hash_mask(self) -> u64 {
        self.mask
    }

    pub const fn entries(self) -> u64 {
        self.bytes() / HPTE_BYTES
    }

    /// The ptex (HPTE index) of slot 0 of the primary or secondary group for
    /// `hash`. The secondary group uses the one's complement of the hash so
    /// that the two candidate groups are always different.
    pub const fn group_base(self, hash: u64, secondary: bool) -> u64 {
        let h = if secondary { !hash } else { hash };
        (h & self.hash_mask()) * GROUP_ENTRIES
    }

    pub const fn ptex(self, hash: u64, slot: HptSlot) -> u64 {
        self.group_base(hash, slot.secondary) + (slot.index as u64 & 7)
    }

    /// Inverse of [`HptGeometry::ptex`] for the slot part; the group is
    /// implied by the hash, so only the index is taken from `ptex`.
    pub const fn slot_of(self, ptex: u64, secondary: bool) -> HptSlot {
        HptSlot { secondary, index: (ptex & 7) as u8 }
    }
}

/// The r-word protection bits (PP0 | PP | N) for a PTE's flags; also what
/// `H_PROTECT` needs. See the module table: kernel pages use pp 0 (RW) or
/// 6 (RO) so that user key 1 gets nothing; user pages use pp 2 (RW) or 3 (RO)
/// which grant the supervisor exactly the same.
///
/// Only meaningful for present PTEs; the caller has already checked PRESENT.
pub const fn pp_bits_for(flags: PteFlags) -> u64 {
    let user = flags.contains(PteFlags::USER);
    let rw = flags.contains(PteFlags::RW);
    let pp = match (user, rw) {
        (false, true) => 0b00,
        (false, false) => HpteR::PP0.bits() | 0b10,
        (true, true) => 0b10,
        (true, false) => 0b11,
    };
    let n = if flags.contains(PteFlags::EXEC) { 0 } else { HpteR::N.bits() };
    pp | n
}

/// WIMG bits of dword 1 for a PTE's cache attributes.
pub const fn wimg_bits_for(flags: PteFlags) -> u64 {
    let mut r = 0;
    if flags.contains(PteFlags::WRITETHRU) {
        r |= HpteR::W.bits();
    }
    if flags.contains(PteFlags::NO_CACHE) {
        r |= HpteR::I.bits();
    }
    if flags.contains(PteFlags::COHERENT) {
        r |= HpteR::M.bits();
    }
    if flags.contains(PteFlags::GUARDED) {
        r |= HpteR::G.bits();
    }
    r
}

/// Builds the HPTE for a 4K page at `ea` in the 256M segment `vsid`.
///
/// R and C are preset: the kernel tracks referenced/changed in the Linux PTE (ACCESSED and
/// DIRTY, set by hash_page), so the MMU never needs to write them back. That saves the
/// hardware update, and under QEMU's multi-threaded TCG it avoids a real hazard: QEMU writes
/// R/C back as a plain byte store from the copy it read during the translation, which also
/// carries the low four RPN bits; racing with an H_REMOVE + H_ENTER into the same slot on
/// another vCPU, that store corrupted the new entry's RPN (seen by the SMP stress's H_READ
/// invariant check: frame 0x4006 in an entry inserted for 0x4002).
/// The storage key is 0 (AMR/IAMR key 0 is left unrestricted).
/// `flags` must describe a present PTE (see [`pp_bits_for`]).
pub const fn hpte_for(vsid: u64, ea: u64, pfn: u64, flags: PteFlags, secondary: bool, bolted: bool) -> Hpte {
    let mut v = avpn_for(vsid, ea) | HpteV::VALID.bits();
    if secondary {
        v |= HpteV::SECONDARY.bits();
    }
    if bolted {
        v |= HpteV::BOLTED.bits();
    }
    let r = ((pfn << 12) & RPN_MASK) | pp_bits_for(flags) | wimg_bits_for(flags) | HpteR::R.bits() | HpteR::C.bits();
    Hpte { v, r }
}

/// QEMU's (read, write) permission for a combined pp value and key
/// (`user` = key 1, supervisor = key 0 in the kernel's SLB setup).
/// Undefined pp values grant nothing, as in QEMU.
pub const fn effective_access(pp: u8, user: bool) -> (bool, bool) {
    if !user {
        match pp {
            0..=2 => (true, true),
            3 | 6 => (true, false),
            _ => (false, false),
        }
    } else {
        match pp {
            1 | 3 => (true, false),
            2 => (true, true),
            _ => (false, false),
        }
    }
}

/// (read, write, exec) as QEMU evaluates an HPTE dword 1, ignoring storage
/// keys (which the kernel leaves at 0): exec needs read permission from pp
/// and neither N nor G.
pub const fn effective_rwx(r: u64, user: bool) -> (bool, bool, bool) {
    let pp = Hpte { v: 0, r }.pp();
    let (read, write) = effective_access(pp, user);
    let noexec = r & (HpteR::N.bits() | HpteR::G.bits()) != 0;
    (read, write, read && !noexec)
}

/// The `flags` argument of `H_PROTECT` that makes QEMU install the protection
/// [`pp_bits_for`] computes. QEMU 7.2 decodes it as
/// `r |= (flags << 55) & PP0; r |= (flags << 48) & KEY_HI;
///  r |= flags & (PP | N | KEY_LO)`, so PP0 (bit 63) travels in flags bit 8
/// and the keys (kept at 0 here) elsewhere. `H_AVPN` is the caller's choice.
pub const fn h_protect_flags(flags: PteFlags) -> u64 {
    let r = pp_bits_for(flags);
    (r & (PP_MASK | HpteR::N.bits())) | ((r & HpteR::PP0.bits()) >> 55)
}

/// The HPT size the kernel gives itself when it owns the table (powernv): QEMU's pseries rule,
/// 1/128 of RAM rounded up to a power of two, so both machines hash alike, but at most
/// 2^`max_shift` bytes (the table must fit the bolted linear zone) and at least 2^19
/// ([`HptGeometry::MIN_SHIFT`]).
pub const fn native_hpt_shift(mem_size: u64, max_shift: u32) -> u32 {
    let m = if mem_size < 2 { 2 } else { mem_size };
    let log = 64 - (m.next_power_of_two() - 1).leading_zeros();
    let s = log.saturating_sub(7);
    let s = if s < HptGeometry::MIN_SHIFT { HptGeometry::MIN_SHIFT } else { s };
    if s > max_shift {
        max_shift
    } else {
        s
    }
}

/// The RB operand of `tlbie` (ISA 2.07 form: RB = VA of the page with B = 00 for a 256M
/// segment, L = 0 and AP = 0 for a 4K page; RS = LPID 0) that invalidates the translation the
/// entry `v` at `ptex` provided. The VA is recovered from the entry and its place: the VSID
/// and EA bits 27:23 are in the AVPN, EA bits 22:12 are the hash (the group index, or its
/// complement for a secondary entry) XOR the low VSID bits — which needs the 11 low hash bits,
/// i.e. 2^11 groups or more (every accepted geometry). Kernel VSIDs are 36 bits, so the VA
/// (VSID << 28 | page offset) fits the 64-bit register whole.
pub const fn tlbie_rb(geo: HptGeometry, ptex: u64, v: u64) -> u64 {
    let vsid = (v & AVPN_MASK) >> 12;
    let group = ptex / GROUP_ENTRIES;
    let hash = if v & HpteV::SECONDARY.bits() != 0 { !group } else { group } & geo.hash_mask();
    let page = (((v >> 7) & 0x1f) << 11) | ((hash ^ vsid) & 0x7ff);
    (vsid << 28) | (page << 12)
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;
    use super::*;
    use crate::mm::pte::{PAGE_KERNEL, PAGE_KERNEL_IO, PAGE_KERNEL_RO, PAGE_KERNEL_X};
    use std::format;

    // QEMU target/ppc/mmu-hash64.h constants, copied to cross-check ours.
    const HPTE64_R_PP0: u64 = 0x8000000000000000;
    const HPTE64_R_KEY_HI: u64 = 0x3000000000000000;
    const HPTE64_R_PP: u64 = 0x0000000000000003;
    const HPTE64_R_N: u64 = 0x0000000000000004;
    const HPTE64_R_KEY_LO: u64 = 0x0000000000000e00;

    /// The r-word update of QEMU 7.2 hw/ppc/spapr_softmmu.c:h_protect.
    fn qemu_h_protect(mut r: u64, flags: u64) -> u64 {
        r &= !(HPTE64_R_PP0 | HPTE64_R_PP | HPTE64_R_N | HPTE64_R_KEY_HI | HPTE64_R_KEY_LO);
        r |= (flags << 55) & HPTE64_R_PP0;
        r |= (flags << 48) & HPTE64_R_KEY_HI;
        r |= flags & (HPTE64_R_PP | HPTE64_R_N | HPTE64_R_KEY_LO);
        r
    }

    /// QEMU's ppc_hash64_pte_prot, transcribed independently of
    /// `effective_access` (returns read, write).
    fn qemu_pte_prot(key: u32, r: u64) -> (bool, bool) {
        let pp = (r & HPTE64_R_PP) | ((r & HPTE64_R_PP0) >> 61);
        if key == 0 {
            match pp {
                // QEMU: case 0x0: case 0x1: case 0x2:
                0x0..=0x2 => (true, true),
                0x3 | 0x6 => (true, false),
                _ => (false, false),
            }
        } else {
            match pp {
                0x0 | 0x6 => (false, false),
                0x1 | 0x3 => (true, false),
                0x2 => (true, true),
                _ => (false, false),
            }
        }
    }

    fn all_flag_combos() -> impl Iterator<Item = PteFlags> {
        (0..=0xffffu64).map(PteFlags::from_bits_truncate)
    }

    #[test]
    fn constants_match_qemu() {
        assert_eq!(HpteR::PP0.bits(), HPTE64_R_PP0);
        assert_eq!(KEY_HI_MASK, HPTE64_R_KEY_HI);
        assert_eq!(PP_MASK, HPTE64_R_PP);
        assert_eq!(HpteR::N.bits(), HPTE64_R_N);
        assert_eq!(KEY_LO_MASK, HPTE64_R_KEY_LO);
        assert_eq!(HpteR::PP1.bits() | HpteR::PP2.bits(), PP_MASK);
        assert_eq!((HpteR::W | HpteR::I | HpteR::M | HpteR::G).bits(), WIMG_MASK);
        assert_eq!(AVPN_MASK, 0x3fffffffffffff80);
        assert_eq!(RPN_MASK, 0x0ffffffffffff000);
        assert_eq!(HpteV::BOLTED.bits() & V_SW_MASK, HpteV::BOLTED.bits());
        assert_eq!(H_AVPN, 0x8000_0000);
        // The masks of the two words must tile without overlap.
        assert_eq!(AVPN_MASK & (V_SSIZE_MASK | V_SW_MASK | 0x7), 0);
        assert_eq!(RPN_MASK & (KEY_HI_MASK | HPTE64_R_PP0 | 0xfff), 0);
    }

    #[test]
    fn avpn_examples() {
        assert_eq!(avpn_for(0, 0), 0);
        assert_eq!(avpn_for(1, 0), 0x1000);
        // EA bits 27:23 land in AVPN bits 11:7.
        assert_eq!(avpn_for(0, 0x0080_0000), 0x80);
        assert_eq!(avpn_for(0, 0x0f80_0000), 0xf80);
        assert_eq!(avpn_for(0, 0x007f_ffff), 0);
        // Segment bits of the EA are ignored (they select the VSID).
        assert_eq!(avpn_for(0x123, 0xc000_0000_0f80_0000), (0x123 << 12) | 0xf80);
        // Matches QEMU's ptem formula (without B/V): slb_vsid | ((epn >> 16) & AVPN).
        for &(vsid, ea) in &[(0x1_2345_6789u64, 0xd000_0000_0abc_d123u64), (7, 0x0fff_ffff)] {
            let epn = (ea & 0x0fff_ffff) & !0xfff;
            let ptem = (vsid << 12) | ((epn >> 16) & AVPN_MASK);
            assert_eq!(avpn_for(vsid, ea), ptem);
        }
        // VSIDs wider than the AVPN field are truncated, not spilled into B.
        assert_eq!(avpn_for(u64::MAX, u64::MAX) & V_SSIZE_MASK, 0);
    }

    #[test]
    fn hash_examples() {
        assert_eq!(hash_4k(0, 0), 0);
        assert_eq!(page_for_group(0, 1, 0xffff), Some(0x1000));
        assert_eq!(page_for_group(0x1_2345, 0x2345, 0xffff), Some(0));
        assert_eq!(page_for_group(0x3_0000, 0x1_0000, 0x1_ffff), Some(0));
        assert_eq!(page_for_group(0x3_0000, 0x5, 0x1_ffff), None);
        assert_eq!(page_for_group(0x3_0000, 0x1_0005, 0x1_ffff), Some(0x5000));
        assert_eq!(hash_4k(0x123, 0), 0x123);
        assert_eq!(hash_4k(0, 0x1000), 1);
        assert_eq!(hash_4k(0, 0x0fff_f000), 0xffff);
        assert_eq!(hash_4k(0, 0x0fff_ffff), 0xffff);
        assert_eq!(hash_4k(0xffff, 0x0fff_f000), 0);
        assert_eq!(hash_4k(0, 0xc000_0000_0000_1000), 1);
        assert_eq!(hash_4k(0xff_ffff_ffff, 0), 0x7f_ffff_ffff);
        // Same as QEMU's unmasked vsid ^ page for every legal hash mask.
        let vsid = 0x9_8765_4321u64;
        let ea = 0xc000_0000_0765_4000u64;
        let g = HptGeometry::new(46).unwrap();
        assert_eq!(hash_4k(vsid, ea) & g.hash_mask(), (vsid ^ ((ea & 0x0fff_ffff) >> 12)) & g.hash_mask());
    }

    #[test]
    fn geometry_bounds() {
        assert_eq!(HptGeometry::new(17), None);
        assert_eq!(HptGeometry::checked(18), Err(GeometryError::TooSmall(18)));
        assert_eq!(HptGeometry::new(18), None);
        assert_eq!(HptGeometry::new(47), None);
        assert_eq!(HptGeometry::new(0), None);
        assert_eq!(HptGeometry::new(u32::MAX), None);
        for s in 19..=46 {
            let g = HptGeometry::new(s).unwrap();
            assert_eq!(g.shift(), s);
            assert_eq!(HptGeometry::from_hash_mask(g.hash_mask()), g);
            assert_eq!(g.bytes(), 1u64 << s);
            assert_eq!(g.groups(), 1u64 << (s - 7));
            assert_eq!(g.hash_mask(), (1u64 << (s - 7)) - 1);
            assert_eq!(g.entries(), 1u64 << (s - 4));
            assert_eq!(g.entries(), g.groups() * 8);
        }
    }

    #[test]
    fn geometry_groups_for_512k() {
        let g = HptGeometry::new(19).unwrap();
        assert_eq!(g.bytes(), 512 * 1024);
        assert_eq!(g.groups(), 4096);
        assert_eq!(g.hash_mask(), 0xfff);
        assert_eq!(g.entries(), 32768);
        assert_eq!(g.group_base(0, false), 0);
        assert_eq!(g.group_base(0, true), 0xfff * 8);
        assert_eq!(g.group_base(0x1001, false), 8);
        assert_eq!(g.group_base(0x1001, true), (!0x1001u64 & 0xfff) * 8);
        assert_eq!(g.group_base(0xfff, true), 0);
    }

    /// The reason for MIN_SHIFT: two pages of one segment with the same AVPN, one hashed into
    /// its primary group and the other into its secondary group, can meet in one group only
    /// when the hash mask is 11 bits (2^18 bytes).
    #[test]
    fn avpn_collision_only_at_2_18() {
        let vsid = 0x1234_5678u64;
        let seg = 0xd000_0000_0000_0000u64;
        for shift in [18u32, 19, 20, 24] {
            let mask = (1u64 << (shift - 7)) - 1;
            let mut collide = false;
            // Pages sharing the AVPN: EA bits 27:23 fixed, bits 22:12 free.
            for hi in [0u64, 7, 31] {
                for a in 0..2048u64 {
                    let ea_a = seg | (hi << 23) | (a << 12);
                    let prim = hash_4k(vsid, ea_a) & mask;
                    // The page b whose secondary group is a's primary group, if it shares the AVPN.
                    let b = (!(prim) ^ vsid) & 0x7ff;
                    let ea_b = seg | (hi << 23) | (b << 12);
                    if ea_b != ea_a
                        && avpn_for(vsid, ea_a) == avpn_for(vsid, ea_b)
                        && (!hash_4k(vsid, ea_b) & mask) == prim
                    {
                        collide = true;
                    }
                }
            }
            assert_eq!(collide, shift == 18, "shift {shift}");
        }
    }

    #[test]
    fn ptex_and_slot_of_roundtrip() {
        let g = HptGeometry::new(20).unwrap();
        for hash in [0u64, 1, 0x1234, 0xffff_ffff, u64::MAX] {
            let pbase = g.group_base(hash, false);
            let sbase = g.group_base(hash, true);
            assert_ne!(pbase, sbase, "primary and secondary groups must differ");
            assert_eq!(pbase % 8, 0);
            assert_eq!(sbase % 8, 0);
            assert!(pbase < g.entries() && sbase < g.entries());
            for secondary in [false, true] {
                for index in 0..8 {
                    let s = HptSlot::new(secondary, index);
                    let ptex = g.ptex(hash, s);
                    assert!(ptex < g.entries());
                    assert_eq!(ptex & !7, g.group_base(hash, secondary));
                    assert_eq!(g.slot_of(ptex, secondary), s);
                }
            }
        }
    }

    #[test]
    fn hpte_accessors() {
        let h = Hpte {
            v: avpn_for(0x1234, 0x0f80_0000) | 0x1 | 0x2 | 0x10,
            r: HPTE64_R_PP0 | (0xabc << 12) | 0x2 | 0x4 | 0x10,
        };
        assert!(h.is_valid());
        assert!(h.is_secondary());
        assert!(h.is_bolted());
        assert_eq!(h.avpn(), (0x1234 << 12) | 0xf80);
        assert_eq!(h.vsid(), 0x1234);
        assert_eq!(h.rpn(), 0xabc);
        assert_eq!(h.pp(), 6);
        assert_eq!(h.v_flags(), HpteV::VALID | HpteV::SECONDARY | HpteV::BOLTED);
        assert_eq!(h.r_flags(), HpteR::PP0 | HpteR::PP1 | HpteR::N | HpteR::M);
        assert!(!Hpte::EMPTY.is_valid());
        assert!(!Hpte::EMPTY.is_bolted());
        assert!(!Hpte::EMPTY.is_secondary());
        assert_eq!(Hpte::default(), Hpte::EMPTY);
    }

    #[test]
    fn pp_combines_pp0() {
        for r_pp in 0..4u64 {
            for pp0 in [0u64, HPTE64_R_PP0] {
                let h = Hpte { v: 0, r: r_pp | pp0 };
                assert_eq!(h.pp() as u64, r_pp | if pp0 != 0 { 4 } else { 0 });
            }
        }
        // Neighbouring bits (N, key hi) must not leak into pp.
        assert_eq!(Hpte { v: 0, r: !(HPTE64_R_PP0 | 3) }.pp(), 0);
    }

    #[test]
    fn matches_requires_valid_avpn_and_256m() {
        let vsid = 0x5_5555_5555;
        let ea = 0xd000_0000_0abc_d000;
        let h = hpte_for(vsid, ea, 0x42, PAGE_KERNEL, false, false);
        assert!(h.matches(vsid, ea));
        assert!(h.matches_in(vsid, ea, false));
        assert!(!h.matches_in(vsid, ea, true));
        // Any page within the same AVPN span matches (the group tells them apart).
        assert!(h.matches(vsid, ea & !0x007f_ffff));
        assert!(!h.matches(vsid, ea + 0x0080_0000));
        assert!(!h.matches(vsid + 1, ea));
        let invalid = Hpte { v: h.v & !1, r: h.r };
        assert!(!invalid.matches(vsid, ea));
        let one_t = Hpte { v: h.v | (1 << 62), r: h.r };
        assert!(!one_t.matches(vsid, ea));
        let s = hpte_for(vsid, ea, 0x42, PAGE_KERNEL, true, true);
        assert!(s.matches(vsid, ea));
        assert!(s.matches_in(vsid, ea, true));
        assert!(!s.matches_in(vsid, ea, false));
    }

    #[test]
    fn hpte_for_words() {
        let h = hpte_for(0x1234, 0xc000_0000_0f80_3000, 0xabcde, PAGE_KERNEL, false, false);
        assert_eq!(h.v, (0x1234 << 12) | 0xf80 | 1);
        assert_eq!(h.r, (0xabcde << 12) | 0x180 | 0x10 | 0x4);
        let h = hpte_for(0x1234, 0xc000_0000_0000_0000, 1, PAGE_KERNEL_X, true, true);
        assert_eq!(h.v, (0x1234 << 12) | 0x10 | 0x2 | 1);
        assert_eq!(h.r, 0x1000 | 0x180 | 0x10);
        let h = hpte_for(1, 0, 2, PAGE_KERNEL_RO, false, false);
        assert_eq!(h.r, HPTE64_R_PP0 | 0x2000 | 0x180 | 0x10 | 0x4 | 0x2);
        assert_eq!(h.pp(), 6);
        let h = hpte_for(1, 0, 2, PAGE_KERNEL_IO, false, false);
        assert_eq!(h.r, 0x2000 | 0x180 | 0x20 | 0x08 | 0x4);
        let h = hpte_for(1, 0, 2, PteFlags::PRESENT | PteFlags::WRITETHRU | PteFlags::USER, false, false);
        assert_eq!(h.r, 0x2000 | 0x180 | 0x40 | 0x4 | 0x3);
        let h = hpte_for(1, 0, 2, PteFlags::PRESENT | PteFlags::RW | PteFlags::USER | PteFlags::EXEC, false, false);
        assert_eq!(h.r, 0x2000 | 0x180 | 0x2);
    }

    #[test]
    fn hpte_for_ignores_software_and_hash_bits() {
        let base = PteFlags::PRESENT | PteFlags::RW | PteFlags::COHERENT;
        let extra = PteFlags::DIRTY
            | PteFlags::ACCESSED
            | PteFlags::HASHPTE
            | PteFlags::BUSY
            | PteFlags::GROUP_IX
            | PteFlags::SECONDARY;
        assert_eq!(hpte_for(3, 0, 4, base, false, false), hpte_for(3, 0, 4, base | extra, false, false));
    }

    #[test]
    fn hpte_for_rpn_truncation() {
        // PFNs beyond the RPN field cannot be expressed; they must not corrupt
        // PP0/key bits.
        let h = hpte_for(0, 0, u64::MAX, PAGE_KERNEL, false, false);
        assert_eq!(h.r & (HPTE64_R_PP0 | KEY_HI_MASK), 0);
        assert_eq!(h.rpn(), RPN_MASK >> 12);
        // R and C are never preset.
        assert_eq!(h.r & (HpteR::R | HpteR::C).bits(), (HpteR::R | HpteR::C).bits());
    }

    #[test]
    fn pp_bits_table() {
        let p = PteFlags::PRESENT;
        assert_eq!(pp_bits_for(p | PteFlags::RW), 0x4);
        assert_eq!(pp_bits_for(p), HPTE64_R_PP0 | 0x2 | 0x4);
        assert_eq!(pp_bits_for(p | PteFlags::USER | PteFlags::RW), 0x2 | 0x4);
        assert_eq!(pp_bits_for(p | PteFlags::USER), 0x3 | 0x4);
        assert_eq!(pp_bits_for(p | PteFlags::RW | PteFlags::EXEC), 0);
        for f in all_flag_combos() {
            assert_eq!(pp_bits_for(f) & !R_PROT_MASK, 0);
        }
    }

    #[test]
    fn effective_access_matches_qemu() {
        for pp in 0..8u8 {
            let r = (pp as u64 & 3) | if pp & 4 != 0 { HPTE64_R_PP0 } else { 0 };
            assert_eq!(effective_access(pp, false), qemu_pte_prot(0, r), "pp={}", pp);
            assert_eq!(effective_access(pp, true), qemu_pte_prot(1, r), "pp={}", pp);
        }
        assert_eq!(effective_access(0, false), (true, true));
        assert_eq!(effective_access(0, true), (false, false));
        assert_eq!(effective_access(6, false), (true, false));
        assert_eq!(effective_access(6, true), (false, false));
        assert_eq!(effective_access(2, true), (true, true));
        assert_eq!(effective_access(3, true), (true, false));
        assert_eq!(effective_access(255, false), (false, false));
    }

    #[test]
    fn effective_rwx_exec_rules() {
        assert_eq!(effective_rwx(0, false), (true, true, true));
        assert_eq!(effective_rwx(0x4, false), (true, true, false));
        assert_eq!(effective_rwx(0x8, false), (true, true, false));
        assert_eq!(effective_rwx(0, true), (false, false, false));
        assert_eq!(effective_rwx(0x3, true), (true, false, true));
    }

    /// The safety property: for every present PTE flag combination and both
    /// privilege levels, the HPTE grants nothing the PTE does not; and it
    /// grants everything the PTE does (except exec on guarded pages, which
    /// the architecture forbids).
    #[test]
    fn hpte_for_never_grants_more_than_pte() {
        for f in all_flag_combos().filter(|f| f.contains(PteFlags::PRESENT)) {
            let h = hpte_for(0x123, 0xc000_0000_0000_0000, 1, f, false, false);
            for user in [false, true] {
                let (r, w, x) = effective_rwx(h.r, user);
                let priv_ok = !user || f.contains(PteFlags::USER);
                let want_r = priv_ok;
                let want_w = priv_ok && f.contains(PteFlags::RW);
                let want_x = priv_ok && f.contains(PteFlags::EXEC);
                assert!(!r || want_r, "{:?} user={} read", f, user);
                assert!(!w || want_w, "{:?} user={} write", f, user);
                assert!(!x || want_x, "{:?} user={} exec", f, user);
                assert_eq!(r, want_r, "{:?} user={} read", f, user);
                assert_eq!(w, want_w, "{:?} user={} write", f, user);
                assert_eq!(x, want_x && !f.contains(PteFlags::GUARDED), "{:?} user={} exec", f, user);
                if !f.contains(PteFlags::RW) {
                    assert!(!w, "RO page writable");
                }
                if user && !f.contains(PteFlags::USER) {
                    assert_eq!((r, w, x), (false, false, false), "kernel page visible to user");
                }
            }
        }
    }

    #[test]
    fn h_protect_flags_encoding() {
        let p = PteFlags::PRESENT;
        assert_eq!(h_protect_flags(p | PteFlags::RW | PteFlags::EXEC), 0);
        assert_eq!(h_protect_flags(p | PteFlags::RW), 0x4);
        assert_eq!(h_protect_flags(p), 0x100 | 0x4 | 0x2);
        assert_eq!(h_protect_flags(p | PteFlags::EXEC), 0x100 | 0x2);
        assert_eq!(h_protect_flags(p | PteFlags::USER | PteFlags::RW), 0x4 | 0x2);
        assert_eq!(h_protect_flags(p | PteFlags::USER), 0x4 | 0x3);
        for f in all_flag_combos() {
            assert_eq!(h_protect_flags(f) & H_AVPN, 0);
            assert_eq!(h_protect_flags(f) & !0x107, 0);
        }
    }

    #[test]
    fn avpn_argument_matches_qemu_check() {
        // QEMU h_protect/h_remove: (flags & H_AVPN) && (v & ~0x7f) != avpn -> H_NOT_FOUND
        for &(vsid, ea) in &[(0x9_8765_4321u64, 0xd000_0000_0abc_d000u64), (1, 0xc000_0000_0f80_0000)] {
            for secondary in [false, true] {
                for bolted in [false, true] {
                    let h = hpte_for(vsid, ea, 5, PAGE_KERNEL_X, secondary, bolted);
                    assert_eq!(h.v & !0x7f, avpn_for(vsid, ea));
                    assert_eq!(h.v & !0x7f, h.avpn());
                }
            }
        }
    }

    #[test]
    fn h_protect_roundtrips_through_qemu() {
        let rpn = 0x0abc_d000u64;
        for f in all_flag_combos().filter(|f| f.contains(PteFlags::PRESENT)) {
            let want = hpte_for(7, 0, rpn >> 12, f, false, false).r;
            // Start from the opposite protection plus R/C and non-zero keys
            // so every field QEMU rewrites really gets overwritten.
            let start = (want ^ R_PROT_MASK) | HPTE64_R_KEY_HI | HPTE64_R_KEY_LO | 0x180;
            let got = qemu_h_protect(start, h_protect_flags(f) | H_AVPN);
            assert_eq!(
                got & (R_PROT_MASK | KEY_HI_MASK | KEY_LO_MASK),
                want & (R_PROT_MASK | KEY_HI_MASK | KEY_LO_MASK),
                "{:?}",
                f
            );
            // RPN, WIMG, R and C are untouched by H_PROTECT.
            assert_eq!(got & (RPN_MASK | WIMG_MASK | 0x180), start & (RPN_MASK | WIMG_MASK | 0x180));
            assert_eq!(got & R_PROT_MASK, pp_bits_for(f));
        }
    }

    #[test]
    fn display() {
        let h = hpte_for(0x1234, 0x0f80_0000, 0xabc, PAGE_KERNEL_RO, true, true);
        assert_eq!(
            format!("{}", h),
            "hpte v=0x0000000001234f93 r=0x8000000000abc196 V H BOLTED vsid=0x1234 api=0x1f rpn=0xabc pp=6 N WIMG=--M- R C"
        );
        let h = Hpte { v: 0, r: 0 };
        assert_eq!(
            format!("{}", h),
            "hpte v=0x0000000000000000 r=0x0000000000000000 invalid vsid=0x0 api=0x0 rpn=0x0 pp=0 WIMG=----"
        );
        let h = Hpte { v: (1 << 62) | 0x5, r: 0x3000_0000_0000_0000 | 0x200 | 0x1e8 };
        assert_eq!(
            format!("{}", h),
            "hpte v=0x4000000000000005 r=0x30000000000003e8 V L B=1 vsid=0x0 api=0x0 rpn=0x0 pp=0 WIMG=WI-G R C key=25"
        );
    }

    #[test]
    fn native_hpt_shift_follows_ram_within_bounds() {
        assert_eq!(native_hpt_shift(1 << 30, 24), 23, "1 GiB: 8 MiB, as QEMU pseries sizes it");
        assert_eq!(native_hpt_shift(2 << 30, 24), 24);
        assert_eq!(native_hpt_shift(3 << 30, 24), 24, "capped: the table lives in the bolted zone");
        assert_eq!(native_hpt_shift(768 << 20, 24), 23, "rounded up to a power of two first");
        assert_eq!(native_hpt_shift(32 << 20, 24), HptGeometry::MIN_SHIFT);
        assert!(HptGeometry::new(native_hpt_shift(64 << 30, 24)).is_some());
    }

    #[test]
    fn tlbie_rb_recovers_the_va() {
        // Every entry the kernel could make: primary and secondary, across VSIDs, pages and
        // table sizes; RB must be the page's VA (VSID << 28 | EA bits 27:12), low 12 bits 0.
        for shift in [HptGeometry::MIN_SHIFT, 20, 23, 24] {
            let geo = HptGeometry::new(shift).unwrap();
            for vsid in [1u64, 0x408f92c94, 0xf_ffff_fffe, 0x123_4567] {
                for page in [0u64, 1, 0x7ff, 0x800, 0xabcd, 0xffff] {
                    let ea = 0xd000_0000_0000_0000 | (page << 12);
                    for secondary in [false, true] {
                        let ptex = geo.group_base(hash_4k(vsid, ea), secondary) + (page & 7);
                        let v = hpte_for(vsid, ea, 1, PAGE_KERNEL, secondary, false).v | HpteV::LOCK.bits();
                        assert_eq!(
                            tlbie_rb(geo, ptex, v),
                            (vsid << 28) | (page << 12),
                            "shift {shift} vsid {vsid:#x} page {page:#x} H={secondary}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn lock_bit_is_a_software_bit() {
        assert_eq!(HpteV::LOCK.bits() & !V_SW_MASK, 0);
        assert_eq!(HpteV::LOCK.bits() & HpteV::BOLTED.bits(), 0);
        assert_eq!(HpteV::LOCK.bits() & AVPN_MASK, 0, "an AVPN check ignores the lock");
        let h = Hpte { v: HpteV::VALID.bits() | HpteV::LOCK.bits(), r: 0 };
        assert!(format!("{h}").contains(" LOCKED"));
    }

    #[test]
    fn page_for_group_inverts_the_hash() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let vsid = x & 0xf_ffff_ffff;
            let shift = 16 + (x >> 40) as u32 % 4; // 2^16 .. 2^19 groups
            let mask = (1u64 << shift) - 1;
            let group = (x >> 20) & mask;
            let seg = 0xd000_0000_0000_0000u64 + ((x >> 50) << 28);
            match page_for_group(vsid, group, mask) {
                Some(off) => {
                    assert!(off < 1 << 28 && off % 4096 == 0);
                    assert_eq!(hash_4k(vsid, seg + off) & mask, group, "vsid {vsid:#x} group {group:#x}");
                }
                None => {
                    // no page of this segment reaches that group
                    for p in (0..1u64 << 16).step_by(97) {
                        assert_ne!(hash_4k(vsid, seg + (p << 12)) & mask, group);
                    }
                    assert!(mask > 0xffff);
                }
            }
        }
    }
}
