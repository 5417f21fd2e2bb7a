//! The flattened device tree skiboot hands the kernel on powernv (r3 at entry, like Linux's
//! OPAL boot), read once in real mode with the `fdt` crate into the facts the kernel needs.
//! Pure: the host tests read a tree captured from QEMU 7.2's powernv8 under skiboot v7.0
//! (`testdata/skiboot-powernv8-smp2.dtb`, dumped with gdb at the kernel's entry).
//!
//! On pseries the same facts come through the Open Firmware client interface (`of.rs`); the
//! hardware-owned facts (the HPT size) are the kernel's own choice here, see
//! `mm::hpte::native_hpt_shift`.

use fdt::Fdt;

/// CPUs the kernel keeps (the rest are counted but not started); equals `percpu::MAX_CPUS`.
pub const MAX_CPUS: usize = 8;
/// Distinct firmware-reserved physical ranges kept after merging.
pub const MAX_RESERVED: usize = 8;

/// What the kernel reads from skiboot's tree.
#[derive(Clone, Debug)]
pub struct FdtFacts {
    pub model: [u8; 40],
    /// End of the highest `/memory@...` range.
    pub mem_end: u64,
    /// Interrupt-server numbers (= PIR on POWER8) of the first `MAX_CPUS` threads, boot CPU first.
    pub cpu_ids: [u32; MAX_CPUS],
    pub ncpus: usize,
    /// Threads in `/cpus`, all of them.
    pub cpus_in_tree: usize,
    /// The first CPU node's name without its unit address (`PowerPC,POWER8`).
    pub cpu_name: [u8; 40],
    pub slb_size: u32,
    pub tb_freq: u64,
    pub dec_bits: u32,
    pub bootargs: [u8; 512],
    pub bootargs_len: usize,
    /// Physical ranges the firmware keeps (its code, heap, stacks, ...): sorted, merged,
    /// [start, end).
    pub reserved: [(u64, u64); MAX_RESERVED],
    pub nreserved: usize,
    /// `/ibm,opal/ipmi` `ibm,ipmi-interface-id`: OPAL can talk to a BMC.
    pub ipmi_interface: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// Not a flattened device tree (bad magic or truncated header).
    Invalid,
    /// A node the kernel cannot do without.
    Missing(&'static str),
    /// More distinct reserved ranges than `MAX_RESERVED`.
    TooManyReserved,
}

impl core::fmt::Display for FdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdtError::Invalid => f.write_str("not a flattened device tree"),
            FdtError::Missing(what) => write!(f, "the device tree has no {what}"),
            FdtError::TooManyReserved => write!(f, "more than {MAX_RESERVED} distinct reserved memory ranges"),
        }
    }
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn copy_str(dst: &mut [u8], s: &str) -> usize {
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
    n
}

/// Adds [start, end) to the sorted, merged list `list[..*n]`.
pub fn add_reserved(
    list: &mut [(u64, u64); MAX_RESERVED],
    n: &mut usize,
    start: u64,
    end: u64,
) -> Result<(), FdtError> {
    if end <= start {
        return Ok(());
    }
    let (mut s, mut e) = (start, end);
    // Absorb every range that overlaps or touches [s, e), then insert the union in order.
    let mut out = [(0u64, 0u64); MAX_RESERVED];
    let mut m = 0;
    for &(a, b) in &list[..*n] {
        if b < s || a > e {
            out[m] = (a, b);
            m += 1;
        } else {
            s = s.min(a);
            e = e.max(b);
        }
    }
    if m == MAX_RESERVED {
        return Err(FdtError::TooManyReserved);
    }
    let pos = out[..m].iter().position(|&(a, _)| a > s).unwrap_or(m);
    out.copy_within(pos..m, pos + 1);
    out[pos] = (s, e);
    *list = out;
    *n = m + 1;
    Ok(())
}

