//! The kernel proper, entered from boot/entry.S with translation on: bring-up order and the
//! default run.

use crate::arch::ppc64::{boot, insn, percpu, reg::Msr};
use crate::bootargs;
use crate::println;

pub use crate::bootargs::{config, quiet};

#[no_mangle]
pub extern "C" fn kmain(_arg: u64) -> ! {
    let bi = boot::info();
    percpu::paca(0).online.store(1, core::sync::atomic::Ordering::Release);
    let cfg = match bootargs::parse(bi.bootargs()) {
        Ok(c) => *bootargs::set_config(c),
        Err(e) => {
            println!("hashkernel: {}", e);
            crate::exit::exit_failure("bad bootargs");
        }
    };
    banner(bi);
    // The test harness's problem-state runs end in a system call or a fault: the trap dispatch
    // hands those to it through registered hooks.
    crate::trap::set_user_hooks(crate::run::user::syscall, crate::run::user::user_fault);
    // Before anything else records: the trace points are patched on the boot CPU alone.
    crate::trace::control::init(cfg.trace);
    if !cfg.trace.is_empty() {
        println!(
            "trace: recording {} ({} trace points on; dumped on exit, oops and deadlock)",
            crate::trace::event::GroupList(cfg.trace),
            crate::trace::site::count_on()
        );
    }
    crate::mm::init();
    crate::mm::init_cpu(0);
    crate::drivers::uart::init();
    crate::arch::ppc64::timer::init();
    crate::hash::fault::select(match cfg.hash_mode {
        bootargs::HashMode::LockFree => crate::hash::fault::Design::LockFree,
        bootargs::HashMode::Locked => crate::hash::fault::Design::Locked,
        bootargs::HashMode::Patch2003 => crate::hash::fault::Design::Patch2003,
        bootargs::HashMode::Cas2 => crate::hash::fault::Design::Cas2,
    });
    crate::sync::watchdog::set_timeout_ms(cfg.watchdog_ms);
    let online = crate::smp::start_secondaries(crate::mm::init_cpu);
    println!("smp: {} of {} CPU(s) online", online, bi.ncpus);

    if cfg!(test) {
        #[cfg(test)]
        crate::test_main();
    }
    let inject = !cfg.inject.is_empty();
    if inject && cfg.inject.has_hcalls() && crate::arch::ppc64::platform::powernv() {
        // The hypervisor-call kinds fail H_ENTER/H_PROTECT/H_REMOVE; powernv writes its own
        // table and makes no such calls (its Design::Inject slot holds the default).
        println!("hashkernel: inject={}: hypervisor-call failures need pseries (powernv makes no hypervisor calls); the allocation kinds work on both", cfg.inject);
        crate::exit::exit_failure("bad bootargs");
    }
    if inject {
        println!("fault injection: {}", cfg.inject);
    }
    if let Some(filter) = cfg.test {
        if inject {
            println!("fault injection: armed for the tests (a test that checks an exact path may fail under it)");
            crate::inject::arm(&cfg.inject);
        }
        #[cfg(feature = "ktests")]
        crate::ktest::run_and_exit(filter);
        #[cfg(not(feature = "ktests"))]
        {
            println!("hashkernel: test={}: this image was built without the tests (cargo feature `ktests`)", filter);
            crate::exit::exit_failure("no tests in this build");
        }
    }
    if inject && cfg.bench.is_some() {
        println!("fault injection: not armed for benchmarks (they measure the paths without it)");
    }
    if let Some(b) = cfg.bench {
        match crate::run::bench::run(b, cfg.bench_ms, cfg.bench_wait == bootargs::BenchWait::Relax) {
            Ok(()) => crate::exit::exit_success(),
            Err(e) => {
                println!("bench: {}", e);
                crate::exit::exit_failure("bench failed");
            }
        }
    }
    if let Some(kind) = cfg.crash {
        if inject {
            crate::inject::arm(&cfg.inject);
        }
        crate::run::crash::run(kind);
    }
    default_run()
}

