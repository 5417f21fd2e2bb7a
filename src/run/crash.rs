//! `crash=KIND`: do something wrong on purpose so a user can see the oops. Each kind ends in
//! an oops (or panic) report and exit status 1.

use crate::bootargs::Crash;
use crate::mm::pte::{PteFlags, PAGE_KERNEL};
use crate::mm::vmalloc;

pub fn run(kind: Crash) -> ! {
    crate::println!("crash: deliberately causing '{:?}'", kind);
    match kind {
        Crash::Panic => panic!("deliberate panic (crash=panic)"),
        Crash::Null => {
            // SAFETY: not safe at all: this is the deliberate NULL dereference.
            let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
            crate::println!("read {v:#x} from NULL?!");
        }
        Crash::Wild => {
            // SAFETY: deliberately wild: 0x5000... lies in no kernel region.
            let v = unsafe { core::ptr::read_volatile(0x5000_0000_dead_0000 as *const u64) };
            crate::println!("read {v:#x} from a wild address?!");
        }
        Crash::Exec => {
            // A vmalloc data page (no EXEC) holding a `blr`: the fetch is refused.
            let a = vmalloc::vmalloc_flags(4096, PAGE_KERNEL).expect("vmalloc");
            // SAFETY: our page; 0x4e800020 is `blr`.
            unsafe { core::ptr::write_volatile(a as *mut u32, 0x4e80_0020) };
            crate::println!("crash: calling data page {a:#x}");
            // SAFETY: deliberately not: the page is not executable.
            let f: extern "C" fn() = unsafe { core::mem::transmute(a as usize) };
            f();
        }
        Crash::User => {
            crate::run::user::FATAL.store(true, core::sync::atomic::Ordering::Relaxed);
            let k = vmalloc::vmalloc(4096).expect("vmalloc");
            crate::println!("crash: problem-state load from kernel page {k:#x}");
            let _ = crate::run::user::run_user_load(k);
        }
        Crash::NotPresent => {
            let ea = vmalloc::VMALLOC_START + (52u64 << 30);
            let swap = 0x0000_0def_0000_0000u64 | PteFlags::RW.bits();
            vmalloc::set_pte_raw(ea, u64::MAX, swap).expect("set pte");
            crate::println!("crash: load from {ea:#x}, whose PTE holds a swap entry {swap:#x}");
            // SAFETY: deliberately not: the PTE is not present.
            let v = unsafe { core::ptr::read_volatile(ea as *const u64) };
            crate::println!("read {v:#x}?!");
        }
        Crash::Guard => {
            let a = vmalloc::vmalloc(2 * 4096).expect("vmalloc");
            crate::println!("crash: store just past the 2-page area at {a:#x}");
            // SAFETY: deliberately not: the guard page after the area.
            unsafe { core::ptr::write_volatile((a + 2 * 4096) as *mut u64, 1) };
        }
        Crash::Nested => {
            // A hash fault whose SRR1 says MSR[RI]=0, as one inside the hash-fault handler
            // would: the entry must refuse to return into destroyed state.
            let a = vmalloc::vmalloc(4096).expect("vmalloc");
            // Drop the HPTE vmalloc's zeroing left, so the load below is a hash fault.
            vmalloc::change_protection(a, PteFlags::empty(), PteFlags::empty()).expect("flush");
            crate::println!("crash: load from the unhashed page {a:#x} with MSR[RI]=0");
            // SAFETY: deliberately not: `mtmsrd t, 1` clears EE and RI, then the load faults.
            unsafe {
                core::arch::asm!("li {t}, 0", "mtmsrd {t}, 1", "ld {t}, 0({a})", t = out(reg_nonzero) _, a = in(reg_nonzero) a, options(nostack))
            };
        }
        Crash::Stack => {
            crate::println!("crash: unbounded recursion on CPU 0's kernel stack");
            let n = recurse(u64::MAX);
            crate::println!("recursion returned {n}?!");
        }
        Crash::ExcStack => {
            // The same recursion inside an interrupt handler, which runs on the exception
            // stack: its guard page, not the next CPU's stack, must stop it.
            crate::println!("crash: unbounded recursion in a decrementer handler (CPU 0's exception stack)");
            crate::arch::ppc64::timer::set_hook(Some(|_| {
                let n = recurse(u64::MAX);
                crate::println!("recursion returned {n}?!");
            }));
            crate::arch::ppc64::irq::enable();
            crate::arch::ppc64::timer::arm(512);
            crate::arch::ppc64::timer::udelay(2_000_000);
        }
    }
    let _ = PAGE_KERNEL;
    crate::exit::exit_failure("crash= kind did not crash");
}

/// Recursion that neither the compiler nor the stack can make bounded: 1 KiB per level, used
/// after the call returns (so no tail call), until the stack's guard page stops it.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let mut buf = [0u8; 1024];
    core::hint::black_box(&mut buf);
    buf[(n % 1024) as usize] = n as u8;
    if n == 0 {
        return 0;
    }
    let below = recurse(core::hint::black_box(n - 1));
    below + core::hint::black_box(&buf)[(n.wrapping_mul(7) % 1024) as usize] as u64
}
