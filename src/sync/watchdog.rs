//! Deadlock watchdog hooks (filled in by the deadlock-regression work).

use super::ptlock::Holder;

#[inline(always)]
pub fn spinning(_lock: &'static str, _holder: Option<Holder>) {}
