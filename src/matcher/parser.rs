//! Recursive-descent parser for `message_matcher`, called by [`super::Matcher::parse`].
//!
//! Grammar (heka.md §2.3; `&&` binds tighter than `||`, both left-associative):
//!
//! ```text
//! spec    := or EOF
//! or      := and ('||' and)*
//! and     := primary ('&&' primary)*
//! primary := '(' or ')' | TRUE | FALSE | test
//! test    := STRVAR relop STRING | STRVAR ('=~'|'!~') REGEX
//!          | NUMVAR relop NUMBER
//!          | FIELD relop (NUMBER|STRING) | FIELD '==' (TRUE|FALSE)
//!          | FIELD ('=~'|'!~') REGEX | FIELD ('=='|'!=') NIL
//! ```
//!
//! Error positions follow Heka's LALR parser, which stops at the first token that
//! cannot continue any valid input. Heka's grammar also accepts two expressions side by
//! side (`spec: spec expr`, evaluating only the last); we reject that, but keep parsing
//! past it first so that any *other* error is reported exactly where Heka reports it.

use super::eval::{FieldCmp, FieldRef, Node, StrCmp, Test};
use super::lexer::{Lexed, Lexer, NumVar, RelOp, StrVar, Tok};
use super::MatcherError;

/// How deep parentheses may nest; deeper input is rejected rather than risking the stack.
pub(crate) const MAX_DEPTH: usize = 200;

/// Parses a whole matcher expression.
pub(crate) fn parse(src: &str) -> Result<Node, MatcherError> {
    let mut lx = Lexer::new(src);
    let cur = lx.next_token();
    let mut p = Parser { lx, cur, depth: 0 };
    let root = p.or()?;
    let mut side_by_side = None;
    while starts_expr(&p.cur.tok) {
        side_by_side.get_or_insert_with(|| {
            error_at(&p.cur, "two expressions without `&&` or `||` between them")
        });
        p.or()?;
    }
    let end = p.advance();
    if !matches!(end.tok, Tok::Eof) {
        return Err(unexpected(&end, "`&&`, `||` or the end of the expression"));
    }
    if let Some(e) = side_by_side {
        return Err(e);
    }
    check_after_newline(src, &p.lx)?;
    Ok(root)
}

/// Heka stops reading at a newline (or NUL) and ignores the rest; rather than silently
/// dropping text, anything but whitespace after it is an error.
fn check_after_newline(src: &str, lx: &Lexer<'_>) -> Result<(), MatcherError> {
    let rest = src.get(lx.pos()..).unwrap_or("");
    match rest.char_indices().find(|(_, c)| !c.is_whitespace()) {
        None => Ok(()),
        Some((i, c)) => Err(MatcherError::new(
            lx.pos() + i + c.len_utf8(),
            lx.sym(),
            "text after a newline or NUL (Heka would ignore it)",
        )),
    }
}

fn starts_expr(t: &Tok) -> bool {
    matches!(
        t,
        Tok::LParen | Tok::True | Tok::False | Tok::StrVar(_) | Tok::NumVar(_) | Tok::Field { .. }
    )
}

/// An error reported on token `t`.
fn error_at(t: &Lexed, reason: &str) -> MatcherError {
    MatcherError::new(t.pos, &t.last, reason)
}

/// An error for an unexpected token `t`, naming what was expected instead.
fn unexpected(t: &Lexed, expected: &str) -> MatcherError {
    let found = match &t.tok {
        Tok::Bad(why) => return error_at(t, why),
        Tok::Eof => "the end of the expression".to_string(),
        Tok::Char(c) => format!("{c:?}"),
        other => describe_tok(other),
    };
    error_at(t, &format!("expected {expected}, found {found}"))
}

