//! The hash_page designs of the 2003 review, as the few steps in which they differ. The
//! protocol (`protocol::hash_pte_at`: take, insert or update, record) is one generic function;
//! a design only says what it holds for the whole fault, how to take the PTE, what to check
//! after the take, how to record the HPTE's slot (and what a failed record means), and how to
//! hand the PTE back after a refusal.
//!
//! - [`Busy`] (the default, and what Linux settled on): one `ldarx`/`stdcx.` checks the access
//!   and sets BUSY|ACCESSED(|DIRTY); the slot is recorded by the BUSY holder's release store.
//!   Every other PTE writer waits while BUSY is set, so nothing can change the PTE between the
//!   take and the record.
//! - [`Patch2003`]: the first lock-free patch as Paul Mackerras reviewed it (linuxppc64-dev,
//!   25 Sep 2003). An atomic access check that sets ACCESSED/DIRTY but takes no PTE lock, the
//!   HPTE insert, then a *second, separate* atomic update that sets HASHPTE and the slot. Like
//!   2.4's `__hash_page` it serialises hash_page against itself per hash bucket
//!   (`hash_table_lock`, taken only there, with interrupts off), so two faults never insert two
//!   HPTEs for one page; nothing else takes that lock, vfree's clear included. A clear
//!   that lands between the two sees no HASHPTE, flushes nothing, and the HPTE inserted after
//!   it survives, translating a freed frame. It also checks no `_PAGE_USER` (a denied
//!   problem-state access has already set ACCESSED/DIRTY when it is refused), and in the
//!   shared-memory area ([`SHARED_AREA`]) it checks no `_PAGE_PRESENT`: a swap entry's bits
//!   become an HPTE. (2.4's `__hash_page` stored the slot with a plain `*ptep = new_pte`, which
//!   would even resurrect a cleared PTE; the atomic OR here is the charitable reading, and it
//!   is still wrong.)
//! - [`Cas2`]: the reviewer's proposal, CAS_PTE twice. Read the PTE, check it (all of it), set
//!   ACCESSED/DIRTY with a compare-and-swap; insert the HPTE; a second compare-and-swap
//!   against the value the first one stored sets HASHPTE and the slot. If that one finds the
//!   PTE changed, the HPTE just inserted is removed and the access re-executed.
//!
//! Nothing here is used by `Busy` that was not there before: its steps are the very calls the
//! protocol made, so the default fault path compiles to the same instructions.

use super::access::{check, publish, restore, Access, Denied};
use super::backend::HashBackend;
use super::cell::{PteCell, Take};
use super::protocol::{slot_changed, Finish, Outcome};
use super::stats::StatsRef;
use crate::mm::pte::{HptSlot, Pte, PteFlags};

/// The stand-in for 2.4's shared-memory area (`SMALLOC_START`..): the top 8 GiB of the vmalloc
/// region, which the vmalloc allocator never hands out. Under `Patch2003` a fault there skips
/// the access check when it fails, as 2.4 did for `PPC_FLAG_SHARED` tasks — and with it the
/// PRESENT check.
pub const SHARED_AREA: (u64, u64) = (0xd000_000e_0000_0000, 0xd000_0010_0000_0000);

pub const fn in_shared_area(ea: u64) -> bool {
    ea >= SHARED_AREA.0 && ea < SHARED_AREA.1
}

/// 2.4's `hash_table_lock[]`: per-bucket locks that only hash_page takes (interrupts off), for
/// `Patch2003`. The kernel uses spin locks in a static array; the model loom-visible ones.
pub trait HashTableLock {
    fn lock(&self, ea: u64);
    fn unlock(&self, ea: u64);
}

/// Holds a `HashTableLock` bucket until dropped.
pub struct BucketGuard<'a, L: HashTableLock> {
    locks: &'a L,
    ea: u64,
}

impl<L: HashTableLock> Drop for BucketGuard<'_, L> {
    fn drop(&mut self) {
        self.locks.unlock(self.ea);
    }
}

/// The steps in which the designs differ.
pub trait Steps: Copy {
    /// `hash_page=NAME`.
    const NAME: &'static str;
    /// What the cold paths must carry of the take's result: nothing for `Busy` (the PTE holds
    /// it while BUSY is ours), the value the take stored for the others (the PTE may change).
    type Held: Copy;
    /// Held for the whole fault (`Patch2003`'s bucket lock); `()` for the others.
    type Guard;

