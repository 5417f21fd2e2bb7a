//! The trace's vocabulary, in one typed place: the events and their groups, the 32-byte record
//! and its packed header word, the compact dump line, the hash_page outcome read off the
//! counters, and the pure scan that finds a fault nested inside a lock hold. Everything here
//! is pure (host unit tests); the rings, the patched trace points and the dump are in `ring`
//! and `site`.

use crate::hash::stats::{Counter, Snapshot};
use bitflags::bitflags;
use core::fmt;

bitflags! {
    /// Event groups, chosen with the `trace=` bootarg.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub struct Groups: u32 {
        /// Exception entry and exit (vector, DAR, NIP, nesting depth), every vector.
        const EXC = 1 << 0;
        /// hash_page: the PTE take and publish, the outcome of each 0x300.
        const HASH = 1 << 1;
        /// Hypervisor calls (number, status); console output (H_PUT_TERM_CHAR) is left out.
        const HCALL = 1 << 2;
        /// page_table_lock: acquire, contended (with the holder), release.
        const LOCK = 1 << 3;
        /// vmalloc/vfree, ioremap/iounmap.
        const MM = 1 << 4;
        /// The decrementer handler.
        const TIMER = 1 << 5;
        /// The deadlock watchdog's report.
        const WATCHDOG = 1 << 6;
    }
}

/// Group names as the bootarg spells them, in bit order.
pub const GROUP_NAMES: [(&str, Groups); 7] = [
    ("exc", Groups::EXC),
    ("hash", Groups::HASH),
    ("hcall", Groups::HCALL),
    ("lock", Groups::LOCK),
    ("mm", Groups::MM),
    ("timer", Groups::TIMER),
    ("watchdog", Groups::WATCHDOG),
];

/// What `trace=` accepts (the bootarg error message quotes it).
pub const GROUPS_HELP: &str = "all, off, or a comma-separated list of exc,hash,hcall,lock,mm,timer,watchdog";

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum GroupError<'a> {
    Empty,
    Unknown(&'a str),
}

impl fmt::Display for GroupError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Empty => write!(f, "empty event group list"),
            GroupError::Unknown(g) => write!(f, "unknown event group '{g}'"),
        }
    }
}

/// `all`, `off`/`none`, or `exc,lock,...` (no duplicates check: naming a group twice is harmless).
pub fn parse_groups(s: &str) -> Result<Groups, GroupError<'_>> {
    match s {
        "all" => return Ok(Groups::all()),
        "off" | "none" => return Ok(Groups::empty()),
        "" => return Err(GroupError::Empty),
        _ => {}
    }
    let mut g = Groups::empty();
    for name in s.split(',') {
        if name.is_empty() {
            return Err(GroupError::Empty);
        }
        g |= GROUP_NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).ok_or(GroupError::Unknown(name))?;
    }
    Ok(g)
}

/// Writes `g` the way `parse_groups` reads it.
pub struct GroupList(pub Groups);

