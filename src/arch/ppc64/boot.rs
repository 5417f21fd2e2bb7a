//! Early boot in real mode: the assembly in boot/ (assembled here with the constants it shares
//! with Rust), the device-tree read-out, `quiesce`, the vector copy, and the hand-off that
//! boot/entry.S uses to bolt the linear mapping and turn translation on.

use super::exception::{ExcFrame, FRAME_TOTAL, HDR_SIZE};
use super::hcall;
use super::of::{self, Of};
use super::percpu::{self, offsets as po, MAX_CPUS};
use super::reg::Msr;
use crate::mm::hpte::{HptGeometry, HpteR};
use crate::mm::slbe::{kernel_vsid, SlbEntry, SLB_ESID_V};
use core::mem::offset_of;

extern "C" {
    /// The kernel proper (src/kmain.rs), entered with translation on: the one name early boot
    /// knows above the platform, by symbol (like the vectors' calls into the trap code).
    fn kmain(arg: u64) -> !;
}

pub const BOOT_STACK_SIZE: usize = 256 * 1024;
/// The linear (bolted) zone ends here or at the end of RAM: kernel image, heap, stacks,
/// per-CPU areas and page tables live below it; RAM above it is reached only through vmalloc.
pub const LINEAR_ZONE_MAX: u64 = 64 << 20;
pub use crate::mm::layout::KERNEL_BASE;
/// MSR for kernel code: SF | ME | IR | DR | RI (EE off until the kernel enables it).
pub const KERNEL_MSR: u64 = Msr::SF.union(Msr::ME).union(Msr::IR).union(Msr::DR).union(Msr::RI).bits();
/// SLB slots 0..BOLTED_SLB hold bolted kernel segments and are never victimised.
pub const BOLTED_SLB: usize = 1;

/// What entry.S's `enter_virtual` consumes.
#[repr(C)]
pub struct MmuHandoff {
    pub vsid: u64,
    pub hash_mask: u64,
    pub npages: u64,
    pub pte1: u64,
    pub nslb: u64,
    pub slb: [[u64; 2]; BOLTED_SLB],
    pub stack: u64,
    pub paca: u64,
    pub toc: u64,
    pub arg: u64,
    pub entry: u64,
    pub msr: u64,
}

