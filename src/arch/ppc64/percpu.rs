//! The per-CPU area (like Linux's PACA): addressed by SPRG0 in the exception vectors and by
//! r13 in kernel code. Its first fields are used by assembly (boot/vectors.S) through offsets
//! exported from here, so the layout has one definition.
//!
//! Three kinds of stack per CPU, each in the bolted linear zone with an unmapped guard page
//! below it (an overflow faults instead of writing into the neighbour):
//! - the kernel (thread) stack;
//! - the exception stack, which the generic vectors nest on (a nested exception stacks below
//!   the interrupted handler's red zone);
//! - the hash stack, whose top holds one fixed frame for the 0x300 hash fault. A hash fault
//!   can interrupt any context but never itself (its handler touches only bolted memory, with
//!   interrupts off), so the entry needs no search for a free spot: one load finds the frame.

use crate::hash::stats::Stats;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const MAX_CPUS: usize = 8;
pub const EXC_STACK_SIZE: usize = 64 * 1024;
pub const HASH_STACK_SIZE: usize = 32 * 1024;
pub const KSTACK_SIZE: usize = 128 * 1024;
pub const GUARD_SIZE: usize = 4096;

/// Per-CPU state. Every field is an atomic so a shared `&'static Paca` is sound; the
/// assembly-visible ones are plain 64-bit words at fixed offsets (see `offsets`).
#[repr(C, align(256))]
pub struct Paca {
    /// Page-table roots indexed by the top nibble of the effective address: 0xd (vmalloc) and
    /// 0xe (I/O) have trees, every other nibble the empty PGD (`mm::pgtable`). First in the
    /// area, so hash_page finds a root with one indexed load off r13 (`pgd_root`).
    pub pgd: [AtomicU64; 16],
    /// Generic vectors: r9, r10, r11, r12, CTR of the interrupted context.
    pub ex_gen: [AtomicU64; 6],
    /// The 0x300 entry: r11 and CR while it checks MSR[RI] and finds its frame.
    pub ex_hash: [AtomicU64; 2],
    /// The 0x380 segment-miss handler: r9-r12.
    pub ex_slb: [AtomicU64; 4],
    /// CR, parked across the hash path's H_ENTER (`hcall::h_enter_keep_cr`).
    pub hcall_cr: AtomicU64,
    /// The hash fast path's verdict for the slow path (0 = handled; see `do_hash_fault`).
    pub hash_verdict: AtomicU64,
    /// Link address of `exc_common`.
    pub exc_common: AtomicU64,
    pub exc_base: AtomicU64,
    pub exc_top: AtomicU64,
    pub toc: AtomicU64,
    /// MSR the exception path switches to: SF|ME|IR|DR|RI (EE stays off).
    pub kmsr: AtomicU64,
    pub cpu: AtomicU64,
    /// Next SLB slot to victimise (round robin over the non-bolted slots).
    pub slb_next: AtomicU64,
    pub slb_size: AtomicU64,
    /// Address of this CPU's hash-fault frame (fixed: the top of its hash stack).
    pub hash_frame: AtomicU64,
    /// Address of the SLB segment table (`mm::slb::SEGMENTS`), for the 0x380 handler.
    pub seg_table: AtomicU64,
    /// The HPT's hash mask (groups - 1).
    pub hash_mask: AtomicU64,
    /// Address of `hash::protocol::HPTE_R` (HPTE second-word flags by PTE flags).
    pub hpte_r: AtomicU64,
    /// Linear address of the HPT the kernel owns (powernv: `hash::native`); 0 on pseries.
    pub hpt_base: AtomicU64,
    /// r1 of the kernel code in an OPAL call (powernv), 0 outside one: OPAL runs on its own
    /// stack, and an exception that interrupts it puts its frame below this one instead.
    pub opal_sp: AtomicU64,
    /// This CPU's hash-fault counters (written only by this CPU).
    pub stats: Stats,
    /// Generic exception nesting depth (0 = thread context). The hash fault does not count
    /// itself here: see `exception_depth`.
    pub depth: AtomicU64,
    /// Address of the innermost generic exception frame, for watchdog and oops reports.
    pub last_frame: AtomicU64,
    /// Time base at the last sign of progress (watchdog heartbeat).
    pub heartbeat: AtomicU64,
    /// The last fault a probe absorbed: trap, DAR, DSISR, pending, SRR1.
    pub probe_fault: [AtomicU64; 5],
    pub online: AtomicU64,
    /// Address of the lock this CPU is spinning on (0 = none), for deadlock reports.
    pub spinning_on: AtomicU64,
    /// Kernel r1 saved by user_enter while a test runs in problem state (0 = none).
    pub user_sp: AtomicU64,
    /// The fault ceiling (`exc_fault_ceiling`, `bench=ceiling`): this CPU's next prepared
    /// H_ENTER record, and r3-r7 and CR while that handler runs.
    pub ceil_next: AtomicU64,
    pub ex_ceil: [AtomicU64; 6],
}

