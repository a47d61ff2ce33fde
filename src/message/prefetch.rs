//! Cache prefetch hints for messages about to be read. The output runner calls these a
//! message or two ahead of the one it is encoding.
//!
//! A message is built on an input thread's core and read on an output thread's core, so
//! every cache line it spans is a miss when the encoder first touches it, and the misses
//! come one after another: the header, then the payload and the field list it points to.
//! Prefetching overlaps them with the work on the message before. These are hints only:
//! a prefetch never faults and never changes what the program computes, and on targets
//! without one they do nothing.

use std::sync::Arc;

use super::Message;

/// Cache line size assumed.
const LINE: usize = 64;

/// Most lines fetched for one buffer (a payload or the field list).
const MAX_LINES: usize = 8;

/// Starts fetching the message header itself (the `Arc`'s allocation).
pub fn header(msg: &Arc<Message>) {
    let at = Arc::as_ptr(msg).cast::<u8>();
    lines(
        at,
        std::mem::size_of::<Message>() + 2 * std::mem::size_of::<usize>(),
    );
}

/// Starts fetching what the header points to: the payload and the field list. Reads the
/// header, so call it once [`header`] has had time to bring it in.
pub fn body(msg: &Message) {
    lines(msg.payload.as_ptr(), msg.payload.len());
    lines(
        msg.fields.as_ptr().cast::<u8>(),
        std::mem::size_of_val(msg.fields.as_slice()),
    );
}

/// Prefetches the lines spanning `len` bytes from `at` (at most [`MAX_LINES`]).
fn lines(at: *const u8, len: usize) {
    let n = len.div_ceil(LINE).min(MAX_LINES);
    for i in 0..n {
        line(at.wrapping_add(i * LINE));
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // _mm_prefetch.
fn line(at: *const u8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a hint that never
    // faults or reads into the program, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn line(_at: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;

    #[test]
    fn hints_change_nothing_for_any_message() {
        let mut m = Message::new();
        m.payload = "x".repeat(10_000);
        for i in 0..100 {
            m.add_field(Field::integer("n", i));
        }
        let before = m.clone();
        let shared = Arc::new(m);
        header(&shared);
        body(&shared);
        body(&Message::default());
        assert_eq!(*shared, before);
    }
}
