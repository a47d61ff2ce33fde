//! The router: one thread that evaluates every subscriber's compiled matcher against each
//! message and hands matches to the subscriber's bounded queue, applying that queue's
//! `full_action`. Messages are shared as `Arc`s; fan-out never copies a message.
//!
//! Subscribers can be added and removed while the pipeline runs (`SandboxManagerFilter`'s
//! dynamic filters, through `pipeline::dynamic`): the commands travel on the same channel
//! as the batches, so a subscriber sees exactly the messages routed after its `Subscribe`
//! and before its `Unsubscribe`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::buffer::Queue;
use crate::config::FullAction;
use crate::matcher::Matcher;
use crate::message::Pack;
use crate::plugin::channel::RouterEvent;
use crate::plugin::shutdown::ShutdownTrigger;
use crate::stats::{LogLimiter, PluginStats};

/// The engine's own commands on the router channel (`RouterEvent::Engine`), in order
/// with the batches around them.
#[derive(Debug)]
pub enum Command {
    /// Every input has stopped: once everything before this is routed, filter queues close.
    InputsDone,
    /// Every filter has finished: route what is left, close output queues and stop.
    FiltersDone,
    /// Adds a subscriber (a filter started at runtime). After `InputsDone` its queue is
    /// closed at once, so it drains nothing and stops.
    Subscribe(Box<Subscriber>),
    /// Removes the subscriber that owns this queue and closes it: the runner drains what
    /// was routed to it and stops. (By queue, not name: a filter unloaded and loaded again
    /// under the same name is a different subscriber.)
    Unsubscribe(Arc<Queue<Pack>>),
    /// A reload: removes the subscriber owning `old` (closing its queue) and adds `new`
    /// in the same step, so no message falls between the two.
    Replace {
        /// The queue of the plugin being replaced.
        old: Arc<Queue<Pack>>,
        /// Its successor.
        new: Box<Subscriber>,
    },
}

/// One filter or output as the router sees it (public for benchmarks and tests).
pub struct Subscriber {
    /// Plugin instance name.
    pub name: Arc<str>,
    /// `None` matches nothing (an empty `message_matcher`, as in Heka).
    pub matcher: Option<Matcher>,
    /// The plugin's bounded queue.
    pub queue: Arc<Queue<Pack>>,
    /// What to do when the queue is full.
    pub full_action: FullAction,
    /// The plugin's counters (drops are counted here).
    pub stats: Arc<PluginStats>,
    /// Filters' queues close before outputs' at shutdown.
    pub is_filter: bool,
    /// `message_signer`: only packs an input verified as signed by it.
    signer: Option<Arc<str>>,
    pending: Vec<Pack>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.name)
            .field("is_filter", &self.is_filter)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// A subscriber with its matcher (`None` matches nothing), queue and full policy.
    pub fn new(
        name: Arc<str>,
        matcher: Option<Matcher>,
        queue: Arc<Queue<Pack>>,
        full_action: FullAction,
        stats: Arc<PluginStats>,
        is_filter: bool,
    ) -> Self {
        Subscriber {
            name,
            matcher,
            queue,
            full_action,
            stats,
            is_filter,
            signer: None,
            pending: Vec::new(),
        }
    }

    /// Takes only packs signed by `signer` (Heka's `message_signer`).
    pub fn with_signer(mut self, signer: Option<Arc<str>>) -> Self {
        self.signer = signer;
        self
    }

    fn wants(&self, pack: &Pack) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.matches(&pack.msg))
            && self
                .signer
                .as_ref()
                .is_none_or(|s| pack.signer.as_ref() == Some(s))
    }
}

/// The router's state: every subscriber plus the loop limit.
pub struct Router {
    subs: Vec<Subscriber>,
    max_loops: u32,
    stats: Arc<PluginStats>,
    loop_drops: Arc<AtomicU64>,
    shutdown: ShutdownTrigger,
    log: LogLimiter,
    filters_closed: bool,
}

impl Router {
    /// A router over `subs`, dropping packs re-injected more than `max_loops` times.
    pub fn new(
        subs: Vec<Subscriber>,
        max_loops: u32,
        stats: Arc<PluginStats>,
        shutdown: ShutdownTrigger,
    ) -> Self {
        let loop_drops = stats.counter("max_message_loops_dropped");
        Router {
            subs,
            max_loops: max_loops.max(1),
            stats,
            loop_drops,
            shutdown,
            log: LogLimiter::default(),
            filters_closed: false,
        }
    }

    /// Adds a subscriber at runtime (closing its queue at once if filters are closing).
    pub fn subscribe(&mut self, sub: Subscriber) {
        if self.filters_closed && sub.is_filter {
            sub.queue.close();
        }
        tracing::debug!(plugin = %sub.name, "Subscriber added.");
        self.subs.push(sub);
    }

