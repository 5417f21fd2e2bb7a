//! OPAL, skiboot's runtime interface on powernv: what RTAS and the hypercalls are on pseries.
//! The kernel uses it for the console, power-off, LPC I/O (QEMU's `isa-debug-exit`), starting
//! CPUs and IPMI messages to the BMC (the watchdog pre-timeout NMI that stops CPUs).
//!
//! Every call goes through `opal_call` (boot/opal.S), which drops into real mode for it and
//! comes back in the caller's mode; pointers OPAL dereferences are physical (`of::pa` of a
//! linear-zone address). The status codes are pure and host-tested.

/// OPAL call tokens (skiboot include/opal-api.h).
pub mod token {
    pub const CONSOLE_WRITE: u64 = 1;
    pub const CEC_POWER_DOWN: u64 = 5;
    pub const POLL_EVENTS: u64 = 10;
    pub const START_CPU: u64 = 41;
    pub const QUERY_CPU_STATUS: u64 = 42;
    pub const LPC_READ: u64 = 67;
    pub const LPC_WRITE: u64 = 68;
    pub const IPMI_SEND: u64 = 107;
    pub const IPMI_RECV: u64 = 108;
}

/// `OpalLPCAddressType::OPAL_LPC_IO`.
pub const LPC_IO: u64 = 1;
/// `OPAL_IPMI_MSG_FORMAT_VERSION_1`.
pub const IPMI_MSG_VERSION: u8 = 1;

/// A non-success OPAL status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpalError {
    Parameter,
    Busy,
    Partial,
    Hardware,
    Unsupported,
    BusyEvent,
    Empty,
    Other(i64),
}

impl OpalError {
    /// `Ok` for OPAL_SUCCESS (0), the named error otherwise.
    pub const fn check(rc: i64) -> Result<(), OpalError> {
        Err(match rc {
            0 => return Ok(()),
            -1 => OpalError::Parameter,
            -2 => OpalError::Busy,
            -3 => OpalError::Partial,
            -6 => OpalError::Hardware,
            -7 => OpalError::Unsupported,
            -12 => OpalError::BusyEvent,
            -16 => OpalError::Empty,
            rc => OpalError::Other(rc),
        })
    }

    /// Worth asking again after `poll_events`.
    pub const fn is_busy(self) -> bool {
        matches!(self, OpalError::Busy | OpalError::BusyEvent)
    }
}

impl core::fmt::Display for OpalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpalError::Parameter => f.write_str("OPAL_PARAMETER"),
            OpalError::Busy => f.write_str("OPAL_BUSY"),
            OpalError::Partial => f.write_str("OPAL_PARTIAL"),
            OpalError::Hardware => f.write_str("OPAL_HARDWARE"),
            OpalError::Unsupported => f.write_str("OPAL_UNSUPPORTED"),
            OpalError::BusyEvent => f.write_str("OPAL_BUSY_EVENT"),
            OpalError::Empty => f.write_str("OPAL_EMPTY"),
            OpalError::Other(rc) => write!(f, "OPAL status {rc}"),
        }
    }
}

