//! 0x300/0x400 entry (placeholder until hash_page lands).
use crate::arch::ppc64::exception::{ExcFrame, Handled};

pub fn handle(_f: &mut ExcFrame) -> Handled {
    Handled::Bad("hash fault")
}
