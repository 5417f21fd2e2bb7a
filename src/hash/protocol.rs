//! hash_page's protocol, generic over the PTE cell and the HPT backend so the very same code
//! runs in the kernel (asm cell, hypercalls) and on the host (CAS cell, fake HPT, loom) — and
//! over the design (`design::Steps`): the default BUSY protocol described here, and the 2003
//! designs that differ from it only in how they take the PTE, check it and record the slot.
//!
//! 1. take: one atomic step checks BUSY and the access and sets BUSY|ACCESSED(|DIRTY);
//! 2. if the PTE says an HPTE exists, update its protection through the slot bits; if it is
//!    gone (evicted), fall through;
//! 3. insert: primary group, then secondary; both full → evict a non-bolted entry from one of
//!    them (chosen by a random bit, starting at a random slot) and try again;
//! 4. publish the PTE with HASHPTE and the slot, BUSY cleared, with release ordering.
//!
//! Every way out that does not install an entry restores the old PTE (BUSY cleared, no
//! ACCESSED/DIRTY claimed), so the access can simply be re-executed: a transient hypervisor
//! refusal (H_BUSY) and an eviction race lost [`MAX_EVICT_ROUNDS`] times in a row both end in
//! [`Outcome::Retry`], like Linux, which re-executes until it wins. Only a permanent refusal and
//! a pair of groups with nothing but bolted entries end the access. Nothing here takes a lock:
//! the only exclusion is the PTE's own BUSY bit, held by code that runs with interrupts off and
//! never waits.

use super::access::{check, Access, Denied};
use super::backend::{HashBackend, HcallError, InsertError, ProtectError, RemoveError};
use super::cell::{PteCell, Take};
use super::design::{Busy, Steps};
use super::stats::{Counter, StatsRef};
use crate::mm::hpte::{avpn_for, h_protect_flags, hash_4k, hpte_for, Hpte, HpteV, RPN_MASK};
use crate::mm::pte::{HptSlot, Pte, PteFlags, PFN_SHIFT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Inserted {
        secondary: bool,
        evicted: u8,
    },
    Updated,
    /// Nothing changed: re-execute the access.
    Retry(Retry),
    Denied(Denied),
    /// Every slot of both groups holds a bolted entry: no entry can be made for this page.
    AllBolted,
    /// The hypervisor refused with a permanent error.
    Refused(Hcall, HcallError),
}

// Small enough to come back in a register: the fault path then branches on it without
// storing it first.
const _: () = assert!(core::mem::size_of::<Outcome>() <= 8);

/// Why an access is re-executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Another CPU holds BUSY.
    Busy,
    /// The PTE changed between ldarx and stdcx.: look again.
    LostReservation,
    /// The hypervisor said H_BUSY / long busy.
    HypervisorBusy,
    /// Other CPUs kept refilling both groups while this one evicted.
    Evictions,
    /// `hash_page=cas2`: the second CAS_PTE found the PTE changed; the HPTE just inserted was
    /// removed.
    SlotChanged,
}

pub use super::reason::Hcall;

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

/// The HPTE's second doubleword, less the real page number, for every combination of the PTE
/// bits it depends on (USER, EXEC, WIMG, DIRTY, RW: PTE bits 1..9, so 512 entries), computed
/// at compile time from `hpte_for(.., hpte_flags(pte), ..)`. The hot path looks its flags up
/// instead of deciding PP, N and WIMG branch by branch (a test checks every entry).
pub struct HpteRTable([u64; 512]);

impl HpteRTable {
    const fn build() -> HpteRTable {
        let mut t = [0u64; 512];
        let mut i = 0;
        while i < 512 {
            let pte = Pte(((i as u64) << 1) | PteFlags::PRESENT.bits());
            t[i] = hpte_for(0, 0, 0, hpte_flags(pte), false, false).r;
            i += 1;
        }
        HpteRTable(t)
    }

    /// The second doubleword of the HPTE for present PTE `pte`.
    #[inline(always)]
    pub fn r(&self, pte: Pte) -> u64 {
        ((pte.raw() >> PFN_SHIFT) << 12 & RPN_MASK) | self.0[((pte.raw() >> 1) & 511) as usize]
    }
}

pub static HPTE_R: HpteRTable = HpteRTable::build();

