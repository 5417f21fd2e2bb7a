//! `crash=KIND`: do something wrong on purpose so a user can see the oops.

use crate::bootargs::Crash;

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
        _ => crate::println!("crash kind {:?} needs a later subsystem", kind),
    }
    crate::exit::exit_failure("crash= kind did not crash");
}
