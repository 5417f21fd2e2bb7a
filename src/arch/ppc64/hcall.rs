//! PAPR hypervisor calls (`sc 1`), typed: arguments and results as Rust values, return codes as
//! a `Result` with named errors. The HPT belongs to the hypervisor on pseries, so these are the
//! only way the kernel touches it.

use core::arch::asm;
use core::fmt;

pub const H_REMOVE: u64 = 0x04;
pub const H_ENTER: u64 = 0x08;
pub const H_READ: u64 = 0x0c;
pub const H_PROTECT: u64 = 0x18;
pub const H_PUT_TERM_CHAR: u64 = 0x58;
pub const H_EOI: u64 = 0x64;
pub const H_CPPR: u64 = 0x68;
pub const H_IPI: u64 = 0x6c;
pub const H_XIRR: u64 = 0x74;
pub const H_CEDE: u64 = 0xe0;
pub const H_CONFER: u64 = 0xe4;
pub const H_PROD: u64 = 0xe8;
pub const H_SET_MODE: u64 = 0x31c;
pub const KVMPPC_H_RTAS: u64 = 0xf000;

/// H_ENTER/H_READ flag: use exactly the given PTE index.
pub const H_EXACT: u64 = 1 << (63 - 24);
/// H_READ flag: read 4 consecutive entries.
pub const H_READ_4: u64 = 1 << (63 - 26);
/// H_REMOVE/H_PROTECT flag: only act if the AVPN matches.
pub const H_AVPN: u64 = 1 << (63 - 32);
/// H_REMOVE flag: only act if (v & avpn) == 0 (used with the BOLTED bit as the mask).
pub const H_ANDCOND: u64 = 1 << (63 - 33);

/// A hypervisor refusal, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HcallError {
    Busy,
    Hardware,
    Function,
    Privilege,
    Parameter,
    BadMode,
    PtegFull,
    NotFound,
    Other(i64),
}

impl HcallError {
    pub fn from_rc(rc: i64) -> HcallError {
        match rc {
            1 => HcallError::Busy,
            -1 => HcallError::Hardware,
            -2 => HcallError::Function,
            -3 => HcallError::Privilege,
            -4 => HcallError::Parameter,
            -5 => HcallError::BadMode,
            -6 => HcallError::PtegFull,
            -7 => HcallError::NotFound,
            x => HcallError::Other(x),
        }
    }
}

impl fmt::Display for HcallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HcallError::Busy => f.write_str("H_BUSY"),
            HcallError::Hardware => f.write_str("H_HARDWARE"),
            HcallError::Function => f.write_str("H_FUNCTION"),
            HcallError::Privilege => f.write_str("H_PRIVILEGE"),
            HcallError::Parameter => f.write_str("H_PARAMETER"),
            HcallError::BadMode => f.write_str("H_BAD_MODE"),
            HcallError::PtegFull => f.write_str("H_PTEG_FULL"),
            HcallError::NotFound => f.write_str("H_NOT_FOUND"),
            HcallError::Other(rc) => write!(f, "hcall status {rc}"),
        }
    }
}

pub type HResult<T> = Result<T, HcallError>;

/// Raw hypercall: returns (status, r4..r7).
#[inline(always)]
pub fn hcall(op: u64, a: [u64; 4]) -> (i64, [u64; 4]) {
    let (r3, r4, r5, r6, r7): (u64, u64, u64, u64, u64);
    // SAFETY: `sc 1` transfers to the hypervisor, which may clobber r0, r3-r12, all of CR, CTR
    // and XER (PAPR) — all declared; the calls this kernel makes write guest memory only where
    // the typed wrapper passes a buffer it owns (RTAS).
    unsafe {
        asm!("sc 1",
             inlateout("r3") op => r3,
             inlateout("r4") a[0] => r4,
             inlateout("r5") a[1] => r5,
             inlateout("r6") a[2] => r6,
             inlateout("r7") a[3] => r7,
             out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
             out("cr0") _, out("cr1") _, out("cr2") _, out("cr3") _, out("cr4") _, out("cr5") _, out("cr6") _, out("cr7") _,
             out("ctr") _, out("xer") _,
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
        asm!("sc 1",
             inlateout("r3") op => r3,
             inlateout("r4") a[0] => r4,
             inlateout("r5") a[1] => r5,
             lateout("r6") r6, lateout("r7") r7, lateout("r8") r8, lateout("r9") r9,
             lateout("r10") r10, lateout("r11") r11,
             out("r0") _, out("r12") _,
             out("cr0") _, out("cr1") _, out("cr2") _, out("cr3") _, out("cr4") _, out("cr5") _, out("cr6") _, out("cr7") _,
             out("ctr") _, out("xer") _,
             options(nostack))
    };
    (r3 as i64, [r4, r5, r6, r7, r8, r9, r10, r11])
}

fn check(rc: i64) -> HResult<()> {
    if rc == 0 { Ok(()) } else { Err(HcallError::from_rc(rc)) }
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

pub fn h_prod(cpu: u64) -> HResult<()> {
    check(hcall(H_PROD, [cpu, 0, 0, 0]).0)
}

/// KVMPPC_H_RTAS: run an RTAS call described by the buffer at physical address `args_pa`.
pub fn h_rtas(args_pa: u64) -> HResult<()> {
    check(hcall(KVMPPC_H_RTAS, [args_pa, 0, 0, 0]).0)
}
