//! The addon's global allocator: mimalloc for small blocks, the system
//! allocator for the rest.
//!
//! Small blocks (events, headers, request bodies of a few hundred bytes) are
//! made on a tokio worker and freed on the JS thread, which glibc's
//! per-thread arenas handle poorly: malloc and free were about a seventh of
//! the worker's CPU on small requests, and mimalloc frees them cheaply. For
//! quiche's per-connection blocks of a few KiB, though, mimalloc's size-class
//! pages kept about 12 KiB more RSS per idle connection than glibc; above
//! [`SMALL`] bytes the system allocator keeps that memory down.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc_safe::MiMalloc;

/// The largest block mimalloc serves. At 1,000 idle connections: 2 KiB
/// costs about as much RSS as glibc alone, 4 KiB +3 KiB per connection,
/// 16 KiB +12; requests per second were the same from 1 KiB up.
pub const SMALL: usize = 2048;

/// Routes each block by its size. Sound because `GlobalAlloc` hands
/// `dealloc` and `realloc` the size the block was allocated (or last
/// reallocated) with, so a block is always freed by the allocator that made it.
pub struct SizeSplit;

fn is_small(size: usize) -> bool {
  size <= SMALL
}

unsafe impl GlobalAlloc for SizeSplit {
  unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
    if is_small(layout.size()) { MiMalloc.alloc(layout) } else { System.alloc(layout) }
  }

  unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
    if is_small(layout.size()) { MiMalloc.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) }
  }

  unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
    if is_small(layout.size()) { MiMalloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) }
  }

  unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    match (is_small(layout.size()), is_small(new_size)) {
      (true, true) => MiMalloc.realloc(ptr, layout, new_size),
      (false, false) => System.realloc(ptr, layout, new_size),
      // Crossing the line: move the block to the other allocator.
      _ => {
        // SAFETY: the caller guarantees new_size, rounded up to the alignment, fits in isize.
        let moved = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !moved.is_null() {
          std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
          self.dealloc(ptr, layout);
        }
        moved
      },
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn filled(size: usize) -> (*mut u8, Layout) {
    let layout = Layout::from_size_align(size, 16).unwrap();
    let ptr = unsafe { SizeSplit.alloc(layout) };
    assert!(!ptr.is_null());
    for i in 0..size {
      unsafe { ptr.add(i).write(i as u8) };
    }
    (ptr, layout)
  }

  fn assert_pattern(ptr: *mut u8, len: usize) {
    for i in 0..len {
      assert_eq!(unsafe { ptr.add(i).read() }, i as u8, "byte {i}");
    }
  }

  #[test]
  fn realloc_keeps_the_bytes_across_the_line_both_ways() {
    for (from, to) in [(100, SMALL + 1), (SMALL, 64 * 1024), (64 * 1024, SMALL), (SMALL + 1, 10), (10, 20), (8192, 9000)] {
      let (ptr, layout) = filled(from);
      let grown = unsafe { SizeSplit.realloc(ptr, layout, to) };
      assert!(!grown.is_null());
      assert_pattern(grown, from.min(to));
      unsafe { SizeSplit.dealloc(grown, Layout::from_size_align(to, 16).unwrap()) };
    }
  }

  #[test]
  fn zeroed_blocks_are_zero_on_both_sides() {
    for size in [SMALL, SMALL + 1] {
      let layout = Layout::from_size_align(size, 64).unwrap();
      let ptr = unsafe { SizeSplit.alloc_zeroed(layout) };
      assert_eq!(ptr as usize % 64, 0);
      assert!((0..size).all(|i| unsafe { ptr.add(i).read() } == 0));
      unsafe { SizeSplit.dealloc(ptr, layout) };
    }
  }
}
