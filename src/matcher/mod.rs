//! Heka's `message_matcher` language: [`Matcher::parse`] compiles an expression once (at
//! config time, by the pipeline builder and `hekate check`) and the router calls
//! [`Matcher::matches`] for every message it fans out.
//!
//! Files: `lexer` (tokens and Heka's error positions), `parser` (recursive descent),
//! `pattern` (regex operands and their fast paths), `eval` (the compiled tree).
//!
//! # Grammar
//!
//! | Form | Meaning |
//! |---|---|
//! | `TRUE`, `FALSE` | Match everything / nothing. |
//! | `a && b`, `a \|\| b`, `( a )` | `&&` binds tighter than `\|\|`; both are left-associative and short-circuit. |
//! | `Uuid`, `Type`, `Logger`, `Payload`, `EnvVersion`, `Hostname` | String headers; compare with a quoted string or match a `/regex/`. `Uuid` is its hyphenated lower-case text. |
//! | `Timestamp`, `Severity`, `Pid` | Numeric headers; compare with a number. `Timestamp` is nanoseconds since the epoch; an absent `Pid` reads as 0. |
//! | `Fields[name]`, `Fields[name][fi]`, `Fields[name][fi][ai]` | Element `ai` of the `fi`-th field called `name` (missing indices are 0). |
//! | `==` `!=` `<` `<=` `>` `>=` | Relational operators: byte-wise for strings, as `f64` for numbers. |
//! | `=~` `!~` | Regex match / no match (`/.../`, RE2 syntax, `\/` is a slash). `/^lit/`, `/lit$/` and `/lit/` run as prefix, suffix and substring tests. |
//! | `'...'`, `"..."` | Strings; a backslash escapes only the quote character (`\n` stays two characters). |
//! | `123`, `1.5`, `.5`, `1e3` | Numbers start with a digit or `.`; there are no negative literals. |
//! | `Fields[x] == TRUE`, `== FALSE` | Bool fields (only `==`). |
//! | `Fields[x] == NIL`, `!= NIL` | The field (element) is absent / present. |
//!
//! Variables are on the left and literals on the right. For a missing field every test
//! is false except `== NIL` (even `!=` is false). A test whose literal does not fit the
//! field's type is false: a STRING or BYTES field only compares with strings and
//! regexes, an INTEGER or DOUBLE field only with numbers, a BOOL field only with `TRUE`,
//! `FALSE` and `NIL`. BYTES compare as strings.
//!
//! # Where we differ from Heka 0.10 on purpose
//!
//! Each is a Heka parser or evaluator accident that silently changes what a matcher
//! means; we reject the input or follow the documented rule instead.
//! * Two expressions side by side (`TRUE FALSE`) parse in Heka, which keeps the last
//!   one; here it is an error.
//! * Heka treats an unknown variable, a malformed `Fields[..]`, an invalid regex or a
//!   trailing lone `=`/`!`/`|`/`&` as the end of the input, so `TRUE Bogus` matches
//!   everything; here each is an error at that token.
//! * Heka stops at the first newline and ignores the rest; here text after a newline
//!   is an error (trailing blank lines are fine).
//! * A malformed number (`1.2.3`, `1e999`) silently reads as 0 in Heka; here it is an
//!   error.
//! * Heka compares a STRING field with `TRUE`/`FALSE` as the text `"TRUE"`/`"FALSE"`, and
//!   a BOOL field compared with a number, string or regex matches when the bool is
//!   false; here both are type mismatches (false).
//!
//! Regexes keep their RE2 meaning where the `regex` crate would differ: `\d \w \s \b`
//! stay ASCII, `\Q..\E` quotes, and a `{` that does not start a repeat (`{"k"`,
//! `a{,3}`) is a literal brace. The `regex` crate accepts a few patterns RE2 rejects
//! (`a**`, `a{1001}`, `(?x)`); those compile here.
//!
//! Like Heka (and unlike heka.md §2.3's reading of its evaluator), `Type == NIL` (NIL on
//! a header) is a syntax error, as Heka's own test suite asserts; so is
//! `Fields[x] > NIL`. A string ending in a backslash-escaped newline is an error here
//! (Heka would read on past the newline). Parenthesised nesting is limited to 200
//! levels.
//!
//! May import: `message`, `error`; a foundation module.

mod eval;
mod lexer;
mod parser;
mod pattern;

use crate::message::Message;
use eval::{FieldCmp, Node, StrCmp, Test};
use lexer::{NumVar, RelOp, StrVar};
use std::fmt;

/// A compiled `message_matcher` expression.
#[derive(Debug, Clone)]
pub struct Matcher {
    source: String,
    root: Node,
}

impl Matcher {
    /// Compiles `src`. Regexes are compiled here; an empty string is an error (callers
    /// treat an absent or empty `message_matcher` as "matches nothing" before this).
    pub fn parse(src: &str) -> Result<Matcher, MatcherError> {
        let root = parser::parse(src)?;
        Ok(Matcher {
            source: src.to_string(),
            root,
        })
    }

    /// True when `msg` satisfies the expression. Never allocates.
    #[inline(always)]
    pub fn matches(&self, msg: &Message) -> bool {
        self.root.eval(msg)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled form, fully parenthesised, naming the strategy of each regex, e.g.
    /// `(Type == "a" && Logger =~ starts-with "app")`. Used by `hekate check`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        describe_node(&self.root, &mut out);
        out
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Matcher::parse(s)
    }
}

