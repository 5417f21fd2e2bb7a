//! uart:: tests — the PCI 16550 found in the device tree, its BAR programmed through RTAS, the
//! ioremap mapping, and the device itself (MCR loopback). Without a pci-serial (`--no-uart`)
//! the device tests pass after checking that the kernel noticed the absence.

use crate::arch::ppc64::boot;
use crate::drivers::pci::{self, dt, PCI_COMMAND, PCI_COMMAND_IO};
use crate::drivers::uart::{self, Status, UartError};
use crate::ktest::TestResult;
use crate::mm::pte::PteFlags;
use crate::mm::vmalloc::{self, VmError};
use crate::{kassert, kassert_eq, ktest};
use alloc::format;
use alloc::string::String;
use uart_16550::backend::Backend;

const THR: u8 = 0;
const MCR: u8 = 4;
const LSR: u8 = 5;
const MSR: u8 = 6;
const SCR: u8 = 7;
const MCR_LOOP: u8 = 0x10;
const LSR_DR: u8 = 0x01;
const LSR_THRE: u8 = 0x20;

/// Ok(Some(state)) when the UART is up; Ok(None) (skip) when there is no pci-serial at all.
fn live() -> Result<Option<uart::UartState>, String> {
    match uart::status() {
        Status::Up => Ok(Some(uart::state().ok_or("status Up without state")?)),
        Status::Absent => {
            kassert!(!boot::info().pci_serial.present);
            kassert!(!crate::console::UART_ON.load(core::sync::atomic::Ordering::Relaxed));
            crate::println!("  (no pci-serial: device checks skipped)");
            Ok(None)
        }
        s => Err(format!("a pci-serial is in the device tree but the UART is {s:?}")),
    }
}

ktest!("uart", only Pseries, found_in_device_tree);
fn found_in_device_tree() -> TestResult {
    let ps = boot::info().pci_serial;
    if live()?.is_none() {
        kassert!(ps.phbs >= 1, "the probe saw no PCI host bridge at all");
        return Ok(());
    }
    kassert!(ps.present);
    kassert!(dt::is_16550(ps.vendor, ps.device, ps.class), "{:x}:{:x} class {:x}", ps.vendor, ps.device, ps.class);
    kassert_eq!((ps.vendor, ps.device, ps.class), (0x1b36, 0x0002, 0x070002));
    // The BUID is the PHB's unit address, and its I/O window comes from `ranges`.
    let path = ps.path();
    kassert!(path.starts_with(&format!("/pci@{:x}/", ps.buid)), "path {path} vs BUID {:#x}", ps.buid);
    kassert!(path.contains("/serial@") || path.contains("/communication-controller@"), "path {path}");
    kassert_eq!(ps.io_window, 0x2000_0000_0000u64);
    kassert!(ps.io_window_size >= 0x1000, "I/O window {:#x}", ps.io_window_size);
    kassert_eq!(ps.bar0_size, 8u64);
    match boot::info().firmware {
        boot::Firmware::Slof => kassert!(ps.assigned_bar0.is_some(), "SLOF wrote no assigned-addresses"),
        boot::Firmware::Vof => kassert_eq!(ps.assigned_bar0, None),
        boot::Firmware::Opal => {
            return Err("a PCI UART found under skiboot: the kernel has no PCI probe for powernv".into())
        }
    }
    // RTAS sees the same device at that config address.
    let id = pci::cfg_read(&ps, 0, 4).map_err(|e| format!("{e}"))?;
    kassert_eq!(id, (ps.device << 16) | ps.vendor);
    let class = pci::cfg_read(&ps, 0x08, 4).map_err(|e| format!("{e}"))? >> 8;
    kassert_eq!(class, ps.class);
    Ok(())
}