impl Paca {
    pub const fn new() -> Paca {
        // A const, so that each use below is a fresh atomic (the array-init idiom).
        #[allow(clippy::declare_interior_mutable_const)]
        const Z: AtomicU64 = AtomicU64::new(0);
        Paca {
            pgd: [Z; 16],
            ex_gen: [Z; 6],
            ex_hash: [Z; 2],
            ex_slb: [Z; 4],
            hcall_cr: Z,
            hash_verdict: Z,
            exc_common: Z,
            exc_base: Z,
            exc_top: Z,
            toc: Z,
            kmsr: Z,
            cpu: Z,
            slb_next: Z,
            slb_size: Z,
            hash_frame: Z,
            seg_table: Z,
            hash_mask: Z,
            hpte_r: Z,
            hpt_base: Z,
            opal_sp: Z,
            stats: Stats::new(),
            depth: Z,
            last_frame: Z,
            heartbeat: Z,
            probe_fault: [Z; 5],
            online: Z,
            spinning_on: Z,
            user_sp: Z,
            ceil_next: Z,
            ex_ceil: [Z; 6],
        }
    }
}

impl Default for Paca {
    fn default() -> Self {
        Self::new()
    }
}

pub mod offsets {
    use super::Paca;
    use core::mem::offset_of;
    pub const EX_GEN: usize = offset_of!(Paca, ex_gen);
    pub const EX_HASH: usize = offset_of!(Paca, ex_hash);
    pub const EX_SLB: usize = offset_of!(Paca, ex_slb);
    pub const HCALL_CR: usize = offset_of!(Paca, hcall_cr);
    pub const HASH_VERDICT: usize = offset_of!(Paca, hash_verdict);
    pub const EXC_COMMON: usize = offset_of!(Paca, exc_common);
    pub const EXC_BASE: usize = offset_of!(Paca, exc_base);
    pub const EXC_TOP: usize = offset_of!(Paca, exc_top);
    pub const TOC: usize = offset_of!(Paca, toc);
    pub const KMSR: usize = offset_of!(Paca, kmsr);
    pub const SLB_NEXT: usize = offset_of!(Paca, slb_next);
    pub const SLB_SIZE: usize = offset_of!(Paca, slb_size);
    pub const HASH_FRAME: usize = offset_of!(Paca, hash_frame);
    pub const SEG_TABLE: usize = offset_of!(Paca, seg_table);
    pub const HASH_MASK: usize = offset_of!(Paca, hash_mask);
    pub const HPTE_R: usize = offset_of!(Paca, hpte_r);
    pub const HPT_BASE: usize = offset_of!(Paca, hpt_base);
    pub const OPAL_SP: usize = offset_of!(Paca, opal_sp);
    pub const STATS: usize = offset_of!(Paca, stats);
    pub const USER_SP: usize = offset_of!(Paca, user_sp);
    pub const CEIL_NEXT: usize = offset_of!(Paca, ceil_next);
    pub const EX_CEIL: usize = offset_of!(Paca, ex_ceil);
}

