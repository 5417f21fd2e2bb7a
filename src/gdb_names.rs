//! The names and layouts scripts/helpers.gdb needs, exported from their one definition: PTE
//! flags, vector names, hypervisor calls, the hash_page counters, the trace's events and
//! groups, the exception frame's layout. gdb reads `HK_GDB_NAMES` (`HK_GDB_NAMES_LEN` entries of
//! four doublewords: kind, value, name address, name length) from the image, so the helpers
//! never re-declare what the kernel defines — change a bit here and the debugger follows.

use crate::arch::ppc64::exception::{ExcFrame, HDR_SIZE};
use crate::arch::ppc64::{papr, reg};
use crate::hash::stats;
use crate::mm::pte::{Pte, PteFlags};
use crate::trace::event::{Event, GROUP_NAMES};
use core::mem::offset_of;

/// What an entry names (the first doubleword).
#[repr(u64)]
#[derive(Clone, Copy)]
pub enum Kind {
    /// A `PteFlags` flag or field: value = its mask.
    PteFlag = 1,
    /// An exception vector: value = the vector.
    Vector = 2,
    /// A hypervisor call: value = its token.
    Hcall = 3,
    /// A hash_page counter: value = its index in the per-CPU block.
    Counter = 4,
    /// A trace event: value = its number (the mnemonic as name).
    TraceEvent = 5,
    /// A trace group: value = its bit.
    TraceGroup = 6,
    /// A number: `pte.pfn_shift`, `frame.hdr_size`, `stats.outcomes`, `frame.<field>` offsets.
    Constant = 7,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Name {
    kind: u64,
    value: u64,
    name: *const u8,
    len: u64,
}

// SAFETY: the pointers are to `'static` string data, and nothing ever writes the table.
unsafe impl Sync for Name {}

const CAP: usize = 160;
const EMPTY: Name = Name { kind: 0, value: 0, name: core::ptr::null(), len: 0 };

const VECTORS: [u64; 24] = [
    0x100, 0x200, 0x300, 0x380, 0x400, 0x480, 0x500, 0x600, 0x700, 0x800, 0x900, 0x980, 0xa00, 0xc00, 0xd00, 0xe00,
    0xe20, 0xe40, 0xe60, 0xe80, 0xea0, 0xf00, 0xf20, 0xf40,
];

const HCALLS: [u64; 15] = [
    papr::H_REMOVE,
    papr::H_ENTER,
    papr::H_READ,
    papr::H_PROTECT,
    papr::H_PUT_TERM_CHAR,
    papr::H_EOI,
    papr::H_CPPR,
    papr::H_IPI,
    papr::H_XIRR,
    papr::H_CEDE,
    papr::H_CONFER,
    papr::H_PROD,
    papr::H_SET_MODE,
    papr::H_SIGNAL_SYS_RESET,
    papr::KVMPPC_H_RTAS,
];

const FRAME: [(&str, usize); 11] = [
    ("frame.gpr", offset_of!(ExcFrame, gpr)),
    ("frame.nip", offset_of!(ExcFrame, nip)),
    ("frame.msr", offset_of!(ExcFrame, msr)),
    ("frame.ctr", offset_of!(ExcFrame, ctr)),
    ("frame.lr", offset_of!(ExcFrame, lr)),
    ("frame.xer", offset_of!(ExcFrame, xer)),
    ("frame.cr", offset_of!(ExcFrame, cr)),
    ("frame.dar", offset_of!(ExcFrame, dar)),
    ("frame.dsisr", offset_of!(ExcFrame, dsisr)),
    ("frame.trap", offset_of!(ExcFrame, trap)),
    ("frame.prev_frame", offset_of!(ExcFrame, prev_frame)),
];

const fn entry(kind: Kind, value: u64, name: &'static str) -> Name {
    Name { kind: kind as u64, value, name: name.as_ptr(), len: name.len() as u64 }
}

const fn build() -> ([Name; CAP], usize) {
    let mut t = [EMPTY; CAP];
    let mut n = 0;
    let flags = <PteFlags as bitflags::Flags>::FLAGS;
    let mut i = 0;
    while i < flags.len() {
        t[n] = entry(Kind::PteFlag, flags[i].value().bits(), flags[i].name());
        n += 1;
        i += 1;
    }
    i = 0;
    while i < VECTORS.len() {
        t[n] = entry(Kind::Vector, VECTORS[i], reg::vector_name(VECTORS[i]));
        n += 1;
        i += 1;
    }
    i = 0;
    while i < HCALLS.len() {
        t[n] = entry(Kind::Hcall, HCALLS[i], papr::name(HCALLS[i]));
        n += 1;
        i += 1;
    }
    i = 0;
    while i < stats::NAMES.len() {
        t[n] = entry(Kind::Counter, i as u64, stats::NAMES[i]);
        n += 1;
        i += 1;
    }
    i = 0;
    while i < Event::ALL.len() {
        t[n] = entry(Kind::TraceEvent, Event::ALL[i] as u64, Event::ALL[i].mnemonic());
        n += 1;
        i += 1;
    }
    i = 0;
    while i < GROUP_NAMES.len() {
        t[n] = entry(Kind::TraceGroup, GROUP_NAMES[i].1.bits() as u64, GROUP_NAMES[i].0);
        n += 1;
        i += 1;
    }
    i = 0;
    while i < FRAME.len() {
        t[n] = entry(Kind::Constant, FRAME[i].1 as u64, FRAME[i].0);
        n += 1;
        i += 1;
    }
    t[n] = entry(Kind::Constant, HDR_SIZE as u64, "frame.hdr_size");
    t[n + 1] = entry(Kind::Constant, Pte::PFN_SHIFT as u64, "pte.pfn_shift");
    t[n + 2] = entry(Kind::Constant, stats::OUTCOMES as u64, "stats.outcomes");
    (t, n + 3)
}

const BUILT: ([Name; CAP], usize) = build();

/// The table (`used`: nothing in the kernel reads it; gdb does).
#[no_mangle]
#[used]
pub static HK_GDB_NAMES: [Name; CAP] = BUILT.0;

#[no_mangle]
#[used]
pub static HK_GDB_NAMES_LEN: u64 = BUILT.1 as u64;
