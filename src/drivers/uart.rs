//! The PCI 16550 UART as a second console.
//!
//! Bring-up (`init`, right after `mm::init`): the device the real-mode probe found in the
//! device tree gets its BAR0 assigned and I/O decoding enabled (drivers/pci.rs); its 8
//! registers, which appear in the PHB's I/O window, are mapped with the kernel's own `ioremap`
//! (cache-inhibited + guarded, faulted in by hash_page on first touch) and driven by the
//! `uart_16550` crate's MMIO backend with stride 1. The crate's `init` (8-N-1, FIFOs on, no
//! interrupts) and its MCR-loopback self-test run before the UART is declared up; from then on
//! `console::out` sends every byte to the vty and here.
//!
//! Why the crate's MMIO backend works on big-endian ppc64: every access is a single byte
//! (`read_volatile`/`write_volatile` of `u8` → `lbz`/`stb`), so byte order never matters, and
//! with stride 1 register N is at base+N exactly as the 16550 in PCI I/O space decodes it; the
//! constructor only checks that base + 7*stride does not overflow, which a 0xe... address
//! passes. It emits no barriers. Under QEMU (TCG) every MMIO access is performed synchronously
//! in program order, so none are needed here. On real POWER hardware the I=1 G=1 mapping keeps
//! loads from being speculative and stores to the device in order, but Linux still brackets
//! each access with `sync`/`twi; isync` (in_8/out_8) to order a register write before a later
//! read; a custom `uart_16550::backend::Backend` doing the same would be the change for real
//! hardware.
//!
//! Locking: the console lock already serialises output, but tests use the device directly, so
//! the UART has its own owner-tracking lock. A CPU that re-enters while it holds it (an oops in
//! the middle of a UART access) drops the UART copy of that output instead of deadlocking; the
//! vty copy is still written.

use crate::arch::ppc64::irq;
use crate::arch::ppc64::{boot, insn, percpu};
use crate::drivers::pci::{self, IoBar, PciError};
use crate::mm::vmalloc::{self, VmError};
use core::cell::UnsafeCell;
use core::fmt;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use uart_16550::backend::MmioBackend;
use uart_16550::{Config, InitError, InvalidAddressError, LoopbackError, Uart16550};

pub type Device = Uart16550<MmioBackend>;

/// Longest line kept whole (longer ones go out in LINE-sized pieces).
const LINE: usize = 1024;

struct Inner {
    dev: Device,
    /// Console bytes not yet sent: whole lines go out together.
    buf: [u8; LINE],
    len: usize,
}

struct Slot(UnsafeCell<Option<Inner>>);
// SAFETY: the device is only reached through `with_uart`, which holds OWNER.
unsafe impl Sync for Slot {}

static UART: Slot = Slot(UnsafeCell::new(None));
const NO_OWNER: u64 = u64::MAX;
static OWNER: AtomicU64 = AtomicU64::new(NO_OWNER);
static STATE: spin::Once<UartState> = spin::Once::new();

/// Bytes the console sent to the UART, and bytes it could not (re-entry, timeout).
pub static TX_BYTES: AtomicU64 = AtomicU64::new(0);
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Status {
    NotProbed = 0,
    Up = 1,
    /// No 16550 in the device tree: the kernel runs on the vty alone.
    Absent = 2,
    /// Present but bring-up failed (reported on the console).
    Failed = 3,
}
static STATUS: AtomicU8 = AtomicU8::new(Status::NotProbed as u8);

pub fn status() -> Status {
    match STATUS.load(Acquire) {
        1 => Status::Up,
        2 => Status::Absent,
        3 => Status::Failed,
        _ => Status::NotProbed,
    }
}

/// Where the live UART is.
#[derive(Clone, Copy, Debug)]
pub struct UartState {
    pub bar: IoBar,
    /// ioremap address of register 0.
    pub virt: u64,
}

pub fn state() -> Option<UartState> {
    STATE.get().copied()
}