/// Evict-and-insert rounds before giving the access back to be re-executed. Each round frees
/// a slot; losing it 8 times in a row means other CPUs refill these groups as fast as this one
/// evicts, and re-executing (with the PTE restored) lets them finish.
pub const MAX_EVICT_ROUNDS: u8 = 8;

/// Where a fault's address and VSID come from when a slow path needs them again. Host tests
/// and the 0x400 path hold them (`Va`); the 0x300 fast path reads them back from the hash
/// frame and the SLB, so they need not stay in registers across its hypervisor call.
pub trait FaultAddr {
    fn ea(&self) -> u64;
    fn vsid(&self) -> u64;
    /// The VSID for `ea` (which is `self.ea()`, already at hand): the fast path asks only
    /// once the take has succeeded, so a BUSY or denied fault never pays for it.
    #[inline(always)]
    fn vsid_of(&self, ea: u64) -> u64 {
        let _ = ea;
        self.vsid()
    }
}

/// An address and its VSID, held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Va {
    pub ea: u64,
    pub vsid: u64,
}

impl FaultAddr for Va {
    #[inline(always)]
    fn ea(&self) -> u64 {
        self.ea
    }
    #[inline(always)]
    fn vsid(&self) -> u64 {
        self.vsid
    }
}

/// What becomes of a fault's outcome. Host tests, the model and the 0x400 path get it back
/// (`ReturnOutcome`); the 0x300 fast path turns it into its verdict inside the cold function
/// that produced it, so that every cold path is the fast function's last call — a tail call
/// — and the common case needs neither a stack frame nor a saved link register.
pub trait Finish: Copy {
    type Out;
    /// The common case: an HPTE inserted into the primary group.
    fn inserted(self) -> Self::Out;
    /// Another CPU holds BUSY; `busy_retries` (already counted) is now `count`.
    #[inline(always)]
    fn busy(self, count: u64) -> Self::Out {
        let _ = count;
        self.finish(Outcome::Retry(Retry::Busy))
    }
    fn finish(self, o: Outcome) -> Self::Out;
}

#[derive(Clone, Copy, Debug)]
pub struct ReturnOutcome;

impl Finish for ReturnOutcome {
    type Out = Outcome;
    #[inline(always)]
    fn inserted(self) -> Outcome {
        Outcome::Inserted { secondary: false, evicted: 0 }
    }
    #[inline(always)]
    fn finish(self, o: Outcome) -> Outcome {
        o
    }
}

/// One hash fault for the page at `ea` in segment `vsid`, default design: see `hash_pte_at`.
#[inline(always)]
pub fn hash_pte<C: PteCell, B: HashBackend, S: StatsRef>(
    cell: &C,
    ea: u64,
    vsid: u64,
    access: Access,
    be: &B,
    st: &S,
) -> Outcome {
    hash_pte_at(Busy, cell, ea, &Va { ea, vsid }, access, be, st, ReturnOutcome)
}

/// One hash fault under design `d` (`hash::design`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn hash_pte_design<D: Steps, C: PteCell, B: HashBackend, S: StatsRef>(
    d: D,
    cell: &C,
    ea: u64,
    vsid: u64,
    access: Access,
    be: &B,
    st: &S,
) -> Outcome {
    hash_pte_at(d, cell, ea, &Va { ea, vsid }, access, be, st, ReturnOutcome)
}

/// One hash fault: take the PTE, install or update its HPTE, publish.
///
/// Written for the fault path's length: the common case (a first touch with room in the
/// primary group) computes only what it needs, and while the hypervisor call runs it keeps
/// only the PTE's address, the address, the VSID and the old PTE alive — the value to publish
/// is read back from the PTE (nobody else writes it while BUSY is ours), the counters and the
/// geometry are found again, and every other case starts over in a cold function.
/// `ea` serves the common case; every other case asks `addr` again (the same address).
/// `d` is the design: its steps are the only thing the designs do differently.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn hash_pte_at<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef, K: Finish>(
    d: D,
    cell: &C,
    ea: u64,
    addr: &A,
    access: Access,
    be: &B,
    st: &S,
    k: K,
) -> K::Out {
    let _serialised = d.serialise(ea);
    let (old, new) = match d.take(cell, ea, access) {
        Take::Taken { old, new } => (old, new),
        Take::Busy => return busy(st, k),
        Take::Denied(old) => return denied(access, old, st, k),
        Take::Lost => return lost(st, k),
    };
    if let Err(why) = d.recheck(access, new) {
        return denied_after_take(why, st, k);
    }
    taken(d, ea, cell, addr, old, new, be, st, k)
}

