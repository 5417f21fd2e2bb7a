//! The hash-fault entry. The 0x300 vector (boot/vectors.S) saves the volatile registers in
//! this CPU's hash frame and calls the selected design's `do_hash_fault*` with (DAR, DSISR,
//! SRR1); a non-zero return sends the fault down the full exception path
//! (`exception::hash_fault_slow_path` → `handle`), which decides between a fixup, a user-mode
//! fault and an oops. 0x400 comes through the generic path to `handle` directly.
//!
//! `hash_page=lockfree` (default) runs the protocol with no lock at all.
//! `hash_page=locked` is the 2003 design kept on purpose: the same protocol under
//! page_table_lock — the lock vmalloc holds with interrupts enabled — so an interrupt handler
//! that faults on a vmalloc page while the interrupted code is inside vmalloc deadlocks.
//! `hash_page=patch2003` and `hash_page=cas2` are the first lock-free patch as reviewed in 2003
//! and the reviewer's CAS_PTE proposal (`hash::design`): lock-free too, each with the race the
//! review is about. `inject=` with hypervisor kinds selects one more: the lock-free path over
//! the injecting backend (`hash::inject`), which fails calls as the armed plan says. The design
//! is chosen by patching the vector's call (`select`), so the default path pays nothing for
//! the others. Each design exists once per HPT backend: `Pseries` (hypercalls) and `Native`
//! (powernv, the kernel's own table); `select` picks the platform's.

use super::access::Access;
use super::backend::{HashBackend, Pseries};
use super::design::{Busy, Cas2, HashTableLock, Patch2003, Steps};
use super::inject::{Armed, Injecting, PSERIES as INJECTING};
use super::native::{Native, NATIVE};
use super::protocol::{hash_pte_at, FaultAddr, Finish, Outcome, Retry, ReturnOutcome, Va};
use super::reason::FaultReason;
use super::stats::{self, Counter, ThisCpu};
use crate::arch::ppc64::exception::{ExcFrame, Handled};
use crate::arch::ppc64::reg::{Dsisr, IsiSrr1, Msr};
use crate::arch::ppc64::{hcall, insn, percpu, platform};
use crate::mm::pgtable;
use crate::mm::slbe::kernel_vsid;
use crate::mm::vmalloc::PAGE_TABLE_LOCK;
use core::sync::atomic::{
    AtomicBool, AtomicU8,
    Ordering::{Acquire, Relaxed, Release},
};

/// The hash_page designs. The discriminant is the design's slot in the assembly table
/// `hash_fault_designs` (boot/vectors.S): pseries' entry; powernv's is `Design::SLOTS` further.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Design {
    LockFree = 0,
    Locked = 1,
    Patch2003 = 2,
    Cas2 = 3,
    /// Not a hash_page at all: the DSI-shaped ceiling of `bench=ceiling` (src/run/bench.rs,
    /// `do_hash_fault_ceiling`) — one H_READ, then the access is skipped. Only that benchmark
    /// selects it, and selects the previous design back.
    Ceiling = 4,
    /// Lock-free, with the armed fault-injection plan (`crate::inject::arm` selects it; not a
    /// `hash_page=` value).
    Inject = 5,
}

impl Design {
    pub const ALL: [Design; 4] = [Design::LockFree, Design::Locked, Design::Patch2003, Design::Cas2];
    /// Entries per HPT backend in `hash_fault_designs` (boot/vectors.S): every variant, the
    /// ceiling and the injecting design included.
    pub const SLOTS: usize = 6;

