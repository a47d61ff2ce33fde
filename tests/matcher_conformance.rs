//! Conformance table for the `message_matcher` language (heka.md §2.3), run by
//! `cargo test --test matcher_conformance`.
//!
//! The first block replays Heka's own `message/message_matcher_test.go` lists (malformed,
//! negative, positive) against the same test message; the second covers every quirk of
//! §2.3 (missing fields, NIL, type mismatches, bool and bytes fields, regex fast paths,
//! precedence, escapes, error positions). Property tests at the bottom check that
//! parsing and evaluation never panic and that `&&`/`||` compose as specified.

use hekate::matcher::Matcher;
use hekate::message::{smallvec, Field, FieldValue, Message};

/// What a case expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Parses; evaluates to this.
    Match(bool),
    /// Syntax error with this last token and byte position.
    Err(&'static str, usize),
}

use Want::{Err as E, Match as M};

const UUID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const UUID_STR: &str = "00010203-0405-0607-0809-0a0b0c0d0e0f";
const TS: i64 = 1_700_000_000_123_456_789;

/// Heka's `getTestMessage()` plus the fields `MatcherSpecificationSpec` adds.
fn heka_msg() -> Message {
    let mut m = Message {
        uuid: UUID,
        timestamp: TS,
        msg_type: "TEST".into(),
        logger: "GoSpec".into(),
        severity: 6,
        payload: "Test Payload".into(),
        env_version: "0.8".into(),
        pid: Some(4321),
        hostname: "example.host".into(),
        fields: Vec::new(),
    };
    m.add_field(Field::string("foo", "bar"));
    m.add_field(Field::integer("number", 64));
    m.add_field(Field::new(
        "bytes",
        FieldValue::Bytes(smallvec![b"data".to_vec()]),
    ));
    m.add_field(Field::new("int", FieldValue::Integer(smallvec![999, 1024])));
    m.add_field(Field::double("double", 99.9));
    m.add_field(Field::boolean("bool", true));
    m.add_field(Field::string("foo", "alternate"));
    m.add_field(Field::string("Payload", "name=test;type=web;"));
    m.add_field(
        Field::string("Timestamp", "Mon Jan 02 15:04:05 -0700 2006")
            .with_representation("date-time"),
    );
    m.add_field(Field::integer("zero", 0));
    m.add_field(Field::string("string", "43"));
    m
}

/// A message with odd values: a false bool, a string "TRUE", backslashes, slashes.
fn odd_msg() -> Message {
    let mut m = Message {
        payload: r"a\nb/c".into(),
        msg_type: "nginx.access".into(),
        ..Message::default()
    };
    m.add_field(Field::boolean("b", false));
    m.add_field(Field::string("s", "TRUE"));
    m.add_field(Field::string("digits", "٣"));
    m.add_field(Field::integer("a b", 1));
    m.add_field(Field::new("empty", FieldValue::String(smallvec![])));
    m.add_field(Field::double("nan", f64::NAN));
    m
}

/// Heka's own malformed list, with the error Heka reports for each.
const HEKA_MALFORMED: &[(&str, Want)] = &[
    ("", E("", 0)),
    ("bogus", E("", 1)),
    ("Type = 'test'", E("Type", 7)),
    ("Pid == 'test='", E("test=", 14)),
    (
        "Type == 'test' && (Severity==7 || Payload == 'Test Payload'",
        E("Test Payload", 59),
    ),
    ("Invalid == 'bogus'", E("Invalid", 8)),
    ("Fields[]", E("Fields", 8)),
    ("Fields[test][]", E("Fields", 14)),
    ("Fields[test][a]", E("Fields", 14)),
    ("Fields[test][0][]", E("Fields", 17)),
    ("Fields[test][0][a]", E("Fields", 17)),
    ("Fields[test][0][0][]", E("Fields", 19)),
    ("Fields[test][xxxx", E("Fields", 14)),
    ("Pid =~ /6/", E("Pid", 6)),
    ("Pid !~ /6/", E("Pid", 6)),
    ("Type =~ /test", E("test", 13)),
    ("Type == /test/", E("test", 14)),
    ("Type =~ 'test'", E("test", 14)),
    ("Type =~ /\\ytest/", E("\\ytest", 16)),
    ("Type != 'test\"", E("test\"", 14)),
    ("Pid =~ 6", E("Pid", 6)),
    ("NIL", E("NIL", 3)),
    ("Type == NIL", E("NIL", 11)),
    ("Fields[test] > NIL", E("NIL", 18)),
];

