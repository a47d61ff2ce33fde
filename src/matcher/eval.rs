//! The compiled matcher tree and its evaluation against a [`Message`]; built by
//! [`super::parser`], run by [`super::Matcher::matches`] on every routed message.
//!
//! Evaluation never allocates: header strings and field values are borrowed, the UUID is
//! formatted into a stack buffer only when a `Uuid` test runs, and field lookup walks
//! the field list in place.
//!
//! Semantics (heka.md §2.3, Heka `message_matcher.go` `testExpr`):
//! * strings (headers, STRING and BYTES fields) compare byte-wise, like Go strings;
//! * numbers (headers, INTEGER and DOUBLE fields) compare as `f64`;
//! * a missing field (name, field index or array index out of range) makes `== NIL`
//!   true and **every** other test false, `!=` included;
//! * a present field makes `== NIL` false and `!= NIL` true, whatever its type;
//! * a test whose literal does not fit the field's type is false.

use super::lexer::{NumVar, RelOp, StrVar};
use super::pattern::Pattern;
use crate::message::{Message, ValueRef};

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// `TRUE` or `FALSE`.
    Const(bool),
    /// Every child must match; evaluated left to right, stops at the first false.
    And(Vec<Node>),
    /// Any child must match; evaluated left to right, stops at the first true.
    Or(Vec<Node>),
    /// One comparison.
    Test(Test),
}

/// A single comparison.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// `Type == 'x'`, `Logger =~ /y/`, ...
    Header(StrVar, StrCmp),
    /// `Severity < 4`, ...
    Number(NumVar, RelOp, f64),
    /// `Fields[name][fi][ai] <op> <literal>`.
    Field(FieldRef, FieldCmp),
}

/// What a string is tested against.
#[derive(Debug, Clone)]
pub(crate) enum StrCmp {
    /// A relational comparison with a string literal.
    Rel(RelOp, Box<[u8]>),
    /// `=~` (`negate == false`) or `!~` (`negate == true`).
    Re(Pattern, bool),
}

/// `Fields[name][fi][ai]`.
#[derive(Debug, Clone)]
pub(crate) struct FieldRef {
    pub name: Box<str>,
    pub fi: usize,
    pub ai: usize,
}

/// What a field element is tested against.
#[derive(Debug, Clone)]
pub(crate) enum FieldCmp {
    /// A string literal or a regex: true only for STRING and BYTES fields.
    Str(StrCmp),
    /// A number literal: true only for INTEGER and DOUBLE fields.
    Num(RelOp, f64),
    /// `== TRUE` / `== FALSE`: true only for BOOL fields.
    Bool(bool),
    /// `== NIL` (`true`) or `!= NIL` (`false`).
    Nil(bool),
}

impl Node {
    /// Evaluates the expression. Lists recurse through the out-of-line [`all`] and
    /// [`any`], so this match can be inlined into them and into `Matcher::matches`.
    /// Always: LLVM's cost model otherwise keeps it out of line in some builds (seen after
    /// a module reshuffle), costing the router 7% with ten matchers.
    #[inline(always)]
    pub(crate) fn eval(&self, msg: &Message) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::Test(t) => t.eval(msg),
            Node::And(children) => all(children, msg),
            Node::Or(children) => any(children, msg),
        }
    }
}

/// True when every child matches, left to right, stopping at the first false.
#[inline(never)]
fn all(children: &[Node], msg: &Message) -> bool {
    children.iter().all(|c| c.eval(msg))
}

/// True when some child matches, left to right, stopping at the first true.
#[inline(never)]
fn any(children: &[Node], msg: &Message) -> bool {
    children.iter().any(|c| c.eval(msg))
}

impl Test {
    #[inline]
    fn eval(&self, msg: &Message) -> bool {
        match self {
            Test::Header(StrVar::Uuid, cmp) => uuid_test(msg, cmp),
            Test::Header(var, cmp) => cmp.eval(header_str(msg, *var).as_bytes()),
            Test::Number(var, op, v) => op.eval(&header_num(msg, *var), v),
            Test::Field(r, cmp) => match msg.field_value(&r.name, r.fi, r.ai) {
                None => matches!(cmp, FieldCmp::Nil(true)),
                Some(value) => cmp.eval(value),
            },
        }
    }
}

/// Tests the UUID's hyphenated lower-case text, formatted on the stack (kept out of
/// line so the common tests stay small).
#[inline(never)]
fn uuid_test(msg: &Message, cmp: &StrCmp) -> bool {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Uuid::from_bytes(msg.uuid)
        .hyphenated()
        .encode_lower(&mut buf);
    cmp.eval(s.as_bytes())
}

