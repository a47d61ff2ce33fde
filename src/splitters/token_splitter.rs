//! `TokenSplitter`: cuts a byte stream after every `count`-th occurrence of a one-byte
//! delimiter (default newline). As in Heka, the delimiter stays at the end of the record.
//! Built once per section; each stream gets its own (stateless) instance.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

/// Registration of `TokenSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "TokenSplitter",
    description:
        "Splits a stream after a one-byte delimiter (default newline), kept in the record.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `TokenSplitter` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct TokenSplitterConfig {
    /// The delimiter: exactly one byte. Default `"\n"`.
    pub delimiter: String,
    /// How many delimiters end one record (at least 1). Default 1.
    pub count: u32,
}

impl Default for TokenSplitterConfig {
    fn default() -> Self {
        TokenSplitterConfig {
            delimiter: "\n".into(),
            count: 1,
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let c: TokenSplitterConfig = cfg.parse()?;
    let mut errors = Vec::new();
    if c.delimiter.len() != 1 {
        errors.push(cfg.error("delimiter", "must be exactly one byte"));
    }
    if c.count == 0 {
        errors.push(cfg.error("count", "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let splitter = TokenSplitter {
        delimiter: c.delimiter.as_bytes()[0],
        count: c.count as usize,
    };
    Ok(Arc::new(move || Box::new(splitter.clone())))
}

/// Splits after every `count`-th `delimiter` byte.
#[derive(Debug, Clone)]
pub struct TokenSplitter {
    delimiter: u8,
    count: usize,
}

impl crate::plugin::Splitter for TokenSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        match memchr::memchr_iter(self.delimiter, buf).nth(self.count - 1) {
            Some(i) => Split::Record {
                consumed: i + 1,
                start: 0,
                end: i + 1,
            },
            None => Split::NeedMore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config, split_all, split_chunked};
    use proptest::prelude::*;

    fn splitter(toml: &str) -> Box<dyn crate::plugin::Splitter> {
        build(&plugin_config("TokenSplitter", toml), &build_context()).expect("valid config")()
    }

    #[test]
    fn documented_example_parses_and_bad_keys_are_rejected() {
        let cx = build_context();
        assert!(build(&plugin_config("TokenSplitter", "delimiter = ' '"), &cx).is_ok());
        for (toml, key) in [
            ("delimitr = ' '", "delimitr"),
            ("delimiter = 'ab'", "delimiter"),
            ("delimiter = ''", "delimiter"),
            ("count = 0", "count"),
        ] {
            let errs = build(&plugin_config("TokenSplitter", toml), &cx)
                .err()
                .expect("rejected");
            assert_eq!(errs[0].key, key, "{toml}");
        }
    }

    #[test]
    fn records_keep_the_delimiter() {
        let out = split_all(&mut *splitter(""), b"a\n\nbc\nrest");
        assert_eq!(
            out.records,
            vec![b"a\n".to_vec(), b"\n".to_vec(), b"bc\n".to_vec()]
        );
        assert_eq!(out.rest, b"rest");
    }

    #[test]
    fn count_groups_delimiters() {
        let out = split_all(&mut *splitter("delimiter = '|'\ncount = 2"), b"a|b|c|d|e|");
        assert_eq!(out.records, vec![b"a|b|".to_vec(), b"c|d|".to_vec()]);
        assert_eq!(out.rest, b"e|");
    }

    proptest! {
        #[test]
        fn never_panics_and_chunking_does_not_matter(data in prop::collection::vec(any::<u8>(), 0..200), chunk in 1usize..20) {
            let whole = split_all(&mut *splitter("delimiter = 'a'\ncount = 2"), &data);
            let chunked = split_chunked(&mut *splitter("delimiter = 'a'\ncount = 2"), &data, chunk);
            prop_assert_eq!(whole, chunked);
        }
    }
}
