//! The statsd line protocol parser, as Etsy statsd 0.9 reads it (`stats.js` handlePacket,
//! `lib/helpers.js` is_valid_packet). Called by `StatsdInput` for every datagram or TCP
//! line, and by the benchmarks.
//!
//! The parser never allocates per metric: it yields borrowed [`Metric`]s through a
//! callback. A key only needs rewriting (into a scratch buffer kept by the [`Parser`])
//! when it carries tags or characters that Etsy's key sanitising changes.
//!
//! Protocol, per non-empty `\n`-separated line:
//! `key[:value|type[|@rate]][:value|type...][|#tag:v,tag2]`. The key is followed by one
//! or more `value|type[|@rate]` groups, each validated and counted on its own. Types
//! `ms` (timer), `g` (gauge, `+N`/`-N` deltas), `s` (set); anything else, including `c`
//! and `h`, is a counter. DogStatsD tags become Graphite tagged names `key;tag=v;tag2`.

/// What one `value|type[|@rate]` group adds to the aggregator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `c`, `h` and every unknown type: the counter grows by `value * (1 / rate)`.
    Counter(f64),
    /// `ms`: one sample; the timer's count grows by `1 / rate`.
    Timer(f64),
    /// `g`: sets the gauge, or adds to it when `delta` (a leading `+`/`-`) and the
    /// gauge already holds a non-zero value (Etsy's rule).
    Gauge {
        /// The number, sign included.
        value: f64,
        /// True when the value text starts with `+` or `-`.
        delta: bool,
    },
    /// `s`: a member, as raw bytes (an empty member is `0`, as Etsy).
    Set(&'a [u8]),
}

/// One parsed metric, borrowing the packet (or the parser's scratch key buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    /// The sanitised key, with any tags appended as `;tag=v`. Always ASCII.
    pub key: &'a str,
    /// What to add.
    pub value: Value<'a>,
    /// The `@rate` sample rate, 1 when absent; always > 0.
    pub sample_rate: f64,
}

/// What one call to [`Parser::parse_packet`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParseStats {
    /// Non-empty lines (Etsy's `metrics_received`).
    pub lines: u64,
    /// Valid `value|type` groups handed to the callback.
    pub metrics: u64,
    /// Invalid groups (Etsy's `bad_lines_seen`: counted per group, not per line).
    pub bad_lines: u64,
}

impl std::ops::AddAssign for ParseStats {
    fn add_assign(&mut self, o: ParseStats) {
        self.lines += o.lines;
        self.metrics += o.metrics;
        self.bad_lines += o.bad_lines;
    }
}

/// A reusable parser; holds scratch buffers so that parsing does not allocate.
#[derive(Debug, Default)]
pub struct Parser {
    raw: Vec<u8>,
    key: Vec<u8>,
}

