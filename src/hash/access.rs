//! The pure decision logic of `hash_page` and of the map/unmap paths that
//! share the PTE bit-lock with it.
//!
//! Protocol (all PTE updates are compare-and-swap on the whole u64):
//!
//! 1. `hash_page` reads the PTE and calls [`decide`]. `Retry` means another
//!    CPU holds BUSY: return and let the access fault again. `Deny` means a
//!    real fault: change nothing. `Take { new }` means CAS `old -> new`
//!    (which sets BUSY, ACCESSED and, for stores, DIRTY); if the CAS fails,
//!    start over.
//! 2. Holding BUSY, it inserts or updates the HPTE, then stores
//!    [`publish`]`(new, slot)`, which drops BUSY and records the slot. If the
//!    hypervisor refuses, it stores [`restore`]`(old)` instead.
//! 3. `vfree`/`iounmap` clear as [`clear_step`] describes and `map` checks its
//!    PTE with [`set_step`]: both wait while BUSY is held (the kernel's
//!    BUSY-waiting `PteCell::update` in hash/cell.rs implements the wait), so
//!    they never race with an HPTE insertion for the same PTE.
//!
//! Keeping these decisions pure lets them be tested exhaustively on the host;
//! the kernel side only adds the atomics and hypervisor calls.

use crate::arch::ppc64::reg::Dsisr;
use crate::mm::pte::{HptSlot, Pte, PteFlags, HPTEFLAGS};
use bitflags::bitflags;

bitflags! {
    /// The PTE permissions an access needs, using the PTE's own bit values so
    /// a check is a mask test.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Access: u64 {
        /// Always required; part of the set so `bits()` is the full mask.
        const PRESENT = PteFlags::PRESENT.bits();
        /// A store.
        const RW      = PteFlags::RW.bits();
        /// An instruction fetch.
        const EXEC    = PteFlags::EXEC.bits();
        /// From problem state.
        const USER    = PteFlags::USER.bits();
    }
}

impl Access {
    /// A load or store that took a data storage interrupt. Only
    /// `DSISR_ISSTORE` matters here; the other DSISR bits say why the MMU
    /// refused, which the PTE check re-derives.
    #[inline(always)]
    pub fn from_data_fault(dsisr: u32, user: bool) -> Access {
        // Branch-free (the hash-fault path): DSISR's store bit shifted onto RW.
        const SHIFT: u32 = Dsisr::ISSTORE.bits().trailing_zeros() - PteFlags::RW.bits().trailing_zeros();
        const _: () = assert!(Dsisr::ISSTORE.bits() >> SHIFT == PteFlags::RW.bits() as u32);
        let rw = ((dsisr >> SHIFT) as u64) & PteFlags::RW.bits();
        let user = (user as u64) * PteFlags::USER.bits();
        Access::from_bits_retain(PteFlags::PRESENT.bits() | rw | user)
    }

    /// An instruction fetch that took an instruction storage interrupt.
    pub fn from_instruction_fault(user: bool) -> Access {
        let mut a = Access::PRESENT | Access::EXEC;
        if user {
            a |= Access::USER;
        }
        a
    }

    /// The PTE bits this access requires (PRESENT is always included).
    pub const fn required(self) -> PteFlags {
        PteFlags::from_bits_truncate(self.bits() | PteFlags::PRESENT.bits())
    }
}

/// Why an access is not allowed by the PTE; becomes the fault report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    NotPresent,
    UserToKernel,
    WriteToReadOnly,
    NoExec,
    /// An instruction fetch from a GUARDED page: the HPTE's G bit would refuse every fetch, so
    /// inserting one would make the fetch fault forever.
    ExecGuarded,
}

