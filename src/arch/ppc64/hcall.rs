//! PAPR hypervisor calls (`sc 1`), typed: arguments and results as Rust values, return codes as
//! a `Result` with named errors. The HPT belongs to the hypervisor on pseries, so these are the
//! only way the kernel touches it.

use crate::trace::event::{code, Event};
use core::arch::asm;

pub use super::papr::*;

// Trace points around every call (`trace::site`: a `nop` each while hypercalls are not
// traced): the begin sees the number in r3 and the first arguments, the end the status and r4.
const BEGIN: u32 = code(Event::HcallBegin, 0);
const END: u32 = code(Event::HcallEnd, 0);

pub type HResult<T> = Result<T, HcallError>;

/// Raw hypercall: returns (status, r4..r7).
#[inline(always)]
pub fn hcall(op: u64, a: [u64; 4]) -> (i64, [u64; 4]) {
    let (r3, r4, r5, r6, r7): (u64, u64, u64, u64, u64);
    // SAFETY: `sc 1` transfers to the hypervisor, which may clobber r0, r3-r12, all of CR, CTR
    // and XER (PAPR) — all declared; the calls this kernel makes write guest memory only where
    // the typed wrapper passes a buffer it owns (RTAS). The trace points preserve every
    // register (trace::site).
    unsafe {
        asm!(crate::trace_site_asm!("b_hi", "b_lo", "3", "4", "5"),
             "sc 1",
             crate::trace_site_asm!("e_hi", "e_lo", "3", "4", "0"),
             inlateout("r3") op => r3,
             inlateout("r4") a[0] => r4,
             inlateout("r5") a[1] => r5,
             inlateout("r6") a[2] => r6,
             inlateout("r7") a[3] => r7,
             out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
             out("cr0") _, out("cr1") _, out("cr2") _, out("cr3") _, out("cr4") _, out("cr5") _, out("cr6") _, out("cr7") _,
             out("ctr") _, out("xer") _,
             b_hi = const BEGIN >> 16, b_lo = const BEGIN & 0xffff, e_hi = const END >> 16, e_lo = const END & 0xffff,
             options(nostack))
    };
    (r3 as i64, [r4, r5, r6, r7])
}

/// Same, for calls that return up to 8 values (H_READ with H_READ_4).
#[inline(always)]
pub fn hcall8(op: u64, a: [u64; 2]) -> (i64, [u64; 8]) {
    let (r3, r4, r5, r6, r7, r8, r9, r10, r11): (u64, u64, u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: as `hcall`.
    unsafe {
        asm!(crate::trace_site_asm!("b_hi", "b_lo", "3", "4", "5"),
             "sc 1",
             crate::trace_site_asm!("e_hi", "e_lo", "3", "4", "0"),
             inlateout("r3") op => r3,
             inlateout("r4") a[0] => r4,
             inlateout("r5") a[1] => r5,
             lateout("r6") r6, lateout("r7") r7, lateout("r8") r8, lateout("r9") r9,
             lateout("r10") r10, lateout("r11") r11,
             out("r0") _, out("r12") _,
             out("cr0") _, out("cr1") _, out("cr2") _, out("cr3") _, out("cr4") _, out("cr5") _, out("cr6") _, out("cr7") _,
             out("ctr") _, out("xer") _,
             b_hi = const BEGIN >> 16, b_lo = const BEGIN & 0xffff, e_hi = const END >> 16, e_lo = const END & 0xffff,
             options(nostack))
    };
    (r3 as i64, [r4, r5, r6, r7, r8, r9, r10, r11])
}

/// `sc 1` for the hash-fault path, keeping CR2-CR4 itself: PAPR lets the hypervisor clobber
/// all of CR, and a function that makes an hcall would otherwise have to save those three
/// fields (non-volatile in the ELFv2 ABI) in its prologue for the whole function. Here only
/// the call keeps them, in this CPU's `hcall_cr` word: four instructions on the call's path
/// and none elsewhere. Returns (status, r4).
///
/// Only for code that runs with interrupts off (the hash fault): an interrupt between the
/// store and the load whose handler made the same kind of call would overwrite the word.
///
/// One trace point after the call (its number is part of the point's code), so a traced
/// fault path pays one `nop` per call while hypercalls are not traced.
#[inline(always)]
fn hcall_keep_cr<const OP: u64>(a: [u64; 4]) -> (i64, u64) {
    let (r3, r4): (u64, u64);
    debug_assert!(!crate::arch::ppc64::irq::enabled(), "hcall_keep_cr with interrupts on");
    // SAFETY: as `hcall`; CR is parked in this CPU's `hcall_cr` word (r13 = per-CPU area) and
    // CR2-CR4 are restored with mtcrf 0x38; the other fields are declared clobbered.
    unsafe {
        asm!("mfcr 0",
             "stw 0, {cr}(13)",
             "sc 1",
             "lwz 0, {cr}(13)",
             "mtcrf 0x38, 0",
             crate::trace_site_asm!("t_hi", "t_lo", "3", "4", "0"),
             cr = const super::percpu::offsets::HCALL_CR,
             t_hi = const code(Event::Hcall, OP as u32) >> 16,
             t_lo = const code(Event::Hcall, OP as u32) & 0xffff,
             inlateout("r3") OP => r3,
             inlateout("r4") a[0] => r4,
             inlateout("r5") a[1] => _,
             inlateout("r6") a[2] => _,
             inlateout("r7") a[3] => _,
             out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
             out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
             out("ctr") _, out("xer") _,
             options(nostack))
    };
    (r3 as i64, r4)
}

/// H_ENTER(0, group, v, r) for the hash-fault path (interrupts off): the raw status (so the
/// caller can test for H_PTEG_FULL first), or the index used.
#[inline(always)]
pub fn h_enter_fault_path(group: u64, v: u64, r: u64) -> Result<u64, i64> {
    match hcall_keep_cr::<H_ENTER>([0, group, v, r]) {
        (0, ptex) => Ok(ptex),
        (rc, _) => Err(rc),
    }
}

/// H_REMOVE(H_ANDCOND, ptex, BOLTED) for the hash-fault path (interrupts off): removes the
/// entry unless it is bolted. Raw status on failure.
#[inline(always)]
pub fn h_remove_unbolted_fault_path(ptex: u64, bolted_bit: u64) -> Result<(), i64> {
    match hcall_keep_cr::<H_REMOVE>([H_ANDCOND, ptex, bolted_bit, 0]) {
        (0, _) => Ok(()),
        (rc, _) => Err(rc),
    }
}

fn check(rc: i64) -> HResult<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(HcallError::from_rc(rc))
    }
}

