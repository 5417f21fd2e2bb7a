//! Bare metal under skiboot (QEMU's powernv machine): the kernel runs with MSR[HV] = 1 and is
//! its own hypervisor. What the pseries hypervisor and firmware did for it happens here:
//!
//! | pseries (PAPR guest)                  | powernv (this file, `opal`, `hash::native`)       |
//! |---------------------------------------|---------------------------------------------------|
//! | OF client interface: device tree      | flattened device tree from skiboot (`fdt`)        |
//! | the hypervisor sizes and owns the HPT | the kernel allocates it, zeroes it, sets SDR1     |
//! |                                       | (POWER9: a partition table entry, PTCR)           |
//! | H_ENTER bolts the linear zone         | native inserts, in real mode, before translation  |
//! | H_SET_MODE: AIL = 3                   | LPCR[AIL] = 3 written directly (and HDICE off)    |
//! | hvterm console, RTAS power-off/os-term| OPAL console, power-down through OPAL and the BMC |
//! | RTAS start-cpu                        | OPAL_START_CPU (r3 = PIR, found in a table)       |
//! | H_SIGNAL_SYS_RESET                    | the BMC watchdog's pre-timeout NMI (`nmi_all`)    |

use super::boot::{self, BootInfo, Firmware, MmuHandoff, PciSerialInfo, RtasTokens, KERNEL_BASE};
use super::fdt::{self, MAX_RESERVED};
use super::percpu::MAX_CPUS;
use super::reg::{spr, Lpcr, Msr};
use super::{insn, opal, platform};
use crate::hash::backend::{HashBackend, InsertError};
use crate::hash::native::{place_hpt, sdr1, NATIVE};
use crate::mm::hpte::{avpn_for, hash_4k, native_hpt_shift, HptGeometry, HpteR, HpteV};
use crate::mm::slbe::kernel_vsid;
use core::sync::atomic::{AtomicU64, Ordering::*};

extern "C" {
    /// The kernel proper (src/kmain.rs), entered with translation on: the one name early boot
    /// knows above the platform, by symbol (like the vectors' calls into the trap code).
    fn kmain(arg: u64) -> !;
}

/// Largest HPT the kernel gives itself: 16 MiB, a quarter of the bolted zone.
pub const MAX_HPT_SHIFT: u32 = 24;
/// What only powernv has, kept from early boot.
pub struct PowerNvInfo {
    pub reserved: [(u64, u64); MAX_RESERVED],
    pub nreserved: usize,
    /// Physical address of the HPT and SDR1 as every CPU loads it (POWER8). ISA 3.0 (POWER9)
    /// has no SDR1: the same value is entry 0 (LPID 0) of a partition table at `ptcr`.
    pub hpt_pa: u64,
    pub sdr1: u64,
    /// ISA 3.0: PTCR (partition table base, 4 KiB); 0 on POWER8.
    pub ptcr: u64,
    /// LPCR as skiboot left it on the boot CPU, and as the kernel set it.
    pub lpcr_entry: u64,
    pub lpcr: u64,
    pub ipmi: Option<u32>,
    pub fdt: u64,
}

static INFO: spin::Once<PowerNvInfo> = spin::Once::new();

pub fn info() -> Option<&'static PowerNvInfo> {
    INFO.get()
}

/// Firmware-reserved ranges inside RAM, the HPT and (ISA 3.0) the partition table below it:
/// never handed out as frames.
pub fn reserved(mem_size: u64) -> impl Iterator<Item = (u64, u64)> {
    let i = INFO.get();
    let fw = i.map(|i| &i.reserved[..i.nreserved]).unwrap_or(&[]);
    let hpt = i.map(|i| (if i.ptcr != 0 { i.ptcr & PATB_MASK } else { i.hpt_pa }, i.hpt_pa + boot::hpt().bytes()));
    fw.iter().copied().filter(move |&(s, _)| s < mem_size).chain(hpt)
}

/// PTCR's partition table base field.
const PATB_MASK: u64 = 0x0fff_ffff_ffff_f000;

/// ISA 3.0 or later (POWER9 and up: PVR versions 0x004e and above): partition table, `stop`.
pub fn isa300() -> bool {
    (insn::mfpvr() >> 16) >= 0x004e
}