core::arch::global_asm!(
    concat!(include_str!("../../../boot/entry.S"), include_str!("../../../boot/vectors.S"), include_str!("../../../boot/user.S"),
            include_str!("../../../boot/opal.S")),
    H_VSID = const offset_of!(MmuHandoff, vsid),
    H_HMASK = const offset_of!(MmuHandoff, hash_mask),
    H_NPAGES = const offset_of!(MmuHandoff, npages),
    H_PTE1 = const offset_of!(MmuHandoff, pte1),
    H_NSLB = const offset_of!(MmuHandoff, nslb),
    H_SLB = const offset_of!(MmuHandoff, slb),
    H_STACK = const offset_of!(MmuHandoff, stack),
    H_PACA = const offset_of!(MmuHandoff, paca),
    H_TOC = const offset_of!(MmuHandoff, toc),
    H_ARG = const offset_of!(MmuHandoff, arg),
    H_ENTRY = const offset_of!(MmuHandoff, entry),
    H_MSR = const offset_of!(MmuHandoff, msr),
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    MAX_CPUS = const MAX_CPUS,
    MSR_IR_DR = const Msr::IR.union(Msr::DR).bits(),
    MSR_EE = const Msr::EE.bits(),
    SPR_HSRR0 = const super::reg::spr::HSRR0,
    SPR_HSRR1 = const super::reg::spr::HSRR1,
    EX_GEN = const po::EX_GEN,
    EX_HASH = const po::EX_HASH,
    EX_SLB = const po::EX_SLB,
    PACA_COMMON = const po::EXC_COMMON,
    PACA_EXC_BASE = const po::EXC_BASE,
    PACA_EXC_TOP = const po::EXC_TOP,
    PACA_TOC = const po::TOC,
    PACA_KMSR = const po::KMSR,
    PACA_USER_SP = const po::USER_SP,
    PACA_CEIL_NEXT = const po::CEIL_NEXT,
    EX_CEIL = const po::EX_CEIL,
    PACA_OPAL_SP = const po::OPAL_SP,
    HASH_FRAME = const po::HASH_FRAME,
    HASH_VERDICT = const po::HASH_VERDICT,
    HASH_STACK_SIZE = const percpu::HASH_STACK_SIZE,
    SEG_TABLE = const po::SEG_TABLE,
    SLB_NEXT = const po::SLB_NEXT,
    SLB_SIZE = const po::SLB_SIZE,
    STATS = const po::STATS,
    C_DSEG = const crate::hash::stats::Counter::DsegMiss as usize * 8,
    BOLTED_SLB = const BOLTED_SLB,
    // Bit layouts, from their one typed definition each (reg.rs, mm/hpte.rs, mm/slbe.rs).
    MSR_RI_SHIFT = const Msr::RI.bits().trailing_zeros(),
    SLB_V_HI = const SLB_ESID_V >> 16,
    H_BOLTED_V = const crate::mm::hpte::HpteV::BOLTED.union(crate::mm::hpte::HpteV::VALID).bits(),
    H_SECONDARY = const crate::mm::hpte::HpteV::SECONDARY.bits(),
    H_ENTER = const hcall::H_ENTER,
    H_PTEG_FULL = const hcall::HcallError::PtegFull.rc(),
    HDR = const HDR_SIZE,
    FRAME_TOTAL = const FRAME_TOTAL,
    F_NIP = const offset_of!(ExcFrame, nip),
    F_MSR = const offset_of!(ExcFrame, msr),
    F_CTR = const offset_of!(ExcFrame, ctr),
    F_LR = const offset_of!(ExcFrame, lr),
    F_XER = const offset_of!(ExcFrame, xer),
    F_CR = const offset_of!(ExcFrame, cr),
    F_DAR = const offset_of!(ExcFrame, dar),
    F_DSISR = const offset_of!(ExcFrame, dsisr),
    F_TRAP = const offset_of!(ExcFrame, trap),
);

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __etext: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static vectors_block: u8;
    static vectors_block_end: u8;
    static vvec_block: u8;
    static vvec_block_end: u8;
    static __vvec_image: u8;
    static exc_common: u8;
    static boot_stack_top: u8;
    static secondary_entry: u8;
    #[link_name = ".TOC."]
    static TOC_BASE: u8;
}

pub fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

pub fn kernel_range() -> (u64, u64) {
    // SAFETY: linker-defined symbols; only their addresses are used.
    unsafe { (sym(&__kernel_start), sym(&__kernel_end)) }
}

pub fn text_range() -> (u64, u64) {
    // SAFETY: as above.
    unsafe { (sym(&__kernel_start), sym(&__etext)) }
}

pub fn toc() -> u64 {
    // SAFETY: as above.
    unsafe { sym(&TOC_BASE) }
}

pub fn secondary_entry_pa() -> u64 {
    // SAFETY: as above.
    of::pa(unsafe { &secondary_entry } as *const u8)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Firmware {
    Vof,
    Slof,
    /// skiboot (powernv): a flattened device tree and OPAL calls.
    Opal,
}

#[derive(Clone, Copy, Default, Debug)]
pub struct RtasTokens {
    pub power_off: u32,
    pub os_term: u32,
    pub start_cpu: u32,
    pub query_cpu_stopped_state: u32,
    pub stop_self: u32,
    pub read_pci_config: u32,
    pub write_pci_config: u32,
    pub get_time_of_day: u32,
}

/// A device-tree probe that must run while the firmware's client interface is still there
/// (real mode, before quiesce, no heap), registered by a driver with `early_probe!`: early boot
/// calls every one without knowing the drivers (the `.ktests` registry's pattern).
pub type EarlyProbe = fn(&super::of::Of, &mut BootInfo);

/// Registers `$f: EarlyProbe` in the `.early_probes` linker section.
#[macro_export]
macro_rules! early_probe {
    ($f:path) => {
        const _: () = {
            #[link_section = ".early_probes"]
            #[used]
            static EARLY_PROBE: $crate::arch::ppc64::boot::EarlyProbe = $f;
        };
    };
}

extern "C" {
    static __early_probes_start: u8;
    static __early_probes_end: u8;
}

fn early_probes() -> &'static [EarlyProbe] {
    // SAFETY: the linker script collects exactly the `EarlyProbe` statics between these symbols.
    unsafe {
        let s = &raw const __early_probes_start as *const EarlyProbe;
        let e = &raw const __early_probes_end as *const EarlyProbe;
        core::slice::from_raw_parts(s, e.offset_from(s) as usize)
    }
}

