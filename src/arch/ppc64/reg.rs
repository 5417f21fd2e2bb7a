//! Typed views of MSR, DSISR and SRR1 bits, and exception vector names.
//!
//! This is the register-independent half: only bit definitions and
//! formatting, so fault reports can be decoded and tested on the host. Bit
//! values are in the usual LSB-0 numbering (`1 << n`), i.e. the
//! architecture's bit `63 - n`. DSISR/SRR1 values follow QEMU's
//! `target/ppc/cpu.h`, which is what actually produces them under TCG.

use bitflags::bitflags;
use core::fmt;

/// Writes `<A,B,...>` for the named flags set in `bits`, plus any leftover
/// unnamed bits as one hex item, so nothing in a fault report is hidden.
fn write_names<const N: usize>(f: &mut fmt::Formatter<'_>, bits: u64, names: &[(u64, &str); N]) -> fmt::Result {
    f.write_str("<")?;
    let mut rest = bits;
    let mut first = true;
    for &(mask, name) in names {
        if bits & mask == mask && mask != 0 {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
            rest &= !mask;
        }
    }
    if rest != 0 {
        if !first {
            f.write_str(",")?;
        }
        write!(f, "{:#x}", rest)?;
    }
    f.write_str(">")
}

bitflags! {
    /// Machine State Register.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Msr: u64 {
        /// 64-bit mode.
        const SF  = 1 << 63;
        /// Hypervisor state (never set for a pseries guest).
        const HV  = 1 << 60;
        /// VMX (AltiVec) available.
        const VEC = 1 << 25;
        /// VSX available.
        const VSX = 1 << 23;
        /// External (and decrementer) interrupts enabled.
        const EE  = 1 << 15;
        /// Problem state (user mode).
        const PR  = 1 << 14;
        /// Floating point available.
        const FP  = 1 << 13;
        /// Machine check enabled.
        const ME  = 1 << 12;
        const FE0 = 1 << 11;
        /// Single-step trace.
        const SE  = 1 << 10;
        /// Branch trace.
        const BE  = 1 << 9;
        const FE1 = 1 << 8;
        /// Instruction relocation (translation) on.
        const IR  = 1 << 5;
        /// Data relocation on.
        const DR  = 1 << 4;
        /// Performance monitor mark.
        const PMM = 1 << 2;
        /// Recoverable interrupt: clear while SRR0/SRR1 hold live state.
        const RI  = 1 << 1;
        /// Little-endian mode.
        const LE  = 1 << 0;
    }
}

impl Msr {
    const NAMES: [(u64, &'static str); 17] = [
        (Msr::SF.bits(), "SF"),
        (Msr::HV.bits(), "HV"),
        (Msr::VEC.bits(), "VEC"),
        (Msr::VSX.bits(), "VSX"),
        (Msr::EE.bits(), "EE"),
        (Msr::PR.bits(), "PR"),
        (Msr::FP.bits(), "FP"),
        (Msr::ME.bits(), "ME"),
        (Msr::FE0.bits(), "FE0"),
        (Msr::SE.bits(), "SE"),
        (Msr::BE.bits(), "BE"),
        (Msr::FE1.bits(), "FE1"),
        (Msr::IR.bits(), "IR"),
        (Msr::DR.bits(), "DR"),
        (Msr::PMM.bits(), "PMM"),
        (Msr::RI.bits(), "RI"),
        (Msr::LE.bits(), "LE"),
    ];
}

/// `0x8000000000001032 <SF,ME,IR,DR,RI>`; bits without a name are shown as a
/// trailing hex item.
impl fmt::Display for Msr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x} ", self.bits())?;
        write_names(f, self.bits(), &Msr::NAMES)
    }
}

