//! A global allocator that counts allocations, for the tests that show a path
//! allocates nothing. Each such test is its own binary (the allocator is
//! global) and includes this module with `mod common;`. Counts are per
//! thread: the test harness's own threads allocate when they please (a
//! process-wide count made these tests fail now and then under load), and a
//! worker's path runs on one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting every allocation and reallocation.
struct CountingAllocator;

thread_local! {
    // Const-initialised, no destructor: reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter left; not ours.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations (and reallocations) made by the calling thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;
