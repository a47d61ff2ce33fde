//! `MultiDecoder` (Heka's): runs several decoder sections as one.
//!
//! * `cascade_strategy = "first-wins"` (default): the subs are tried in order on the
//!   record and the first that succeeds makes the messages; what a failed sub made is
//!   discarded. The record fails only when every sub failed.
//! * `cascade_strategy = "all"`: every sub runs in order, each on the messages the
//!   previous ones made (its record is a message's Payload, and it starts from that
//!   message, so a `ScribbleDecoder` adds to what a `PayloadRegexDecoder` found). A sub
//!   that fails on a message passes it on unchanged (the first sub: the record, as the
//!   Payload of what the input stamped). The record fails only when no sub succeeded.
//!
//! With `log_sub_errors`, each sub's failure is logged (once per burst). Subs are decoder
//! sections; a MultiDecoder may use another one defined before it.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::reclaim::Pool;
use crate::message::{Message, Pack};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};
use crate::stats::LogLimiter;

/// Registration of `MultiDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "MultiDecoder",
    description: "Runs decoder sections in order: the first that succeeds, or all in cascade.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// How the subs combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Cascade {
    /// The first sub that succeeds wins.
    #[default]
    #[serde(rename = "first-wins")]
    FirstWins,
    /// Every sub, each on what the previous made.
    #[serde(rename = "all")]
    All,
}