ktest!("uart", only Pseries, bar_programmed);
fn bar_programmed() -> TestResult {
    let Some(st) = live()? else { return Ok(()) };
    let ps = boot::info().pci_serial;
    let bar = pci::cfg_read(&ps, dt::BAR0, 4).map_err(|e| format!("{e}"))?;
    kassert_eq!(bar & 1, 1); // I/O space BAR
    kassert_eq!((bar & !3) as u64, st.bar.pci);
    if let Some(a) = ps.assigned_bar0 {
        kassert_eq!(st.bar.pci, a);
        kassert!(st.bar.by_firmware);
    } else {
        kassert!(!st.bar.by_firmware);
    }
    let cmd = pci::cfg_read(&ps, PCI_COMMAND, 2).map_err(|e| format!("{e}"))?;
    kassert!(cmd & PCI_COMMAND_IO != 0, "I/O decoding off: COMMAND {cmd:#x}");
    kassert_eq!(st.bar.phys, ps.io_window + st.bar.pci - ps.io_pci_base);
    // The registers are reached through the kernel's own ioremap: I/O region, I=1 G=1.
    kassert_eq!(st.virt >> 60, 0xe);
    kassert_eq!(st.virt & 0xfff, st.bar.phys & 0xfff);
    let pte = vmalloc::pte_of(st.virt).ok_or("no PTE for the UART mapping")?;
    kassert!(pte.flags().contains(PteFlags::NO_CACHE | PteFlags::GUARDED | PteFlags::PRESENT), "PTE {pte}");
    kassert_eq!(pte.pfn(), st.bar.phys >> 12);
    // Touch it (scratch register) so hash_page has inserted the HPTE, then check WIMG.
    uart::with_uart(|u| u.spr()).ok_or("UART busy")?;
    let (_, h) = vmalloc::find_hpte(st.virt).ok_or("no HPTE after touching the UART")?;
    kassert_eq!(h.r & 0x78, 0x28); // WIMG = I|G
    kassert_eq!(h.rpn(), st.bar.phys >> 12);
    Ok(())
}

ktest!("uart", only Pseries, loopback);
fn loopback() -> TestResult {
    if live()?.is_none() {
        return Ok(());
    }
    // The crate's self-test: MCR loopback, one byte then a FIFO-full message, read back from RBR.
    uart::with_uart(|u| u.test_loopback()).ok_or("UART busy")?.map_err(|e| format!("test_loopback: {e}"))?;
    // The same by hand through the MMIO backend (stride 1): every byte value class, one at a
    // time, checking LSR before each THR write and RBR read.
    let pattern: &[u8] = b"\x00\xff\x55\xaahashkernel\r\n";
    let r = uart::with_uart(|u| -> Result<(), String> {
        let b = u.backend_mut();
        // SAFETY: register offsets < 8 on our own mapping; MCR is restored below.
        unsafe {
            let old_mcr = b.read(MCR);
            b.write(MCR, old_mcr | MCR_LOOP);
            while b.read(LSR) & LSR_DR != 0 {
                let _ = b.read(THR);
            }
            let mut res = Ok(());
            for (i, &c) in pattern.iter().enumerate() {
                let mut spins = 0;
                while b.read(LSR) & LSR_THRE == 0 && spins < 1_000_000 {
                    spins += 1;
                }
                b.write(THR, c);
                spins = 0;
                while b.read(LSR) & LSR_DR == 0 && spins < 1_000_000 {
                    spins += 1;
                }
                let got = b.read(THR);
                if got != c {
                    res = Err(format!("byte {i}: wrote {c:#04x}, RBR gave {got:#04x}"));
                    break;
                }
            }
            b.write(MCR, old_mcr);
            let _ = b.read(MSR);
            res
        }
    });
    r.ok_or("UART busy")??;
    Ok(())
}

