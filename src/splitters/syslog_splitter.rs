//! `SyslogSplitter`: cuts a syslog TCP stream into messages (RFC 6587). A frame that
//! starts with a length (`<digits> `, no leading zero) is octet-counted; any other frame
//! ends at the next LF or NUL (non-transparent framing), so both may be mixed on one
//! connection. Records exclude the length prefix and the trailer. Separators between
//! frames are ignored. An octet-counted frame longer than `max_message_size` is skipped
//! (counted) without being buffered. Built once per section; each stream gets its own
//! instance, because skipping an oversized frame spans reads.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

/// Registration of `SyslogSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "SyslogSplitter",
    description: "Splits syslog streams: RFC 6587 octet counting or newline framing, per frame.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// Most digits a length prefix may have (lengths fit in 32 bits).
const MAX_LEN_DIGITS: usize = 10;

/// `SyslogSplitter` has no keys of its own (the size limit is `[hekad] max_message_size`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SyslogSplitterConfig {}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let _: SyslogSplitterConfig = cfg.parse()?;
    let splitter = SyslogSplitter {
        max_message_size: cx.globals.max_message_size as usize,
        discard: 0,
    };
    Ok(Arc::new(move || Box::new(splitter.clone())))
}

/// Splits octet-counted and newline-framed syslog messages.
#[derive(Debug, Clone)]
pub struct SyslogSplitter {
    max_message_size: usize,
    /// Bytes of an oversized frame still to be thrown away.
    discard: usize,
}

/// What the start of a frame says about its framing.
enum Header {
    /// Not enough bytes to tell.
    NeedMore,
    /// Octet counting: the prefix is `prefix` bytes long and announces `len` bytes.
    Counted { prefix: usize, len: usize },
    /// Non-transparent framing.
    Line,
}

fn header(buf: &[u8]) -> Header {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || buf[0] == b'0' || digits > MAX_LEN_DIGITS {
        return Header::Line;
    }
    match buf.get(digits) {
        None => Header::NeedMore,
        Some(b' ') => {
            let len = buf[..digits]
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            Header::Counted {
                prefix: digits + 1,
                len,
            }
        }
        Some(_) => Header::Line,
    }
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | b'\0')
}

impl crate::plugin::Splitter for SyslogSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        if self.discard > 0 {
            let n = self.discard.min(buf.len());
            self.discard -= n;
            return if n == 0 {
                Split::NeedMore
            } else {
                Split::Skip(n)
            };
        }
        let Some(off) = buf.iter().position(|&b| !is_separator(b)) else {
            return Split::NeedMore;
        };
        let frame = &buf[off..];
        match header(frame) {
            Header::NeedMore => Split::NeedMore,
            Header::Counted { prefix, len } if len > self.max_message_size => {
                let total = (off + prefix).saturating_add(len);
                let n = total.min(buf.len());
                self.discard = total - n;
                Split::Skip(n)
            }
            Header::Counted { prefix, len } if frame.len() < prefix + len => Split::NeedMore,
            Header::Counted { prefix, len } => Split::Record {
                consumed: off + prefix + len,
                start: off + prefix,
                end: off + prefix + len,
            },
            Header::Line => match memchr::memchr2(b'\n', b'\0', frame) {
                None => Split::NeedMore,
                Some(i) => Split::Record {
                    consumed: off + i + 1,
                    start: off,
                    end: off + i,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config, split_all, split_chunked};
    use proptest::prelude::*;

    fn splitter() -> Box<dyn crate::plugin::Splitter> {
        build(&plugin_config("SyslogSplitter", ""), &build_context()).expect("valid config")()
    }

    fn counted(msg: &str) -> String {
        format!("{} {msg}", msg.len())
    }

    #[test]
    fn config_has_no_keys() {
        let errs = build(&plugin_config("SyslogSplitter", "x = 1"), &build_context())
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "x");
    }

    #[test]
    fn octet_counted_frames_may_hold_newlines() {
        let a = "<13>Nov 22 23:59:01 host user[123]: two\nlines";
        let b = "<165>1 - - - - - - x";
        let data = format!("{}{}{}", counted(a), counted(b), &counted(a)[..9]);
        let out = split_all(&mut *splitter(), data.as_bytes());
        assert_eq!(
            out.records,
            vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()]
        );
        assert_eq!(out.rest, &counted(a).as_bytes()[..9]);
        assert_eq!(out.skips, 0);
    }

    #[test]
    fn framing_is_chosen_per_frame() {
        let data = format!(
            "<13>line one\n{}\n<13>line two\r\n\n{}<13>0 is no length\0",
            counted("<13>counted\none"),
            counted("<13>counted two")
        );
        let out = split_all(&mut *splitter(), data.as_bytes());
        let want: Vec<&[u8]> = vec![
            b"<13>line one",
            b"<13>counted\none",
            b"<13>line two\r",
            b"<13>counted two",
            b"<13>0 is no length",
        ];
        assert_eq!(out.records, want);
        assert!(out.rest.is_empty() && out.skips == 0);
    }

    #[test]
    fn digits_without_a_space_are_a_line() {
        let out = split_all(&mut *splitter(), b"0 x\n123abc\n12");
        assert_eq!(out.records, vec![b"0 x".to_vec(), b"123abc".to_vec()]);
        assert_eq!(out.rest, b"12", "a length prefix may still follow");
        let out = split_all(&mut *splitter(), b"12345678901 x\n");
        assert_eq!(out.records, vec![b"12345678901 x".to_vec()]);
    }

    #[test]
    fn oversized_frames_are_skipped_across_reads() {
        let big = "x".repeat(70_000);
        let data = format!("{}{}", counted(&big), counted("<13>after"));
        for chunk in [data.len(), 1000, 7] {
            let out = split_chunked(&mut *splitter(), data.as_bytes(), chunk);
            assert_eq!(out.records, vec![b"<13>after".to_vec()], "chunk {chunk}");
            assert!(out.skips >= 1 && out.rest.is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_chunking_does_not_matter(
            data in prop::collection::vec(prop::sample::select(b"0123 \n<>x\0".to_vec()), 0..200),
            chunk in 1usize..20,
        ) {
            let whole = split_all(&mut *splitter(), &data);
            let chunked = split_chunked(&mut *splitter(), &data, chunk);
            prop_assert_eq!(whole.records, chunked.records);
        }

        #[test]
        fn never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..200), chunk in 1usize..20) {
            let _ = split_chunked(&mut *splitter(), &data, chunk);
        }
    }
}
