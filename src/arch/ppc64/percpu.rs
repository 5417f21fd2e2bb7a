//! The per-CPU area (like Linux's PACA): addressed by SPRG0 in the exception vectors and by
//! r13 in kernel code. Its first fields are used by assembly (boot/vectors.S) through offsets
//! exported from here, so the layout has one definition.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const MAX_CPUS: usize = 8;
pub const EXC_STACK_SIZE: usize = 64 * 1024;
pub const KSTACK_SIZE: usize = 128 * 1024;

/// Per-CPU state. Every field is an atomic so a shared `&'static Paca` is sound; the
/// assembly-visible ones are plain 64-bit words at fixed offsets (see `offsets`).
#[repr(C, align(256))]
pub struct Paca {
    /// r9, r10, r11, r12, CTR of the interrupted context, parked by the vector.
    pub scratch: [AtomicU64; 6],
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
    /// Exception nesting depth (0 = thread context).
    pub depth: AtomicU64,
    /// Address of the innermost exception frame, for watchdog and oops reports.
    pub last_frame: AtomicU64,
    /// Time base at the last sign of progress (watchdog heartbeat).
    pub heartbeat: AtomicU64,
    /// Set while this CPU is inside a probe that may fault (see exception.rs).
    pub probe_fault: [AtomicU64; 4],
    pub online: AtomicU64,
    /// Address of the lock this CPU is spinning on (0 = none), for deadlock reports.
    pub spinning_on: AtomicU64,
    /// Kernel r1 saved by user_enter while a test runs in problem state (0 = none).
    pub user_sp: AtomicU64,
    /// Consecutive hash faults that found BUSY (the holder may be a preempted vCPU).
    pub busy_streak: AtomicU64,
    /// Where the 0x300 vector jumps: exc_common, or hash_fast under hash_page=asm.
    pub t300: AtomicU64,
    /// hash_fast's save area (r0, r3-r8, CR; r8, r9, r12, XER, SRR0, SRR1 across its hcall).
    pub fast_save: [AtomicU64; 14],
    /// HPT hash mask, this CPU's counter row and the page-table roots, for hash_fast.
    pub hash_mask: AtomicU64,
    pub stats_row: AtomicU64,
    pub pt_roots: AtomicU64,
}

impl Paca {
    pub const fn new() -> Paca {
        Paca {
            scratch: [const { AtomicU64::new(0) }; 6],
            exc_common: AtomicU64::new(0),
            exc_base: AtomicU64::new(0),
            exc_top: AtomicU64::new(0),
            toc: AtomicU64::new(0),
            kmsr: AtomicU64::new(0),
            cpu: AtomicU64::new(0),
            slb_next: AtomicU64::new(0),
            slb_size: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            last_frame: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            probe_fault: [const { AtomicU64::new(0) }; 4],
            online: AtomicU64::new(0),
            spinning_on: AtomicU64::new(0),
            user_sp: AtomicU64::new(0),
            busy_streak: AtomicU64::new(0),
            t300: AtomicU64::new(0),
            fast_save: [const { AtomicU64::new(0) }; 14],
            hash_mask: AtomicU64::new(0),
            stats_row: AtomicU64::new(0),
            pt_roots: AtomicU64::new(0),
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
    pub const SCRATCH: usize = offset_of!(Paca, scratch);
    pub const EXC_COMMON: usize = offset_of!(Paca, exc_common);
    pub const EXC_BASE: usize = offset_of!(Paca, exc_base);
    pub const EXC_TOP: usize = offset_of!(Paca, exc_top);
    pub const TOC: usize = offset_of!(Paca, toc);
    pub const KMSR: usize = offset_of!(Paca, kmsr);
    pub const USER_SP: usize = offset_of!(Paca, user_sp);
    pub const T300: usize = offset_of!(Paca, t300);
    pub const FAST_SAVE: usize = offset_of!(Paca, fast_save);
    pub const HASH_MASK: usize = offset_of!(Paca, hash_mask);
    pub const STATS_ROW: usize = offset_of!(Paca, stats_row);
    pub const PT_ROOTS: usize = offset_of!(Paca, pt_roots);
    pub const DEPTH: usize = offset_of!(Paca, depth);
}

#[no_mangle]
pub static PACA_ARRAY: [Paca; MAX_CPUS] = [const { Paca::new() }; MAX_CPUS];

#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

/// Exception stacks, one per CPU, in the bolted linear mapping (the fault paths run here).
pub static mut EXC_STACKS: [Stack<EXC_STACK_SIZE>; MAX_CPUS] = [const { Stack([0; EXC_STACK_SIZE]) }; MAX_CPUS];
/// Kernel (thread) stacks of the secondary CPUs; CPU 0 runs on the boot stack.
pub static mut KSTACKS: [Stack<KSTACK_SIZE>; MAX_CPUS] = [const { Stack([0; KSTACK_SIZE]) }; MAX_CPUS];

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

/// Bounds of CPU `cpu`'s exception stack.
pub fn exc_stack_bounds(cpu: usize) -> (u64, u64) {
    // SAFETY: only the address is taken; the memory is handed to assembly as a stack.
    let base = unsafe { core::ptr::addr_of!(EXC_STACKS[cpu]) } as u64;
    (base, base + EXC_STACK_SIZE as u64)
}

pub fn kstack_top(cpu: usize) -> u64 {
    // SAFETY: only the address is taken.
    let base = unsafe { core::ptr::addr_of!(KSTACKS[cpu]) } as u64;
    base + KSTACK_SIZE as u64
}

/// Fill in the assembly-visible fields for `cpu`.
pub fn init(cpu: usize, toc: u64, exc_common: u64, kmsr: u64, slb_size: u64, bolted: u64) {
    let p = paca(cpu);
    let (b, t) = exc_stack_bounds(cpu);
    p.exc_base.store(b, Relaxed);
    p.exc_top.store(t, Relaxed);
    p.toc.store(toc, Relaxed);
    p.exc_common.store(exc_common, Relaxed);
    p.t300.store(exc_common, Relaxed);
    p.kmsr.store(kmsr, Relaxed);
    p.cpu.store(cpu as u64, Relaxed);
    p.slb_size.store(slb_size, Relaxed);
    p.slb_next.store(bolted, Relaxed);
}
