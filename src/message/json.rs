//! The one JSON form of a message that people read and write.
//!
//! Written by the `JsonEncoder` ([`write_json`]) and read by the `JsonDecoder`
//! ([`from_json`]); tests and tools use it to show messages. The form:
//!
//! ```json
//! {"Uuid":"0b7b1bd4-6cbb-4b52-8b3c-3a3c1e4f1f50","Timestamp":1700000000000000000,
//!  "Type":"app.log","Logger":"app","Severity":6,"Payload":"hi","EnvVersion":"",
//!  "Pid":42,"Hostname":"web1",
//!  "Fields":{"status":200,"path":"/","tags":["a","b"],
//!            "latency":{"value":1.5,"representation":"ms"},
//!            "raw":{"value":"AAE=","type":"bytes"}}}
//! ```
//!
//! * Reading: every key is optional. A missing `Uuid` gets a fresh v4, a missing
//!   `Timestamp` the current time, a missing `Severity` 7. `Uuid` is a UUID string
//!   (hyphenated or not); `Timestamp` is integer nanoseconds or an RFC 3339 string. Unknown
//!   top-level keys are rejected (they are usually typos).
//! * Field values: a JSON string is a STRING field, an integer an INTEGER, a number with a
//!   fraction or exponent a DOUBLE, a bool a BOOL. An array is the value array and must be
//!   of one kind (integers mixed with other numbers become DOUBLE); an empty array is an
//!   empty STRING field. `null`, nested arrays and other objects are errors.
//! * Object form `{"value": V, "type": T, "representation": R}` (only `value` required):
//!   `type` is one of `string`, `bytes`, `integer`, `double`, `bool` and forces the type;
//!   `bytes` values are standard base64 strings; `double` values may also be the strings
//!   `"NaN"`, `"Infinity"`, `"-Infinity"`.
//! * Writing: every header is written (`Pid` only when set); a one-element value array is
//!   written as a scalar; the object form is used only when needed (a representation, a
//!   BYTES field, an empty non-STRING array, a non-finite double).
//! * Repeated field names are written as repeated keys of `Fields`, in order; the reader
//!   keeps every occurrence in order, so the form round-trips (other JSON tools may keep
//!   only the last).

use std::fmt;
use std::io::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::DecodeError;
use crate::message::{now_ns, smallvec, Field, FieldValue, Message, Values, DEFAULT_SEVERITY};

/// The JSON form of `msg` (no trailing newline).
pub fn to_json(msg: &Message) -> String {
    let mut out = Vec::with_capacity(192 + msg.payload.len());
    write_json(msg, &mut out);
    // Only valid UTF-8 is ever written; the lossy path is never taken.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the JSON form of `msg` to `out` (no trailing newline).
pub fn write_json(msg: &Message, out: &mut Vec<u8>) {
    // One reservation for the usual case (nothing to escape); escapes grow it as needed.
    out.reserve(256 + msg.payload.len() + msg.fields.len() * 48);
    out.extend_from_slice(b"{\"Uuid\":\"");
    let mut ubuf = uuid::Uuid::encode_buffer();
    let u = uuid::Uuid::from_bytes(msg.uuid).hyphenated();
    out.extend_from_slice(u.encode_lower(&mut ubuf).as_bytes());
    out.extend_from_slice(b"\",\"Timestamp\":");
    push_int(out, msg.timestamp);
    push_key_str(out, b",\"Type\":", &msg.msg_type);
    push_key_str(out, b",\"Logger\":", &msg.logger);
    out.extend_from_slice(b",\"Severity\":");
    push_int(out, msg.severity);
    push_key_str(out, b",\"Payload\":", &msg.payload);
    push_key_str(out, b",\"EnvVersion\":", &msg.env_version);
    if let Some(pid) = msg.pid {
        out.extend_from_slice(b",\"Pid\":");
        push_int(out, pid);
    }
    push_key_str(out, b",\"Hostname\":", &msg.hostname);
    out.extend_from_slice(b",\"Fields\":{");
    for (i, f) in msg.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, f);
    }
    out.extend_from_slice(b"}}");
}

fn push_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends `key` (already quoted, with its comma and colon) and `v` as a JSON string.
fn push_key_str(out: &mut Vec<u8>, key: &[u8], v: &str) {
    out.extend_from_slice(key);
    push_str(out, v);
}

