//! Trace points that cost one `nop` while their group is off (Linux's static keys, done by
//! hand). A trace point is a `nop` in the instruction stream plus, out of line in
//! `.text.trace_stubs`, a stub of its own; `.trace_sites` lists (nop address, stub address,
//! code). Switching a group on patches each of its nops into a `b stub`; the stub stores the
//! registers that hold the event's values, calls `trace_stub_common` (which saves every other
//! register the ABI lets a callee clobber, plus CR, CTR and XER) and branches back to the
//! instruction after the nop. So the compiler sees only a `nop` that reads a few registers:
//! nothing is clobbered, no call is visible, and the code around a trace point is the code it
//! would be without one.
//!
//! The stub's frame lies below the interrupted code's 288-byte protected zone (ELFv2), so a
//! trace point may sit in a leaf function that keeps data there (the hash-fault path does).
//! Stubs run in any context a trace point can be reached from: thread, interrupt, the hash
//! fault (EE = RI = 0), real mode (the kernel's addresses work untranslated, the top nibble
//! being ignored there).

/// Bytes below the interrupted stack pointer that a stub uses: its save area plus the
/// protected zone it must not touch.
pub const STUB_FRAME: usize = 560;
const _: () = assert!(STUB_FRAME.is_multiple_of(16) && STUB_FRAME >= 288 + 112 + 20 * 8);

/// The text of one trace point, for an `asm!` template: `$x`, `$y`, `$z` are the registers
/// whose values the event records (`"{name}"` for an operand, `"3"` for r3, `"0"` for none),
/// `$hi`/`$lo` the names of two `const` operands holding the trace code's halves
/// (`trace::code`). Labels 90 and 91 are local to the point, so an asm block may hold several
/// points, but must not use those numbers itself.
#[cfg(not(any(feature = "trace-points-none", feature = "trace-points-double")))]
#[macro_export]
macro_rules! trace_site_asm {
    ($hi:literal, $lo:literal, $x:literal, $y:literal, $z:literal) => {
        $crate::trace_site_text!("90: nop\n", $hi, $lo, $x, $y, $z)
    };
}

/// scripts/trace-cost.sh's build with two nops per trace point: against the normal build, the
/// extra instructions on a path are the number of trace points it passes.
#[cfg(feature = "trace-points-double")]
#[macro_export]
macro_rules! trace_site_asm {
    ($hi:literal, $lo:literal, $x:literal, $y:literal, $z:literal) => {
        $crate::trace_site_text!("nop\n90: nop\n", $hi, $lo, $x, $y, $z)
    };
}