#[derive(Debug)]
pub enum UartError {
    Pci(PciError),
    Ioremap { phys: u64, err: VmError },
    Address(InvalidAddressError),
    Init(InitError),
    Loopback(LoopbackError),
}

impl fmt::Display for UartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UartError::Pci(e) => write!(f, "PCI setup failed: {e}"),
            UartError::Ioremap { phys, err } => write!(f, "ioremap({phys:#x}, 8) failed: {err}"),
            UartError::Address(e) => write!(f, "uart_16550 rejected the mapping: {e}"),
            UartError::Init(e) => write!(f, "16550 init failed: {e}"),
            UartError::Loopback(e) => write!(f, "16550 loopback self-test failed: {e}"),
        }
    }
}

/// One byte through the 16550's scratch register (`regs` + 7) and back, the old value restored
/// afterwards: proves that a mapping of the registers reaches the device. Byte accesses only:
/// QEMU's 16550 takes nothing wider (under `-d guest_errors` it logs a wider access as
/// invalid). Returns the byte read back on a mismatch.
///
/// # Safety
/// `regs` must map a live 16550's registers cache-inhibited (an ioremap of its BAR), and no one
/// else may use the scratch register meanwhile (the console never does).
pub unsafe fn scratch_round_trip(regs: u64) -> Result<(), u8> {
    const PATTERN: u8 = 0xa5;
    let scr = (regs + 7) as *mut u8;
    // SAFETY: the caller guarantees `regs` maps the registers; SCR has no side effects.
    let got = unsafe {
        let old = core::ptr::read_volatile(scr);
        core::ptr::write_volatile(scr, PATTERN);
        let got = core::ptr::read_volatile(scr);
        core::ptr::write_volatile(scr, old);
        got
    };
    if got == PATTERN {
        Ok(())
    } else {
        Err(got)
    }
}

/// Brings the UART up and makes it a second console. Never fails the boot: without a
/// pci-serial, or when anything goes wrong, one line says so and the vty carries on alone.
pub fn init() {
    let ps = boot::info().pci_serial;
    if !ps.present {
        STATUS.store(Status::Absent as u8, Release);
        crate::println!("uart: no pci-serial (16550) in the device tree ({} PCI host bridge(s) probed); console stays on the hypervisor vty only", ps.phbs);
        return;
    }
    let r = pci::enable_io_bar0(&ps).map_err(UartError::Pci).and_then(|bar| {
        let (virt, dev) = map_and_init(bar.phys, bar.size)?;
        Ok((UartState { bar, virt }, dev))
    });
    match r {
        Ok((st, dev)) => {
            // SAFETY: nobody else can reach the slot yet: UART_ON is still false and STATE unset.
            unsafe { *UART.0.get() = Some(Inner { dev, buf: [0; LINE], len: 0 }) };
            STATE.call_once(|| st);
            STATUS.store(Status::Up as u8, Release);
            crate::console::set_sink(write_bytes);
            crate::println!(
                "uart: 16550 {} ({:04x}:{:04x}) BAR0 I/O {:#x} ({}) = PA {:#x} at {:#x}; console on vty + UART",
                ps.path(),
                ps.vendor,
                ps.device,
                st.bar.pci,
                if st.bar.by_firmware { "firmware-assigned" } else { "assigned by the kernel" },
                st.bar.phys,
                st.virt
            );
        }
        Err(e) => {
            STATUS.store(Status::Failed as u8, Release);
            crate::println!(
                "uart: {} found but not usable: {}; console stays on the hypervisor vty only",
                ps.path(),
                e
            );
        }
    }
}

