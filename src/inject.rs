//! Fault injection, after Linux's fault-injection framework (`fail_page_alloc`, `failslab`,
//! and the `interval`/`probability` of `Documentation/fault-injection`): the `inject=` bootarg
//! makes hypervisor calls answer with the errors PAPR allows them, and frame and heap
//! allocations fail, every Nth call or with a probability, from a seed, so a run can show that
//! nothing is lost when the hypervisor or the allocators say no.
//!
//! This file holds the pure part — the kinds, the plan a bootarg describes, and the decision
//! for one call (host-tested) — and, in the kernel, the armed plan, the per-CPU call counters
//! and random streams, and the counters of what was injected. The hypervisor side is a
//! `HashBackend` wrapper (`hash::inject::Injecting`); the 0x300 entry reaches it through its
//! own hash-fault design, so the default fault path pays nothing for it.
//!
//! What is injected, and why each answer is one the kernel must survive:
//! - `H_ENTER` → `H_PTEG_FULL`: another CPU may fill the group at any time; the protocol goes
//!   on to the secondary group and evicts.
//! - `H_ENTER`/`H_PROTECT`/`H_REMOVE` → `H_BUSY`, `H_ENTER` → long busy (9900..9905): the
//!   call is not made; the fault restores its PTE and re-executes, a flush asks again.
//! - `H_PROTECT`/`H_REMOVE` → `H_NOT_FOUND`, made true: the entry is really removed first (as
//!   an eviction by another CPU would), then "not found" is reported — never a "not found"
//!   for an entry that still translates.
//! - `H_HARDWARE` on one of the three calls: permanent — from its first failure on, every call
//!   of that kind fails (the call is not made). The fault path reports it as an oops naming
//!   the call and status; an unmap that cannot remove an HPTE stops the kernel the same way.
//! - frame and heap allocation: `frame::alloc` returns out-of-memory; the heap returns null,
//!   but only to allocations that handle it (inside `fallible`, as vmalloc's `try_reserve`):
//!   an infallible Rust allocation that fails aborts, so those are left alone, as Linux leaves
//!   `__GFP_NOFAIL` allocations alone.

use core::fmt;

/// What can be made to fail.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Kind {
    EnterFull,
    EnterBusy,
    EnterLongBusy,
    ProtectNotFound,
    ProtectBusy,
    RemoveNotFound,
    RemoveBusy,
    EnterHardware,
    ProtectHardware,
    RemoveHardware,
    Frame,
    Heap,
}

pub const KINDS: usize = 12;

/// Where a kind strikes: one call counter per site and CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Site {
    Enter,
    Protect,
    Remove,
    Frame,
    Heap,
}

pub const SITES: usize = 5;

impl Site {
    pub const ALL: [Site; SITES] = [Site::Enter, Site::Protect, Site::Remove, Site::Frame, Site::Heap];

    pub const fn name(self) -> &'static str {
        match self {
            Site::Enter => "H_ENTER",
            Site::Protect => "H_PROTECT",
            Site::Remove => "H_REMOVE",
            Site::Frame => "frame alloc",
            Site::Heap => "heap alloc",
        }
    }

    /// The kinds that strike here, in the order they are tried: a permanent failure first
    /// (once the hypervisor is broken, nothing else matters), then the transient ones.
    pub const fn kinds(self) -> &'static [Kind] {
        match self {
            Site::Enter => &[Kind::EnterHardware, Kind::EnterFull, Kind::EnterBusy, Kind::EnterLongBusy],
            Site::Protect => &[Kind::ProtectHardware, Kind::ProtectNotFound, Kind::ProtectBusy],
            Site::Remove => &[Kind::RemoveHardware, Kind::RemoveNotFound, Kind::RemoveBusy],
            Site::Frame => &[Kind::Frame],
            Site::Heap => &[Kind::Heap],
        }
    }
}

impl Kind {
    pub const ALL: [Kind; KINDS] = [
        Kind::EnterFull,
        Kind::EnterBusy,
        Kind::EnterLongBusy,
        Kind::ProtectNotFound,
        Kind::ProtectBusy,
        Kind::RemoveNotFound,
        Kind::RemoveBusy,
        Kind::EnterHardware,
        Kind::ProtectHardware,
        Kind::RemoveHardware,
        Kind::Frame,
        Kind::Heap,
    ];