/// Appends `s` as a JSON string literal. Bytes that need no escape are found eight at
/// a time and copied in runs; this is the hot loop of every JSON-encoding output.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    out.push(b'"');
    while let Some(i) = first_escape(rest) {
        out.extend_from_slice(&rest[..i]);
        if let Some((esc, len)) = escape(rest[i]) {
            out.extend_from_slice(&esc[..len]);
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The index of the first byte of `b` that JSON must escape.
fn first_escape(b: &[u8]) -> Option<usize> {
    let (words, tail) = b.as_chunks::<8>();
    for (n, w) in words.iter().enumerate() {
        if needs_escape(u64::from_le_bytes(*w)) {
            return w
                .iter()
                .position(|&x| ESCAPED[usize::from(x)])
                .map(|i| n * 8 + i);
        }
    }
    let at = words.len() * 8;
    tail.iter()
        .position(|&x| ESCAPED[usize::from(x)])
        .map(|i| at + i)
}

/// Bytes JSON must escape in a string: controls, `"` and `\\`.
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any of the eight bytes in `w` is a control byte (< 0x20), `"` or `\`
/// (the classic "has a zero byte" / "has a byte less than n" word tricks).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

/// The JSON escape of one byte and its length, or `None` when it stands as it is.
fn escape(b: u8) -> Option<([u8; 6], usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = |c: u8| Some(([b'\\', c, 0, 0, 0, 0], 2));
    match b {
        b'"' => short(b'"'),
        b'\\' => short(b'\\'),
        b'\n' => short(b'n'),
        b'\r' => short(b'r'),
        b'\t' => short(b't'),
        0..=0x1f => Some((
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            6,
        )),
        _ => None,
    }
}

fn push_field(out: &mut Vec<u8>, f: &Field) {
    push_str(out, &f.name);
    out.push(b':');
    let type_name = explicit_type(&f.value);
    if f.representation.is_empty() && type_name.is_none() {
        return push_values(out, &f.value);
    }
    out.extend_from_slice(b"{\"value\":");
    push_values(out, &f.value);
    if let Some(t) = type_name {
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(t.as_bytes());
        out.push(b'"');
    }
    if !f.representation.is_empty() {
        push_key_str(out, b",\"representation\":", &f.representation);
    }
    out.push(b'}');
}

/// The `type` a field must carry in JSON to read back as the same type, if any.
fn explicit_type(v: &FieldValue) -> Option<&'static str> {
    match v {
        FieldValue::Bytes(_) => Some("bytes"),
        FieldValue::String(_) => None,
        FieldValue::Double(d) if d.iter().any(|x| !x.is_finite()) => Some("double"),
        _ if v.is_empty() => Some(type_name(v)),
        _ => None,
    }
}

fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::String(_) => "string",
        FieldValue::Bytes(_) => "bytes",
        FieldValue::Integer(_) => "integer",
        FieldValue::Double(_) => "double",
        FieldValue::Bool(_) => "bool",
    }
}

fn push_values(out: &mut Vec<u8>, v: &FieldValue) {
    let n = v.len();
    if n != 1 {
        out.push(b'[');
    }
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        match v {
            FieldValue::String(s) => push_str(out, &s[i]),
            FieldValue::Bytes(b) => push_base64(out, &b[i]),
            FieldValue::Integer(x) => push_int(out, x[i]),
            FieldValue::Double(x) => push_double(out, x[i]),
            FieldValue::Bool(x) => out.extend_from_slice(if x[i] { b"true" } else { b"false" }),
        }
    }
    if n != 1 {
        out.push(b']');
    }
}

/// Appends `b` as a quoted base64 string (base64 never needs JSON escaping).
fn push_base64(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let at = out.len();
    out.resize(at + b.len().div_ceil(3) * 4, 0);
    let n = BASE64.encode_slice(b, &mut out[at..]).unwrap_or(0);
    out.truncate(at + n);
    out.push(b'"');
}

fn push_double(out: &mut Vec<u8>, d: f64) {
    if d.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        // Debug always shows a fraction or an exponent, so the value reads back as DOUBLE.
        let _ = write!(out, "{d:?}");
    }
}

/// Parses the JSON form (surrounding whitespace allowed).
pub fn from_json(s: &str) -> Result<Message, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(s);
    let m = de
        .deserialize_map(MessageVisitor)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| DecodeError::new(format!("json: {e}")))?;
    Ok(m)
}

/// Top-level keys, matched without allocating.
enum Key {
    Uuid,
    Timestamp,
    Type,
    Logger,
    Severity,
    Payload,
    EnvVersion,
    Pid,
    Hostname,
    Fields,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message header name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "Uuid" => Key::Uuid,
                    "Timestamp" => Key::Timestamp,
                    "Type" => Key::Type,
                    "Logger" => Key::Logger,
                    "Severity" => Key::Severity,
                    "Payload" => Key::Payload,
                    "EnvVersion" => Key::EnvVersion,
                    "Pid" => Key::Pid,
                    "Hostname" => Key::Hostname,
                    "Fields" => Key::Fields,
                    other => return Err(E::custom(format!("unknown key {other:?}"))),
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut m = Message {
            severity: DEFAULT_SEVERITY,
            ..Message::default()
        };
        let (mut have_uuid, mut have_ts) = (false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Uuid => {
                    let s: String = map.next_value()?;
                    let u = uuid::Uuid::parse_str(&s)
                        .map_err(|e| de::Error::custom(format!("bad Uuid: {e}")))?;
                    m.uuid = *u.as_bytes();
                    have_uuid = true;
                }
                Key::Timestamp => {
                    m.timestamp = map.next_value::<Timestamp>()?.0;
                    have_ts = true;
                }
                Key::Type => m.msg_type = map.next_value()?,
                Key::Logger => m.logger = map.next_value()?,
                Key::Severity => m.severity = map.next_value()?,
                Key::Payload => m.payload = map.next_value()?,
                Key::EnvVersion => m.env_version = map.next_value()?,
                Key::Pid => m.pid = map.next_value()?,
                Key::Hostname => m.hostname = map.next_value()?,
                Key::Fields => map.next_value_seed(FieldsSeed(&mut m.fields))?,
            }
        }
        if !have_uuid {
            m.uuid = *uuid::Uuid::new_v4().as_bytes();
        }
        if !have_ts {
            m.timestamp = now_ns();
        }
        Ok(m)
    }
}

/// Integer nanoseconds or an RFC 3339 string.
struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("integer nanoseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("Timestamp out of range"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|e| E::custom(format!("bad Timestamp: {e}")))?
                    .timestamp_nanos_opt()
                    .map(Timestamp)
                    .ok_or_else(|| E::custom("Timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads the `Fields` object into the message's field list, keeping repeated names.
struct FieldsSeed<'a>(&'a mut Vec<Field>);

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            let JsonField(value, representation) = map.next_value()?;
            self.0.push(Field {
                name: name.into(),
                representation: representation.into(),
                value,
            });
        }
        Ok(())
    }
}

/// One element of a value array, before the array's type is settled.
enum Elem {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Elem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElemVisitor)
    }
}

struct ElemVisitor;

impl Visitor<'_> for ElemVisitor {
    type Value = Elem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or bool")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Elem, E> {
        Ok(Elem::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Elem, E> {
        Ok(Elem::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Elem, E> {
        Ok(i64::try_from(v).map_or(Elem::Double(v as f64), Elem::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Elem, E> {
        Ok(Elem::Double(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Elem, E> {
        Ok(Elem::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Elem, E> {
        Ok(Elem::Str(v))
    }
}

/// A scalar or an array of scalars.
struct Elems(Vec<Elem>);

impl<'de> Deserialize<'de> for Elems {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Elems;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar or an array of scalars")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elems, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(e) = seq.next_element::<Elem>()? {
                    v.push(e);
                }
                Ok(Elems(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Elems, E> {
                Ok(Elems(vec![Elem::Bool(v)]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Elems, E> {
                ElemVisitor.visit_i64(v).map(|e| Elems(vec![e]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Elems, E> {
                ElemVisitor.visit_u64(v).map(|e| Elems(vec![e]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Elems, E> {
                Ok(Elems(vec![Elem::Double(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Elems, E> {
                Ok(Elems(vec![Elem::Str(v.to_owned())]))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Elems, E> {
                Ok(Elems(vec![Elem::Str(v)]))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field's value and representation, from a scalar, an array or the object form.
struct JsonField(FieldValue, String);

impl<'de> Deserialize<'de> for JsonField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonFieldVisitor)
    }
}

struct JsonFieldVisitor;

impl JsonFieldVisitor {
    fn one<E>(v: FieldValue) -> Result<JsonField, E> {
        Ok(JsonField(v, String::new()))
    }
}

impl<'de> Visitor<'de> for JsonFieldVisitor {
    type Value = JsonField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field value: scalar, array or {\"value\":..} object")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JsonField, E> {
        Self::one(FieldValue::Bool(smallvec![v]))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonField, E> {
        Self::one(FieldValue::Integer(smallvec![v]))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonField, E> {
        Self::one(match i64::try_from(v) {
            Ok(i) => FieldValue::Integer(smallvec![i]),
            Err(_) => FieldValue::Double(smallvec![v as f64]),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonField, E> {
        Self::one(FieldValue::Double(smallvec![v]))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonField, E> {
        Self::one(FieldValue::String(smallvec![v.to_owned()]))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonField, E> {
        Self::one(FieldValue::String(smallvec![v]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<JsonField, A::Error> {
        let Elems(elems) = Elems::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        settle(elems, None)
            .map(|v| JsonField(v, String::new()))
            .map_err(de::Error::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonField, A::Error> {
        let (mut value, mut ty, mut rep) = (None, None::<String>, String::new());
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "value" => value = Some(map.next_value::<Elems>()?.0),
                "type" => ty = Some(map.next_value()?),
                "representation" => rep = map.next_value()?,
                other => return Err(de::Error::custom(format!("unknown field key {other:?}"))),
            }
        }
        let value = value.ok_or_else(|| de::Error::custom("field object without \"value\""))?;
        settle(value, ty.as_deref())
            .map(|v| JsonField(v, rep))
            .map_err(de::Error::custom)
    }
}

/// Turns loose elements into a typed value array, inferring the type when none is given.
fn settle(elems: Vec<Elem>, ty: Option<&str>) -> Result<FieldValue, String> {
    let ty = match ty {
        Some(t) => t,
        None => infer(&elems)?,
    };
    let bad = |want: &str| format!("value array is not all {want}");
    Ok(match ty {
        "string" => FieldValue::String(
            collect(elems, |e| match e {
                Elem::Str(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| bad("strings"))?,
        ),
        "bytes" => FieldValue::Bytes(
            elems
                .into_iter()
                .map(|e| match e {
                    Elem::Str(s) => BASE64.decode(s).map_err(|e| format!("bad base64: {e}")),
                    _ => Err(bad("base64 strings")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "integer" => FieldValue::Integer(
            collect(elems, |e| match e {
                Elem::Int(i) => Some(i),
                _ => None,
            })
            .ok_or_else(|| bad("integers"))?,
        ),
        "double" => FieldValue::Double(collect(elems, as_double).ok_or_else(|| bad("numbers"))?),
        "bool" => FieldValue::Bool(
            collect(elems, |e| match e {
                Elem::Bool(b) => Some(b),
                _ => None,
            })
            .ok_or_else(|| bad("bools"))?,
        ),
        other => return Err(format!("unknown field type {other:?}")),
    })
}

fn collect<T>(elems: Vec<Elem>, f: impl FnMut(Elem) -> Option<T>) -> Option<Values<T>> {
    elems.into_iter().map(f).collect()
}

fn as_double(e: Elem) -> Option<f64> {
    match e {
        Elem::Double(d) => Some(d),
        Elem::Int(i) => Some(i as f64),
        Elem::Str(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        Elem::Bool(_) => None,
    }
}

/// The type of an untyped array: all of one kind, integers widened to doubles if mixed.
fn infer(elems: &[Elem]) -> Result<&'static str, String> {
    let kind = |e: &Elem| match e {
        Elem::Str(_) => "string",
        Elem::Int(_) => "integer",
        Elem::Double(_) => "double",
        Elem::Bool(_) => "bool",
    };
    let mut ty = elems.first().map_or("string", kind);
    for e in elems {
        ty = match (ty, kind(e)) {
            (a, b) if a == b => a,
            ("integer", "double") | ("double", "integer") => "double",
            (a, b) => return Err(format!("mixed {a} and {b} values in one array")),
        };
    }
    Ok(ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::proto::tests::{arb_message, sample};
    use proptest::prelude::*;

    #[test]
    fn writes_the_documented_form() {
        let mut m = Message {
            uuid: *uuid::Uuid::parse_str("0b7b1bd4-6cbb-4b52-8b3c-3a3c1e4f1f50")
                .expect("valid")
                .as_bytes(),
            timestamp: 1_700_000_000_000_000_000,
            msg_type: "app.log".into(),
            severity: 6,
            payload: "a \"q\"\n\u{1}".into(),
            pid: Some(42),
            ..Message::default()
        };
        m.add_field(Field::integer("status", 200));
        m.add_field(Field::new(
            "tags",
            FieldValue::String(smallvec!["a".into(), "b".into()]),
        ));
        m.add_field(Field::double("latency", 1.0).with_representation("ms"));
        m.add_field(Field::new("raw", FieldValue::Bytes(smallvec![vec![0, 1]])));
        m.add_field(Field::integer("status", 404));
        assert_eq!(
            to_json(&m),
            r#"{"Uuid":"0b7b1bd4-6cbb-4b52-8b3c-3a3c1e4f1f50","Timestamp":1700000000000000000,"Type":"app.log","Logger":"","Severity":6,"Payload":"a \"q\"\n\u0001","EnvVersion":"","Pid":42,"Hostname":"","Fields":{"status":200,"tags":["a","b"],"latency":{"value":1.0,"representation":"ms"},"raw":{"value":"AAE=","type":"bytes"},"status":404}}"#
        );
        assert_eq!(from_json(&to_json(&m)), Ok(m));
    }

    #[test]
    fn reads_with_defaults_and_inference() {
        let m = from_json(
            r#" {"Payload":"x","Timestamp":"2024-01-02T03:04:05.5Z",
               "Fields":{"i":1,"d":1.5,"b":true,"s":"t","w":[1,2.5],"e":[],
                         "n":{"value":[1,2],"type":"double"},
                         "f":{"value":"NaN","type":"double"}}} "#,
        )
        .expect("valid");
        assert_eq!(m.severity, 7);
        assert_ne!(m.uuid, [0; 16]);
        assert_eq!(m.timestamp, 1_704_164_645_500_000_000);
        let vals: Vec<_> = m.fields.iter().map(|f| f.value.clone()).collect();
        assert_eq!(vals[0], FieldValue::Integer(smallvec![1]));
        assert_eq!(vals[1], FieldValue::Double(smallvec![1.5]));
        assert_eq!(vals[2], FieldValue::Bool(smallvec![true]));
        assert_eq!(vals[3], FieldValue::String(smallvec!["t".into()]));
        assert_eq!(vals[4], FieldValue::Double(smallvec![1.0, 2.5]));
        assert_eq!(vals[5], FieldValue::String(smallvec![]));
        assert_eq!(vals[6], FieldValue::Double(smallvec![1.0, 2.0]));
        assert!(matches!(&vals[7], FieldValue::Double(d) if d[0].is_nan()));
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "",
            "[]",
            r#"{"Payload":1}"#,
            r#"{"Uuid":"nope"}"#,
            r#"{"Playload":"typo"}"#,
            r#"{"Fields":{"a":[1,"x"]}}"#,
            r#"{"Fields":{"a":null}}"#,
            r#"{"Fields":{"a":[[1]]}}"#,
            r#"{"Fields":{"a":{"value":1,"type":"bytes"}}}"#,
            r#"{"Fields":{"a":{"value":"!!","type":"bytes"}}}"#,
            r#"{"Fields":{"a":{"type":"string"}}}"#,
            r#"{"Severity":7} x"#,
        ] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sample_round_trips_with_empty_and_non_finite() {
        let mut m = sample();
        m.add_field(Field::new(
            "inf",
            FieldValue::Double(smallvec![f64::INFINITY, -1e300]),
        ));
        m.add_field(Field::new("eb", FieldValue::Bool(smallvec![])));
        assert_eq!(from_json(&to_json(&m)), Ok(m));
    }

    proptest! {
        #[test]
        fn from_json_never_panics(s in ".{0,64}") {
            let _ = from_json(&s);
        }

        #[test]
        fn from_json_never_panics_on_near_json(s in r#"\{("[A-Za-z]{0,10}":(\[|\{|"|-?[0-9.eE]{1,5}|true|null|,|\}|\]){0,6}){0,4}\}?"#) {
            let _ = from_json(&s);
        }

        #[test]
        fn json_round_trips(m in arb_message()) {
            prop_assert_eq!(from_json(&to_json(&m)), Ok(m));
        }

        /// Strings dense in bytes that need escaping, at every offset of the 8-byte scan,
        /// read back unchanged by serde_json, and the escaper writes no raw control byte.
        #[test]
        fn strings_escape_exactly(s in r#"([a-z0-9 ]{0,9}[\x00-\x1f"\\\x7f]?(é|€|😀)?){0,12}"#) {
            let mut out = Vec::new();
            push_str(&mut out, &s);
            prop_assert!(!out.iter().any(|b| *b < 0x20), "raw control byte in {:?}", out);
            let back: String = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn escape_scan_flags_exactly_the_bytes_json_escapes() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = [b'a'; 8];
                w[pos] = b;
                let want = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(w)),
                    want,
                    "byte {b:#x} at {pos}"
                );
                assert_eq!(escape(b).is_some(), want, "byte {b:#x}");
            }
        }
    }
}
