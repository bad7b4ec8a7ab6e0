//! An allocator for processes that decode Kafka requests: very large allocations are
//! reserved lazily instead of failing.
//!
//! Why: the `kafka-protocol` decoders reserve a `Vec` by the element count a request states
//! before reading a single element (0.18: `Array`/`CompactArray` `with_capacity(n)`), so a
//! four-byte count of 2^31 asks for hundreds of gigabytes. The allocation fails and Rust
//! aborts the process: any peer could stop a broker with one frame (the proptest in
//! `impl/tests/kafka_bad_input.rs` found it at once). No element is ever decoded past the
//! frame's end, so such a reservation is only ever touched for what the frame holds (at most
//! `connection::FRAME_BYTES_MAX`). This allocator maps allocations of
//! [`LAZY_BYTES_MIN`] or more as `MAP_NORESERVE` anonymous memory, which Linux does not count
//! against its overcommit heuristic: the decoder gets its reservation, fails at the frame's
//! end as it should, and the reservation is unmapped, untouched. Smaller allocations (every
//! other allocation insync makes) go to the system allocator.
//!
//! A process opts in with `#[global_allocator] static ALLOCATOR: LazyLargeAllocator =
//! LazyLargeAllocator;` (the `insync` binary and the Kafka decoder tests do). Under
//! `vm.overcommit_memory = 2` (strict accounting) the mapping is refused like any other and
//! the abort remains; docs/kafka.md says so.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size on are mapped lazily. insync's own largest allocations are
/// bounded by its frames and batches (a few MiB), far below.
pub const LAZY_BYTES_MIN: usize = 1 << 30;

/// Pages are at least this aligned; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

/// See the module doc.
pub struct LazyLargeAllocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_BYTES_MIN && layout.align() <= PAGE_BYTES
}

// SAFETY: large blocks come from mmap and go back to munmap with the same size (a layout is
// deallocated with the layout it was allocated with); everything else is the system
// allocator's, untouched.
unsafe impl GlobalAlloc for LazyLargeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            return unsafe { System.alloc(layout) };
        }
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let protection = libc::PROT_READ | libc::PROT_WRITE;
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                protection,
                flags,
                -1,
                0,
            )
        };
        match mapped == libc::MAP_FAILED {
            true => std::ptr::null_mut(),
            false => mapped.cast(),
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if !is_lazy(&layout) {
            return unsafe { System.dealloc(pointer, layout) };
        }
        let unmapped = unsafe { libc::munmap(pointer.cast(), layout.size()) };
        debug_assert_eq!(unmapped, 0, "a lazy block is unmapped whole");
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match is_lazy(&layout) {
            // Anonymous mappings are zero-filled.
            true => unsafe { self.alloc(layout) },
            false => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            return unsafe { System.realloc(pointer, layout, new_size) };
        }
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            let kept = layout.size().min(new_size);
            unsafe { std::ptr::copy_nonoverlapping(pointer, moved, kept) };
            unsafe { self.dealloc(pointer, layout) };
        }
        moved
    }
}
