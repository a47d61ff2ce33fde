//! `HekaFramingSplitter`: cuts a byte stream of Heka frames
//! (`0x1E | header length | Header | 0x1F | message`, heka.md §2.2) and yields the
//! message bytes, for the `ProtobufDecoder`. Garbage before a frame, an undecodable
//! header or a `message_length` above `max_message_size` is skipped up to the next `0x1E`
//! (counted by the input as dropped).
//!
//! Signed frames are checked as Heka checks them: the HMAC (MD5 or SHA-1) of the message
//! bytes under the key of `[name.signer.<signer>_<version>] hmac_key`. A valid one marks
//! the record with its signer (what `message_signer` matches); an unknown signer or a
//! wrong HMAC drops the frame, counted in `bad_signatures` and in the input's `dropped`.
//! Unsigned frames pass, without a signer. With `skip_authentication = true` nothing is
//! checked and no record has a signer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::message::framing::{
    parse_header_info, verify, Verified, RECORD_SEPARATOR, UNIT_SEPARATOR,
};
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};
use crate::stats::PluginStats;

/// Registration of `HekaFramingSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "HekaFramingSplitter",
    description: "Splits a stream of Heka-framed protobuf messages.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `HekaFramingSplitter` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HekaFramingSplitterConfig {
    /// Accept signed frames without checking their HMAC (and give no record a signer).
    /// Default false.
    pub skip_authentication: bool,
    /// `[name.signer.<signer>_<version>]` tables, each with the `hmac_key` of that signer
    /// and key version.
    pub signer: BTreeMap<String, SignerKey>,
    /// Accepted for compatibility (Heka's; hekate always hands on the message bytes).
    pub use_message_bytes: Option<bool>,
}