/// Whether `pte` allows `access`; on failure the first reason in the order
/// NotPresent, UserToKernel, WriteToReadOnly, NoExec, ExecGuarded. The kernel may access
/// USER pages (USER only restricts problem state, it does not exclude the
/// supervisor).
pub const fn check(access: Access, pte: Pte) -> Result<(), Denied> {
    let f = pte.flags();
    if !f.contains(PteFlags::PRESENT) {
        return Err(Denied::NotPresent);
    }
    if access.contains(Access::USER) && !f.contains(PteFlags::USER) {
        return Err(Denied::UserToKernel);
    }
    if access.contains(Access::RW) && !f.contains(PteFlags::RW) {
        return Err(Denied::WriteToReadOnly);
    }
    if access.contains(Access::EXEC) && !f.contains(PteFlags::EXEC) {
        return Err(Denied::NoExec);
    }
    if access.contains(Access::EXEC) && f.contains(PteFlags::GUARDED) {
        return Err(Denied::ExecGuarded);
    }
    Ok(())
}

/// What `hash_page` should do with the PTE value it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// BUSY held by someone: return, re-execute the access.
    Retry,
    /// A genuine fault: change nothing.
    Deny(Denied),
    /// Store `new` with the CAS, then build the HPTE.
    Take { new: Pte },
}

/// BUSY is checked before permissions because its holder may be about to
/// change the PTE; a denial based on the old value could be stale. Denied
/// accesses leave ACCESSED/DIRTY alone so that reference tracking reflects
/// only accesses that really happened.
pub const fn decide(old: Pte, access: Access) -> Step {
    if old.is_busy() {
        return Step::Retry;
    }
    if let Err(d) = check(access, old) {
        return Step::Deny(d);
    }
    let mut set = PteFlags::BUSY.union(PteFlags::ACCESSED);
    if access.contains(Access::RW) {
        set = set.union(PteFlags::DIRTY);
    }
    Step::Take { new: old.with(set) }
}

/// The value stored once the HPTE is in place: drops BUSY, and records the
/// slot when a new HPTE was inserted. `None` is the update path (H_PROTECT
/// on the existing HPTE), which keeps the recorded slot.
pub const fn publish(taken: Pte, slot: Option<HptSlot>) -> Pte {
    let p = taken.without(PteFlags::BUSY);
    match slot {
        Some(s) => p.with_slot(s),
        None => p,
    }
}

/// The value stored when the hypervisor refused the HPTE: the PTE as it was
/// before the Take, so no ACCESSED/DIRTY is claimed for an access that did
/// not happen. `old` never had BUSY (decide would have said Retry).
pub const fn restore(old: Pte) -> Pte {
    old.without(PteFlags::BUSY)
}

/// Unmap (vfree/iounmap): `None` while BUSY is held (wait and retry, since
/// the holder may be about to insert an HPTE that would then be missed by the
/// flush), else the all-zero PTE. The caller flushes the HPTE recorded in
/// `old.slot()` after the CAS succeeds.
pub const fn clear_step(old: Pte) -> Option<Pte> {
    if old.is_busy() {
        None
    } else {
        Some(Pte::NONE)
    }
}

