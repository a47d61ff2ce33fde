//! `StatsToFieldsDecoder` (Heka's): graphite plaintext lines in the payload
//! (`name value unix_time`, one per line) become message fields, as `StatAccumInput`
//! with `emit_in_fields` writes them: one double field per stat, plus an integer
//! `timestamp`. Lines with a timestamp other than the first one's go to one extra message
//! per timestamp: a copy of the original with an empty payload and only that timestamp's
//! stats (Heka's documented behaviour). A malformed line fails the whole record,
//! naming the line, and nothing is emitted for it.

use std::sync::Arc;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::{Field, Message};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `StatsToFieldsDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "StatsToFieldsDecoder",
    description: "Graphite plaintext lines in the payload become fields (name = value, timestamp).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `StatsToFieldsDecoder` has no keys (Heka's has none either).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsToFieldsDecoderConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let _: StatsToFieldsDecoderConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(StatsToFieldsDecoder)))
}

/// The decoder (stateless).
pub struct StatsToFieldsDecoder;

/// One parsed line.
struct Stat<'a> {
    name: &'a str,
    value: f64,
    time: u32,
}

/// `name value unix_time`, split on whitespace (Heka's checks and messages).
fn parse_line(line: &str) -> Result<Stat<'_>, DecodeError> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [name, value, time] = parts[..] else {
        return Err(DecodeError::new(format!(
            "malformed statmetric line: '{line}'"
        )));
    };
    let time = time
        .parse::<u32>()
        .map_err(|_| DecodeError::new(format!("invalid timestamp: '{line}'")))?;
    let value = value
        .parse::<f64>()
        .map_err(|_| DecodeError::new(format!("invalid value: '{line}'")))?;
    Ok(Stat { name, value, time })
}

impl Decoder for StatsToFieldsDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(record)
            .map_err(|e| DecodeError::new(format!("payload is not UTF-8: {e}")))?;
        let stats = text
            .trim_matches('\n')
            .split('\n')
            .map(parse_line)
            .collect::<Result<Vec<Stat<'_>>, _>>()?;
        let Some(first) = stats.first().map(|s| s.time) else {
            return Err(DecodeError::new("no statmetric lines"));
        };
        let mut times = vec![first];
        for s in &stats {
            if !times.contains(&s.time) {
                times.push(s.time);
            }
        }
        for (i, t) in times.iter().enumerate() {
            let m = out.start();
            if i == 0 {
                m.set_payload(text);
            } else {
                m.fields.clear();
            }
            add_stats(m, &stats, *t);
        }
        Ok(())
    }
}

/// The stats of timestamp `t`, then the `timestamp` field.
fn add_stats(m: &mut Message, stats: &[Stat<'_>], t: u32) {
    for s in stats.iter().filter(|s| s.time == t) {
        m.add_field(Field::double(s.name, s.value));
    }
    m.add_field(Field::integer("timestamp", i64::from(t)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ValueRef;
    use crate::plugin::testing::{build_context, plugin_config};

    fn decode(payload: &str) -> Result<Vec<Message>, DecodeError> {
        let f = build(&plugin_config("StatsToFieldsDecoder", ""), &build_context()).expect("ok");
        let mut out = Vec::new();
        crate::plugin::decode_into(f().as_mut(), payload.as_bytes(), &Message::new(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn one_timestamp_makes_one_message_with_every_stat() {
        let out = decode("stats.a 1.5 1400000000\nstats.b 3 1400000000\n").expect("ok");
        assert_eq!(out.len(), 1);
        let m = &out[0];
        assert_eq!(m.field_value("stats.a", 0, 0), Some(ValueRef::Double(1.5)));
        assert_eq!(m.field_value("stats.b", 0, 0), Some(ValueRef::Double(3.0)));
        assert_eq!(
            m.field_value("timestamp", 0, 0),
            Some(ValueRef::Int(1_400_000_000))
        );
        assert!(m.payload.starts_with("stats.a"));
    }

    #[test]
    fn each_further_timestamp_gets_its_own_message_without_payload() {
        let out = decode("a 1 100\nb 2 200\nc 3 100\nd 4 300\n").expect("ok");
        assert_eq!(out.len(), 3);
        let names = |m: &Message| {
            m.fields
                .iter()
                .map(|f| f.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&out[0]), ["a", "c", "timestamp"]);
        assert_eq!(names(&out[1]), ["b", "timestamp"]);
        assert_eq!(
            out[1].field_value("timestamp", 0, 0),
            Some(ValueRef::Int(200))
        );
        assert!(out[1].payload.is_empty());
        assert_eq!(names(&out[2]), ["d", "timestamp"]);
    }

    #[test]
    fn bad_lines_fail_with_hekas_messages() {
        let e = |p: &str| decode(p).err().map(|e| e.0).unwrap_or_default();
        assert_eq!(e("a 1\n"), "malformed statmetric line: 'a 1'");
        assert_eq!(e("a 1 -5\n"), "invalid timestamp: 'a 1 -5'");
        assert_eq!(e("a x 5\n"), "invalid value: 'a x 5'");
        assert!(build(
            &plugin_config("StatsToFieldsDecoder", "x = 1"),
            &build_context()
        )
        .is_err());
    }
}
