//! The dump: every CPU's ring in the compact text form scripts/trace.py reads, printed on
//! exit, in an oops and inside the deadlock report.

use super::event::{Event, GroupList, Line, Rec};
use super::ring::{boot_groups, for_each, groups, DUMPED, FROZEN, RING_LEN, STOPPED, TRACE_RINGS};
use crate::arch::ppc64::{boot, hcall, percpu};
use core::sync::atomic::Ordering::*;

/// Prints every CPU's ring (`reason`: exit, oops, deadlock, ...; `stuck`: the CPU a deadlock
/// report is about), once per run and only if `trace=` asked for tracing (tests that switch
/// groups on for themselves leave no dump behind). Call it with the other CPUs
/// stopped (`smp::stop_others`): their rings do not change under the dump then. Uses no heap
/// and no lock but the console's, so it works from an oops and from the deadlock report.
pub fn dump(reason: &str, stuck: Option<usize>) {
    if boot_groups().is_empty() || DUMPED.swap(true, AcqRel) {
        return;
    }
    FROZEN.store(true, Release);
    let ncpus = crate::smp::ncpus();
    crate::println!(
        "trace: dump begin: reason={} stuck={} dumper={} cpus={} tb_hz={} ring={} groups={} stopped={}",
        Word(reason),
        Cpu(stuck),
        percpu::cpu_id(),
        ncpus,
        boot::info().tb_freq,
        RING_LEN,
        GroupList(groups()),
        STOPPED.load(Relaxed) as u8
    );
    let mut syms = Syms::new();
    let mut total = 0;
    for cpu in 0..ncpus {
        let r = &TRACE_RINGS[cpu];
        let head = r.head.load(Acquire);
        let first = head.saturating_sub(RING_LEN as u64);
        let tb0 = (first..head).find_map(|i| {
            let s = &r.slots[i as usize % RING_LEN];
            Rec::decode(i, s.tb.load(Relaxed), s.w0.load(Acquire), 0, 0).map(|r| r.tb)
        });
        let valid = {
            let mut n = 0;
            for_each(cpu, 0, |_| n += 1);
            n
        };
        crate::println!(
            "trace: cpu {}: {} events recorded, {} overwritten, {} torn, tb0 {:x}",
            cpu,
            head,
            first,
            head - first - valid,
            tb0.unwrap_or(0)
        );
        let mut prev = tb0.unwrap_or(0);
        for_each(cpu, 0, |rec| {
            crate::println!("{}", Line { cpu, prev_tb: prev, rec });
            prev = rec.tb;
            syms.note(rec);
        });
        total += valid;
    }
    syms.print();
    crate::println!("trace: dump end: {} events", total);
}

/// `s` as one word (spaces become underscores), for the dump's header.
struct Word<'a>(&'a str);

impl core::fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        self.0.chars().try_for_each(|c| f.write_char(if c.is_whitespace() { '_' } else { c }))
    }
}

/// A CPU number, or `-` for none.
struct Cpu(Option<usize>);

impl core::fmt::Display for Cpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "-"),
        }
    }
}

/// The addresses in a dump that the kernel can name (call sites, locks) and the hypervisor
/// calls seen, printed once each after the rings (no heap: a fixed table).
struct Syms {
    sites: [u64; 64],
    nsites: usize,
    locks: [u64; 8],
    nlocks: usize,
    hcalls: [u64; 32],
    nhcalls: usize,
}

impl Syms {
    fn new() -> Syms {
        Syms { sites: [0; 64], nsites: 0, locks: [0; 8], nlocks: 0, hcalls: [0; 32], nhcalls: 0 }
    }

    fn add(v: u64, t: &mut [u64], n: &mut usize) {
        if v != 0 && !t[..*n].contains(&v) && *n < t.len() {
            t[*n] = v;
            *n += 1;
        }
    }

    fn note(&mut self, r: &Rec) {
        match r.ev {
            Event::LockAcquire | Event::LockContended => {
                Self::add(r.b, &mut self.sites, &mut self.nsites);
                Self::add(r.a, &mut self.locks, &mut self.nlocks);
            }
            Event::Watchdog => Self::add(r.b, &mut self.locks, &mut self.nlocks),
            Event::Hcall | Event::HcallBegin | Event::HcallEnd => {
                Self::add(r.c as u64, &mut self.hcalls, &mut self.nhcalls)
            }
            _ => {}
        }
    }

    fn print(&self) {
        let (ks, ke) = boot::kernel_range();
        for &s in &self.sites[..self.nsites] {
            // Only addresses inside the image can be a `Location` this kernel stored.
            if s >= ks && s + core::mem::size_of::<core::panic::Location>() as u64 <= ke && s % 8 == 0 {
                // SAFETY: lock events store `&'static Location` pointers (ptlock.rs), and the
                // check above keeps a stray value from being read outside the image.
                let l = unsafe { &*(s as *const core::panic::Location<'static>) };
                crate::println!("trace: site {:x} {}:{}", s, l.file(), l.line());
            }
        }
        for &l in &self.locks[..self.nlocks] {
            crate::println!("trace: lock {:x} {}", l, crate::sync::watchdog::describe_lock(l));
        }
        for &h in &self.hcalls[..self.nhcalls] {
            crate::println!("trace: hcall {:x} {}", h, hcall::name(h));
        }
    }
}