impl fmt::Display for GroupList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_all() {
            return write!(f, "all");
        }
        if self.0.is_empty() {
            return write!(f, "off");
        }
        let mut first = true;
        for (n, b) in GROUP_NAMES {
            if self.0.contains(b) {
                write!(f, "{}{}", if first { "" } else { "," }, n)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The events. The payload words `c` (32 bits), `a` and `b` mean, per event:
///
/// | event | c | a | b |
/// |---|---|---|---|
/// | ExcEntry | vector | DAR | NIP (interrupted) |
/// | ExcExit | vector | NIP (returned to) | 0 |
/// | HashOutcome | `Outcome` | fault address | verdict (0: handled) |
/// | PteTake | PTE address, low 32 bits | old PTE | new PTE (BUSY set) |
/// | PtePublish | PTE address, low 32 bits | published PTE | 0 |
/// | Hcall | number | status | r4 (fast-path calls: one event after the call) |
/// | HcallBegin | number | r4 | r5 |
/// | HcallEnd | number | status | r4 |
/// | LockAcquire | taker (`LockWho`) | lock address | call site (`&Location`) |
/// | LockContended | holder (`LockWho`) | lock address | holder's call site |
/// | LockRelease | 0 | lock address | 0 |
/// | Vmalloc | 0 vmalloc, 1 ioremap | area address | pages |
/// | Vfree | 0 vfree, 1 iounmap | area address | 0 |
/// | Decrementer | 0 | NIP (interrupted) | 0 |
/// | Watchdog | stuck CPU | ticks without progress | lock it spins on |
/// | Mark | `Mark` | value | value |
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Event {
    ExcEntry = 1,
    ExcExit = 2,
    HashOutcome = 3,
    PteTake = 4,
    PtePublish = 5,
    Hcall = 6,
    HcallBegin = 7,
    HcallEnd = 8,
    LockAcquire = 9,
    LockContended = 10,
    LockRelease = 11,
    Vmalloc = 12,
    Vfree = 13,
    Decrementer = 14,
    Watchdog = 15,
    Mark = 16,
}

impl Event {
    pub const ALL: [Event; 16] = [
        Event::ExcEntry,
        Event::ExcExit,
        Event::HashOutcome,
        Event::PteTake,
        Event::PtePublish,
        Event::Hcall,
        Event::HcallBegin,
        Event::HcallEnd,
        Event::LockAcquire,
        Event::LockContended,
        Event::LockRelease,
        Event::Vmalloc,
        Event::Vfree,
        Event::Decrementer,
        Event::Watchdog,
        Event::Mark,
    ];

    /// The group that switches it on. Marks belong to no group: they are recorded whenever
    /// any group is on.
    pub const fn group(self) -> Groups {
        match self {
            Event::ExcEntry | Event::ExcExit => Groups::EXC,
            Event::HashOutcome | Event::PteTake | Event::PtePublish => Groups::HASH,
            Event::Hcall | Event::HcallBegin | Event::HcallEnd => Groups::HCALL,
            Event::LockAcquire | Event::LockContended | Event::LockRelease => Groups::LOCK,
            Event::Vmalloc | Event::Vfree => Groups::MM,
            Event::Decrementer => Groups::TIMER,
            Event::Watchdog => Groups::WATCHDOG,
            Event::Mark => Groups::empty(),
        }
    }

    /// Two letters in the dump (scripts/trace.py and scripts/helpers.gdb use the same).
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Event::ExcEntry => "xe",
            Event::ExcExit => "xx",
            Event::HashOutcome => "ho",
            Event::PteTake => "pt",
            Event::PtePublish => "pp",
            Event::Hcall => "hc",
            Event::HcallBegin => "hb",
            Event::HcallEnd => "he",
            Event::LockAcquire => "la",
            Event::LockContended => "lc",
            Event::LockRelease => "lr",
            Event::Vmalloc => "va",
            Event::Vfree => "vf",
            Event::Decrementer => "dc",
            Event::Watchdog => "wd",
            Event::Mark => "mk",
        }
    }

    pub const fn from_u8(v: u8) -> Option<Event> {
        if v >= 1 && v <= 16 {
            Some(Event::ALL[v as usize - 1])
        } else {
            None
        }
    }

    pub fn from_mnemonic(m: &str) -> Option<Event> {
        Event::ALL.iter().copied().find(|e| e.mnemonic() == m)
    }
}

/// The 32-bit code a trace point carries as an immediate: the event in the low byte, its
/// static `c` payload (an hcall number, a vmalloc/ioremap flag) above it.
pub const fn code(ev: Event, c: u32) -> u32 {
    assert!(c <= 0xffff, "a trace point's static payload has 16 bits");
    ev as u32 | c << 8
}

pub const fn code_event(code: u64) -> Option<Event> {
    Event::from_u8(code as u8)
}

pub const fn code_payload(code: u64) -> u32 {
    ((code >> 8) & 0xffff) as u32
}

/// The record header word: event (8 bits) | depth (8) | sequence (16) | c (32). The sequence
/// is the low 16 bits of the record's index + 1: a reader accepts a slot only if it matches,
/// so a slot whose writer was stopped half-way (a system reset) is recognised as torn.
pub const fn pack_w0(ev: Event, depth: u64, index: u64, c: u32) -> u64 {
    (ev as u64) << 56 | (if depth > 255 { 255 } else { depth }) << 48 | (seq_of(index) as u64) << 32 | c as u64
}

pub const fn seq_of(index: u64) -> u16 {
    index.wrapping_add(1) as u16
}

/// One recorded event, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rec {
    /// Position in its CPU's ring history (0 = the first event ever recorded there).
    pub index: u64,
    pub tb: u64,
    pub ev: Event,
    pub depth: u8,
    pub c: u32,
    pub a: u64,
    pub b: u64,
}