bitflags! {
    /// Data Storage Interrupt Status Register (why a 0x300 happened).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Dsisr: u32 {
        /// No HPTE found for the address: the `hash_page` case.
        const NOPTE         = 0x4000_0000;
        /// Access not permitted by the HPTE's pp bits.
        const PROTFAULT     = 0x0800_0000;
        /// Bad access to caching-inhibited/guarded storage (e.g. lwarx).
        const BADACCESS     = 0x0400_0000;
        /// The access was a store.
        const ISSTORE       = 0x0200_0000;
        /// DABR/DAWR match.
        const DABR          = 0x0040_0000;
        /// Denied by virtual page class key protection (AMR).
        const KEYFAULT      = 0x0020_0000;
        /// Unsupported radix tree configuration.
        const BADCONFIG     = 0x0008_0000;
        /// R/C update failed to be performed atomically (radix).
        const ATOMIC_RC     = 0x0004_0000;
        /// Fault while translating a partition/process table entry.
        const PRTABLE_FAULT = 0x0002_0000;
    }
}

impl Dsisr {
    /// QEMU's name for KEYFAULT.
    pub const AMR: Dsisr = Dsisr::KEYFAULT;

    const NAMES: [(u64, &'static str); 9] = [
        (Dsisr::NOPTE.bits() as u64, "NOPTE"),
        (Dsisr::PROTFAULT.bits() as u64, "PROT"),
        (Dsisr::BADACCESS.bits() as u64, "BADACCESS"),
        (Dsisr::ISSTORE.bits() as u64, "STORE"),
        (Dsisr::DABR.bits() as u64, "DABR"),
        (Dsisr::KEYFAULT.bits() as u64, "KEY"),
        (Dsisr::BADCONFIG.bits() as u64, "BADCONFIG"),
        (Dsisr::ATOMIC_RC.bits() as u64, "ATOMIC_RC"),
        (Dsisr::PRTABLE_FAULT.bits() as u64, "PRTABLE"),
    ];
}

/// `0x42000000 <NOPTE,STORE>`.
impl fmt::Display for Dsisr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x} ", self.bits())?;
        write_names(f, self.bits() as u64, &Dsisr::NAMES)
    }
}

bitflags! {
    /// Why an instruction storage interrupt (0x400) happened; reported in
    /// SRR1 instead of DSISR. Build it with `from_bits_truncate(srr1)` to
    /// drop the MSR bits that share the register.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IsiSrr1: u64 {
        /// No HPTE found.
        const NOPTE        = 0x4000_0000;
        /// Fetch from a no-execute (N) or guarded (G) page or segment.
        const NOEXEC_GUARD = 0x1000_0000;
        /// Fetch not permitted by the pp bits.
        const PROTFAULT    = 0x0800_0000;
        /// Denied by the IAMR (storage key).
        const IAMR         = 0x0020_0000;
    }
}

impl IsiSrr1 {
    const NAMES: [(u64, &'static str); 4] = [
        (IsiSrr1::NOPTE.bits(), "NOPTE"),
        (IsiSrr1::NOEXEC_GUARD.bits(), "NOEXEC_GUARD"),
        (IsiSrr1::PROTFAULT.bits(), "PROT"),
        (IsiSrr1::IAMR.bits(), "KEY"),
    ];
}

/// `0x40000000 <NOPTE>`.
impl fmt::Display for IsiSrr1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x} ", self.bits())?;
        write_names(f, self.bits(), &IsiSrr1::NAMES)
    }
}

bitflags! {
    /// Why a program interrupt (0x700) happened; reported in SRR1. Build it
    /// with `from_bits_truncate(srr1)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ProgramSrr1: u64 {
        /// Transactional memory bad thing.
        const TM      = 0x0020_0000;
        /// Floating-point enabled exception.
        const FPE     = 0x0010_0000;
        /// Illegal instruction.
        const ILLEGAL = 0x0008_0000;
        /// Privileged instruction in problem state.
        const PRIV    = 0x0004_0000;
        /// Trap instruction (`tw`/`td`, used for BUG/WARN).
        const TRAP    = 0x0002_0000;
        /// SRR0 holds the address of the *next* instruction (imprecise FPE).
        const ADDR    = 0x0001_0000;
    }
}