/// Maps [phys, phys+size) with ioremap and brings a 16550 up there (init + loopback test).
/// On failure the mapping is undone and the error says which step failed.
pub fn map_and_init(phys: u64, size: u64) -> Result<(u64, Device), UartError> {
    let virt = vmalloc::ioremap(phys, size).map_err(|err| UartError::Ioremap { phys, err })?;
    let r = (|| {
        let addr = NonZeroUsize::new(virt as usize).ok_or(UartError::Ioremap { phys, err: VmError::ZeroSize })?;
        // SAFETY: [virt, virt+8) is our cache-inhibited guarded mapping of the UART's
        // registers, live until iounmap, and no one else has it.
        let mut dev = unsafe { Uart16550::new_mmio_from_address(addr, 1) }.map_err(UartError::Address)?;
        dev.init(Config::default()).map_err(UartError::Init)?;
        dev.test_loopback().map_err(UartError::Loopback)?;
        Ok(dev)
    })();
    match r {
        Ok(dev) => Ok((virt, dev)),
        Err(e) => {
            let _ = vmalloc::iounmap(virt);
            Err(e)
        }
    }
}

/// Runs `f` on the UART with this CPU owning it and interrupts masked. None if the UART is not
/// up, this CPU already owns it (re-entry), or another CPU held it for over a second.
fn with_inner<R>(f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
    if status() != Status::Up {
        return None;
    }
    let me = percpu::cpu_id() as u64;
    if OWNER.load(Acquire) == me {
        return None;
    }
    let saved = irq::save_disable();
    let start = insn::mftb();
    while OWNER.compare_exchange_weak(NO_OWNER, me, Acquire, Relaxed).is_err() {
        insn::cpu_relax();
        if insn::mftb().wrapping_sub(start) > 512_000_000 {
            irq::restore(saved);
            return None;
        }
    }
    // SAFETY: OWNER makes this CPU the only one in here, and re-entry was refused above.
    let r = unsafe { (*UART.0.get()).as_mut().map(f) };
    OWNER.store(NO_OWNER, Release);
    irq::restore(saved);
    r
}

/// Runs `f` on the device itself (after sending any buffered console output), with the UART
/// owned by this CPU and interrupts masked. `f` must not print: console output meanwhile
/// would be dropped from the UART copy.
pub fn with_uart<R>(f: impl FnOnce(&mut Device) -> R) -> Option<R> {
    with_inner(|i| {
        i.flush();
        f(&mut i.dev)
    })
}

impl Inner {
    /// Sends `b` (bounded: a transmitter that never drains must not hang the console).
    fn tx(&mut self, b: &[u8]) {
        let mut rest = b;
        let start = insn::mftb();
        while !rest.is_empty() {
            let n = self.dev.send_bytes(rest);
            rest = &rest[n..];
            if n == 0 && insn::mftb().wrapping_sub(start) > 51_200_000 {
                break;
            }
        }
        TX_BYTES.fetch_add((b.len() - rest.len()) as u64, Relaxed);
        DROPPED.fetch_add(rest.len() as u64, Relaxed);
    }

    fn flush(&mut self) {
        let (buf, n) = (self.buf, self.len);
        self.len = 0;
        self.tx(&buf[..n]);
    }
}

/// Console hook: queues `b` (the console already turned '\n' into "\r\n") and sends whole
/// lines only, so a terminal that shows both consoles (`--uart-stdio`) gets each line twice
/// rather than the two copies interleaved piece by piece (a line printed by several `print!`s
/// goes out at its newline). The bytes and their order are exactly the vty's.
pub fn write_bytes(b: &[u8]) {
    let done = with_inner(|i| {
        for chunk in b.chunks(LINE) {
            if i.len + chunk.len() > LINE {
                i.flush();
            }
            i.buf[i.len..i.len + chunk.len()].copy_from_slice(chunk);
            i.len += chunk.len();
        }
        if b.ends_with(b"\n") {
            i.flush();
        }
    });
    if done.is_none() {
        DROPPED.fetch_add(b.len() as u64, Relaxed);
    }
}

/// Sends what `write_bytes` queued (a partial line).
pub fn flush() {
    let _ = with_inner(|i| i.flush());
}