impl Rec {
    /// Decodes slot contents read for history position `index`; None if the slot does not
    /// hold that record (torn, or not written yet).
    pub fn decode(index: u64, tb: u64, w0: u64, a: u64, b: u64) -> Option<Rec> {
        let ev = Event::from_u8((w0 >> 56) as u8)?;
        if (w0 >> 32) as u16 != seq_of(index) {
            return None;
        }
        Some(Rec { index, tb, ev, depth: (w0 >> 48) as u8, c: w0 as u32, a, b })
    }
}

/// One dump line: `T<cpu> +<ticks since the previous event of that CPU> <mnemonic> <depth>
/// <c> <a> <b>`, numbers in hex but the delta, trailing zero payload words left out.
pub struct Line<'a> {
    pub cpu: usize,
    pub prev_tb: u64,
    pub rec: &'a Rec,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rec;
        write!(f, "T{} +{} {} {}", self.cpu, r.tb.wrapping_sub(self.prev_tb), r.ev.mnemonic(), r.depth)?;
        let words = [r.c as u64, r.a, r.b];
        let n = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
        for w in &words[..n] {
            write!(f, " {:x}", w)?;
        }
        Ok(())
    }
}

/// Who holds or takes a lock, as `c` of the lock events: CPU + 1 in the low 16 bits, the
/// exception depth above (the lock's own state word, `sync::ptlock`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LockWho {
    pub cpu: u32,
    pub depth: u32,
}

impl LockWho {
    pub const fn from_state(s: u64) -> Option<LockWho> {
        if s & 0xffff == 0 {
            None
        } else {
            Some(LockWho { cpu: (s & 0xffff) as u32 - 1, depth: (s >> 16) as u32 })
        }
    }
}

/// What one 0x300 came to, read off the per-CPU counters it moved (every fault bumps exactly
/// one outcome counter, `hash::stats`) and the verdict it left.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Outcome {
    InsertedPrimary = 1,
    InsertedSecondary = 2,
    Updated = 3,
    /// Inserted after evicting another entry.
    Evicted = 4,
    /// Another CPU holds BUSY: re-executed.
    Busy = 5,
    /// The stdcx. lost its reservation: re-executed.
    Lost = 6,
    Denied = 7,
    HvBusy = 8,
    EvictRetry = 9,
    Refused = 10,
    AllBolted = 11,
    /// No outcome counter moved (the fault never got to the protocol: not a hash miss).
    None = 12,
}

impl Outcome {
    pub const NAMES: [&'static str; 12] = [
        "inserted_primary",
        "inserted_secondary",
        "updated",
        "inserted_after_eviction",
        "busy",
        "lost_reservation",
        "denied",
        "hv_busy",
        "eviction_retry",
        "refused",
        "all_bolted",
        "none",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize - 1]
    }

    pub const ALL: [Outcome; 12] = [
        Outcome::InsertedPrimary,
        Outcome::InsertedSecondary,
        Outcome::Updated,
        Outcome::Evicted,
        Outcome::Busy,
        Outcome::Lost,
        Outcome::Denied,
        Outcome::HvBusy,
        Outcome::EvictRetry,
        Outcome::Refused,
        Outcome::AllBolted,
        Outcome::None,
    ];

    pub const fn from_u8(v: u8) -> Option<Outcome> {
        if v >= 1 && v <= 12 {
            Some(Self::ALL[v as usize - 1])
        } else {
            None
        }
    }

    /// From the counters one fault moved.
    pub fn from_delta(d: &Snapshot) -> Outcome {
        let moved = |c: Counter| d.get(c) != 0;
        if moved(Counter::InsertPrimary) || moved(Counter::InsertSecondary) {
            if moved(Counter::Evictions) {
                Outcome::Evicted
            } else if moved(Counter::InsertSecondary) {
                Outcome::InsertedSecondary
            } else {
                Outcome::InsertedPrimary
            }
        } else if moved(Counter::Updates) {
            Outcome::Updated
        } else if moved(Counter::BusyRetries) {
            Outcome::Busy
        } else if moved(Counter::StcxFails) {
            Outcome::Lost
        } else if moved(Counter::BadAccess) {
            Outcome::Denied
        } else if moved(Counter::RetryHvBusy) {
            Outcome::HvBusy
        } else if moved(Counter::RetryEvictions) {
            Outcome::EvictRetry
        } else if moved(Counter::HvRefusals) {
            Outcome::Refused
        } else if moved(Counter::AllBolted) {
            Outcome::AllBolted
        } else {
            Outcome::None
        }
    }
}

