//! Kernel console: `print!`/`println!` over the PAPR virtual terminal (H_PUT_TERM_CHAR) on
//! pseries, OPAL's console (the LPC UART) on powernv, and, once it is up, the PCI 16550 UART
//! too.
//!
//! Lines stay whole across CPUs (one lock per `println!`), the lock masks interrupts while held
//! so an interrupt handler that prints cannot deadlock against the code it interrupted, and a
//! CPU that already holds the lock (an oops or panic in the middle of a print) writes straight
//! through instead of waiting for itself.

use crate::arch::ppc64::irq;
use crate::arch::ppc64::{hcall, insn};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

const NO_OWNER: u64 = u64::MAX;
static OWNER: AtomicU64 = AtomicU64::new(NO_OWNER);
/// Set when a driver has registered a second output (the PCI UART, `set_sink`); output then
/// goes to it as well.
pub static UART_ON: AtomicBool = AtomicBool::new(false);
/// That output: a `fn(&[u8])` (0: none). A slot rather than a call into the driver keeps the
/// console below the drivers.
static SINK: AtomicUsize = AtomicUsize::new(0);

/// Registers `f` as the console's second output, from now on.
pub fn set_sink(f: fn(&[u8])) {
    SINK.store(f as usize, Release);
    UART_ON.store(true, Release);
}
/// Set by the oops, panic and deadlock reports: from then on only the hypervisor console is
/// written. The UART goes through an ioremap mapping whose HPTE could have been evicted, and a
/// hash fault while reporting (say under hash_page=locked, with page_table_lock held by a
/// deadlocked CPU) must not be able to stall the report.
pub static EMERGENCY: AtomicBool = AtomicBool::new(false);

pub fn emergency() {
    EMERGENCY.store(true, Relaxed);
}

/// Writes to the hypervisor console, 16 bytes per hcall, retrying while it is busy (on
/// powernv: to the OPAL console).
fn hvterm_write(mut s: &[u8]) {
    if crate::arch::ppc64::platform::powernv() {
        return crate::arch::ppc64::opal::console_write(s);
    }
    while !s.is_empty() {
        let n = s.len().min(16);
        let mut tries = 0;
        loop {
            match hcall::h_put_term_char(&s[..n]) {
                Err(hcall::HcallError::Busy(_)) if tries < 1_000_000 => tries += 1,
                _ => break,
            }
        }
        s = &s[n..];
    }
}

/// Real-mode-safe output for the earliest boot messages (no lock, no formatting).
pub fn early_puts(s: &str) {
    hvterm_write(s.as_bytes());
}

pub struct ConsoleWriter {
    _private: (),
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        // The vty wants CRLF on a terminal; write runs between newlines in one go.
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    out(&rest[..i]);
                    out(b"\r\n");
                    rest = &rest[i + 1..];
                }
                None => {
                    out(rest);
                    rest = &[];
                }
            }
        }
        Ok(())
    }
}

fn out(b: &[u8]) {
    if b.is_empty() {
        return;
    }
    hvterm_write(b);
    let sink = SINK.load(Acquire);
    if sink != 0 && UART_ON.load(Relaxed) && !EMERGENCY.load(Relaxed) {
        // SAFETY: SINK only ever holds a `fn(&[u8])` stored by `set_sink`.
        let f: fn(&[u8]) = unsafe { core::mem::transmute::<usize, fn(&[u8])>(sink) };
        f(b);
    }
}

/// Whether this CPU holds the console.
pub fn held_by_me() -> bool {
    OWNER.load(Relaxed) == crate::arch::ppc64::percpu::cpu_id() as u64
}

/// Runs `f` with the console held by this CPU (interrupts masked).
pub fn with_console<R>(f: impl FnOnce(&mut ConsoleWriter) -> R) -> R {
    let saved = irq::save_disable();
    let me = crate::arch::ppc64::percpu::cpu_id() as u64;
    let reentrant = OWNER.load(Acquire) == me;
    if !reentrant {
        // Bounded: a CPU that died holding the console must not silence the others' oopses.
        let start = insn::mftb();
        while OWNER.compare_exchange_weak(NO_OWNER, me, Acquire, Relaxed).is_err() {
            insn::cpu_relax();
            if insn::mftb().wrapping_sub(start) > 512_000_000 {
                OWNER.store(me, Release);
                break;
            }
        }
    }
    let r = f(&mut ConsoleWriter { _private: () });
    if !reentrant {
        OWNER.store(NO_OWNER, Release);
    }
    irq::restore(saved);
    r
}

pub fn _print(args: fmt::Arguments) {
    with_console(|w| {
        let _ = w.write_fmt(args);
    });
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// One machine-readable line for the tools (scripts/ci.sh): `result: WHAT key=value ...`, for
/// every outcome a tool checks, beside the sentence a person reads, so the tools match these
/// keys rather than the prose. `result!("tests", passed = p, failed = f)`.
#[macro_export]
macro_rules! result {
    ($what:literal $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::println!(concat!("result: ", $what $(, " ", stringify!($k), "={}")*) $(, $v)*)
    };
}