/// The PTE is ours (BUSY): everything that keeps values alive across a hypervisor call, in a
/// function of its own so that the caller (the take, and its BUSY/denied exits) saves no
/// registers: a BUSY re-execution pays for none of this function's stack traffic.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn taken<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef, K: Finish>(
    d: D,
    ea: u64,
    cell: &C,
    addr: &A,
    old: Pte,
    new: Pte,
    be: &B,
    st: &S,
    k: K,
) -> K::Out {
    let held = d.hold(new);
    if old.has_hashpte() {
        return update_or_insert(d, cell, addr, old, held, be, st, k);
    }
    let vsid = addr.vsid_of(ea);
    let v = avpn_for(vsid, ea) | HpteV::VALID.bits();
    match be.insert(be.geometry().group_base(hash_4k(vsid, ea), false), v, be.hpte_r(new)) {
        Ok(ptex) => {
            st.count(Counter::InsertPrimary);
            let r = d.record(cell, d.value(cell, held), HptSlot::of_ptex(ptex, false));
            d.finish_insert(r, k, be, ptex, ea, vsid, st)
        }
        Err(InsertError::Full) => insert_then(d, cell, addr, old, held, be, st, k),
        Err(InsertError::Refused(e)) => refused_then(d, cell, old, held, st, e, k),
    }
}

/// The primary group is full: everything else, in one cold function (a tail call from the
/// fast path, so that path keeps no frame).
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn insert_then<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef, K: Finish>(
    d: D,
    cell: &C,
    addr: &A,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
    k: K,
) -> K::Out {
    k.finish(insert(d, cell, addr, old, held, be, st, true))
}

#[cold]
#[inline(never)]
fn refused_then<D: Steps, C: PteCell, S: StatsRef, K: Finish>(
    d: D,
    cell: &C,
    old: Pte,
    held: D::Held,
    st: &S,
    e: HcallError,
    k: K,
) -> K::Out {
    k.finish(give_back(d, cell, old, held, st, Hcall::Enter, e))
}

/// `hash_page=cas2`: the second CAS found the PTE changed after the HPTE at `ptex` was
/// inserted (and counted) for the value the first one stored. Whoever changed it flushed by
/// the PTE it saw, which did not name this HPTE: remove it (AVPN-checked: "not found" means
/// someone else did) and re-execute the access.
#[cold]
#[inline(never)]
pub fn slot_changed<B: HashBackend, S: StatsRef>(ea: u64, vsid: u64, ptex: u64, be: &B, st: &S) -> Outcome {
    st.count(Counter::SlotCasLost);
    match be.remove(ptex, avpn_for(vsid, ea)) {
        Ok(_) | Err(RemoveError::NotFound) => Outcome::Retry(Retry::SlotChanged),
        Err(RemoveError::Refused(e)) => Outcome::Refused(Hcall::Remove, e),
    }
}

/// A design that checks after its take (`hash_page=patch2003`'s USER check): the access is
/// refused, and what the take set stays set.
#[cold]
#[inline(never)]
fn denied_after_take<S: StatsRef, K: Finish>(why: Denied, st: &S, k: K) -> K::Out {
    st.count(Counter::BadAccess);
    k.finish(Outcome::Denied(why))
}

#[cold]
#[inline(never)]
fn busy<S: StatsRef, K: Finish>(st: &S, k: K) -> K::Out {
    let n = st.count(Counter::BusyRetries);
    k.busy(n)
}

#[cold]
#[inline(never)]
fn lost<S: StatsRef, K: Finish>(st: &S, k: K) -> K::Out {
    st.count(Counter::StcxFails);
    k.finish(Outcome::Retry(Retry::LostReservation))
}

#[cold]
#[inline(never)]
fn denied<S: StatsRef, K: Finish>(access: Access, old: Pte, st: &S, k: K) -> K::Out {
    st.count(Counter::BadAccess);
    k.finish(Outcome::Denied(match check(access, old) {
        Err(d) => d,
        Ok(()) => Denied::NotPresent,
    }))
}