impl ProgramSrr1 {
    const NAMES: [(u64, &'static str); 6] = [
        (ProgramSrr1::TM.bits(), "TM"),
        (ProgramSrr1::FPE.bits(), "FPE"),
        (ProgramSrr1::ILLEGAL.bits(), "ILLEGAL"),
        (ProgramSrr1::PRIV.bits(), "PRIV"),
        (ProgramSrr1::TRAP.bits(), "TRAP"),
        (ProgramSrr1::ADDR.bits(), "ADDR"),
    ];
}

/// `0x00020000 <TRAP>`.
impl fmt::Display for ProgramSrr1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x} ", self.bits())?;
        write_names(f, self.bits(), &ProgramSrr1::NAMES)
    }
}

bitflags! {
    /// Logical Partitioning Control Register, the bits the kernel sets on powernv (POWER8,
    /// ISA 2.07; values as QEMU's target/ppc/cpu.h `PPC_BIT(n)` = `1 << (63 - n)`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Lpcr: u64 {
        /// Alternate interrupt location (bits 39:40); 3 = at 0xc000000000004000 + vector,
        /// translated, for interrupts taken with MSR[IR,DR] on (HV to HV included on POWER8).
        const AIL_3 = 3 << 23;
        /// POWER8 power-saving exit enables: privileged doorbell, hypervisor doorbell,
        /// external, decrementer, machine check/HMI.
        const P8_PECE0 = 1 << 16;
        const P8_PECE1 = 1 << 15;
        const P8_PECE2 = 1 << 14;
        const P8_PECE3 = 1 << 13;
        const P8_PECE4 = 1 << 12;
        /// ISA 3.1's HAIL (bit 37; on POWER8 the low bit of RMLS, which only limits a guest's
        /// real-mode accesses, never the hypervisor's). QEMU 7.2 decides whether AIL applies
        /// to an interrupt that stays in hypervisor state by this bit on every CPU whose LPCR
        /// mask has it, POWER8's included (its RMLS field covers bit 37), so without it every
        /// interrupt on powernv arrives in real mode (target/ppc/excp_helper.c
        /// ppc_excp_apply_ail). Harmless on hardware: the kernel never runs with MSR[HV] = 0.
        const HAIL = 1 << 26;
        /// ISA 3.0 (POWER9): the partition's table is radix (HR) / a process table is used
        /// (UPRT). Both off for a hashed page table with the SLB.
        const UPRT = 1 << 22;
        const HR = 1 << 20;
        /// External interrupts go to the partition (SRR0/1) instead of the hypervisor.
        const LPES0 = 1 << 3;
        /// Hypervisor decrementer interrupts enabled.
        const HDICE = 1 << 0;
    }
}

/// SRR1 of a system reset that ends a power-saving state (`nap`, powernv): bits 46:47 say
/// what state was kept (non-zero: it was a wake-up), bits 42:45 why (QEMU's target/ppc/cpu.h
/// SRR1_WAKE*, as POWER8 sets them).
pub mod wake {
    pub const STATE: u64 = 0x0003_0000;
    pub const REASON: u64 = 0x003c_0000;
    pub const RESET: u64 = 0x0010_0000;
    pub const DECREMENTER: u64 = 0x0018_0000;
    pub const HV_DOORBELL: u64 = 0x000c_0000;

    /// Why a system reset with SRR1 `srr1` happened: None when it did not end a nap.
    pub const fn reason(srr1: u64) -> Option<u64> {
        if srr1 & STATE == 0 {
            None
        } else {
            Some(srr1 & REASON)
        }
    }
}

/// SPR numbers the powernv code uses (ISA 2.07).
pub mod spr {
    pub const SDR1: u16 = 25;
    /// ISA 3.0: partition table control (base | log2(size) - 12), instead of SDR1.
    pub const PTCR: u16 = 464;
    /// ISA 3.0: processor stop status and control, what `stop` does.
    pub const PSSCR: u16 = 855;
    pub const HSRR0: u16 = 314;
    pub const HSRR1: u16 = 315;
    pub const LPCR: u16 = 318;
    pub const PIR: u16 = 1023;
}

