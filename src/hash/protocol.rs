//! hash_page's protocol, generic over the PTE cell and the HPT backend so the very same code
//! runs in the kernel (asm cell, hypercalls) and on the host (CAS cell, fake HPT, loom).
//!
//! 1. take: one atomic step checks BUSY and the access and sets BUSY|ACCESSED(|DIRTY);
//! 2. if the PTE says an HPTE exists, update its protection through the slot bits; if it is
//!    gone (evicted), fall through;
//! 3. insert: primary group, then secondary; both full → evict a non-bolted entry from one of
//!    them (chosen by a random bit, starting at a random slot) and retry;
//! 4. publish the PTE with HASHPTE and the slot, BUSY cleared, with release ordering.
//! A hypervisor refusal restores the old PTE. Nothing here takes a lock: the only exclusion is
//! the PTE's own BUSY bit, held by code that runs with interrupts off and never waits.

use super::access::{check, publish, restore, Access, Denied};
use super::backend::{HashBackend, InsertError, ProtectError};
use super::cell::{PteCell, Take};
use super::stats::{Counter, Stats};
use crate::mm::hpte::{avpn_for, h_protect_flags, hash_4k, hpte_for, HptGeometry};
use crate::mm::pte::{Pte, PteFlags};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Inserted { secondary: bool, evicted: u32 },
    Updated,
    /// Another CPU holds BUSY: return and re-execute the access.
    Retry,
    Denied(Denied),
    /// The hypervisor refused (status), or every slot of both groups is bolted.
    Refused(i64),
}

/// The flags the HPTE gets for a PTE: like Linux, a clean page is mapped read-only so the first
/// store faults and hash_page can set DIRTY (then upgrades the HPTE with H_PROTECT).
pub const fn hpte_flags(pte: Pte) -> PteFlags {
    let f = pte.flags();
    if f.contains(PteFlags::DIRTY) {
        f
    } else {
        f.difference(PteFlags::RW)
    }
}

/// Bound on evict-and-retry rounds: each round frees a slot, so failing 8 times in a row means
/// the groups are full of bolted entries or other CPUs keep refilling them.
const MAX_EVICT_ROUNDS: u32 = 8;

#[inline]
pub fn hash_pte<C: PteCell, B: HashBackend>(
    cell: &C,
    ea: u64,
    vsid: u64,
    access: Access,
    geo: HptGeometry,
    be: &B,
    st: &Stats,
) -> Outcome {
    let mut fails = 0;
    let t = cell.take(access, &mut fails);
    if fails != 0 {
        st.add(Counter::StcxFails, fails);
    }
    let (old, new) = match t {
        Take::Busy(_) => {
            st.count(Counter::BusyRetries);
            return Outcome::Retry;
        }
        Take::Denied(old) => {
            st.count(Counter::BadAccess);
            return Outcome::Denied(match check(access, old) {
                Err(d) => d,
                Ok(()) => Denied::NotPresent,
            });
        }
        Take::Taken { old, new } => (old, new),
    };
    debug_assert!(new.is_present());
    let hash = hash_4k(vsid, ea);
    let avpn = avpn_for(vsid, ea);
    let hflags = hpte_flags(new);

    if let Some(slot) = old.slot() {
        let ptex = geo.ptex(hash, slot);
        match be.protect(ptex, avpn, h_protect_flags(hflags)) {
            Ok(()) => {
                st.count(Counter::Updates);
                cell.publish(publish(new, None));
                return Outcome::Updated;
            }
            // Evicted meanwhile: the slot bits are stale; insert afresh.
            Err(ProtectError::NotFound) => {}
            Err(ProtectError::Refused(rc)) => {
                st.count(Counter::HvRefusals);
                cell.publish(restore(old));
                return Outcome::Refused(rc);
            }
        }
    }

    let mut evicted = 0;
    loop {
        for secondary in [false, true] {
            let group = geo.group_base(hash, secondary);
            let h = hpte_for(vsid, ea, new.pfn(), hflags, secondary, false);
            match be.insert(group, h.v, h.r) {
                Ok(ptex) => {
                    st.count(if secondary { Counter::InsertSecondary } else { Counter::InsertPrimary });
                    cell.publish(publish(new, Some(geo.slot_of(ptex, secondary))));
                    return Outcome::Inserted { secondary, evicted };
                }
                Err(InsertError::Full) => {}
                Err(InsertError::Refused(rc)) => {
                    st.count(Counter::HvRefusals);
                    cell.publish(restore(old));
                    return Outcome::Refused(rc);
                }
            }
        }
        if evicted >= MAX_EVICT_ROUNDS {
            st.count(Counter::HvRefusals);
            cell.publish(restore(old));
            return Outcome::Refused(-6);
        }
        // Victim group by a random bit, starting at a random slot (Linux uses the time base
        // the same way); if every entry there is bolted, the other group.
        let rnd = be.random();
        let first = rnd & 1 != 0;
        let start = (rnd >> 1) & 7;
        if be.evict(geo.group_base(hash, first), start).is_some() || be.evict(geo.group_base(hash, !first), start).is_some() {
            st.count(Counter::Evictions);
        }
        evicted += 1;
    }
}

