//! Memory helpers that need `unsafe`, kept in one small crate so that the
//! packet logic (`switchyard-pipeline`, `#![deny(unsafe_code)]`, no syscalls)
//! stays free of it:
//!
//! - [`prefetch`]: a cache-line prefetch hint (`prefetcht0`), safe to call
//!   on any reference: a prefetch never faults and changes no memory. The
//!   pipeline uses it to start a batch's table lookups' cache (and TLB)
//!   misses together rather than one after the other.
//! - [`HugePageAlloc`]: a global allocator that maps every large allocation
//!   (at least [`HUGE_THRESHOLD`]) by itself, 2 MiB-aligned, and asks for
//!   transparent huge pages on it (`madvise(MADV_HUGEPAGE)`, which works with
//!   THP in `madvise` mode, the common default) before it is touched; smaller
//!   ones go to the system allocator. Tables allocated once at their bound
//!   (conntrack's entries and index, hundreds of MiB) then cost one TLB entry
//!   per 2 MiB instead of one per 4 KiB. The daemon installs it with
//!   `#[global_allocator]`; the pipeline's code needs no change.
//!
//! Every `unsafe` block has its `// SAFETY:` reasoning.
#![warn(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Cache-line size assumed by [`prefetch`].
pub const CACHE_LINE: usize = 64;

/// Hints the CPU to bring every cache line of `value` into all cache levels
/// (at most [`PREFETCH_MAX_LINES`] of them). Never faults, never blocks, reads
/// nothing into the program; a no-op on targets other than x86_64.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    let start = value as *const T as *const u8 as usize;
    let end = start + std::mem::size_of_val(value).max(1);
    let mut line = start & !(CACHE_LINE - 1);
    let mut lines = 0;
    while line < end && lines < PREFETCH_MAX_LINES {
        prefetch_line(line);
        line += CACHE_LINE;
        lines += 1;
    }
}

