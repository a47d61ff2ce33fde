//! `RegexSplitter`: cuts a byte stream at each match of a delimiter regex. Without a
//! capture group the delimiter is discarded; with one, the captured text is kept at the
//! end of the record (`delimiter_eol = true`, the default) or at the start of the next
//! one. Empty records are never produced (Heka ignores them too). The regex is compiled
//! once per section; each stream gets its own instance, because `delimiter_eol = false`
//! carries the captured prefix of the next record as state.

use std::sync::Arc;

use regex::bytes::{CaptureLocations, Regex};
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

/// Registration of `RegexSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "RegexSplitter",
    description: "Splits a stream at each match of a delimiter regex.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `RegexSplitter` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RegexSplitterConfig {
    /// The delimiter regex, with at most one capture group. Default `"\n"`.
    pub delimiter: String,
    /// With a capture group: true appends the captured text to the end of the record,
    /// false prepends it to the next record. Default true.
    pub delimiter_eol: bool,
}

impl Default for RegexSplitterConfig {
    fn default() -> Self {
        RegexSplitterConfig {
            delimiter: "\n".into(),
            delimiter_eol: true,
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let c: RegexSplitterConfig = cfg.parse()?;
    let re = Regex::new(&c.delimiter).map_err(|e| vec![cfg.error("delimiter", e.to_string())])?;
    if re.captures_len() > 2 {
        return Err(vec![cfg.error(
            "delimiter",
            "regex must not contain more than one capture group",
        )]);
    }
    let eol = c.delimiter_eol;
    Ok(Arc::new(move || {
        Box::new(RegexSplitter {
            locs: re.capture_locations(),
            re: re.clone(),
            eol,
            carry: 0,
        })
    }))
}

/// Splits at regex matches.
#[derive(Debug)]
pub struct RegexSplitter {
    re: Regex,
    locs: CaptureLocations,
    eol: bool,
    /// Length of the capture at the start of the buffer that belongs to the current
    /// record (`delimiter_eol = false` only).
    carry: usize,
}

/// Where a delimiter match cuts the buffer.
struct Cut {
    /// End of the current record.
    record_end: usize,
    /// Where the next record starts.
    next_start: usize,
    /// Bytes at `next_start` that belong to the next record whatever follows.
    next_carry: usize,
}

impl RegexSplitter {
    /// The first non-empty delimiter match at or after `at`.
    fn next_cut(&mut self, buf: &[u8], mut at: usize) -> Option<Cut> {
        loop {
            if at > buf.len() {
                return None;
            }
            let m = self.re.captures_read_at(&mut self.locs, buf, at)?;
            if m.start() == m.end() {
                at = m.end() + 1;
                continue;
            }
            return Some(match self.locs.get(1) {
                None => Cut {
                    record_end: m.start(),
                    next_start: m.end(),
                    next_carry: 0,
                },
                Some((_, ce)) if self.eol => Cut {
                    record_end: ce,
                    next_start: m.end(),
                    next_carry: 0,
                },
                Some((cs, ce)) => Cut {
                    record_end: m.start(),
                    next_start: cs,
                    next_carry: ce - cs,
                },
            });
        }
    }
}

impl crate::plugin::Splitter for RegexSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        let (mut start, mut carry) = (0, self.carry);
        loop {
            let Some(cut) = self.next_cut(buf, start + carry) else {
                return Split::NeedMore;
            };
            if cut.record_end > start {
                self.carry = cut.next_carry;
                return Split::Record {
                    consumed: cut.next_start,
                    start,
                    end: cut.record_end,
                };
            }
            // An empty record: skip it and look for the next delimiter.
            (start, carry) = (cut.next_start, cut.next_carry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config, split_all, split_chunked};
    use proptest::prelude::*;

    fn splitter(toml: &str) -> Box<dyn crate::plugin::Splitter> {
        build(&plugin_config("RegexSplitter", toml), &build_context()).expect("valid config")()
    }

    fn strings(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    #[test]
    fn documented_example_parses_and_bad_keys_are_rejected() {
        let cx = build_context();
        let doc = "delimiter = '(\\d{4}-\\d{2}-\\d{2})'\ndelimiter_eol = false";
        assert!(build(&plugin_config("RegexSplitter", doc), &cx).is_ok());
        for (toml, key) in [
            ("delimiter_eoll = true", "delimiter_eoll"),
            ("delimiter = '('", "delimiter"),
            ("delimiter = '(a)(b)'", "delimiter"),
        ] {
            let errs = build(&plugin_config("RegexSplitter", toml), &cx)
                .err()
                .expect("rejected");
            assert_eq!(errs[0].key, key, "{toml}");
        }
    }

    #[test]
    fn delimiter_without_capture_is_dropped_and_empty_records_skipped() {
        let out = split_all(&mut *splitter(""), b"a\n\n\nbc\nrest");
        assert_eq!(strings(&out.records), ["a", "bc"]);
        assert_eq!(out.rest, b"rest");
    }

    #[test]
    fn capture_goes_to_end_of_record_with_eol() {
        let out = split_all(&mut *splitter("delimiter = '(\\r?\\n)x'"), b"a\r\nxb\nxc");
        assert_eq!(strings(&out.records), ["a\r\n", "b\n"]);
        assert_eq!(out.rest, b"c");
    }

    #[test]
    fn capture_starts_next_record_without_eol() {
        let toml = "delimiter = '\\n(\\d{4}-)'\ndelimiter_eol = false";
        let data = b"2024- one\n  more\n2025- two\n2026- three";
        for chunk in [1, 3, data.len()] {
            let out = split_chunked(&mut *splitter(toml), data, chunk);
            assert_eq!(
                strings(&out.records),
                ["2024- one\n  more", "2025- two"],
                "chunk {chunk}"
            );
            assert_eq!(out.rest, b"2026- three");
        }
    }

    #[test]
    fn empty_matches_are_ignored() {
        let out = split_all(&mut *splitter("delimiter = 'x*'"), b"axxbxc");
        assert_eq!(strings(&out.records), ["a", "b"]);
        assert_eq!(out.rest, b"c");
    }

    proptest! {
        #[test]
        fn never_panics_and_chunking_does_not_matter(
            data in prop::collection::vec(prop::sample::select(b"ab\n".to_vec()), 0..100),
            chunk in 1usize..20,
            eol in any::<bool>(),
        ) {
            let toml = format!("delimiter = '(b+)\\n'\ndelimiter_eol = {eol}");
            let whole = split_all(&mut *splitter(&toml), &data);
            let chunked = split_chunked(&mut *splitter(&toml), &data, chunk);
            prop_assert_eq!(whole, chunked);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = split_all(&mut *splitter("delimiter = '\\n|x*'"), &data);
        }
    }
}