    /// The `hash_page=` value.
    pub const fn name(self) -> &'static str {
        match self {
            Design::LockFree => Busy::NAME,
            Design::Locked => "locked",
            Design::Patch2003 => "patch2003",
            Design::Cas2 => Cas2::NAME,
            Design::Ceiling => "ceiling",
            Design::Inject => "lockfree+inject",
        }
    }

    /// What the model check (model/, `three_designs_against_clear_and_flush`) concluded about
    /// a design the 2003 review found wanting; the default run prints it.
    pub const fn model_says(self) -> Option<&'static str> {
        match self {
            Design::Patch2003 => Some("the model finds the 2003 counterexample: a clear between the A/D update and the slot update flushes nothing, and the HPTE inserted in between outlives vfree (a stale translation of a freed frame); the review2003:: tests replay it, and this run's SMP stress fails when it catches one"),
            Design::Cas2 => Some("the model finds its own counterexample: the second CAS fails and the HPTE is removed, but only after vfree's flush has returned and the frame is free; correct only if the flusher waits for every hash_page in flight before freeing (the model passes then). On QEMU the stress also catches a permanent one: the PTE cleared, remapped and re-hashed into the same slot makes the old second CAS succeed (ABA), leaving the other HPTE unnamed. review2003:: replays the first; this run's SMP stress fails when it catches either"),
            _ => None,
        }
    }

    /// Whether the design takes the PTE with the BUSY bit-lock (so a fault can find it held).
    pub const fn has_busy(self) -> bool {
        matches!(self, Design::LockFree | Design::Locked | Design::Inject)
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Design::LockFree => "lock-free",
            Design::Locked => "locked (2003 design)",
            Design::Patch2003 => "patch2003 (the first lock-free patch as reviewed in 2003: two PTE updates, no USER check, no PRESENT check in the shared area)",
            Design::Cas2 => "cas2 (the reviewer's CAS_PTE proposal: CAS for A/D, insert, CAS for the slot, remove the HPTE if it failed)",
            Design::Ceiling => "ceiling (bench=ceiling only: no hash_page, the access skipped)",
            Design::Inject => "lock-free, over the fault-injecting backend",
        }
    }

    /// The design in slot `n` of `hash_fault_designs` (the lock-free one for any other value).
    pub const fn from_slot(n: u8) -> Design {
        match n {
            1 => Design::Locked,
            2 => Design::Patch2003,
            3 => Design::Cas2,
            4 => Design::Ceiling,
            5 => Design::Inject,
            _ => Design::LockFree,
        }
    }
}

static DESIGN: AtomicU8 = AtomicU8::new(Design::LockFree as u8);

pub fn design() -> Design {
    Design::from_slot(DESIGN.load(Relaxed))
}

pub fn locked_mode() -> bool {
    design() == Design::Locked
}

pub fn set_locked_mode(on: bool) {
    select(if on { Design::Locked } else { Design::LockFree });
}

extern "C" {
    static hash_fault_call: u32;
    static hash_fault_designs: [u32; 2 * Design::SLOTS];
}

/// Patches the 0x300 entry's call to `d`'s entry for this platform's HPT backend (the table
/// holds pseries' entries, then powernv's). Call it while no other CPU takes hash faults
/// (boot, or a test/benchmark between phases): every CPU runs the same entry code.
pub fn select(d: Design) {
    DESIGN.store(d as u8, Relaxed);
    let site = &raw const hash_fault_call as u64;
    let index = d as usize + if platform::powernv() { Design::SLOTS } else { 0 };
    // SAFETY: reads one word of the (never executed) table of assembled calls.
    let (slot, insn) = unsafe {
        let slot = (&raw const hash_fault_designs as *const u32).add(index);
        (slot as u64, slot.read())
    };
    let target = slot.wrapping_add(branch_disp(insn) as u64);
    // While exceptions or hash_page are traced the call goes through the traced entry, which
    // calls `target` (so the untraced path has no trace point of its own).
    let target = crate::trace::hash_fault_route(target);
    let new = 0x4800_0001 | ((target.wrapping_sub(site) as u32) & 0x03ff_fffc);
    // SAFETY: `site` is the `bl` of hash_fault_entry, in the bolted, writable kernel text; the
    // store is one aligned word, so a CPU fetching it sees either call; the caller guarantees
    // no hash fault is in flight. sync_icache makes the new call visible to instruction fetch.
    unsafe {
        core::ptr::write_volatile(site as *mut u32, new);
        insn::sync_icache(site, 4);
    }
}

/// Where the 0x300 entry's call currently goes (decoded from the `bl` at `hash_fault_call`):
/// the design's entry, or the trace's entry in front of it (`design_entry` sees through it).
pub fn call_target() -> u64 {
    let site = &raw const hash_fault_call as u64;
    // SAFETY: one aligned word of kernel text.
    let insn = unsafe { core::ptr::read_volatile(site as *const u32) };
    site.wrapping_add(branch_disp(insn) as u64)
}