    /// Called first: whatever the design holds for the whole fault.
    fn serialise(self, ea: u64) -> Self::Guard;
    /// The first atomic step: check the access, set ACCESSED(|DIRTY) (and BUSY).
    fn take<C: PteCell>(self, cell: &C, ea: u64, access: Access) -> Take;
    /// A check made after the take (and its ACCESSED/DIRTY) already happened.
    #[inline(always)]
    fn recheck(self, access: Access, new: Pte) -> Result<(), Denied> {
        let _ = (access, new);
        Ok(())
    }
    fn hold(self, new: Pte) -> Self::Held;
    /// The PTE value the HPTE is made from.
    fn value<C: PteCell>(self, cell: &C, held: Self::Held) -> Pte;
    /// Records the slot of the HPTE just inserted for `value`. Err: the PTE changed since the
    /// take (`Cas2`): the protocol removes the HPTE again and re-executes the access.
    // Err(()): the PTE changed under the step; there is nothing more to say about it.
    #[allow(clippy::result_unit_err)]
    fn record<C: PteCell>(self, cell: &C, value: Pte, slot: HptSlot) -> Result<(), ()>;
    /// The outcome of an insert (HPTE `ptex`, already counted) whose `record` returned `r`:
    /// `ok`, or, if the record failed, the HPTE removed and the access re-executed
    /// (`protocol::slot_changed`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn recorded<B: HashBackend, S: StatsRef>(
        self,
        r: Result<(), ()>,
        ok: Outcome,
        be: &B,
        ptex: u64,
        ea: u64,
        vsid: u64,
        st: &S,
    ) -> Outcome {
        match r {
            Ok(()) => ok,
            Err(()) => slot_changed(ea, vsid, ptex, be, st),
        }
    }
    /// `recorded` for the fast path's primary insert, with its `Finish`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn finish_insert<K: Finish, B: HashBackend, S: StatsRef>(
        self,
        r: Result<(), ()>,
        k: K,
        be: &B,
        ptex: u64,
        ea: u64,
        vsid: u64,
        st: &S,
    ) -> K::Out {
        match r {
            Ok(()) => k.inserted(),
            Err(()) => k.finish(slot_changed(ea, vsid, ptex, be, st)),
        }
    }
    /// The HPTE was updated in place (H_PROTECT): the PTE's slot stays.
    fn updated<C: PteCell>(self, cell: &C, value: Pte);
    /// The HPTE could not be made (refusal, all bolted, lost evictions): hand the PTE back.
    fn give_back<C: PteCell>(self, cell: &C, old: Pte, held: Self::Held);
}

/// The default: the BUSY bit-lock.
#[derive(Clone, Copy, Debug, Default)]
pub struct Busy;

impl Steps for Busy {
    const NAME: &'static str = "lockfree";
    type Held = ();
    type Guard = ();

    #[inline(always)]
    fn serialise(self, _ea: u64) {}
    #[inline(always)]
    fn take<C: PteCell>(self, cell: &C, _ea: u64, access: Access) -> Take {
        cell.take(access)
    }
    #[inline(always)]
    fn hold(self, _new: Pte) {}
    /// Read back: nobody else writes the PTE while BUSY is ours, and the fast path need not
    /// keep the value alive across its hypervisor call.
    #[inline(always)]
    fn value<C: PteCell>(self, cell: &C, _held: ()) -> Pte {
        cell.load()
    }
    #[inline(always)]
    fn record<C: PteCell>(self, cell: &C, value: Pte, slot: HptSlot) -> Result<(), ()> {
        cell.publish(publish(value, Some(slot)));
        Ok(())
    }
    /// The record never fails: the outcome is `ok`, with no test (the default's code is what
    /// it was before the designs shared it).
    #[inline(always)]
    fn recorded<B: HashBackend, S: StatsRef>(
        self,
        _r: Result<(), ()>,
        ok: Outcome,
        _be: &B,
        _ptex: u64,
        _ea: u64,
        _vsid: u64,
        _st: &S,
    ) -> Outcome {
        ok
    }
    #[inline(always)]
    fn finish_insert<K: Finish, B: HashBackend, S: StatsRef>(
        self,
        _r: Result<(), ()>,
        k: K,
        _be: &B,
        _ptex: u64,
        _ea: u64,
        _vsid: u64,
        _st: &S,
    ) -> K::Out {
        k.inserted()
    }
    #[inline(always)]
    fn updated<C: PteCell>(self, cell: &C, value: Pte) {
        cell.publish(publish(value, None));
    }
    #[inline(always)]
    fn give_back<C: PteCell>(self, cell: &C, old: Pte, _held: ()) {
        cell.publish(restore(old));
    }
}

