//! RTAS through QEMU's KVMPPC_H_RTAS hypercall (no instantiate-rtas needed): a buffer of
//! big-endian words {token, nargs, nret, args..., rets...} at a physical address.

use super::boot;
use super::hcall;
use crate::arch::ppc64::irq;
use core::sync::atomic::{AtomicBool, Ordering::*};

#[repr(C, align(64))]
struct Buf([u32; 16]);
static mut BUF: Buf = Buf([0; 16]);
static BUSY: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtasError {
    NoToken,
    Hcall(hcall::HcallError),
    Status(i32),
}

impl core::fmt::Display for RtasError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RtasError::NoToken => f.write_str("no such RTAS service in /rtas"),
            RtasError::Hcall(e) => write!(f, "RTAS hcall failed: {e}"),
            RtasError::Status(s) => write!(f, "RTAS status {s}"),
        }
    }
}

/// Calls `token` with `args`; returns the `NRET` outputs after the status word.
pub fn call<const NRET: usize>(token: u32, args: &[u32]) -> Result<[u32; NRET], RtasError> {
    if token == 0 {
        return Err(RtasError::NoToken);
    }
    let saved = irq::save_disable();
    while BUSY.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
        super::insn::cpu_relax();
    }
    // SAFETY: BUSY gives this CPU exclusive use of BUF; interrupts are off so a handler on this
    // CPU cannot re-enter.
    let b = unsafe { &mut *core::ptr::addr_of_mut!(BUF) };
    let nret = NRET + 1;
    b.0[0] = token;
    b.0[1] = args.len() as u32;
    b.0[2] = nret as u32;
    b.0[3..3 + args.len()].copy_from_slice(args);
    for r in &mut b.0[3 + args.len()..3 + args.len() + nret] {
        *r = 0;
    }
    let r = hcall::h_rtas(super::of::pa(b as *const Buf));
    let status = b.0[3 + args.len()] as i32;
    let mut out = [0u32; NRET];
    out.copy_from_slice(&b.0[4 + args.len()..4 + args.len() + NRET]);
    BUSY.store(false, Release);
    irq::restore(saved);
    match r {
        Err(e) => Err(RtasError::Hcall(e)),
        Ok(()) if status != 0 => Err(RtasError::Status(status)),
        Ok(()) => Ok(out),
    }
}

fn tokens() -> Option<boot::RtasTokens> {
    Some(boot::try_info()?.rtas)
}

pub fn power_off() {
    if let Some(t) = tokens() {
        let _ = call::<0>(t.power_off, &[u32::MAX, u32::MAX]);
    }
}

/// `ibm,os-term` with a message: QEMU prints "OS terminated: <msg>" and reports a guest panic.
pub fn os_term(msg: &str) {
    #[repr(C, align(8))]
    struct M([u8; 128]);
    static mut MSG: M = M([0; 128]);
    // SAFETY: only the CPU terminating the machine writes here, once, right before the call.
    let m = unsafe { &mut *core::ptr::addr_of_mut!(MSG) };
    let n = msg.len().min(127);
    m.0[..n].copy_from_slice(&msg.as_bytes()[..n]);
    m.0[n] = 0;
    let token = tokens().map(|t| t.os_term).unwrap_or(0x201f);
    let _ = call::<0>(token, &[super::of::pa(m as *const M) as u32]);
}

pub fn start_cpu(id: u32, entry_pa: u64, r3: u64) -> Result<(), RtasError> {
    let t = tokens().ok_or(RtasError::NoToken)?;
    call::<0>(t.start_cpu, &[id, entry_pa as u32, r3 as u32]).map(|_| ())
}

pub fn query_cpu_stopped_state(id: u32) -> Result<u32, RtasError> {
    let t = tokens().ok_or(RtasError::NoToken)?;
    call::<1>(t.query_cpu_stopped_state, &[id]).map(|r| r[0])
}

pub fn read_pci_config(buid: u64, addr: u32, size: u32) -> Result<u32, RtasError> {
    let t = tokens().ok_or(RtasError::NoToken)?;
    call::<1>(t.read_pci_config, &[addr, (buid >> 32) as u32, buid as u32, size]).map(|r| r[0])
}

pub fn write_pci_config(buid: u64, addr: u32, size: u32, val: u32) -> Result<(), RtasError> {
    let t = tokens().ok_or(RtasError::NoToken)?;
    call::<0>(t.write_pci_config, &[addr, (buid >> 32) as u32, buid as u32, size, val]).map(|_| ())
}