/// Map: only legal on a none PTE. `Err(old)` when `old` still describes
/// something (present, or a non-present payload), and also when it still
/// records an HPTE (HASHPTE): overwriting that would orphan a live HPTE for
/// the old frame, so it must be flushed and cleared first. `Ok(None)` while
/// BUSY is held (wait and retry); otherwise `Ok(Some(new))` with `new`'s
/// HPTEFLAGS dropped, since no HPTE exists yet for the new translation.
pub const fn set_step(old: Pte, new: Pte) -> Result<Option<Pte>, Pte> {
    if !old.is_none() || old.has_hashpte() {
        return Err(old);
    }
    if old.is_busy() {
        return Ok(None);
    }
    Ok(Some(Pte(new.raw() & !HPTEFLAGS.bits())))
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use crate::mm::pte::{PAGE_KERNEL, PAGE_KERNEL_RO, PAGE_KERNEL_X};

    const PFN: u64 = 0xdead_beef;

    /// PRESENT plus every subset of RW/EXEC/USER.
    fn all_accesses() -> impl Iterator<Item = Access> {
        (0..8u32).map(|m| {
            let mut a = Access::PRESENT;
            if m & 1 != 0 {
                a |= Access::RW;
            }
            if m & 2 != 0 {
                a |= Access::EXEC;
            }
            if m & 4 != 0 {
                a |= Access::USER;
            }
            a
        })
    }

    fn all_ptes() -> impl Iterator<Item = Pte> {
        (0..=0xffffu64).map(|low| Pte((PFN << 16) | low))
    }

    #[test]
    fn access_bits_are_pte_bits() {
        assert_eq!(Access::PRESENT.bits(), 0x1);
        assert_eq!(Access::RW.bits(), 0x200);
        assert_eq!(Access::EXEC.bits(), 0x4);
        assert_eq!(Access::USER.bits(), 0x2);
        assert_eq!(Access::empty().required(), PteFlags::PRESENT);
        assert_eq!(Access::all().required(), PteFlags::PRESENT | PteFlags::RW | PteFlags::EXEC | PteFlags::USER);
    }

    #[test]
    fn data_fault_constructor() {
        assert_eq!(Access::from_data_fault(0, false), Access::PRESENT);
        assert_eq!(Access::from_data_fault(0x4000_0000, false), Access::PRESENT);
        assert_eq!(Access::from_data_fault(0x4200_0000, false), Access::PRESENT | Access::RW);
        assert_eq!(Access::from_data_fault(0x0a00_0000, true), Access::PRESENT | Access::RW | Access::USER);
        assert_eq!(Access::from_data_fault(!0x0200_0000, true), Access::PRESENT | Access::USER);
        for d in [0u32, 0x0200_0000, u32::MAX] {
            assert!(!Access::from_data_fault(d, false).contains(Access::EXEC));
        }
    }

    #[test]
    fn instruction_fault_constructor() {
        assert_eq!(Access::from_instruction_fault(false), Access::PRESENT | Access::EXEC);
        assert_eq!(Access::from_instruction_fault(true), Access::PRESENT | Access::EXEC | Access::USER);
    }

    #[test]
    fn check_examples_and_order() {
        let kload = Access::PRESENT;
        let kstore = Access::PRESENT | Access::RW;
        let kfetch = Access::from_instruction_fault(false);
        let ustore = Access::PRESENT | Access::RW | Access::USER;
        let ufetch = Access::from_instruction_fault(true);
        let k = Pte::new(1, PAGE_KERNEL);
        assert_eq!(check(kload, k), Ok(()));
        assert_eq!(check(kstore, k), Ok(()));
        assert_eq!(check(kfetch, k), Err(Denied::NoExec));
        assert_eq!(check(kfetch, Pte::new(1, PAGE_KERNEL_X)), Ok(()));
        assert_eq!(check(kstore, Pte::new(1, PAGE_KERNEL_RO)), Err(Denied::WriteToReadOnly));
        assert_eq!(check(kload, Pte::NONE), Err(Denied::NotPresent));
        // Even an empty access needs PRESENT.
        assert_eq!(check(Access::empty(), Pte::NONE), Err(Denied::NotPresent));
        assert_eq!(check(Access::empty(), k), Ok(()));
        // Order: NotPresent beats everything.
        assert_eq!(check(Access::all(), Pte(PFN << 16)), Err(Denied::NotPresent));
        // UserToKernel beats WriteToReadOnly and NoExec.
        assert_eq!(check(ustore, Pte::new(1, PAGE_KERNEL_RO)), Err(Denied::UserToKernel));
        assert_eq!(check(ufetch, k), Err(Denied::UserToKernel));
        // WriteToReadOnly beats NoExec.
        let user_ro = Pte::new(1, PteFlags::PRESENT | PteFlags::USER);
        assert_eq!(check(Access::all(), user_ro), Err(Denied::WriteToReadOnly));
        assert_eq!(check(ufetch, user_ro), Err(Denied::NoExec));
        // Kernel may access USER pages.
        let user_rwx = Pte::new(1, PteFlags::PRESENT | PteFlags::USER | PteFlags::RW | PteFlags::EXEC);
        assert_eq!(check(kstore, user_rwx), Ok(()));
        assert_eq!(check(kfetch, user_rwx), Ok(()));
        assert_eq!(check(Access::all(), user_rwx), Ok(()));
    }

    #[test]
    fn decide_examples() {
        let k = Pte::new(5, PAGE_KERNEL);
        assert_eq!(decide(k, Access::PRESENT), Step::Take { new: k.with(PteFlags::BUSY | PteFlags::ACCESSED) });
        assert_eq!(
            decide(k, Access::PRESENT | Access::RW),
            Step::Take { new: k.with(PteFlags::BUSY | PteFlags::ACCESSED | PteFlags::DIRTY) }
        );
        assert_eq!(decide(k.with(PteFlags::BUSY), Access::PRESENT), Step::Retry);
        // BUSY is checked before permissions.
        assert_eq!(decide(Pte(0x800), Access::PRESENT), Step::Retry);
        assert_eq!(decide(k.with(PteFlags::BUSY), Access::from_instruction_fault(true)), Step::Retry);
        assert_eq!(decide(k, Access::from_instruction_fault(false)), Step::Deny(Denied::NoExec));
        // Existing slot bits survive the Take.
        let hashed = k.with_slot(HptSlot::new(true, 6));
        match decide(hashed, Access::PRESENT) {
            Step::Take { new } => assert_eq!(new.slot(), Some(HptSlot::new(true, 6))),
            s => panic!("{:?}", s),
        }
    }

    /// The exhaustive property test over all 2^16 flag patterns and all
    /// access kinds.
    #[test]
    fn decide_exhaustive() {
        let allowed_change = (PteFlags::BUSY | PteFlags::ACCESSED | PteFlags::DIRTY).bits();
        let mut takes = 0u32;
        for old in all_ptes() {
            for access in all_accesses() {
                match decide(old, access) {
                    Step::Retry => {
                        assert!(old.is_busy());
                    }
                    Step::Deny(d) => {
                        assert!(!old.is_busy());
                        assert_eq!(check(access, old), Err(d));
                    }
                    Step::Take { new } => {
                        takes += 1;
                        assert!(!old.is_busy());
                        assert_eq!(check(access, old), Ok(()));
                        assert!(old.is_present(), "non-present PTE taken: {}", old);
                        if access.contains(Access::USER) {
                            assert!(old.flags().contains(PteFlags::USER), "user took kernel page {}", old);
                        }
                        assert!(new.is_busy());
                        assert!(new.flags().contains(PteFlags::ACCESSED));
                        // Only BUSY/ACCESSED/DIRTY may change, and only by being set.
                        let diff = old.raw() ^ new.raw();
                        assert_eq!(diff & !allowed_change, 0, "{} -> {}", old, new);
                        assert_eq!(new.raw() & old.raw(), old.raw());
                        // HPTEFLAGS other than BUSY untouched.
                        assert_eq!(
                            new.raw() & (HPTEFLAGS.bits() & !PteFlags::BUSY.bits()),
                            old.raw() & (HPTEFLAGS.bits() & !PteFlags::BUSY.bits())
                        );
                        assert_eq!(new.pfn(), PFN);
                        // DIRTY only becomes set for stores.
                        if !access.contains(Access::RW) {
                            assert_eq!(new.flags().contains(PteFlags::DIRTY), old.flags().contains(PteFlags::DIRTY));
                        } else {
                            assert!(new.flags().contains(PteFlags::DIRTY));
                            assert!(old.flags().contains(PteFlags::RW));
                        }
                        if access.contains(Access::EXEC) {
                            assert!(old.flags().contains(PteFlags::EXEC));
                        }
                    }
                }
                // Completeness: every non-busy PTE the check allows is taken.
                if !old.is_busy() && check(access, old).is_ok() {
                    assert!(matches!(decide(old, access), Step::Take { .. }));
                }
            }
        }
        // Sanity: the property was not vacuous.
        assert!(takes > 10_000);
    }

    /// The check is a mask test (the asm take's `andc.`), plus "no fetch from a GUARDED page"
    /// (its `xor` for fetches).
    #[test]
    fn check_exhaustive_matches_mask_test() {
        for old in all_ptes() {
            for access in all_accesses() {
                let need = access.required();
                let guarded_fetch = access.contains(Access::EXEC) && old.flags().contains(PteFlags::GUARDED);
                assert_eq!(check(access, old).is_ok(), old.flags().contains(need) && !guarded_fetch);
            }
        }
    }

    #[test]
    fn publish_paths() {
        let old = Pte::new(7, PAGE_KERNEL);
        let Step::Take { new } = decide(old, Access::PRESENT | Access::RW) else { panic!() };
        // Insert path.
        let s = HptSlot::new(false, 4);
        let p = publish(new, Some(s));
        assert!(!p.is_busy());
        assert_eq!(p.slot(), Some(s));
        assert_eq!(p.without_hpte_flags(), old.with(PteFlags::ACCESSED | PteFlags::DIRTY));
        // Update path keeps the recorded slot.
        let Step::Take { new: again } = decide(p, Access::PRESENT) else { panic!() };
        let q = publish(again, None);
        assert!(!q.is_busy());
        assert_eq!(q, p);
        // Re-insert into a different slot replaces the old slot bits.
        let s2 = HptSlot::new(true, 1);
        let r = publish(again, Some(s2));
        assert_eq!(r.slot(), Some(s2));
        assert_eq!(r.without_hpte_flags(), p.without_hpte_flags());
        // None on a PTE that never had an HPTE: nothing invented.
        let plain = publish(Pte::new(1, PAGE_KERNEL).with(PteFlags::BUSY), None);
        assert_eq!(plain, Pte::new(1, PAGE_KERNEL));
        assert_eq!(plain.slot(), None);
    }

    #[test]
    fn publish_exhaustive() {
        for low in 0..=0xffffu64 {
            let taken = Pte((PFN << 16) | low).with(PteFlags::BUSY);
            let p = publish(taken, None);
            assert_eq!(p.raw(), taken.raw() & !0x800);
            for sec in [false, true] {
                for i in 0..8 {
                    let s = HptSlot::new(sec, i);
                    let p = publish(taken, Some(s));
                    assert!(!p.is_busy());
                    assert_eq!(p.slot(), Some(s));
                    assert_eq!(p.raw() & 0x03ff, low & 0x03ff);
                    assert_eq!(p.pfn(), PFN);
                }
            }
        }
    }

    #[test]
    fn restore_undoes_take() {
        for low in 0..=0xffffu64 {
            let old = Pte((PFN << 16) | low);
            if old.is_busy() {
                continue;
            }
            for access in all_accesses() {
                if let Step::Take { .. } = decide(old, access) {
                    assert_eq!(restore(old), old);
                }
            }
        }
        assert_eq!(restore(Pte(0x801)), Pte(0x1));
    }

    #[test]
    fn clear_step_cases() {
        assert_eq!(clear_step(Pte::NONE), Some(Pte::NONE));
        for low in 0..=0xffffu64 {
            let old = Pte((PFN << 16) | low);
            let r = clear_step(old);
            if old.is_busy() {
                assert_eq!(r, None);
            } else {
                assert_eq!(r, Some(Pte::NONE));
                assert_eq!(r.unwrap().raw(), 0);
            }
        }
    }

    #[test]
    fn set_step_cases() {
        let new = Pte::new(3, PAGE_KERNEL);
        assert_eq!(set_step(Pte::NONE, new), Ok(Some(new)));
        // HPTEFLAGS in `new` are dropped.
        let dirty_new = new.with_slot(HptSlot::new(true, 7)).with(PteFlags::BUSY);
        assert_eq!(set_step(Pte::NONE, dirty_new), Ok(Some(new)));
        // Busy (impossible in practice on a none PTE, but must wait).
        assert_eq!(set_step(Pte(0x800), new), Ok(None));
        // Present: illegal.
        let present = Pte::new(9, PAGE_KERNEL);
        assert_eq!(set_step(present, new), Err(present));
        assert_eq!(set_step(present.with(PteFlags::BUSY), new), Err(present.with(PteFlags::BUSY)));
        // Non-present payload: illegal too.
        assert_eq!(set_step(Pte(0x1_0000), new), Err(Pte(0x1_0000)));
        // Stale HPTE recorded: must be flushed first.
        let stale = Pte::NONE.with_slot(HptSlot::new(false, 2));
        assert!(stale.is_none());
        assert_eq!(set_step(stale, new), Err(stale));
        // Exhaustive over the low bits of `old`.
        for low in 0..=0xffffu64 {
            let old = Pte(low);
            let r = set_step(old, dirty_new);
            if !old.is_none() || old.has_hashpte() {
                assert_eq!(r, Err(old));
            } else if old.is_busy() {
                assert_eq!(r, Ok(None));
            } else {
                assert_eq!(r, Ok(Some(new)));
            }
        }
    }

    /// Walk the whole protocol for one page: load fault, store fault, unmap,
    /// remap.
    #[test]
    fn protocol_walkthrough() {
        let mapped = match set_step(Pte::NONE, Pte::new(0x42, PAGE_KERNEL)) {
            Ok(Some(p)) => p,
            r => panic!("{:?}", r),
        };
        // Load: insert HPTE into P5.
        let Step::Take { new } = decide(mapped, Access::from_data_fault(0x4000_0000, false)) else { panic!() };
        let after_load = publish(new, Some(HptSlot::new(false, 5)));
        assert!(after_load.flags().contains(PteFlags::ACCESSED));
        assert!(!after_load.flags().contains(PteFlags::DIRTY));
        // Store: update existing HPTE.
        let Step::Take { new } = decide(after_load, Access::from_data_fault(0x4200_0000, false)) else { panic!() };
        let after_store = publish(new, None);
        assert!(after_store.flags().contains(PteFlags::DIRTY));
        assert_eq!(after_store.slot(), Some(HptSlot::new(false, 5)));
        // User access is refused and changes nothing.
        assert_eq!(decide(after_store, Access::from_data_fault(0, true)), Step::Deny(Denied::UserToKernel));
        // Unmap: slot to flush comes from the old value.
        assert_eq!(after_store.slot(), Some(HptSlot::new(false, 5)));
        let cleared = clear_step(after_store).unwrap();
        assert!(cleared.is_none());
        assert_eq!(decide(cleared, Access::PRESENT), Step::Deny(Denied::NotPresent));
        // Remap.
        assert!(matches!(set_step(cleared, Pte::new(0x43, PAGE_KERNEL)), Ok(Some(_))));
    }

    #[test]
    fn exec_from_guarded_is_denied() {
        let p = Pte::new(PFN, PAGE_KERNEL_X.union(PteFlags::GUARDED));
        assert_eq!(check(Access::from_instruction_fault(false), p), Err(Denied::ExecGuarded));
        assert_eq!(decide(p, Access::from_instruction_fault(false)), Step::Deny(Denied::ExecGuarded));
        // Data accesses to the same page are fine (G only forbids fetches).
        assert!(matches!(decide(p, Access::from_data_fault(0x4200_0000, false)), Step::Take { .. }));
        assert!(matches!(
            decide(Pte::new(PFN, PAGE_KERNEL_X), Access::from_instruction_fault(false)),
            Step::Take { .. }
        ));
    }
}
