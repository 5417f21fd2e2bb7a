//! The kernel proper, entered from boot/entry.S with translation on: bring-up order and the
//! default run.

use crate::arch::ppc64::{boot, insn, percpu, reg::Msr};
use crate::bootargs::{self, Config};
use crate::println;

static CONFIG: spin::Once<Config<'static>> = spin::Once::new();

pub fn config() -> &'static Config<'static> {
    CONFIG.get().expect("bootargs are parsed first thing in kmain")
}

pub extern "C" fn kmain(_arg: u64) -> ! {
    let bi = boot::info();
    percpu::paca(0).online.store(1, core::sync::atomic::Ordering::Release);
    let cfg = match bootargs::parse(bi.bootargs()) {
        Ok(c) => *CONFIG.call_once(|| c),
        Err(e) => {
            println!("hashkernel: {}", e);
            crate::exit::exit_failure("bad bootargs");
        }
    };
    banner(bi);
    crate::mm::init();
    crate::arch::ppc64::timer::init();
    crate::hash::fault::set_locked_mode(cfg.hash_mode == bootargs::HashMode::Locked);

    if cfg!(test) {
        #[cfg(test)]
        crate::test_main();
    }
    if let Some(filter) = cfg.test {
        crate::ktest::run_and_exit(filter);
    }
    if let Some(kind) = cfg.crash {
        crate::ktest::crash::run(kind);
    }
    default_run()
}

fn banner(bi: &boot::BootInfo) {
    let msr = Msr::from_bits_retain(insn::mfmsr());
    let (ks, ke) = boot::kernel_range();
    println!("hashkernel {} — lock-free hash_page on ppc64 pseries", env!("CARGO_PKG_VERSION"));
    println!("  machine:   {} ({:?} firmware, {} OF calls)", bi.model(), bi.firmware, bi.of_calls);
    println!("  cpu:       {} (PVR {:#010x}), {} CPU(s) in /cpus", bi.cpu_name(), bi.pvr, bi.cpus_in_tree);
    println!("  memory:    {} MiB", bi.mem_size >> 20);
    println!("  hpt:       {} KiB (ibm,pft-size {}), {} groups", bi.hpt().bytes() >> 10, bi.pft_shift, bi.hpt().groups());
    println!("  slb:       {} entries, {} bolted (linear 0xc000000000000000, VSID {:#x})",
             bi.slb_size, boot::BOLTED_SLB, crate::mm::slbe::kernel_vsid(boot::KERNEL_BASE));
    println!("  bolted:    linear zone PA 0..{:#x} ({} HPTEs)", bi.linear_zone_end(), bi.linear_zone_end() >> 12);
    println!("  kernel:    {:#x}..{:#x}, running translated: MSR {}", ks, ke, msr);
    println!("  timebase:  {} Hz, decrementer {} bits", bi.tb_freq, bi.dec_bits);
    println!("  bootargs:  \"{}\"", bi.bootargs());
}

fn default_run() -> ! {
    let (p, f) = crate::ktest::run("");
    println!("self-checks: {} passed, {} failed", p, f);
    if f > 0 || p == 0 {
        crate::exit::exit_failure("self-checks failed");
    }
    crate::exit::exit_success()
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::smp::stop_others();
    let cpu = percpu::cpu_id();
    crate::console::with_console(|w| {
        use core::fmt::Write;
        let _ = writeln!(w, "------------[ kernel panic on CPU {} ]------------", cpu);
        match info.location() {
            Some(l) => {
                let _ = writeln!(w, "panicked at {}:{}:{}:", l.file(), l.line(), l.column());
            }
            None => {
                let _ = writeln!(w, "panicked:");
            }
        }
        let _ = writeln!(w, "  {}", info.message());
        let sp: u64;
        // SAFETY: reads r1.
        unsafe { core::arch::asm!("mr {0}, 1", out(reg) sp) };
        let _ = writeln!(w, "Call trace:");
        crate::arch::ppc64::exception::backtrace_from(w, sp, None);
    });
    crate::exit::exit_failure("panic");
}
