//! `HekaFramingSplitter`: cuts a byte stream of Heka frames
//! (`0x1E | header length | Header | 0x1F | message`, heka.md §2.2) and yields the
//! message bytes, for the `ProtobufDecoder`. Garbage before a frame, an undecodable
//! header or a `message_length` above `max_message_size` is skipped up to the next `0x1E`
//! (counted by the input as dropped). HMAC signers are not supported: signed frames are
//! dropped unless `skip_authentication = true`, and `[name.signer.*]` tables are rejected.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::message::framing::{parse_header_info, RECORD_SEPARATOR, UNIT_SEPARATOR};
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

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
    /// Accept signed frames without checking their HMAC. Default false: signed frames are
    /// dropped, since hekate cannot verify signatures.
    pub skip_authentication: bool,
    /// `[name.signer.<signer>_<version>]` tables: not supported, rejected when present.
    pub signer: Option<toml::Table>,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let c: HekaFramingSplitterConfig = cfg.parse()?;
    if c.signer.is_some() {
        return Err(vec![cfg.error(
            "signer",
            "HMAC message signers are not supported by hekate; remove the signer tables \
             (signed frames are then dropped unless skip_authentication = true)",
        )]);
    }
    let splitter = HekaFramingSplitter {
        skip_authentication: c.skip_authentication,
        max_message_size: cx.globals.max_message_size as usize,
    };
    Ok(Arc::new(move || Box::new(splitter.clone())))
}

/// Finds Heka frames and yields their message bytes.
#[derive(Debug, Clone)]
pub struct HekaFramingSplitter {
    skip_authentication: bool,
    max_message_size: usize,
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
        if info.signed && !self.skip_authentication {
            return Split::Skip(end); // unverifiable signature: drop the frame
        }
        Split::Record {
            consumed: end,
            start,
            end,
        }
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
        for (toml, key) in [("skip_auth = true", "skip_auth"), (signer, "signer")] {
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