/// Heka's own negative list (parse, do not match `heka_msg`).
const HEKA_NEGATIVE: &[&str] = &[
    "FALSE",
    "Type == 'test'&&(Severity==7||Payload=='Test Payload')",
    "EnvVersion == '0.9'",
    "EnvVersion != '0.8'",
    "EnvVersion > '0.9'",
    "EnvVersion >= '0.9'",
    "EnvVersion < '0.8'",
    "EnvVersion <= '0.7'",
    "Severity == 5",
    "Severity != 6",
    "Severity < 6",
    "Severity <= 5",
    "Severity > 6",
    "Severity >= 7",
    "Fields[foo] == 'ba'",
    "Fields[foo][1] == 'bar'",
    "Fields[foo][0][1] == 'bar'",
    "Fields[bool] == FALSE",
    "Type =~ /Test/",
    "Type !~ /TEST/",
    "Payload =~ /^Payload/",
    "Type == \"te'st\"",
    "Type == 'te\"st'",
    "Fields[int] =~ /999/",
    "Fields[zero] == \"0\"",
    "Fields[string] == 43",
    "Fields[int] == NIL",
    "Fields[int][0][1] == NIL",
    "Fields[missing] != NIL",
    "Type =~ /^te/",
    "Type =~ /st$/",
    "Type !~ /^TE/",
    "Type !~ /ST$/",
    "Logger =~ /./ && Type =~ /^anything/",
];

/// Heka's own positive list (parse, match `heka_msg`).
const HEKA_POSITIVE: &[&str] = &[
    "TRUE",
    "(Severity == 7 || Payload == 'Test Payload') && Type == 'TEST'",
    "EnvVersion == \"0.8\"",
    "EnvVersion == '0.8'",
    "EnvVersion != '0.9'",
    "EnvVersion > '0.7'",
    "EnvVersion >= '0.8'",
    "EnvVersion < '0.9'",
    "EnvVersion <= '0.8'",
    "Hostname != ''",
    "Logger == 'GoSpec'",
    "Pid != 0",
    "Severity != 5",
    "Severity < 7",
    "Severity <= 6",
    "Severity == 6",
    "Severity > 5",
    "Severity >= 6",
    "Timestamp > 0",
    "Type != 'test'",
    "Type == 'TEST' && Severity == 6",
    "Type == 'test' && Severity == 7 || Payload == 'Test Payload'",
    "Type == 'TEST'",
    "Type == 'foo' || Type == 'bar' || Type == 'TEST'",
    "Uuid == '00010203-0405-0607-0809-0a0b0c0d0e0f'",
    "Fields[foo] == 'bar'",
    "Fields[foo][0] == 'bar'",
    "Fields[foo][0][0] == 'bar'",
    "Fields[foo][1] == 'alternate'",
    "Fields[foo][1][0] == 'alternate'",
    "Fields[bytes] == 'data'",
    "Fields[int] == 999",
    "Fields[int][0][1] == 1024",
    "Fields[double] == 99.9",
    "Fields[bool] == TRUE",
    "Type =~ /TEST/",
    "Type !~ /bogus/",
    "Type =~ /TEST/ && Payload =~ /Payload/",
    "Fields[foo][1] =~ /alt/",
    "Fields[Payload] =~ /name=\\w+/",
    "Type =~ /(ST)/",
    "Fields[int] != NIL",
    "Fields[int][0][1] != NIL",
    "Fields[int][0][2] == NIL",
    "Fields[missing] == NIL",
    "Type =~ /^TE/",
    "Type =~ /ST$/",
    "Type !~ /^te/",
    "Type !~ /st$/",
];