/// An IPMI request as OPAL_IPMI_SEND takes it: version, netfn << 2 (LUN 0), command, data.
/// Returns the bytes and their length.
pub fn ipmi_request(netfn: u8, cmd: u8, data: &[u8]) -> ([u8; 32], usize) {
    let mut m = [0u8; 32];
    let n = data.len().min(29);
    m[0] = IPMI_MSG_VERSION;
    m[1] = netfn << 2;
    m[2] = cmd;
    m[3..3 + n].copy_from_slice(&data[..n]);
    (m, 3 + n)
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::*;
    use crate::arch::ppc64::of::pa;
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// OPAL base and entry (r8/r9 at kernel entry); boot/opal.S loads them from here.
    #[no_mangle]
    pub static OPAL_FW: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

    extern "C" {
        fn opal_call(token: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64;
    }

    pub fn init(base: u64, entry: u64) {
        OPAL_FW[0].store(base, Relaxed);
        OPAL_FW[1].store(entry, Relaxed);
    }

    pub fn base() -> u64 {
        OPAL_FW[0].load(Relaxed)
    }

    /// The raw call: the status.
    #[inline(never)]
    pub fn call(token: u64, a: [u64; 6]) -> i64 {
        // SAFETY: opal_call follows the ELFv2 calling convention (boot/opal.S); OPAL only
        // writes memory the arguments point to, which each wrapper below passes as physical
        // addresses of buffers it owns for the duration of the call.
        let rc = unsafe { opal_call(token, a[0], a[1], a[2], a[3], a[4], a[5]) };
        crate::smp::after_firmware_call();
        rc
    }

    pub fn poll_events() {
        let _ = call(token::POLL_EVENTS, [0; 6]);
    }

    /// Writes to OPAL console 0 (the LPC UART), giving OPAL a poll when its buffer is full.
    pub fn console_write(mut s: &[u8]) {
        #[repr(C, align(8))]
        struct Buf {
            len: u64,
            data: [u8; 64],
        }
        let mut b = Buf { len: 0, data: [0; 64] };
        while !s.is_empty() {
            let n = s.len().min(b.data.len());
            b.data[..n].copy_from_slice(&s[..n]);
            let (mut off, mut stalls) = (0, 0);
            while off < n && stalls < 10_000 {
                b.len = (n - off) as u64;
                let len = core::ptr::addr_of_mut!(b.len);
                let rc = call(token::CONSOLE_WRITE, [0, pa(len), pa(b.data[off..].as_ptr()), 0, 0, 0]);
                // SAFETY: OPAL wrote the count it took through the exposed address.
                let wrote = if rc == 0 { (unsafe { core::ptr::read_volatile(len) } as usize).min(n - off) } else { 0 };
                off += wrote;
                if off < n {
                    stalls += 1;
                    poll_events();
                }
            }
            s = &s[n..];
        }
    }

    /// Asks the BMC to power the machine off (QEMU then exits with status 0). Returns only if
    /// it cannot (no BMC).
    pub fn power_down() -> OpalError {
        let mut tries = 0;
        loop {
            match OpalError::check(call(token::CEC_POWER_DOWN, [0; 6])) {
                Ok(()) => break,
                Err(e) if e.is_busy() && tries < 1_000_000 => {
                    tries += 1;
                    poll_events()
                }
                Err(e) => return e,
            }
        }
        // The request is queued for the BMC; OPAL's pollers deliver it.
        let start = crate::arch::ppc64::insn::mftb();
        while crate::arch::ppc64::insn::mftb().wrapping_sub(start) < 10 * 512_000_000 {
            poll_events();
        }
        OpalError::Hardware
    }

    pub fn lpc_write_io(addr: u32, data: u32, size: u32) -> Result<(), OpalError> {
        OpalError::check(call(token::LPC_WRITE, [0, LPC_IO, addr as u64, data as u64, size as u64, 0]))
    }

    pub fn lpc_read_io(addr: u32, size: u32) -> Result<u32, OpalError> {
        #[repr(C, align(8))]
        struct V(u32);
        let mut v = V(0);
        let p = core::ptr::addr_of_mut!(v.0);
        OpalError::check(call(token::LPC_READ, [0, LPC_IO, addr as u64, pa(p), size as u64, 0]))?;
        // SAFETY: OPAL wrote the value (big-endian, in the low bytes) through the physical
        // address of `v`, which the call exposed.
        let x = unsafe { core::ptr::read_volatile(p) };
        Ok(if size >= 4 { x } else { x & ((1 << (8 * size)) - 1) })
    }

    /// Starts thread `pir` at physical address `entry` (real mode, r3 = its PIR).
    pub fn start_cpu(pir: u32, entry: u64) -> Result<(), OpalError> {
        OpalError::check(call(token::START_CPU, [pir as u64, entry, 0, 0, 0, 0]))
    }

    /// OPAL's view of thread `pir`: 0 = not present, 1 = in OPAL (available), 2 = started, ...
    pub fn query_cpu_status(pir: u32) -> Result<u8, OpalError> {
        #[repr(C, align(8))]
        struct S(u8);
        let mut s = S(0xff);
        let p = core::ptr::addr_of_mut!(s.0);
        OpalError::check(call(token::QUERY_CPU_STATUS, [pir as u64, pa(p), 0, 0, 0, 0]))?;
        // SAFETY: as in lpc_read_io.
        Ok(unsafe { core::ptr::read_volatile(p) })
    }

    /// Sends one IPMI request to the BMC and waits for its answer (completion code first).
    /// Returns the response bytes and their count.
    pub fn ipmi(
        interface: u32,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        timeout_tb: u64,
    ) -> Result<([u8; 32], usize), OpalError> {
        #[repr(C, align(8))]
        struct Msg([u8; 32]);
        let (req, n) = ipmi_request(netfn, cmd, data);
        let mut m = Msg(req);
        OpalError::check(call(token::IPMI_SEND, [interface as u64, pa(core::ptr::addr_of!(m.0)), n as u64, 0, 0, 0]))?;
        let start = crate::arch::ppc64::insn::mftb();
        loop {
            #[repr(C, align(8))]
            struct Len(u64);
            let mut len = Len(m.0.len() as u64);
            m.0 = [0; 32];
            m.0[0] = IPMI_MSG_VERSION;
            let (pm, pl) = (core::ptr::addr_of_mut!(m.0), core::ptr::addr_of_mut!(len.0));
            match OpalError::check(call(token::IPMI_RECV, [interface as u64, pa(pm), pa(pl), 0, 0, 0])) {
                Ok(()) => {
                    // SAFETY: OPAL wrote both through their physical addresses, exposed above.
                    let (l, msg) = unsafe { (core::ptr::read_volatile(pl), core::ptr::read_volatile(pm)) };
                    let l = (l as usize).clamp(3, 32);
                    let mut out = [0u8; 32];
                    out[..l - 3].copy_from_slice(&msg[3..l]);
                    return Ok((out, l - 3));
                }
                Err(OpalError::Empty) if crate::arch::ppc64::insn::mftb().wrapping_sub(start) < timeout_tb => {
                    poll_events()
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(OpalError::check(0), Ok(()));
        assert_eq!(OpalError::check(-2), Err(OpalError::Busy));
        assert_eq!(OpalError::check(-16), Err(OpalError::Empty));
        assert_eq!(OpalError::check(-99), Err(OpalError::Other(-99)));
        assert!(OpalError::Busy.is_busy() && OpalError::BusyEvent.is_busy() && !OpalError::Empty.is_busy());
    }

    #[test]
    fn ipmi_request_layout() {
        // Set Watchdog Timer: netfn App (6) in the upper six bits, LUN 0.
        let (m, n) = ipmi_request(0x06, 0x24, &[4, 0x21, 1, 0, 10, 0]);
        assert_eq!(&m[..n], &[1, 0x18, 0x24, 4, 0x21, 1, 0, 10, 0]);
    }
}