/// Clear-and-flush for unmapping (vfree, iounmap): clears the PTE with the BUSY-waiting update
/// and removes the HPTE its slot bits name. Returns the old PTE.
pub fn clear_and_flush<C: PteCell, B: HashBackend>(cell: &C, ea: u64, vsid: u64, geo: HptGeometry, be: &B, spins: &mut u64) -> Pte {
    let old = cell.update(u64::MAX, 0, spins);
    flush_hpte(old, ea, vsid, geo, be);
    old
}

/// Removes the HPTE that `pte`'s slot bits name, if it still translates `ea` (AVPN-checked).
/// Returns whether one was removed; "not found" is fine: it was evicted meanwhile.
pub fn flush_hpte<B: HashBackend>(pte: Pte, ea: u64, vsid: u64, geo: HptGeometry, be: &B) -> bool {
    match pte.slot() {
        Some(slot) => be.invalidate(geo.ptex(hash_4k(vsid, ea), slot), avpn_for(vsid, ea)).is_ok(),
        None => false,
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use crate::hash::backend::fake::FakeHpt;
    use crate::hash::cell::CasCell;
    use crate::mm::hpte::{Hpte, HpteV};
    use crate::mm::pte::{HptSlot, PAGE_KERNEL, PAGE_KERNEL_RO};
    use crate::mm::slbe::kernel_vsid;
    use std::sync::atomic::AtomicU64;

    const EA: u64 = 0xd000_0000_0001_2000;

    fn setup(pte: Pte) -> (CasCell<AtomicU64>, FakeHpt, HptGeometry, Stats) {
        (CasCell(AtomicU64::new(pte.0)), FakeHpt::new(1 << 11), HptGeometry::new(18).unwrap(), Stats::new())
    }

    fn load() -> Access {
        Access::from_data_fault(0x4000_0000, false)
    }
    fn store() -> Access {
        Access::from_data_fault(0x4200_0000, false)
    }

    #[test]
    fn first_touch_inserts_primary_and_publishes_slot() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        assert_eq!(hash_pte(&c, EA, vsid, load(), geo, &hpt, &st), Outcome::Inserted { secondary: false, evicted: 0 });
        let p = c.load();
        assert!(p.flags().contains(PteFlags::ACCESSED));
        assert!(!p.flags().contains(PteFlags::DIRTY));
        assert!(!p.is_busy());
        let slot = p.slot().unwrap();
        let h = hpt.read(geo.ptex(hash_4k(vsid, EA), slot));
        assert!(h.matches(vsid, EA));
        assert_eq!(h.rpn(), 0x1234);
        // clean page: read-only in the HPTE
        assert_eq!(h.pp(), 6);
        assert_eq!(st.get(Counter::InsertPrimary), 1);
    }

    #[test]
    fn store_sets_dirty_and_upgrades_existing_hpte() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        hash_pte(&c, EA, vsid, load(), geo, &hpt, &st);
        assert_eq!(hash_pte(&c, EA, vsid, store(), geo, &hpt, &st), Outcome::Updated);
        let p = c.load();
        assert!(p.flags().contains(PteFlags::DIRTY));
        let h = hpt.read(geo.ptex(hash_4k(vsid, EA), p.slot().unwrap()));
        assert_eq!(h.pp(), 0, "dirty kernel RW page is writable in the HPTE");
        assert_eq!(hpt.valid_entries().len(), 1);
    }

    #[test]
    fn store_to_readonly_denied_and_unchanged() {
        let before = Pte::new(0x1234, PAGE_KERNEL_RO);
        let (c, hpt, geo, st) = setup(before);
        let r = hash_pte(&c, EA, kernel_vsid(EA), store(), geo, &hpt, &st);
        assert_eq!(r, Outcome::Denied(Denied::WriteToReadOnly));
        assert_eq!(c.load(), before);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn user_access_denied_without_touching_a_or_d() {
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, hpt, geo, st) = setup(before);
        let r = hash_pte(&c, EA, kernel_vsid(EA), Access::from_data_fault(0x4200_0000, true), geo, &hpt, &st);
        assert_eq!(r, Outcome::Denied(Denied::UserToKernel));
        assert_eq!(c.load(), before);
    }

    #[test]
    fn not_present_swap_pattern_never_hashed() {
        let swap = Pte(0xdead_beef_0000_0000 | 0x0300); // RW|ACCESSED-looking bits, no PRESENT
        let (c, hpt, geo, st) = setup(swap);
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), load(), geo, &hpt, &st), Outcome::Denied(Denied::NotPresent));
        assert_eq!(c.load(), swap);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn busy_means_retry_and_no_change() {
        let busy = Pte::new(0x1234, PAGE_KERNEL).with(PteFlags::BUSY);
        let (c, hpt, geo, st) = setup(busy);
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), load(), geo, &hpt, &st), Outcome::Retry);
        assert_eq!(c.load(), busy);
        assert_eq!(st.get(Counter::BusyRetries), 1);
    }

    #[test]
    fn full_groups_go_secondary_then_evict_never_bolted() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        let hash = hash_4k(vsid, EA);
        // Fill the primary group with bolted entries.
        let pg = geo.group_base(hash, false);
        for i in 0..8 {
            hpt.set(pg + i, Hpte { v: (0x77 << 12) | HpteV::VALID.bits() | HpteV::BOLTED.bits(), r: 0 });
        }
        assert_eq!(hash_pte(&c, EA, vsid, load(), geo, &hpt, &st), Outcome::Inserted { secondary: true, evicted: 0 });
        assert!(c.load().slot().unwrap().secondary);
        // Fill the secondary group with unbolted foreign entries; a second page must evict.
        let ea2 = EA; // same hash: reuse the cell after clearing it
        let mut spins = 0;
        clear_and_flush(&c, ea2, vsid, geo, &hpt, &mut spins);
        let sg = geo.group_base(hash, true);
        for i in 0..8 {
            hpt.set(sg + i, Hpte { v: (0x99 << 12) | HpteV::VALID.bits(), r: 0 });
        }
        c.publish(Pte::new(0x4321, PAGE_KERNEL));
        let r = hash_pte(&c, ea2, vsid, load(), geo, &hpt, &st);
        assert!(matches!(r, Outcome::Inserted { evicted: 1.., .. }), "{r:?}");
        assert!(st.get(Counter::Evictions) >= 1);
        for i in 0..8 {
            assert!(hpt.read(pg + i).is_bolted(), "bolted entry {i} survived");
        }
    }

    #[test]
    fn all_bolted_is_refused_and_pte_restored() {
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, hpt, geo, st) = setup(before);
        let vsid = kernel_vsid(EA);
        let hash = hash_4k(vsid, EA);
        for sec in [false, true] {
            let g = geo.group_base(hash, sec);
            for i in 0..8 {
                hpt.set(g + i, Hpte { v: HpteV::VALID.bits() | HpteV::BOLTED.bits(), r: 0 });
            }
        }
        assert!(matches!(hash_pte(&c, EA, vsid, load(), geo, &hpt, &st), Outcome::Refused(_)));
        assert_eq!(c.load(), before, "BUSY dropped, nothing else changed");
    }

    #[test]
    fn hypervisor_refusal_restores_old() {
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, hpt, geo, st) = setup(before);
        hpt.refuse.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), load(), geo, &hpt, &st), Outcome::Refused(-4));
        assert_eq!(c.load(), before);
        assert_eq!(st.get(Counter::HvRefusals), 1);
    }

    #[test]
    fn evicted_hpte_is_reinserted_on_next_touch() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        hash_pte(&c, EA, vsid, load(), geo, &hpt, &st);
        let slot: HptSlot = c.load().slot().unwrap();
        let ptex = geo.ptex(hash_4k(vsid, EA), slot);
        hpt.invalidate(ptex, avpn_for(vsid, EA)).unwrap();
        assert_eq!(hash_pte(&c, EA, vsid, load(), geo, &hpt, &st), Outcome::Inserted { secondary: false, evicted: 0 });
        assert_eq!(hpt.valid_entries().len(), 1);
    }

    #[test]
    fn clear_and_flush_removes_hpte() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        hash_pte(&c, EA, vsid, store(), geo, &hpt, &st);
        let mut spins = 0;
        let old = clear_and_flush(&c, EA, vsid, geo, &hpt, &mut spins);
        assert!(old.flags().contains(PteFlags::DIRTY));
        assert!(c.load().is_none() && c.load().0 == 0);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn clean_pages_are_read_only_in_the_hpte() {
        assert!(!hpte_flags(Pte::new(1, PAGE_KERNEL)).contains(PteFlags::RW));
        assert!(hpte_flags(Pte::new(1, PAGE_KERNEL).with(PteFlags::DIRTY)).contains(PteFlags::RW));
        assert!(!hpte_flags(Pte::new(1, PAGE_KERNEL_RO).with(PteFlags::DIRTY)).contains(PteFlags::RW));
    }
}