    /// Removes the subscriber that owns `queue` and closes it; false if there is none.
    pub fn unsubscribe(&mut self, queue: &Arc<Queue<Pack>>) -> bool {
        let Some(i) = self.subs.iter().position(|s| Arc::ptr_eq(&s.queue, queue)) else {
            return false;
        };
        let sub = self.subs.remove(i);
        sub.queue.close();
        tracing::debug!(plugin = %sub.name, "Subscriber removed.");
        true
    }

    /// Number of subscribers.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Routes one batch: every pack goes to every subscriber whose matcher accepts it.
    pub fn route(&mut self, batch: Vec<Pack>) {
        PluginStats::add(&self.stats.processed, batch.len() as u64);
        for pack in batch {
            if u32::from(pack.loop_count) > self.max_loops {
                PluginStats::add(&self.stats.dropped, 1);
                PluginStats::add(&self.loop_drops, 1);
                continue;
            }
            // The last subscriber that wants the pack takes it; the others share it.
            let mut taker: Option<usize> = None;
            for i in 0..self.subs.len() {
                if self.subs[i].wants(&pack) {
                    if let Some(prev) = taker.replace(i) {
                        self.subs[prev].pending.push(pack.clone());
                    }
                }
            }
            if let Some(last) = taker {
                self.subs[last].pending.push(pack);
            }
        }
        for i in 0..self.subs.len() {
            self.deliver(i);
        }
    }

    fn deliver(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        if sub.pending.is_empty() {
            return;
        }
        let outcome = sub.queue.push_batch(sub.pending.drain(..), sub.full_action);
        sub.stats
            .queue_len
            .store(sub.queue.len() as u64, Ordering::Relaxed);
        if outcome.refused == 0 {
            return;
        }
        PluginStats::add(&sub.stats.dropped, outcome.refused as u64);
        let (name, action) = (sub.name.clone(), sub.full_action);
        if action == FullAction::Shutdown && !sub.queue.is_abandoned() {
            tracing::error!(plugin = %name, "Queue full and full_action = \"shutdown\"; stopping hekate.");
            self.shutdown.trigger();
        } else if let Some(suppressed) = self.log.check() {
            tracing::warn!(plugin = %name, dropped = outcome.refused, suppressed, "Queue full or plugin gone; messages dropped.");
        }
    }

    /// Closes the queues of filters (`filters = true`) or outputs.
    fn close(&mut self, filters: bool) {
        self.filters_closed |= filters;
        self.subs
            .iter()
            .filter(|s| s.is_filter == filters)
            .for_each(|s| s.queue.close());
    }

    /// The router thread's loop. Returns after `FiltersDone` (or when every sender is gone),
    /// having closed every queue.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<RouterEvent>) {
        let span = tracing::info_span!("router");
        let _enter = span.enter();
        while let Some(ev) = rx.blocking_recv() {
            match ev {
                RouterEvent::Batch(b) => self.route(b),
                RouterEvent::Engine(c) => match command(c) {
                    Some(Command::InputsDone) => self.close(true),
                    Some(Command::FiltersDone) => break,
                    Some(Command::Subscribe(sub)) => self.subscribe(*sub),
                    Some(Command::Unsubscribe(queue)) => {
                        self.unsubscribe(&queue);
                    }
                    Some(Command::Replace { old, new }) => {
                        self.unsubscribe(&old);
                        self.subscribe(*new);
                    }
                    None => {}
                },
            }
        }
        // Whatever filters injected while finishing is still queued: route it.
        while let Ok(ev) = rx.try_recv() {
            match ev {
                RouterEvent::Batch(b) => self.route(b),
                RouterEvent::Engine(c) => match command(c) {
                    Some(Command::Unsubscribe(queue)) => {
                        self.unsubscribe(&queue);
                    }
                    Some(Command::Subscribe(sub)) => sub.queue.close(),
                    Some(Command::Replace { old, new }) => {
                        self.unsubscribe(&old);
                        new.queue.close();
                    }
                    _ => {}
                },
            }
        }
        self.close(true);
        self.close(false);
    }
}