/// The §2.3 quirks, against `heka_msg` (H) or `odd_msg` (O) or an empty message (D).
const QUIRKS: &[(&str, char, Want)] = &[
    // Missing field: only `== NIL` is true, even `!=` is false.
    ("Fields[missing] != 'x'", 'H', M(false)),
    ("Fields[missing] != 5", 'H', M(false)),
    ("Fields[missing] !~ /x/", 'H', M(false)),
    ("Fields[missing] < 5", 'H', M(false)),
    ("Fields[foo][2] == NIL", 'H', M(true)),
    ("Fields[foo][2] != 'x'", 'H', M(false)),
    ("Fields[int][0][5] == NIL", 'H', M(true)),
    ("Fields[empty] == NIL", 'O', M(true)),
    ("Fields[empty] != ''", 'O', M(false)),
    // NIL on present fields of every type.
    ("Fields[bool] != NIL", 'H', M(true)),
    ("Fields[bool] == NIL", 'H', M(false)),
    ("Fields[bytes] != NIL", 'H', M(true)),
    ("Fields[double] == NIL", 'H', M(false)),
    // Type mismatches are false, `!=` included.
    ("Fields[number] == '64'", 'H', M(false)),
    ("Fields[foo] != 5", 'H', M(false)),
    ("Fields[double] == '99.9'", 'H', M(false)),
    ("Fields[int] != 'x'", 'H', M(false)),
    ("Fields[bool] > 0", 'H', M(false)),
    ("Fields[bool] == 'true'", 'H', M(false)),
    ("Fields[bool] =~ /./", 'H', M(false)),
    ("Fields[foo] == TRUE", 'H', M(false)),
    ("Fields[s] == TRUE", 'O', M(false)),
    ("Fields[b] == 'x'", 'O', M(false)),
    ("Fields[b] !~ /x/", 'O', M(false)),
    // Bool fields.
    ("Fields[b] == FALSE", 'O', M(true)),
    ("Fields[b] == TRUE", 'O', M(false)),
    ("Fields[b] != TRUE", 'O', E("TRUE", 17)),
    ("Fields[b] > FALSE", 'O', E("FALSE", 17)),
    // Bytes fields compare as strings.
    ("Fields[bytes] > 'da'", 'H', M(true)),
    ("Fields[bytes] =~ /^da/", 'H', M(true)),
    ("Fields[bytes] =~ /t.$/", 'H', M(true)),
    ("Fields[bytes] == 0", 'H', M(false)),
    // INTEGER and DOUBLE compare numerically as f64.
    ("Fields[int] == 999.0", 'H', M(true)),
    ("Fields[int] == .999e3", 'H', M(true)),
    ("Fields[int][0][1] >= 1.024e+3", 'H', M(true)),
    (
        "Fields[double] > 99.8 && Fields[double] < 1e2",
        'H',
        M(true),
    ),
    ("Fields[nan] != 1", 'O', M(true)),
    ("Fields[nan] == 1", 'O', M(false)),
    ("Fields[nan] >= 0", 'O', M(false)),
    // Field names with spaces; indices.
    ("Fields[a b] == 1", 'O', M(true)),
    ("Fields[foo][1][0] != 'bar'", 'H', M(true)),
    // Headers: strings compare byte-wise, numbers as f64.
    ("EnvVersion < '0.10'", 'H', M(false)),
    ("Hostname >= 'example'", 'H', M(true)),
    ("Type != 'x'", 'D', M(true)),
    ("Type == ''", 'D', M(true)),
    ("Severity == 7", 'D', M(true)),
    ("Severity == 6.", 'H', M(true)),
    ("Severity < .7e1", 'H', M(true)),
    ("Pid == 4321", 'H', M(true)),
    ("Pid == 0", 'D', M(true)),
    ("Pid != 0", 'D', M(false)),
    ("Timestamp == 1700000000123456789", 'H', M(true)),
    ("Timestamp == 1700000000123456790", 'H', M(true)),
    ("Timestamp < 1700000000123456789", 'H', M(false)),
    // Uuid compares against its hyphenated lower-case string.
    (
        "Uuid == '00010203-0405-0607-0809-0A0B0C0D0E0F'",
        'H',
        M(false),
    ),
    ("Uuid =~ /^00010203-/", 'H', M(true)),
    ("Uuid =~ /0e0f$/", 'H', M(true)),
    ("Uuid > '0'", 'H', M(true)),
    // NIL is for fields only.
    ("Type != NIL", 'H', E("NIL", 11)),
    ("Severity == NIL", 'H', E("NIL", 15)),
    // Negative literals are rejected; numbers start with a digit or '.'.
    ("Severity > -1", 'H', E("Severity", 12)),
    ("Fields[int] == -999", 'H', E("Fields", 16)),
    ("Severity == 1.2.3", 'H', E("1.2.3", 17)),
    // Literals on the right only.
    ("'TEST' == Type", 'H', E("TEST", 6)),
    ("6 == Severity", 'H', E("6", 2)),
    // Regex fast paths and full regexes.
    ("Logger =~ /^Go/", 'H', M(true)),
    ("Logger =~ /^go/", 'H', M(false)),
    ("Logger !~ /^Go/", 'H', M(false)),
    ("Logger =~ /Spec$/", 'H', M(true)),
    ("Logger =~ /Go$/", 'H', M(false)),
    ("Logger =~ /oSp/", 'H', M(true)),
    ("Logger =~ /^GoSpec$/", 'H', M(true)),
    ("Logger =~ /^Go$/", 'H', M(false)),
    ("Logger =~ /^Go.*c$/", 'H', M(true)),
    ("Logger =~ /(?i)^gospec$/", 'H', M(true)),
    ("Payload =~ /b\\/c/", 'O', M(true)),
    ("Payload =~ /a\\/b/", 'O', M(false)),
    ("Payload =~ /^a\\\\nb\\/c$/", 'O', M(true)),
    ("Fields[digits] =~ /\\d/", 'O', M(false)),
    ("Type =~ /(/", 'H', E("(", 11)),
    ("Fields[Payload] =~ /^{?name=test;/", 'H', M(true)),
    ("Fields[Payload] =~ /{,3}/", 'H', M(false)),
    // String escapes: only the quote is escaped.
    ("Payload == 'a\\nb/c'", 'O', M(true)),
    ("Type == 'TE\\ST'", 'H', M(false)),
    ("Type == 'nginx\\.access'", 'O', M(false)),
    ("Type == \"nginx.access\"", 'O', M(true)),
    // Precedence: && binds tighter; both left-assoc.
    ("TRUE || FALSE && FALSE", 'H', M(true)),
    ("FALSE && FALSE || TRUE", 'H', M(true)),
    ("(TRUE || FALSE) && FALSE", 'H', M(false)),
    ("FALSE || FALSE || TRUE && TRUE", 'H', M(true)),
    (
        "Type == 'TEST' && (Severity == 1 || Severity == 6)",
        'H',
        M(true),
    ),
    (
        "Type == 'TEST' && Severity == 1 || Severity == 7",
        'H',
        M(false),
    ),
    ("((((TRUE))))", 'H', M(true)),
    // Short-circuit leaves later operands unevaluated (results as above).
    ("FALSE && Fields[missing] == NIL", 'H', M(false)),
    ("TRUE || Fields[missing] != NIL", 'H', M(true)),
    // Structural errors and where they are reported.
    ("Type == 'a' &&", 'H', E("a", 14)),
    ("(TRUE", 'H', E("TRUE", 5)),
    ("TRUE)", 'H', E("TRUE", 5)),
    ("TRUE FALSE", 'H', E("FALSE", 10)),
    ("TRUE Bogus", 'H', E("Bogus", 10)),
    ("TRUE =", 'H', E("TRUE", 6)),
    ("Type == 'a' | Type == 'b'", 'H', E("a", 14)),
    ("Severity == 6\n|| Type == 'x'", 'H', E("6", 15)),
    ("Severity == 6\n", 'H', M(true)),
    ("Severity == 6\r\n", 'H', E("6", 14)),
    ("Fields[a][0][0][0] == 1", 'H', E("Fields", 16)),
    ("Type == 'é' && Severity = 6", 'H', E("Severity", 27)),
];

