//! In-kernel test framework. Tests register themselves with `ktest!` in the `.ktests` linker
//! section, so the same registry serves `cargo test` (which builds a test kernel and boots it
//! through the runner) and the `test=FILTER` bootarg of a normal image.

mod t_boot;
mod t_hash;
mod t_inject;
mod t_irqtest;
mod t_mmu;
mod t_powernv;
mod t_review2003;
mod t_smp;
mod t_trace;
mod t_uart;
mod t_vmalloc;

use alloc::string::String;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub type TestResult = Result<(), String>;

/// How `skip` marks its result, so that `run` lists it as skipped instead of failed.
const SKIPPED: &str = "skipped: ";

/// The result of a test that does not apply to this run (a lock-free-only test booted with
/// `hash_page=locked`): listed as skipped, counted as neither passed nor failed.
pub fn skip(why: &str) -> TestResult {
    Err(alloc::format!("{SKIPPED}{why}"))
}

#[repr(C)]
pub struct KTest {
    pub name: &'static str,
    pub func: fn() -> TestResult,
    /// Only meaningful on this platform (RTAS, the PCI UART; OPAL, the native HPT); listed as
    /// skipped elsewhere, never counted as passed.
    pub only: Option<crate::arch::ppc64::platform::Platform>,
}

/// Registers an in-kernel test in a named group: `ktest!("mmu", name);` above
/// `fn name() -> TestResult { ...; Ok(()) }`. The test is called `GROUP::name`
/// (`mmu::translation_on`). `ktest!("of", only Pseries, name);` registers one that exists on
/// that platform only. (The function stays an ordinary item, so rustfmt and clippy see its
/// body.)
#[macro_export]
macro_rules! ktest {
    ($group:literal, $name:ident) => {
        $crate::ktest!(@def $group, None, $name);
    };
    ($group:literal, only $plat:ident, $name:ident) => {
        $crate::ktest!(@def $group, Some($crate::arch::ppc64::platform::Platform::$plat), $name);
    };
    (@def $group:literal, $only:expr, $name:ident) => {
        const _: () = {
            #[link_section = ".ktests"]
            #[used]
            static KTEST_ENTRY: $crate::ktest::KTest =
                $crate::ktest::KTest { name: concat!($group, "::", stringify!($name)), func: $name, only: $only };
        };
    };
}

/// `kassert!(cond, "format", args)`: fail the current test with a message.
#[macro_export]
macro_rules! kassert {
    ($c:expr) => { if !$c { return Err(alloc::format!("assertion failed: {} ({}:{})", stringify!($c), file!(), line!())); } };
    ($c:expr, $($arg:tt)+) => { if !$c { return Err(alloc::format!("{} ({}:{})", alloc::format!($($arg)+), file!(), line!())); } };
}

#[macro_export]
macro_rules! kassert_eq {
    ($a:expr, $b:expr) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(alloc::format!(
                "{} == {} failed: {:#x?} != {:#x?} ({}:{})",
                stringify!($a),
                stringify!($b),
                a,
                b,
                file!(),
                line!()
            ));
        }
    }};
}

extern "C" {
    static __ktests_start: u8;
    static __ktests_end: u8;
}

pub fn all() -> &'static [KTest] {
    // SAFETY: the linker script collects exactly the KTest statics between these symbols.
    unsafe {
        let s = &__ktests_start as *const u8 as *const KTest;
        let e = &__ktests_end as *const u8 as *const KTest;
        core::slice::from_raw_parts(s, e.offset_from(s) as usize)
    }
}

pub fn short_name(t: &KTest) -> &'static str {
    t.name
}

pub static CURRENT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Announces one access to an unbacked physical address that a test is about to make on
/// purpose. QEMU logs such an access under `-d guest_errors` as "Invalid read at addr PA, size
/// N, ..."; scripts/qemu-log-check.sh requires every line of that log to be announced like this
/// (and every announcement to be in the log), so a clean run gives QEMU nothing else to report.
pub fn expect_qemu_log(access: &str, pa: u64, size: u32) {
    crate::println!("qemu-log-expect: Invalid {} at addr {:#x}, size {}", access, pa, size);
}

/// Runs every test whose name contains `filter`; returns (passed, failed). Tests of the other
/// platform, and tests that `skip` this run, are listed as skipped and counted in neither.
pub fn run(filter: &str) -> (usize, usize) {
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let here = crate::arch::ppc64::platform::get();
    for (i, t) in all().iter().enumerate() {
        let name = short_name(t);
        if !name.contains(filter) {
            continue;
        }
        if let Some(p) = t.only.filter(|&p| p != here) {
            if !crate::bootargs::quiet() {
                crate::println!("test {} ... skipped ({} only)", name, p.name());
            }
            skip += 1;
            continue;
        }
        CURRENT.store(i, Relaxed);
        match (t.func)() {
            Ok(()) => {
                if !crate::bootargs::quiet() {
                    crate::println!("test {} ... ok", name);
                }
                pass += 1;
            }
            Err(msg) if msg.starts_with(SKIPPED) => {
                crate::println!("test {} ... {}", name, msg);
                skip += 1;
            }
            Err(msg) => {
                crate::println!("test {} ... FAILED: {}", name, msg);
                fail += 1;
            }
        }
    }
    CURRENT.store(usize::MAX, Relaxed);
    if skip > 0 {
        crate::println!(
            "{} test(s) skipped: they exist on the other platform only, or not for this run's options",
            skip
        );
    }
    (pass, fail)
}

/// Runs the selected tests, prints the summary and ends the run.
pub fn run_and_exit(filter: &str) -> ! {
    let (p, f) = run(filter);
    if crate::inject::armed() {
        crate::inject::disarm();
        crate::inject::print_summary();
    }
    crate::println!("{} passed, {} failed", p, f);
    crate::result!("tests", passed = p, failed = f);
    if p + f == 0 {
        crate::println!("no test matched '{}'", filter);
        crate::exit::exit_failure("no tests ran");
    }
    use qemu_exit::QEMUExit;
    if f > 0 {
        crate::println!("{} test(s) failed", f);
        crate::exit::exit_failure("tests failed");
    }
    crate::exit::Pseries.exit_success()
}

/// `cargo test` entry (custom_test_frameworks): the registry holds the tests, so the slice of
/// `#[test_case]` items is empty by design.
pub fn cargo_test_runner(_tests: &[&dyn Fn()]) {
    run_and_exit("")
}

// Deliberately failing test, compiled in only with `--features fail-demo`: proves that a
// failing test fails the run.
#[cfg(feature = "fail-demo")]
crate::ktest!("ktest", deliberately_failing);
#[cfg(feature = "fail-demo")]
fn deliberately_failing() -> TestResult {
    crate::kassert!(1 + 1 == 3, "this test fails on purpose");
    Ok(())
}