/// The design entry the 0x300 entry ends up calling.
pub fn design_entry() -> u64 {
    crate::trace::hash_fault_design_entry(call_target())
}

/// The signed displacement of an I-form branch (`b`/`bl`).
fn branch_disp(insn: u32) -> i64 {
    (((insn & 0x03ff_fffc) << 6) as i32 >> 6) as i64
}

/// DSISR bits hash_page can resolve; anything else (DABR match, storage key, ...) is not a hash
/// miss. Every cause bit Book III-S defines lies in DSISR's upper half (bits 32:47; 48:63 are
/// reserved), so the fast path tests that half only: one `andis.`.
const HASHABLE: u32 = Dsisr::NOPTE.bits() | Dsisr::PROTFAULT.bits() | Dsisr::ISSTORE.bits();
const NOT_HASHABLE_HI: u32 = !HASHABLE & 0xffff_0000;

/// 0x300, lock-free (the default). See boot/vectors.S for the calling convention: translation
/// on, EE = RI = 0, on this CPU's hash stack, only the volatile registers saved. The access is
/// re-executed unless the function leaves a verdict (`FaultReason::encode`, never 0) in this
/// CPU's `hash_verdict`: then the slow path takes over. (A verdict in memory rather than a
/// return value spares the common case a value kept alive across its hypervisor call.)
#[no_mangle]
pub extern "C" fn do_hash_fault(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, Busy, Pseries>(Busy, dar, dsisr, srr1)
}

/// 0x300 under `hash_page=locked`: the same path, holding page_table_lock.
#[no_mangle]
pub extern "C" fn do_hash_fault_locked(dar: u64, dsisr: u64, srr1: u64) {
    fast::<true, Busy, Pseries>(Busy, dar, dsisr, srr1)
}

/// 0x300 on powernv, lock-free: the same protocol, HPTEs written by the kernel itself.
#[no_mangle]
pub extern "C" fn do_hash_fault_native(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, Busy, Native>(Busy, dar, dsisr, srr1)
}

/// 0x300 on powernv under `hash_page=locked`.
#[no_mangle]
pub extern "C" fn do_hash_fault_native_locked(dar: u64, dsisr: u64, srr1: u64) {
    fast::<true, Busy, Native>(Busy, dar, dsisr, srr1)
}

/// A fast-path backend: a constant, so the path refers to it without holding a pointer, and
/// the `Finish` of its lock-free path.
trait FastBackend: HashBackend + 'static {
    const IT: Self;
    type Verdict: Finish<Out = ()> + Default;
    /// `not_inserted` for this machine: with a hypervisor that owns the CPU a BUSY
    /// re-execution may give it away (H_CONFER).
    fn not_inserted(o: Outcome);
}

impl FastBackend for Pseries {
    const IT: Self = Pseries;
    type Verdict = Verdict;
    #[inline(always)]
    fn not_inserted(o: Outcome) {
        not_inserted::<true>(o)
    }
}

impl FastBackend for Injecting<'static, Pseries, Armed> {
    const IT: Self = INJECTING;
    type Verdict = Verdict;
    #[inline(always)]
    fn not_inserted(o: Outcome) {
        not_inserted::<true>(o)
    }
}

impl FastBackend for Native {
    const IT: Self = NATIVE;
    type Verdict = NativeVerdict;
    #[inline(always)]
    fn not_inserted(o: Outcome) {
        not_inserted::<false>(o)
    }
}

/// 2.4's `hash_table_lock[]` for `hash_page=patch2003`: 128 spin locks chosen by virtual page
/// number, taken only by hash_page, with interrupts off (so no interrupted holder can wait
/// for them: no deadlock).
pub struct HashTableLocks([AtomicBool; 128]);

impl HashTableLock for HashTableLocks {
    #[inline(always)]
    fn lock(&self, ea: u64) {
        let l = &self.0[((ea >> 12) & 127) as usize];
        while l.swap(true, Acquire) {
            while l.load(Relaxed) {
                insn::cpu_relax();
            }
        }
    }
    #[inline(always)]
    fn unlock(&self, ea: u64) {
        self.0[((ea >> 12) & 127) as usize].store(false, Release);
    }
}

