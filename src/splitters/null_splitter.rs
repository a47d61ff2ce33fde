//! `NullSplitter`: every read (or datagram) is one record, unchanged. Heka's default
//! splitter; built by the registry for inputs without a `splitter` key. Not meant for
//! byte streams, where reads do not line up with records.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

/// Registration of `NullSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "NullSplitter",
    description: "Each read or datagram is one record.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `NullSplitter` has no keys of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NullSplitterConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let _: NullSplitterConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(NullSplitter)))
}

/// Returns the whole buffer as one record.
#[derive(Debug, Default)]
pub struct NullSplitter;

impl crate::plugin::Splitter for NullSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        if buf.is_empty() {
            return Split::NeedMore;
        }
        Split::Record {
            consumed: buf.len(),
            start: 0,
            end: buf.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config, split_all};
    use crate::plugin::Splitter;

    #[test]
    fn config_has_no_keys() {
        let cx = build_context();
        assert!(build(&plugin_config("NullSplitter", ""), &cx).is_ok());
        let errs = build(&plugin_config("NullSplitter", "delimiter = 'x'"), &cx)
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "delimiter");
    }

    #[test]
    fn whole_buffer_is_one_record() {
        let factory = build(&plugin_config("NullSplitter", ""), &build_context()).expect("ok");
        let out = split_all(&mut *factory(), b"a\nb\n");
        assert_eq!(out.records, vec![b"a\nb\n".to_vec()]);
        assert!(out.rest.is_empty());
        assert_eq!(NullSplitter.find_record(b""), Split::NeedMore);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_takes_everything(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..100)) {
            let out = split_all(&mut NullSplitter, &data);
            proptest::prop_assert_eq!(out.records, vec![data]);
        }
    }
}
