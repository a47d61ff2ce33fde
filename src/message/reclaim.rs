//! Hands spent message bodies back to the input threads that built them, to be freed there.
//!
//! A message is allocated on an input thread and usually dropped on an output thread.
//! With a thread-caching allocator every such free is a cross-thread free, and the next
//! allocation on the input thread lands on cache lines the output core wrote last. So
//! when an output runner holds the last reference to a message, it takes the body out of
//! its `Arc` (the `Arc` itself is released there and then, so a stream's
//! `delivery_token` stops upgrading exactly as before) and queues it here;
//! input streams drop what is queued before decoding their next read. The queue is
//! bounded: when no input collects (filters' own messages, an idle input), bodies beyond
//! [`MAX_HELD`] are dropped where they are, as they always were.

use std::sync::{Arc, Mutex};

use super::{Message, Pack};

/// Most message bodies held for the input threads.
pub const MAX_HELD: usize = 16 * 1024;

static HELD: Mutex<Vec<Message>> = Mutex::new(Vec::new());

/// Takes the messages of `batch` whose last reference it holds into `spent`, dropping the
/// rest of the batch (other holders keep those), then queues `spent` for the inputs.
pub fn give_back(batch: &mut Vec<Pack>, spent: &mut Vec<Message>) {
    spent.extend(batch.drain(..).filter_map(|p| Arc::try_unwrap(p.msg).ok()));
    if spent.is_empty() {
        return;
    }
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if held.len() + spent.len() <= MAX_HELD {
        held.append(spent);
        return;
    }
    drop(held);
    spent.clear();
}

/// Drops the queued message bodies on the calling (input) thread.
pub fn collect() {
    let taken = {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_empty() {
            return;
        }
        std::mem::take(&mut *held)
    };
    drop(taken);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_last_references_are_taken_and_the_arc_is_released_at_once() {
        let shared = Pack::new(Message::default());
        let other_holder = shared.clone();
        let alone = Pack::new(Message {
            payload: "spent".into(),
            ..Message::default()
        });
        let token = Arc::downgrade(&alone.msg);
        let mut batch = vec![shared, alone];
        let mut spent = Vec::new();
        give_back(&mut batch, &mut spent);
        assert!(batch.is_empty() && spent.is_empty());
        assert!(token.upgrade().is_none(), "delivery tokens see the release");
        assert_eq!(Arc::strong_count(&other_holder.msg), 1);
        // (The queue is process-wide and other tests' runners use it, so its content is
        // not asserted here; collecting must simply work from any thread.)
        std::thread::spawn(collect).join().expect("collect");
    }
}