fn banner(bi: &boot::BootInfo) {
    use crate::arch::ppc64::platform;
    let msr = Msr::from_bits_retain(insn::mfmsr());
    let (ks, ke) = boot::kernel_range();
    let plat = platform::get();
    println!("hashkernel {} — lock-free hash_page on ppc64 {}", env!("CARGO_PKG_VERSION"), plat.name());
    if platform::powernv() {
        println!(
            "  machine:   {} (skiboot/OPAL firmware, OPAL base {:#x}, bare metal: MSR[HV])",
            bi.model(),
            crate::arch::ppc64::opal::base()
        );
    } else {
        println!("  machine:   {} ({:?} firmware, {} OF calls)", bi.model(), bi.firmware, bi.of_calls);
    }
    println!("  cpu:       {} (PVR {:#010x}), {} CPU(s) in /cpus", bi.cpu_name(), bi.pvr, bi.cpus_in_tree);
    println!("  memory:    {} MiB", bi.mem_size >> 20);
    match crate::arch::ppc64::powernv::info() {
        Some(n) => {
            if n.ptcr != 0 {
                println!("  hpt:       {} KiB at PA {:#x}, the kernel's own (partition table entry {:#x}, PTCR {:#x}), {} groups", bi.hpt().bytes() >> 10, n.hpt_pa, n.sdr1, n.ptcr, bi.hpt().groups());
            } else {
                println!(
                    "  hpt:       {} KiB at PA {:#x}, the kernel's own (SDR1 {:#x}), {} groups",
                    bi.hpt().bytes() >> 10,
                    n.hpt_pa,
                    n.sdr1,
                    bi.hpt().groups()
                );
            }
            println!(
                "  lpcr:      {:#018x} (skiboot left {:#018x}): AIL=3 (+ bit 37 for QEMU), no HDEC interrupts",
                insn::mfspr::<{ crate::arch::ppc64::reg::spr::LPCR }>(),
                n.lpcr_entry
            );
        }
        None => println!(
            "  hpt:       {} KiB (ibm,pft-size {}), {} groups",
            bi.hpt().bytes() >> 10,
            bi.pft_shift,
            bi.hpt().groups()
        ),
    }
    println!(
        "  slb:       {} entries, {} bolted (linear 0xc000000000000000, VSID {:#x})",
        bi.slb_size,
        boot::BOLTED_SLB,
        crate::mm::slbe::kernel_vsid(boot::KERNEL_BASE)
    );
    println!("  bolted:    linear zone PA 0..{:#x} ({} HPTEs)", bi.linear_zone_end(), bi.linear_zone_end() >> 12);
    println!("  kernel:    {:#x}..{:#x}, running translated: MSR {}", ks, ke, msr);
    println!("  timebase:  {} Hz, decrementer {} bits", bi.tb_freq, bi.dec_bits);
    println!("  bootargs:  \"{}\"", bi.bootargs());
}

fn memory_map() {
    use crate::mm::{frame, heap, vmalloc};
    let bi = boot::info();
    let (ks, ke) = boot::kernel_range();
    let crate::mm::heap::HeapStats { start: hs, end: he, used: hu, free: hf, .. } = heap::stats();
    let crate::mm::frame::FrameCounts { free_linear: fl, free_high: fh, total_linear: tl, total_high: th } =
        frame::counts();
    println!("memory map:");
    println!("  RAM        PA {:#014x}..{:#014x} ({} MiB)", 0, bi.mem_size, bi.mem_size >> 20);
    println!("  vectors    PA {:#014x}..{:#014x}", 0, 0x2000);
    println!("  kernel     PA {:#014x}..{:#014x} (at {:#x})", ks & 0xfff_ffff, ke & 0xfff_ffff, ks);
    println!("  heap       VA {:#x}..{:#x} ({} KiB used, {} KiB free)", hs, he, hu >> 10, hf >> 10);
    println!(
        "  linear     VA {:#x}..{:#x} bolted; frames {}/{} free",
        crate::mm::KERNEL_BASE,
        crate::mm::KERNEL_BASE + bi.linear_zone_end(),
        fl,
        tl
    );
    println!(
        "  high       PA {:#014x}..{:#014x}; frames {}/{} free (vmalloc only)",
        bi.linear_zone_end(),
        bi.mem_size,
        fh,
        th
    );
    println!("  vmalloc    VA {:#x}..{:#x}", vmalloc::VMALLOC_START, vmalloc::VMALLOC_END);
    println!("  ioremap    VA {:#x}..{:#x}", vmalloc::IOREMAP_START, vmalloc::IOREMAP_END);
}