/// A matcher syntax error, displayed exactly as Heka does:
/// `syntax error: last token: <last_token> pos: <pos>`.
///
/// Both numbers come from the lexer state when the parser gave up, as in Heka:
/// * `pos` is a **byte** offset (Go indexes strings by byte) just past the last
///   character the lexer consumed. That includes one character of lookahead after a
///   variable name, a number, a lone `>`/`<`, and the character after a lone
///   `=`/`!`/`|`/`&`; so `Type = 'x'` fails at pos 7, not 5.
/// * `last_token` is the text of the most recent variable name, number, string body
///   or regex body lexed (operators and parentheses do not change it; `Fields[a]`
///   reports `Fields`). It is empty when no such token was read.
///
/// [`MatcherError::reason`] adds a human explanation that Heka did not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error: last token: {last_token} pos: {pos}")]
pub struct MatcherError {
    /// Byte offset just past the last character the lexer consumed.
    pub pos: usize,
    /// Text of the last name, number, string or regex lexed.
    pub last_token: String,
    reason: String,
}

impl MatcherError {
    fn new(pos: usize, last_token: &str, reason: &str) -> Self {
        MatcherError {
            pos,
            last_token: last_token.to_string(),
            reason: reason.to_string(),
        }
    }

    /// What went wrong, in words (e.g. `expected a number, found a string`).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

fn describe_node(n: &Node, out: &mut String) {
    match n {
        Node::Const(true) => out.push_str("TRUE"),
        Node::Const(false) => out.push_str("FALSE"),
        Node::And(items) => describe_list(items, " && ", out),
        Node::Or(items) => describe_list(items, " || ", out),
        Node::Test(t) => describe_test(t, out),
    }
}

fn describe_list(items: &[Node], sep: &str, out: &mut String) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        describe_node(item, out);
    }
    out.push(')');
}

fn describe_test(t: &Test, out: &mut String) {
    use std::fmt::Write;
    let _ = match t {
        Test::Header(var, cmp) => write!(out, "{} {}", var.name(), describe_str_cmp(cmp)),
        Test::Number(var, op, v) => write!(out, "{} {} {v}", var.name(), op.symbol()),
        Test::Field(r, cmp) => {
            let name = format!("Fields[{}][{}][{}]", r.name, r.fi, r.ai);
            match cmp {
                FieldCmp::Str(c) => write!(out, "{name} {}", describe_str_cmp(c)),
                FieldCmp::Num(op, v) => write!(out, "{name} {} {v}", op.symbol()),
                FieldCmp::Bool(b) => write!(out, "{name} == {}", if *b { "TRUE" } else { "FALSE" }),
                FieldCmp::Nil(true) => write!(out, "{name} == NIL"),
                FieldCmp::Nil(false) => write!(out, "{name} != NIL"),
            }
        }
    };
}

fn describe_str_cmp(c: &StrCmp) -> String {
    match c {
        StrCmp::Rel(op, lit) => format!("{} {:?}", op.symbol(), String::from_utf8_lossy(lit)),
        StrCmp::Re(p, false) => format!("=~ {}", p.describe()),
        StrCmp::Re(p, true) => format!("!~ {}", p.describe()),
    }
}

impl StrVar {
    /// The variable as written in expressions.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StrVar::Uuid => "Uuid",
            StrVar::Type => "Type",
            StrVar::Logger => "Logger",
            StrVar::Payload => "Payload",
            StrVar::EnvVersion => "EnvVersion",
            StrVar::Hostname => "Hostname",
        }
    }
}

impl NumVar {
    /// The variable as written in expressions.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NumVar::Timestamp => "Timestamp",
            NumVar::Severity => "Severity",
            NumVar::Pid => "Pid",
        }
    }
}

impl RelOp {
    /// The operator as written in expressions.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            RelOp::Eq => "==",
            RelOp::Ne => "!=",
            RelOp::Gt => ">",
            RelOp::Gte => ">=",
            RelOp::Lt => "<",
            RelOp::Lte => "<=",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;

    #[test]
    fn error_display_is_hekas() {
        let e = Matcher::parse("Type = 'x'").expect_err("invalid");
        assert_eq!(e.to_string(), "syntax error: last token: Type pos: 7");
        assert!(!e.reason().is_empty());
    }

    #[test]
    fn matcher_is_send_sync_clone_debug() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Matcher>();
        check::<MatcherError>();
    }

    #[test]
    fn describe_names_strategies() {
        let m = Matcher::parse(
            "Type == 'a' && (Logger =~ /^app/ || Fields[p] =~ /\\.php$/) || Severity <= 3",
        )
        .expect("parses");
        assert_eq!(
            m.describe(),
            r#"((Type == "a" && (Logger =~ starts-with "app" || Fields[p][0][0] =~ ends-with ".php")) || Severity <= 3)"#
        );
        assert_eq!(m.to_string(), m.source());
    }

    #[test]
    fn matches_a_message() {
        let m: Matcher = "Fields[n] >= 2 && Type != 'x'".parse().expect("parses");
        let mut msg = Message::default();
        assert!(!m.matches(&msg));
        msg.add_field(Field::integer("n", 2));
        assert!(m.matches(&msg));
    }
}