/// The LPCR every CPU runs with: AIL = 3 (interrupts taken with translation on arrive at
/// 0xc000000000004000 + vector, translated, as on pseries after H_SET_MODE; `Lpcr::HAIL` for
/// QEMU 7.2), no hypervisor decrementer interrupts, external interrupts to the hypervisor
/// (HSRR: the kernel leaves them masked at the interrupt controller), and `nap` ended by a
/// hypervisor doorbell (`kick`), the decrementer or a machine check — not by external
/// interrupts, which nothing handles.
pub const fn lpcr_for(entry: u64) -> u64 {
    let clear = Lpcr::AIL_3.bits()
        | Lpcr::HDICE.bits()
        | Lpcr::LPES0.bits()
        | Lpcr::P8_PECE0.bits()
        | Lpcr::P8_PECE2.bits()
        | Lpcr::HR.bits()
        | Lpcr::UPRT.bits();
    let set =
        Lpcr::AIL_3.bits() | Lpcr::HAIL.bits() | Lpcr::P8_PECE1.bits() | Lpcr::P8_PECE3.bits() | Lpcr::P8_PECE4.bits();
    (entry & !clear) | set
}

/// This CPU's MMU registers: LPCR, SDR1 (ISA 3.0: PTCR, and PSSCR for `stop`), and a TLB with
/// nothing from skiboot's time in it.
fn cpu_mmu_setup(i: &PowerNvInfo) {
    // SAFETY: real mode, interrupts off; the values are the ones every CPU uses, the table
    // behind SDR1/PTCR is initialised, and nothing is translated yet on this CPU.
    unsafe {
        insn::mtspr::<{ spr::LPCR }>(i.lpcr);
        if i.ptcr != 0 {
            insn::mtspr::<{ spr::PTCR }>(i.ptcr);
            insn::mtspr::<{ spr::PSSCR }>(PSSCR_STOP0_SRESET);
        } else {
            insn::mtspr::<{ spr::SDR1 }>(i.sdr1);
        }
    }
    insn::isync();
    tlbiel_all();
}

/// PSSCR for `idle`'s `stop` on ISA 3.0: level 0, exit criterion and state loss enabled, so
/// that a wake-up is a system reset at 0x100 as after POWER8's `nap` (PSSCR_EC | PSSCR_ESL).
const PSSCR_STOP0_SRESET: u64 = (1 << (63 - 43)) | (1 << (63 - 42));

/// Invalidates this CPU's whole TLB: `tlbiel` with IS = 3 (every entry of a congruence class)
/// for each of POWER8's 512 classes, then `ptesync`.
fn tlbiel_all() {
    for set in 0..512u64 {
        // SAFETY: tlbiel only drops this CPU's translations; nothing translated runs yet.
        unsafe { core::arch::asm!("tlbiel {0}", in(reg) (set << 12) | (3 << 10), options(nostack, preserves_flags)) };
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("ptesync", options(nostack, preserves_flags)) };
}

fn fail(msg: core::fmt::Arguments) -> ! {
    crate::println!("boot: {}", msg);
    super::platform::fail_early()
}