impl Parser {
    /// A parser with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one packet (one datagram, or one or more complete TCP lines), calling `f`
    /// for every valid metric. Never panics; bad groups are counted in the result.
    pub fn parse_packet(&mut self, buf: &[u8], f: &mut impl FnMut(Metric<'_>)) -> ParseStats {
        let mut st = ParseStats::default();
        let mut start = 0;
        while start <= buf.len() {
            let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
            let line = &buf[start..end];
            if !line.is_empty() {
                st.lines += 1;
                self.parse_line(line, &mut st, f);
            }
            start = end + 1;
        }
        st
    }

    fn parse_line(&mut self, line: &[u8], st: &mut ParseStats, f: &mut impl FnMut(Metric<'_>)) {
        let (body, tags) = split_tags(line);
        let colon = body.iter().position(|&b| b == b':').unwrap_or(body.len());
        let key = self.key(&body[..colon], tags);
        if colon == body.len() {
            // Etsy pushes "1" as the only group, which then lacks a type: a bad line.
            return emit(key, b"1", st, f);
        }
        for group in body[colon + 1..].split(|&b| b == b':') {
            emit(key, group, st, f);
        }
    }

    /// The sanitised key: borrowed from the packet when nothing changes, otherwise built
    /// in the scratch buffer.
    fn key<'s>(&'s mut self, raw: &'s [u8], tags: Option<&[u8]>) -> &'s str {
        if tags.is_none() && raw.iter().all(|&b| is_key_byte(b)) {
            return ascii_str(raw);
        }
        self.raw.clear();
        self.raw.extend_from_slice(raw);
        if let Some(tags) = tags {
            for tag in tags.split(|&b| b == b',') {
                self.raw.push(b';');
                push_tag(&mut self.raw, tag);
            }
        }
        if self.raw.iter().all(|&b| is_key_byte(b)) {
            return ascii_str(&self.raw);
        }
        self.key.clear();
        sanitize(&self.raw, &mut self.key);
        ascii_str(&self.key)
    }
}

/// A key made only of [`is_key_byte`] bytes as `&str`, without a second UTF-8 scan.
#[inline]
#[allow(unsafe_code)] // from_utf8_unchecked on checked ASCII.
fn ascii_str(key: &[u8]) -> &str {
    debug_assert!(key.iter().all(|&b| is_key_byte(b)));
    // SAFETY: every caller passes bytes that passed `is_key_byte` (raw keys) or came out
    // of `sanitize`, which only emits such bytes; all of them are ASCII, hence UTF-8.
    unsafe { std::str::from_utf8_unchecked(key) }
}

fn emit(key: &str, group: &[u8], st: &mut ParseStats, f: &mut impl FnMut(Metric<'_>)) {
    match parse_group(group) {
        Some((value, sample_rate)) => {
            st.metrics += 1;
            f(Metric {
                key,
                value,
                sample_rate,
            });
        }
        None => st.bad_lines += 1,
    }
}

/// Splits `body|#tags|#ignored`: Etsy keeps what precedes the first `|#` and takes tags
/// from between the first and second `|#` (none when that part is empty).
fn split_tags(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    let Some(i) = find_pipe_hash(line) else {
        return (line, None);
    };
    let rest = &line[i + 2..];
    let tags = &rest[..find_pipe_hash(rest).unwrap_or(rest.len())];
    (&line[..i], (!tags.is_empty()).then_some(tags))
}

fn find_pipe_hash(s: &[u8]) -> Option<usize> {
    // Lines are short: a plain scan beats setting up a vectorised search.
    s.windows(2).position(|w| w == b"|#")
}

/// Etsy's tag rewrite: the first `;` becomes `_`, then the first `:` becomes `=`.
fn push_tag(out: &mut Vec<u8>, tag: &[u8]) {
    let start = out.len();
    out.extend_from_slice(tag);
    let t = &mut out[start..];
    if let Some(i) = t.iter().position(|&b| b == b';') {
        t[i] = b'_';
    }
    if let Some(i) = t.iter().position(|&b| b == b':') {
        t[i] = b'=';
    }
}

/// Bytes Etsy's key sanitising keeps unchanged: `[a-zA-Z_\-0-9.;=]`, as a lookup table.
static KEY_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b';' | b'=');
        b += 1;
    }
    t
};

#[inline]
fn is_key_byte(b: u8) -> bool {
    KEY_BYTES[b as usize]
}

/// JavaScript's `\s` (what `String.prototype.trim` and `/\s+/` treat as blank).
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Etsy's key sanitising, on the text as Node decodes it (invalid UTF-8 → U+FFFD):
/// runs of whitespace → `_`, `/` → `-`, then anything outside `[a-zA-Z_\-0-9.;=]` dropped.
pub fn sanitize(src: &[u8], out: &mut Vec<u8>) {
    let mut in_space = false;
    for chunk in src.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_js_space(c) {
                if !in_space {
                    out.push(b'_');
                }
                in_space = true;
                continue;
            }
            in_space = false;
            if c == '/' {
                out.push(b'-');
            } else if c.is_ascii() && is_key_byte(c as u8) {
                out.push(c as u8);
            }
        }
        if !chunk.invalid().is_empty() {
            in_space = false;
        }
    }
}

/// Validates one `value|type[|@rate]` group exactly as Etsy's `is_valid_packet` and turns
/// it into a value and a sample rate. `None` is a bad line.
fn parse_group(group: &[u8]) -> Option<(Value<'_>, f64)> {
    let mut fields = group.split(|&b| b == b'|');
    let raw_value = fields.next().unwrap_or_default();
    let raw_type = fields.next()?;
    let rate = match fields.next() {
        Some(r) => sample_rate(r)?,
        None => 1.0,
    };
    // Validation looks at the type as written; dispatch at the trimmed type (Etsy).
    let number = match raw_type {
        b"s" => None,
        b"ms" => Some(js_number_nonempty(raw_value).filter(|n| *n >= 0.0)?),
        _ => Some(js_number_nonempty(raw_value)?),
    };
    let ty = match raw_type {
        b"c" | b"ms" | b"g" | b"s" => raw_type,
        _ => trim_js(raw_type),
    };
    let value = match (ty, number) {
        (b"s", _) | (_, None) => Value::Set(if raw_value.is_empty() {
            b"0"
        } else {
            raw_value
        }),
        (b"ms", Some(n)) => Value::Timer(n),
        (b"g", Some(n)) => Value::Gauge {
            value: n,
            delta: matches!(raw_value.first(), Some(b'+' | b'-')),
        },
        (_, Some(n)) => Value::Counter(n),
    };
    Some((value, rate))
}

