//! Per-CPU hash-fault counters. Each CPU writes only its own row, and only from code that
//! runs with interrupts off and cannot fault (exception context, bolted memory), so an
//! increment is a plain load and store — no atomic read-modify-write on the fault path. Other
//! CPUs read the rows with relaxed loads.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Counter {
    Faults,
    InsertPrimary,
    InsertSecondary,
    Updates,
    Evictions,
    BusyRetries,
    StcxFails,
    BadAccess,
    HvRefusals,
    DsegMiss,
    IsegMiss,
    SegThenHash,
    IrqFaults,
    LockedFaults,
    Confers,
    AsmInserts,
}

pub const NAMES: [&str; 16] = [
    "faults", "insert_primary", "insert_secondary", "updates", "evictions", "busy_retries",
    "stcx_fails", "bad_access", "hv_refusals", "dseg_miss", "iseg_miss", "seg_then_hash",
    "irq_faults", "locked_faults", "confers", "asm_inserts",
];

/// `repr(C)`: boot/hashfast.S adds to counters at `Counter as usize * 8`.
#[repr(C)]
pub struct Stats {
    c: [AtomicU64; 16],
}

impl Stats {
    pub const fn new() -> Stats {
        Stats { c: [const { AtomicU64::new(0) }; 16] }
    }
    #[inline(always)]
    pub fn count(&self, c: Counter) {
        self.add(c, 1)
    }
    #[inline(always)]
    pub fn add(&self, c: Counter, n: u64) {
        let a = &self.c[c as usize];
        a.store(a.load(Relaxed) + n, Relaxed);
    }
    pub fn get(&self, c: Counter) -> u64 {
        self.c[c as usize].load(Relaxed)
    }
    pub fn snapshot(&self) -> [u64; 16] {
        core::array::from_fn(|i| self.c[i].load(Relaxed))
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "none")]
mod percpu_stats {
    use super::*;
    use crate::arch::ppc64::percpu::{cpu_id, MAX_CPUS};

    pub static STATS: [Stats; MAX_CPUS] = [const { Stats::new() }; MAX_CPUS];

    #[inline(always)]
    pub fn this() -> &'static Stats {
        &STATS[cpu_id()]
    }

    pub fn of(cpu: usize) -> &'static Stats {
        &STATS[cpu]
    }

    /// Sum over all CPUs.
    pub fn total() -> [u64; 16] {
        let mut t = [0u64; 16];
        for s in STATS.iter() {
            for (i, v) in s.snapshot().iter().enumerate() {
                t[i] += v;
            }
        }
        t
    }

    pub fn total_of(c: Counter) -> u64 {
        total()[c as usize]
    }

    pub fn print() {
        let t = total();
        crate::println!("hash_page counters (all CPUs):");
        let mut line = alloc::string::String::new();
        for (i, n) in NAMES.iter().enumerate() {
            use core::fmt::Write;
            let _ = write!(line, " {}={}", n, t[i]);
            if i % 5 == 4 {
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
