//! PCI discovery from the device tree, and configuration space through RTAS (pseries has no
//! ECAM: `ibm,read-pci-config` / `ibm,write-pci-config` are the only way in).
//!
//! Two halves:
//! * `probe_serial` runs in REAL MODE before quiesce, through the Open Firmware client
//!   interface: it only reads properties into stack buffers (no heap exists yet) and records
//!   what it found in `BootInfo::pci_serial`.
//! * `enable_io_bar0` runs later (translation on, RTAS usable): it programs BAR0 when the
//!   firmware left it unassigned (VOF), turns on I/O decoding (SLOF assigns the BAR but leaves
//!   decoding off) and returns the CPU physical address of the registers.
//!
//! The property decoding is pure (`dt`) and host-tested.

/// Pure decoding of the PCI bus binding (IEEE 1275 PCI bus binding, rev 2.1): a PCI address is
/// three cells `phys.hi phys.mid phys.lo`, where
/// `phys.hi = npt000ss bbbbbbbb dddddfff rrrrrrrr` (n: non-relocatable, p: prefetchable,
/// t: aliased, ss: space code 00 config / 01 I/O / 10 MMIO32 / 11 MMIO64, b: bus,
/// d: device, f: function, r: register number).
pub mod dt {
    pub const SPACE_CONFIG: u32 = 0;
    pub const SPACE_IO: u32 = 1;
    pub const SPACE_MEM32: u32 = 2;
    pub const SPACE_MEM64: u32 = 3;
    /// Config-space offset of BAR0.
    pub const BAR0: u32 = 0x10;