/// `MultiDecoder` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiDecoderConfig {
    /// Decoder section names, in order. At least one.
    pub subs: Vec<String>,
    /// `"first-wins"` (default) or `"all"`.
    pub cascade_strategy: Cascade,
    /// Log each sub's decode failure. Default false.
    pub log_sub_errors: bool,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: MultiDecoderConfig = cfg.parse()?;
    if c.subs.is_empty() {
        return Err(vec![
            cfg.error("subs", "at least one decoder section is required")
        ]);
    }
    let mut subs = Vec::new();
    let mut errors = Vec::new();
    for name in &c.subs {
        if *name == cfg.name {
            errors.push(cfg.error("subs", "a MultiDecoder cannot use itself"));
            continue;
        }
        match cx.decoder(name) {
            Some(f) => subs.push((name.clone(), f)),
            None => errors.push(cfg.error(
                "subs",
                format!("{name:?} is not a decoder section (or a MultiDecoder defined later)"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let subs: Arc<[(String, DecoderFactory)]> = subs.into();
    let (cascade, log_errors) = (c.cascade_strategy, c.log_sub_errors);
    Ok(Arc::new(move || {
        Box::new(MultiDecoder {
            subs: subs.iter().map(|(n, f)| (n.clone(), f())).collect(),
            cascade,
            log_errors,
            log: LogLimiter::default(),
            pool: Pool::new(0),
        })
    }))
}

/// One instance per input stream.
pub struct MultiDecoder {
    subs: Vec<(String, Box<dyn Decoder>)>,
    cascade: Cascade,
    log_errors: bool,
    log: LogLimiter,
    pool: Pool,
}

impl MultiDecoder {
    fn failed(&mut self, sub: &str, e: &DecodeError) {
        if self.log_errors {
            if let Some(suppressed) = self.log.check() {
                tracing::warn!(sub, error = %e, suppressed, "MultiDecoder sub failed.");
            }
        }
    }

    fn first_wins(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let start = out.len();
        let mut last = DecodeError::new("no sub-decoder");
        for i in 0..self.subs.len() {
            match self.subs[i].1.decode(record, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    out.truncate(start);
                    let name = self.subs[i].0.clone();
                    self.failed(&name, &e);
                    last = e;
                }
            }
        }
        Err(DecodeError::new(format!(
            "every sub-decoder failed; last: {last}"
        )))
    }

    fn all(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let mut any = false;
        let mut current: Vec<Pack> = Vec::new();
        for i in 0..self.subs.len() {
            let mut next: Vec<Pack> = Vec::new();
            let inputs: Vec<Option<Pack>> = if i == 0 {
                vec![None]
            } else {
                current.drain(..).map(Some).collect()
            };
            for input in inputs {
                let base: &Message = input.as_ref().map_or(out.base(), |p| &p.msg);
                let bytes: &[u8] = input.as_ref().map_or(record, |p| p.msg.payload.as_bytes());
                let before = next.len();
                let result = {
                    let mut d = Decoded::new(base, &mut next, &mut self.pool);
                    self.subs[i].1.decode(bytes, &mut d)
                };
                match result {
                    Ok(()) => any = true,
                    Err(e) => {
                        next.truncate(before);
                        let name = self.subs[i].0.clone();
                        self.failed(&name, &e);
                        // Passed on unchanged: the record itself, the first time.
                        let p = input.unwrap_or_else(|| {
                            let mut m = out.base().clone();
                            m.set_payload(&String::from_utf8_lossy(record));
                            self.pool.pack(m)
                        });
                        next.push(p);
                    }
                }
            }
            current = next;
        }
        if !any {
            return Err(DecodeError::new("no sub-decoder succeeded"));
        }
        for p in current {
            out.push(Arc::unwrap_or_clone(p.msg));
        }
        Ok(())
    }
}

impl Decoder for MultiDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        match self.cascade {
            Cascade::FirstWins => self.first_wins(record, out),
            Cascade::All => self.all(record, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{
        build_context, first_error_key, named_plugin_config, registered_decoder,
    };

    /// Publishes a PayloadRegexDecoder `re` and a ScribbleDecoder `tag` into `cx`.
    fn subs(cx: &BuildContext) {
        let re = named_plugin_config(
            "re",
            "PayloadRegexDecoder",
            "match_regex = '^(?P<n>\\d+) '\n[message_fields]\nn = '%n%'\n",
        );
        cx.publish_decoder(
            "re",
            registered_decoder("PayloadRegexDecoder")(&re, cx).expect("re"),
        );
        let tag = named_plugin_config(
            "tag",
            "ScribbleDecoder",
            "[message_fields]\nsource = 'multi'\n",
        );
        cx.publish_decoder(
            "tag",
            registered_decoder("ScribbleDecoder")(&tag, cx).expect("tag"),
        );
    }

    fn run(toml: &str, record: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let cx = build_context();
        subs(&cx);
        let f = build(&named_plugin_config("m", "MultiDecoder", toml), &cx).expect("builds");
        let mut out = Vec::new();
        crate::plugin::decode_into(f().as_mut(), record, &Message::new(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn first_wins_and_all() {
        let first = run("subs = ['re', 'tag']", b"42 apples").expect("re wins");
        assert!(first[0].field("n", 0).is_some() && first[0].field("source", 0).is_none());
        let fallback = run("subs = ['re', 'tag']", b"no number").expect("tag wins");
        assert!(fallback[0].field("n", 0).is_none() && fallback[0].field("source", 0).is_some());
        let all = run(
            "subs = ['re', 'tag']\ncascade_strategy = 'all'",
            b"42 apples",
        )
        .expect("all");
        assert_eq!(all.len(), 1);
        assert!(all[0].field("n", 0).is_some() && all[0].field("source", 0).is_some());
        assert_eq!(all[0].payload, "42 apples");
        let partial =
            run("subs = ['re', 'tag']\ncascade_strategy = 'all'", b"none").expect("tag alone");
        assert!(partial[0].field("source", 0).is_some());
        assert!(run("subs = ['re']", b"none").is_err(), "every sub failed");
    }

    #[test]
    fn bad_configs() {
        let cx = build_context();
        subs(&cx);
        let b = |t: &str| build(&named_plugin_config("m", "MultiDecoder", t), &cx);
        assert_eq!(first_error_key(b("")), "subs");
        assert_eq!(first_error_key(b("subs = ['nope']")), "subs");
        assert_eq!(first_error_key(b("subs = ['m']")), "subs");
        assert_eq!(
            first_error_key(b("subs = ['re']\ncascade_strategy = 'some'")),
            "cascade_strategy"
        );
    }
}
