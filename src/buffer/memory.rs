//! The in-memory bounded queue: a `VecDeque` behind a mutex with two condition variables.
//!
//! Producers: the router thread, via [`Queue::push_batch`]. Consumers: one runner thread,
//! via [`Queue::pop_batch`]. Lifecycle: [`Queue::close`] (no more items will come; the
//! consumer drains and then sees [`Pop::Closed`]) and [`Queue::abandon`] (the consumer is
//! gone for good; further pushes are refused and counted by the caller as drops).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::FullAction;

/// A bounded multi-producer, single-consumer queue.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    abandoned: bool,
    /// The consumer is parked in `pop_batch`: producers must wake it.
    consumer_waiting: bool,
    /// Producers parked in `push_batch` under `Block`: the consumer must wake them.
    producers_waiting: usize,
}

/// What happened to a pushed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// Items now in the queue.
    pub accepted: usize,
    /// Items refused (queue full under `drop`/`shutdown`, or the consumer is gone).
    pub refused: usize,
}

/// What a consumer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// Items were appended to the output vector.
    Items,
    /// The wait timed out with nothing to read.
    Timeout,
    /// The queue is closed and empty: the consumer should finish.
    Closed,
}

/// How long a blocked producer sleeps before re-checking `abandoned`.
const BLOCK_RECHECK: Duration = Duration::from_millis(100);

impl<T> Queue<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        let state = State {
            items: VecDeque::with_capacity(capacity.min(4096)),
            closed: false,
            abandoned: false,
            consumer_waiting: false,
            producers_waiting: 0,
        };
        Queue {
            state: Mutex::new(state),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The capacity in items.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once [`Queue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// True once the consumer has gone for good.
    pub fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// Pushes `items` in order under `action`: `Block` waits for room (until the consumer
    /// is abandoned); `Drop` and `Shutdown` keep what fits and refuse the rest. The caller
    /// counts refusals and, for `Shutdown`, stops the process. Condition variables are only
    /// signalled when someone is parked, so a busy queue costs no wake-up syscalls.
    pub fn push_batch(
        &self,
        items: impl IntoIterator<Item = T>,
        action: FullAction,
    ) -> PushOutcome {
        let mut out = PushOutcome::default();
        let mut st = self.lock();
        for item in items {
            if st.abandoned || st.closed {
                out.refused += 1;
                continue;
            }
            while st.items.len() >= self.capacity && action == FullAction::Block && !st.abandoned {
                if st.consumer_waiting {
                    self.not_empty.notify_one();
                }
                st.producers_waiting += 1;
                st = wait(&self.not_full, st, BLOCK_RECHECK);
                st.producers_waiting -= 1;
            }
            if st.items.len() < self.capacity && !st.abandoned {
                st.items.push_back(item);
                out.accepted += 1;
            } else {
                out.refused += 1;
            }
        }
        let wake = out.accepted > 0 && st.consumer_waiting;
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
        out
    }

    /// Moves up to `max` items into `out`, waiting up to `timeout` for the first one.
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize, timeout: Duration) -> Pop {
        let mut st = self.lock();
        if st.items.is_empty() && !st.closed && !timeout.is_zero() {
            st.consumer_waiting = true;
            st = wait(&self.not_empty, st, timeout);
            st.consumer_waiting = false;
        }
        if st.items.is_empty() {
            return if st.closed { Pop::Closed } else { Pop::Timeout };
        }
        let n = st.items.len().min(max.max(1));
        out.extend(st.items.drain(..n));
        let wake = st.producers_waiting > 0;
        drop(st);
        if wake {
            self.not_full.notify_all();
        }
        Pop::Items
    }

    /// No more items will be pushed; the consumer drains what is left, then sees `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// The consumer is gone for good: waiting items are discarded and returned as a count,
    /// and later pushes are refused.
    pub fn abandon(&self) -> usize {
        let mut st = self.lock();
        st.abandoned = true;
        let n = st.items.len();
        st.items.clear();
        drop(st);
        self.not_full.notify_all();
        n
    }
}

fn wait<'a, S>(cv: &Condvar, guard: MutexGuard<'a, S>, timeout: Duration) -> MutexGuard<'a, S> {
    cv.wait_timeout(guard, timeout)
        .map(|(g, _)| g)
        .unwrap_or_else(|p| p.into_inner().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drop_policy_keeps_what_fits() {
        let q = Queue::new(3);
        let o = q.push_batch(0..5, FullAction::Drop);
        assert_eq!(
            o,
            PushOutcome {
                accepted: 3,
                refused: 2
            }
        );
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 10, Duration::ZERO), Pop::Items);
        assert_eq!(out, [0, 1, 2]);
    }

    #[test]
    fn block_policy_waits_for_the_consumer() {
        let q = Arc::new(Queue::new(2));
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while q.pop_batch(&mut got, 1, Duration::from_millis(50)) != Pop::Closed {}
                got
            })
        };
        let o = q.push_batch(0..100, FullAction::Block);
        assert_eq!(o.accepted, 100);
        q.close();
        assert_eq!(
            consumer.join().expect("consumer"),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn abandoned_queue_refuses_and_unblocks() {
        let q = Arc::new(Queue::new(1));
        q.push_batch([1], FullAction::Block);
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push_batch([2, 3], FullAction::Block));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.abandon(), 1);
        assert_eq!(
            t.join().expect("producer"),
            PushOutcome {
                accepted: 0,
                refused: 2
            }
        );
    }

    #[test]
    fn closed_queue_drains_then_reports_closed() {
        let q = Queue::new(4);
        q.push_batch([7], FullAction::Block);
        q.close();
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 4, Duration::ZERO), Pop::Items);
        assert_eq!(q.pop_batch(&mut out, 4, Duration::ZERO), Pop::Closed);
        assert_eq!(q.push_batch([8], FullAction::Drop).refused, 1);
    }
}
