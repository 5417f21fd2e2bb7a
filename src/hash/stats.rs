//! Per-CPU hash-fault counters. Each CPU writes only its own row (in its per-CPU area), and
//! only from code that runs with interrupts off and cannot fault, so an increment is a plain
//! load and store — no atomic read-modify-write on the fault path. Other CPUs read the rows
//! with relaxed loads.
//!
//! A hash fault increments exactly one *outcome* counter (the first ten below); `faults` is
//! their sum, so the fault path pays for one increment, not two.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Counter {
    // Outcomes: one per 0x300/0x400 hash fault.
    InsertPrimary,
    InsertSecondary,
    Updates,
    BusyRetries,
    /// Lost reservations (failed stcx.): the access is re-executed.
    StcxFails,
    RetryHvBusy,
    RetryEvictions,
    BadAccess,
    HvRefusals,
    AllBolted,
    // Events counted besides the outcome.
    Evictions,
    DsegMiss,
    IsegMiss,
    LockedFaults,
    Confers,
    /// `hash_page=cas2`: an insert (counted as such) whose second CAS_PTE found the PTE
    /// changed: the HPTE was removed again and the access re-executed.
    SlotCasLost,
}

pub const N: usize = 16;
pub const OUTCOMES: usize = 10;

pub const NAMES: [&str; N] = [
    "insert_primary",
    "insert_secondary",
    "updates",
    "busy_retries",
    "stcx_fails",
    "retry_hv_busy",
    "retry_evictions",
    "bad_access",
    "hv_refusals",
    "all_bolted",
    "evictions",
    "dseg_miss",
    "iseg_miss",
    "locked_faults",
    "confers",
    "slot_cas_lost",
];

/// `repr(C)`: the 0x380 handler (assembly) adds to `dseg_miss` at `Counter as usize * 8`.
#[repr(C)]
pub struct Stats {
    c: [AtomicU64; N],
}

impl Stats {
    pub const fn new() -> Stats {
        Stats { c: [const { AtomicU64::new(0) }; N] }
    }
    #[inline(always)]
    /// Adds one; returns the new value.
    pub fn count(&self, c: Counter) -> u64 {
        let a = &self.c[c as usize];
        let n = a.load(Relaxed) + 1;
        a.store(n, Relaxed);
        n
    }
    #[inline(always)]
    pub fn add(&self, c: Counter, n: u64) {
        let a = &self.c[c as usize];
        a.store(a.load(Relaxed) + n, Relaxed);
    }
    pub fn get(&self, c: Counter) -> u64 {
        self.c[c as usize].load(Relaxed)
    }
    /// The counter itself, for code that bumps it from assembly (the PTE take's lost
    /// reservations).
    #[inline(always)]
    pub fn counter(&self, c: Counter) -> &AtomicU64 {
        &self.c[c as usize]
    }
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(core::array::from_fn(|i| self.c[i].load(Relaxed)))
    }
    /// Hash faults handled (the sum of the outcome counters).
    pub fn faults(&self) -> u64 {
        self.snapshot().faults()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the protocol finds the counters to bump. A reference for host tests; in the kernel a
/// zero-sized handle that finds this CPU's row through r13 each time, so the fault path never
/// keeps the row's address alive across a hypervisor call.
pub trait StatsRef {
    fn stats(&self) -> &Stats;
    /// Adds one to counter `c`; returns the new value.
    #[inline(always)]
    fn count(&self, c: Counter) -> u64 {
        self.stats().count(c)
    }
}

impl StatsRef for Stats {
    #[inline(always)]
    fn stats(&self) -> &Stats {
        self
    }
}

/// A copy of one row (or of a sum of rows), indexed by [`Counter`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Snapshot(pub [u64; N]);

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
    /// Hash faults handled: every fault has exactly one outcome.
    pub fn faults(&self) -> u64 {
        self.0[..OUTCOMES].iter().sum()
    }
    /// Faults that installed or updated an HPTE.
    pub fn resolved(&self) -> u64 {
        self.get(Counter::InsertPrimary) + self.get(Counter::InsertSecondary) + self.get(Counter::Updates)
    }
    /// The counters that moved from `earlier` to `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot(core::array::from_fn(|i| self.0[i].wrapping_sub(earlier.0[i])))
    }
    pub fn add(&mut self, other: &Snapshot) {
        for i in 0..N {
            self.0[i] += other.0[i];
        }
    }
}