#[no_mangle]
pub static PACA_ARRAY: [Paca; MAX_CPUS] = [const { Paca::new() }; MAX_CPUS];

/// A stack with an unmapped page below it (`mm` removes the guard pages' bolted HPTEs at boot).
/// Only its addresses are used from Rust: the memory is a stack for the code that runs on it.
#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    guard: UnsafeCell<[u8; GUARD_SIZE]>,
    stack: UnsafeCell<[u8; N]>,
}

// SAFETY: no Rust code reads or writes the fields; each stack is used (as a stack, through r1)
// only by the one CPU it belongs to.
unsafe impl<const N: usize> Sync for GuardedStack<N> {}

impl<const N: usize> GuardedStack<N> {
    const fn new() -> Self {
        GuardedStack { guard: UnsafeCell::new([0; GUARD_SIZE]), stack: UnsafeCell::new([0; N]) }
    }
    fn guard(&self) -> u64 {
        self.guard.get() as u64
    }
    fn base(&self) -> u64 {
        self.stack.get() as u64
    }
}

/// Exception stacks, one per CPU (the generic exception path runs here).
static EXC_STACKS: [GuardedStack<EXC_STACK_SIZE>; MAX_CPUS] = [const { GuardedStack::new() }; MAX_CPUS];
/// Hash stacks, one per CPU: the 0x300 fault runs here.
static HASH_STACKS: [GuardedStack<HASH_STACK_SIZE>; MAX_CPUS] = [const { GuardedStack::new() }; MAX_CPUS];
/// Kernel (thread) stacks of the secondary CPUs; CPU 0 runs on the boot stack (boot/entry.S,
/// with its own guard page), so `KSTACKS[0]` is unused.
static KSTACKS: [GuardedStack<KSTACK_SIZE>; MAX_CPUS] = [const { GuardedStack::new() }; MAX_CPUS];

const _: () = assert!(core::mem::offset_of!(Paca, pgd) == 0, "pgd_root indexes r13 directly");

/// This CPU's page-table root for `ea`: `pgd[ea >> 60]`, one load indexed off r13 (a
/// `this().pgd[...]` would first copy r13, which the compiler reaches only through asm).
#[inline(always)]
pub fn pgd_root(ea: u64) -> u64 {
    let v: u64;
    // SAFETY: r13 is this CPU's Paca, whose first field is `pgd` (asserted above); the index
    // is (ea >> 60) * 8 < 128. The roots are written before the CPU takes faults.
    unsafe {
        core::arch::asm!("ldx {v}, 13, {o}", v = lateout(reg) v, o = in(reg) (ea >> 60) << 3,
                         options(nostack, readonly, preserves_flags))
    };
    v
}

/// The 8-byte field at offset `OFF` of this CPU's area (`offsets::*`), loaded straight off r13
/// (fault-path reads that `this().field` would precede with a copy of r13).
#[inline(always)]
pub fn load_field<const OFF: usize>() -> u64 {
    const { assert!(OFF.is_multiple_of(8) && OFF + 8 <= core::mem::size_of::<Paca>()) };
    let v: u64;
    // SAFETY: r13 is this CPU's Paca; OFF is 8-aligned and inside it (checked above), and
    // every field is a 64-bit atomic (a plain load is a Relaxed load).
    unsafe {
        core::arch::asm!("ld {v}, {off}(13)", v = lateout(reg) v, off = const OFF, options(nostack, readonly, preserves_flags))
    };
    v
}

/// This CPU's area.
#[inline(always)]
pub fn this() -> &'static Paca {
    // SAFETY: r13 always holds the address of one element of PACA_ARRAY in kernel code
    // (set at entry and by the exception path before any Rust runs).
    unsafe { &*(crate::arch::ppc64::insn::r13() as *const Paca) }
}

#[inline(always)]
pub fn cpu_id() -> usize {
    this().cpu.load(Relaxed) as usize
}

