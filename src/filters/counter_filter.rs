//! `CounterFilter` (Heka's): counts the messages its matcher selects and, on each tick
//! when new ones arrived, injects `Type = "heka.counter-output"` with the Payload
//! `Got N messages. R msg/sec` (N the running total, R the rate over the tick). Every
//! tenth such sample adds a summary, `AGG Sum. Min: a    Max: b    Mean: c`, of the
//! last ten rates. Heka's defaults: `ticker_interval = 5`, and a matcher that takes
//! everything but its own output (`Type != 'heka.counter-output'`).

use std::time::Instant;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{Message, Pack};
use crate::plugin::{BuildContext, Defaults, Filter, FilterContext, Registration};

/// The Type of what the filter injects.
pub const OUTPUT_TYPE: &str = "heka.counter-output";
/// Samples per summary.
const SUMMARY_EVERY: usize = 10;

/// The registration of `CounterFilter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildFilter> = Registration {
    name: "CounterFilter",
    description:
        "Counts matched messages; injects the count and rate each tick, a summary every 10.",
    build,
    defaults: Defaults {
        message_matcher: Some("Type != 'heka.counter-output'"),
        ticker_interval: Some(5),
        ..Defaults::HEKA
    },
    references: &[],
};

/// `CounterFilter` has no keys of its own (Heka: "Parameters: None").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterFilterConfig {}

/// The running filter.
pub struct CounterFilter {
    count: u64,
    last_count: u64,
    last_time: Instant,
    rates: Vec<f64>,
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let _: CounterFilterConfig = p.parse()?;
    Ok(Box::new(CounterFilter {
        count: 0,
        last_count: 0,
        last_time: Instant::now(),
        rates: Vec::with_capacity(SUMMARY_EVERY),
    }))
}

fn output(payload: String) -> Message {
    let mut m = Message::new();
    m.msg_type = OUTPUT_TYPE.into();
    m.payload = payload;
    m
}

impl CounterFilter {
    /// One tick `elapsed` seconds after the last sample: what to inject.
    fn tally(&mut self, elapsed: f64) -> Vec<Message> {
        let new = self.count - self.last_count;
        if new == 0 || elapsed <= 0.0 {
            return Vec::new();
        }
        self.last_count = self.count;
        let rate = new as f64 / elapsed;
        self.rates.push(rate);
        let mut out = vec![output(format!(
            "Got {} messages. {rate:.2} msg/sec",
            self.count
        ))];
        if self.rates.len() == SUMMARY_EVERY {
            let min = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = self.rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = self.rates.iter().sum::<f64>() / SUMMARY_EVERY as f64;
            out.push(output(format!(
                "AGG Sum. Min: {min:.2}    Max: {max:.2}    Mean: {mean:.2}"
            )));
            self.rates.clear();
        }
        out
    }
}

impl Filter for CounterFilter {
    fn process_message(
        &mut self,
        _pack: &Pack,
        _cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        self.count += 1;
        Ok(())
    }

    fn timer_event(
        &mut self,
        _now_ns: i64,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_time).as_secs_f64();
        let out = self.tally(elapsed);
        if !out.is_empty() {
            self.last_time = now;
        }
        out.into_iter().for_each(|m| cx.inject(m));
        Ok(())
    }

    fn timer_event_on_shutdown(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> CounterFilter {
        CounterFilter {
            count: 0,
            last_count: 0,
            last_time: Instant::now(),
            rates: Vec::new(),
        }
    }

    #[test]
    fn counts_rates_and_a_summary_every_ten_samples() {
        let mut f = filter();
        assert!(f.tally(5.0).is_empty(), "nothing new, nothing sent");
        let mut payloads = Vec::new();
        for i in 1..=10u64 {
            f.count += i * 5;
            payloads.extend(f.tally(5.0).into_iter().map(|m| {
                assert_eq!(m.msg_type, OUTPUT_TYPE);
                m.payload
            }));
        }
        assert_eq!(payloads[0], "Got 5 messages. 1.00 msg/sec");
        assert_eq!(payloads[9], "Got 275 messages. 10.00 msg/sec");
        assert_eq!(
            payloads[10],
            "AGG Sum. Min: 1.00    Max: 10.00    Mean: 5.50"
        );
        assert_eq!(payloads.len(), 11);
    }
}