/// The ACCESSED(|DIRTY) the designs without BUSY set.
#[inline(always)]
fn with_ad(old: Pte, access: Access) -> Pte {
    let d = if access.contains(Access::RW) { PteFlags::DIRTY } else { PteFlags::empty() };
    old.with(PteFlags::ACCESSED | d)
}

/// Read, check with `ok`, compare-and-swap ACCESSED(|DIRTY) in: the take without a lock.
#[inline(always)]
fn cas_take<C: PteCell>(cell: &C, access: Access, ok: impl FnOnce(Pte) -> bool) -> Take {
    let old = cell.load();
    if !ok(old) {
        return Take::Denied(old);
    }
    let new = with_ad(old, access);
    match cell.cas(old, new) {
        Ok(()) => Take::Taken { old, new },
        Err(_) => Take::Lost,
    }
}

/// The first lock-free patch, as reviewed (see the module documentation), with its
/// `hash_table_lock`.
pub struct Patch2003<'a, L: HashTableLock>(pub &'a L);

impl<L: HashTableLock> Clone for Patch2003<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<L: HashTableLock> Copy for Patch2003<'_, L> {}

impl<'a, L: HashTableLock> Steps for Patch2003<'a, L> {
    const NAME: &'static str = "patch2003";
    type Held = Pte;
    type Guard = BucketGuard<'a, L>;

    fn serialise(self, ea: u64) -> BucketGuard<'a, L> {
        self.0.lock(ea);
        BucketGuard { locks: self.0, ea }
    }

    fn take<C: PteCell>(self, cell: &C, ea: u64, access: Access) -> Take {
        // No USER in the atomic check; PRESENT, RW and EXEC are checked — except in the
        // shared-memory area, where a failed check went ahead anyway.
        let need = access.bits() & !Access::USER.bits();
        let shared = in_shared_area(ea);
        cas_take(cell, access, |old| shared || need & !old.raw() == 0)
    }
    /// The USER check comes only now, after ACCESSED/DIRTY were set (in 2003 the HPTE's PP
    /// bits refused the access on re-execution): the access is refused, the bits stay.
    fn recheck(self, access: Access, new: Pte) -> Result<(), Denied> {
        if access.contains(Access::USER) && !new.flags().contains(PteFlags::USER) {
            return Err(Denied::UserToKernel);
        }
        Ok(())
    }
    fn hold(self, new: Pte) -> Pte {
        new
    }
    fn value<C: PteCell>(self, _cell: &C, held: Pte) -> Pte {
        held
    }
    /// The second, separate update: whatever the PTE holds now gets HASHPTE and the slot —
    /// a PTE cleared since the take included.
    fn record<C: PteCell>(self, cell: &C, _value: Pte, slot: HptSlot) -> Result<(), ()> {
        let mut spins = 0;
        let slot_bits = PteFlags::GROUP_IX.bits() | PteFlags::SECONDARY.bits();
        cell.update(slot_bits, PteFlags::HASHPTE.bits() | slot.bits(), &mut spins);
        Ok(())
    }
    /// ACCESSED/DIRTY were set by the take; nothing else to write.
    fn updated<C: PteCell>(self, _cell: &C, _value: Pte) {}
    /// No lock to drop and nothing restored (the take's ACCESSED/DIRTY stay).
    fn give_back<C: PteCell>(self, _cell: &C, _old: Pte, _held: Pte) {}
}

/// The reviewer's CAS_PTE proposal (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cas2;

impl Steps for Cas2 {
    const NAME: &'static str = "cas2";
    type Held = Pte;
    type Guard = ();