pub static HASH_TABLE_LOCK: HashTableLocks = HashTableLocks([const { AtomicBool::new(false) }; 128]);

/// `hash_page=patch2003`'s steps, with its bucket locks.
pub const PATCH2003: Patch2003<'static, HashTableLocks> = Patch2003(&HASH_TABLE_LOCK);

/// 0x300 under `hash_page=patch2003`: the same path with that design's steps.
#[no_mangle]
pub extern "C" fn do_hash_fault_patch2003(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, _, Pseries>(PATCH2003, dar, dsisr, srr1)
}

/// 0x300 under `hash_page=cas2`.
#[no_mangle]
pub extern "C" fn do_hash_fault_cas2(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, Cas2, Pseries>(Cas2, dar, dsisr, srr1)
}

/// 0x300 on powernv under `hash_page=patch2003`.
#[no_mangle]
pub extern "C" fn do_hash_fault_native_patch2003(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, _, Native>(PATCH2003, dar, dsisr, srr1)
}

/// 0x300 on powernv under `hash_page=cas2`.
#[no_mangle]
pub extern "C" fn do_hash_fault_native_cas2(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, Cas2, Native>(Cas2, dar, dsisr, srr1)
}

/// 0x300 with fault injection armed: the lock-free path over the injecting backend (pseries;
/// powernv has no hypervisor calls to fail, and its slot holds the default).
#[no_mangle]
pub extern "C" fn do_hash_fault_inject(dar: u64, dsisr: u64, srr1: u64) {
    fast::<false, Busy, Injecting<'static, Pseries, Armed>>(Busy, dar, dsisr, srr1)
}

#[inline(always)]
fn fast<const LOCKED: bool, D: Steps, B: FastBackend>(d: D, ea: u64, dsisr: u64, srr1: u64) {
    let dsisr = dsisr as u32;
    if dsisr & NOT_HASHABLE_HI != 0 {
        return not_hash_miss();
    }
    // No table is no case of its own here: the walk ends on a zero PTE, the take says "not
    // present", and the slow path tells the two apart (`slow_reason`).
    let pte = pgtable::walk_translated(ea);
    let access = Access::from_data_fault(dsisr, srr1 & Msr::PR.bits() != 0);
    if LOCKED {
        // Only the default's steps run locked (`do_hash_fault_locked`); naming them here
        // rather than capturing `d` keeps the closure what it was.
        let o = locked(|| hash_pte_at(Busy, pte, ea, &FromHashFrame, access, &B::IT, &ThisCpu, ReturnOutcome), dsisr);
        if !matches!(o, Outcome::Inserted { .. }) {
            B::not_inserted(o)
        }
    } else {
        hash_pte_at(d, pte, ea, &FromHashFrame, access, &B::IT, &ThisCpu, B::Verdict::default())
    }
}

/// The fast path's `Finish`: an outcome other than the common insert becomes the verdict
/// right in the cold function that produced it (see `protocol::Finish`).
#[derive(Clone, Copy, Default)]
struct Verdict;

impl Finish for Verdict {
    type Out = ();
    #[inline(always)]
    fn inserted(self) {}
    #[inline(always)]
    fn busy(self, count: u64) {
        if count.is_multiple_of(8) {
            confer();
        }
    }
    #[inline(always)]
    fn finish(self, o: Outcome) {
        // The slow ones in a function of their own: an insert or update just returns.
        if !matches!(o, Outcome::Inserted { .. } | Outcome::Updated) {
            not_inserted::<true>(o)
        }
    }
}

/// `Verdict` on powernv: a BUSY re-execution has no hypervisor to give the CPU to.
#[derive(Clone, Copy, Default)]
struct NativeVerdict;

impl Finish for NativeVerdict {
    type Out = ();
    #[inline(always)]
    fn inserted(self) {}
    #[inline(always)]
    fn busy(self, _count: u64) {}
    #[inline(always)]
    fn finish(self, o: Outcome) {
        // The slow ones in a function of their own: an insert or update just returns.
        if !matches!(o, Outcome::Inserted { .. } | Outcome::Updated) {
            not_inserted::<false>(o)
        }
    }
}