/// The PCI host bridge and the first pci-serial behind it, as the device tree describes them
/// (filled in by the PCI driver's early probe in real mode, before quiesce).
#[derive(Clone, Copy, Debug)]
pub struct PciSerialInfo {
    pub present: bool,
    /// PCI host bridges (device_type "pci" below the root) seen by the probe.
    pub phbs: u32,
    pub buid: u64,
    /// CPU physical address of the bridge's I/O window ...
    pub io_window: u64,
    pub io_window_size: u64,
    /// ... and the PCI I/O address it corresponds to (the `ranges` child address; 0 on pseries).
    pub io_pci_base: u64,
    /// config address (bus<<16 | devfn<<8)
    pub config_addr: u32,
    /// BAR0 as firmware assigned it (SLOF's `assigned-addresses`), else None.
    pub assigned_bar0: Option<u64>,
    /// BAR0 size from the child's `reg` (8 for a 16550).
    pub bar0_size: u64,
    pub vendor: u32,
    pub device: u32,
    pub class: u32,
    /// Full device-tree path of the serial node (package-to-path), NUL-free.
    pub path: [u8; 64],
    pub path_len: usize,
}

impl Default for PciSerialInfo {
    fn default() -> Self {
        PciSerialInfo {
            present: false,
            phbs: 0,
            buid: 0,
            io_window: 0,
            io_window_size: 0,
            io_pci_base: 0,
            config_addr: 0,
            assigned_bar0: None,
            bar0_size: 0,
            vendor: 0,
            device: 0,
            class: 0,
            path: [0; 64],
            path_len: 0,
        }
    }
}

impl PciSerialInfo {
    pub fn path(&self) -> &str {
        core::str::from_utf8(&self.path[..self.path_len]).unwrap_or("?")
    }
}

pub struct BootInfo {
    pub firmware: Firmware,
    pub mem_size: u64,
    pub ncpus: usize,
    pub cpu_ids: [u32; MAX_CPUS],
    pub cpus_in_tree: usize,
    pub cpu_name: [u8; 40],
    pub pvr: u64,
    pub pft_shift: u32,
    pub slb_size: u32,
    pub tb_freq: u64,
    pub dec_bits: u32,
    pub bootargs: [u8; 512],
    pub bootargs_len: usize,
    pub model: [u8; 40],
    pub rtas: RtasTokens,
    pub pci_serial: PciSerialInfo,
    pub of_calls: u64,
}

impl BootInfo {
    pub fn cpu_name(&self) -> &str {
        cstr(&self.cpu_name)
    }
    pub fn model(&self) -> &str {
        cstr(&self.model)
    }
    pub fn bootargs(&self) -> &str {
        core::str::from_utf8(&self.bootargs[..self.bootargs_len]).unwrap_or("")
    }
    pub fn hpt(&self) -> HptGeometry {
        HptGeometry::new(self.pft_shift).expect("validated at boot")
    }
    pub fn linear_zone_end(&self) -> u64 {
        self.mem_size.min(LINEAR_ZONE_MAX)
    }
}

fn cstr(b: &[u8]) -> &str {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..n]).unwrap_or("?")
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();
/// The HPT's hash mask, cached at boot (each CPU also keeps a copy in its per-CPU area).
static HPT_MASK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Linear address of the HPT when the kernel owns it (powernv), else 0.
static HPT_BASE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Where the AIL vector block runs (physical; linked at KERNEL_BASE + this).
pub const VVEC_PA: u64 = 0x4000;

