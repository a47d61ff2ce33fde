//! Bounded queues between the router and each filter or output, with an explicit policy
//! for when they are full.
//!
//! Generic over the item: this module knows nothing of messages. [`memory::Queue`] holds
//! items in memory; [`disk::DiskQueue`] holds byte records on disk (`use_buffering`). The router pushes whole batches (one lock per
//! batch); a runner thread pops batches and waits on a condition variable in between.
//!
//! May import: nothing of hekate; a foundation module.

pub mod disk;
pub mod memory;

pub use memory::{Pop, PushOutcome, Queue};