/// The PTE names an HPTE: change its protection in place; if it was evicted meanwhile (the
/// slot bits are stale), insert afresh.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn update_or_insert<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef, K: Finish>(
    d: D,
    cell: &C,
    addr: &A,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
    k: K,
) -> K::Out {
    k.finish(update_or_insert_outcome(d, cell, addr, old, held, be, st))
}

fn update_or_insert_outcome<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef>(
    d: D,
    cell: &C,
    addr: &A,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
) -> Outcome {
    let (ea, vsid) = (addr.ea(), addr.vsid());
    let new = d.value(cell, held);
    if let Some(slot) = old.slot() {
        let ptex = be.geometry().ptex(hash_4k(vsid, ea), slot);
        match be.protect(ptex, avpn_for(vsid, ea), h_protect_flags(hpte_flags(new))) {
            Ok(()) => {
                st.count(Counter::Updates);
                d.updated(cell, new);
                return Outcome::Updated;
            }
            Err(ProtectError::NotFound) => {}
            Err(ProtectError::Refused(e)) => return give_back(d, cell, old, held, st, Hcall::Protect, e),
        }
    }
    insert(d, cell, addr, old, held, be, st, false)
}

/// Restores the PTE after a refusal: transient ones re-execute the access, permanent ones
/// end it.
#[cold]
#[allow(clippy::too_many_arguments)]
fn give_back<D: Steps, C: PteCell, S: StatsRef>(
    d: D,
    cell: &C,
    old: Pte,
    held: D::Held,
    st: &S,
    call: Hcall,
    e: HcallError,
) -> Outcome {
    d.give_back(cell, old, held);
    if e.is_transient() {
        st.count(Counter::RetryHvBusy);
        Outcome::Retry(Retry::HypervisorBusy)
    } else {
        st.count(Counter::HvRefusals);
        Outcome::Refused(call, e)
    }
}

/// One H_ENTER into the primary or secondary group, the entry worked out again from the
/// BUSY-held PTE and the backend. None: the group is full.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn try_group<D: Steps, C: PteCell, B: HashBackend, S: StatsRef>(
    d: D,
    cell: &C,
    ea: u64,
    vsid: u64,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
    secondary: bool,
    evicted: u8,
) -> Option<Outcome> {
    let new = d.value(cell, held);
    let v = avpn_for(vsid, ea) | HpteV::VALID.bits() | if secondary { HpteV::SECONDARY.bits() } else { 0 };
    match be.insert(be.geometry().group_base(hash_4k(vsid, ea), secondary), v, be.hpte_r(new)) {
        Ok(ptex) => {
            st.count(if secondary { Counter::InsertSecondary } else { Counter::InsertPrimary });
            let r = d.record(cell, new, HptSlot::of_ptex(ptex, secondary));
            Some(d.recorded(r, Outcome::Inserted { secondary, evicted }, be, ptex, ea, vsid, st))
        }
        Err(InsertError::Full) => None,
        Err(InsertError::Refused(e)) => Some(give_back(d, cell, old, held, st, Hcall::Enter, e)),
    }
}

/// Insert after the primary group was found full (or, from the update path, anywhere): the
/// secondary group, then the usual eviction — one unbolted entry removed from a random slot of
/// a random group, and the entry inserted there — in straight-line code; anything unusual
/// (a bolted or empty victim slot, another CPU refilling the group) goes to the general loop.
/// BUSY is held: the PTE holds the value to publish.
#[allow(clippy::too_many_arguments)]
fn insert<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef>(
    d: D,
    cell: &C,
    addr: &A,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
    primary_full: bool,
) -> Outcome {
    let (ea, vsid) = (addr.ea(), addr.vsid());
    if !primary_full {
        if let Some(o) = try_group(d, cell, ea, vsid, old, held, be, st, false, 0) {
            return o;
        }
    }
    if let Some(o) = try_group(d, cell, ea, vsid, old, held, be, st, true, 0) {
        return o;
    }
    // Victim group by a random bit, starting at a random slot (Linux uses the time base the
    // same way).
    let rnd = be.random();
    let g = rnd & 1 != 0;
    let victim = be.geometry().group_base(hash_4k(vsid, ea), g) + ((rnd >> 1) & 7);
    match be.remove_unbolted(victim) {
        Ok(_) => {
            st.count(Counter::Evictions);
            if let Some(o) = try_group(d, cell, ea, vsid, old, held, be, st, g, 1) {
                return o;
            }
        }
        Err(RemoveError::NotFound) => {}
        Err(RemoveError::Refused(e)) => return give_back(d, cell, old, held, st, Hcall::Remove, e),
    }
    evict_and_insert(d, cell, addr, old, held, be, st, rnd)
}

