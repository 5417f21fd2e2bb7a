//! irqtest:: tests: the 2003 scenario's windows, deterministic and random (src/run/irqtest.rs).
use crate::run::irqtest::*;
use crate::bootargs::IrqMode;

crate::ktest!("irqtest", fn deterministic_window_lockfree() {
    if crate::hash::fault::locked_mode() {
        return Ok(());
    }
    let r = with_watchdog(|| run_checked(IrqMode::Deterministic, 300))?;
    crate::kassert!(r.in_critical_section >= 300);
    Ok(())
});

crate::ktest!("irqtest", fn random_window_reachable_lockfree() {
    if crate::hash::fault::locked_mode() {
        return Ok(());
    }
    with_watchdog(|| run_checked(IrqMode::Random, 3000))?;
    Ok(())
});