    /// The name in `inject=` and in the summary.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::EnterFull => "enter_full",
            Kind::EnterBusy => "enter_busy",
            Kind::EnterLongBusy => "enter_longbusy",
            Kind::ProtectNotFound => "protect_notfound",
            Kind::ProtectBusy => "protect_busy",
            Kind::RemoveNotFound => "remove_notfound",
            Kind::RemoveBusy => "remove_busy",
            Kind::EnterHardware => "enter_hardware",
            Kind::ProtectHardware => "protect_hardware",
            Kind::RemoveHardware => "remove_hardware",
            Kind::Frame => "frame",
            Kind::Heap => "heap",
        }
    }

    /// What the injected failure looks like, for the summary.
    pub const fn answer(self) -> &'static str {
        match self {
            Kind::EnterFull => "H_ENTER -> H_PTEG_FULL",
            Kind::EnterBusy => "H_ENTER -> H_BUSY",
            Kind::EnterLongBusy => "H_ENTER -> H_LONG_BUSY",
            Kind::ProtectNotFound => "H_PROTECT -> H_NOT_FOUND (entry removed first)",
            Kind::ProtectBusy => "H_PROTECT -> H_BUSY",
            Kind::RemoveNotFound => "H_REMOVE -> H_NOT_FOUND (entry removed first)",
            Kind::RemoveBusy => "H_REMOVE -> H_BUSY",
            Kind::EnterHardware => "H_ENTER -> H_HARDWARE (permanent)",
            Kind::ProtectHardware => "H_PROTECT -> H_HARDWARE (permanent)",
            Kind::RemoveHardware => "H_REMOVE -> H_HARDWARE (permanent)",
            Kind::Frame => "frame allocation -> out of memory",
            Kind::Heap => "fallible heap allocation -> null",
        }
    }

    pub const fn site(self) -> Site {
        match self {
            Kind::EnterFull | Kind::EnterBusy | Kind::EnterLongBusy | Kind::EnterHardware => Site::Enter,
            Kind::ProtectNotFound | Kind::ProtectBusy | Kind::ProtectHardware => Site::Protect,
            Kind::RemoveNotFound | Kind::RemoveBusy | Kind::RemoveHardware => Site::Remove,
            Kind::Frame => Site::Frame,
            Kind::Heap => Site::Heap,
        }
    }

    /// A hypervisor answer the kernel survives by retrying or re-executing: it must not fail
    /// every call, or the access would be re-executed forever.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Kind::EnterFull
                | Kind::EnterBusy
                | Kind::EnterLongBusy
                | Kind::ProtectNotFound
                | Kind::ProtectBusy
                | Kind::RemoveNotFound
                | Kind::RemoveBusy
        )
    }

    /// From its first failure on, every call at its site fails.
    pub const fn is_permanent(self) -> bool {
        matches!(self, Kind::EnterHardware | Kind::ProtectHardware | Kind::RemoveHardware)
    }

    pub const fn is_hcall(self) -> bool {
        !matches!(self, Kind::Frame | Kind::Heap)
    }

    #[cfg(test)]
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == s)
    }
}

/// When a kind strikes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trigger {
    /// The Nth, 2Nth, ... call at the site, counted per CPU (Linux's `interval`).
    Every(u32),
    /// Each call with this probability, in parts per million (Linux's `probability`).
    Ppm(u32),
}

pub const MILLION: u32 = 1_000_000;

impl Trigger {
    /// Whether call number `call_no` (1-based, per CPU and site) fails; `draw` is a fresh
    /// random number (used by `Ppm` only).
    pub const fn fires(self, call_no: u64, draw: u64) -> bool {
        match self {
            Trigger::Every(n) => n != 0 && call_no.is_multiple_of(n as u64),
            Trigger::Ppm(p) => ((draw >> 11) % MILLION as u64) < p as u64,
        }
    }

    /// Whether it fails every call (a transient kind must not).
    pub const fn always(self) -> bool {
        matches!(self, Trigger::Every(1)) || matches!(self, Trigger::Ppm(p) if p >= MILLION)
    }

    /// "N" or "P%", as the bootarg takes it.
    pub fn parse(s: &str) -> Option<Trigger> {
        if let Some(p) = s.strip_suffix('%') {
            let ppm = parse_percent_ppm(p)?;
            return (ppm > 0 && ppm <= MILLION).then_some(Trigger::Ppm(ppm));
        }
        let n: u32 = s.parse().ok()?;
        (n >= 1).then_some(Trigger::Every(n))
    }
}