/// The fault's address, read back from this CPU's hash frame (the entry stored DAR there),
/// and its VSID from the SLB: a slow path finds them again instead of the fast path keeping
/// them in registers across its hypervisor call.
struct FromHashFrame;

impl FaultAddr for FromHashFrame {
    #[inline(always)]
    fn ea(&self) -> u64 {
        crate::arch::ppc64::exception::hash_frame().dar
    }
    #[inline(always)]
    fn vsid(&self) -> u64 {
        segment_vsid(self.ea())
    }
    #[inline(always)]
    fn vsid_of(&self, ea: u64) -> u64 {
        segment_vsid(ea)
    }
}

/// `HV`: a hypervisor owns the CPU (pseries).
#[cold]
#[inline(never)]
fn not_inserted<const HV: bool>(o: Outcome) {
    match o {
        Outcome::Inserted { .. } | Outcome::Updated => {}
        Outcome::Retry(why) => retry::<HV>(why),
        Outcome::Denied(d) => slow(FaultReason::Denied(d)),
        Outcome::AllBolted => slow(FaultReason::AllBolted),
        Outcome::Refused(call, e) => slow(FaultReason::Refused(call, e)),
    }
}

/// Hands the fault to the slow path (see `do_hash_fault`).
#[cold]
#[inline(never)]
fn slow(why: FaultReason) {
    percpu::this().hash_verdict.store(why.encode(), Relaxed);
}

#[cold]
#[inline(never)]
fn not_hash_miss() {
    slow(FaultReason::NotHashMiss)
}

/// The verdict `why` for the fault at `ea`, refined now that speed does not matter: a "not
/// present" on an address without page tables is reported as such.
pub fn slow_reason(why: FaultReason, ea: u64) -> FaultReason {
    match why {
        FaultReason::Denied(super::access::Denied::NotPresent) if pgtable::walk(ea).is_none() => {
            FaultReason::NoPageTable
        }
        w => w,
    }
}

/// The 2003 design: the protocol under page_table_lock. The fast entry does not store DSISR
/// and r1 in the hash frame; here they go there, so a deadlock report can show the whole
/// fault and walk the interrupted stack.
#[inline(never)]
fn locked(f: impl FnOnce() -> Outcome, dsisr: u32) -> Outcome {
    let p = percpu::this();
    let frame = (p.hash_frame.load(Relaxed) + crate::arch::ppc64::exception::HDR_SIZE as u64) as *mut ExcFrame;
    // SAFETY: this CPU's hash frame, in use by this very fault (we run on the hash stack); the
    // ABI header before it holds the back chain, i.e. the interrupted r1.
    unsafe {
        (*frame).dsisr = dsisr as u64;
        (*frame).gpr[1] = *((frame as u64 - crate::arch::ppc64::exception::HDR_SIZE as u64) as *const u64);
    }
    p.stats.count(Counter::LockedFaults);
    let _g = PAGE_TABLE_LOCK.lock();
    f()
}

/// The VSID of the segment `ea` is in, as the SLB holds it (`slbfee.`): the MMU just used that
/// entry to translate `ea`, so it is there, and it is the VSID the HPTE must carry.
#[inline(always)]
fn segment_vsid(ea: u64) -> u64 {
    let rs: u64;
    // SAFETY: slbfee. only reads the SLB (and sets CR0).
    unsafe {
        core::arch::asm!("slbfee. {rs}, {ea}", rs = lateout(reg) rs, ea = in(reg) ea, out("cr0") _, options(nomem, nostack))
    };
    // Kernel VSIDs are 36 bits (mm/slbe.rs): saying so lets the hash skip its wider mask.
    (rs >> crate::mm::slbe::SLB_VSID_SHIFT) & crate::mm::slbe::VSID_MODULUS
}

/// The BUSY holder runs with interrupts off and never waits, so it finishes quickly — unless
/// the hypervisor preempted its vCPU. Every 8th BUSY re-execution on this CPU gives the
/// physical CPU away (H_CONFER), as a shared-processor LPAR should; the count is the
/// `busy_retries` counter the protocol bumps, so this costs no state of its own.
#[inline(always)]
fn retry<const HV: bool>(why: Retry) {
    if HV && why == Retry::Busy && stats::this().get(Counter::BusyRetries).is_multiple_of(8) {
        confer();
    }
}