/// The general eviction loop: look at a group for a victim when the blind choice was bolted
/// or empty, try the other group when one is all bolted, and give the access back after
/// `MAX_EVICT_ROUNDS` lost races.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn evict_and_insert<D: Steps, C: PteCell, A: FaultAddr, B: HashBackend, S: StatsRef>(
    d: D,
    cell: &C,
    addr: &A,
    old: Pte,
    held: D::Held,
    be: &B,
    st: &S,
    mut rnd: u64,
) -> Outcome {
    for round in 1..=MAX_EVICT_ROUNDS {
        let first = rnd & 1 != 0;
        let start = (rnd >> 1) & 7;
        let hash = hash_4k(addr.vsid(), addr.ea());
        let mut room = None;
        for secondary in [first, !first] {
            match evict_from(be.geometry().group_base(hash, secondary), start, be) {
                Ok(Evicted::AllBolted) => {}
                Ok(found) => {
                    if found == Evicted::One {
                        st.count(Counter::Evictions);
                    }
                    room = Some(secondary);
                    break;
                }
                Err((call, e)) => return give_back(d, cell, old, held, st, call, e),
            }
        }
        let Some(g) = room else {
            d.give_back(cell, old, held);
            st.count(Counter::AllBolted);
            return Outcome::AllBolted;
        };
        if let Some(o) = try_group(d, cell, addr.ea(), addr.vsid(), old, held, be, st, g, round) {
            return o;
        }
        if let Some(o) = try_group(d, cell, addr.ea(), addr.vsid(), old, held, be, st, !g, round) {
            return o;
        }
        rnd = be.random();
    }
    d.give_back(cell, old, held);
    st.count(Counter::RetryEvictions);
    Outcome::Retry(Retry::Evictions)
}

/// What an eviction attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    /// Removed one entry (or lost the race for it to another CPU: either way a slot may be
    /// free now).
    One,
    /// The group has a free slot already.
    FreeSlot,
    /// Every slot holds a bolted entry.
    AllBolted,
}

/// The victim in a group read with `read_group`: the first valid, non-bolted entry from
/// `start` round the group.
pub fn pick_victim(g: &[Hpte; 8], start: u64) -> Result<usize, Evicted> {
    if g.iter().any(|h| !h.is_valid()) {
        return Err(Evicted::FreeSlot);
    }
    (0..8).map(|i| ((start + i) & 7) as usize).find(|&i| !g[i].is_bolted()).ok_or(Evicted::AllBolted)
}

/// Frees a slot in the (full) group: first a blind removal of the entry at `start` unless it
/// is bolted — one hypervisor call, which is all it takes unless that slot holds a bolted
/// entry; then a look at the whole group for a victim.
fn evict_from<B: HashBackend>(group: u64, start: u64, be: &B) -> Result<Evicted, (Hcall, HcallError)> {
    match be.remove_unbolted(group + start) {
        Ok(_) => return Ok(Evicted::One),
        Err(RemoveError::NotFound) => {}
        Err(RemoveError::Refused(e)) => return Err((Hcall::Remove, e)),
    }
    let g = be.read_group(group).map_err(|e| (Hcall::Read, e))?;
    let i = match pick_victim(&g, start) {
        Ok(i) => i,
        Err(why) => return Ok(why),
    };
    // AVPN-checked: if the entry changed since the read, nothing is removed (NotFound).
    match be.remove(group + i as u64, g[i].avpn()) {
        Ok(_) | Err(RemoveError::NotFound) => Ok(Evicted::One),
        Err(RemoveError::Refused(e)) => Err((Hcall::Remove, e)),
    }
}