/// The string header `var`; `Uuid` is handled by the caller.
#[inline]
fn header_str(msg: &Message, var: StrVar) -> &str {
    match var {
        StrVar::Uuid => "",
        StrVar::Type => &msg.msg_type,
        StrVar::Logger => &msg.logger,
        StrVar::Payload => &msg.payload,
        StrVar::EnvVersion => &msg.env_version,
        StrVar::Hostname => &msg.hostname,
    }
}

/// The numeric header `var` as Heka sees it; an absent `Pid` reads as 0 (Go's getter
/// returns the zero value for an unset optional field).
#[inline]
fn header_num(msg: &Message, var: NumVar) -> f64 {
    match var {
        NumVar::Timestamp => msg.timestamp as f64,
        NumVar::Severity => f64::from(msg.severity),
        NumVar::Pid => f64::from(msg.pid.unwrap_or(0)),
    }
}

impl StrCmp {
    #[inline]
    fn eval(&self, s: &[u8]) -> bool {
        match self {
            StrCmp::Rel(op, lit) => op.eval(s, &**lit),
            StrCmp::Re(p, negate) => p.is_match(s) != *negate,
        }
    }
}

impl FieldCmp {
    #[inline]
    fn eval(&self, v: ValueRef<'_>) -> bool {
        match (self, v) {
            (FieldCmp::Nil(is_eq), _) => !*is_eq,
            (FieldCmp::Str(c), ValueRef::Str(s)) => c.eval(s.as_bytes()),
            (FieldCmp::Str(c), ValueRef::Bytes(b)) => c.eval(b),
            (FieldCmp::Num(op, lit), ValueRef::Int(n)) => op.eval(&(n as f64), lit),
            (FieldCmp::Num(op, lit), ValueRef::Double(d)) => op.eval(&d, lit),
            (FieldCmp::Bool(want), ValueRef::Bool(b)) => b == *want,
            _ => false,
        }
    }
}

impl RelOp {
    /// `a <op> b` for any partially ordered type (NaN compares false except `!=`).
    #[inline]
    fn eval<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            RelOp::Eq => a == b,
            RelOp::Ne => a != b,
            RelOp::Gt => a > b,
            RelOp::Gte => a >= b,
            RelOp::Lt => a < b,
            RelOp::Lte => a <= b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{smallvec, Field, FieldValue};

    fn field(name: &str, cmp: FieldCmp) -> Node {
        Node::Test(Test::Field(
            FieldRef {
                name: name.into(),
                fi: 0,
                ai: 0,
            },
            cmp,
        ))
    }

    #[test]
    fn missing_field_only_matches_eq_nil() {
        let msg = Message::default();
        assert!(field("x", FieldCmp::Nil(true)).eval(&msg));
        assert!(!field("x", FieldCmp::Nil(false)).eval(&msg));
        assert!(!field("x", FieldCmp::Num(RelOp::Ne, 1.0)).eval(&msg));
        assert!(!field(
            "x",
            FieldCmp::Str(StrCmp::Rel(RelOp::Ne, Box::from(&b"a"[..])))
        )
        .eval(&msg));
    }

    #[test]
    fn type_mismatch_is_false() {
        let mut msg = Message::default();
        msg.add_field(Field::string("s", "1"));
        msg.add_field(Field::new("b", FieldValue::Bool(smallvec![false])));
        assert!(!field("s", FieldCmp::Num(RelOp::Eq, 1.0)).eval(&msg));
        assert!(!field("s", FieldCmp::Bool(true)).eval(&msg));
        assert!(!field("b", FieldCmp::Num(RelOp::Gt, 0.0)).eval(&msg));
        assert!(field("b", FieldCmp::Bool(false)).eval(&msg));
    }

    #[test]
    fn and_or_short_circuit_over_lists() {
        let msg = Message::default();
        let t = Node::Const(true);
        let f = Node::Const(false);
        assert!(!Node::And(vec![t.clone(), f.clone()]).eval(&msg));
        assert!(Node::Or(vec![f, t]).eval(&msg));
    }

    #[test]
    fn absent_pid_reads_as_zero() {
        let msg = Message::default();
        assert_eq!(header_num(&msg, NumVar::Pid), 0.0);
    }

    #[test]
    fn nan_compares_unequal() {
        assert!(RelOp::Ne.eval(&f64::NAN, &1.0));
        assert!(!RelOp::Eq.eval(&f64::NAN, &f64::NAN));
        assert!(!RelOp::Lte.eval(&f64::NAN, &1.0));
    }
}