/// `@rate`: Etsy requires `@` plus a non-negative JS number, then uses the number formed
/// by the leading `[0-9.]` run. Where Etsy would throw (no such run) or divide by zero
/// (rate 0), hekate counts a bad line instead.
fn sample_rate(r: &[u8]) -> Option<f64> {
    let num = r.strip_prefix(b"@").filter(|n| !n.is_empty())?;
    if num[0] == b'-' || js_number_nonempty(num).is_none() {
        return None;
    }
    let run = num
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    js_number(&num[..run])
        .filter(|r| *r > 0.0 && run > 0)
        .filter(|r| r.is_finite())
}

fn trim_js(s: &[u8]) -> &[u8] {
    match std::str::from_utf8(s) {
        Ok(t) => t.trim_matches(is_js_space).as_bytes(),
        Err(_) => s,
    }
}

/// Etsy's `isNumber`: a non-empty string whose JS `Number()` is not NaN.
fn js_number_nonempty(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    js_number(s)
}

/// JavaScript's `Number(string)`: `None` for NaN. Blank → 0; `0x`/`0o`/`0b` literals;
/// decimal literals with optional sign, fraction and exponent; `Infinity`.
pub fn js_number(s: &[u8]) -> Option<f64> {
    if let Some(n) = fast_decimal(s) {
        return Some(n);
    }
    let s = std::str::from_utf8(s).ok()?.trim_matches(is_js_space);
    if s.is_empty() {
        return Some(0.0);
    }
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        let radix = match b[1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            b'b' | b'B' => 2,
            _ => 0,
        };
        if radix != 0 {
            return radix_number(&s[2..], radix);
        }
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let negative = s.starts_with('-');
    if unsigned == "Infinity" {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    let decimal_chars = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-');
    if !unsigned.bytes().all(decimal_chars) || unsigned.starts_with(['+', '-']) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// `[-]digits[.digits]` with at most 15 digits, the common case: the mantissa and the
/// power of ten are exact in f64, so one division rounds correctly (Clinger's fast path).
#[inline]
fn fast_decimal(s: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let (mut mantissa, mut scale, mut seen_dot, mut n_digits) = (0u64, 0usize, false, 0);
    for &d in digits {
        match d {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(d - b'0');
                n_digits += 1;
                scale += usize::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if n_digits == 0 || n_digits > 15 || (seen_dot && scale == 0) {
        return None;
    }
    let v = mantissa as f64 / POW10[scale];
    Some(if negative { -v } else { v })
}

fn radix_number(digits: &str, radix: u32) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0.0f64, |n, c| {
        c.to_digit(radix)
            .map(|d| n * f64::from(radix) + f64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Own {
        C(f64),
        T(f64),
        G(f64, bool),
        S(Vec<u8>),
    }

    fn parse(buf: &[u8]) -> (Vec<(String, Own, f64)>, ParseStats) {
        let mut out = Vec::new();
        let st = Parser::new().parse_packet(buf, &mut |m: Metric<'_>| {
            let v = match m.value {
                Value::Counter(n) => Own::C(n),
                Value::Timer(n) => Own::T(n),
                Value::Gauge { value, delta } => Own::G(value, delta),
                Value::Set(s) => Own::S(s.to_vec()),
            };
            out.push((m.key.to_string(), v, m.sample_rate));
        });
        (out, st)
    }

    fn one(buf: &str) -> (String, Own, f64) {
        let (mut v, st) = parse(buf.as_bytes());
        assert_eq!((v.len(), st.bad_lines), (1, 0), "{buf:?}: {v:?}");
        v.remove(0)
    }

    fn bad(buf: &str) {
        let (v, st) = parse(buf.as_bytes());
        assert!(v.is_empty(), "{buf:?} should be bad, got {v:?}");
        assert_eq!(st.bad_lines, 1, "{buf:?}");
    }

    #[test]
    fn every_type() {
        assert_eq!(one("a.b:5|c"), ("a.b".into(), Own::C(5.0), 1.0));
        assert_eq!(one("t:320|ms"), ("t".into(), Own::T(320.0), 1.0));
        assert_eq!(one("g:333|g"), ("g".into(), Own::G(333.0, false), 1.0));
        assert_eq!(one("s:765|s"), ("s".into(), Own::S(b"765".to_vec()), 1.0));
        // `h` and unknown types are counters, as in Etsy.
        assert_eq!(one("h:7|h"), ("h".into(), Own::C(7.0), 1.0));
        assert_eq!(one("x:2|zz"), ("x".into(), Own::C(2.0), 1.0));
        // An empty type is the counter branch too.
        assert_eq!(one("e:3|"), ("e".into(), Own::C(3.0), 1.0));
    }

    #[test]
    fn sample_rates() {
        assert_eq!(one("a:1|c|@0.1"), ("a".into(), Own::C(1.0), 0.1));
        assert_eq!(one("t:5|ms|@0.5"), ("t".into(), Own::T(5.0), 0.5));
        assert_eq!(one("a:1|c|@.25"), ("a".into(), Own::C(1.0), 0.25));
        // Only the leading [0-9.] run counts: 1.5e-1 is rate 1.5.
        assert_eq!(one("a:1|c|@1.5e-1"), ("a".into(), Own::C(1.0), 1.5));
        // Extra fields after the rate are ignored.
        assert_eq!(one("a:1|c|@0.5|junk"), ("a".into(), Own::C(1.0), 0.5));
        for b in [
            "a:1|c|",
            "a:1|c|0.5",
            "a:1|c|@",
            "a:1|c|@-0.5",
            "a:1|c|@x",
            "a:1|c|@0",
            "a:1|c|@ 1",
            "a:1|c|@Infinity",
        ] {
            bad(b);
        }
    }

    #[test]
    fn gauge_deltas() {
        assert_eq!(one("g:+4|g"), ("g".into(), Own::G(4.0, true), 1.0));
        assert_eq!(one("g:-4|g"), ("g".into(), Own::G(-4.0, true), 1.0));
        assert_eq!(one("g:-0.5|g"), ("g".into(), Own::G(-0.5, true), 1.0));
        bad("g:x|g");
        bad("g:|g");
    }

    #[test]
    fn multi_line_and_multi_value() {
        let (v, st) = parse(b"a:1|c\n\nb:2|ms\nk:1|c:2|ms:3|g\n");
        assert_eq!(
            st,
            ParseStats {
                lines: 3,
                metrics: 5,
                bad_lines: 0
            }
        );
        let keys: Vec<_> = v.iter().map(|m| (m.0.as_str(), m.1.clone())).collect();
        assert_eq!(
            keys,
            [
                ("a", Own::C(1.0)),
                ("b", Own::T(2.0)),
                ("k", Own::C(1.0)),
                ("k", Own::T(2.0)),
                ("k", Own::G(3.0, false)),
            ]
        );
        // One bad group among good ones is counted alone.
        let (v, st) = parse(b"k:1|c:x|c:2|c");
        assert_eq!((v.len(), st.bad_lines), (2, 1));
    }

    #[test]
    fn tags_become_graphite_tags() {
        assert_eq!(one("foo:1|c|#env:prod").0, "foo;env=prod");
        assert_eq!(
            one("foo:1|c|#env:prod,region:eu,solo").0,
            "foo;env=prod;region=eu;solo"
        );
        // Only the first `;` and `:` of a tag are rewritten; a second `|#` part is ignored.
        assert_eq!(one("foo:1|c|#a;b;c:d:e|#x:y").0, "foo;a_b;c=de");
        // An empty tag part adds nothing.
        assert_eq!(one("foo:1|c|#").0, "foo");
        // Rate and tags together.
        assert_eq!(
            one("foo:2|c|@0.5|#a:b"),
            ("foo;a=b".into(), Own::C(2.0), 0.5)
        );
    }

    #[test]
    fn key_sanitising() {
        assert_eq!(one("a b\t\tc:1|c").0, "a_b_c");
        assert_eq!(one("a/b:1|c").0, "a-b");
        assert_eq!(one("a$b%c!(d):1|c").0, "abcd");
        assert_eq!(one("caf\u{e9}\u{a0}\u{3000}x:1|c").0, "caf_x");
        assert_eq!(one("a \u{e9} b:1|c").0, "a__b");
        assert_eq!(one("a\u{ff}\u{fe}b:1|c").0, "ab");
        let (v, _) = parse(b"a\xff \xfeb:1|c");
        assert_eq!(v[0].0, "a_b");
        assert_eq!(one("a\r:1|c").0, "a_");
    }

    #[test]
    fn js_number_rules() {
        assert_eq!(one("a:0x10|c").1, Own::C(16.0));
        assert_eq!(one("a:0b11|c").1, Own::C(3.0));
        assert_eq!(one("a:0o17|c").1, Own::C(15.0));
        assert_eq!(one("a:1e3|c").1, Own::C(1000.0));
        assert_eq!(one("a: 12 |c").1, Own::C(12.0));
        assert_eq!(one("a:   |c").1, Own::C(0.0));
        assert_eq!(one("a:+5|c").1, Own::C(5.0));
        assert_eq!(one("a:5.|c").1, Own::C(5.0));
        assert_eq!(one("a:Infinity|c").1, Own::C(f64::INFINITY));
        // The fast path agrees with the general parser.
        for t in [
            "0.1",
            "-0.3",
            "123.456",
            "999999999999999",
            "1.00000000000001",
            "5.",
            "-7",
        ] {
            assert_eq!(js_number(t.as_bytes()), t.parse::<f64>().ok(), "{t}");
        }
        assert_eq!(one("a:-0|c").1, Own::C(-0.0));
        for b in [
            "a:inf|c",
            "a:nan|c",
            "a:1_000|c",
            "a:0x|c",
            "a:-0x10|c",
            "a:1e|c",
            "a:.|c",
            "a:++1|c",
        ] {
            bad(b);
        }
    }

    #[test]
    fn timers_must_be_non_negative_unless_type_is_padded() {
        bad("t:-1|ms");
        bad("t:x|ms");
        // Etsy validates the raw type but dispatches on the trimmed one.
        assert_eq!(one("t:-1|ms\r").1, Own::T(-1.0));
        assert_eq!(one("c:1|c\r").1, Own::C(1.0));
    }

    #[test]
    fn sets_take_anything() {
        assert_eq!(one("s:|s").1, Own::S(b"0".to_vec()));
        assert_eq!(one("s:hello world|s").1, Own::S(b"hello world".to_vec()));
        // A padded `s` is validated as a number first.
        bad("s:abc| s");
        assert_eq!(one("s:12| s").1, Own::S(b"12".to_vec()));
    }

    #[test]
    fn bad_lines() {
        bad("nocolon");
        bad("a:1");
        bad("a:1c");
        bad(":");
        let (v, st) = parse(b"");
        assert_eq!((v.len(), st), (0, ParseStats::default()));
        let (v, st) = parse(b"\n\n\n");
        assert_eq!((v.len(), st.lines), (0, 0));
    }

    /// The same packet sent to Etsy statsd 0.9.0 gave `bad_lines_seen` 11,
    /// `metrics_received` 12, `stats_counts.k` 3 and `stats_counts.ok` 1.
    #[test]
    fn bad_line_count_matches_etsy() {
        let packet = "nocolon\na:1\na:x|c\nt:-1|ms\na:1|c|@-1\na:1|c|@x\ng:|g\nk:1|c:x|c:2|c\n\
                      a:inf|c\na:1|c|\ns:abc| s\nok:1|c\n";
        let (v, st) = parse(packet.as_bytes());
        assert_eq!((st.lines, st.bad_lines, st.metrics), (12, 11, 3));
        let keys: Vec<_> = v.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(keys, ["k", "k", "ok"]);
    }

    #[test]
    fn empty_key_is_allowed() {
        assert_eq!(one(":1|c").0, "");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let (_, st) = parse(&bytes);
            proptest::prop_assert!(st.metrics + st.bad_lines >= st.lines);
        }

        #[test]
        fn never_panics_on_protocol_soup(s in "[a-z:|@#,;.+\\-0-9 \n]{0,120}") {
            let (v, _) = parse(s.as_bytes());
            for (k, _, rate) in v {
                proptest::prop_assert!(k.bytes().all(is_key_byte));
                proptest::prop_assert!(rate > 0.0);
            }
        }
    }
}