/// One `[name.signer.<signer>_<version>]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerKey {
    /// The shared key.
    pub hmac_key: String,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let c: HekaFramingSplitterConfig = cfg.parse()?;
    let mut errors = Vec::new();
    for name in c.signer.keys() {
        let versioned = name
            .rsplit_once('_')
            .is_some_and(|(n, v)| !n.is_empty() && v.parse::<u32>().is_ok());
        if !versioned {
            errors.push(cfg.error(
                &format!("signer.{name}"),
                "a signer table is named <signer>_<version>, e.g. [name.signer.ops_0]",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let keys: HashMap<String, String> =
        c.signer.into_iter().map(|(k, v)| (k, v.hmac_key)).collect();
    let bad_signatures = cx
        .report
        .register(&cfg.name, "Splitter", &cfg.type_name)
        .counter("bad_signatures");
    let splitter = HekaFramingSplitter {
        skip_authentication: c.skip_authentication,
        max_message_size: cx.globals.max_message_size as usize,
        keys: Arc::new(keys),
        signer: None,
        bad_signatures,
    };
    Ok(Arc::new(move || Box::new(splitter.clone())))
}

/// Finds Heka frames and yields their message bytes.
#[derive(Debug, Clone)]
pub struct HekaFramingSplitter {
    skip_authentication: bool,
    max_message_size: usize,
    /// `hmac_key` by `<signer>_<version>`.
    keys: Arc<HashMap<String, String>>,
    /// The verified signer of the last record.
    signer: Option<String>,
    bad_signatures: Arc<AtomicU64>,
}

impl crate::plugin::Splitter for HekaFramingSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        match memchr::memchr(RECORD_SEPARATOR, buf) {
            None if buf.is_empty() => return Split::NeedMore,
            None => return Split::Skip(buf.len()),
            Some(0) => {}
            Some(garbage) => return Split::Skip(garbage),
        }
        let Some(&header_len) = buf.get(1) else {
            return Split::NeedMore;
        };
        let header_end = 2 + usize::from(header_len);
        let Some(&sep) = buf.get(header_end) else {
            return Split::NeedMore;
        };
        let info = match parse_header_info(&buf[2..header_end]) {
            Some(h) if sep == UNIT_SEPARATOR && h.message_length <= self.max_message_size => h,
            _ => return Split::Skip(1), // not a frame: resynchronise on the next 0x1E
        };
        let start = header_end + 1;
        let end = start + info.message_length;
        if buf.len() < end {
            return Split::NeedMore;
        }
        self.signer = None;
        if info.signed && !self.skip_authentication {
            match verify(&buf[2..header_end], &buf[start..end], &self.keys) {
                Verified::Signer(s) => self.signer = Some(s),
                Verified::Unsigned => {}
                Verified::Invalid(_) => {
                    PluginStats::add(&self.bad_signatures, 1);
                    return Split::Skip(end);
                }
            }
        }
        Split::Record {
            consumed: end,
            start,
            end,
        }
    }

    fn signer(&self) -> Option<&str> {
        self.signer.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::framing::write_frame;
    use crate::plugin::testing::{build_context, plugin_config, split_all, split_chunked};
    use proptest::prelude::*;

    fn splitter(toml: &str) -> Box<dyn crate::plugin::Splitter> {
        build(
            &plugin_config("HekaFramingSplitter", toml),
            &build_context(),
        )
        .expect("valid config")()
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        msgs.iter().for_each(|m| write_frame(m, &mut out));
        out
    }

    #[test]
    fn documented_example_parses_and_bad_keys_are_rejected() {
        let cx = build_context();
        let ok = plugin_config("HekaFramingSplitter", "skip_authentication = true");
        assert!(build(&ok, &cx).is_ok());
        let signer = "[signer.ops_0]\nhmac_key = 'k'";
        assert!(build(&plugin_config("HekaFramingSplitter", signer), &cx).is_ok());
        let unversioned = "[signer.ops]\nhmac_key = 'k'";
        for (toml, key) in [
            ("skip_auth = true", "skip_auth"),
            (unversioned, "signer.ops"),
        ] {
            let errs = build(&plugin_config("HekaFramingSplitter", toml), &cx)
                .err()
                .expect("rejected");
            assert_eq!(errs[0].key, key, "{toml}");
        }
    }

    #[test]
    fn yields_message_bytes_in_any_chunking() {
        let big = vec![b'x'; 300];
        let data = framed(&[b"one", &big, b""]);
        for chunk in [1, 2, 7, data.len()] {
            let out = split_chunked(&mut *splitter(""), &data, chunk);
            assert_eq!(out.records, vec![b"one".to_vec(), big.clone(), vec![]]);
            assert_eq!(out.skips, 0);
            assert!(out.rest.is_empty());
        }
    }

    #[test]
    fn resynchronises_after_garbage_and_bad_headers() {
        let mut data = b"junk".to_vec();
        data.extend_from_slice(&[0x1E, 2, 0x18, 0x01, 0x1F]); // header without length
        data.extend_from_slice(&[0x1E, 2, 0x08, 0x01, 0x00]); // missing unit separator
        data.extend_from_slice(&framed(&[b"ok"]));
        let out = split_all(&mut *splitter(""), &data);
        assert_eq!(out.records, vec![b"ok".to_vec()]);
        assert!(out.skips >= 3, "{out:?}");
    }

    #[test]
    fn oversize_length_is_treated_as_garbage() {
        // message_length 1_000_000 > 64 KiB default max_message_size
        let data = [0x1E, 4, 0x08, 0xC0, 0x84, 0x3D, 0x1F, b'a'];
        let out = split_all(&mut *splitter(""), &data);
        assert!(out.records.is_empty());
        assert!(out.skips >= 1);
    }

    #[test]
    fn signed_frames_are_dropped_unless_authentication_is_skipped() {
        // header: message_length 2, hmac_signer "s", hmac (field 6) 1 byte
        let data = [
            0x1E, 8, 0x08, 2, 0x22, 1, b's', 0x32, 1, 0xAA, 0x1F, b'h', b'i',
        ];
        let strict = split_all(&mut *splitter(""), &data);
        assert!(strict.records.is_empty());
        assert_eq!(strict.skips, 1);
        let lax = split_all(&mut *splitter("skip_authentication = true"), &data);
        assert_eq!(lax.records, vec![b"hi".to_vec()]);
    }

    #[test]
    fn signatures_are_verified_and_name_the_signer() {
        use crate::message::framing::{write_signed_frame, HmacHash, SignerConfig};
        let sign = |key: &str, version: u32| {
            let mut out = Vec::new();
            let signer = SignerConfig {
                name: "ops".into(),
                hmac_hash: HmacHash::Md5,
                hmac_key: key.into(),
                version,
            };
            write_signed_frame(b"payload", &signer, &mut out);
            out
        };
        let mut s = splitter("[signer.ops_1]\nhmac_key = 'secret'");
        let good = sign("secret", 1);
        assert!(matches!(s.find_record(&good), Split::Record { .. }));
        assert_eq!(s.signer(), Some("ops"));
        let plain = framed(&[b"plain"]);
        assert!(matches!(s.find_record(&plain), Split::Record { .. }));
        assert_eq!(s.signer(), None, "unsigned frames pass without a signer");
        for bad in [sign("wrong", 1), sign("secret", 2)] {
            assert!(matches!(s.find_record(&bad), Split::Skip(n) if n == bad.len()));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300), chunk in 1usize..50) {
            let _ = split_chunked(&mut *splitter(""), &data, chunk);
        }

        #[test]
        fn frames_survive_surrounding_garbage(garbage in prop::collection::vec(any::<u8>().prop_filter("not RS", |b| *b != 0x1E), 0..40), msg in prop::collection::vec(any::<u8>(), 0..100)) {
            let mut data = garbage;
            data.extend_from_slice(&framed(&[&msg]));
            let out = split_all(&mut *splitter(""), &data);
            prop_assert_eq!(out.records, vec![msg]);
        }
    }
}
