//! The kernel heap: `linked_list_allocator` as the global allocator, in the linear zone right
//! after the kernel image, growing in place by claiming the next frames from the frame
//! allocator. Allocation failure returns null to `alloc`, which reports it (`try_reserve`
//! and friends see an error; infallible APIs panic with a message), never undefined behaviour.

use super::frame::{self, PAGE_SIZE};
use crate::sync::IrqSpin;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;

pub const INITIAL: u64 = 4 << 20;
const GROW_STEP: u64 = 1 << 20;

struct KHeap {
    heap: Heap,
    start: u64,
    end: u64,
    grows: u64,
}

static HEAP: IrqSpin<KHeap> = IrqSpin::new(KHeap { heap: Heap::empty(), start: 0, end: 0, grows: 0 });

pub struct KernelAllocator;

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator;

/// Starts the heap at linear address `start` (page aligned), claiming INITIAL bytes of frames.
pub fn init(start: u64) {
    let pa = super::layout::linear_pa(start);
    let mut got = 0;
    while got < INITIAL && frame::claim(pa + got).is_ok() {
        got += PAGE_SIZE;
    }
    let mut h = HEAP.lock();
    // SAFETY: [start, start+got) are frames just claimed from the frame allocator, mapped by the
    // bolted linear mapping and used by nothing else.
    unsafe { h.heap.init(start as *mut u8, got as usize) };
    h.start = start;
    h.end = start + got;
}

fn grow(h: &mut KHeap, need: u64) -> bool {
    let want = need.div_ceil(GROW_STEP).max(1) * GROW_STEP;
    let mut got = 0;
    while got < want && frame::claim(super::layout::linear_pa(h.end + got)).is_ok() {
        got += PAGE_SIZE;
    }
    if got == 0 {
        return false;
    }
    // SAFETY: the frames right after the heap's end were just claimed for it.
    unsafe { h.heap.extend(got as usize) };
    h.end += got;
    h.grows += 1;
    true
}

/// Where the heap is and how full.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub start: u64,
    pub end: u64,
    pub used: usize,
    pub free: usize,
    /// Times it grew in place.
    pub grows: u64,
}

pub fn stats() -> HeapStats {
    let h = HEAP.lock();
    HeapStats { start: h.start, end: h.end, used: h.heap.used(), free: h.heap.free(), grows: h.grows }
}

// SAFETY: all access to the heap goes through the IrqSpin lock.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `inject=heap:...`: only allocations made inside `inject::fallible` (which handle a
        // null) are failed on purpose; an infallible one would abort the kernel.
        if crate::inject::heap_alloc_fails() {
            return core::ptr::null_mut();
        }
        let mut h = HEAP.lock();
        loop {
            if let Ok(p) = h.heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            let need = (layout.size() + layout.align()) as u64;
            if !grow(&mut h, need) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from this heap with this layout (GlobalAlloc contract).
            unsafe { HEAP.lock().heap.deallocate(p, layout) };
        }
    }
}