/// "2", "0.5", "12.25" (percent, up to four decimals) in parts per million.
fn parse_percent_ppm(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || frac.len() > 4
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let mut f = 0u64;
    for i in 0..4 {
        f = f * 10 + frac.as_bytes().get(i).map(|b| (b - b'0') as u64).unwrap_or(0);
    }
    let ppm = int.checked_mul(10_000)?.checked_add(f)?;
    u32::try_from(ppm).ok()
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trigger::Every(1) => f.write_str("every call"),
            Trigger::Every(n) => {
                let suffix = match (n % 10, n % 100) {
                    (_, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                write!(f, "every {n}{suffix} call")
            }
            Trigger::Ppm(p) => {
                write!(f, "{}", p / 10_000)?;
                let frac = p % 10_000;
                if frac != 0 {
                    let mut s = [b'0'; 4];
                    let mut v = frac;
                    for i in (0..4).rev() {
                        s[i] = b'0' + (v % 10) as u8;
                        v /= 10;
                    }
                    let n = 4 - s.iter().rev().take_while(|&&b| b == b'0').count();
                    write!(f, ".{}", core::str::from_utf8(&s[..n]).unwrap_or(""))?;
                }
                f.write_str("% of calls")
            }
        }
    }
}

/// What `inject=` asks for: a trigger per kind (None: never), at most how many failures of
/// each (0: no limit; Linux's `times`), and the seed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Plan {
    pub triggers: [Option<Trigger>; KINDS],
    pub times: [u32; KINDS],
    pub seed: u64,
}

pub const DEFAULT_SEED: u64 = 1;

impl Default for Plan {
    fn default() -> Self {
        Plan { triggers: [None; KINDS], times: [0; KINDS], seed: DEFAULT_SEED }
    }
}

/// Why an `inject=` value is refused; `what` names the piece of the value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PlanError<'a> {
    pub what: &'a str,
    pub expected: &'static str,
}

pub const KIND_LIST: &str =
    "enter_full|enter_busy|enter_longbusy|protect_notfound|protect_busy|remove_notfound|remove_busy|\
enter_hardware|protect_hardware|remove_hardware|frame|heap|transient";

pub const SPEC_SYNTAX: &str = "KIND:N (every Nth call) or KIND:P% (probability, e.g. 2% or 0.5%), optionally xT (at most T failures), comma-separated; \
KIND = enter_full|enter_busy|enter_longbusy|protect_notfound|protect_busy|remove_notfound|remove_busy|\
enter_hardware|protect_hardware|remove_hardware|frame|heap|transient (= every transient hypervisor kind)";

impl Plan {
    pub fn trigger(&self, k: Kind) -> Option<Trigger> {
        self.triggers[k as usize]
    }

    pub fn with(mut self, k: Kind, t: Trigger) -> Plan {
        self.triggers[k as usize] = Some(t);
        self
    }

    /// At most `n` failures of kind `k` (0: no limit).
    pub fn times(mut self, k: Kind, n: u32) -> Plan {
        self.times[k as usize] = n;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.iter().all(|t| t.is_none())
    }

    /// Whether any hypervisor-call kind is on (the fault path must then go through the
    /// injecting backend).
    pub fn has_hcalls(&self) -> bool {
        Kind::ALL.iter().any(|k| k.is_hcall() && self.trigger(*k).is_some())
    }

    #[cfg(test)]
    pub fn has_allocs(&self) -> bool {
        self.trigger(Kind::Frame).is_some() || self.trigger(Kind::Heap).is_some()
    }

    /// Whether any transient hypervisor kind is on.
    #[cfg(test)]
    pub fn has_transient(&self) -> bool {
        Kind::ALL.iter().any(|k| k.is_transient() && self.trigger(*k).is_some())
    }