/// Human name of an interrupt vector offset (as passed by the entry code,
/// without any relocation such as AIL's 0xc000000000004000).
pub const fn vector_name(vec: u64) -> &'static str {
    match vec {
        0x100 => "system reset",
        0x200 => "machine check",
        0x300 => "data storage",
        0x380 => "data segment",
        0x400 => "instruction storage",
        0x480 => "instruction segment",
        0x500 => "external",
        0x600 => "alignment",
        0x700 => "program",
        0x800 => "FP unavailable",
        0x900 => "decrementer",
        0x980 => "hypervisor decrementer",
        0xa00 => "directed privileged doorbell",
        0xc00 => "system call",
        0xd00 => "trace",
        0xe00 => "hypervisor data storage",
        0xe20 => "hypervisor instruction storage",
        0xe40 => "hypervisor emulation assistance",
        0xe60 => "hypervisor maintenance",
        0xe80 => "directed hypervisor doorbell",
        0xea0 => "hypervisor virtualization",
        0xf00 => "performance monitor",
        0xf20 => "VMX unavailable",
        0xf40 => "VSX unavailable",
        0xf60 => "facility unavailable",
        0xf80 => "hypervisor facility unavailable",
        0x1500 => "denormalisation",
        0x1700 => "VMX assist",
        0x3000 => "system call vectored",
        _ => "unknown",
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn msr_values() {
        assert_eq!(Msr::SF.bits(), 0x8000_0000_0000_0000);
        assert_eq!(Msr::HV.bits(), 0x1000_0000_0000_0000);
        assert_eq!(Msr::VEC.bits(), 0x0200_0000);
        assert_eq!(Msr::VSX.bits(), 0x0080_0000);
        assert_eq!(Msr::EE.bits(), 0x8000);
        assert_eq!(Msr::PR.bits(), 0x4000);
        assert_eq!(Msr::FP.bits(), 0x2000);
        assert_eq!(Msr::ME.bits(), 0x1000);
        assert_eq!(Msr::FE0.bits(), 0x0800);
        assert_eq!(Msr::SE.bits(), 0x0400);
        assert_eq!(Msr::BE.bits(), 0x0200);
        assert_eq!(Msr::FE1.bits(), 0x0100);
        assert_eq!(Msr::IR.bits(), 0x20);
        assert_eq!(Msr::DR.bits(), 0x10);
        assert_eq!(Msr::PMM.bits(), 0x4);
        assert_eq!(Msr::RI.bits(), 0x2);
        assert_eq!(Msr::LE.bits(), 0x1);
        // Names table covers every flag exactly once.
        let mut all = 0;
        for (m, _) in Msr::NAMES {
            assert_eq!(all & m, 0);
            all |= m;
        }
        assert_eq!(all, Msr::all().bits());
    }

    #[test]
    fn msr_display() {
        let m = Msr::SF | Msr::ME | Msr::IR | Msr::DR | Msr::RI;
        assert_eq!(format!("{}", m), "0x8000000000001032 <SF,ME,IR,DR,RI>");
        assert_eq!(format!("{}", Msr::empty()), "0x0000000000000000 <>");
        assert_eq!(
            format!("{}", Msr::from_bits_retain(0x8000_0000_0000_d032 | 0x40)),
            "0x800000000000d072 <SF,EE,PR,ME,IR,DR,RI,0x40>"
        );
        assert_eq!(format!("{}", Msr::from_bits_retain(0x40)), "0x0000000000000040 <0x40>");
        assert_eq!(
            format!("{}", Msr::all()),
            "0x900000000280ff37 <SF,HV,VEC,VSX,EE,PR,FP,ME,FE0,SE,BE,FE1,IR,DR,PMM,RI,LE>"
        );
    }

    #[test]
    fn dsisr_values_match_qemu() {
        // target/ppc/cpu.h (QEMU 7.2)
        assert_eq!(Dsisr::NOPTE.bits(), 0x40000000);
        assert_eq!(Dsisr::PROTFAULT.bits(), 0x08000000);
        assert_eq!(Dsisr::ISSTORE.bits(), 0x02000000);
        assert_eq!(Dsisr::AMR.bits(), 0x00200000);
        assert_eq!(Dsisr::BADCONFIG.bits(), 0x00080000);
        assert_eq!(Dsisr::ATOMIC_RC.bits(), 0x00040000);
        assert_eq!(Dsisr::PRTABLE_FAULT.bits(), 0x00020000);
        assert_eq!(Dsisr::DABR.bits(), 0x00400000);
        let mut all = 0;
        for (m, _) in Dsisr::NAMES {
            assert_eq!(all & m, 0);
            all |= m;
        }
        assert_eq!(all, Dsisr::all().bits() as u64);
    }

    #[test]
    fn dsisr_display() {
        assert_eq!(format!("{}", Dsisr::NOPTE | Dsisr::ISSTORE), "0x42000000 <NOPTE,STORE>");
        assert_eq!(format!("{}", Dsisr::PROTFAULT), "0x08000000 <PROT>");
        assert_eq!(format!("{}", Dsisr::empty()), "0x00000000 <>");
        assert_eq!(format!("{}", Dsisr::from_bits_retain(0x4a20_0001)), "0x4a200001 <NOPTE,PROT,STORE,KEY,0x1>");
    }

    #[test]
    fn isi_srr1() {
        assert_eq!(IsiSrr1::NOPTE.bits(), 0x4000_0000);
        assert_eq!(IsiSrr1::NOEXEC_GUARD.bits(), 0x1000_0000);
        assert_eq!(IsiSrr1::PROTFAULT.bits(), 0x0800_0000);
        assert_eq!(IsiSrr1::NOPTE.bits(), Dsisr::NOPTE.bits() as u64);
        assert_eq!(IsiSrr1::PROTFAULT.bits(), Dsisr::PROTFAULT.bits() as u64);
        // SRR1 also holds MSR bits; truncation keeps only the reason.
        let srr1 = 0x8000_0000_4000_1032u64;
        let r = IsiSrr1::from_bits_truncate(srr1);
        assert_eq!(r, IsiSrr1::NOPTE);
        assert_eq!(format!("{}", r), "0x40000000 <NOPTE>");
        assert_eq!(format!("{}", IsiSrr1::NOEXEC_GUARD | IsiSrr1::PROTFAULT), "0x18000000 <NOEXEC_GUARD,PROT>");
        assert_eq!(format!("{}", IsiSrr1::IAMR), "0x00200000 <KEY>");
    }

    #[test]
    fn program_srr1() {
        assert_eq!(ProgramSrr1::FPE.bits(), 0x0010_0000);
        assert_eq!(ProgramSrr1::ILLEGAL.bits(), 0x0008_0000);
        assert_eq!(ProgramSrr1::PRIV.bits(), 0x0004_0000);
        assert_eq!(ProgramSrr1::TRAP.bits(), 0x0002_0000);
        let r = ProgramSrr1::from_bits_truncate(0x8000_0000_0002_1032);
        assert_eq!(r, ProgramSrr1::TRAP);
        assert_eq!(format!("{}", r), "0x00020000 <TRAP>");
        assert_eq!(format!("{}", ProgramSrr1::FPE | ProgramSrr1::ADDR), "0x00110000 <FPE,ADDR>");
        assert_eq!(format!("{}", ProgramSrr1::ILLEGAL), "0x00080000 <ILLEGAL>");
        assert_eq!(format!("{}", ProgramSrr1::PRIV), "0x00040000 <PRIV>");
    }

    #[test]
    fn vector_names() {
        let cases: &[(u64, &str)] = &[
            (0x100, "system reset"),
            (0x200, "machine check"),
            (0x300, "data storage"),
            (0x380, "data segment"),
            (0x400, "instruction storage"),
            (0x480, "instruction segment"),
            (0x500, "external"),
            (0x600, "alignment"),
            (0x700, "program"),
            (0x800, "FP unavailable"),
            (0x900, "decrementer"),
            (0x980, "hypervisor decrementer"),
            (0xa00, "directed privileged doorbell"),
            (0xc00, "system call"),
            (0xd00, "trace"),
            (0xe00, "hypervisor data storage"),
            (0xe20, "hypervisor instruction storage"),
            (0xe40, "hypervisor emulation assistance"),
            (0xe60, "hypervisor maintenance"),
            (0xe80, "directed hypervisor doorbell"),
            (0xea0, "hypervisor virtualization"),
            (0xf00, "performance monitor"),
            (0xf20, "VMX unavailable"),
            (0xf40, "VSX unavailable"),
            (0xf60, "facility unavailable"),
            (0xf80, "hypervisor facility unavailable"),
            (0x1500, "denormalisation"),
            (0x1700, "VMX assist"),
            (0x3000, "system call vectored"),
        ];
        for &(v, n) in cases {
            assert_eq!(vector_name(v), n, "{:#x}", v);
        }
        for v in [0, 0x50, 0x101, 0xb00, 0xe10, 0x4300, 0xc000_0000_0000_4300, u64::MAX] {
            assert_eq!(vector_name(v), "unknown", "{:#x}", v);
        }
    }

    #[test]
    fn wake_reasons() {
        // QEMU's powerpc_reset_wakeup: SRR1_WS_NOLOSS plus the reason.
        assert_eq!(wake::reason(0x9000_0000_0000_1032), None, "an NMI outside nap");
        assert_eq!(wake::reason(0x9000_0000_0000_1032 | 0x1_0000 | 0x18_0000), Some(wake::DECREMENTER));
        assert_eq!(wake::reason(0x1_0000 | 0xc_0000), Some(wake::HV_DOORBELL));
        assert_eq!(wake::reason(0x1_0000 | 0x10_0000), Some(wake::RESET));
        assert_eq!(wake::REASON & wake::STATE, 0);
    }

    #[test]
    fn lpcr_values_match_qemu() {
        const fn ppc_bit(n: u32) -> u64 {
            1 << (63 - n)
        }
        assert_eq!(Lpcr::AIL_3.bits(), 3 << (63 - 40), "LPCR_AIL_SHIFT = 63 - 40");
        assert_eq!(Lpcr::P8_PECE0.bits(), ppc_bit(47));
        assert_eq!(Lpcr::P8_PECE1.bits(), ppc_bit(48));
        assert_eq!(Lpcr::P8_PECE2.bits(), ppc_bit(49));
        assert_eq!(Lpcr::P8_PECE3.bits(), ppc_bit(50));
        assert_eq!(Lpcr::P8_PECE4.bits(), ppc_bit(51));
        assert_eq!(Lpcr::LPES0.bits(), ppc_bit(60));
        assert_eq!(Lpcr::HAIL.bits(), ppc_bit(37), "LPCR_HAIL");
        assert_eq!(Lpcr::UPRT.bits(), ppc_bit(41));
        assert_eq!(Lpcr::HR.bits(), ppc_bit(43));
        assert_eq!(Lpcr::HAIL.bits() & (0xf << (63 - 37)), Lpcr::HAIL.bits(), "inside POWER8's LPCR_RMLS");
        assert_eq!(Lpcr::HDICE.bits(), ppc_bit(63));
        // skiboot v7.0 hands over LPCR 0x0040000000006000: a prefetch depth and PECE2|PECE3.
        assert_eq!(0x0040000000006000 & Lpcr::all().bits(), (Lpcr::P8_PECE2 | Lpcr::P8_PECE3).bits());
    }
}
