//! Heka's protobuf wire form (`message.proto`, heka.md §2.1), byte-compatible with what
//! Heka's gogoprotobuf code writes.
//!
//! Called by the `ProtobufDecoder` (every record from a `HekaFramingSplitter`), the
//! `ProtobufEncoder` and anything that persists or forwards messages in Heka's format.
//! Hand-written varint code: [`encode`] appends to a caller-owned buffer without
//! intermediate allocation, and [`decode`] allocates only the message's own strings,
//! byte arrays and value vectors.
//!
//! Writing follows Heka: fields in field-number order; `severity` always written (the
//! model cannot tell "unset" from 7, and both decode alike); optional strings only when
//! non-empty; `pid` when `Some`; each field's `name`, `value_type` and `representation`
//! always (as Heka's `NewField` does); repeated integers, doubles and bools packed.
//! Reading accepts packed and unpacked repeated scalars, skips unknown fields, and
//! rejects a missing or non-16-byte `uuid`, a missing `timestamp` or field `name`,
//! unknown `value_type`s, wrong wire types, truncated input and invalid UTF-8.

use crate::error::DecodeError;
use crate::message::{CompactString, Field, FieldValue, Message, Values, DEFAULT_SEVERITY};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Appends the protobuf encoding of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.reserve(64 + msg.payload.len());
    put_bytes(out, 1, &msg.uuid);
    put_key(out, 2, VARINT);
    put_varint(out, msg.timestamp as u64);
    put_str_opt(out, 3, &msg.msg_type);
    put_str_opt(out, 4, &msg.logger);
    put_key(out, 5, VARINT);
    put_varint(out, i64::from(msg.severity) as u64);
    put_str_opt(out, 6, &msg.payload);
    put_str_opt(out, 7, &msg.env_version);
    if let Some(pid) = msg.pid {
        put_key(out, 8, VARINT);
        put_varint(out, i64::from(pid) as u64);
    }
    put_str_opt(out, 9, &msg.hostname);
    for f in &msg.fields {
        put_key(out, 10, LEN);
        put_varint(out, field_len(f) as u64);
        encode_field(f, out);
    }
}

/// The protobuf encoding of `msg` in a fresh buffer.
pub fn encode_to_vec(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

fn encode_field(f: &Field, out: &mut Vec<u8>) {
    put_bytes(out, 1, f.name.as_bytes());
    put_key(out, 2, VARINT);
    put_varint(out, f.value.type_code() as u64);
    put_bytes(out, 3, f.representation.as_bytes());
    match &f.value {
        FieldValue::String(v) => v.iter().for_each(|s| put_bytes(out, 4, s.as_bytes())),
        FieldValue::Bytes(v) => v.iter().for_each(|b| put_bytes(out, 5, b)),
        FieldValue::Integer(v) if !v.is_empty() => {
            put_key(out, 6, LEN);
            put_varint(
                out,
                v.iter().map(|n| varint_len(*n as u64)).sum::<usize>() as u64,
            );
            v.iter().for_each(|n| put_varint(out, *n as u64));
        }
        FieldValue::Double(v) if !v.is_empty() => {
            put_key(out, 7, LEN);
            put_varint(out, 8 * v.len() as u64);
            v.iter()
                .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        }
        FieldValue::Bool(v) if !v.is_empty() => {
            put_key(out, 8, LEN);
            put_varint(out, v.len() as u64);
            out.extend(v.iter().map(|b| u8::from(*b)));
        }
        _ => {}
    }
}

/// Encoded size of a `Field` message body.
fn field_len(f: &Field) -> usize {
    let bytes_len = |n: usize| 1 + varint_len(n as u64) + n;
    let values = match &f.value {
        FieldValue::String(v) => v.iter().map(|s| bytes_len(s.len())).sum(),
        FieldValue::Bytes(v) => v.iter().map(|b| bytes_len(b.len())).sum(),
        FieldValue::Integer(v) if !v.is_empty() => {
            bytes_len(v.iter().map(|n| varint_len(*n as u64)).sum())
        }
        FieldValue::Double(v) if !v.is_empty() => bytes_len(8 * v.len()),
        FieldValue::Bool(v) if !v.is_empty() => bytes_len(v.len()),
        _ => 0,
    };
    bytes_len(f.name.len()) + 2 + bytes_len(f.representation.len()) + values
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str_opt(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, field, s.as_bytes());
    }
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A read cursor over a protobuf buffer; every read checks bounds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in 0..10 {
            let b = *self.buf.get(self.pos).ok_or_else(truncated)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * shift);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::new("protobuf: varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let s = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| truncated())?)
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a key, returning (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            w => Err(DecodeError::new(format!(
                "protobuf: unsupported wire type {w}"
            ))),
        }
    }
}

fn truncated() -> DecodeError {
    DecodeError::new("protobuf: truncated input")
}

fn wrong_wire(what: &str, wire: u8) -> DecodeError {
    DecodeError::new(format!("protobuf: {what} has wrong wire type {wire}"))
}