/// Reads the facts out of the tree in `blob`.
pub fn read(blob: &[u8]) -> Result<FdtFacts, FdtError> {
    let t = Fdt::new(blob).map_err(|_| FdtError::Invalid)?;
    let mut f = FdtFacts {
        model: [0; 40],
        mem_end: 0,
        cpu_ids: [0; MAX_CPUS],
        ncpus: 0,
        cpus_in_tree: 0,
        cpu_name: [0; 40],
        slb_size: 0,
        tb_freq: 0,
        dec_bits: 32,
        bootargs: [0; 512],
        bootargs_len: 0,
        reserved: [(0, 0); MAX_RESERVED],
        nreserved: 0,
        ipmi_interface: None,
    };
    let root = t.find_node("/").ok_or(FdtError::Missing("root node"))?;
    if let Some(m) = root.property("model").and_then(|p| p.as_str()) {
        copy_str(&mut f.model, m);
    }

    // Memory: every node with device_type "memory"; skiboot's root has 2 address and 2 size
    // cells.
    for n in t.all_nodes() {
        if n.property("device_type").and_then(|p| p.as_str()) == Some("memory") {
            if let Some(regs) = n.reg() {
                for r in regs {
                    f.mem_end = f.mem_end.max(r.starting_address as u64 + r.size.unwrap_or(0) as u64);
                }
            }
        }
    }
    if f.mem_end == 0 {
        return Err(FdtError::Missing("/memory"));
    }

    // CPUs: one node per core; its threads are its interrupt servers. The boot CPU (the
    // header's boot_cpuid_phys) goes first: the kernel numbers it 0.
    let boot = be32(&blob[28..]).unwrap_or(0);
    let cpus = t.find_node("/cpus").ok_or(FdtError::Missing("/cpus"))?;
    let mut ids = [0u32; 64];
    let mut nids = 0;
    for c in cpus.children() {
        if c.property("device_type").and_then(|p| p.as_str()) != Some("cpu") {
            continue;
        }
        if f.cpus_in_tree == 0 {
            copy_str(&mut f.cpu_name, c.name.split('@').next().unwrap_or(c.name));
            let u32p = |name: &str| c.property(name).and_then(|p| be32(p.value));
            f.slb_size = u32p("ibm,slb-size").unwrap_or(32);
            f.tb_freq = u32p("timebase-frequency").unwrap_or(512_000_000) as u64;
            f.dec_bits = u32p("ibm,dec-bits").unwrap_or(32);
        }
        let servers = c.property("ibm,ppc-interrupt-server#s").map(|p| p.value).unwrap_or(&[]);
        let reg = c.property("reg").and_then(|p| be32(p.value)).unwrap_or(0);
        let n = (servers.len() / 4).max(1);
        for i in 0..n {
            let id = if servers.len() >= 4 { be32(&servers[4 * i..]).unwrap_or(reg) } else { reg };
            if nids < ids.len() {
                ids[nids] = id;
                nids += 1;
            }
            f.cpus_in_tree += 1;
        }
    }
    if nids == 0 {
        return Err(FdtError::Missing("CPU node"));
    }
    if let Some(b) = ids[..nids].iter().position(|&id| id == boot) {
        ids[..=b].rotate_right(1);
    }
    f.ncpus = nids.min(MAX_CPUS);
    f.cpu_ids[..f.ncpus].copy_from_slice(&ids[..f.ncpus]);

    if let Some(a) = t.find_node("/chosen").and_then(|c| c.property("bootargs")).and_then(|p| p.as_str()) {
        f.bootargs_len = copy_str(&mut f.bootargs, a);
    }

    // Reserved memory, from all three places a tree can name it.
    for r in t.memory_reservations() {
        add_reserved(&mut f.reserved, &mut f.nreserved, r.address() as u64, r.address() as u64 + r.size() as u64)?;
    }
    if let Some(p) = root.property("reserved-ranges") {
        for pair in p.value.chunks_exact(16) {
            let (a, s) = (be64(pair).unwrap_or(0), be64(&pair[8..]).unwrap_or(0));
            add_reserved(&mut f.reserved, &mut f.nreserved, a, a + s)?;
        }
    }
    if let Some(rm) = t.find_node("/reserved-memory") {
        for c in rm.children() {
            if let Some(regs) = c.reg() {
                for r in regs {
                    let a = r.starting_address as u64;
                    add_reserved(&mut f.reserved, &mut f.nreserved, a, a + r.size.unwrap_or(0) as u64)?;
                }
            }
        }
    }

    f.ipmi_interface =
        t.find_node("/ibm,opal/ipmi").and_then(|n| n.property("ibm,ipmi-interface-id")).and_then(|p| be32(p.value));
    Ok(f)
}