ktest!("uart", only Pseries, registers_after_init);
fn registers_after_init() -> TestResult {
    if live()?.is_none() {
        return Ok(());
    }
    let (dump, fifo, scr_ok) = uart::with_uart(|u| {
        let dump = u.config_register_dump();
        let fifo = u.fifo_enabled();
        let b = u.backend_mut();
        // SAFETY: scratch register, restored.
        let scr_ok = unsafe {
            let old = b.read(SCR);
            b.write(SCR, 0xa5);
            let ok = b.read(SCR) == 0xa5;
            b.write(SCR, old);
            ok
        };
        (dump, fifo, scr_ok)
    })
    .ok_or("UART busy")?;
    kassert_eq!(dump.lcr.bits(), 0x03); // 8-N-1, DLAB clear
    kassert_eq!(dump.mcr.bits(), 0x0b); // DTR | RTS | OUT2, not in loopback
    kassert_eq!(dump.divisor(), 12u16); // 9600 baud from 1.8432 MHz
    kassert_eq!(dump.ier.bits(), 0); // polled: no interrupts
    kassert!(fifo, "FIFOs not enabled (IIR {:#x})", dump.isr.bits());
    kassert!(scr_ok, "scratch register does not hold a value");
    Ok(())
}

ktest!("uart", only Pseries, console_output_reaches_uart);
fn console_output_reaches_uart() -> TestResult {
    if live()?.is_none() {
        kassert!(!crate::console::UART_ON.load(core::sync::atomic::Ordering::Relaxed));
        return Ok(());
    }
    use core::sync::atomic::Ordering::Relaxed;
    let (tx0, drop0) = (uart::TX_BYTES.load(Relaxed), uart::DROPPED.load(Relaxed));
    let line = "uart: console line sent to both consoles";
    crate::println!("{}", line);
    let tx = uart::TX_BYTES.load(Relaxed) - tx0;
    kassert_eq!(tx, line.len() as u64 + 2); // + "\r\n"
    kassert_eq!(uart::DROPPED.load(Relaxed), drop0);
    Ok(())
}

ktest!("uart", ioremap_failure_is_reported);
fn ioremap_failure_is_reported() -> TestResult {
    // RAM is not device memory: ioremap refuses it and the bring-up reports which step failed.
    let e = match uart::map_and_init(0x1000, 8) {
        Ok(_) => return Err("map_and_init of RAM succeeded".into()),
        Err(e) => e,
    };
    kassert!(matches!(e, UartError::Ioremap { phys: 0x1000, err: VmError::IsRam(0x1000) }), "{e:?}");
    let msg = format!("{e}");
    kassert_eq!(msg.as_str(), "ioremap(0x1000, 8) failed: physical 0x1000 is RAM, not device memory");
    // An address past what a PTE can describe fails the same way, not with a crash.
    let e = uart::map_and_init(u64::MAX - 4, 8).err().ok_or("map_and_init of a wrapping range succeeded")?;
    kassert!(matches!(e, UartError::Ioremap { err: VmError::Overflow, .. }), "{e:?}");
    Ok(())
}

ktest!("uart", only Pseries, no_device_behind_mapping_is_not_present);
fn no_device_behind_mapping_is_not_present() -> TestResult {
    // A 16550 that does not answer (unused PCI I/O space) fails init with DeviceNotPresent
    // and leaves no mapping behind.
    let ps = boot::info().pci_serial;
    if !ps.present {
        return Ok(());
    }
    let (_, _, io_areas, io_pages) = vmalloc::usage();
    let empty = ps.io_window + 0x8000; // nothing decodes here
                                       // On purpose, then: uart_16550's presence check reads the scratch register, writes a
                                       // pattern, reads it back and (on the mismatch) restores it — four byte accesses that nothing
                                       // answers and QEMU logs.
    for access in ["read", "write", "read", "write"] {
        crate::ktest::expect_qemu_log(access, empty + SCR as u64, 1);
    }
    match uart::map_and_init(empty, 8) {
        Err(UartError::Init(uart_16550::InitError::DeviceNotPresent)) => {}
        Err(e) => return Err(format!("unexpected error {e}")),
        Ok(_) => return Err("a 16550 answered in empty I/O space".into()),
    }
    kassert_eq!(vmalloc::usage().2, io_areas);
    kassert_eq!(vmalloc::usage().3, io_pages);
    Ok(())
}
