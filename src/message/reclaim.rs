//! Hands messages outputs have finished with back to the input threads that built them,
//! to be reused or freed there, through a [`Reclaim`] each running pipeline owns (no
//! process-wide state: two pipelines in one process, as in tests, never share one). The
//! output runner calls [`Reclaim::give_back`] after each batch; `plugin::RecordStream`
//! reaches the same `Reclaim` through its input's context, calls [`Reclaim::collect`]
//! before decoding each read and wraps new messages with [`Pool::pack`].
//!
//! A message is allocated on an input thread and usually dropped on an output thread.
//! With a thread-caching allocator every such free is a cross-thread free, and the next
//! allocation on the input thread lands on cache lines the output core wrote last. So
//! an output runner that holds the last reference to a message queues it here:
//!
//! * when nothing else refers to it, not even a delivery token (a `Weak`), the whole
//!   `Arc` goes back and an input reuses its allocation for a new message;
//! * when a delivery token still points at it, only the body goes back: the `Arc` is
//!   released there and then, so `delivery_token` stops upgrading exactly as before.
//!
//! The queue is bounded: when no input collects (filters' own messages, an idle input),
//! messages beyond [`MAX_HELD`] are dropped where they are, as they always were. Each
//! input's [`Pool`] is bounded too; what it has no room for is dropped on collection.

use std::sync::{Arc, Mutex};

use super::{Message, Pack};

/// Most messages held for the input threads.
pub const MAX_HELD: usize = 16 * 1024;

/// Largest payload (capacity, in bytes) a spare message in a [`Pool`] may keep.
const MAX_SPARE_PAYLOAD: usize = 16 * 1024;

/// Most fields a spare message in a [`Pool`] may keep.
const MAX_SPARE_FIELDS: usize = 32;

/// What outputs have finished with, on its way back to the inputs.
#[derive(Debug, Default)]
pub struct Spent {
    /// Messages nobody else refers to, not even weakly: an input can reuse the `Arc`.
    messages: Vec<Arc<Message>>,
    /// Bodies of messages a delivery token still pointed at (their `Arc` is released).
    bodies: Vec<Message>,
}

impl Spent {
    /// How many messages and bodies are held.
    pub fn len(&self) -> usize {
        self.messages.len() + self.bodies.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every pack out of `batch`, keeping the messages whose last reference it held
    /// (the others stay with their other holders).
    fn sort(&mut self, batch: &mut Vec<Pack>) {
        for p in batch.drain(..) {
            let mut msg = p.msg;
            if Arc::get_mut(&mut msg).is_some() {
                self.messages.push(msg);
            } else if let Ok(body) = Arc::try_unwrap(msg) {
                self.bodies.push(body);
            }
        }
    }
}

/// The way back from a pipeline's outputs to its inputs: a bounded hold of spent messages.
#[derive(Debug, Default)]
pub struct Reclaim {
    held: Mutex<Spent>,
}

impl Reclaim {
    /// Takes the messages of `batch` whose last reference it holds into `spent` (scratch
    /// space the caller keeps between calls), dropping the rest of the batch, then queues
    /// them for the inputs.
    pub fn give_back(&self, batch: &mut Vec<Pack>, spent: &mut Spent) {
        spent.sort(batch);
        if spent.is_empty() {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() + spent.len() <= MAX_HELD {
            held.messages.append(&mut spent.messages);
            held.bodies.append(&mut spent.bodies);
            return;
        }
        drop(held);
        spent.messages.clear();
        spent.bodies.clear();
    }

    /// Takes what outputs gave back, on the calling (input) thread: reusable messages go
    /// to `pool` while it has room; everything else is dropped here.
    pub fn collect(&self, pool: &mut Pool) {
        let taken = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_empty() {
                return;
            }
            std::mem::take(&mut *held)
        };
        pool.refill(taken);
    }
}

/// An input stream's spare message allocations, refilled by [`Reclaim::collect`].
///
/// A pool keeps about what its stream uses: at each refill, twice the messages started
/// since the last one (at least `MIN_SPARES`, 16, at most its `keep`), so a server with
/// many quiet connections does not hold a full pool per connection.
#[derive(Debug)]
pub struct Pool {
    free: Vec<Arc<Message>>,
    keep: usize,
    /// Messages started or packed since the last refill.
    used: usize,
}

/// Spares a pool may keep however little its stream uses.
const MIN_SPARES: usize = 16;

impl Pool {
    /// A pool holding at most `keep` spare messages.
    pub fn new(keep: usize) -> Self {
        Pool {
            free: Vec::new(),
            keep,
            used: 0,
        }
    }

    /// How many spare messages it holds.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// Keeps what fits of `spent`'s reusable messages and drops the rest, and any large
    /// one (a spare keeps its old body until it is reused, so a pool of big messages
    /// would hold that much memory).
    fn refill(&mut self, spent: Spent) {
        let Spent { messages, bodies } = spent;
        drop(bodies);
        let target = (self.used * 2).max(MIN_SPARES).min(self.keep);
        self.used = 0;
        self.free.truncate(target);
        let room = target - self.free.len();
        let small = messages.into_iter().filter(|m| {
            m.payload.capacity() <= MAX_SPARE_PAYLOAD && m.fields.len() <= MAX_SPARE_FIELDS
        });
        self.free.extend(small.take(room));
    }

    /// A new message, a copy of `base`, in a pack: in a spare allocation when there is
    /// one, its strings and field list refilled in place.
    pub fn start(&mut self, base: &Message) -> Pack {
        self.used += 1;
        if let Some(mut spare) = self.free.pop() {
            if let Some(slot) = Arc::get_mut(&mut spare) {
                slot.reset_from(base);
                return Pack {
                    msg: spare,
                    loop_count: 0,
                    signer: None,
                };
            }
        }
        Pack::new(base.clone())
    }