impl FdtFacts {
    pub fn bootargs(&self) -> &str {
        core::str::from_utf8(&self.bootargs[..self.bootargs_len]).unwrap_or("")
    }
    pub fn reserved(&self) -> &[(u64, u64)] {
        &self.reserved[..self.nreserved]
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    const P8: &[u8] = include_bytes!("testdata/skiboot-powernv8-smp2.dtb");

    fn cstr(b: &[u8]) -> &str {
        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        core::str::from_utf8(&b[..n]).unwrap()
    }

    #[test]
    fn reads_skiboot_powernv8_tree() {
        let f = read(P8).unwrap();
        assert_eq!(cstr(&f.model), "IBM PowerNV (emulated by qemu)");
        assert_eq!(f.mem_end, 1 << 30);
        assert_eq!((f.ncpus, f.cpus_in_tree), (2, 2));
        assert_eq!(&f.cpu_ids[..2], &[8, 16], "POWER8 PIRs: core << 3");
        assert_eq!(cstr(&f.cpu_name), "PowerPC,POWER8");
        assert_eq!((f.slb_size, f.tb_freq, f.dec_bits), (32, 512_000_000, 32));
        assert_eq!(f.bootargs(), "test=foo quiet");
        // skiboot's code, heap, data, stacks and allocations are one run; HOMER and the OCC
        // area lie beyond RAM.
        assert_eq!(
            f.reserved(),
            &[(0x3000_0000, 0x31ef_0000), (0x7f_fd80_0000, 0x7f_fdc0_0000), (0x7f_ff80_0000, 0x80_0000_0000)]
        );
        assert_eq!(f.ipmi_interface, Some(0));
    }

    #[test]
    fn boot_cpu_comes_first() {
        let mut blob = P8.to_vec();
        blob[28..32].copy_from_slice(&16u32.to_be_bytes());
        let f = read(&blob).unwrap();
        assert_eq!(&f.cpu_ids[..2], &[16, 8]);
    }

    #[test]
    fn not_a_tree() {
        assert_eq!(read(&[0u8; 64]).unwrap_err(), FdtError::Invalid);
    }

    #[test]
    fn reserved_ranges_merge_and_sort() {
        let mut l = [(0, 0); MAX_RESERVED];
        let mut n = 0;
        add_reserved(&mut l, &mut n, 0x5000, 0x6000).unwrap();
        add_reserved(&mut l, &mut n, 0x1000, 0x2000).unwrap();
        add_reserved(&mut l, &mut n, 0x2000, 0x3000).unwrap(); // touches: merged
        add_reserved(&mut l, &mut n, 0x8000, 0x8000).unwrap(); // empty: ignored
        assert_eq!(&l[..n], &[(0x1000, 0x3000), (0x5000, 0x6000)]);
        add_reserved(&mut l, &mut n, 0x2800, 0x5800).unwrap(); // bridges both
        assert_eq!(&l[..n], &[(0x1000, 0x6000)]);
        for i in 0..MAX_RESERVED as u64 - 1 {
            add_reserved(&mut l, &mut n, 0x10_0000 * (i + 1), 0x10_0000 * (i + 1) + 1).unwrap();
        }
        assert_eq!(n, MAX_RESERVED);
        assert_eq!(add_reserved(&mut l, &mut n, 0x7000_0000, 0x7000_1000), Err(FdtError::TooManyReserved));
    }
}
