//! boot::, of::, console:: tests.

use crate::arch::ppc64::boot;
use crate::ktest::TestResult;
use crate::{kassert, kassert_eq, ktest};

ktest!("boot", device_tree_facts);
fn device_tree_facts() -> TestResult {
    let bi = boot::info();
    kassert!(bi.mem_size >= 256 << 20, "memory size {:#x}", bi.mem_size);
    kassert!(bi.ncpus >= 1 && bi.ncpus <= crate::arch::ppc64::percpu::MAX_CPUS);
    kassert!((18..=46).contains(&bi.pft_shift), "pft shift {}", bi.pft_shift);
    kassert_eq!(bi.slb_size, 32);
    kassert_eq!(bi.tb_freq, 512_000_000);
    kassert!(bi.cpu_name().starts_with("PowerPC,POWER"), "cpu {}", bi.cpu_name());
    Ok(())
}

ktest!("boot", hpt_size_follows_ram);
fn hpt_size_follows_ram() -> TestResult {
    // QEMU sizes the HPT to 1/128 of RAM (power of two, at least 2^18); on powernv the kernel
    // does the same, within the bolted zone's means (at most 2^MAX_HPT_SHIFT).
    let bi = boot::info();
    let want = (bi.mem_size.next_power_of_two().trailing_zeros() - 7).max(18);
    let want = if crate::arch::ppc64::platform::powernv() {
        want.clamp(19, crate::arch::ppc64::powernv::MAX_HPT_SHIFT)
    } else {
        want
    };
    kassert_eq!(bi.pft_shift, want);
    Ok(())
}

ktest!("of", only Pseries, rtas_tokens_found);
fn rtas_tokens_found() -> TestResult {
    let t = boot::info().rtas;
    kassert!(t.power_off != 0 && t.os_term != 0 && t.start_cpu != 0, "{:?}", t);
    kassert!(t.read_pci_config != 0 && t.write_pci_config != 0, "{:?}", t);
    Ok(())
}

ktest!("of", only Pseries, rtas_call_round_trip);
fn rtas_call_round_trip() -> TestResult {
    // get-time-of-day returns a plausible date.
    let t = boot::info().rtas.get_time_of_day;
    let r = crate::arch::ppc64::rtas::call::<7>(t, &[]).map_err(|e| alloc::format!("{e}"))?;
    kassert!(r[0] >= 2000 && (1..=12).contains(&r[1]), "date {:?}", r);
    Ok(())
}

ktest!("console", nested_print_does_not_deadlock);
fn nested_print_does_not_deadlock() -> TestResult {
    // An oops in the middle of a print re-enters the console on the same CPU: the inner print
    // must go through (a deadlock would hang here until the runner's timeout), and only the
    // outer one releases the console.
    let was_on = crate::arch::ppc64::irq::enabled();
    let (inner_held, after_inner) = crate::console::with_console(|w| {
        use core::fmt::Write;
        let _ = write!(w, "console: outer ");
        let inner_held = crate::console::with_console(|_| crate::console::held_by_me());
        crate::println!("inner (re-entered on the same CPU)");
        (inner_held, crate::console::held_by_me())
    });
    kassert!(inner_held && after_inner, "the nested print released the outer one's console");
    kassert!(!crate::console::held_by_me(), "console still held after the outer print");
    kassert_eq!(crate::arch::ppc64::irq::enabled(), was_on);
    Ok(())
}

ktest!("boot", bootargs_reject_unknown);
fn bootargs_reject_unknown() -> TestResult {
    kassert!(crate::bootargs::parse("nope=1").is_err());
    kassert!(crate::bootargs::parse("hash_page=locked").is_ok());
    Ok(())
}

ktest!("boot", secondary_handoffs_are_per_cpu);
fn secondary_handoffs_are_per_cpu() -> TestResult {
    // smp gives a secondary 2 s to come online and then moves on to the next one. A vCPU that
    // starts later than that (a loaded host) still reads the hand-off it was given: preparing
    // the others' must leave it naming its own per-CPU area, stack and index.
    use crate::arch::ppc64::percpu::{self, MAX_CPUS};
    let hs: alloc::vec::Vec<*const boot::MmuHandoff> = (1..MAX_CPUS).map(crate::smp::prepare_handoff).collect();
    for (i, &h) in hs.iter().enumerate() {
        let cpu = i + 1;
        // SAFETY: make_handoff returns a pointer to a static hand-off; it is only read here.
        let h = unsafe { &*h };
        kassert!(
            h.paca == percpu::paca(cpu) as *const _ as u64
                && h.stack == percpu::kstack_top(cpu) - 112
                && h.arg == cpu as u64,
            "CPU {}'s hand-off names PACA {:#x}, stack {:#x}, arg {} after the others' were prepared (want PACA {:#x})",
            cpu,
            h.paca,
            h.stack,
            h.arg,
            percpu::paca(cpu) as *const _ as u64
        );
    }
    Ok(())
}