    /// Big-endian cell `i` of a property buffer (None past its end).
    pub fn cell(buf: &[u8], i: usize) -> Option<u32> {
        let b = buf.get(i * 4..i * 4 + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` cells starting at `i` as one number (n = 1 or 2; more cells keep the low 64 bits).
    pub fn cells(buf: &[u8], i: usize, n: usize) -> Option<u64> {
        let mut v = 0u64;
        for k in 0..n {
            v = (v << 32) | cell(buf, i + k)? as u64;
        }
        Some(v)
    }

    pub fn space(phys_hi: u32) -> u32 {
        (phys_hi >> 24) & 3
    }

    pub fn register(phys_hi: u32) -> u32 {
        phys_hi & 0xff
    }

    /// The config address RTAS wants: bus<<16 | devfn<<8 (register bits cleared).
    pub fn config_addr(phys_hi: u32) -> u32 {
        phys_hi & 0x00ff_ff00
    }

    /// One entry of a PHB's `ranges`: child (PCI) address, parent (CPU) address, size.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Range {
        pub phys_hi: u32,
        pub pci: u64,
        pub cpu: u64,
        pub size: u64,
    }

    /// The first range of space `want` in a PHB's `ranges` (child #address-cells is 3 for PCI;
    /// `parent_na` is the root's #address-cells, `ns` the PHB's #size-cells).
    pub fn find_range(ranges: &[u8], parent_na: usize, ns: usize, want: u32) -> Option<Range> {
        let stride = 3 + parent_na + ns;
        let n = ranges.len() / 4 / stride;
        (0..n).map(|e| e * stride).find_map(|i| {
            let hi = cell(ranges, i)?;
            if space(hi) != want {
                return None;
            }
            Some(Range {
                phys_hi: hi,
                pci: cells(ranges, i + 1, 2)?,
                cpu: cells(ranges, i + 3, parent_na)?,
                size: cells(ranges, i + 3 + parent_na, ns)?,
            })
        })
    }

    /// In a `reg` or `assigned-addresses` property (entries of 3 address + `ns` size cells):
    /// the entry for config register `reg` in space `want` → (phys.hi, PCI address, size).
    pub fn find_bar(prop: &[u8], ns: usize, reg: u32, want: u32) -> Option<(u32, u64, u64)> {
        let stride = 3 + ns;
        let n = prop.len() / 4 / stride;
        (0..n).map(|e| e * stride).find_map(|i| {
            let hi = cell(prop, i)?;
            if register(hi) != reg || space(hi) != want {
                return None;
            }
            Some((hi, cells(prop, i + 1, 2)?, cells(prop, i + 3, ns)?))
        })
    }

    /// Is this a single 16550-compatible UART? QEMU's pci-serial is 1b36:0002; any device with
    /// class 07/00 (serial controller) and programming interface 02 (16550) also qualifies.
    pub fn is_16550(vendor: u32, device: u32, class: u32) -> bool {
        (vendor == 0x1b36 && device == 0x0002) || class == 0x07_00_02
    }

    /// Where to put an unassigned I/O BAR of `size` bytes inside a window of PCI I/O addresses
    /// [base, base+wsize): past the legacy ISA range (the first 4 KiB), naturally aligned.
    pub fn choose_io_bar(base: u64, wsize: u64, size: u64) -> Option<u64> {
        if size == 0 || !size.is_power_of_two() {
            return None;
        }
        let want = (base + 0x1000).next_multiple_of(size);
        let fallback = base.next_multiple_of(size);
        [want, fallback]
            .into_iter()
            .find(|&a| a.checked_add(size).is_some_and(|e| e <= base + wsize) && a <= u32::MAX as u64)
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::dt;
    use crate::arch::ppc64::boot::{BootInfo, PciSerialInfo};
    use crate::arch::ppc64::of::{self, Of, Phandle};
    use crate::arch::ppc64::rtas::{self, RtasError};
    use core::fmt;

    pub const PCI_COMMAND: u32 = 0x04;
    pub const PCI_COMMAND_IO: u32 = 0x1;

    fn prop<'a>(of: &Of, ph: Phandle, name: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let n = of.getprop(ph, name, buf)?;
        Some(&buf[..n.min(buf.len())])
    }

    fn is_device_type(of: &Of, ph: Phandle, ty: &[u8]) -> bool {
        let mut dt = [0u8; 16];
        let n = of::prop_str(of, ph, b"device_type", &mut dt);
        &dt[..n] == ty
    }

    crate::early_probe!(probe_serial);

    /// Finds the PCI host bridges below the root (device_type "pci") and the first 16550 UART
    /// directly behind one of them. REAL MODE, before quiesce, no heap: only OF calls and stack
    /// buffers.
    pub fn probe_serial(of: &Of, bi: &mut BootInfo) {
        let mut ps = PciSerialInfo::default();
        let Some(root) = of.finddevice(b"/") else { return };
        let root_na = of.getprop_u32(root, b"#address-cells").unwrap_or(2) as usize;
        let mut buf = [0u8; 256];
        let mut phb = of.child(root);
        while let Some(h) = phb {
            phb = of.peer(h);
            if !is_device_type(of, h, b"pci") {
                continue;
            }
            ps.phbs += 1;
            if ps.present {
                continue;
            }
            let ns = of.getprop_u32(h, b"#size-cells").unwrap_or(2) as usize;
            if of.getprop_u32(h, b"#address-cells").unwrap_or(3) != 3
                || !(1..=2).contains(&ns)
                || !(1..=2).contains(&root_na)
            {
                continue;
            }
            // The BUID is the PHB's unit address: its `reg` (root #address-cells wide).
            let Some(buid) = prop(of, h, b"reg", &mut buf).and_then(|r| dt::cells(r, 0, root_na)) else { continue };
            let Some(io) = prop(of, h, b"ranges", &mut buf).and_then(|r| dt::find_range(r, root_na, ns, dt::SPACE_IO))
            else {
                continue;
            };
            let mut child = of.child(h);
            while let Some(c) = child {
                child = of.peer(c);
                let vendor = of.getprop_u32(c, b"vendor-id").unwrap_or(u32::MAX);
                let device = of.getprop_u32(c, b"device-id").unwrap_or(u32::MAX);
                let class = of.getprop_u32(c, b"class-code").unwrap_or(0);
                if !dt::is_16550(vendor, device, class) {
                    continue;
                }
                let Some(reg) = prop(of, c, b"reg", &mut buf) else { continue };
                let Some(cfg_hi) = dt::cell(reg, 0) else { continue };
                let Some((_, _, bar_size)) = dt::find_bar(reg, ns, dt::BAR0, dt::SPACE_IO) else { continue };
                ps.assigned_bar0 = prop(of, c, b"assigned-addresses", &mut buf)
                    .and_then(|a| dt::find_bar(a, ns, dt::BAR0, dt::SPACE_IO))
                    .map(|(_, addr, _)| addr);
                ps.present = true;
                ps.buid = buid;
                ps.io_window = io.cpu;
                ps.io_window_size = io.size;
                ps.io_pci_base = io.pci;
                ps.config_addr = dt::config_addr(cfg_hi);
                ps.bar0_size = bar_size;
                ps.vendor = vendor;
                ps.device = device;
                ps.class = class;
                ps.path_len = of.package_to_path(c, &mut ps.path);
                break;
            }
        }
        bi.pci_serial = ps;
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PciError {
        Rtas {
            what: &'static str,
            err: RtasError,
        },
        /// Config dword 0 does not hold the vendor/device the device tree named.
        WrongDevice {
            expected: u32,
            found: u32,
        },
        NoRoomForBar {
            window: u64,
            size: u64,
        },
        BarReadback {
            wrote: u32,
            read: u32,
        },
        DecodeOff {
            command: u32,
        },
        /// The BAR lies outside the bridge's I/O window.
        OutsideWindow {
            bar: u64,
        },
    }

    impl fmt::Display for PciError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match *self {
                PciError::Rtas { what, err } => write!(f, "{what}: {err}"),
                PciError::WrongDevice { expected, found } => {
                    write!(f, "config dword 0 is {found:#010x}, the device tree says {expected:#010x}")
                }
                PciError::NoRoomForBar { window, size } => {
                    write!(f, "no room for a {size}-byte I/O BAR in a {window:#x}-byte I/O window")
                }
                PciError::BarReadback { wrote, read } => {
                    write!(f, "BAR0 reads back {read:#x} after writing {wrote:#x}")
                }
                PciError::DecodeOff { command } => write!(f, "I/O decoding still off (COMMAND {command:#06x})"),
                PciError::OutsideWindow { bar } => write!(f, "BAR0 {bar:#x} is outside the bridge's I/O window"),
            }
        }
    }

    pub fn cfg_read(ps: &PciSerialInfo, reg: u32, size: u32) -> Result<u32, RtasError> {
        rtas::read_pci_config(ps.buid, ps.config_addr | reg, size)
    }

    pub fn cfg_write(ps: &PciSerialInfo, reg: u32, size: u32, val: u32) -> Result<(), RtasError> {
        rtas::write_pci_config(ps.buid, ps.config_addr | reg, size, val)
    }

    /// BAR0 as programmed and where it appears in CPU physical space.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct IoBar {
        /// PCI I/O address (the BAR value without its flag bits).
        pub pci: u64,
        pub size: u64,
        /// CPU physical address of the registers.
        pub phys: u64,
        /// false: the kernel chose and wrote the address (VOF); true: the firmware did (SLOF).
        pub by_firmware: bool,
    }

    /// Checks the device, assigns BAR0 if the firmware did not, enables I/O decoding, and
    /// returns where the registers are.
    pub fn enable_io_bar0(ps: &PciSerialInfo) -> Result<IoBar, PciError> {
        let rt = |what: &'static str| move |err| PciError::Rtas { what, err };
        let id = cfg_read(ps, 0, 4).map_err(rt("ibm,read-pci-config(vendor/device)"))?;
        let expected = (ps.device << 16) | (ps.vendor & 0xffff);
        if id != expected && (ps.vendor != u32::MAX) {
            return Err(PciError::WrongDevice { expected, found: id });
        }
        let (pci, by_firmware) = match ps.assigned_bar0 {
            Some(a) => (a, true),
            None => {
                let a = dt::choose_io_bar(ps.io_pci_base, ps.io_window_size, ps.bar0_size)
                    .ok_or(PciError::NoRoomForBar { window: ps.io_window_size, size: ps.bar0_size })?;
                cfg_write(ps, dt::BAR0, 4, a as u32).map_err(rt("ibm,write-pci-config(BAR0)"))?;
                (a, false)
            }
        };
        let bar = cfg_read(ps, dt::BAR0, 4).map_err(rt("ibm,read-pci-config(BAR0)"))?;
        // An I/O BAR reads back with bit 0 set; bit 1 is reserved.
        if bar & 1 == 0 || (bar & !3) as u64 != pci {
            return Err(PciError::BarReadback { wrote: pci as u32, read: bar });
        }
        if pci < ps.io_pci_base || pci + ps.bar0_size > ps.io_pci_base + ps.io_window_size {
            return Err(PciError::OutsideWindow { bar: pci });
        }
        let cmd = cfg_read(ps, PCI_COMMAND, 2).map_err(rt("ibm,read-pci-config(COMMAND)"))?;
        if cmd & PCI_COMMAND_IO == 0 {
            cfg_write(ps, PCI_COMMAND, 2, cmd | PCI_COMMAND_IO).map_err(rt("ibm,write-pci-config(COMMAND)"))?;
        }
        let cmd = cfg_read(ps, PCI_COMMAND, 2).map_err(rt("ibm,read-pci-config(COMMAND)"))?;
        if cmd & PCI_COMMAND_IO == 0 {
            return Err(PciError::DecodeOff { command: cmd });
        }
        Ok(IoBar { pci, size: ps.bar0_size, phys: ps.io_window + (pci - ps.io_pci_base), by_firmware })
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::dt::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    #[test]
    fn pseries_phb_ranges() {
        // QEMU 7.2 pseries PHB0 `ranges` (root #address-cells 2, PHB #size-cells 2).
        let r = be(&[
            0x0100_0000,
            0,
            0,
            0x2000,
            0,
            0,
            0x1_0000,
            0x0200_0000,
            0,
            0x8000_0000,
            0x2000,
            0x8000_0000,
            0,
            0x8000_0000,
            0x0300_0000,
            0x2100,
            0,
            0x2100,
            0,
            0x100,
            0,
        ]);
        let io = find_range(&r, 2, 2, SPACE_IO).unwrap();
        assert_eq!(io, Range { phys_hi: 0x0100_0000, pci: 0, cpu: 0x2000_0000_0000, size: 0x1_0000 });
        let m32 = find_range(&r, 2, 2, SPACE_MEM32).unwrap();
        assert_eq!((m32.pci, m32.cpu, m32.size), (0x8000_0000, 0x2000_8000_0000, 0x8000_0000));
        assert_eq!(find_range(&r, 2, 2, SPACE_MEM64).unwrap().size, 1 << 40);
        assert_eq!(find_range(&r[..20], 2, 2, SPACE_IO), None); // truncated entry
    }

    #[test]
    fn serial_reg_and_assigned_addresses() {
        // VOF: reg = config entry + BAR0 I/O, size 8; no assigned-addresses.
        let reg = be(&[0, 0, 0, 0, 0, 0x0100_0010, 0, 0, 0, 8]);
        assert_eq!(config_addr(cell(&reg, 0).unwrap()), 0);
        assert_eq!(find_bar(&reg, 2, BAR0, SPACE_IO), Some((0x0100_0010, 0, 8)));
        assert_eq!(find_bar(&reg, 2, 0x14, SPACE_IO), None);
        // SLOF: assigned-addresses = <81000010 0 10 0 8>.
        let aa = be(&[0x8100_0010, 0, 0x10, 0, 8]);
        assert_eq!(find_bar(&aa, 2, BAR0, SPACE_IO), Some((0x8100_0010, 0x10, 8)));
        // Device 3 function 1 on bus 2.
        assert_eq!(config_addr(0x0102_1910), 0x02_1900);
    }

    #[test]
    fn identifies_16550() {
        assert!(is_16550(0x1b36, 2, 0x070002));
        assert!(is_16550(0x1234, 0x5678, 0x070002));
        assert!(!is_16550(0x1b36, 3, 0x070001));
        assert!(!is_16550(0x1af4, 0x1000, 0x020000));
    }

    #[test]
    fn io_bar_placement() {
        assert_eq!(choose_io_bar(0, 0x1_0000, 8), Some(0x1000));
        assert_eq!(choose_io_bar(0, 0x1000, 8), Some(0)); // window too small for the ISA skip
        assert_eq!(choose_io_bar(0x100, 0x800, 0x100), Some(0x100));
        assert_eq!(choose_io_bar(0, 4, 8), None);
        assert_eq!(choose_io_bar(0, 0x1_0000, 6), None);
    }
}
