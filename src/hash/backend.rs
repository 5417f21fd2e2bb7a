//! The architecture seam: everything hash_page needs from the hashed page table, behind one
//! trait. On pseries the HPT belongs to the hypervisor (`Pseries`: H_ENTER, H_REMOVE,
//! H_PROTECT, H_READ); host tests and the loom model use `FakeHpt` (tests only).

pub use crate::arch::ppc64::papr::HcallError;
use crate::mm::hpte::{HptGeometry, Hpte};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// All 8 slots of the group are valid.
    Full,
    /// The hypervisor refused the entry: H_BUSY/long busy (transient, try again) or an error.
    Refused(HcallError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

/// Why H_PROTECT did not update the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectError {
    /// No valid entry with that AVPN at that index (evicted): insert afresh.
    NotFound,
    /// Anything else: the entry may still be there, so inserting a second one would be wrong.
    Refused(HcallError),
}

/// Why H_REMOVE did not remove the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveError {
    /// No valid entry with that AVPN at that index: already gone.
    NotFound,
    /// The hypervisor refused: the entry may still be there.
    Refused(HcallError),
}

pub trait HashBackend {
    /// The HPT's size (the hash mask the group arithmetic needs).
    fn geometry(&self) -> HptGeometry;
    /// Inserts into the first free slot of the group starting at `group_ptex`; returns the
    /// PTE index used.
    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError>;
    /// Reads the 8 entries of the group starting at `group_ptex` (for choosing a victim; each
    /// entry may change right after, so acting on one is always AVPN-checked).
    fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError>;
    /// Rewrites the protection of the entry at `ptex` if its AVPN still is `avpn`.
    fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError>;
    /// Removes the entry at `ptex` if its AVPN still is `avpn`; returns it.
    fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError>;
    /// Removes the entry at `ptex` whatever it maps, unless it is bolted (H_REMOVE with
    /// H_ANDCOND on the BOLTED bit): the victim of an eviction. NotFound: empty or bolted.
    /// The Ok value may be `Hpte::EMPTY` (a backend need not report what it removed).
    fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError>;
    fn read(&self, ptex: u64) -> Hpte;
    /// A cheap pseudo-random number (the time base on hardware) for victim choice.
    fn random(&self) -> u64;
    /// The second doubleword of the HPTE for present PTE `pte` (see `protocol::HPTE_R`); a
    /// backend may find the table more cheaply than through the TOC.
    #[inline(always)]
    fn hpte_r(&self, pte: crate::mm::pte::Pte) -> u64 {
        super::protocol::HPTE_R.r(pte)
    }
}

#[cfg(target_os = "none")]
mod pseries {
    use super::*;
    use crate::arch::ppc64::hcall::{self, H_AVPN};
    use crate::arch::ppc64::insn;
    use crate::arch::ppc64::percpu;

    /// PAPR hypercalls. The AVPN argument of H_REMOVE/H_PROTECT is compared with the entry's
    /// first doubleword masked by !0x7f, so passing `avpn` (already in that form) matches
    /// exactly one virtual page.
    pub struct Pseries;

    impl HashBackend for Pseries {
        /// From this CPU's per-CPU copy: one load, no lookup.
        #[inline(always)]
        fn geometry(&self) -> HptGeometry {
            HptGeometry::from_hash_mask(percpu::load_field::<{ percpu::offsets::HASH_MASK }>())
        }

        /// Only called on the hash-fault path (interrupts off), hence the CR-keeping hcall.
        #[inline(always)]
        fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
            const FULL: i64 = HcallError::PtegFull.rc();
            match hcall::h_enter_fault_path(group_ptex, v, r) {
                Ok(ptex) => Ok(ptex),
                // Success first, one compare: a full group is the uncommon case too.
                Err(rc) => {
                    core::hint::cold_path();
                    Err(if rc == FULL { InsertError::Full } else { InsertError::Refused(HcallError::from_rc(rc)) })
                }
            }
        }

        fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError> {
            let a = hcall::h_read4(group_ptex)?;
            let b = hcall::h_read4(group_ptex + 4)?;
            Ok(core::array::from_fn(|i| {
                let (v, r) = if i < 4 { a[i] } else { b[i - 4] };
                Hpte { v, r }
            }))
        }