fn check(src: &str, msg: &Message, want: Want) -> Result<(), String> {
    match (Matcher::parse(src), want) {
        (Ok(m), M(expected)) if m.matches(msg) == expected => Ok(()),
        (Ok(m), M(expected)) => Err(format!(
            "{src:?}: matched {} (want {expected}); compiled as {}",
            !expected,
            m.describe()
        )),
        (Ok(m), E(..)) => Err(format!(
            "{src:?}: parsed as {}, want an error",
            m.describe()
        )),
        (Err(e), E(last, pos)) if e.last_token == last && e.pos == pos => {
            let shown = format!("syntax error: last token: {last} pos: {pos}");
            if e.to_string() == shown {
                Ok(())
            } else {
                Err(format!("{src:?}: displayed {e}"))
            }
        }
        (Err(e), _) => Err(format!(
            "{src:?}: got `{e}` ({}), want {want:?}",
            e.reason()
        )),
    }
}

fn run(cases: impl IntoIterator<Item = (String, Message, Want)>) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    for (src, msg, want) in cases {
        n += 1;
        if let Err(f) = check(&src, &msg, want) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

#[test]
fn heka_malformed_list() {
    let msg = heka_msg();
    let n = run(HEKA_MALFORMED
        .iter()
        .map(|(s, w)| (s.to_string(), msg.clone(), *w)));
    assert_eq!(n, 24);
}

#[test]
fn heka_negative_list() {
    let msg = heka_msg();
    let n = run(HEKA_NEGATIVE
        .iter()
        .map(|s| (s.to_string(), msg.clone(), M(false))));
    assert_eq!(n, 34);
}

#[test]
fn heka_positive_list() {
    let msg = heka_msg();
    let n = run(HEKA_POSITIVE
        .iter()
        .map(|s| (s.to_string(), msg.clone(), M(true))));
    assert_eq!(n, 49);
}

#[test]
fn spec_quirks() {
    let n = run(QUIRKS.iter().map(|(s, which, w)| {
        let msg = match which {
            'H' => heka_msg(),
            'O' => odd_msg(),
            _ => Message::default(),
        };
        (s.to_string(), msg, *w)
    }));
    assert!(n >= 60, "only {n} quirk cases");
}

/// Counts heap allocations per thread, to check that evaluation never allocates.
struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call forwards to the system allocator unchanged; the counter is a
// const-initialised thread-local `Cell`, which itself never allocates.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn evaluation_does_not_allocate() {
    let exprs = [
        "Uuid =~ /^0001/ && Uuid == '00010203-0405-0607-0809-0a0b0c0d0e0f'",
        "Type =~ /T[E]ST/ && Fields[Payload] =~ /name=\\w+/ && Fields[bytes] =~ /d.t/",
        "Fields[int][0][1] > 1000 && Fields[missing] == NIL || Logger =~ /^Go/",
        "Payload !~ /load$/ || Fields[foo][1] =~ /alt/ || Timestamp > 0",
    ];
    let msg = heka_msg();
    for src in exprs {
        let parse_start = ALLOCS.with(|c| c.get());
        let m = Matcher::parse(src).expect("parses");
        // The counter works: compiling does allocate.
        assert!(ALLOCS.with(|c| c.get()) > parse_start);
        let first = m.matches(&msg); // warms the regex caches of this thread
        let before = ALLOCS.with(|c| c.get());
        for _ in 0..100 {
            assert_eq!(m.matches(&msg), first);
        }
        let after = ALLOCS.with(|c| c.get());
        assert_eq!(after - before, 0, "{src} allocated");
    }
}

