//! Byte-compatibility of `message::proto` with Google's official protobuf encoder.
//!
//! `tests/fixtures/proto_vectors.txt` was produced by `scripts/gen_proto_vectors.py` from
//! `tests/fixtures/message.proto` (Heka's schema); each message below mirrors one vector.
//! hekate must encode it to exactly those bytes and decode the bytes back to it.

use hekate::message::{proto, smallvec, Field, FieldValue, Message};

const VECTORS: &str = include_str!("fixtures/proto_vectors.txt");
const UUID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn base(timestamp: i64, severity: i32) -> Message {
    Message {
        uuid: UUID,
        timestamp,
        severity,
        ..Message::default()
    }
}

fn field(name: &str, rep: &str, value: FieldValue) -> Field {
    Field::new(name, value).with_representation(rep)
}

fn expected(name: &str) -> Message {
    match name {
        "minimal" => base(0, 7),
        "headers" => Message {
            msg_type: "app.log".into(),
            logger: "tail".into(),
            payload: "hello".into(),
            env_version: "0.8".into(),
            pid: Some(-1),
            hostname: "web-01".into(),
            ..base(1_700_000_000_123_456_789, 0)
        },
        "negative_and_unicode" => Message {
            pid: Some(0),
            payload: "h\u{e9}llo \u{2603} \u{1F389}".into(),
            ..base(-1, -3)
        },
        "fields" => Message {
            fields: vec![
                field("s", "", FieldValue::String(smallvec!["x".into()])),
                field(
                    "ss",
                    "list",
                    FieldValue::String(smallvec!["a".into(), "".into(), "\u{e9}".into()]),
                ),
                field("b", "", FieldValue::Bytes(smallvec![vec![0, 255], vec![]])),
                field(
                    "i",
                    "count",
                    FieldValue::Integer(smallvec![-1, 0, 300, i64::MAX, i64::MIN]),
                ),
                field(
                    "d",
                    "ms",
                    FieldValue::Double(smallvec![1.5, -0.0, f64::INFINITY, 1e-300]),
                ),
                field("o", "", FieldValue::Bool(smallvec![true, false, true])),
                field("empty", "", FieldValue::Integer(smallvec![])),
                field("s", "", FieldValue::String(smallvec!["again".into()])),
            ],
            ..base(42, 6)
        },
        "large" => Message {
            payload: "p".repeat(300),
            fields: (0..20)
                .map(|i| {
                    field(
                        &format!("n{i}"),
                        "",
                        FieldValue::Integer(smallvec![i * 1000]),
                    )
                })
                .collect(),
            ..base(1, 7)
        },
        other => panic!("vector {other} has no expected message in this test"),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    let v: Vec<_> = VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("`name hex` line");
            (name, unhex(hex.trim()))
        })
        .collect();
    assert_eq!(v.len(), 5, "fixture holds every vector");
    v
}

#[test]
fn encode_matches_official_protobuf_bytes() {
    for (name, bytes) in vectors() {
        assert_eq!(
            proto::encode_to_vec(&expected(name)),
            bytes,
            "vector {name}"
        );
    }
}

#[test]
fn decode_of_official_bytes_gives_the_message() {
    for (name, bytes) in vectors() {
        assert_eq!(proto::decode(&bytes), Ok(expected(name)), "vector {name}");
    }
}