/// boot/entry.S calls this on the boot CPU, in real mode, with what skiboot passed: the FDT,
/// OPAL's base and entry. Returns the hand-off for `enter_virtual`.
#[no_mangle]
extern "C" fn early_main_opal(fdt_pa: u64, opal_base: u64, opal_entry: u64) -> *const MmuHandoff {
    platform::set_powernv();
    opal::init(opal_base, opal_entry);
    // SAFETY: skiboot passes the tree's physical address, in memory it reserves for itself;
    // real mode reaches it as is, and the header's totalsize bounds it.
    let blob = unsafe {
        let total = u32::from_be(core::ptr::read_volatile((fdt_pa + 4) as *const u32)) as usize;
        core::slice::from_raw_parts(fdt_pa as *const u8, total.min(1 << 20))
    };
    let f = match fdt::read(blob) {
        Ok(f) => f,
        Err(e) => fail(format_args!("device tree at {fdt_pa:#x}: {e}")),
    };
    let pft_shift = native_hpt_shift(f.mem_end, MAX_HPT_SHIFT);
    let mut bi = BootInfo {
        firmware: Firmware::Opal,
        mem_size: f.mem_end,
        ncpus: f.ncpus,
        cpu_ids: [0; MAX_CPUS],
        cpus_in_tree: f.cpus_in_tree,
        cpu_name: f.cpu_name,
        pvr: insn::mfpvr(),
        pft_shift,
        slb_size: f.slb_size,
        tb_freq: f.tb_freq,
        dec_bits: f.dec_bits,
        bootargs: f.bootargs,
        bootargs_len: f.bootargs_len,
        model: f.model,
        rtas: RtasTokens::default(),
        pci_serial: PciSerialInfo::default(),
        of_calls: 0,
    };
    bi.cpu_ids[..f.ncpus].copy_from_slice(&f.cpu_ids[..f.ncpus]);
    let bi = boot::set_info(bi);

    let geo = match HptGeometry::checked(pft_shift) {
        Ok(g) => g,
        Err(e) => fail(format_args!("no usable HPT size for {} MiB: {e}", f.mem_end >> 20)),
    };
    let Some(hpt_pa) = place_hpt(bi.linear_zone_end(), geo) else {
        fail(format_args!(
            "a {} KiB HPT does not fit the {} MiB linear zone",
            geo.bytes() >> 10,
            bi.linear_zone_end() >> 20
        ))
    };
    let lpcr_entry = insn::mfspr::<{ spr::LPCR }>();
    // ISA 3.0: a 4 KiB partition table right below the HPT (aligned), entry 0 = SDR1's value.
    let ptcr = if isa300() { hpt_pa - 4096 } else { 0 };
    if ptcr != 0 {
        // SAFETY: the page below the HPT, in the linear zone, reserved with it (`reserved`).
        unsafe {
            core::ptr::write_bytes((KERNEL_BASE + ptcr) as *mut u8, 0, 4096);
            core::ptr::write_volatile((KERNEL_BASE + ptcr) as *mut u64, sdr1(hpt_pa, geo));
        }
    }
    let i = INFO.call_once(|| PowerNvInfo {
        reserved: f.reserved,
        nreserved: f.nreserved,
        hpt_pa,
        sdr1: sdr1(hpt_pa, geo),
        ptcr,
        lpcr_entry,
        lpcr: lpcr_for(lpcr_entry),
        ipmi: f.ipmi_interface,
        fdt: fdt_pa,
    });
    // The image, the vectors and the table live in the linear zone: the firmware must not.
    if let Some(&(s, e)) = f.reserved().iter().find(|&&(s, _)| s < bi.linear_zone_end()) {
        fail(format_args!("firmware reserves {s:#x}..{e:#x}, inside the linear zone"));
    }

    boot::install_vectors();
    // SAFETY: the table lies in the linear zone, above the image and below the zone's end,
    // reserved from the frame allocator; real mode reaches PA n at KERNEL_BASE + n.
    unsafe { core::ptr::write_bytes((KERNEL_BASE + hpt_pa) as *mut u8, 0, geo.bytes() as usize) };
    boot::set_hpt(geo, KERNEL_BASE + hpt_pa);
    cpu_mmu_setup(i);
    boot::init_boot_cpu();
    bolt_linear_zone(bi, geo);
    boot::make_handoff(0, false, kmain as *const () as u64, 0)
}

/// Inserts the bolted HPTEs of the linear zone (what entry.S's H_ENTER loop does on pseries):
/// primary group, else secondary, through the same native insert the fault path uses.
fn bolt_linear_zone(bi: &BootInfo, geo: HptGeometry) {
    let vsid = kernel_vsid(KERNEL_BASE);
    let r0 = HpteR::M.union(HpteR::R).union(HpteR::C).bits();
    for page in 0..bi.linear_zone_end() >> 12 {
        let ea = KERNEL_BASE + (page << 12);
        let hash = hash_4k(vsid, ea);
        let v = avpn_for(vsid, ea) | HpteV::BOLTED.bits() | HpteV::VALID.bits();
        let r = (page << 12) | r0;
        let done = NATIVE.insert(geo.group_base(hash, false), v, r).or_else(|e| match e {
            InsertError::Full => NATIVE.insert(geo.group_base(hash, true), v | HpteV::SECONDARY.bits(), r),
            e => Err(e),
        });
        if done.is_err() {
            fail(format_args!("both HPT groups of linear page {:#x} are full", page << 12));
        }
    }
}

/// PIR and hand-off address of each CPU the kernel starts, for `opal_secondary_entry`
/// (boot/entry.S), which finds its own by the PIR OPAL passes in r3.
#[no_mangle]
pub static OPAL_CPU_HANDOFF: [[AtomicU64; 2]; MAX_CPUS] =
    [const { [AtomicU64::new(u64::MAX), AtomicU64::new(0)] }; MAX_CPUS];

extern "C" {
    static opal_secondary_entry: u8;
}

/// Starts CPU `idx` (PIR `pir`) into `enter_virtual` with hand-off `h`.
pub fn start_cpu(idx: usize, pir: u32, h: *const MmuHandoff) -> Result<(), opal::OpalError> {
    OPAL_CPU_HANDOFF[idx][1].store(h as u64, Relaxed);
    OPAL_CPU_HANDOFF[idx][0].store(pir as u64, Release);
    insn::sync();
    // SAFETY: address of an assembly label only.
    let entry = super::of::pa(unsafe { &opal_secondary_entry } as *const u8);
    opal::start_cpu(pir, entry)
}

/// A starting secondary, in real mode on its own stack (boot/entry.S): its MMU registers.
#[no_mangle]
extern "C" fn powernv_secondary_mmu() {
    if let Some(i) = INFO.get() {
        cpu_mmu_setup(i);
    }
}