        #[inline]
        fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
            hcall::h_protect(hprot_flags | H_AVPN, ptex, avpn).map_err(|e| match e {
                HcallError::NotFound => ProtectError::NotFound,
                e => ProtectError::Refused(e),
            })
        }

        #[inline]
        fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError> {
            hcall::h_remove(H_AVPN, ptex, avpn).map(|(v, r)| Hpte { v, r }).map_err(|e| match e {
                HcallError::NotFound => RemoveError::NotFound,
                e => RemoveError::Refused(e),
            })
        }

        /// Only called on the hash-fault path (interrupts off), hence the CR-keeping hcall.
        /// The removed entry is not returned (the caller does not need it).
        #[inline(always)]
        fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError> {
            const NOT_FOUND: i64 = HcallError::NotFound.rc();
            match hcall::h_remove_unbolted_fault_path(ptex, crate::mm::hpte::HpteV::BOLTED.bits()) {
                Ok(()) => Ok(Hpte::EMPTY),
                Err(NOT_FOUND) => Err(RemoveError::NotFound),
                Err(rc) => {
                    core::hint::cold_path();
                    Err(RemoveError::Refused(HcallError::from_rc(rc)))
                }
            }
        }

        fn read(&self, ptex: u64) -> Hpte {
            match hcall::h_read(ptex) {
                Ok((v, r)) => Hpte { v, r },
                Err(_) => Hpte { v: 0, r: 0 },
            }
        }

        #[inline]
        fn random(&self) -> u64 {
            insn::mftb()
        }

        /// Through this CPU's pointer to the table: the fault path already has the per-CPU
        /// area's address in a register, the TOC-relative address costs four instructions.
        #[inline(always)]
        fn hpte_r(&self, pte: crate::mm::pte::Pte) -> u64 {
            let t = percpu::load_field::<{ percpu::offsets::HPTE_R }>();
            // SAFETY: `hpte_r` holds the address of the static `protocol::HPTE_R` (set by
            // mm::init_cpu before the CPU takes hash faults).
            let t = unsafe { &*(t as *const super::super::protocol::HpteRTable) };
            t.r(pte)
        }
    }
}

#[cfg(target_os = "none")]
pub use pseries::Pseries;

/// An in-memory HPT with the hypervisor's semantics (first free slot, AVPN checks, bolted
/// entries never evicted), for host tests and the loom model.
#[cfg(not(target_os = "none"))]
pub mod fake {
    use super::*;
    use crate::mm::hpte::{HpteV, AVPN_MASK};
    use std::sync::atomic::{AtomicU64, Ordering::*};
    use std::sync::Mutex;

    pub struct FakeHpt {
        pub geo: HptGeometry,
        pub entries: Mutex<Vec<Hpte>>,
        pub refuse: std::sync::atomic::AtomicBool,
        rnd: AtomicU64,
    }

    impl FakeHpt {
        /// An HPT of 2^`shift` bytes.
        pub fn new(shift: u32) -> FakeHpt {
            let geo = HptGeometry::new(shift).expect("a geometry the kernel accepts");
            FakeHpt {
                geo,
                entries: Mutex::new(vec![Hpte { v: 0, r: 0 }; geo.entries() as usize]),
                refuse: std::sync::atomic::AtomicBool::new(false),
                rnd: AtomicU64::new(0x1234_5678),
            }
        }
        pub fn valid_entries(&self) -> Vec<(u64, Hpte)> {
            let e = self.entries.lock().unwrap();
            e.iter().enumerate().filter(|(_, h)| h.is_valid()).map(|(i, h)| (i as u64, *h)).collect()
        }
        pub fn set(&self, ptex: u64, h: Hpte) {
            self.entries.lock().unwrap()[ptex as usize] = h;
        }
    }

    fn avpn_eq(v: u64, avpn: u64) -> bool {
        (v & AVPN_MASK) == (avpn & AVPN_MASK)
    }

    impl HashBackend for FakeHpt {
        fn geometry(&self) -> HptGeometry {
            self.geo
        }
        fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
            if self.refuse.load(Relaxed) {
                return Err(InsertError::Refused(HcallError::Parameter));
            }
            let mut e = self.entries.lock().unwrap();
            for i in 0..8 {
                let p = (group_ptex & !7) + i;
                if !e[p as usize].is_valid() {
                    e[p as usize] = Hpte { v: v | HpteV::VALID.bits(), r };
                    return Ok(p);
                }
            }
            Err(InsertError::Full)
        }
        fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError> {
            let e = self.entries.lock().unwrap();
            Ok(core::array::from_fn(|i| e[(group_ptex & !7) as usize + i]))
        }
        fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
            let mut e = self.entries.lock().unwrap();
            let h = &mut e[ptex as usize];
            if !h.is_valid() || !avpn_eq(h.v, avpn) {
                return Err(ProtectError::NotFound);
            }
            // Same decoding as QEMU's h_protect.
            let pp0 = 1u64 << 63;
            h.r &= !(pp0 | 0x3 | 0x4 | 0xe00 | 0x3000_0000_0000_0000);
            h.r |= (hprot_flags << 55) & pp0;
            h.r |= (hprot_flags << 48) & 0x3000_0000_0000_0000;
            h.r |= hprot_flags & (0x3 | 0x4 | 0xe00);
            Ok(())
        }
        fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError> {
            let mut e = self.entries.lock().unwrap();
            let h = e[ptex as usize];
            if !h.is_valid() || !avpn_eq(h.v, avpn) {
                return Err(RemoveError::NotFound);
            }
            e[ptex as usize] = Hpte { v: 0, r: 0 };
            Ok(h)
        }
        fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError> {
            let mut e = self.entries.lock().unwrap();
            let h = e[ptex as usize];
            if !h.is_valid() || h.is_bolted() {
                return Err(RemoveError::NotFound);
            }
            e[ptex as usize] = Hpte { v: 0, r: 0 };
            Ok(h)
        }
        fn read(&self, ptex: u64) -> Hpte {
            self.entries.lock().unwrap()[ptex as usize]
        }
        fn random(&self) -> u64 {
            self.rnd.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed)
        }
    }
}