/// vmalloc'd memory faulted in by hash_page, with the counters to show it.
fn vmalloc_selfcheck() -> Result<(), alloc::string::String> {
    use crate::hash::stats::{self, Counter};
    use crate::mm::vmalloc;
    let pages = 64u64;
    let before = stats::total();
    let frames0 = crate::mm::frame::counts().free_high; // high zone: page-table pages (linear) are never freed
    let a = vmalloc::vmalloc(pages * 4096).map_err(|e| alloc::format!("vmalloc: {e}"))?;
    for i in 0..pages * 512 {
        // SAFETY: the area is ours until vfree.
        unsafe { core::ptr::write_volatile((a + 8 * i) as *mut u64, i.wrapping_mul(0x9e37_79b9)) };
    }
    for i in 0..pages * 512 {
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile((a + 8 * i) as *const u64) };
        if v != i.wrapping_mul(0x9e37_79b9) {
            return Err(alloc::format!("vmalloc data mismatch at word {i}"));
        }
    }
    vmalloc::vfree(a).map_err(|e| alloc::format!("vfree: {e}"))?;
    let left = (0..pages).filter(|i| vmalloc::find_hpte(a + i * 4096).is_some()).count();
    let delta = stats::total().since(&before);
    let d = |c: Counter| delta.get(c);
    println!("vmalloc self-check: {} pages at {:#x}: {} hash faults ({} primary, {} secondary inserts, {} H_PROTECT updates), {} HPTEs left after vfree",
             pages, a, delta.faults(), d(Counter::InsertPrimary), d(Counter::InsertSecondary), d(Counter::Updates), left);
    if left != 0 || d(Counter::InsertPrimary) + d(Counter::InsertSecondary) < pages {
        return Err("vmalloc self-check failed".into());
    }
    if crate::mm::frame::counts().free_high != frames0 {
        return Err("frames leaked".into());
    }
    // A second mapping of the UART's registers must reach the device: a scratch-register round
    // trip. Without a UART nothing in the PCI I/O window answers, and reading there would only
    // give QEMU an invalid access to log: map and unmap it without touching it.
    match crate::drivers::uart::state() {
        Some(st) => {
            let io = vmalloc::ioremap(st.bar.phys, st.bar.size).map_err(|e| alloc::format!("ioremap: {e}"))?;
            // SAFETY: `io` maps the live UART's registers; the console never uses the scratch register.
            let r = unsafe { crate::drivers::uart::scratch_round_trip(io) };
            vmalloc::iounmap(io).map_err(|e| alloc::format!("iounmap: {e}"))?;
            match r {
                Ok(()) => println!("ioremap self-check: the UART's registers (PCI I/O, PA {:#x}) at {:#x}: scratch register round trip ok", st.bar.phys, io),
                Err(b) => return Err(alloc::format!("ioremap self-check failed: the UART's scratch register at {io:#x} read back {b:#x}")),
            }
        }
        None => {
            let io = vmalloc::ioremap(0x2000_0000_0000, 4096).map_err(|e| alloc::format!("ioremap: {e}"))?;
            vmalloc::iounmap(io).map_err(|e| alloc::format!("iounmap: {e}"))?;
            println!("ioremap self-check: no device in the PCI I/O window: mapped and unmapped PA 0x200000000000 at {:#x} without touching it", io);
        }
    }
    Ok(())
}