/// The most cache lines one [`prefetch`] call hints.
pub const PREFETCH_MAX_LINES: usize = 4;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_line(address: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in
    // the target's baseline features). A prefetch is only a hint: it never
    // faults, whatever the address, and neither reads into the program nor
    // writes memory.
    #[allow(unsafe_code)]
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_line(_address: usize) {}

/// A huge page (x86_64's 2 MiB page).
pub const HUGE_PAGE: usize = 2 << 20;

/// Allocations of at least this size are mapped by [`HugePageAlloc`] with
/// huge pages; smaller ones go to the system allocator (rounding them up to
/// a whole huge page would waste too much).
pub const HUGE_THRESHOLD: usize = 4 << 20;

/// A global allocator backing allocations of [`HUGE_THRESHOLD`] or more with
/// their own 2 MiB-aligned anonymous mapping advised `MADV_HUGEPAGE`
/// (transparent huge pages, when the kernel has them: else plain pages, as
/// before); everything else is [`System`]'s.
///
/// Large allocations are rounded up to whole huge pages of address space
/// (memory is only committed as it is touched) and freed with `munmap`;
/// growing one copies it (large buffers here are allocated once at their
/// bound). Install it in a binary:
///
/// ```
/// #[global_allocator]
/// static ALLOC: switchyard_mem::HugePageAlloc = switchyard_mem::HugePageAlloc::new();
///
/// fn main() {
///     // A table-sized allocation: its own huge-page-aligned mapping.
///     let table = vec![0u64; 1 << 20];
///     assert_eq!(table.as_ptr() as usize % (2 << 20), 0);
///     assert!(table.iter().all(|&x| x == 0));
/// }
/// ```
#[derive(Debug)]
pub struct HugePageAlloc {
    advise: AtomicBool,
}

impl HugePageAlloc {
    /// An allocator that asks for huge pages.
    pub const fn new() -> Self {
        HugePageAlloc {
            advise: AtomicBool::new(true),
        }
    }

    /// Whether large allocations made from now on are advised
    /// `MADV_HUGEPAGE` (for benchmarks comparing both; they are mapped
    /// alike either way).
    pub fn set_huge_pages(&self, on: bool) {
        self.advise.store(on, Ordering::Relaxed);
    }

    fn is_large(layout: &Layout) -> bool {
        layout.size() >= HUGE_THRESHOLD && layout.align() <= HUGE_PAGE
    }

    fn mapped_len(size: usize) -> usize {
        size.div_ceil(HUGE_PAGE) * HUGE_PAGE
    }

    /// A fresh zeroed mapping of `size` bytes (rounded up to huge pages),
    /// huge-page aligned; null when the kernel refuses.
    fn map(&self, size: usize) -> *mut u8 {
        let len = Self::mapped_len(size);
        let Some(reserve) = len.checked_add(HUGE_PAGE) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases nothing; the result is checked before use.
        #[allow(unsafe_code)]
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let raw = raw as usize;
        let start = raw.next_multiple_of(HUGE_PAGE);
        let end = start + len;
        // SAFETY: the head (`raw..start`) and tail (`end..raw + reserve`) are
        // parts of the mapping just made that nothing refers to; unmapping
        // them leaves exactly `start..end`, huge-page aligned.
        #[allow(unsafe_code)]
        unsafe {
            if start > raw {
                libc::munmap(raw as *mut libc::c_void, start - raw);
            }
            if raw + reserve > end {
                libc::munmap(end as *mut libc::c_void, raw + reserve - end);
            }
        }
        if self.advise.load(Ordering::Relaxed) {
            // SAFETY: `start..end` is our own fresh mapping; MADV_HUGEPAGE
            // only changes how its pages are backed, never its contents.
            // Failure (no THP in this kernel) leaves plain pages: ignored.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
        start as *mut u8
    }
}

impl Default for HugePageAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: large blocks are whole private mappings of at least the layout's
// size, aligned to 2 MiB (so to any alignment up to it, which `is_large`
// requires), zeroed by the kernel, and unmapped exactly as they were mapped
// (`dealloc` and `realloc` receive the layout they were allocated with, so
// `mapped_len` gives the same length); every other request is `System`'s
// with the same layout, and a block never moves between the two kinds except
// through `realloc`'s allocate-copy-free.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for HugePageAlloc {
    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::is_large(&layout) {
            self.map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::is_large(&layout) {
            // Fresh anonymous mappings are zeroed.
            self.map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::is_large(&layout) {
            // SAFETY: `ptr` came from `map` for this layout (the caller's
            // contract), which mapped exactly `mapped_len` bytes there.
            unsafe {
                libc::munmap(ptr as *mut libc::c_void, Self::mapped_len(layout.size()));
            }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    // SAFETY: the trait's own signature; callers keep GlobalAlloc's contract.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a
        // valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !Self::is_large(&layout) && !Self::is_large(&new_layout) {
            // SAFETY: both are `System`'s blocks: forwarded.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if Self::is_large(&layout)
            && Self::is_large(&new_layout)
            && Self::mapped_len(layout.size()) == Self::mapped_len(new_size)
        {
            // Same mapping length: the block already fits.
            return ptr;
        }
        // SAFETY: `new_layout` is valid and non-zero-sized (the caller's
        // contract); the old block is valid for `layout.size()` bytes and the
        // new one for `new_size`, two distinct blocks, so the copy of the
        // smaller size is in bounds and does not overlap; the old block is
        // freed with its own layout.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_accepts_anything() {
        let v = vec![1u64; 1000];
        prefetch(&v[..]);
        prefetch(&v[999]);
        prefetch(&());
        let empty: &[u8] = &[];
        prefetch(empty);
    }

    #[test]
    fn large_blocks_are_aligned_zeroed_and_survive_growth() {
        let a = HugePageAlloc::new();
        for size in [16usize, HUGE_THRESHOLD - 1, HUGE_THRESHOLD, 9 << 20] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            // SAFETY: non-zero layouts; each block is used within its size
            // and freed once with its layout.
            #[allow(unsafe_code)]
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                if size >= HUGE_THRESHOLD {
                    assert_eq!(p as usize % HUGE_PAGE, 0);
                }
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                p.write_bytes(0xa5, size);
                let grown = 2 * size + 3;
                let q = a.realloc(p, layout, grown);
                assert!(!q.is_null());
                let q_slice = std::slice::from_raw_parts(q, size);
                assert!(q_slice.iter().all(|&b| b == 0xa5));
                let shrunk = size / 2 + 1;
                let r = a.realloc(q, Layout::from_size_align(grown, 64).unwrap(), shrunk);
                assert!(std::slice::from_raw_parts(r, shrunk)
                    .iter()
                    .all(|&b| b == 0xa5));
                a.dealloc(r, Layout::from_size_align(shrunk, 64).unwrap());
            }
        }
    }
}
