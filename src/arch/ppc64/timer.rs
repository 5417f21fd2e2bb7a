//! Time base and decrementer. The decrementer is level-triggered on Book3S-64: the handler
//! must write a positive value or the interrupt fires again as soon as EE is back on.

use super::exception::{ExcFrame, Handled};
use super::insn;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A far-future decrementer value that is positive for both 32-bit (POWER8) and 56-bit
/// (POWER9/10 large decrementer) widths.
pub const DEC_IDLE: u64 = 0x7fff_ffff;

pub static DEC_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

pub type DecHook = fn(&mut ExcFrame);
static HOOK: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    // SAFETY: DEC only schedules the next decrementer interrupt; EE is still off.
    unsafe { insn::mtdec(DEC_IDLE) };
}

pub fn tb_freq() -> u64 {
    super::boot::info().tb_freq
}

/// Microseconds to timebase ticks.
pub fn us_to_tb(us: u64) -> u64 {
    us * tb_freq() / 1_000_000
}

/// Installs (or clears, with None) the test driver's decrementer hook.
pub fn set_hook(h: Option<DecHook>) {
    HOOK.store(h.map(|f| f as usize as u64).unwrap_or(0), Relaxed);
}

/// Arms the decrementer to fire after `ticks` time-base ticks.
pub fn arm(ticks: u64) {
    // SAFETY: as init.
    unsafe { insn::mtdec(ticks.clamp(1, DEC_IDLE)) };
}

pub fn decrementer_interrupt(f: &mut ExcFrame) {
    // SAFETY: as init; reloading first keeps a level-triggered interrupt from re-firing.
    unsafe { insn::mtdec(DEC_IDLE) };
    crate::trace_point!(crate::trace::event::code(crate::trace::event::Event::Decrementer, 0), f as *mut ExcFrame);
    DEC_INTERRUPTS.fetch_add(1, Relaxed);
    let h = HOOK.load(Relaxed);
    if h != 0 {
        // SAFETY: HOOK only ever holds a DecHook stored by set_hook.
        let hook: DecHook = unsafe { core::mem::transmute(h as usize) };
        hook(f);
    }
}

pub fn external_interrupt(_f: &mut ExcFrame) -> Handled {
    Handled::Bad("unexpected external interrupt (no interrupt controller driver)".into())
}

/// Busy-waits `us` microseconds on the time base.
pub fn udelay(us: u64) {
    let end = insn::mftb() + us_to_tb(us);
    while insn::mftb() < end {
        insn::cpu_relax();
    }
}