/// The HPT geometry without going through the boot-info `Once`.
#[inline(always)]
pub fn hpt() -> HptGeometry {
    HptGeometry::from_hash_mask(HPT_MASK.load(core::sync::atomic::Ordering::Relaxed))
}

pub fn try_info() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

pub fn info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info is read before anything asks for it")
}

/// One hand-off per CPU: a secondary that starts after smp stopped waiting for it must not
/// find the next CPU's PACA and stack in a shared one.
static mut HANDOFF: [MmuHandoff; MAX_CPUS] = [const {
    MmuHandoff {
        vsid: 0,
        hash_mask: 0,
        npages: 0,
        pte1: 0,
        nslb: 0,
        slb: [[0; 2]; BOLTED_SLB],
        stack: 0,
        paca: 0,
        toc: 0,
        arg: 0,
        entry: 0,
        msr: 0,
    }
}; MAX_CPUS];

fn read_device_tree(of: &Of) -> BootInfo {
    let mut bi = BootInfo {
        firmware: Firmware::Vof,
        mem_size: 0,
        ncpus: 0,
        cpu_ids: [0; MAX_CPUS],
        cpus_in_tree: 0,
        cpu_name: [0; 40],
        pvr: super::insn::mfpvr(),
        pft_shift: 0,
        slb_size: 0,
        tb_freq: 0,
        dec_bits: 32,
        bootargs: [0; 512],
        bootargs_len: 0,
        model: [0; 40],
        rtas: RtasTokens::default(),
        pci_serial: PciSerialInfo::default(),
        of_calls: 0,
    };
    let mut buf = [0u8; 256];

    // SLOF describes itself in /openprom; VOF has no such node.
    if let Some(op) = of.finddevice(b"/openprom") {
        let n = of::prop_str(of, op, b"model", &mut buf);
        if buf[..n].windows(4).any(|w| w == b"SLOF") {
            bi.firmware = Firmware::Slof;
        }
    }
    if let Some(root) = of.finddevice(b"/") {
        let n = of::prop_str(of, root, b"model", &mut buf);
        let n = n.min(39);
        bi.model[..n].copy_from_slice(&buf[..n]);
    }

    // Memory: every /memory@... node's reg (2 address cells, 2 size cells on pseries).
    let mut mem_end = 0u64;
    if let Some(root) = of.finddevice(b"/") {
        let mut child = of.child(root);
        while let Some(c) = child {
            let mut dt = [0u8; 16];
            let n = of::prop_str(of, c, b"device_type", &mut dt);
            if &dt[..n] == b"memory" {
                if let Some(len) = of.getprop(c, b"reg", &mut buf) {
                    let len = len.min(buf.len());
                    let mut i = 0;
                    while (i + 4) * 4 <= len {
                        let base = of::cells(&buf, i, 2);
                        let size = of::cells(&buf, i + 2, 2);
                        mem_end = mem_end.max(base + size);
                        i += 4;
                    }
                }
            }
            child = of.peer(c);
        }
    }
    bi.mem_size = mem_end;

    // CPUs: children of /cpus with device_type "cpu".
    if let Some(cpus) = of.finddevice(b"/cpus") {
        let mut child = of.child(cpus);
        while let Some(c) = child {
            let mut dt = [0u8; 16];
            let n = of::prop_str(of, c, b"device_type", &mut dt);
            if &dt[..n] == b"cpu" {
                let id = of.getprop_u32(c, b"reg").unwrap_or(bi.cpus_in_tree as u32);
                if bi.ncpus < MAX_CPUS {
                    bi.cpu_ids[bi.ncpus] = id;
                    bi.ncpus += 1;
                }
                bi.cpus_in_tree += 1;
                if bi.cpus_in_tree == 1 {
                    let n = of::prop_str(of, c, b"name", &mut buf).min(39);
                    bi.cpu_name[..n].copy_from_slice(&buf[..n]);
                    if let Some(l) = of.getprop(c, b"ibm,pft-size", &mut buf) {
                        if l >= 8 {
                            bi.pft_shift = of::cells(&buf, 1, 1) as u32;
                        }
                    }
                    bi.slb_size = of.getprop_u32(c, b"ibm,slb-size").unwrap_or(32);
                    bi.tb_freq = of.getprop_u32(c, b"timebase-frequency").unwrap_or(512_000_000) as u64;
                    bi.dec_bits = of.getprop_u32(c, b"ibm,dec-bits").unwrap_or(32);
                }
            }
            child = of.peer(c);
        }
    }

    if let Some(chosen) = of.finddevice(b"/chosen") {
        let n = of::prop_str(of, chosen, b"bootargs", &mut bi.bootargs);
        bi.bootargs_len = n;
    }

    if let Some(rtas) = of.finddevice(b"/rtas") {
        let t = |name: &[u8]| of.getprop_u32(rtas, name).unwrap_or(0);
        bi.rtas = RtasTokens {
            power_off: t(b"power-off"),
            os_term: t(b"ibm,os-term"),
            start_cpu: t(b"start-cpu"),
            query_cpu_stopped_state: t(b"query-cpu-stopped-state"),
            stop_self: t(b"stop-self"),
            read_pci_config: t(b"ibm,read-pci-config"),
            write_pci_config: t(b"ibm,write-pci-config"),
            get_time_of_day: t(b"get-time-of-day"),
        };
    }
    for probe in early_probes() {
        probe(of, &mut bi);
    }
    bi.of_calls = Of::calls();
    bi
}