#[test]
fn uuid_constant_is_the_hyphenated_form() {
    assert_eq!(heka_msg().uuid_string(), UUID_STR);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Tokens of the grammar, valid and invalid, for token soups.
    const TOKENS: &[&str] = &[
        "Uuid",
        "Type",
        "Logger",
        "Payload",
        "EnvVersion",
        "Hostname",
        "Timestamp",
        "Severity",
        "Pid",
        "Fields[foo]",
        "Fields[int][0][1]",
        "Fields[bool]",
        "Fields[",
        "Fields",
        "]",
        "[",
        "==",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        "=~",
        "!~",
        "&&",
        "||",
        "(",
        ")",
        "TRUE",
        "FALSE",
        "NIL",
        "'TEST'",
        "\"b\\\"q\"",
        "'open",
        "64",
        "-1",
        ".5",
        "1e3",
        "1.2.3",
        "/TE/",
        "/^Go/",
        "/load$/",
        "/(/",
        "/a\\/b/",
        "/open",
        "\n",
        " ",
        "\t",
        "=",
        "!",
        "|",
        "&",
        "\\",
        "é",
        "\0",
        "Bogus",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..24).prop_map(
            |toks| {
                toks.into_iter()
                    .map(|(t, space)| {
                        if space {
                            format!("{t} ")
                        } else {
                            t.to_string()
                        }
                    })
                    .collect()
            },
        )
    }

    fn exercise(src: &str) {
        match Matcher::parse(src) {
            Ok(m) => {
                let _ = m.matches(&heka_msg());
                let _ = m.matches(&odd_msg());
                let _ = m.matches(&Message::default());
                let _ = m.describe();
            }
            Err(e) => {
                assert!(e.pos <= src.len(), "{src:?}: pos {} beyond input", e.pos);
                assert!(e.to_string().starts_with("syntax error: last token: "));
            }
        }
    }

    /// A random expression tree over known leaves, rendered with minimal parentheses.
    #[derive(Debug, Clone)]
    enum Expr {
        Leaf(&'static str),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
    }

    const LEAVES: &[&str] = &[
        "TRUE",
        "FALSE",
        "Type == 'TEST'",
        "Severity < 3",
        "Fields[int] > 1000",
        "Fields[missing] != 1",
        "Logger =~ /^Go/",
        "Payload !~ /load$/",
        "Fields[bool] == TRUE",
    ];

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop::sample::select(LEAVES).prop_map(Expr::Leaf);
        leaf.prop_recursive(6, 48, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(a.into(), b.into())),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(a.into(), b.into())),
            ]
        })
    }

    /// Renders with only the parentheses precedence and left-associativity need.
    fn render(e: &Expr) -> String {
        match e {
            Expr::Leaf(s) => s.to_string(),
            Expr::Or(a, b) => {
                let right = match **b {
                    Expr::Or(..) => format!("({})", render(b)),
                    _ => render(b),
                };
                format!("{} || {right}", render(a))
            }
            Expr::And(a, b) => {
                let wrap = |x: &Expr, right: bool| match x {
                    Expr::Or(..) => format!("({})", render(x)),
                    Expr::And(..) if right => format!("({})", render(x)),
                    _ => render(x),
                };
                format!("{} && {}", wrap(a, false), wrap(b, true))
            }
        }
    }

    fn reference(e: &Expr, msg: &Message) -> bool {
        match e {
            Expr::Leaf(s) => Matcher::parse(s).expect("leaf parses").matches(msg),
            Expr::And(a, b) => reference(a, msg) && reference(b, msg),
            Expr::Or(a, b) => reference(a, msg) || reference(b, msg),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics_on_arbitrary_strings(src in ".{0,64}") {
            exercise(&src);
        }

        #[test]
        fn parse_never_panics_on_token_soup(src in soup()) {
            exercise(&src);
        }

        #[test]
        fn regex_operands_never_panic(re in r"[a-z0-9{}()\[\]^$.*+?|,:\\dDwWsSbBpPQEx/-]{0,24}") {
            exercise(&format!("Type =~ /{re}/ || Fields[foo] !~ /{re}/"));
        }

        #[test]
        fn and_or_compose_with_precedence(e in expr()) {
            let src = render(&e);
            let m = Matcher::parse(&src).map_err(|err| TestCaseError::fail(format!("{src}: {err}")))?;
            for msg in [heka_msg(), odd_msg(), Message::default()] {
                prop_assert_eq!(m.matches(&msg), reference(&e, &msg), "{}", src);
            }
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let src = format!("{}TRUE{}", "(".repeat(5000), ")".repeat(5000));
        assert!(Matcher::parse(&src).is_err());
        let src = "TRUE && ".repeat(5000) + "TRUE";
        assert!(Matcher::parse(&src)
            .expect("long flat chain parses")
            .matches(&heka_msg()));
    }
}