#[cold]
#[inline(never)]
fn confer() {
    stats::this().count(Counter::Confers);
    hcall::h_confer_all();
}

/// 0x400, from the generic path (with the full frame).
pub fn handle(f: &mut ExcFrame) -> Handled {
    let user = f.from_user();
    let (ea, access) = if f.trap == 0x400 {
        if IsiSrr1::from_bits_truncate(f.msr).intersects(IsiSrr1::NOEXEC_GUARD | IsiSrr1::IAMR) {
            // The HPTE itself forbids the fetch (N or G, set only from the PTE, whose changes
            // flush the HPTE), or a storage key does: no HPTE can fix that.
            return Handled::Bad(FaultReason::Other(
                "instruction fetch from a no-execute or guarded page (HPTE N/G or key, SRR1)",
            ));
        }
        (f.nip, Access::from_instruction_fault(user))
    } else {
        // A 0x300 reaches the generic path only as an unrecoverable one (see boot/vectors.S).
        let d = f.dsisr as u32;
        if d & !HASHABLE != 0 {
            return Handled::Bad(FaultReason::NotHashMiss);
        }
        (f.dar, Access::from_data_fault(d, user))
    };
    match hash_page(ea, access) {
        Ok(()) => Handled::Done,
        Err(why) => Handled::Bad(why),
    }
}

/// Inserts or updates the HPTE for a kernel vmalloc/ioremap address (the 0x400 version of
/// `fast`). Never inlined: it is the debugger's breakpoint for that path.
#[inline(never)]
pub fn hash_page(ea: u64, access: Access) -> Result<(), FaultReason> {
    let p = percpu::this();
    let Some(slot) = pgtable::walk(ea) else {
        p.stats.count(Counter::BadAccess);
        return Err(FaultReason::NoPageTable);
    };
    let va = Va { ea, vsid: kernel_vsid(ea) };
    // The platform's backend directly (not `hpt::Hpt`, which branches on every call): the
    // protocol's code for pseries stays the instantiation it was.
    let outcome = if platform::powernv() {
        hash_page_on(slot, &va, access, &NATIVE)
    } else if design() == Design::Inject {
        hash_page_on(slot, &va, access, &INJECTING)
    } else {
        hash_page_on(slot, &va, access, &Pseries)
    };
    match outcome {
        Outcome::Inserted { .. } | Outcome::Updated => Ok(()),
        Outcome::Retry(why) => {
            if platform::powernv() {
                retry::<false>(why)
            } else {
                retry::<true>(why)
            }
            Ok(())
        }
        Outcome::Denied(d) => Err(FaultReason::Denied(d)),
        Outcome::AllBolted => Err(FaultReason::AllBolted),
        Outcome::Refused(call, e) => Err(FaultReason::Refused(call, e)),
    }
}

/// `hash_page`'s protocol run, with the selected design's steps, on backend `be`.
#[inline(always)]
fn hash_page_on<B: HashBackend>(slot: &super::cell::PteSlot, va: &Va, access: Access, be: &B) -> Outcome {
    let ea = va.ea;
    match design() {
        Design::Locked => {
            percpu::this().stats.count(Counter::LockedFaults);
            let _g = PAGE_TABLE_LOCK.lock();
            hash_pte_at(Busy, slot, ea, va, access, be, &ThisCpu, ReturnOutcome)
        }
        // The 0x400 path has no ceiling variant: while bench=ceiling has the 0x300 patched,
        // anything else that faults is hashed as by default; with injection armed the caller
        // passes the injecting backend.
        Design::LockFree | Design::Ceiling | Design::Inject => {
            hash_pte_at(Busy, slot, ea, va, access, be, &ThisCpu, ReturnOutcome)
        }
        Design::Patch2003 => hash_pte_at(PATCH2003, slot, ea, va, access, be, &ThisCpu, ReturnOutcome),
        Design::Cas2 => hash_pte_at(Cas2, slot, ea, va, access, be, &ThisCpu, ReturnOutcome),
    }
}