    /// Parses the value of `inject=` (the seed comes from `inject.seed=`).
    pub fn parse(s: &str) -> Result<Plan, PlanError<'_>> {
        let mut p = Plan::default();
        if s.is_empty() {
            return Err(PlanError { what: s, expected: SPEC_SYNTAX });
        }
        for spec in s.split(',') {
            let (name, trig) = spec.split_once(':').ok_or(PlanError { what: spec, expected: SPEC_SYNTAX })?;
            let (trig, times) = match trig.split_once('x') {
                Some((t, n)) => match n.parse::<u32>() {
                    Ok(n) if n >= 1 => (t, n),
                    _ => {
                        return Err(PlanError {
                            what: spec,
                            expected: "xT with T >= 1 (at most T failures) after the trigger",
                        })
                    }
                },
                None => (trig, 0),
            };
            let t = Trigger::parse(trig).ok_or(PlanError {
                what: spec,
                expected: "N (every Nth call, N >= 1) or P% (0 < P <= 100, up to four decimals) after the kind",
            })?;
            let transient = name == "transient";
            let mut kinds = Kind::ALL
                .iter()
                .copied()
                .filter(|k| if transient { k.is_transient() } else { k.name() == name })
                .peekable();
            if kinds.peek().is_none() {
                return Err(PlanError { what: spec, expected: KIND_LIST });
            }
            for k in kinds {
                if p.triggers[k as usize].is_some() {
                    return Err(PlanError { what: spec, expected: "each kind once (transient names seven of them)" });
                }
                if k.is_transient() && t.always() && times == 0 {
                    return Err(PlanError {
                        what: spec,
                        expected: "N >= 2, P < 100% or a limit xT for a transient kind (a call that always fails would re-execute the access forever)",
                    });
                }
                p.triggers[k as usize] = Some(t);
                p.times[k as usize] = times;
            }
        }
        // The transient kinds of one call must leave calls that succeed: with probabilities
        // they must add up to less than 100% (every-N kinds always spare call 1 mod N).
        for site in [Site::Enter, Site::Protect, Site::Remove] {
            let sum: u64 = site
                .kinds()
                .iter()
                .filter(|k| k.is_transient() && p.times[**k as usize] == 0)
                .filter_map(|k| match p.trigger(*k) {
                    Some(Trigger::Ppm(x)) => Some(x as u64),
                    _ => None,
                })
                .sum();
            if sum >= MILLION as u64 {
                return Err(PlanError {
                    what: s,
                    expected: "transient probabilities of one call adding up to less than 100%",
                });
            }
        }
        Ok(p)
    }

    /// The kind (if any) that fails call number `call_no` at `site`, given how often each kind
    /// has failed so far (`fired`, all CPUs: a permanent kind that fired once is broken for
    /// good; a kind with a `times` limit stops there). `rng` is the CPU's random stream; it
    /// advances once per probability tested.
    pub fn decide(&self, site: Site, call_no: u64, rng: &mut u64, fired: impl Fn(Kind) -> u64) -> Option<Kind> {
        for &k in site.kinds() {
            let Some(t) = self.trigger(k) else { continue };
            let limit = self.times[k as usize];
            if limit != 0 && fired(k) >= limit as u64 {
                continue;
            }
            if k.is_permanent() && fired(k) > 0 {
                return Some(k);
            }
            let draw = if matches!(t, Trigger::Ppm(_)) { next_random(rng) } else { 0 };
            if t.fires(call_no, draw) {
                return Some(k);
            }
        }
        None
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in Kind::ALL {
            if let Some(t) = self.trigger(k) {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{} {}", k.name(), t)?;
                if self.times[k as usize] != 0 {
                    write!(f, " (at most {} times)", self.times[k as usize])?;
                }
            }
        }
        if first {
            f.write_str("nothing")?;
        }
        write!(f, "; seed {}", self.seed)
    }
}