fn utf8(b: &[u8], what: &str) -> Result<String, DecodeError> {
    text(b, what).map(str::to_owned)
}

/// A short header string: stored inline in the message when it fits, without allocating.
fn compact(b: &[u8], what: &str) -> Result<CompactString, DecodeError> {
    text(b, what).map(CompactString::from)
}

fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b)
        .map_err(|_| DecodeError::new(format!("protobuf: {what} is not valid UTF-8")))
}

/// Decodes a Heka protobuf message.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let mut m = Message {
        severity: DEFAULT_SEVERITY,
        ..Message::default()
    };
    let (mut have_uuid, mut have_ts) = (false, false);
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => {
                let u = r.len_delimited()?;
                m.uuid = u.try_into().map_err(|_| {
                    DecodeError::new(format!("protobuf: uuid is {} bytes, not 16", u.len()))
                })?;
                have_uuid = true;
            }
            (2, VARINT) => {
                m.timestamp = r.varint()? as i64;
                have_ts = true;
            }
            (3, LEN) => m.msg_type = compact(r.len_delimited()?, "type")?,
            (4, LEN) => m.logger = compact(r.len_delimited()?, "logger")?,
            (5, VARINT) => m.severity = r.varint()? as i32,
            (6, LEN) => m.payload = utf8(r.len_delimited()?, "payload")?,
            (7, LEN) => m.env_version = compact(r.len_delimited()?, "env_version")?,
            (8, VARINT) => m.pid = Some(r.varint()? as i32),
            (9, LEN) => m.hostname = compact(r.len_delimited()?, "hostname")?,
            (10, LEN) => m.fields.push(decode_field(r.len_delimited()?)?),
            (1..=10, w) => return Err(wrong_wire("message header", w)),
            (_, w) => r.skip(w)?,
        }
    }
    match (have_uuid, have_ts) {
        (true, true) => Ok(m),
        (false, _) => Err(DecodeError::new("protobuf: required uuid missing")),
        (_, false) => Err(DecodeError::new("protobuf: required timestamp missing")),
    }
}

/// The value arrays of a field while it is being read; `value_type` picks one at the end.
#[derive(Default)]
struct RawField {
    name: Option<CompactString>,
    value_type: u64,
    representation: CompactString,
    strings: Values<String>,
    bytes: Values<Vec<u8>>,
    integers: Values<i64>,
    doubles: Values<f64>,
    bools: Values<bool>,
}

fn decode_field(buf: &[u8]) -> Result<Field, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let mut f = RawField::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => f.name = Some(compact(r.len_delimited()?, "field name")?),
            (2, VARINT) => f.value_type = r.varint()?,
            (3, LEN) => f.representation = compact(r.len_delimited()?, "representation")?,
            (4, LEN) => f.strings.push(utf8(r.len_delimited()?, "value_string")?),
            (5, LEN) => f.bytes.push(r.len_delimited()?.to_vec()),
            (6, VARINT) => f.integers.push(r.varint()? as i64),
            (6, LEN) => read_packed(&mut r, |p| {
                f.integers.push(p.varint()? as i64);
                Ok(())
            })?,
            (7, FIXED64) => f.doubles.push(f64::from_bits(r.fixed64()?)),
            (7, LEN) => read_packed(&mut r, |p| {
                f.doubles.push(f64::from_bits(p.fixed64()?));
                Ok(())
            })?,
            (8, VARINT) => f.bools.push(r.varint()? != 0),
            (8, LEN) => read_packed(&mut r, |p| {
                f.bools.push(p.varint()? != 0);
                Ok(())
            })?,
            (1..=8, w) => return Err(wrong_wire("field", w)),
            (_, w) => r.skip(w)?,
        }
    }
    f.finish()
}

fn read_packed<'a>(
    r: &mut Reader<'a>,
    mut each: impl FnMut(&mut Reader<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut p = Reader {
        buf: r.len_delimited()?,
        pos: 0,
    };
    while !p.done() {
        each(&mut p)?;
    }
    Ok(())
}

