//! The Heka message model: [`Message`], its typed [`Field`]s and the [`Pack`] envelope
//! the router fans out.
//!
//! This mirrors Heka's `message.proto` (heka.md §2.1). Wire forms live beside it:
//! `proto` (protobuf, byte-compatible with Heka), [`framing`] (Heka stream framing) and
//! `json` (the one JSON form people read and write). Every component that looks at a
//! message — the matcher, the Lua API, encoders — resolves variables through
//! [`Message::field`] and the header accessors here, so there is one path-resolution rule.
//!
//! May import: nothing of hekate but `error`; the foundation every layer builds on.

pub mod framing;
pub mod json;
pub mod prefetch;
pub mod proto;
pub mod reclaim;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use compact_str::CompactString;
pub use smallvec::{smallvec, SmallVec};

/// A field's value array. Almost every field holds one element, which is stored inline,
/// so building a one-valued field allocates nothing for the array.
pub type Values<T> = SmallVec<[T; 1]>;

/// Heka's default severity (syslog "debug"), used when a message does not set one.
pub const DEFAULT_SEVERITY: i32 = 7;

/// One Heka message. Empty strings mean "not set" for the optional string headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// 16-byte type-4 UUID.
    pub uuid: [u8; 16],
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
    /// The message type, e.g. `heka.statmetric`.
    pub msg_type: CompactString,
    /// Which plugin or stream produced it.
    pub logger: CompactString,
    /// Syslog severity, 0 (emergency) to 7 (debug).
    pub severity: i32,
    /// Free-form body.
    pub payload: String,
    /// Schema version of the payload.
    pub env_version: CompactString,
    /// Process id of the producer, when known.
    pub pid: Option<i32>,
    /// Host the message came from.
    pub hostname: CompactString,
    /// Ordered, typed fields; names may repeat.
    pub fields: Vec<Field>,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            uuid: [0; 16],
            timestamp: 0,
            msg_type: CompactString::const_new(""),
            logger: CompactString::const_new(""),
            severity: DEFAULT_SEVERITY,
            payload: String::new(),
            env_version: CompactString::const_new(""),
            pid: None,
            hostname: CompactString::const_new(""),
            fields: Vec::new(),
        }
    }
}

/// A named, typed field. The value is always an array, as in Heka; most hold one element.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name; not unique within a message.
    pub name: CompactString,
    /// Free-form unit or format, e.g. `ms`, `B`, `count`.
    pub representation: CompactString,
    /// The typed value array.
    pub value: FieldValue,
}

/// The value array of a field; exactly one type per field (Heka `value_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `value_type = STRING` (0).
    String(Values<String>),
    /// `value_type = BYTES` (1).
    Bytes(Values<Vec<u8>>),
    /// `value_type = INTEGER` (2).
    Integer(Values<i64>),
    /// `value_type = DOUBLE` (3).
    Double(Values<f64>),
    /// `value_type = BOOL` (4).
    Bool(Values<bool>),
}