/// xorshift64*: the per-CPU random stream (never 0).
pub fn next_random(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The start of CPU `cpu`'s random stream for `seed` (splitmix64; never 0).
pub fn stream_start(seed: u64, cpu: u64) -> u64 {
    let mut z = seed.wrapping_add(cpu.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        z
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use super::*;
    use crate::arch::ppc64::irq;
    use crate::arch::ppc64::percpu::{self, MAX_CPUS};
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

    /// Per CPU: calls seen per site, the random stream, failures injected per kind, and the
    /// exception depth + 1 of the innermost `fallible` section (0: none; heap failures are
    /// injected only inside one). Only the CPU itself writes its row (the counters with
    /// interrupts off); others read the counters.
    struct CpuInj {
        calls: [AtomicU64; SITES],
        rng: AtomicU64,
        injected: [AtomicU64; KINDS],
        fallible: AtomicU64,
    }

    static CPUS: [CpuInj; MAX_CPUS] = [const {
        CpuInj {
            calls: [const { AtomicU64::new(0) }; SITES],
            rng: AtomicU64::new(1),
            injected: [const { AtomicU64::new(0) }; KINDS],
            fallible: AtomicU64::new(0),
        }
    }; MAX_CPUS];

    /// The armed plan, one word per kind (0: off; else kind of trigger << 32 | value), so the
    /// fault path reads it without a lock.
    static TRIGGERS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];
    static TIMES: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];
    static SEED: AtomicU64 = AtomicU64::new(DEFAULT_SEED);
    static ARMED: AtomicBool = AtomicBool::new(false);
    static HCALLS: AtomicBool = AtomicBool::new(false);
    /// `suspend_allocs` depth (all CPUs): allocations made by a test harness for itself.
    static ALLOCS_SUSPENDED: AtomicU64 = AtomicU64::new(0);
    /// The design the 0x300 entry had before `arm` switched it.
    static DESIGN_BEFORE: AtomicU64 = AtomicU64::new(0);

    fn encode(t: Option<Trigger>) -> u64 {
        match t {
            None => 0,
            Some(Trigger::Every(n)) => 1 << 32 | n as u64,
            Some(Trigger::Ppm(p)) => 2 << 32 | p as u64,
        }
    }

    fn decode(v: u64) -> Option<Trigger> {
        match v >> 32 {
            1 => Some(Trigger::Every(v as u32)),
            2 => Some(Trigger::Ppm(v as u32)),
            _ => None,
        }
    }

    /// The armed plan (or the last one armed).
    pub fn plan() -> Plan {
        Plan {
            triggers: core::array::from_fn(|i| decode(TRIGGERS[i].load(Relaxed))),
            times: core::array::from_fn(|i| TIMES[i].load(Relaxed) as u32),
            seed: SEED.load(Relaxed),
        }
    }

    pub fn armed() -> bool {
        ARMED.load(Relaxed)
    }

    /// Whether hypervisor calls go through the injecting backend now.
    #[inline(always)]
    pub fn hcalls_armed() -> bool {
        HCALLS.load(Relaxed)
    }

    /// Arms `plan`: counters and random streams start afresh (so a run is reproducible from
    /// its seed), and if any hypervisor kind is on, the 0x300 entry's call is patched to the
    /// injecting design. Call it while no other CPU takes hash faults.
    pub fn arm(plan: &Plan) {
        ARMED.store(false, SeqCst);
        HCALLS.store(false, SeqCst);
        for (i, t) in plan.triggers.iter().enumerate() {
            TRIGGERS[i].store(encode(*t), Relaxed);
            TIMES[i].store(plan.times[i] as u64, Relaxed);
        }
        SEED.store(plan.seed, Relaxed);
        for (c, row) in CPUS.iter().enumerate() {
            for a in row.calls.iter().chain(row.injected.iter()) {
                a.store(0, Relaxed);
            }
            row.rng.store(stream_start(plan.seed, c as u64), Relaxed);
        }
        // powernv makes no hypervisor calls (it writes its own table): the hypervisor kinds
        // have nothing to fail there, and its Design::Inject slot holds the default.
        let hcalls = plan.has_hcalls() && !crate::arch::ppc64::platform::powernv();
        if hcalls {
            let d = crate::hash::fault::design();
            if d != crate::hash::fault::Design::Inject {
                DESIGN_BEFORE.store(d as u64, Relaxed);
            }
            crate::hash::fault::select(crate::hash::fault::Design::Inject);
        }
        HCALLS.store(hcalls, SeqCst);
        ARMED.store(!plan.is_empty(), SeqCst);
    }

    /// Stops injecting (the counters stay for the summary) and restores the 0x300 entry.
    pub fn disarm() {
        ARMED.store(false, SeqCst);
        HCALLS.store(false, SeqCst);
        if crate::hash::fault::design() == crate::hash::fault::Design::Inject {
            crate::hash::fault::select(crate::hash::fault::Design::from_slot(DESIGN_BEFORE.load(Relaxed) as u8));
        }
    }

    /// Arms `plan` for the duration of `f` (tests), then disarms, whatever `f` returns.
    pub fn with_plan<R>(plan: &Plan, f: impl FnOnce() -> R) -> R {
        arm(plan);
        let r = f();
        disarm();
        r
    }

    /// Counts one call at `site` on this CPU and decides whether it fails. Interrupts are
    /// masked meanwhile: a hash fault taken by an interrupt handler on this CPU must not
    /// interleave with the read-modify-write of the counters and the random stream.
    pub fn fire(site: Site) -> Option<Kind> {
        if !ARMED.load(Relaxed) {
            return None;
        }
        let was = irq::save_disable();
        let row = &CPUS[percpu::cpu_id()];
        let n = row.calls[site as usize].load(Relaxed) + 1;
        row.calls[site as usize].store(n, Relaxed);
        let mut rng = row.rng.load(Relaxed);
        let plan = plan();
        let k = plan.decide(site, n, &mut rng, injected_of);
        row.rng.store(rng, Relaxed);
        if let Some(k) = k {
            let c = &row.injected[k as usize];
            c.store(c.load(Relaxed) + 1, Relaxed);
        }
        irq::restore(was);
        k
    }

    /// Whether this frame allocation is to fail.
    #[inline]
    pub fn frame_alloc_fails() -> bool {
        ARMED.load(Relaxed) && ALLOCS_SUSPENDED.load(Relaxed) == 0 && fire(Site::Frame).is_some()
    }

    /// Whether this heap allocation is to fail: only inside `fallible`, in the very context
    /// that opened it (see there).
    #[inline]
    pub fn heap_alloc_fails() -> bool {
        ARMED.load(Relaxed)
            && ALLOCS_SUSPENDED.load(Relaxed) == 0
            && CPUS[percpu::cpu_id()].fallible.load(Relaxed) == percpu::exception_depth() + 1
            && fire(Site::Heap).is_some()
    }

    /// Runs `f`, whose heap allocations handle failure (`try_reserve` and the like). The
    /// section is tagged with this context's exception depth: an interrupt handler that
    /// allocates inside it runs deeper, so its (infallible) allocations are never failed.
    /// Interrupts stay enabled: masking them costs two `mtmsrd`, each of which takes QEMU's
    /// big lock, on every vmalloc — enough to delay the interrupt scenario's decrementer past
    /// its 50 ms window on a loaded host. Nothing at all when nothing is armed.
    pub fn fallible<R>(f: impl FnOnce() -> R) -> R {
        if !ARMED.load(Relaxed) {
            return f();
        }
        let tag = &CPUS[percpu::cpu_id()].fallible;
        let outer = tag.load(Relaxed);
        tag.store(percpu::exception_depth() + 1, Relaxed);
        let r = f();
        tag.store(outer, Relaxed);
        r
    }

    /// Runs `f` with no allocation failures injected on any CPU: a test harness's own buffers
    /// (the failures are meant for the workload, not for the scaffolding around it).
    pub fn suspend_allocs<R>(f: impl FnOnce() -> R) -> R {
        ALLOCS_SUSPENDED.fetch_add(1, SeqCst);
        let r = f();
        ALLOCS_SUSPENDED.fetch_sub(1, SeqCst);
        r
    }

    /// Failures injected per kind, all CPUs.
    pub fn injected() -> [u64; KINDS] {
        core::array::from_fn(|k| CPUS.iter().map(|r| r.injected[k].load(Relaxed)).sum())
    }

    pub fn injected_of(k: Kind) -> u64 {
        CPUS.iter().map(|r| r.injected[k as usize].load(Relaxed)).sum()
    }

    /// Calls seen per site, all CPUs (while armed).
    pub fn calls() -> [u64; SITES] {
        core::array::from_fn(|s| CPUS.iter().map(|r| r.calls[s].load(Relaxed)).sum())
    }

    /// The run's summary: the plan, calls per site, failures per kind.
    pub fn print_summary() {
        let p = plan();
        let inj = injected();
        let calls = calls();
        crate::println!("fault injection: {}", p);
        let mut line = alloc::string::String::new();
        for s in Site::ALL {
            use core::fmt::Write;
            if s.kinds().iter().any(|k| p.trigger(*k).is_some()) {
                let _ = write!(line, " {}={}", s.name().replace(' ', "_"), calls[s as usize]);
            }
        }
        crate::println!("fault injection: calls seen:{}", line);
        let total: u64 = inj.iter().sum();
        crate::println!("fault injection: {} failures injected:", total);
        for k in Kind::ALL {
            if p.trigger(k).is_some() {
                crate::println!("  {:<17} {:>9}  ({})", k.name(), inj[k as usize], k.answer());
            }
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sites_list_every_kind() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert!(k.site().kinds().contains(&k), "{k:?}");
            assert_eq!(Kind::ALL[k as usize], k);
            assert!(KIND_LIST.split('|').any(|n| n == k.name()), "{k:?} missing from KIND_LIST");
            assert!(!(k.is_transient() && k.is_permanent()));
        }
        let listed: usize = Site::ALL.iter().map(|s| s.kinds().len()).sum();
        assert_eq!(listed, KINDS);
    }

    #[test]
    fn triggers_parse() {
        assert_eq!(Trigger::parse("7"), Some(Trigger::Every(7)));
        assert_eq!(Trigger::parse("1"), Some(Trigger::Every(1)));
        assert_eq!(Trigger::parse("2%"), Some(Trigger::Ppm(20_000)));
        assert_eq!(Trigger::parse("0.5%"), Some(Trigger::Ppm(5_000)));
        assert_eq!(Trigger::parse("0.0001%"), Some(Trigger::Ppm(1)));
        assert_eq!(Trigger::parse("100%"), Some(Trigger::Ppm(MILLION)));
        for bad in ["0", "-1", "x", "", "%", "0%", "101%", "1.00001%", ".5%", "5.%x", "1e3"] {
            assert_eq!(Trigger::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_n_fires_on_multiples_only() {
        let t = Trigger::Every(3);
        let hits: Vec<u64> = (1..=10).filter(|&n| t.fires(n, 0)).collect();
        assert_eq!(hits, [3, 6, 9]);
    }

    #[test]
    fn probability_is_about_right_and_seeded() {
        let t = Trigger::Ppm(20_000); // 2%
        let mut rng = stream_start(42, 0);
        let hits = (1..=100_000u64).filter(|&n| t.fires(n, next_random(&mut rng))).count();
        assert!((1_700..2_300).contains(&hits), "{hits} of 100000 at 2%");
        // Same seed and CPU: the same stream; another CPU: another one.
        let (mut a, mut b, mut c) = (stream_start(42, 0), stream_start(42, 0), stream_start(42, 1));
        let sa: Vec<u64> = (0..8).map(|_| next_random(&mut a)).collect();
        let sb: Vec<u64> = (0..8).map(|_| next_random(&mut b)).collect();
        let sc: Vec<u64> = (0..8).map(|_| next_random(&mut c)).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
        assert_ne!(stream_start(0, 0), 0);
    }

    #[test]
    fn plans_parse() {
        let p = Plan::parse("enter_full:3%,remove_notfound:7,frame:0.5%").unwrap();
        assert_eq!(p.trigger(Kind::EnterFull), Some(Trigger::Ppm(30_000)));
        assert_eq!(p.trigger(Kind::RemoveNotFound), Some(Trigger::Every(7)));
        assert_eq!(p.trigger(Kind::Frame), Some(Trigger::Ppm(5_000)));
        assert_eq!(p.trigger(Kind::EnterBusy), None);
        assert!(p.has_hcalls() && p.has_allocs() && p.has_transient());
        let t = Plan::parse("transient:1%").unwrap();
        assert!(Kind::ALL.iter().filter(|k| k.is_transient()).all(|k| t.trigger(*k) == Some(Trigger::Ppm(10_000))));
        assert!(Kind::ALL.iter().filter(|k| !k.is_transient()).all(|k| t.trigger(*k).is_none()));
        let h = Plan::parse("enter_hardware:1").unwrap();
        assert!(h.has_hcalls() && !h.has_transient());
        let a = Plan::parse("heap:1,frame:5").unwrap();
        assert!(!a.has_hcalls() && a.has_allocs());
    }

    #[test]
    fn bad_plans_say_why() {
        let e = Plan::parse("enter_fool:3").unwrap_err();
        assert_eq!(e.what, "enter_fool:3");
        assert_eq!(e.expected, KIND_LIST);
        assert!(Plan::parse("").is_err());
        assert!(Plan::parse("enter_full").is_err());
        assert!(Plan::parse("enter_full:").is_err());
        assert!(Plan::parse("enter_full:0").is_err());
        assert!(Plan::parse("enter_full:2,enter_full:3").unwrap_err().expected.contains("once"));
        assert!(Plan::parse("transient:2,remove_busy:3").unwrap_err().expected.contains("once"));
        // A transient kind failing every call would livelock the fault path.
        assert!(Plan::parse("enter_busy:1").unwrap_err().expected.contains("forever"));
        assert!(Plan::parse("remove_notfound:100%").unwrap_err().expected.contains("forever"));
        assert!(Plan::parse("enter_full:60%,enter_busy:40%").unwrap_err().expected.contains("less than 100%"));
        assert!(Plan::parse("enter_full:60%,enter_busy:39%").is_ok());
        // Permanent and allocation kinds may fail every call.
        assert!(Plan::parse("enter_hardware:1,frame:1,heap:100%").is_ok());
    }

    /// The decisions for H_ENTER calls 1..=n, counting what fired as the kernel does.
    fn decide_calls(p: &Plan, rng: &mut u64, n: u64) -> Vec<Option<Kind>> {
        let mut fired = [0u64; KINDS];
        (1..=n)
            .map(|call| {
                let k = p.decide(Site::Enter, call, rng, |k| fired[k as usize]);
                if let Some(k) = k {
                    fired[k as usize] += 1;
                }
                k
            })
            .collect()
    }

    #[test]
    fn decide_tries_permanent_first_and_stays_broken() {
        let p = Plan::default().with(Kind::EnterHardware, Trigger::Every(5)).with(Kind::EnterFull, Trigger::Every(2));
        let mut rng = stream_start(1, 0);
        let got = decide_calls(&p, &mut rng, 8);
        use Kind::*;
        assert_eq!(
            got,
            [
                None,
                Some(EnterFull),
                None,
                Some(EnterFull),
                Some(EnterHardware),
                Some(EnterHardware),
                Some(EnterHardware),
                Some(EnterHardware)
            ]
        );
        // Other sites are not touched.
        assert_eq!(p.decide(Site::Remove, 10, &mut rng, |_| 1), None);
    }

    #[test]
    fn times_limits_the_failures() {
        let p = Plan::parse("enter_full:1x3,enter_busy:2").unwrap();
        assert_eq!(p.times[Kind::EnterFull as usize], 3);
        let mut rng = 1;
        let got = decide_calls(&p, &mut rng, 7);
        use Kind::*;
        assert_eq!(
            got,
            [Some(EnterFull), Some(EnterFull), Some(EnterFull), Some(EnterBusy), None, Some(EnterBusy), None]
        );
        // A limit makes "every call" acceptable for a transient kind, and takes it out of the
        // 100% sum; a bad limit is refused.
        assert!(Plan::parse("enter_busy:100%x5,enter_full:99%").is_ok());
        assert!(Plan::parse("enter_busy:1x0").is_err());
        assert!(Plan::parse("enter_busy:1xq").is_err());
        assert_eq!(format!("{}", Plan::parse("frame:2x7").unwrap()), "frame every 2nd call (at most 7 times); seed 1");
    }

    #[test]
    fn every_n_transients_always_spare_some_calls() {
        // However the every-N kinds of one call combine, call numbers 1 mod lcm succeed.
        let p = Plan::parse("enter_full:2,enter_busy:3,enter_longbusy:5").unwrap();
        let mut rng = 1;
        let ok = (1..=60).filter(|&n| p.decide(Site::Enter, n, &mut rng, |_| 0).is_none()).count();
        assert_eq!(ok, 16); // 60 * (1/2) * (2/3) * (4/5)
    }

    #[test]
    fn display() {
        let p = Plan::parse("enter_busy:0.25%,frame:10").unwrap();
        assert_eq!(format!("{p}"), "enter_busy 0.25% of calls, frame every 10th call; seed 1");
        assert_eq!(format!("{}", Plan::default()), "nothing; seed 1");
        assert_eq!(format!("{}", Trigger::Ppm(20_000)), "2% of calls");
        assert_eq!(format!("{}", Trigger::Ppm(1)), "0.0001% of calls");
        assert_eq!(format!("{}", Trigger::Every(3)), "every 3rd call");
        assert_eq!(format!("{}", Trigger::Every(12)), "every 12th call");
        assert_eq!(format!("{}", Trigger::Every(21)), "every 21st call");
    }
}