/// Called by entry.S in real mode with the OF client-interface entry. Returns the hand-off for
/// `enter_virtual`.
#[no_mangle]
extern "C" fn early_main(of_entry: u64) -> *const MmuHandoff {
    // SAFETY: r5 at entry is the client-interface entry and we are in real mode, unquiesced.
    let of = unsafe { Of::new(of_entry) };
    let bi = BOOT_INFO.call_once(|| read_device_tree(&of));
    if bi.rtas.power_off == 0 || bi.rtas.os_term == 0 {
        crate::console::early_puts("boot: no RTAS power-off/ibm,os-term tokens in /rtas\n");
    }
    of.quiesce();

    // The firmware is gone: vectors at PA 0 and 0x4000, then have interrupts taken with
    // translation on delivered there (LPCR[AIL] = 3 on every vCPU, secondaries included).
    install_vectors();
    if let Err(e) = hcall::h_set_mode_ail3() {
        crate::println!("boot: H_SET_MODE (AIL=3) failed: {}; interrupts would arrive in real mode", e);
        super::platform::fail_early();
    }

    let geo = match HptGeometry::checked(bi.pft_shift) {
        Ok(g) => g,
        Err(e) => {
            crate::println!("boot: unusable hashed page table: {}", e);
            super::platform::fail_early();
        }
    };
    set_hpt(geo, 0);
    init_boot_cpu();
    make_handoff(0, true, kmain as *const () as u64, 0)
}

/// Records the boot information (once, on the boot CPU in real mode).
pub fn set_info(bi: BootInfo) -> &'static BootInfo {
    BOOT_INFO.call_once(|| bi)
}

/// Copies the real-mode vectors to PA 0 and the AIL block to PA 0x4000 (0xc000000000004000,
/// its link address).
pub fn install_vectors() {
    // SAFETY: after the firmware hand-over nothing else uses low memory (the frame allocator
    // never hands out the first 64 KiB); real mode reaches PA n through KERNEL_BASE + n.
    unsafe {
        let len = sym(&vectors_block_end) - sym(&vectors_block);
        let (vlen, vsrc) = (sym(&vvec_block_end) - sym(&vvec_block), sym(&__vvec_image));
        core::ptr::copy_nonoverlapping(&vectors_block as *const u8, KERNEL_BASE as *mut u8, len as usize);
        core::ptr::copy_nonoverlapping(vsrc as *const u8, (KERNEL_BASE + VVEC_PA) as *mut u8, vlen as usize);
        super::insn::sync_icache(KERNEL_BASE, len);
        super::insn::sync_icache(KERNEL_BASE + VVEC_PA, vlen);
    }
}