/// H_ENTER: insert (v, r) into the group at `ptex & !7` (first free slot) or exactly at
/// `ptex` with H_EXACT. Returns the PTE index used.
pub fn h_enter(flags: u64, ptex: u64, v: u64, r: u64) -> HResult<u64> {
    let (rc, o) = hcall(H_ENTER, [flags, ptex, v, r]);
    check(rc).map(|_| o[0])
}

/// H_REMOVE: returns the old (v, r).
pub fn h_remove(flags: u64, ptex: u64, avpn: u64) -> HResult<(u64, u64)> {
    let (rc, o) = hcall(H_REMOVE, [flags, ptex, avpn, 0]);
    check(rc).map(|_| (o[0], o[1]))
}

/// H_READ of one entry: (v, r).
pub fn h_read(ptex: u64) -> HResult<(u64, u64)> {
    let (rc, o) = hcall(H_READ, [0, ptex, 0, 0]);
    check(rc).map(|_| (o[0], o[1]))
}

/// H_READ_4 of four entries starting at `ptex & !3`.
pub fn h_read4(ptex: u64) -> HResult<[(u64, u64); 4]> {
    let (rc, o) = hcall8(H_READ, [H_READ_4, ptex & !3]);
    check(rc).map(|_| [(o[0], o[1]), (o[2], o[3]), (o[4], o[5]), (o[6], o[7])])
}

/// H_PROTECT: rewrite the PP/N (and key) bits of an entry whose AVPN matches.
pub fn h_protect(flags: u64, ptex: u64, avpn: u64) -> HResult<()> {
    check(hcall(H_PROTECT, [flags, ptex, avpn, 0]).0)
}

/// H_PUT_TERM_CHAR on the default vty (0): up to 16 bytes, first byte in the MSB of r6.
pub fn h_put_term_char(bytes: &[u8]) -> HResult<()> {
    debug_assert!(bytes.len() <= 16);
    let mut w = [0u64; 2];
    for (i, b) in bytes.iter().enumerate() {
        w[i / 8] |= (*b as u64) << (56 - 8 * (i % 8));
    }
    check(hcall(H_PUT_TERM_CHAR, [0, bytes.len() as u64, w[0], w[1]]).0)
}

/// H_CEDE: idle until an interrupt arrives (sets MSR[EE]).
pub fn h_cede() {
    let _ = hcall(H_CEDE, [0; 4]);
}

/// H_CONFER(-1): give this vCPU's time to the others (the BUSY holder may be preempted).
pub fn h_confer_all() {
    let _ = hcall(H_CONFER, [u64::MAX, 0, 0, 0]);
}

/// H_SET_MODE(resource 3, mflags 3): deliver interrupts taken with translation on at
/// 0xc000000000004000 + vector, translated (LPCR[AIL] = 3 on every vCPU).
pub fn h_set_mode_ail3() -> HResult<()> {
    check(hcall(H_SET_MODE, [AIL_0XC000000000004000, H_SET_MODE_RESOURCE_ADDR_TRANS_MODE, 0, 0]).0)
}

pub fn h_prod(cpu: u64) -> HResult<()> {
    check(hcall(H_PROD, [cpu, 0, 0, 0]).0)
}

/// KVMPPC_H_RTAS: run an RTAS call described by the buffer at physical address `args_pa`.
pub fn h_rtas(args_pa: u64) -> HResult<()> {
    check(hcall(KVMPPC_H_RTAS, [args_pa, 0, 0, 0]).0)
}
