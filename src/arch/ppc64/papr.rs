//! PAPR hypercall numbers, flags and return codes: the pure part of the hypervisor interface,
//! shared by the kernel (`hcall`), the HPT backend trait, the host tests and the loom model.

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
pub const H_SIGNAL_SYS_RESET: u64 = 0x380;
pub const KVMPPC_H_RTAS: u64 = 0xf000;

/// The name of hypercall `op` (trace dumps), "?" for one this kernel does not make.
pub const fn name(op: u64) -> &'static str {
    match op {
        H_REMOVE => "H_REMOVE",
        H_ENTER => "H_ENTER",
        H_READ => "H_READ",
        H_PROTECT => "H_PROTECT",
        H_PUT_TERM_CHAR => "H_PUT_TERM_CHAR",
        H_EOI => "H_EOI",
        H_CPPR => "H_CPPR",
        H_IPI => "H_IPI",
        H_XIRR => "H_XIRR",
        H_CEDE => "H_CEDE",
        H_CONFER => "H_CONFER",
        H_PROD => "H_PROD",
        H_SET_MODE => "H_SET_MODE",
        H_SIGNAL_SYS_RESET => "H_SIGNAL_SYS_RESET",
        KVMPPC_H_RTAS => "KVMPPC_H_RTAS",
        _ => "?",
    }
}

/// H_ENTER/H_READ flag: use exactly the given PTE index.
pub const H_EXACT: u64 = 1 << (63 - 24);
/// H_READ flag: read 4 consecutive entries.
pub const H_READ_4: u64 = 1 << (63 - 26);
/// H_REMOVE/H_PROTECT flag: only act if the AVPN matches.
pub const H_AVPN: u64 = 1 << (63 - 32);
/// H_REMOVE flag: only act if (v & avpn) == 0 (used with the BOLTED bit as the mask).
pub const H_ANDCOND: u64 = 1 << (63 - 33);

/// H_SET_MODE resource 3: address translation mode for interrupts (LPCR[AIL]).
pub const H_SET_MODE_RESOURCE_ADDR_TRANS_MODE: u64 = 3;
/// AIL = 3: interrupts taken with IR=DR=1 arrive at 0xc000000000004000 + vector, translated.
pub const AIL_0XC000000000004000: u64 = 3;

/// A hypervisor refusal, by name. Status codes are kept as i16 (PAPR's fit): the hash-fault
/// outcome that carries one then fits in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HcallError {
    /// H_BUSY (1) or one of the long-busy codes (9900..9905): try again.
    Busy(i16),
    Hardware,
    Function,
    Privilege,
    Parameter,
    BadMode,
    PtegFull,
    NotFound,
    /// Any other status (saturated to i16).
    Other(i16),
}

impl HcallError {
    /// Always inlined: the hash fault path decodes a refusal in place, where a call would cost
    /// it a stack frame.
    #[inline(always)]
    pub const fn from_rc(rc: i64) -> HcallError {
        match rc {
            1 | 9900..=9905 => HcallError::Busy(rc as i16),
            -1 => HcallError::Hardware,
            -2 => HcallError::Function,
            -3 => HcallError::Privilege,
            -4 => HcallError::Parameter,
            -5 => HcallError::BadMode,
            -6 => HcallError::PtegFull,
            -7 => HcallError::NotFound,
            x if x < i16::MIN as i64 => HcallError::Other(i16::MIN),
            x if x > i16::MAX as i64 => HcallError::Other(i16::MAX),
            x => HcallError::Other(x as i16),
        }
    }

    /// The status code the hypervisor returned.
    pub const fn rc(self) -> i64 {
        match self {
            HcallError::Busy(rc) | HcallError::Other(rc) => rc as i64,
            HcallError::Hardware => -1,
            HcallError::Function => -2,
            HcallError::Privilege => -3,
            HcallError::Parameter => -4,
            HcallError::BadMode => -5,
            HcallError::PtegFull => -6,
            HcallError::NotFound => -7,
        }
    }

    /// Whether repeating the same call later may succeed.
    pub const fn is_transient(self) -> bool {
        matches!(self, HcallError::Busy(_))
    }
}

impl fmt::Display for HcallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HcallError::Busy(1) => f.write_str("H_BUSY"),
            HcallError::Busy(rc) => write!(f, "H_LONG_BUSY ({rc})"),
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

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn hcall_names() {
        assert_eq!(name(H_ENTER), "H_ENTER");
        assert_eq!(name(KVMPPC_H_RTAS), "KVMPPC_H_RTAS");
        assert_eq!(name(0x1234), "?");
    }

    #[test]
    fn return_codes_round_trip() {
        for rc in [1i64, 9900, 9905, -1, -2, -3, -4, -5, -6, -7, -9, 42] {
            assert_eq!(HcallError::from_rc(rc).rc(), rc, "{rc}");
        }
        assert!(HcallError::from_rc(1).is_transient());
        assert!(HcallError::from_rc(9902).is_transient());
        assert!(!HcallError::from_rc(-1).is_transient());
        assert_eq!(std::format!("{}", HcallError::from_rc(-6)), "H_PTEG_FULL");
        assert_eq!(std::format!("{}", HcallError::from_rc(9901)), "H_LONG_BUSY (9901)");
    }

    #[test]
    fn flags_match_papr_bit_numbers() {
        // PAPR numbers flag bits from the MSB (bit 0 = 2^63).
        assert_eq!(H_EXACT, 0x0000_0080_0000_0000);
        assert_eq!(H_READ_4, 0x0000_0020_0000_0000);
        assert_eq!(H_AVPN, 0x0000_0000_8000_0000);
        assert_eq!(H_ANDCOND, 0x0000_0000_4000_0000);
    }
}
