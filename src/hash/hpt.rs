//! The hashed page table of the machine the kernel runs on, for everything outside the 0x300
//! fast path: vmalloc's flushes, the 0x400 path, boot-time changes to bolted entries, the
//! stress's invariant reads, tests and benchmarks. One branch on the platform per call; the
//! fast path instead has one instantiation per backend and its entry's call is patched to the
//! right one at boot (`hash::fault::select`).
//!
//! Unlike the fault path's own calls, every operation here may be called with interrupts on:
//! the pseries side uses the general hypercall wrappers, the native side masks interrupts
//! around each lock it takes.

use super::backend::{HashBackend, HcallError, InsertError, ProtectError, Pseries, RemoveError};
use super::native::{HptMem, NATIVE};
use crate::arch::ppc64::hcall::{self, H_ANDCOND};
use crate::arch::ppc64::platform::powernv;
use crate::mm::hpte::{HptGeometry, Hpte, HpteV};

pub struct Hpt;

impl HashBackend for Hpt {
    fn geometry(&self) -> HptGeometry {
        crate::arch::ppc64::boot::hpt()
    }

    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, InsertError> {
        if powernv() {
            return NATIVE.mem.critical(|| NATIVE.insert(group_ptex, v, r));
        }
        hcall::h_enter(0, group_ptex & !7, v, r).map_err(|e| match e {
            HcallError::PtegFull => InsertError::Full,
            e => InsertError::Refused(e),
        })
    }

    fn read_group(&self, group_ptex: u64) -> Result<[Hpte; 8], HcallError> {
        if powernv() {
            NATIVE.read_group(group_ptex)
        } else {
            Pseries.read_group(group_ptex)
        }
    }

    fn protect(&self, ptex: u64, avpn: u64, hprot_flags: u64) -> Result<(), ProtectError> {
        if powernv() {
            NATIVE.protect(ptex, avpn, hprot_flags)
        } else {
            Pseries.protect(ptex, avpn, hprot_flags)
        }
    }

    fn remove(&self, ptex: u64, avpn: u64) -> Result<Hpte, RemoveError> {
        if powernv() {
            NATIVE.remove(ptex, avpn)
        } else {
            Pseries.remove(ptex, avpn)
        }
    }

    fn remove_unbolted(&self, ptex: u64) -> Result<Hpte, RemoveError> {
        if powernv() {
            return NATIVE.mem.critical(|| NATIVE.remove_unbolted(ptex));
        }
        hcall::h_remove(H_ANDCOND, ptex, HpteV::BOLTED.bits()).map(|(v, r)| Hpte { v, r }).map_err(|e| match e {
            HcallError::NotFound => RemoveError::NotFound,
            e => RemoveError::Refused(e),
        })
    }

    fn read(&self, ptex: u64) -> Hpte {
        if powernv() {
            NATIVE.read(ptex)
        } else {
            Pseries.read(ptex)
        }
    }

    fn random(&self) -> u64 {
        crate::arch::ppc64::insn::mftb()
    }
}