/// The HPT's size, and (powernv) where the kernel put it: its linear address, 0 on pseries.
pub fn set_hpt(geo: HptGeometry, base: u64) {
    HPT_MASK.store(geo.hash_mask(), core::sync::atomic::Ordering::Relaxed);
    HPT_BASE.store(base, core::sync::atomic::Ordering::Relaxed);
}

/// The MSR kernel code runs with: SF|ME|IR|DR|RI, plus HV on powernv (where `rfid` would clear
/// it otherwise).
pub fn kernel_msr() -> u64 {
    if super::platform::powernv() {
        super::powernv::KERNEL_MSR
    } else {
        KERNEL_MSR
    }
}

/// CPU 0's per-CPU area: exception entry, stacks, SLB round robin, MMU fields.
pub fn init_boot_cpu() {
    let bi = info();
    let slb_size = if bi.slb_size == 0 { 32 } else { bi.slb_size.min(64) };
    // SAFETY: taking the address of exc_common only.
    let common = unsafe { sym(&exc_common) };
    percpu::init(0, toc(), common, kernel_msr(), slb_size as u64, BOLTED_SLB as u64);
    init_cpu_mmu(0);
}

/// The MMU fields of `cpu`'s per-CPU area that the fault paths read: the hash mask and the
/// segment table (the page-table roots come later, from `mm`).
pub fn init_cpu_mmu(cpu: usize) {
    use core::sync::atomic::Ordering::Relaxed;
    let p = percpu::paca(cpu);
    p.hash_mask.store(hpt().hash_mask(), Relaxed);
    p.seg_table.store(&crate::mm::slbe::SEGMENTS as *const _ as u64, Relaxed);
    p.hpt_base.store(HPT_BASE.load(Relaxed), Relaxed);
}

/// Prepares the hand-off for `cpu`. The boot CPU also bolts the linear zone (`bolt`).
pub fn make_handoff(cpu: usize, bolt: bool, entry: u64, arg: u64) -> *const MmuHandoff {
    let bi = info();
    let geo = bi.hpt();
    let lin = SlbEntry::kernel(KERNEL_BASE, 0);
    // SAFETY: only CPU 0 writes HANDOFF[cpu], here, before `cpu` is started with it (a later
    // call, such as a test's, writes the same values); entry.S reads it while `cpu` starts.
    let h = unsafe { &mut *core::ptr::addr_of_mut!(HANDOFF[cpu]) };
    h.vsid = kernel_vsid(KERNEL_BASE);
    h.hash_mask = geo.hash_mask();
    h.npages = if bolt { bi.linear_zone_end() >> 12 } else { 0 };
    // M (coherent) + R + C preset: RAM must be WIMG=0010 under PAPR; PP=00 (kernel RW,
    // executable: the image lives here).
    h.pte1 = HpteR::M.union(HpteR::R).union(HpteR::C).bits();
    h.nslb = BOLTED_SLB as u64;
    h.slb[0] = [lin.rs(), lin.rb()];
    h.stack = if cpu == 0 {
        // SAFETY: address only.
        (unsafe { sym(&boot_stack_top) } | KERNEL_BASE) - 112
    } else {
        percpu::kstack_top(cpu) - 112
    };
    h.paca = percpu::paca(cpu) as *const _ as u64;
    h.toc = toc();
    h.arg = arg;
    h.entry = entry;
    h.msr = kernel_msr();
    h as *const MmuHandoff
}

/// entry.S calls this when H_ENTER refuses a bolted linear page.
#[no_mangle]
extern "C" fn boot_hpt_failed(page: u64, rc: i64) -> ! {
    crate::console::early_puts("boot: H_ENTER failed while bolting the linear mapping\n");
    crate::println!(
        "boot: page {:#x} (PA {:#x}): {}",
        page,
        page << 12,
        crate::arch::ppc64::hcall::HcallError::from_rc(rc)
    );
    super::platform::fail_early();
}
