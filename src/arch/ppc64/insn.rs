//! Tiny wrappers around single privileged instructions. Every other module reaches the
//! hardware through these (or through `hcall`), so the inline asm stays in one small place.

use core::arch::asm;

macro_rules! spr_rw {
    ($get:ident, $set:ident, $n:literal) => {
        #[inline(always)]
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading this SPR has no side effects in supervisor state.
            unsafe { asm!(concat!("mfspr {0}, ", $n), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        /// # Safety
        /// The caller must know what writing this SPR does to the running system.
        #[inline(always)]
        pub unsafe fn $set(v: u64) {
            // SAFETY: delegated to the caller (see the function's contract).
            unsafe { asm!(concat!("mtspr ", $n, ", {0}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

macro_rules! spr_r {
    ($get:ident, $n:literal) => {
        #[inline(always)]
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading this SPR has no side effects in supervisor state.
            unsafe { asm!(concat!("mfspr {0}, ", $n), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
    };
}

spr_rw!(mfdec, mtdec, "22");
spr_r!(mfpvr, "287");
spr_rw!(mfmmcr0, mtmmcr0, "795");

/// Reads SPR `N` (hypervisor SPRs included: only on powernv, where the kernel has MSR[HV]).
#[inline(always)]
pub fn mfspr<const N: u16>() -> u64 {
    let v: u64;
    // SAFETY: the callers read SPRs whose reading has no side effects.
    unsafe { asm!("mfspr {0}, {n}", out(reg) v, n = const N, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes SPR `N`.
///
/// # Safety
/// The caller must know what writing this SPR does to the running system.
#[inline(always)]
pub unsafe fn mtspr<const N: u16>(v: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mtspr {n}, {0}", in(reg) v, n = const N, options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn mfmsr() -> u64 {
    let v: u64;
    // SAFETY: mfmsr only reads the MSR.
    unsafe { asm!("mfmsr {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes MSR[EE] and MSR[RI] only (`mtmsrd L=1`): the cheap way to mask interrupts.
#[inline(always)]
pub fn mtmsrd_ee_ri(v: u64) {
    // SAFETY: L=1 changes only EE and RI; a memory clobber keeps accesses on the right side.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) v, options(nostack, preserves_flags)) };
}

/// Time base: 512 MHz on QEMU pseries.
#[inline(always)]
pub fn mftb() -> u64 {
    let v: u64;
    // SAFETY: the time base is readable in any state.
    unsafe { asm!("mftb {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// r13 holds this CPU's per-CPU area whenever kernel code runs (set at entry, restored by
/// every exception return).
#[inline(always)]
pub fn r13() -> u64 {
    let v: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mr {0}, 13", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

#[inline(always)]
pub fn sync() {
    // SAFETY: a barrier.
    unsafe { asm!("sync", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn lwsync() {
    // SAFETY: a barrier.
    unsafe { asm!("lwsync", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn isync() {
    // SAFETY: context synchronisation only.
    unsafe { asm!("isync", options(nostack, preserves_flags)) };
}

/// Lowers SMT priority while spinning (a no-op under TCG, cheap on hardware).
#[inline(always)]
pub fn cpu_relax() {
    // SAFETY: `or 1,1,1` is the architected low-priority hint; no state changes.
    unsafe { asm!("or 1,1,1", "or 2,2,2", options(nomem, nostack, preserves_flags)) };
}

/// Spins here for good (the end of a run that could not end otherwise).
pub fn halt() -> ! {
    loop {
        cpu_relax();
    }
}

/// # Safety
/// Installs a translation; the caller guarantees the entry is correct and does not replace a
/// bolted slot that running code depends on.
#[inline(always)]
pub unsafe fn slbmte(rs: u64, rb: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("slbmte {0}, {1}", "isync", in(reg) rs, in(reg) rb, options(nostack, preserves_flags)) };
}

/// Reads SLB entry `index`: (ESID word, VSID word).
#[inline(always)]
pub fn slbmfe(index: u64) -> (u64, u64) {
    let (e, v): (u64, u64);
    // SAFETY: slbmfee/slbmfev only read the SLB.
    unsafe {
        asm!("slbmfee {0}, {2}", "slbmfev {1}, {2}", out(reg) e, out(reg) v, in(reg) index,
             options(nomem, nostack, preserves_flags))
    };
    (e, v)
}

/// # Safety
/// Invalidates the SLB entry for `ea`; nothing may depend on it being there.
#[inline(always)]
pub unsafe fn slbie(ea: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("slbie {0}", "isync", in(reg) ea, options(nostack, preserves_flags)) };
}

/// Makes instructions just written to [start, start+len) visible to instruction fetch on this
/// CPU (and, through icbi's broadcast, on the others): flush the data cache blocks, invalidate
/// the instruction cache blocks, and discard prefetched instructions.
///
/// # Safety
/// The range must be mapped (or, in real mode, be physical memory) and must hold the
/// instructions the caller means to run.
pub unsafe fn sync_icache(start: u64, len: u64) {
    const BLOCK: u64 = 128;
    let end = start + len;
    let mut a = start & !(BLOCK - 1);
    while a < end {
        // SAFETY: the caller guarantees the range is mapped; dcbst only writes back.
        unsafe { asm!("dcbst 0, {0}", in(reg) a, options(nostack)) };
        a += BLOCK;
    }
    sync();
    let mut a = start & !(BLOCK - 1);
    while a < end {
        // SAFETY: as above; icbi only invalidates.
        unsafe { asm!("icbi 0, {0}", in(reg) a, options(nostack)) };
        a += BLOCK;
    }
    sync();
    isync();
}

// `tdi 0,0,N` traps never (TO = 0): a no-op that an instruction-counting TCG plugin
// (tools/insncount) sees and reads N from. One stub per tag, so the tag can be a run-time value.
core::arch::global_asm!(
    ".section .text.count_marks, \"ax\"",
    ".balign 8",
    ".globl count_marks",
    "count_marks:",
    ".set count_mark_n, 0",
    ".rept 256",
    "tdi 0, 0, count_mark_n",
    "blr",
    ".set count_mark_n, count_mark_n + 1",
    ".endr",
);

/// Tells the instruction-counting plugin that the exceptions this CPU takes from now on belong
/// to measurement `tag` (0: to none). Free without the plugin: one call to a no-op.
#[inline(never)]
pub fn count_mark(tag: u8) {
    extern "C" {
        static count_marks: [u64; 256];
    }
    let stub = &raw const count_marks as u64 + 8 * tag as u64;
    // SAFETY: the stub is `tdi 0,0,tag; blr`: it changes nothing but LR and CTR, declared.
    unsafe {
        asm!("mtctr {s}", "bctrl", s = in(reg) stub, out("ctr") _, out("lr") _, options(nostack, nomem, preserves_flags))
    };
}