#[cfg(target_os = "none")]
mod percpu_stats {
    use super::*;
    use crate::arch::ppc64::percpu::{self, MAX_CPUS};

    #[inline(always)]
    pub fn this() -> &'static Stats {
        &percpu::this().stats
    }

    /// This CPU's row, found anew at each use (see `StatsRef`).
    pub struct ThisCpu;

    impl StatsRef for ThisCpu {
        #[inline(always)]
        fn stats(&self) -> &Stats {
            this()
        }
        /// One load, add and store off r13, with the offset folded into the instructions (the
        /// generic version first copies r13, which the compiler reaches only through asm).
        /// `c` is a constant at every call site, so the match folds to one arm.
        #[inline(always)]
        fn count(&self, c: Counter) -> u64 {
            macro_rules! bump {
                ($($i:literal)*) => {
                    match c as usize {
                        $($i => bump::<{ percpu::offsets::STATS + $i * 8 }>(),)*
                        _ => unreachable_counter(),
                    }
                };
            }
            bump!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
        }
    }

    const _: () = assert!(N == 16, "ThisCpu::count lists every counter");

    #[inline(always)]
    fn bump<const OFF: usize>() -> u64 {
        let v: u64;
        // SAFETY: r13 is this CPU's Paca and OFF the offset of one of its Stats counters (an
        // 8-aligned AtomicU64 that only this CPU writes, with interrupts off on the fault
        // path; a plain load/store is what a Relaxed load/store compiles to).
        unsafe {
            core::arch::asm!("ld {v}, {off}(13)", "addi {v}, {v}, 1", "std {v}, {off}(13)",
                             v = out(reg_nonzero) v, off = const OFF, options(nostack, preserves_flags))
        };
        v
    }

    #[cold]
    fn unreachable_counter() -> u64 {
        0
    }

    pub fn of(cpu: usize) -> &'static Stats {
        &percpu::paca(cpu).stats
    }

    /// Sum over all CPUs.
    pub fn total() -> Snapshot {
        let mut t = Snapshot::default();
        for c in 0..MAX_CPUS {
            t.add(&of(c).snapshot());
        }
        t
    }

    pub fn total_of(c: Counter) -> u64 {
        total().get(c)
    }

    pub fn print() {
        let t = total();
        crate::println!("hash_page counters (all CPUs):");
        let mut line = alloc::format!(" faults={}", t.faults());
        for (i, n) in NAMES.iter().enumerate() {
            use core::fmt::Write;
            let _ = write!(line, " {}={}", n, t.0[i]);
            if i % 5 == 3 {
                crate::println!(" {}", line);
                line.clear();
            }
        }
        if !line.is_empty() {
            crate::println!(" {}", line);
        }
    }
}

#[cfg(target_os = "none")]
pub use percpu_stats::*;

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    #[test]
    fn names_match_counters() {
        assert_eq!(NAMES.len(), N);
        assert_eq!(NAMES[Counter::Confers as usize], "confers");
        assert_eq!(NAMES[Counter::AllBolted as usize], "all_bolted");
        assert_eq!(Counter::AllBolted as usize + 1, OUTCOMES);
    }

    #[test]
    fn faults_are_the_sum_of_outcomes() {
        let s = Stats::new();
        s.count(Counter::InsertPrimary);
        s.count(Counter::BusyRetries);
        s.add(Counter::StcxFails, 5);
        s.count(Counter::Evictions);
        assert_eq!(s.faults(), 7);
        assert_eq!(s.snapshot().resolved(), 1);
    }
}
