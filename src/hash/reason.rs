//! Why an exception could not be handled: the reason an oops (or a fixup, or a user-mode fault
//! handed back to a test) reports. The 0x300 fast path returns its verdict to the assembly as
//! one register (`encode`), and the slow path decodes it, so a denied access is decided once
//! and counted once.

use super::access::Denied;
use crate::arch::ppc64::papr::HcallError;
use core::fmt;

/// The hypervisor call an outcome refers to (for the oops that reports a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hcall {
    Enter,
    Protect,
    Read,
    Remove,
}

impl Hcall {
    pub const fn name(self) -> &'static str {
        match self {
            Hcall::Enter => "H_ENTER",
            Hcall::Protect => "H_PROTECT",
            Hcall::Read => "H_READ",
            Hcall::Remove => "H_REMOVE",
        }
    }
}

/// What a fault handler concluded (every handler the trap dispatch calls returns it).
pub enum Handled {
    /// Translation installed (or retry): re-execute the access.
    Done,
    /// The access is not allowed / the address is not mapped: fixup or oops.
    Bad(FaultReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultReason {
    /// DSISR/SRR1 name a cause other than a missing or too weak HPTE (DABR, storage key, N/G).
    NotHashMiss,
    /// The address has no page table: not in the vmalloc/I/O regions, or not allocated there.
    NoPageTable,
    Denied(Denied),
    /// Every slot of both HPTE groups is bolted.
    AllBolted,
    /// The hypervisor refused a call with a permanent error.
    Refused(Hcall, HcallError),
    /// Anything else, described by the handler that gave up.
    Other(&'static str),
}

impl FaultReason {
    /// One register for the fast path's return value: never 0 (0 means "handled").
    /// Layout: bits 7:0 kind (1..), 15:8 detail, 63:16 hypervisor status (signed).
    pub fn encode(self) -> u64 {
        let (kind, detail, rc): (u64, u64, i64) = match self {
            FaultReason::NotHashMiss => (1, 0, 0),
            FaultReason::NoPageTable => (2, 0, 0),
            FaultReason::Denied(d) => (3, d as u64, 0),
            FaultReason::AllBolted => (4, 0, 0),
            FaultReason::Refused(call, e) => (5, call as u64, e.rc()),
            // Not produced by the fast path; kept decodable anyway.
            FaultReason::Other(_) => (6, 0, 0),
        };
        kind | detail << 8 | (rc as u64) << 16
    }

    pub fn decode(v: u64) -> FaultReason {
        let detail = (v >> 8) & 0xff;
        let rc = (v as i64) >> 16;
        match v & 0xff {
            1 => FaultReason::NotHashMiss,
            2 => FaultReason::NoPageTable,
            3 => FaultReason::Denied(match detail {
                0 => Denied::NotPresent,
                1 => Denied::UserToKernel,
                2 => Denied::WriteToReadOnly,
                3 => Denied::NoExec,
                _ => Denied::ExecGuarded,
            }),
            4 => FaultReason::AllBolted,
            5 => FaultReason::Refused(
                match detail {
                    0 => Hcall::Enter,
                    1 => Hcall::Protect,
                    2 => Hcall::Read,
                    _ => Hcall::Remove,
                },
                HcallError::from_rc(rc),
            ),
            _ => FaultReason::Other("unknown fault reason"),
        }
    }
}

impl From<&'static str> for FaultReason {
    fn from(s: &'static str) -> Self {
        FaultReason::Other(s)
    }
}

impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultReason::NotHashMiss => f.write_str("a storage fault that is not a hash miss (see DSISR/SRR1)"),
            FaultReason::NoPageTable => f.write_str("no page table covers this address"),
            FaultReason::Denied(d) => f.write_str(match d {
                Denied::NotPresent => "access to a page that is not present (unmapped, guard page or swap entry)",
                Denied::UserToKernel => "problem-state access to a kernel page",
                Denied::WriteToReadOnly => "store to a read-only page",
                Denied::NoExec => "instruction fetch from a no-execute page",
                Denied::ExecGuarded => "instruction fetch from a guarded page",
            }),
            FaultReason::AllBolted => {
                f.write_str("every slot of both HPTE groups holds a bolted entry: no HPTE can be inserted")
            }
            FaultReason::Refused(call, e) => write!(f, "the hypervisor refused {}: {}", call.name(), e),
            FaultReason::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let all = [
            FaultReason::NotHashMiss,
            FaultReason::NoPageTable,
            FaultReason::Denied(Denied::NotPresent),
            FaultReason::Denied(Denied::UserToKernel),
            FaultReason::Denied(Denied::WriteToReadOnly),
            FaultReason::Denied(Denied::NoExec),
            FaultReason::Denied(Denied::ExecGuarded),
            FaultReason::AllBolted,
            FaultReason::Refused(Hcall::Enter, HcallError::Hardware),
            FaultReason::Refused(Hcall::Remove, HcallError::Parameter),
            FaultReason::Refused(Hcall::Protect, HcallError::Other(-9999)),
        ];
        for r in all {
            let v = r.encode();
            assert_ne!(v, 0, "{r:?}");
            assert_eq!(FaultReason::decode(v), r);
        }
    }

    #[test]
    fn refusals_name_the_call_and_status() {
        let s = std::format!("{}", FaultReason::Refused(Hcall::Enter, HcallError::Hardware));
        assert_eq!(s, "the hypervisor refused H_ENTER: H_HARDWARE");
    }
}