/// MSR the kernel runs with on powernv: pseries' plus HV, which `rfid` would otherwise clear.
pub const KERNEL_MSR: u64 = boot::KERNEL_MSR | Msr::HV.bits();

/// Idles until `wake` says so, in `nap` (H_CEDE's counterpart on bare metal: under QEMU a
/// napping vCPU is halted, not spinning). Interrupts stay off: what ends a nap is a system
/// reset at 0x100 (SRR1 says why, `reg::wake`), which returns right after the `nap`. A
/// `kick` (hypervisor doorbell) or the decrementer end it; a waker stores first, then kicks.
pub fn idle_until(wake: impl Fn() -> bool) {
    let on = crate::arch::ppc64::irq::save_disable();
    while !wake() {
        nap();
    }
    crate::arch::ppc64::irq::restore(on);
}

/// One nap (ISA 3.0: `stop` at level 0, set up by PSSCR), until the next wake-up event.
pub fn nap() {
    if isa300() {
        // SAFETY: as below; `stop` is 19/370, which LLVM does not know for this target.
        unsafe { core::arch::asm!("sync", ".long 0x4c0002e4", options(nostack)) };
        return;
    }
    // SAFETY: `nap` only stops this thread until a wake-up event; the wake-up's system reset
    // returns here (exception.rs), every register kept. `sync` first: stores reach memory
    // before the thread stops.
    unsafe { core::arch::asm!("sync", "nap", options(nostack)) };
}

/// Ends CPU `cpu`'s nap (or makes its next one end at once): a hypervisor doorbell to its
/// PIR (`msgsnd`, message type 5). The `sync` makes the caller's stores visible first.
pub fn kick(cpu: usize) {
    let pir = boot::info().cpu_ids[cpu] as u64;
    // SAFETY: msgsnd only raises a doorbell on the addressed thread. LLVM knows msgsnd only
    // for Book E: this is `msgsnd r3` (X-form 31/206, RB = 3) by hand.
    unsafe {
        core::arch::asm!("sync", ".long 0x7c00199c", in("r3") (5u64 << 27) | pir, options(nostack, preserves_flags))
    };
}

/// IPMI App requests for the BMC watchdog (IPMI v2.0, 27.6/27.7).
const NETFN_APP: u8 = 0x06;
const IPMI_RESET_WATCHDOG: u8 = 0x22;
const IPMI_SET_WATCHDOG: u8 = 0x24;

/// Set Watchdog Timer data: timer use SMS/OS (4, "don't log"), actions = pre-timeout interrupt
/// NMI (2 << 4) | `action`, pre-timeout interval `pre_s` seconds, no flags to clear, initial
/// countdown `tenths` (100 ms units, little-endian).
pub const fn watchdog_request(action: u8, pre_s: u8, tenths: u16) -> [u8; 6] {
    [0x84, (2 << 4) | action, pre_s, 0, tenths as u8, (tenths >> 8) as u8]
}

fn ipmi_ok(iface: u32, cmd: u8, data: &[u8]) -> Result<(), alloc::string::String> {
    let t = super::timer::us_to_tb(2_000_000);
    match opal::ipmi(iface, NETFN_APP, cmd, data, t) {
        Ok((rsp, n)) if n >= 1 && rsp[0] == 0 => Ok(()),
        Ok((rsp, _)) => Err(alloc::format!("IPMI command {cmd:#x}: completion code {:#x}", rsp[0])),
        Err(e) => Err(alloc::format!("IPMI command {cmd:#x}: {e}")),
    }
}

/// Interrupts every CPU with a system reset, the machine's NMI, which on bare metal the BMC
/// delivers: its watchdog is armed with a pre-timeout NMI due at once (a 60 s pre-timeout in
/// a 60.0 s countdown), and QEMU's BMC turns that into a system reset on every CPU — the
/// caller's too (`smp::is_stopper` lets it return from it). The watchdog's own expiry, a
/// reset a minute later, is disarmed by `nmi_done`.
pub fn nmi_all() -> Result<(), alloc::string::String> {
    let iface = info().and_then(|i| i.ipmi).ok_or("OPAL has no IPMI interface (no BMC)")?;
    ipmi_ok(iface, IPMI_SET_WATCHDOG, &watchdog_request(1, 60, 600))?;
    ipmi_ok(iface, IPMI_RESET_WATCHDOG, &[])
}

/// Disarms the BMC watchdog `nmi_all` started.
pub fn nmi_done() {
    if let Some(iface) = info().and_then(|i| i.ipmi) {
        // Action "no action" without "don't stop": QEMU's BMC stops the timer.
        let _ = ipmi_ok(iface, IPMI_SET_WATCHDOG, &[0x04, 0, 0, 0, 10, 0]);
    }
}