/// Clear-and-flush for unmapping (vfree, iounmap): clears the PTE with the BUSY-waiting update
/// and removes the HPTE its slot bits name. Returns the old PTE, or the hypervisor's refusal
/// to remove the entry (the PTE is clear either way).
pub fn clear_and_flush<C: PteCell, B: HashBackend>(
    cell: &C,
    ea: u64,
    vsid: u64,
    be: &B,
    spins: &mut u64,
) -> Result<Pte, HcallError> {
    let old = cell.update(u64::MAX, 0, spins);
    flush_hpte(old, ea, vsid, be)?;
    Ok(old)
}

/// How often a flush repeats an H_REMOVE the hypervisor calls busy before giving up.
pub const FLUSH_BUSY_TRIES: u32 = 1000;

/// Removes the HPTE that `pte`'s slot bits name, if it still translates `ea` (AVPN-checked).
/// Returns whether one was removed; "not found" is fine: it was evicted meanwhile. A busy
/// hypervisor is asked again; any other refusal is returned (the entry may still be there).
pub fn flush_hpte<B: HashBackend>(pte: Pte, ea: u64, vsid: u64, be: &B) -> Result<bool, HcallError> {
    let Some(slot) = pte.slot() else { return Ok(false) };
    let (ptex, avpn) = (be.geometry().ptex(hash_4k(vsid, ea), slot), avpn_for(vsid, ea));
    let mut tries = 0;
    loop {
        match be.remove(ptex, avpn) {
            Ok(_) => return Ok(true),
            Err(RemoveError::NotFound) => return Ok(false),
            Err(RemoveError::Refused(e)) if e.is_transient() && tries < FLUSH_BUSY_TRIES => tries += 1,
            Err(RemoveError::Refused(e)) => return Err(e),
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use crate::hash::backend::fake::FakeHpt;
    use crate::hash::cell::CasCell;
    use crate::hash::stats::Stats;
    use crate::mm::hpte::{HptGeometry, Hpte, HpteV};
    use crate::mm::pte::{HptSlot, PAGE_KERNEL, PAGE_KERNEL_RO};
    use crate::mm::slbe::kernel_vsid;
    use std::sync::atomic::AtomicU64;

    const EA: u64 = 0xd000_0000_0001_2000;

    fn setup(pte: Pte) -> (CasCell<AtomicU64>, FakeHpt, HptGeometry, Stats) {
        {
            let hpt = FakeHpt::new(19);
            let geo = hpt.geo;
            (CasCell(AtomicU64::new(pte.0)), hpt, geo, Stats::new())
        }
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
        assert_eq!(hash_pte(&c, EA, vsid, load(), &hpt, &st), Outcome::Inserted { secondary: false, evicted: 0 });
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
        hash_pte(&c, EA, vsid, load(), &hpt, &st);
        assert_eq!(hash_pte(&c, EA, vsid, store(), &hpt, &st), Outcome::Updated);
        let p = c.load();
        assert!(p.flags().contains(PteFlags::DIRTY));
        let h = hpt.read(geo.ptex(hash_4k(vsid, EA), p.slot().unwrap()));
        assert_eq!(h.pp(), 0, "dirty kernel RW page is writable in the HPTE");
        assert_eq!(hpt.valid_entries().len(), 1);
    }

    #[test]
    fn store_to_readonly_denied_and_unchanged() {
        let before = Pte::new(0x1234, PAGE_KERNEL_RO);
        let (c, hpt, _, st) = setup(before);
        let r = hash_pte(&c, EA, kernel_vsid(EA), store(), &hpt, &st);
        assert_eq!(r, Outcome::Denied(Denied::WriteToReadOnly));
        assert_eq!(c.load(), before);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn user_access_denied_without_touching_a_or_d() {
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, hpt, _, st) = setup(before);
        let r = hash_pte(&c, EA, kernel_vsid(EA), Access::from_data_fault(0x4200_0000, true), &hpt, &st);
        assert_eq!(r, Outcome::Denied(Denied::UserToKernel));
        assert_eq!(c.load(), before);
    }

    #[test]
    fn not_present_swap_pattern_never_hashed() {
        let swap = Pte(0xdead_beef_0000_0000 | 0x0300); // RW|ACCESSED-looking bits, no PRESENT
        let (c, hpt, _, st) = setup(swap);
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), load(), &hpt, &st), Outcome::Denied(Denied::NotPresent));
        assert_eq!(c.load(), swap);
        assert!(hpt.valid_entries().is_empty());
    }

    #[test]
    fn busy_means_retry_and_no_change() {
        let busy = Pte::new(0x1234, PAGE_KERNEL).with(PteFlags::BUSY);
        let (c, hpt, _, st) = setup(busy);
        assert_eq!(hash_pte(&c, EA, kernel_vsid(EA), load(), &hpt, &st), Outcome::Retry(Retry::Busy));
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
        assert_eq!(hash_pte(&c, EA, vsid, load(), &hpt, &st), Outcome::Inserted { secondary: true, evicted: 0 });
        assert!(c.load().slot().unwrap().secondary);
        // Fill the secondary group with unbolted foreign entries; a second page must evict.
        let ea2 = EA; // same hash: reuse the cell after clearing it
        let mut spins = 0;
        clear_and_flush(&c, ea2, vsid, &hpt, &mut spins).unwrap();
        let sg = geo.group_base(hash, true);
        for i in 0..8 {
            hpt.set(sg + i, Hpte { v: (0x99 << 12) | HpteV::VALID.bits(), r: 0 });
        }
        c.publish(Pte::new(0x4321, PAGE_KERNEL));
        let r = hash_pte(&c, ea2, vsid, load(), &hpt, &st);
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
        assert_eq!(hash_pte(&c, EA, vsid, load(), &hpt, &st), Outcome::AllBolted);
        assert_eq!(st.get(Counter::AllBolted), 1);
        assert_eq!(c.load(), before, "BUSY dropped, nothing else changed");
    }

    #[test]
    fn hypervisor_refusal_restores_old() {
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, hpt, _, st) = setup(before);
        hpt.refuse.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            hash_pte(&c, EA, kernel_vsid(EA), load(), &hpt, &st),
            Outcome::Refused(Hcall::Enter, HcallError::Parameter)
        );
        assert_eq!(c.load(), before);
        assert_eq!(st.get(Counter::HvRefusals), 1);
    }

    #[test]
    fn evicted_hpte_is_reinserted_on_next_touch() {
        let (c, hpt, geo, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        hash_pte(&c, EA, vsid, load(), &hpt, &st);
        let slot: HptSlot = c.load().slot().unwrap();
        let ptex = geo.ptex(hash_4k(vsid, EA), slot);
        hpt.remove(ptex, avpn_for(vsid, EA)).unwrap();
        assert_eq!(hash_pte(&c, EA, vsid, load(), &hpt, &st), Outcome::Inserted { secondary: false, evicted: 0 });
        assert_eq!(hpt.valid_entries().len(), 1);
    }

    #[test]
    fn clear_and_flush_removes_hpte() {
        let (c, hpt, _, st) = setup(Pte::new(0x1234, PAGE_KERNEL));
        let vsid = kernel_vsid(EA);
        hash_pte(&c, EA, vsid, store(), &hpt, &st);
        let mut spins = 0;
        let old = clear_and_flush(&c, EA, vsid, &hpt, &mut spins).unwrap();
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

    /// A fake whose groups refill themselves: every insert finds the group full until
    /// `refill_for` inserts have been refused, as when other CPUs keep filling both groups.
    struct Refilling {
        hpt: FakeHpt,
        refuse_left: std::sync::atomic::AtomicU32,
    }

    impl HashBackend for Refilling {
        fn geometry(&self) -> HptGeometry {
            self.hpt.geo
        }
        fn insert(&self, g: u64, v: u64, r: u64) -> Result<u64, InsertError> {
            use std::sync::atomic::Ordering::Relaxed;
            if self.refuse_left.load(Relaxed) > 0 {
                self.refuse_left.fetch_sub(1, Relaxed);
                return Err(InsertError::Full);
            }
            self.hpt.insert(g, v, r)
        }
        fn read_group(&self, g: u64) -> Result<[Hpte; 8], HcallError> {
            // Always full of foreign, unbolted entries (removing one finds it gone: refilled).
            let _ = g;
            Ok([Hpte { v: (0x55 << 12) | HpteV::VALID.bits(), r: 0 }; 8])
        }
        fn protect(&self, p: u64, a: u64, f: u64) -> Result<(), ProtectError> {
            self.hpt.protect(p, a, f)
        }
        fn remove(&self, p: u64, a: u64) -> Result<Hpte, RemoveError> {
            self.hpt.remove(p, a)
        }
        fn remove_unbolted(&self, _: u64) -> Result<Hpte, RemoveError> {
            // Refilled at once: whatever was removed is back.
            Ok(Hpte::EMPTY)
        }
        fn read(&self, p: u64) -> Hpte {
            self.hpt.read(p)
        }
        fn random(&self) -> u64 {
            self.hpt.random()
        }
    }

    #[test]
    fn lost_eviction_races_retry_instead_of_failing() {
        // Other CPUs refill both groups after every eviction for longer than the bound: the
        // access must be re-executed (PTE restored), never refused.
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, _, _, st) = setup(before);
        let be = Refilling { hpt: FakeHpt::new(19), refuse_left: std::sync::atomic::AtomicU32::new(1000) };
        let vsid = kernel_vsid(EA);
        assert_eq!(hash_pte(&c, EA, vsid, load(), &be, &st), Outcome::Retry(Retry::Evictions));
        assert_eq!(c.load(), before, "PTE restored: no BUSY, no ACCESSED");
        assert_eq!(st.get(Counter::RetryEvictions), 1);
        assert_eq!(st.get(Counter::HvRefusals), 0);
        // Once the others stop refilling, the re-executed access succeeds.
        be.refuse_left.store(3, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(hash_pte(&c, EA, vsid, load(), &be, &st), Outcome::Inserted { .. }));
    }

    #[test]
    fn busy_hypervisor_retries() {
        struct Busy(FakeHpt);
        impl HashBackend for Busy {
            fn geometry(&self) -> HptGeometry {
                self.0.geo
            }
            fn insert(&self, _: u64, _: u64, _: u64) -> Result<u64, InsertError> {
                Err(InsertError::Refused(HcallError::Busy(9901)))
            }
            fn read_group(&self, g: u64) -> Result<[Hpte; 8], HcallError> {
                self.0.read_group(g)
            }
            fn protect(&self, p: u64, a: u64, f: u64) -> Result<(), ProtectError> {
                self.0.protect(p, a, f)
            }
            fn remove(&self, p: u64, a: u64) -> Result<Hpte, RemoveError> {
                self.0.remove(p, a)
            }
            fn remove_unbolted(&self, p: u64) -> Result<Hpte, RemoveError> {
                self.0.remove_unbolted(p)
            }
            fn read(&self, p: u64) -> Hpte {
                self.0.read(p)
            }
            fn random(&self) -> u64 {
                self.0.random()
            }
        }
        let before = Pte::new(0x1234, PAGE_KERNEL);
        let (c, _, _, st) = setup(before);
        assert_eq!(
            hash_pte(&c, EA, kernel_vsid(EA), load(), &Busy(FakeHpt::new(19)), &st),
            Outcome::Retry(Retry::HypervisorBusy)
        );
        assert_eq!(c.load(), before);
        assert_eq!(st.get(Counter::RetryHvBusy), 1);
    }

    #[test]
    fn victim_choice() {
        let v = |bolted: bool| Hpte { v: HpteV::VALID.bits() | if bolted { HpteV::BOLTED.bits() } else { 0 }, r: 0 };
        let mut g = [v(true); 8];
        assert_eq!(pick_victim(&g, 3), Err(Evicted::AllBolted));
        g[1] = v(false);
        g[6] = v(false);
        assert_eq!(pick_victim(&g, 3), Ok(6));
        assert_eq!(pick_victim(&g, 7), Ok(1));
        assert_eq!(pick_victim(&g, 1), Ok(1));
        g[4] = Hpte::EMPTY;
        assert_eq!(pick_victim(&g, 3), Err(Evicted::FreeSlot));
    }

    #[test]
    fn hpte_r_table_matches_hpte_for() {
        // Every low-16-bit pattern of a present PTE, with a few frame numbers.
        for low in 0..=0xffffu64 {
            for pfn in [0u64, 1, 0x1234, 0xf_ffff_ffff] {
                let p = Pte((pfn << PFN_SHIFT) | low | PteFlags::PRESENT.bits());
                let want = hpte_for(0x55, 0xd000_0000_0000_0000, p.pfn(), hpte_flags(p), false, false).r;
                assert_eq!(HPTE_R.r(p), want, "{p}");
            }
        }
    }
}
