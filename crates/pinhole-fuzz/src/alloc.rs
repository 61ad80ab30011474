//! A counting global allocator for the fuzz binaries: per thread, the bytes live, the peak
//! and the largest single request, so the harness can check that an input did not make a
//! parser allocate out of proportion to its size. A request over [`HARD_CAP`] is refused
//! (the process aborts as on any failed allocation) after printing the input being run, so a
//! runaway allocation is reported with its reproducer instead of exhausting the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Largest single allocation the fuzz process grants.
pub const HARD_CAP: usize = 1 << 30;

pub struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The input being run (set by the harness), printed if an allocation is refused.
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn set_current(input: &[u8]) {
    CURRENT.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
    CURRENT_LEN.store(input.len(), Ordering::SeqCst);
}

fn record(size: usize) {
    // try_with: the thread-locals may be gone while a thread exits.
    let _ = LIVE.try_with(|l| {
        let live = l.get().saturating_add(size);
        l.set(live);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
    });
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

fn forget(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size)));
}

fn refuse(size: usize) {
    // No allocation here: fixed strings and a stack buffer.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "pinhole-fuzz: refusing an allocation of {size} bytes; the input being run (hex):"
    );
    let (p, n) = (CURRENT.load(Ordering::SeqCst), CURRENT_LEN.load(Ordering::SeqCst));
    if !p.is_null() {
        // SAFETY: the harness keeps the input alive while it runs a target on it.
        let input = unsafe { std::slice::from_raw_parts(p, n) };
        let hex = b"0123456789abcdef";
        for chunk in input.chunks(64) {
            let mut line = [0u8; 129];
            for (i, b) in chunk.iter().enumerate() {
                line[2 * i] = hex[(b >> 4) as usize];
                line[2 * i + 1] = hex[(b & 15) as usize];
            }
            line[2 * chunk.len()] = b'\n';
            let _ = err.write_all(&line[..2 * chunk.len() + 1]);
        }
    }
}

/// A new allocation of `size` bytes: refused over [`HARD_CAP`], else recorded.
fn admit(size: usize) -> bool {
    if size > HARD_CAP {
        refuse(size);
        return false;
    }
    record(size);
    true
}

// SAFETY: forwards to the system allocator; the bookkeeping does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        forget(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_CAP {
            refuse(new_size);
            return std::ptr::null_mut();
        }
        forget(layout.size());
        record(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// Starts measuring on this thread; [`usage`] then gives the peak above the current live
/// bytes and the largest single request since.
pub fn reset() {
    let live = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(live));
    LARGEST.with(|m| m.set(0));
}

/// `(peak bytes above the level at [`reset`], largest single request)`.
pub fn usage(base: usize) -> (usize, usize) {
    (PEAK.with(|p| p.get()).saturating_sub(base), LARGEST.with(|m| m.get()))
}

pub fn live() -> usize {
    LIVE.with(|l| l.get())
}
