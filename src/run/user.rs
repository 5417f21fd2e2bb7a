//! Problem state (MSR[PR]=1) for tests: `run_user_load`/`run_user_store` copy a short payload
//! (a load from r3 or a store to it, then `sc`) into a USER|EXEC vmalloc page and run it. The kernel gets control back on the
//! system call, or on a fault the kernel refuses (exception.rs asks `user_fault`), by rewriting
//! that exception's frame to resume at `user_return`.

use crate::arch::ppc64::boot::kernel_msr;
use crate::arch::ppc64::exception::{ExcFrame, Handled};
use crate::arch::ppc64::percpu;
use crate::mm::pte::PteFlags;
use crate::mm::vmalloc;
use core::sync::atomic::Ordering::Relaxed;

extern "C" {
    fn user_enter(entry: u64, arg: u64, msr: u64) -> u64;
    static user_return: u8;
    static user_payload: u8;
    static user_payload_end: u8;
    static user_payload_store: u8;
    static user_payload_store_end: u8;
}

/// How a problem-state run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserExit {
    /// The payload reached its `sc`: the load succeeded.
    Syscall,
    /// The kernel refused a fault: vector, DAR, DSISR.
    Fault { trap: u64, dar: u64, dsisr: u64 },
}

const PR: u64 = crate::arch::ppc64::reg::Msr::PR.bits();

/// crash=user: refused user faults oops instead of returning to the kernel.
pub static FATAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn resume_kernel(f: &mut ExcFrame, code: u64) {
    let p = percpu::this();
    f.gpr[1] = p.user_sp.swap(0, Relaxed);
    f.gpr[3] = code;
    f.gpr[13] = p as *const _ as u64;
    // SAFETY: address of an assembly label.
    f.nip = unsafe { &user_return as *const u8 as u64 };
    f.msr = kernel_msr();
}

pub fn syscall(f: &mut ExcFrame) -> Handled {
    if f.from_user() && percpu::this().user_sp.load(Relaxed) != 0 {
        resume_kernel(f, 0);
        return Handled::Done;
    }
    Handled::Bad("system call from an unexpected context".into())
}

/// A fault from problem state that the kernel will not resolve: end the user run.
pub fn user_fault(f: &mut ExcFrame) -> bool {
    let p = percpu::this();
    if !f.from_user() || p.user_sp.load(Relaxed) == 0 || FATAL.load(Relaxed) {
        return false;
    }
    p.probe_fault[0].store(f.trap, Relaxed);
    p.probe_fault[1].store(f.dar, Relaxed);
    p.probe_fault[2].store(f.dsisr, Relaxed);
    resume_kernel(f, 1);
    true
}

/// Runs the load payload in problem state with r3 = `addr`.
pub fn run_user_load(addr: u64) -> Result<UserExit, vmalloc::VmError> {
    // SAFETY: addresses of the linker symbols delimiting the payload.
    run_user(addr, unsafe { (&user_payload as *const u8, &user_payload_end as *const u8) })
}

/// Runs the store payload in problem state: a doubleword store of `addr` to `addr`.
pub fn run_user_store(addr: u64) -> Result<UserExit, vmalloc::VmError> {
    // SAFETY: addresses of the linker symbols delimiting the payload.
    run_user(addr, unsafe { (&user_payload_store as *const u8, &user_payload_store_end as *const u8) })
}

fn run_user(addr: u64, (s, e): (*const u8, *const u8)) -> Result<UserExit, vmalloc::VmError> {
    let flags = PteFlags::PRESENT | PteFlags::USER | PteFlags::EXEC | PteFlags::COHERENT | PteFlags::RW;
    let page = vmalloc::vmalloc_flags(4096, flags)?;
    // SAFETY: `s..e` delimits one payload in kernel text; the page is ours and writable.
    unsafe {
        let n = e as usize - s as usize;
        core::ptr::copy_nonoverlapping(s, page as *mut u8, n);
        let mut a = page;
        while a < page + n as u64 {
            core::arch::asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", in(reg) a);
            a += 128;
        }
        core::arch::asm!("sync", "isync");
    }
    // SAFETY: user_enter returns through user_return with the kernel state it saved.
    let rc = unsafe { user_enter(page, addr, (kernel_msr() | PR) & !crate::arch::ppc64::reg::Msr::EE.bits()) };
    let p = percpu::this();
    let r = if rc == 0 {
        UserExit::Syscall
    } else {
        UserExit::Fault {
            trap: p.probe_fault[0].load(Relaxed),
            dar: p.probe_fault[1].load(Relaxed),
            dsisr: p.probe_fault[2].load(Relaxed),
        }
    };
    vmalloc::vfree(page)?;
    Ok(r)
}