impl RawField {
    fn finish(self) -> Result<Field, DecodeError> {
        let name = self
            .name
            .ok_or_else(|| DecodeError::new("protobuf: required field name missing"))?;
        let value = match self.value_type {
            0 => FieldValue::String(self.strings),
            1 => FieldValue::Bytes(self.bytes),
            2 => FieldValue::Integer(self.integers),
            3 => FieldValue::Double(self.doubles),
            4 => FieldValue::Bool(self.bools),
            t => {
                return Err(DecodeError::new(format!(
                    "protobuf: field {name:?} has unknown value_type {t}"
                )))
            }
        };
        Ok(Field {
            name,
            representation: self.representation,
            value,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::smallvec;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Message {
        let mut m = Message {
            uuid: [7; 16],
            timestamp: 1_234_567_890,
            ..Message::default()
        };
        m.msg_type = "t".into();
        m.logger = "l".into();
        m.severity = 3;
        m.payload = "héllo".into();
        m.env_version = "1".into();
        m.pid = Some(-5);
        m.hostname = "h".into();
        m.add_field(Field::string("s", "x").with_representation("r"));
        m.add_field(Field::new(
            "b",
            FieldValue::Bytes(smallvec![vec![0, 255], vec![]]),
        ));
        m.add_field(Field::new(
            "i",
            FieldValue::Integer(smallvec![-1, 0, i64::MAX]),
        ));
        m.add_field(Field::new("d", FieldValue::Double(smallvec![1.5, -0.0])));
        m.add_field(Field::new("o", FieldValue::Bool(smallvec![true, false])));
        m.add_field(Field::new("e", FieldValue::Integer(smallvec![])));
        m
    }

    #[test]
    fn round_trip_sample() {
        let m = sample();
        let bytes = encode_to_vec(&m);
        assert_eq!(decode(&bytes), Ok(m));
    }

    #[test]
    fn varint_len_matches_encoding() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX, 1 << 63] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn missing_severity_defaults_to_7_and_unpacked_values_are_accepted() {
        let mut b = vec![0x0A, 16];
        b.extend_from_slice(&[1; 16]);
        b.extend_from_slice(&[0x10, 0x05]); // timestamp 5
                                            // field: name "n", value_type INTEGER, unpacked 3 and 4
        b.extend_from_slice(&[0x52, 9, 0x0A, 1, b'n', 0x10, 2, 0x30, 3, 0x30, 4]);
        let m = decode(&b).expect("valid");
        assert_eq!(m.severity, 7);
        assert_eq!(m.timestamp, 5);
        assert_eq!(m.fields[0].value, FieldValue::Integer(smallvec![3, 4]));
    }

    #[test]
    fn rejects_bad_input() {
        let good = encode_to_vec(&sample());
        for cut in [1, 5, 17, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[0x0A, 2, 1, 2, 0x10, 1]).is_err(), "short uuid");
        let mut no_ts = vec![0x0A, 16];
        no_ts.extend_from_slice(&[0; 16]);
        assert!(decode(&no_ts).is_err(), "missing timestamp");
        let mut bad_utf8 = no_ts.clone();
        bad_utf8.extend_from_slice(&[0x10, 1, 0x1A, 1, 0xFF]);
        assert!(decode(&bad_utf8).is_err(), "invalid utf-8 type");
        let mut bad_wire = no_ts.clone();
        bad_wire.extend_from_slice(&[0x10, 1, 0x1B]);
        assert!(decode(&bad_wire).is_err(), "group wire type");
        let mut bad_type = no_ts;
        bad_type.extend_from_slice(&[0x10, 1, 0x52, 5, 0x0A, 1, b'n', 0x10, 9]);
        assert!(decode(&bad_type).is_err(), "unknown value_type");
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut b = encode_to_vec(&sample());
        b.extend_from_slice(&[
            0x58, 1, 0x62, 1, 0, 0x69, 0, 0, 0, 0, 0, 0, 0, 0, 0x6D, 0, 0, 0, 0,
        ]);
        assert_eq!(decode(&b), Ok(sample()));
    }

    pub(crate) fn arb_field() -> impl Strategy<Value = Field> {
        let value = prop_oneof![
            prop::collection::vec(".{0,8}", 0..3).prop_map(|v| FieldValue::String(v.into())),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..3)
                .prop_map(|v| FieldValue::Bytes(v.into())),
            prop::collection::vec(any::<i64>(), 0..3).prop_map(|v| FieldValue::Integer(v.into())),
            prop::collection::vec(
                any::<f64>().prop_filter("NaN never compares equal", |d| !d.is_nan()),
                0..3
            )
            .prop_map(|v| FieldValue::Double(v.into())),
            prop::collection::vec(any::<bool>(), 0..3).prop_map(|v| FieldValue::Bool(v.into())),
        ];
        (".{0,6}", ".{0,4}", value).prop_map(|(name, representation, value)| Field {
            name: name.into(),
            representation: representation.into(),
            value,
        })
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        (
            any::<[u8; 16]>(),
            any::<i64>(),
            (".{0,8}", ".{0,8}", any::<i32>(), ".{0,16}"),
            (".{0,4}", any::<Option<i32>>(), ".{0,8}"),
            prop::collection::vec(arb_field(), 0..4),
        )
            .prop_map(
                |(uuid, timestamp, (t, l, severity, p), (e, pid, h), fields)| Message {
                    uuid,
                    timestamp,
                    msg_type: t.into(),
                    logger: l.into(),
                    severity,
                    payload: p,
                    env_version: e.into(),
                    pid,
                    hostname: h.into(),
                    fields,
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn encode_decode_round_trips(m in arb_message()) {
            let bytes = encode_to_vec(&m);
            prop_assert_eq!(decode(&bytes), Ok(m));
        }

        #[test]
        fn decode_of_mutated_encoding_never_panics(m in arb_message(), i in any::<usize>(), b in any::<u8>()) {
            let mut bytes = encode_to_vec(&m);
            let n = bytes.len();
            bytes[i % n] = b;
            let _ = decode(&bytes);
        }
    }
}