pub fn paca(cpu: usize) -> &'static Paca {
    &PACA_ARRAY[cpu]
}

/// [start, end) of CPU `cpu`'s exception stack.
pub fn exc_stack_bounds(cpu: usize) -> (u64, u64) {
    let base = EXC_STACKS[cpu].base();
    (base, base + EXC_STACK_SIZE as u64)
}

/// [start, end) of CPU `cpu`'s hash stack.
pub fn hash_stack_bounds(cpu: usize) -> (u64, u64) {
    let base = HASH_STACKS[cpu].base();
    (base, base + HASH_STACK_SIZE as u64)
}

pub fn kstack_top(cpu: usize) -> u64 {
    KSTACKS[cpu].base() + KSTACK_SIZE as u64
}

/// The guard pages of every CPU's stacks (linear addresses), for `mm` to unmap.
pub fn guard_pages() -> impl Iterator<Item = (u64, &'static str, usize)> {
    (0..MAX_CPUS).flat_map(|c| {
        [
            (EXC_STACKS[c].guard(), "exception stack", c),
            (HASH_STACKS[c].guard(), "hash stack", c),
            (kstack_guard(c), "kernel stack", c),
        ]
    })
}

/// The guard page below CPU `cpu`'s kernel stack.
fn kstack_guard(cpu: usize) -> u64 {
    extern "C" {
        static boot_stack_guard: u8;
    }
    if cpu == 0 {
        &raw const boot_stack_guard as u64
    } else {
        KSTACKS[cpu].guard()
    }
}

/// The current stack pointer.
#[inline(always)]
pub fn sp() -> u64 {
    let sp: u64;
    // SAFETY: reads r1 only.
    unsafe { core::arch::asm!("mr {}, 1", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Whether `sp` lies on CPU `cpu`'s hash stack, i.e. a hash fault is being handled there.
pub fn on_hash_stack(cpu: usize, sp: u64) -> bool {
    let (b, t) = hash_stack_bounds(cpu);
    sp >= b && sp < t
}

/// Exception nesting depth of this CPU as seen from the current code: the generic exceptions
/// being handled, plus the hash fault if this code runs on the hash stack. 0 = thread context.
pub fn exception_depth() -> u64 {
    let p = this();
    p.depth.load(Relaxed) + on_hash_stack(p.cpu.load(Relaxed) as usize, sp()) as u64
}

/// Fill in the assembly-visible fields for `cpu`.
pub fn init(cpu: usize, toc: u64, exc_common: u64, kmsr: u64, slb_size: u64, bolted: u64) {
    let p = paca(cpu);
    let (b, t) = exc_stack_bounds(cpu);
    p.exc_base.store(b, Relaxed);
    p.exc_top.store(t, Relaxed);
    let (_, ht) = hash_stack_bounds(cpu);
    let frame = ht - crate::arch::ppc64::exception::FRAME_TOTAL as u64;
    p.hash_frame.store(frame, Relaxed);
    // The hash frame only ever holds a 0x300: the entry does not spend an instruction on it.
    // SAFETY: the frame lies in this CPU's hash stack, unused until the CPU takes a hash fault
    // (it is not running yet, or this is early boot on the boot CPU).
    unsafe {
        (*((frame + crate::arch::ppc64::exception::HDR_SIZE as u64) as *mut crate::arch::ppc64::exception::ExcFrame))
            .trap = 0x300
    };
    p.toc.store(toc, Relaxed);
    p.exc_common.store(exc_common, Relaxed);
    p.kmsr.store(kmsr, Relaxed);
    p.cpu.store(cpu as u64, Relaxed);
    p.slb_size.store(slb_size, Relaxed);
    p.slb_next.store(bolted, Relaxed);
}

/// The stack guard page `ea` lies in, named.
pub fn guard_page_of(ea: u64) -> Option<(&'static str, usize)> {
    guard_pages().find(|&(va, _, _)| ea >= va && ea < va + GUARD_SIZE as u64).map(|(_, what, cpu)| (what, cpu))
}