/// Marks: points in a run that the timeline labels (`Event::Mark`, `c`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Mark {
    /// The interrupt scenario starts (a = iterations).
    IrqtestStart = 1,
    /// ... and ends (a = interrupts delivered inside the critical section).
    IrqtestEnd = 2,
    /// A test's own marker (a, b: whatever the test writes).
    Test = 3,
    /// Recording stops here (`trace.stop=`); nothing after it is in the rings.
    Stopped = 4,
}

/// How a lock hold looked on one CPU, as `scan_lock_holds` sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LockScan {
    /// Holds taken in thread context (depth 0) and released.
    pub holds: u64,
    /// Of those, holds inside which a 0x900 took a 0x300 that returned (the lock-free fix).
    pub holds_with_completed_fault: u64,
    /// The 2003 deadlock: indexes of the thread-context acquire, the 0x900 entry, the 0x300
    /// entry inside it and the contended event, with no release between.
    pub deadlock: Option<[u64; 4]>,
}

/// Scans one CPU's events in order for page_table_lock (`lock`) holds taken in thread context
/// and what nested inside them. A hold interrupted by a decrementer (0x900) whose handler took
/// a 0x300 either sees that 0x300 return (counted in `holds_with_completed_fault`) or sees the
/// 0x300 find the lock taken (`deadlock`): the interleaving this kernel exists to show.
pub fn scan_lock_holds(recs: &[Rec], lock: u64) -> LockScan {
    let mut s = LockScan::default();
    // Index of the thread-context acquire, of the 0x900 entry and of the 0x300 entry inside
    // the hold (while they are open), and whether a nested 0x300 completed.
    let mut hold: Option<u64> = None;
    let mut dec: Option<(u64, u8)> = None;
    let mut fault: Option<(u64, u8)> = None;
    let mut completed = false;
    for r in recs {
        match r.ev {
            Event::LockAcquire if r.a == lock && r.depth == 0 => {
                hold = Some(r.index);
                dec = None;
                fault = None;
                completed = false;
            }
            Event::LockRelease if r.a == lock && r.depth == 0 && hold.is_some() => {
                s.holds += 1;
                if completed {
                    s.holds_with_completed_fault += 1;
                }
                hold = None;
            }
            Event::ExcEntry if hold.is_some() && r.c == 0x900 => dec = Some((r.index, r.depth)),
            Event::ExcExit if r.c == 0x900 && matches!(dec, Some((_, d)) if d == r.depth) => {
                dec = None;
                fault = None;
            }
            Event::ExcEntry if r.c == 0x300 && matches!(dec, Some((_, d)) if r.depth > d) => {
                fault = Some((r.index, r.depth))
            }
            Event::ExcExit if r.c == 0x300 && matches!(fault, Some((_, d)) if d == r.depth) => {
                fault = None;
                completed = true;
            }
            Event::LockContended if r.a == lock => {
                if let (Some(h), Some((d, _)), Some((f, _))) = (hold, dec, fault) {
                    s.deadlock.get_or_insert([h, d, f, r.index]);
                }
            }
            _ => {}
        }
    }
    s
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn groups_parse_and_print() {
        assert_eq!(parse_groups("all"), Ok(Groups::all()));
        assert_eq!(parse_groups("off"), Ok(Groups::empty()));
        assert_eq!(parse_groups("none"), Ok(Groups::empty()));
        assert_eq!(parse_groups("exc,lock"), Ok(Groups::EXC | Groups::LOCK));
        assert_eq!(parse_groups("watchdog"), Ok(Groups::WATCHDOG));
        for (n, g) in GROUP_NAMES {
            assert_eq!(parse_groups(n), Ok(g));
            assert!(GROUPS_HELP.contains(n), "{n} missing from the help text");
        }
        let all: u32 = GROUP_NAMES.iter().map(|(_, g)| g.bits()).sum();
        assert_eq!(all, Groups::all().bits(), "every group has a name");
        assert_eq!(GroupList(Groups::EXC | Groups::HCALL).to_string(), "exc,hcall");
        assert_eq!(GroupList(Groups::all()).to_string(), "all");
        assert_eq!(GroupList(Groups::empty()).to_string(), "off");
    }

    #[test]
    fn bad_groups_are_named() {
        assert_eq!(parse_groups("exc,lokc"), Err(GroupError::Unknown("lokc")));
        assert_eq!(parse_groups("bogus"), Err(GroupError::Unknown("bogus")));
        assert_eq!(parse_groups(""), Err(GroupError::Empty));
        assert_eq!(parse_groups("exc,"), Err(GroupError::Empty));
        assert_eq!(parse_groups("ALL"), Err(GroupError::Unknown("ALL")));
        assert_eq!(GroupError::Unknown("x").to_string(), "unknown event group 'x'");
    }

    #[test]
    fn events_round_trip() {
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i + 1);
            assert_eq!(Event::from_u8(*e as u8), Some(*e));
            assert_eq!(Event::from_mnemonic(e.mnemonic()), Some(*e));
        }
        assert_eq!(Event::from_u8(0), None);
        assert_eq!(Event::from_u8(17), None);
        let mut m: Vec<_> = Event::ALL.iter().map(|e| e.mnemonic()).collect();
        m.sort();
        m.dedup();
        assert_eq!(m.len(), Event::ALL.len(), "mnemonics are unique");
    }

    #[test]
    fn codes_carry_event_and_payload() {
        let c = code(Event::Hcall, 0xf000) as u64;
        assert_eq!(code_event(c), Some(Event::Hcall));
        assert_eq!(code_payload(c), 0xf000);
        // The stub loads the code with lis/ori: the high half must be a positive lis immediate.
        assert!(c >> 16 <= 0x7fff);
    }

    #[test]
    fn header_word_round_trip_and_torn_slots() {
        let w0 = pack_w0(Event::LockContended, 2, 41, 0x0002_0001);
        let r = Rec::decode(41, 1000, w0, 0xc000_0000_0045_eb38, 7).unwrap();
        assert_eq!(
            (r.ev, r.depth, r.c, r.a, r.b, r.tb),
            (Event::LockContended, 2, 0x0002_0001, 0xc000_0000_0045_eb38, 7, 1000)
        );
        // The same slot read as another history position (one ring length later or earlier) is
        // not that record.
        assert_eq!(Rec::decode(41 + 4096, 1000, w0, 0, 0), None);
        assert_eq!(Rec::decode(40, 1000, w0, 0, 0), None);
        // Never written.
        assert_eq!(Rec::decode(0, 0, 0, 0, 0), None);
        // Depth saturates instead of wrapping into the event byte.
        assert_eq!(pack_w0(Event::Mark, 300, 0, 0) >> 48 & 0xff, 255);
        assert_eq!(pack_w0(Event::Mark, 300, 0, 0) >> 56, Event::Mark as u64);
    }

    #[test]
    fn dump_lines_are_compact() {
        let r = Rec { index: 0, tb: 1500, ev: Event::ExcEntry, depth: 1, c: 0x900, a: 0, b: 0xc000_0000_0043_a5f0 };
        assert_eq!(Line { cpu: 0, prev_tb: 1000, rec: &r }.to_string(), "T0 +500 xe 1 900 0 c00000000043a5f0");
        let r = Rec { index: 0, tb: 7, ev: Event::LockRelease, depth: 0, c: 0, a: 0xc0000000_0045eb38, b: 0 };
        assert_eq!(Line { cpu: 3, prev_tb: 7, rec: &r }.to_string(), "T3 +0 lr 0 0 c00000000045eb38");
        let r = Rec { index: 0, tb: 9, ev: Event::Mark, depth: 0, c: 0, a: 0, b: 0 };
        assert_eq!(Line { cpu: 1, prev_tb: 0, rec: &r }.to_string(), "T1 +9 mk 0");
    }

    #[test]
    fn lock_who() {
        assert_eq!(LockWho::from_state(0), None);
        assert_eq!(LockWho::from_state(1), Some(LockWho { cpu: 0, depth: 0 }));
        assert_eq!(LockWho::from_state(3 | 2 << 16), Some(LockWho { cpu: 2, depth: 2 }));
    }

    #[test]
    fn outcomes_from_counters() {
        let d = |cs: &[Counter]| {
            let mut s = Snapshot::default();
            for c in cs {
                s.0[*c as usize] += 1;
            }
            Outcome::from_delta(&s)
        };
        assert_eq!(d(&[Counter::InsertPrimary]), Outcome::InsertedPrimary);
        assert_eq!(d(&[Counter::InsertSecondary]), Outcome::InsertedSecondary);
        assert_eq!(d(&[Counter::InsertPrimary, Counter::Evictions]), Outcome::Evicted);
        assert_eq!(d(&[Counter::InsertPrimary, Counter::LockedFaults]), Outcome::InsertedPrimary);
        assert_eq!(d(&[Counter::Updates]), Outcome::Updated);
        assert_eq!(d(&[Counter::BusyRetries, Counter::Confers]), Outcome::Busy);
        assert_eq!(d(&[Counter::StcxFails]), Outcome::Lost);
        assert_eq!(d(&[Counter::BadAccess]), Outcome::Denied);
        assert_eq!(d(&[Counter::RetryHvBusy]), Outcome::HvBusy);
        assert_eq!(d(&[Counter::RetryEvictions]), Outcome::EvictRetry);
        assert_eq!(d(&[Counter::HvRefusals]), Outcome::Refused);
        assert_eq!(d(&[Counter::AllBolted]), Outcome::AllBolted);
        assert_eq!(d(&[]), Outcome::None);
        assert_eq!(Outcome::Evicted.name(), "inserted_after_eviction");
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i + 1);
            assert_eq!(Outcome::from_u8(*o as u8), Some(*o));
        }
        assert_eq!(Outcome::from_u8(0), None);
        assert_eq!(Outcome::None.name(), "none");
    }

    const LOCK: u64 = 0xc000_0000_0045_eb38;

    fn seq(evs: &[(Event, u8, u32, u64)]) -> Vec<Rec> {
        evs.iter()
            .enumerate()
            .map(|(i, &(ev, depth, c, a))| Rec { index: i as u64, tb: i as u64, ev, depth, c, a, b: 0 })
            .collect()
    }

    #[test]
    fn scan_finds_the_completed_fault_inside_the_hold() {
        use Event::*;
        let r = seq(&[
            (LockAcquire, 0, 1, LOCK),
            (ExcEntry, 1, 0x900, 0),
            (ExcEntry, 2, 0x380, 0),
            (ExcExit, 2, 0x380, 0),
            (ExcEntry, 2, 0x300, 0),
            (ExcExit, 2, 0x300, 0),
            (ExcExit, 1, 0x900, 0),
            (LockRelease, 0, 0, LOCK),
            (LockAcquire, 0, 1, LOCK),
            (LockRelease, 0, 0, LOCK),
        ]);
        let s = scan_lock_holds(&r, LOCK);
        assert_eq!(s, LockScan { holds: 2, holds_with_completed_fault: 1, deadlock: None });
        // Another lock's holds do not count.
        assert_eq!(scan_lock_holds(&r, LOCK + 8).holds, 0);
    }

    #[test]
    fn scan_finds_the_deadlock() {
        use Event::*;
        let r = seq(&[
            (LockAcquire, 0, 1, LOCK),
            (ExcEntry, 1, 0x900, 0),
            (Decrementer, 1, 0, 0),
            (ExcEntry, 2, 0x300, 0),
            (LockContended, 2, 1, LOCK),
            (ExcEntry, 3, 0x100, 0),
        ]);
        let s = scan_lock_holds(&r, LOCK);
        assert_eq!(s.deadlock, Some([0, 1, 3, 4]));
        assert_eq!(s.holds, 0);
    }

    #[test]
    fn scan_needs_the_whole_nesting() {
        use Event::*;
        // A release between the acquire and the contention: no deadlock of this kind.
        let r = seq(&[
            (LockAcquire, 0, 1, LOCK),
            (LockRelease, 0, 0, LOCK),
            (ExcEntry, 1, 0x900, 0),
            (ExcEntry, 2, 0x300, 0),
            (LockContended, 2, 1, LOCK),
        ]);
        assert_eq!(scan_lock_holds(&r, LOCK).deadlock, None);
        // A 0x300 that is not inside the decrementer (it returned first).
        let r = seq(&[
            (LockAcquire, 0, 1, LOCK),
            (ExcEntry, 1, 0x900, 0),
            (ExcExit, 1, 0x900, 0),
            (ExcEntry, 1, 0x300, 0),
            (LockContended, 1, 1, LOCK),
        ]);
        assert_eq!(scan_lock_holds(&r, LOCK).deadlock, None);
        // Contention from another CPU's hold (no thread-context acquire here): not this one.
        let r = seq(&[(ExcEntry, 1, 0x900, 0), (ExcEntry, 2, 0x300, 0), (LockContended, 2, 2, LOCK)]);
        assert_eq!(scan_lock_holds(&r, LOCK).deadlock, None);
    }
}