/// A borrowed single element of a field's value array.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// A string element.
    Str(&'a str),
    /// A bytes element.
    Bytes(&'a [u8]),
    /// An integer element.
    Int(i64),
    /// A double element.
    Double(f64),
    /// A bool element.
    Bool(bool),
}

impl FieldValue {
    /// Heka's numeric `value_type` code.
    pub fn type_code(&self) -> i32 {
        match self {
            FieldValue::String(_) => 0,
            FieldValue::Bytes(_) => 1,
            FieldValue::Integer(_) => 2,
            FieldValue::Double(_) => 3,
            FieldValue::Bool(_) => 4,
        }
    }

    /// Number of elements in the array.
    pub fn len(&self) -> usize {
        match self {
            FieldValue::String(v) => v.len(),
            FieldValue::Bytes(v) => v.len(),
            FieldValue::Integer(v) => v.len(),
            FieldValue::Double(v) => v.len(),
            FieldValue::Bool(v) => v.len(),
        }
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` of the array, if present.
    pub fn get(&self, i: usize) -> Option<ValueRef<'_>> {
        match self {
            FieldValue::String(v) => v.get(i).map(|s| ValueRef::Str(s)),
            FieldValue::Bytes(v) => v.get(i).map(|b| ValueRef::Bytes(b)),
            FieldValue::Integer(v) => v.get(i).map(|n| ValueRef::Int(*n)),
            FieldValue::Double(v) => v.get(i).map(|n| ValueRef::Double(*n)),
            FieldValue::Bool(v) => v.get(i).map(|b| ValueRef::Bool(*b)),
        }
    }
}

impl Field {
    /// A single-valued field with no representation.
    pub fn new(name: impl Into<CompactString>, value: FieldValue) -> Self {
        Field {
            name: name.into(),
            representation: CompactString::const_new(""),
            value,
        }
    }

    /// A single string field.
    pub fn string(name: impl Into<CompactString>, v: impl Into<String>) -> Self {
        Field::new(name, FieldValue::String(smallvec![v.into()]))
    }

    /// A single integer field.
    pub fn integer(name: impl Into<CompactString>, v: i64) -> Self {
        Field::new(name, FieldValue::Integer(smallvec![v]))
    }

    /// A single double field.
    pub fn double(name: impl Into<CompactString>, v: f64) -> Self {
        Field::new(name, FieldValue::Double(smallvec![v]))
    }

    /// A single bool field.
    pub fn boolean(name: impl Into<CompactString>, v: bool) -> Self {
        Field::new(name, FieldValue::Bool(smallvec![v]))
    }

    /// Sets the representation and returns the field.
    pub fn with_representation(mut self, rep: impl Into<CompactString>) -> Self {
        self.representation = rep.into();
        self
    }
}

impl Message {
    /// A new message stamped with a fresh UUID and the current time.
    pub fn new() -> Self {
        Message {
            uuid: *uuid::Uuid::new_v4().as_bytes(),
            timestamp: now_ns(),
            ..Default::default()
        }
    }

    /// The `fi`-th field named `name` (0-based), as Heka's `Fields[name][fi]`.
    pub fn field(&self, name: &str, fi: usize) -> Option<&Field> {
        self.fields.iter().filter(|f| f.name == name).nth(fi)
    }

    /// Element `ai` of the `fi`-th field named `name`: Heka's `Fields[name][fi][ai]`.
    pub fn field_value(&self, name: &str, fi: usize, ai: usize) -> Option<ValueRef<'_>> {
        self.field(name, fi).and_then(|f| f.value.get(ai))
    }

    /// Appends a field (names may repeat).
    pub fn add_field(&mut self, f: Field) {
        self.fields.push(f);
    }

    /// Makes this message a copy of `base`, keeping its own string and field-list
    /// allocations where they can hold `base`'s (how recycled messages are refilled).
    pub fn reset_from(&mut self, base: &Message) {
        let Message {
            uuid,
            timestamp,
            msg_type,
            logger,
            severity,
            payload,
            env_version,
            pid,
            hostname,
            fields,
        } = self;
        *uuid = base.uuid;
        *timestamp = base.timestamp;
        msg_type.clone_from(&base.msg_type);
        logger.clone_from(&base.logger);
        *severity = base.severity;
        payload.clear();
        payload.push_str(&base.payload);
        env_version.clone_from(&base.env_version);
        *pid = base.pid;
        hostname.clone_from(&base.hostname);
        fields.clear();
        fields.extend(base.fields.iter().cloned());
    }

    /// Replaces the payload, reusing its allocation.
    pub fn set_payload(&mut self, text: &str) {
        self.payload.clear();
        self.payload.push_str(text);
    }

    /// The UUID in its canonical hyphenated string form (what matchers and Lua see).
    pub fn uuid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.uuid).hyphenated().to_string()
    }
}

/// A per-stream source of type-4 UUIDs for inputs' hot paths: xoshiro256++ seeded from
/// the operating system's randomness, so a message costs a few arithmetic operations
/// instead of a CSPRNG block. Message UUIDs identify, they are not secrets; 122 random
/// bits from a well-seeded 256-bit generator collide no more often than OS-random ones.
#[derive(Debug, Clone)]
pub struct UuidGen {
    s: [u64; 4],
}

impl UuidGen {
    /// A generator seeded from the OS (through `uuid`'s random v4).
    pub fn new() -> Self {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let (c, d) = uuid::Uuid::new_v4().as_u64_pair();
        UuidGen {
            s: [a, b | 1, c, d],
        }
    }

    /// The next UUID: random but for the version (4) and variant (RFC 4122) bits.
    pub fn next_uuid(&mut self) -> [u8; 16] {
        let hi = self.next_u64();
        let lo = self.next_u64();
        let hi = (hi & !0xf000) | 0x4000;
        let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
        *uuid::Uuid::from_u64_pair(hi, lo).as_bytes()
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
}

impl Default for UuidGen {
    fn default() -> Self {
        UuidGen::new()
    }
}

/// Current wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The envelope the router fans out: a shared message plus its injection loop count.
///
/// Cloning a `Pack` bumps a reference count; the message itself is never deep-copied on
/// fan-out (the Rust form of Heka's `PipelinePack.RefCount`).
#[derive(Debug, Clone)]
pub struct Pack {
    /// The message, shared by every subscriber.
    pub msg: Arc<Message>,
    /// How many times a filter has re-injected this lineage (Heka `MsgLoopCount`).
    pub loop_count: u8,
    /// The signer whose HMAC the input verified (Heka's `pack.Signer`); filters and
    /// outputs with `message_signer` take only packs from that signer. Not kept in disk
    /// buffers: it is used when routing, before them.
    pub signer: Option<Arc<str>>,
}

impl Pack {
    /// Wraps a message that entered from an input (loop count 0).
    pub fn new(msg: Message) -> Self {
        Pack {
            msg: Arc::new(msg),
            loop_count: 0,
            signer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_indexing_follows_heka() {
        let mut m = Message::new();
        m.add_field(Field::new("a", FieldValue::Integer(smallvec![1, 2])));
        m.add_field(Field::string("b", "x"));
        m.add_field(Field::new("a", FieldValue::Integer(smallvec![3])));
        assert_eq!(m.field_value("a", 0, 1), Some(ValueRef::Int(2)));
        assert_eq!(m.field_value("a", 1, 0), Some(ValueRef::Int(3)));
        assert_eq!(m.field_value("a", 2, 0), None);
        assert_eq!(m.field_value("b", 0, 0), Some(ValueRef::Str("x")));
        assert_eq!(m.severity, DEFAULT_SEVERITY);
        assert_eq!(m.uuid_string().len(), 36);
    }

    #[test]
    fn generated_uuids_are_version_4_and_distinct() {
        let (mut a, mut b) = (UuidGen::new(), UuidGen::new());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            for g in [&mut a, &mut b] {
                let u = uuid::Uuid::from_bytes(g.next_uuid());
                assert_eq!(u.get_version_num(), 4);
                assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
                assert!(seen.insert(u), "duplicate {u}");
            }
        }
    }
}