    fn serialise(self, _ea: u64) {}
    fn take<C: PteCell>(self, cell: &C, _ea: u64, access: Access) -> Take {
        cas_take(cell, access, |old| check(access, old).is_ok())
    }
    fn hold(self, new: Pte) -> Pte {
        new
    }
    fn value<C: PteCell>(self, _cell: &C, held: Pte) -> Pte {
        held
    }
    /// The second CAS_PTE: only if the PTE still is what the first one stored.
    fn record<C: PteCell>(self, cell: &C, value: Pte, slot: HptSlot) -> Result<(), ()> {
        cell.cas(value, publish(value, Some(slot))).map(|_| ()).map_err(|_| ())
    }
    fn updated<C: PteCell>(self, _cell: &C, _value: Pte) {}
    /// Takes back ACCESSED/DIRTY if the PTE is still as the take left it.
    fn give_back<C: PteCell>(self, cell: &C, old: Pte, held: Pte) {
        let _ = cell.cas(held, old);
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use crate::hash::cell::CasCell;
    use crate::mm::pte::{PAGE_KERNEL, PAGE_KERNEL_RO};
    use std::sync::atomic::AtomicU64;

    const EA: u64 = 0xd000_0000_0001_2000;
    struct NoLock;
    impl HashTableLock for NoLock {
        fn lock(&self, _: u64) {}
        fn unlock(&self, _: u64) {}
    }
    #[allow(non_upper_case_globals)]
    const Patch2003: super::Patch2003<'static, NoLock> = super::Patch2003(&NoLock);
    fn cell(p: Pte) -> CasCell<AtomicU64> {
        CasCell(AtomicU64::new(p.0))
    }
    fn ustore() -> Access {
        Access::from_data_fault(0x4200_0000, true)
    }

    #[test]
    fn shared_area_is_the_top_of_vmalloc() {
        assert!(in_shared_area(SHARED_AREA.0) && !in_shared_area(SHARED_AREA.0 - 1) && !in_shared_area(SHARED_AREA.1));
        assert_eq!(SHARED_AREA.1, 0xd000_0000_0000_0000 + (64 << 30));
    }

    #[test]
    fn patch2003_takes_without_user_check_and_without_busy() {
        let p = Pte::new(7, PAGE_KERNEL);
        let c = cell(p);
        let t = Patch2003.take(&c, EA, ustore());
        let want = p.with(PteFlags::ACCESSED | PteFlags::DIRTY);
        assert_eq!(t, Take::Taken { old: p, new: want });
        assert_eq!(c.load(), want, "no BUSY: nothing makes other writers wait");
        assert_eq!(Patch2003.recheck(ustore(), want), Err(Denied::UserToKernel));
        // The default refuses before touching anything.
        let c = cell(p);
        assert_eq!(Busy.take(&c, EA, ustore()), Take::Denied(p));
        assert_eq!(c.load(), p);
    }

    #[test]
    fn patch2003_checks_present_except_in_the_shared_area() {
        let swap = Pte((0x1234 << 16) | PteFlags::COHERENT.bits() | PteFlags::RW.bits());
        let load = Access::from_data_fault(0x4000_0000, false);
        assert_eq!(Patch2003.take(&cell(swap), EA, load), Take::Denied(swap));
        assert!(matches!(Patch2003.take(&cell(swap), SHARED_AREA.0 + 0x5000, load), Take::Taken { .. }));
        assert_eq!(Cas2.take(&cell(swap), SHARED_AREA.0 + 0x5000, load), Take::Denied(swap));
        assert!(matches!(Busy.take(&cell(swap), SHARED_AREA.0 + 0x5000, load), Take::Denied(_)));
        // RW is checked outside it.
        let ro = Pte::new(1, PAGE_KERNEL_RO);
        assert!(matches!(Patch2003.take(&cell(ro), EA, Access::from_data_fault(0x4200_0000, false)), Take::Denied(_)));
    }

    #[test]
    fn patch2003_records_into_whatever_is_there() {
        let c = cell(Pte::NONE);
        Patch2003.record(&c, Pte::new(7, PAGE_KERNEL), HptSlot::new(true, 5)).unwrap();
        assert_eq!(c.load().slot(), Some(HptSlot::new(true, 5)));
        assert!(!c.load().is_present(), "a cleared PTE is not resurrected, only marked HASHPTE");
    }

    #[test]
    fn cas2_record_fails_when_the_pte_changed() {
        let p = Pte::new(7, PAGE_KERNEL);
        let c = cell(p);
        let Take::Taken { new, .. } = Cas2.take(&c, EA, Access::from_data_fault(0x4000_0000, false)) else { panic!() };
        assert_eq!(Cas2.record(&c, new, HptSlot::new(false, 2)), Ok(()));
        assert_eq!(c.load(), new.with_slot(HptSlot::new(false, 2)));
        let c = cell(new);
        c.publish(Pte::NONE);
        assert_eq!(Cas2.record(&c, new, HptSlot::new(false, 2)), Err(()));
        assert_eq!(c.load(), Pte::NONE);
        // USER is checked by the first CAS.
        assert_eq!(Cas2.take(&cell(p), EA, ustore()), Take::Denied(p));
    }
}
