//! Physical frame allocator over RAM from `/memory` `reg`, in two zones:
//! - linear: frames below the end of the bolted linear zone (64 MiB or RAM), reachable at
//!   0xc000... + PA without faults — page tables, heap, stacks come from here;
//! - high: everything above, reachable only through a vmalloc mapping (hash faults).
//!
//! The vectors page, the kernel image and the firmware's low memory are never handed out.
//! Double frees and frees of frames the allocator never owned are detected and reported.

use super::bitmap::{Bitmap3, BitmapError};
use crate::sync::IrqSpin;
use core::fmt;

pub const PAGE_SIZE: u64 = 4096;
/// Largest RAM the static bitmaps cover (more RAM is ignored with a notice).
pub const MAX_RAM: u64 = 16 << 30;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Zone {
    Linear,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    OutOfMemory,
    DoubleFree(u64),
    Foreign(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::OutOfMemory => f.write_str("out of physical frames"),
            FrameError::DoubleFree(p) => write!(f, "double free of frame {p:#x}"),
            FrameError::Foreign(p) => write!(f, "free of frame {p:#x}, which the allocator does not own"),
        }
    }
}

struct Frames {
    linear: Bitmap3<256, 4, 1>,
    high: Bitmap3<65536, 1024, 16>,
    linear_end: u64,
    high_end: u64,
    reserved: [(u64, u64); MAX_RESERVED],
}

/// Reserved ranges `init` keeps.
pub const MAX_RESERVED: usize = 12;

static FRAMES: IrqSpin<Frames> = IrqSpin::new(Frames {
    linear: Bitmap3::new(),
    high: Bitmap3::new(),
    linear_end: 0,
    high_end: 0,
    reserved: [(0, 0); MAX_RESERVED],
});

/// Sets up both zones. `reserved` are [start, end) physical ranges never handed out.
pub fn init(mem_size: u64, linear_end: u64, reserved: &[(u64, u64)]) {
    let mut f = FRAMES.lock();
    let mem = mem_size.min(MAX_RAM);
    f.linear_end = linear_end;
    f.high_end = mem;
    f.linear.set_len((linear_end / PAGE_SIZE) as usize);
    f.high.set_len(((mem - linear_end) / PAGE_SIZE) as usize);
    assert!(reserved.len() <= MAX_RESERVED, "{} reserved ranges, the allocator keeps {}", reserved.len(), MAX_RESERVED);
    for (i, r) in reserved.iter().enumerate() {
        f.reserved[i] = *r;
    }
    let is_reserved = |pa: u64, f: &Frames| f.reserved.iter().any(|&(s, e)| pa >= s && pa < e);
    for i in 0..f.linear.len() {
        let pa = i as u64 * PAGE_SIZE;
        if !is_reserved(pa, &f) {
            f.linear.free(i).unwrap();
        }
    }
    for i in 0..f.high.len() {
        let pa = linear_end + i as u64 * PAGE_SIZE;
        if !is_reserved(pa, &f) {
            f.high.free(i).unwrap();
        }
    }
}

/// Allocates one frame; `High` falls back to the linear zone when the high zone is empty
/// (or absent, with little RAM). Returns its physical address. `inject=frame:...` makes it
/// fail on purpose (`crate::inject`).
pub fn alloc(zone: Zone) -> Result<u64, FrameError> {
    if crate::inject::frame_alloc_fails() {
        return Err(FrameError::OutOfMemory);
    }
    let mut f = FRAMES.lock();
    if zone == Zone::High {
        if let Some(i) = f.high.alloc_low() {
            return Ok(f.linear_end + i as u64 * PAGE_SIZE);
        }
    }
    // Linear frames come from the top so the heap, which grows up from the kernel image, can
    // usually extend in place.
    f.linear.alloc_high().map(|i| i as u64 * PAGE_SIZE).ok_or(FrameError::OutOfMemory)
}

/// Claims the specific linear frame at `pa` (heap growth).
pub fn claim(pa: u64) -> Result<(), FrameError> {
    let mut f = FRAMES.lock();
    if pa >= f.linear_end {
        return Err(FrameError::Foreign(pa));
    }
    f.linear.claim((pa / PAGE_SIZE) as usize).map_err(|_| FrameError::OutOfMemory)
}

pub fn free(pa: u64) -> Result<(), FrameError> {
    let mut f = FRAMES.lock();
    if !pa.is_multiple_of(PAGE_SIZE) || f.reserved.iter().any(|&(s, e)| pa >= s && pa < e) {
        return Err(FrameError::Foreign(pa));
    }
    let (le, he) = (f.linear_end, f.high_end);
    let r = if pa < le {
        f.linear.free((pa / PAGE_SIZE) as usize)
    } else if pa < he {
        f.high.free(((pa - le) / PAGE_SIZE) as usize)
    } else {
        Err(BitmapError::Foreign)
    };
    r.map_err(|e| match e {
        BitmapError::DoubleFree => FrameError::DoubleFree(pa),
        _ => FrameError::Foreign(pa),
    })
}

/// Frames free and in total, per zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCounts {
    pub free_linear: usize,
    pub free_high: usize,
    pub total_linear: usize,
    pub total_high: usize,
}

pub fn counts() -> FrameCounts {
    let f = FRAMES.lock();
    FrameCounts {
        free_linear: f.linear.free_count(),
        free_high: f.high.free_count(),
        total_linear: f.linear.len(),
        total_high: f.high.len(),
    }
}

pub fn free_total() -> usize {
    let c = counts();
    c.free_linear + c.free_high
}

/// What a workload should leave as it found it: the free frames, less what is taken for good
/// meanwhile — page-table pages (never freed, see `pgtable`) and heap growth (kept).
#[derive(Clone, Copy, Debug)]
pub struct Ledger {
    free: usize,
    table_pages: u64,
    heap_end: u64,
}

impl Ledger {
    pub fn now() -> Ledger {
        Ledger {
            free: free_total(),
            table_pages: super::pgtable::TABLE_PAGES.load(core::sync::atomic::Ordering::Relaxed),
            heap_end: super::heap::stats().end,
        }
    }

    /// Frames gone since `self` that nothing accounts for (0 when nothing leaked; negative if
    /// more came back than went).
    pub fn leaked_since(&self) -> i64 {
        let n = Ledger::now();
        let taken = self.free as i64 - n.free as i64;
        let kept = (n.table_pages - self.table_pages) as i64 + ((n.heap_end - self.heap_end) / PAGE_SIZE) as i64;
        taken - kept
    }
}