fn describe_tok(t: &Tok) -> String {
    match t {
        Tok::Rel(op) => format!("`{}`", op.symbol()),
        Tok::Re { negate } => (if *negate { "`!~`" } else { "`=~`" }).to_string(),
        Tok::Or => "`||`".into(),
        Tok::And => "`&&`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::StrVar(v) => format!("`{}`", v.name()),
        Tok::NumVar(v) => format!("`{}`", v.name()),
        Tok::Field { .. } => "a `Fields[..]` variable".into(),
        Tok::Str(_) => "a string".into(),
        Tok::Num(_) => "a number".into(),
        Tok::Regex(_) => "a regex".into(),
        Tok::Nil => "`NIL`".into(),
        Tok::True => "`TRUE`".into(),
        Tok::False => "`FALSE`".into(),
        Tok::Eof | Tok::Char(_) | Tok::Bad(_) => "an invalid token".into(),
    }
}

struct Parser<'a> {
    lx: Lexer<'a>,
    /// The lookahead token.
    cur: Lexed,
    /// Current parenthesis nesting.
    depth: usize,
}

impl Parser<'_> {
    /// Consumes the lookahead, returning it, and lexes the next one.
    fn advance(&mut self) -> Lexed {
        let next = self.lx.next_token();
        std::mem::replace(&mut self.cur, next)
    }

    fn or(&mut self) -> Result<Node, MatcherError> {
        let mut items = vec![self.and()?];
        while matches!(self.cur.tok, Tok::Or) {
            self.advance();
            items.push(self.and()?);
        }
        Ok(collapse(items, Node::Or))
    }

    fn and(&mut self) -> Result<Node, MatcherError> {
        let mut items = vec![self.primary()?];
        while matches!(self.cur.tok, Tok::And) {
            self.advance();
            items.push(self.primary()?);
        }
        Ok(collapse(items, Node::And))
    }

    fn primary(&mut self) -> Result<Node, MatcherError> {
        let t = self.advance();
        match t.tok {
            Tok::LParen => self.group(&t),
            Tok::True => Ok(Node::Const(true)),
            Tok::False => Ok(Node::Const(false)),
            Tok::StrVar(v) => self.string_test(v),
            Tok::NumVar(v) => self.numeric_test(v),
            Tok::Field { name, fi, ai } => {
                let r = FieldRef {
                    name: name.into(),
                    fi,
                    ai,
                };
                self.field_test(r)
            }
            _ => Err(unexpected(&t, "a variable, `TRUE`, `FALSE` or `(`")),
        }
    }

    /// The rest of `( expr )` after `open`.
    fn group(&mut self, open: &Lexed) -> Result<Node, MatcherError> {
        if self.depth >= MAX_DEPTH {
            return Err(error_at(open, "parentheses nested too deeply"));
        }
        self.depth += 1;
        let inner = self.or()?;
        self.depth -= 1;
        let close = self.advance();
        match close.tok {
            Tok::RParen => Ok(inner),
            _ => Err(unexpected(&close, "`&&`, `||` or `)`")),
        }
    }

    fn string_test(&mut self, var: StrVar) -> Result<Node, MatcherError> {
        let op = self.advance();
        let cmp = match op.tok {
            Tok::Rel(rel) => {
                let v = self.advance();
                match v.tok {
                    Tok::Str(s) => StrCmp::Rel(rel, s.into_bytes().into()),
                    _ => return Err(unexpected(&v, "a quoted string")),
                }
            }
            Tok::Re { negate } => StrCmp::Re(self.regex()?, negate),
            _ => return Err(unexpected(&op, "a comparison operator")),
        };
        Ok(Node::Test(Test::Header(var, cmp)))
    }

    fn numeric_test(&mut self, var: NumVar) -> Result<Node, MatcherError> {
        let op = self.advance();
        let Tok::Rel(rel) = op.tok else {
            return Err(unexpected(&op, "a relational operator"));
        };
        let v = self.advance();
        match v.tok {
            Tok::Num(n) => Ok(Node::Test(Test::Number(var, rel, n))),
            _ => Err(unexpected(&v, "a number")),
        }
    }

    fn field_test(&mut self, r: FieldRef) -> Result<Node, MatcherError> {
        let op = self.advance();
        let cmp = match op.tok {
            Tok::Re { negate } => FieldCmp::Str(StrCmp::Re(self.regex()?, negate)),
            Tok::Rel(rel) => {
                let v = self.advance();
                match (v.tok, rel) {
                    (Tok::Num(n), _) => FieldCmp::Num(rel, n),
                    (Tok::Str(s), _) => FieldCmp::Str(StrCmp::Rel(rel, s.into_bytes().into())),
                    (Tok::True, RelOp::Eq) => FieldCmp::Bool(true),
                    (Tok::False, RelOp::Eq) => FieldCmp::Bool(false),
                    (Tok::Nil, RelOp::Eq | RelOp::Ne) => FieldCmp::Nil(rel == RelOp::Eq),
                    (tok, _) => {
                        let v = Lexed { tok, ..v };
                        return Err(unexpected(&v, field_operand_hint(rel)));
                    }
                }
            }
            _ => return Err(unexpected(&op, "a comparison operator")),
        };
        Ok(Node::Test(Test::Field(r, cmp)))
    }

    /// The `/regex/` operand after `=~` or `!~`.
    fn regex(&mut self) -> Result<super::pattern::Pattern, MatcherError> {
        let v = self.advance();
        match v.tok {
            Tok::Regex(p) => Ok(*p),
            _ => Err(unexpected(&v, "a /regex/")),
        }
    }
}

