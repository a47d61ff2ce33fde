//! Bounded queues between the router and each filter or output, with an explicit policy
//! for when they are full.
//!
//! Generic over the item: this module knows nothing of messages, so a disk-backed variant
//! can sit beside [`memory::Queue`] later. The router pushes whole batches (one lock per
//! batch); a runner thread pops batches and waits on a condition variable in between.
//!
//! May import: nothing of hekate; a foundation module.

pub mod memory;

pub use memory::{Pop, PushOutcome, Queue};