    /// `msg` in a pack, in a spare allocation when there is one (the spare's old body is
    /// dropped here).
    pub fn pack(&mut self, msg: Message) -> Pack {
        self.used += 1;
        if let Some(mut spare) = self.free.pop() {
            if let Some(slot) = Arc::get_mut(&mut spare) {
                *slot = msg;
                return Pack {
                    msg: spare,
                    loop_count: 0,
                    signer: None,
                };
            }
        }
        Pack::new(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &str) -> Message {
        Message {
            payload: payload.into(),
            ..Message::default()
        }
    }

    #[test]
    fn unique_messages_are_reused_token_holders_give_their_body_and_shared_ones_stay() {
        let shared = Pack::new(msg("shared"));
        let other_holder = shared.clone();
        let tokened = Pack::new(msg("tokened"));
        let token = Arc::downgrade(&tokened.msg);
        let alone = Pack::new(msg("alone"));
        let alone_at = Arc::as_ptr(&alone.msg);
        let mut batch = vec![shared, tokened, alone];
        let mut spent = Spent::default();
        spent.sort(&mut batch);
        assert!(batch.is_empty());
        assert_eq!((spent.messages.len(), spent.bodies.len()), (1, 1));
        assert_eq!(spent.bodies[0].payload, "tokened");
        assert!(token.upgrade().is_none(), "delivery tokens see the release");
        assert_eq!(Arc::strong_count(&other_holder.msg), 1);

        let mut pool = Pool::new(8);
        pool.refill(spent);
        assert_eq!(pool.len(), 1);
        let reused = pool.pack(msg("new"));
        assert_eq!(
            Arc::as_ptr(&reused.msg),
            alone_at,
            "the allocation is reused"
        );
        assert_eq!((reused.msg.payload.as_str(), reused.loop_count), ("new", 0));
        assert!(pool.is_empty());
        let fresh = pool.pack(msg("fresh"));
        assert_eq!(fresh.msg.payload, "fresh");
    }

    #[test]
    fn a_full_pool_drops_what_it_has_no_room_for_and_big_messages() {
        let mut spent = Spent::default();
        let mut batch: Vec<Pack> = (0..5).map(|i| Pack::new(msg(&i.to_string()))).collect();
        batch.push(Pack::new(msg(&"x".repeat(MAX_SPARE_PAYLOAD + 1))));
        spent.sort(&mut batch);
        let mut pool = Pool::new(3);
        pool.refill(spent);
        assert_eq!(pool.len(), 3);

        let mut spent = Spent::default();
        let mut batch = vec![Pack::new(msg(&"x".repeat(MAX_SPARE_PAYLOAD + 1)))];
        spent.sort(&mut batch);
        let mut pool = Pool::new(3);
        pool.refill(spent);
        assert!(pool.is_empty(), "a big message is not kept");
    }

    #[test]
    fn a_started_message_is_exactly_the_base_whatever_the_spare_held() {
        let mut old = msg("an old payload that is longer than the base's");
        old.add_field(crate::message::Field::string("stale", "x"));
        old.pid = Some(9);
        old.severity = 1;
        old.hostname = "an-old-host-name-too-long-to-be-inline".into();
        let old = Pack::new(old);
        let old_at = Arc::as_ptr(&old.msg);
        let mut spent = Spent::default();
        spent.sort(&mut vec![old]);
        let mut pool = Pool::new(1);
        pool.refill(spent);

        let mut base = msg("b");
        base.uuid = [7; 16];
        base.timestamp = 42;
        base.logger = "in".into();
        base.add_field(crate::message::Field::integer("kept", 1));
        let started = pool.start(&base);
        assert_eq!(Arc::as_ptr(&started.msg), old_at, "the spare is reused");
        assert_eq!(*started.msg, base);
        assert_eq!(*pool.start(&base).msg, base, "and so is a new one");
    }

    fn spent(n: usize) -> Spent {
        let mut spent = Spent::default();
        let mut batch: Vec<Pack> = (0..n).map(|_| Pack::new(msg("x"))).collect();
        spent.sort(&mut batch);
        spent
    }

    #[test]
    fn a_pool_keeps_about_what_its_stream_uses() {
        let mut pool = Pool::new(1024);
        pool.refill(spent(100));
        assert_eq!(pool.len(), MIN_SPARES, "a quiet stream keeps the minimum");
        for _ in 0..300 {
            drop(pool.start(&Message::default()));
        }
        pool.refill(spent(1000));
        assert_eq!(pool.len(), 600, "twice what it used since the last refill");
        pool.refill(spent(10));
        assert_eq!(
            pool.len(),
            MIN_SPARES,
            "and gives back what it no longer needs"
        );
    }

    #[test]
    fn what_an_output_gives_back_an_input_of_the_same_pipeline_collects() {
        let (ours, theirs) = (Arc::new(Reclaim::default()), Reclaim::default());
        let mut batch = vec![Pack::new(msg("a")), Pack::new(msg("b"))];
        ours.give_back(&mut batch, &mut Spent::default());
        assert!(batch.is_empty());
        let mut other = Pool::new(4);
        theirs.collect(&mut other);
        assert_eq!(other.len(), 0, "another pipeline's hold is separate");
        let input = ours.clone();
        let pool = std::thread::spawn(move || {
            let mut pool = Pool::new(4);
            input.collect(&mut pool);
            pool
        })
        .join()
        .expect("collect");
        assert_eq!(pool.len(), 2, "both messages come back to the input thread");
    }
}
