//! irqtest:: tests: the 2003 scenario's windows, deterministic and random (src/run/irqtest.rs).
use crate::bootargs::IrqMode;
use crate::ktest::TestResult;
use crate::run::irqtest::*;

crate::ktest!("irqtest", deterministic_window_lockfree);
fn deterministic_window_lockfree() -> TestResult {
    if crate::hash::fault::locked_mode() {
        return crate::ktest::skip("lock-free only (booted with hash_page=locked)");
    }
    let r = with_watchdog(|| run_checked(IrqMode::Deterministic, 300))?;
    crate::kassert!(r.in_critical_section >= 300);
    Ok(())
}

crate::ktest!("irqtest", random_window_reachable_lockfree);
fn random_window_reachable_lockfree() -> TestResult {
    if crate::hash::fault::locked_mode() {
        return crate::ktest::skip("lock-free only (booted with hash_page=locked)");
    }
    with_watchdog(|| run_checked(IrqMode::Random, 3000))?;
    Ok(())
}