fn field_operand_hint(rel: RelOp) -> &'static str {
    match rel {
        RelOp::Eq => "a number, a string, `TRUE`, `FALSE` or `NIL`",
        RelOp::Ne => "a number, a string or `NIL`",
        _ => "a number or a string",
    }
}

/// One item stays itself; several become an `And`/`Or` list.
fn collapse(mut items: Vec<Node>, list: fn(Vec<Node>) -> Node) -> Node {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    list(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (String, usize) {
        let e = parse(src).expect_err(src);
        (e.last_token, e.pos)
    }

    #[test]
    fn precedence_builds_or_of_ands() {
        let n = parse("TRUE || FALSE && FALSE").expect("parses");
        let Node::Or(items) = n else {
            panic!("expected Or, got {n:?}")
        };
        assert!(matches!(items[1], Node::And(_)));
    }

    #[test]
    fn chains_are_flat_lists() {
        let n = parse("TRUE && TRUE && FALSE").expect("parses");
        assert!(matches!(n, Node::And(ref v) if v.len() == 3));
    }

    #[test]
    fn error_positions_match_heka() {
        assert_eq!(err(""), ("".into(), 0));
        assert_eq!(err("bogus"), ("".into(), 1));
        assert_eq!(err("Type = 'test'"), ("Type".into(), 7));
        assert_eq!(err("Invalid == 'bogus'"), ("Invalid".into(), 8));
        assert_eq!(err("Fields[]"), ("Fields".into(), 8));
        assert_eq!(err("Type == NIL"), ("NIL".into(), 11));
        assert_eq!(err("Severity < -1"), ("Severity".into(), 12));
    }

    #[test]
    fn side_by_side_is_rejected_at_the_second_expression() {
        assert_eq!(err("TRUE FALSE"), ("FALSE".into(), 10));
        // A later genuine error wins, as in Heka.
        assert_eq!(err("TRUE FALSE )"), ("FALSE".into(), 12));
    }

    #[test]
    fn nesting_limit() {
        let deep = format!("{}TRUE{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&deep).is_ok());
        let deeper = format!(
            "{}TRUE{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&deeper).is_err());
    }

    #[test]
    fn trailing_text_after_newline_is_rejected() {
        assert!(parse("TRUE\n").is_ok());
        assert!(parse("TRUE\n  \n").is_ok());
        assert_eq!(err("TRUE\n|| FALSE"), ("TRUE".into(), 6));
    }
}
