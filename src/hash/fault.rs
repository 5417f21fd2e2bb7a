//! The hash-fault entry: 0x300 (data storage) and 0x400 (instruction storage) come here from
//! exception_entry; 0x380/0x480 come here right after installing the segment when the page has
//! no HPTE yet, instead of taking a second exception.
//!
//! `hash_page=lockfree` (default) runs the protocol with no lock at all.
//! `hash_page=locked` is the 2003 design kept on purpose: the same protocol under
//! page_table_lock — the lock vmalloc holds with interrupts enabled — so an interrupt handler
//! that faults on a vmalloc page while the interrupted code is inside vmalloc deadlocks.

use super::access::{Access, Denied};
use super::backend::Pseries;
use super::protocol::{hash_pte, Outcome};
use super::stats::{self, Counter};
use crate::arch::ppc64::exception::{ExcFrame, Handled};
use crate::arch::ppc64::reg::Dsisr;
use crate::arch::ppc64::{boot, percpu};
use crate::mm::pgtable;
use crate::mm::slbe::{kernel_vsid, region_of, Region};
use crate::mm::vmalloc::PAGE_TABLE_LOCK;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

static LOCKED: AtomicBool = AtomicBool::new(false);
static ASM: AtomicBool = AtomicBool::new(false);

pub fn set_locked_mode(on: bool) {
    LOCKED.store(on, Relaxed);
    retarget_all();
}

/// hash_page=asm: the 0x300 vector goes to the hand-written fast path (boot/hashfast.S) for
/// plain inserts; everything else still reaches the Rust path. Never in locked mode.
pub fn set_asm_fast_path(on: bool) {
    ASM.store(on, Relaxed);
    retarget_all();
}

pub fn asm_fast_path() -> bool {
    ASM.load(Relaxed) && !LOCKED.load(Relaxed)
}

/// Fills the per-CPU fields hash_fast reads, and points the CPU's 0x300 vector.
pub fn init_cpu(cpu: usize) {
    let p = percpu::paca(cpu);
    p.hash_mask.store(boot::hpt().hash_mask(), Relaxed);
    p.stats_row.store(stats::of(cpu) as *const _ as u64, Relaxed);
    p.pt_roots.store(pgtable::roots_addr(), Relaxed);
    retarget(cpu);
}

fn retarget(cpu: usize) {
    let p = percpu::paca(cpu);
    if p.hash_mask.load(Relaxed) == 0 {
        return; // not initialised yet
    }
    let t = if asm_fast_path() { boot::hash_fast_addr() } else { p.exc_common.load(Relaxed) };
    p.t300.store(t, Relaxed);
}

fn retarget_all() {
    for cpu in 0..percpu::MAX_CPUS {
        retarget(cpu);
    }
}

pub fn locked_mode() -> bool {
    LOCKED.load(Relaxed)
}

/// DSISR bits hash_page can resolve; anything else (DABR match, storage key, ...) is not a hash
/// fault.
const HASHABLE: u32 = Dsisr::NOPTE.bits() | Dsisr::PROTFAULT.bits() | Dsisr::ISSTORE.bits();

pub fn handle(f: &mut ExcFrame) -> Handled {
    let user = f.from_user();
    let (ea, access) = if f.trap == 0x400 {
        (f.nip, Access::from_instruction_fault(user))
    } else {
        let d = f.dsisr as u32;
        if d & !HASHABLE != 0 {
            return Handled::Bad("data storage fault that is not a hash miss (DSISR)");
        }
        (f.dar, Access::from_data_fault(d, user))
    };
    let st = stats::this();
    st.count(Counter::Faults);
    if percpu::this().depth.load(Relaxed) > 1 {
        st.count(Counter::IrqFaults);
    }
    match hash_page(ea, access) {
        Ok(()) => Handled::Done,
        Err(why) => Handled::Bad(why),
    }
}

/// Inserts or updates the HPTE for a kernel vmalloc/ioremap address.
/// Never inlined: it is the debugger's breakpoint for the hash-fault path (scripts/gdb-test.sh
/// breaks here in release builds too).
#[inline(never)]
pub fn hash_page(ea: u64, access: Access) -> Result<(), &'static str> {
    let st = stats::this();
    // The walk checks the region itself; the reason is worked out only on the way to an oops.
    let Some(slot) = pgtable::walk(ea) else {
        st.count(Counter::BadAccess);
        return Err(match region_of(ea) {
            Some(Region::Vmalloc) | Some(Region::Io) => "no page table covers this address",
            Some(Region::Linear) => "hash fault in the linear mapping (outside the bolted zone)",
            None => "hash fault on an address in no kernel region",
        });
    };
    let geo = boot::hpt();
    let vsid = kernel_vsid(ea);
    let outcome = if LOCKED.load(Relaxed) {
        st.count(Counter::LockedFaults);
        let _g = PAGE_TABLE_LOCK.lock();
        hash_pte(slot, ea, vsid, access, geo, &Pseries, st)
    } else {
        hash_pte(slot, ea, vsid, access, geo, &Pseries, st)
    };
    if outcome == Outcome::Retry {
        // The BUSY holder runs with interrupts off and never waits, so it finishes quickly —
        // unless the hypervisor preempted its vCPU. After a streak of re-executions, give the
        // physical CPU away (H_CONFER), as a shared-processor LPAR should.
        let p = percpu::this();
        let streak = p.busy_streak.fetch_add(1, Relaxed) + 1;
        if streak % 8 == 0 {
            st.count(Counter::Confers);
            crate::arch::ppc64::hcall::h_confer_all();
        }
        return Ok(());
    }
    percpu::this().busy_streak.store(0, Relaxed);
    match outcome {
        Outcome::Inserted { .. } | Outcome::Updated | Outcome::Retry => Ok(()),
        Outcome::Denied(d) => Err(denied_str(d)),
        Outcome::Refused(_) => Err("the hypervisor refused the HPTE (or both groups are all bolted)"),
    }
}

fn denied_str(d: Denied) -> &'static str {
    match d {
        Denied::NotPresent => "access to a page that is not present (unmapped, guard page or swap entry)",
        Denied::UserToKernel => "problem-state access to a kernel page",
        Denied::WriteToReadOnly => "store to a read-only page",
        Denied::NoExec => "instruction fetch from a no-execute page",
    }
}

/// After a segment miss: hash the page at once if its PTE is present but has no HPTE, so the
/// re-executed access does not take a second exception. A load-type access is assumed (the
/// data-segment interrupt does not say whether it was a store): a store then faults once more
/// to set DIRTY, exactly as on a clean page. Denials are left to the real fault, which reports
/// them with the right DSISR.
pub fn prefault_after_segment_miss(ea: u64, instr: bool, user: bool) {
    let Some(slot) = pgtable::walk(ea) else { return };
    let p = crate::hash::cell::PteCell::load(slot);
    if !p.is_present() || p.has_hashpte() {
        return;
    }
    let access = if instr { Access::from_instruction_fault(user) } else { Access::from_data_fault(0, user) };
    if hash_page(ea, access).is_ok() {
        stats::this().count(Counter::SegThenHash);
    }
}
