//! The architecture seam: everything hash_page needs from the hashed page table, behind one
//! trait. On pseries the HPT belongs to the hypervisor (`Pseries`: H_ENTER, H_REMOVE,
//! H_PROTECT, H_READ); host tests and the loom model use `FakeHpt` (tests only).

use crate::mm::hpte::Hpte;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// All 8 slots of the group are valid.
    Full,
    /// The hypervisor refused the entry (status code).
    Refused(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

/// Why H_PROTECT did not update the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectError {
    /// No valid entry with that AVPN at that index (evicted): insert afresh.
    NotFound,
    /// Anything else: the entry may still be there, so inserting a second one would be wrong.
    Refused(i64),
}

pub trait HashBackend {
    /// Inserts into the first free slot of the group starting at `group_ptex`; returns the
    /// PTE index used.
    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError>;
    /// Evicts one non-bolted entry of the group, trying slots from `start` round the group.
    /// Returns the evicted entry, or None if every valid slot was bolted.
    fn evict(&self, group_ptex: u64, start: u64) -> Option<Hpte>;
    /// Rewrites the protection of the entry at `ptex` if its AVPN still is `avpn`.
    fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError>;
    /// Removes the entry at `ptex` if its AVPN still is `avpn`.
    fn invalidate(&self, ptex: u64, avpn: u64) -> Result<Hpte, NotFound>;
    fn read(&self, ptex: u64) -> Hpte;
    /// A cheap pseudo-random number (the time base on hardware) for victim choice.
    fn random(&self) -> u64;
}

#[cfg(target_os = "none")]
mod pseries {
    use super::*;
    use crate::arch::ppc64::hcall::{self, HcallError, H_ANDCOND, H_AVPN};
    use crate::arch::ppc64::insn;
    use crate::mm::hpte::HpteV;

    /// PAPR hypercalls. The AVPN argument of H_REMOVE/H_PROTECT is compared with the entry's
    /// first doubleword masked by !0x7f, so passing `avpn` (already in that form) matches
    /// exactly one virtual page.
    pub struct Pseries;

    impl HashBackend for Pseries {
        #[inline]
        fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
            match hcall::h_enter(0, group_ptex, v, r) {
                Ok(ptex) => Ok(ptex),
                Err(HcallError::PtegFull) => Err(InsertError::Full),
                Err(e) => Err(InsertError::Refused(match e {
                    HcallError::Parameter => -4,
                    HcallError::Hardware => -1,
                    HcallError::Other(x) => x,
                    _ => -9999,
                })),
            }
        }

        fn evict(&self, group_ptex: u64, start: u64) -> Option<Hpte> {
            for i in 0..8 {
                let ptex = group_ptex + ((start + i) & 7);
                // H_ANDCOND with the BOLTED bit: removed only if (v & BOLTED) == 0.
                if let Ok((v, r)) = hcall::h_remove(H_ANDCOND, ptex, HpteV::BOLTED.bits()) {
                    return Some(Hpte { v, r });
                }
            }
            None
        }

        #[inline]
        fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
            hcall::h_protect(hprot_flags | H_AVPN, ptex, avpn).map_err(|e| match e {
                HcallError::NotFound => ProtectError::NotFound,
                HcallError::Parameter => ProtectError::Refused(-4),
                HcallError::Hardware => ProtectError::Refused(-1),
                HcallError::Other(x) => ProtectError::Refused(x),
                _ => ProtectError::Refused(-9999),
            })
        }

        #[inline]
        fn invalidate(&self, ptex: u64, avpn: u64) -> Result<Hpte, NotFound> {
            hcall::h_remove(H_AVPN, ptex, avpn).map(|(v, r)| Hpte { v, r }).map_err(|_| NotFound)
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
        pub entries: Mutex<Vec<Hpte>>,
        pub refuse: std::sync::atomic::AtomicBool,
        rnd: AtomicU64,
    }

    impl FakeHpt {
        pub fn new(groups: usize) -> FakeHpt {
            FakeHpt {
                entries: Mutex::new(vec![Hpte { v: 0, r: 0 }; groups * 8]),
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
        fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
            if self.refuse.load(Relaxed) {
                return Err(InsertError::Refused(-4));
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
        fn evict(&self, group_ptex: u64, start: u64) -> Option<Hpte> {
            let mut e = self.entries.lock().unwrap();
            for i in 0..8 {
                let p = (group_ptex & !7) + ((start + i) & 7);
                let h = e[p as usize];
                if h.is_valid() && !h.is_bolted() {
                    e[p as usize] = Hpte { v: 0, r: 0 };
                    return Some(h);
                }
            }
            None
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
        fn invalidate(&self, ptex: u64, avpn: u64) -> Result<Hpte, NotFound> {
            let mut e = self.entries.lock().unwrap();
            let h = e[ptex as usize];
            if !h.is_valid() || !avpn_eq(h.v, avpn) {
                return Err(NotFound);
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