/// The engine command inside an `Engine` event (nothing else sends one).
fn command(c: Box<dyn std::any::Any + Send>) -> Option<Command> {
    match c.downcast::<Command>() {
        Ok(c) => Some(*c),
        Err(_) => {
            tracing::error!("Unknown engine command on the router channel; ignored.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::time::Duration;

    fn sub(name: &str, matcher: &str, cap: usize, action: FullAction) -> Subscriber {
        let m = Matcher::parse(matcher).expect("matcher");
        Subscriber::new(
            name.into(),
            Some(m),
            Arc::new(Queue::new(cap)),
            action,
            Arc::new(PluginStats::default()),
            false,
        )
    }

    fn pack(t: &str, loops: u8) -> Pack {
        Pack {
            msg: Arc::new(Message {
                msg_type: t.into(),
                ..Message::new()
            }),
            loop_count: loops,
            signer: None,
        }
    }

    fn drain(q: &Queue<Pack>) -> Vec<Pack> {
        let mut v = Vec::new();
        q.pop_batch(&mut v, 1000, Duration::ZERO);
        v
    }

    #[test]
    fn fans_out_shared_messages_to_matching_subscribers_only() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let subs = vec![
            sub("all", "TRUE", 10, FullAction::Block),
            sub("a", "Type == 'a'", 10, FullAction::Block),
        ];
        let (qa, qb) = (subs[0].queue.clone(), subs[1].queue.clone());
        let mut r = Router::new(subs, 4, Arc::new(PluginStats::default()), trigger);
        r.route(vec![pack("a", 0), pack("b", 0)]);
        let (all, a) = (drain(&qa), drain(&qb));
        assert_eq!(all.len(), 2);
        assert_eq!(a.len(), 1);
        assert!(
            Arc::ptr_eq(&all[0].msg, &a[0].msg),
            "fan-out shares, never copies"
        );
    }

    #[test]
    fn message_signer_takes_only_packs_of_that_signer() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let subs = vec![
            sub("ops_only", "TRUE", 10, FullAction::Block).with_signer(Some(Arc::from("ops"))),
            sub("anyone", "TRUE", 10, FullAction::Block),
        ];
        let (qo, qa) = (subs[0].queue.clone(), subs[1].queue.clone());
        let mut r = Router::new(subs, 4, Arc::new(PluginStats::default()), trigger);
        let signed = |who: Option<&str>| Pack {
            signer: who.map(Arc::from),
            ..pack("x", 0)
        };
        r.route(vec![signed(None), signed(Some("ops")), signed(Some("dev"))]);
        let ops = drain(&qo);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].signer.as_deref(), Some("ops"));
        assert_eq!(drain(&qa).len(), 3);
    }

    #[test]
    fn drops_messages_past_max_message_loops_and_counts_them() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let stats = Arc::new(PluginStats::default());
        let s = sub("all", "TRUE", 10, FullAction::Block);
        let q = s.queue.clone();
        let mut r = Router::new(vec![s], 2, stats.clone(), trigger);
        r.route(vec![pack("x", 2), pack("x", 3)]);
        assert_eq!(drain(&q).len(), 1);
        assert_eq!(stats.get("max_message_loops_dropped"), Some(1));
    }

    #[test]
    fn full_queue_drop_is_counted_and_shutdown_triggers() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let d = sub("d", "TRUE", 1, FullAction::Drop);
        let s = sub("s", "TRUE", 1, FullAction::Shutdown);
        let (ds, ss) = (d.stats.clone(), s.stats.clone());
        let mut r = Router::new(
            vec![d, s],
            4,
            Arc::new(PluginStats::default()),
            trigger.clone(),
        );
        r.route(vec![pack("x", 0), pack("x", 0), pack("x", 0)]);
        assert_eq!(ds.get("dropped"), Some(2));
        assert_eq!(ss.get("dropped"), Some(2));
        assert!(trigger.is_set());
    }

    #[test]
    fn subscribers_added_and_removed_at_runtime_see_only_their_window() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let mut r = Router::new(Vec::new(), 4, Arc::new(PluginStats::default()), trigger);
        r.route(vec![pack("x", 0)]);
        let s = sub("dyn", "TRUE", 10, FullAction::Block);
        let q = s.queue.clone();
        r.subscribe(s);
        r.route(vec![pack("y", 0)]);
        assert!(r.unsubscribe(&q));
        assert!(!r.unsubscribe(&q), "already gone");
        r.route(vec![pack("z", 0)]);
        let got = drain(&q);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg.msg_type, "y");
        assert!(q.is_closed(), "unsubscribe closes the queue");
        assert!(r.is_empty());
    }

    #[test]
    fn a_filter_subscribed_after_inputs_done_is_closed_at_once() {
        let (trigger, _) = crate::plugin::shutdown::channel();
        let mut r = Router::new(Vec::new(), 4, Arc::new(PluginStats::default()), trigger);
        r.close(true);
        let mut s = sub("late", "TRUE", 10, FullAction::Block);
        s.is_filter = true;
        let q = s.queue.clone();
        r.subscribe(s);
        assert!(q.is_closed());
    }
}