fn default_run() -> ! {
    memory_map();
    let design = crate::hash::fault::design();
    println!("hash_page: {}", design.describe());
    if let Some(m) = design.model_says() {
        println!("hash_page: {}", m);
    }
    let cfg = config();
    let inject = !cfg.inject.is_empty();
    if inject {
        crate::inject::arm(&cfg.inject);
        println!("fault injection: armed for the self-check, the interrupt scenario and the SMP stress ({} rounds); the in-kernel tests, which check exact paths, are not run (test=FILTER inject=... runs them with it)", cfg.smp_rounds);
    }
    // Under injection the self-check's own area is allocated without injected failures (the
    // hypervisor's still apply to its faults); the workloads below get both.
    if let Err(e) = crate::inject::suspend_allocs(vmalloc_selfcheck) {
        println!("{}", e);
        crate::exit::exit_failure("self-check failed");
    }
    println!("irqtest: the 2003 scenario: a decrementer handler faults on vmalloc memory while vmalloc holds page_table_lock with interrupts on");
    match crate::run::irqtest::with_watchdog(|| crate::run::irqtest::run_checked(cfg.irq_mode, cfg.irq_iterations)) {
        Ok(r) => {
            println!("irqtest: {} interrupts delivered inside vmalloc's critical section, {} hash faults served from interrupt context, 0 deadlocks",
                     r.window_hits, r.hash_faults_in_irq);
            crate::result!("scenario", window_hits = r.window_hits, irq_faults = r.hash_faults_in_irq, deadlocks = 0);
        }
        Err(e) => {
            println!("irqtest: FAILED: {}", e);
            crate::exit::exit_failure("irqtest failed");
        }
    }
    if cfg.trace_stop == bootargs::TraceStop::Irqtest && !cfg.trace.is_empty() {
        crate::trace::freeze();
        println!(
            "trace: stopped after the interrupt scenario (trace.stop=irqtest); the rings keep it for the dump at exit"
        );
    }
    if inject {
        injection_run_end();
    }
    // The self-checks include the SMP race stress (smp::race_stress_invariants_hold, sized by
    // smp.rounds) and the irqtest variants; their reports print as they run.
    let (p, f) = self_checks();
    println!("self-checks: {} passed, {} failed", p, f);
    crate::result!("self_checks", passed = p, failed = f);
    crate::hash::stats::print();
    if f > 0 || p == 0 {
        crate::exit::exit_failure("self-checks failed");
    }
    crate::exit::exit_success()
}

/// Every in-kernel test (the SMP stress among them), or, in a build without the tests, the
/// SMP stress alone: (passed, failed).
#[cfg(feature = "ktests")]
fn self_checks() -> (usize, usize) {
    crate::ktest::run("")
}

#[cfg(not(feature = "ktests"))]
fn self_checks() -> (usize, usize) {
    match crate::run::stress::stress_checked(config().smp_rounds) {
        Ok(_) => (1, 0),
        Err(e) => {
            println!("smp stress: FAILED: {}", e);
            (0, 1)
        }
    }
}

/// The rest of a default run under `inject=`: the SMP stress with the plan armed, then the
/// counters and what was injected.
fn injection_run_end() -> ! {
    let r = crate::run::stress::stress_checked(config().smp_rounds);
    crate::inject::disarm();
    crate::hash::stats::print();
    crate::inject::print_summary();
    match r {
        Ok(rep) => {
            let injected: u64 = rep.injected.iter().sum();
            println!("fault injection: survived: {} hash faults in the stress with {} failures injected, {} named out-of-memory errors, 0 violations, 0 frames leaked",
                     rep.faults, injected, rep.out_of_memory);
            crate::exit::exit_success()
        }
        Err(e) => {
            println!("smp stress: FAILED: {}", e);
            crate::exit::exit_failure("fault injection run failed")
        }
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::report::panic(info)
}