/// scripts/trace-cost.sh's build without trace points: the operands are named in a comment
/// only (asm! wants every operand used), so the code is what it would be without the trace.
#[cfg(feature = "trace-points-none")]
#[macro_export]
macro_rules! trace_site_asm {
    ($hi:literal, $lo:literal, $x:literal, $y:literal, $z:literal) => {
        concat!("# no trace point: ", $x, " ", $y, " ", $z, " {", $hi, "} {", $lo, "}\n")
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! trace_site_text {
    ($nop:literal, $hi:literal, $lo:literal, $x:literal, $y:literal, $z:literal) => {
        concat!(
            $nop,
            ".pushsection .text.trace_stubs, \"ax\", @progbits\n",
            "91: stdu 1, -560(1)\n",
            "std ",
            $x,
            ", 128(1)\n",
            "std ",
            $y,
            ", 136(1)\n",
            "std ",
            $z,
            ", 144(1)\n",
            "std 0, 112(1)\n",
            "mflr 0\n",
            "std 0, 120(1)\n",
            "lis 0, {",
            $hi,
            "}\n",
            "ori 0, 0, {",
            $lo,
            "}\n",
            "bl trace_stub_common\n",
            "ld 0, 120(1)\n",
            "mtlr 0\n",
            "ld 0, 112(1)\n",
            "addi 1, 1, 560\n",
            "b 90b + 4\n",
            ".popsection\n",
            ".pushsection .trace_sites, \"a\", @progbits\n",
            ".balign 8\n",
            ".quad 90b, 91b, {",
            $hi,
            "} * 65536 + {",
            $lo,
            "}\n",
            ".popsection\n",
        )
    };
}

/// A trace point in Rust code: `trace_point!(code, x [, y [, z]])` records event `code`
/// (`trace::code(Event, c)`, a constant) with the values x, y, z (anything `as u64` gives).
/// Off: one `nop`, and the values must be in registers there (pass values the code has at
/// hand — a pointer rather than fields loaded from it).
#[cfg(not(feature = "trace-points-none"))]
#[macro_export]
macro_rules! trace_point {
    ($code:expr, $x:expr) => {
        $crate::trace_point!(@asm $code, "{x}", "0", "0", x = in(reg) $x as u64)
    };
    ($code:expr, $x:expr, $y:expr) => {
        $crate::trace_point!(@asm $code, "{x}", "{y}", "0", x = in(reg) $x as u64, y = in(reg) $y as u64)
    };
    ($code:expr, $x:expr, $y:expr, $z:expr) => {
        $crate::trace_point!(@asm $code, "{x}", "{y}", "{z}", x = in(reg) $x as u64, y = in(reg) $y as u64, z = in(reg) $z as u64)
    };
    (@asm $code:expr, $a:literal, $b:literal, $c:literal, $($ops:tt)*) => {
        // SAFETY: a `nop`, or (tracing on) a branch to this point's stub, which saves and
        // restores every register it touches below the protected zone and returns to the
        // next instruction (see trace::site). It writes only the trace ring, which no code
        // around a trace point reads: to this code the asm only reads registers.
        unsafe {
            core::arch::asm!(
                $crate::trace_site_asm!("tc_hi", "tc_lo", $a, $b, $c),
                $($ops)*,
                tc_hi = const ($code as u32 >> 16),
                tc_lo = const ($code as u32 & 0xffff),
                options(nostack, readonly, preserves_flags),
            )
        }
    };
}

/// scripts/trace-cost.sh's build without trace points: nothing, not even the values.
#[cfg(feature = "trace-points-none")]
#[macro_export]
macro_rules! trace_point {
    ($($t:tt)*) => {
        ()
    };
}

// The common part of every stub. In: r1 = the stub's frame (header at 0..112, then r0 at 112,
// the stub's LR at 120, the three values at 128..152), r0 = the trace code. Saves r3-r12, CR,
// CTR, XER and its own return address in the frame, calls `trace_from_site(code, x, y, z)`
// with the header as the callee's ABI header, restores everything and returns to the stub.
core::arch::global_asm!(
    ".section .text.trace_stubs, \"ax\", @progbits",
    ".balign 16",
    ".globl trace_stub_common",
    ".type trace_stub_common, @function",
    "trace_stub_common:",
    "std 3, 160(1)",
    "std 4, 168(1)",
    "std 5, 176(1)",
    "std 6, 184(1)",
    "std 7, 192(1)",
    "std 8, 200(1)",
    "std 9, 208(1)",
    "std 10, 216(1)",
    "std 11, 224(1)",
    "std 12, 232(1)",
    "mfcr 3",
    "std 3, 240(1)",
    "mfctr 3",
    "std 3, 248(1)",
    "mfxer 3",
    "std 3, 256(1)",
    "mflr 3",
    "std 3, 152(1)",
    "mr 3, 0",
    "ld 4, 128(1)",
    "ld 5, 136(1)",
    "ld 6, 144(1)",
    "bl trace_from_site",
    "ld 3, 152(1)",
    "mtlr 3",
    "ld 3, 256(1)",
    "mtxer 3",
    "ld 3, 248(1)",
    "mtctr 3",
    "ld 3, 240(1)",
    "mtcrf 0xff, 3",
    "ld 3, 160(1)",
    "ld 4, 168(1)",
    "ld 5, 176(1)",
    "ld 6, 184(1)",
    "ld 7, 192(1)",
    "ld 8, 200(1)",
    "ld 9, 208(1)",
    "ld 10, 216(1)",
    "ld 11, 224(1)",
    "ld 12, 232(1)",
    "blr",
    ".size trace_stub_common, . - trace_stub_common",
    // The call the 0x300 entry is patched to while exceptions or hash_page are traced,
    // assembled so that the linker resolves the local entry point (ELFv2: r2 is already the
    // TOC there, r12 is not the function's address). Never executed.
    ".globl trace_hash_fault_call",
    "trace_hash_fault_call:",
    "bl do_hash_fault_traced",
);

/// One entry of `.trace_sites` (the layout `trace_site_asm!` emits).
#[repr(C)]
pub struct Site {
    /// The `nop`.
    pub at: u64,
    /// Its stub.
    pub stub: u64,
    /// `trace::code`: the event and its static payload.
    pub code: u64,
}

extern "C" {
    static __trace_sites_start: Site;
    static __trace_sites_end: Site;
    static trace_hash_fault_call: u32;
}

/// Every trace point in the kernel.
pub fn sites() -> &'static [Site] {
    // SAFETY: the linker script collects exactly the `.trace_sites` entries, each three
    // aligned words, between these symbols.
    unsafe {
        let s = &raw const __trace_sites_start;
        let e = &raw const __trace_sites_end;
        core::slice::from_raw_parts(s, e.offset_from(s) as usize)
    }
}

pub const NOP: u32 = 0x6000_0000;

/// `b target` at `at` (I-form, AA = LK = 0); both in the kernel, well within ±32 MiB.
pub fn branch(at: u64, target: u64) -> u32 {
    let d = target.wrapping_sub(at) as i64;
    debug_assert!((-(1 << 25)..(1 << 25)).contains(&d) && d & 3 == 0);
    0x4800_0000 | (d as u32 & 0x03ff_fffc)
}

/// Where the I-form branch `insn` at `at` goes.
pub fn branch_target(at: u64, insn: u32) -> u64 {
    at.wrapping_add((((insn & 0x03ff_fffc) << 6) as i32 >> 6) as i64 as u64)
}

/// Writes one instruction word of kernel text and makes it visible to instruction fetch.
///
/// # Safety
/// `at` must be a kernel text word whose old and new contents are both valid at any moment a
/// CPU may fetch it (a `nop` and a branch to a stub that returns to the next word are).
pub unsafe fn patch(at: u64, insn: u32) {
    // SAFETY: delegated: an aligned word of the bolted, writable kernel text.
    unsafe {
        if core::ptr::read_volatile(at as *const u32) != insn {
            core::ptr::write_volatile(at as *mut u32, insn);
            crate::arch::ppc64::insn::sync_icache(at, 4);
        }
    }
}

/// The local entry of `do_hash_fault_traced` (decoded from the assembled call).
pub fn traced_hash_entry() -> u64 {
    let at = &raw const trace_hash_fault_call as u64;
    // SAFETY: one aligned word of kernel text (never executed).
    branch_target(at, unsafe { core::ptr::read_volatile(at as *const u32) })
}

/// Whether the trace point at `s` is on (patched to its stub).
pub fn is_on(s: &Site) -> bool {
    // SAFETY: `s.at` is a word of kernel text.
    unsafe { core::ptr::read_volatile(s.at as *const u32) == branch(s.at, s.stub) }
}

pub fn count_on() -> usize {
    sites().iter().filter(|s| is_on(s)).count()
}
