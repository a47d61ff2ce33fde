//! The `message_matcher` tokenizer, called only by [`super::parser`].
//!
//! It consumes the source one `char` at a time with one character of lookahead, the way
//! Heka's hand-written yacc lexer does (`message_matcher_parser.y`, `Lex`), because Heka's
//! error message reports the lexer's state: the *last token text* (the most recent
//! variable name, number, string or regex body) and the *byte offset* just past the last
//! character the lexer consumed, lookahead included. Mirroring the consumption order is
//! what makes our `pos` equal to Heka's for the same input.
//!
//! Where Heka's lexer returns end-of-input for a malformed token (unknown variable, bad
//! `Fields[...]`, invalid regex, a lone `=`/`!`/`|`/`&` before the end), this lexer
//! returns [`Tok::Bad`] instead, so the parser rejects the input rather than silently
//! truncating it. A newline or NUL still ends the input, as in Heka.

use super::pattern::{self, Pattern};

/// A header variable holding a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrVar {
    Uuid,
    Type,
    Logger,
    Payload,
    EnvVersion,
    Hostname,
}

/// A header variable holding a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumVar {
    Timestamp,
    Severity,
    Pid,
}

/// A relational operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One token.
#[derive(Debug, Clone)]
pub(crate) enum Tok {
    Rel(RelOp),
    /// `=~` (false) or `!~` (true).
    Re {
        negate: bool,
    },
    Or,
    And,
    LParen,
    RParen,
    StrVar(StrVar),
    NumVar(NumVar),
    Field {
        name: String,
        fi: usize,
        ai: usize,
    },
    Str(String),
    Num(f64),
    Regex(Box<Pattern>),
    Nil,
    True,
    False,
    /// End of input (end of text, a newline or a NUL).
    Eof,
    /// A character no rule accepts.
    Char(char),
    /// A malformed token; the string says why.
    Bad(String),
}

/// A token plus the lexer state Heka would report if parsing failed on it.
#[derive(Debug, Clone)]
pub(crate) struct Lexed {
    pub tok: Tok,
    /// Heka's `sym`: the text of the last name, number, string or regex lexed so far.
    pub last: String,
    /// Heka's `lexPos`: bytes consumed so far, lookahead included.
    pub pos: usize,
}

/// The tokenizer state.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// The character read ahead by the previous token; `' '` means none.
    peek: char,
    sym: String,
    /// Set once end of input was returned; later calls return it again.
    ended: bool,
}

/// The character `getrune` returns at end of input, for a newline and for a NUL.
const END: char = '\0';

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            peek: ' ',
            sym: String::new(),
            ended: false,
        }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The current "last token" text.
    pub fn sym(&self) -> &str {
        &self.sym
    }

    /// The next token with the state to report on error.
    pub fn next_token(&mut self) -> Lexed {
        let tok = self.lex();
        Lexed {
            tok,
            last: self.sym.clone(),
            pos: self.pos,
        }
    }

    /// Consumes one character; newline, NUL and end of text all read as [`END`].
    fn getc(&mut self) -> char {
        match self.src[self.pos..].chars().next() {
            None => END,
            Some(c) => {
                self.pos += c.len_utf8();
                if c == '\n' {
                    END
                } else {
                    c
                }
            }
        }
    }

    fn lex(&mut self) -> Tok {
        if self.ended {
            return Tok::Eof;
        }
        let mut c = std::mem::replace(&mut self.peek, ' ');
        while c == ' ' || c == '\t' {
            c = self.getc();
        }
        match c {
            'A'..='Z' => self.word(c),
            '0'..='9' | '.' => self.number(c),
            '"' | '\'' => self.string(c),
            '/' => self.regex(),
            '=' => self.pair(&[('=', Tok::Rel(RelOp::Eq)), ('~', Tok::Re { negate: false })]),
            '!' => self.pair(&[('=', Tok::Rel(RelOp::Ne)), ('~', Tok::Re { negate: true })]),
            '|' => self.pair(&[('|', Tok::Or)]),
            '&' => self.pair(&[('&', Tok::And)]),
            '>' => self.angle(RelOp::Gt, RelOp::Gte),
            '<' => self.angle(RelOp::Lt, RelOp::Lte),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            END => {
                self.ended = true;
                Tok::Eof
            }
            other => Tok::Char(other),
        }
    }

    /// A two-character operator. Like Heka, a first character followed by anything
    /// else yields that *second* character as the token.
    fn pair(&mut self, seconds: &[(char, Tok)]) -> Tok {
        let c = self.getc();
        if let Some((_, tok)) = seconds.iter().find(|(s, _)| *s == c) {
            return tok.clone();
        }
        match c {
            END => Tok::Bad("operator cut short by the end of input".into()),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            other => Tok::Char(other),
        }
    }

    /// `>`/`>=` or `<`/`<=`; the character after a lone `>` is kept as lookahead.
    fn angle(&mut self, single: RelOp, with_eq: RelOp) -> Tok {
        let c = self.getc();
        if c == '=' {
            Tok::Rel(with_eq)
        } else {
            self.peek = c;
            Tok::Rel(single)
        }
    }

    /// A capitalised name: a header variable, `Fields[..]`, `TRUE`, `FALSE` or `NIL`.
    fn word(&mut self, first: char) -> Tok {
        self.sym.clear();
        let mut c = first;
        while c.is_ascii_alphabetic() {
            self.sym.push(c);
            c = self.getc();
        }
        let tok = match self.sym.as_str() {
            "Uuid" => Tok::StrVar(StrVar::Uuid),
            "Type" => Tok::StrVar(StrVar::Type),
            "Logger" => Tok::StrVar(StrVar::Logger),
            "Payload" => Tok::StrVar(StrVar::Payload),
            "EnvVersion" => Tok::StrVar(StrVar::EnvVersion),
            "Hostname" => Tok::StrVar(StrVar::Hostname),
            "Timestamp" => Tok::NumVar(NumVar::Timestamp),
            "Severity" => Tok::NumVar(NumVar::Severity),
            "Pid" => Tok::NumVar(NumVar::Pid),
            "TRUE" => Tok::True,
            "FALSE" => Tok::False,
            "NIL" => Tok::Nil,
            "Fields" if c == '[' => return self.field_indices(),
            "Fields" => return Tok::Bad("`Fields` must be followed by `[name]`".into()),
            _ => return Tok::Bad(format!("unknown variable `{}`", self.sym)),
        };
        self.peek = c;
        tok
    }

    /// The `name]`, `[fi]` and `[ai]` parts after `Fields[`.
    fn field_indices(&mut self) -> Tok {
        let mut parts: [String; 3] = Default::default();
        let mut n = 0;
        loop {
            let c = self.getc();
            match c {
                END => return Tok::Bad("unterminated `Fields[`".into()),
                ']' if parts[n].is_empty() => {
                    return Tok::Bad("empty name or index in `Fields[..]`".into())
                }
                ']' => {
                    n += 1;
                    let next = self.getc();
                    if next != '[' || n == parts.len() {
                        self.peek = next;
                        break;
                    }
                }
                _ if n == 0 => parts[0].push(c),
                '0'..='9' => parts[n].push(c),
                _ => return Tok::Bad("a `Fields` index must be decimal digits".into()),
            }
        }
        let index = |s: &str| -> Option<usize> {
            if s.is_empty() {
                return Some(0);
            }
            s.parse::<i64>().ok().and_then(|v| usize::try_from(v).ok())
        };
        match (index(&parts[1]), index(&parts[2])) {
            (Some(fi), Some(ai)) => Tok::Field {
                name: std::mem::take(&mut parts[0]),
                fi,
                ai,
            },
            _ => Tok::Bad("a `Fields` index is out of range".into()),
        }
    }

    /// A number: starts with a digit or `.`, continues with `0-9 . e + -`.
    fn number(&mut self, first: char) -> Tok {
        self.sym.clear();
        let mut c = first;
        while matches!(c, '0'..='9' | '.' | 'e' | '+' | '-') {
            self.sym.push(c);
            c = self.getc();
        }
        self.peek = c;
        match self.sym.parse::<f64>() {
            Ok(v) if v.is_finite() => Tok::Num(v),
            _ => Tok::Bad(format!("invalid number `{}`", self.sym)),
        }
    }

    /// A quoted string: a backslash escapes the quote character only; any other
    /// `\x` is kept as the two characters `\x`.
    fn string(&mut self, quote: char) -> Tok {
        self.sym.clear();
        loop {
            match self.getc() {
                END => return Tok::Bad("unterminated string".into()),
                '\\' => match self.getc() {
                    END => return Tok::Bad("unterminated string".into()),
                    c if c == quote => self.sym.push(quote),
                    c => {
                        self.sym.push('\\');
                        self.sym.push(c);
                    }
                },
                c if c == quote => return Tok::Str(self.sym.clone()),
                c => self.sym.push(c),
            }
        }
    }

    /// A `/regex/`: `\/` is a slash, any other `\x` is passed to the regex as is.
    fn regex(&mut self) -> Tok {
        self.sym.clear();
        loop {
            match self.getc() {
                END => return Tok::Bad("unterminated regex".into()),
                '\\' => match self.getc() {
                    END => return Tok::Bad("unterminated regex".into()),
                    '/' => self.sym.push('/'),
                    c => {
                        self.sym.push('\\');
                        self.sym.push(c);
                    }
                },
                '/' => break,
                c => self.sym.push(c),
            }
        }
        match pattern::compile(&self.sym) {
            Ok(p) => Tok::Regex(Box::new(p)),
            Err(e) => Tok::Bad(format!("invalid regex: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<(String, String, usize)> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let l = lx.next_token();
            let done = matches!(l.tok, Tok::Eof | Tok::Bad(_));
            let name = match &l.tok {
                Tok::Regex(p) => format!("Regex({})", p.describe()),
                t => format!("{t:?}"),
            };
            out.push((name, l.last, l.pos));
            if done {
                return out;
            }
        }
    }

    #[test]
    fn positions_include_one_character_of_lookahead() {
        let t = toks("Type == 'a'");
        assert_eq!(t[0], ("StrVar(Type)".into(), "Type".into(), 5));
        assert_eq!(t[1], ("Rel(Eq)".into(), "Type".into(), 7));
        assert_eq!(t[2], ("Str(\"a\")".into(), "a".into(), 11));
        assert_eq!(t[3], ("Eof".into(), "a".into(), 11));
    }

    #[test]
    fn lone_gt_reads_ahead_one_character() {
        let t = toks("Severity >5");
        assert_eq!(t[1].0, "Rel(Gt)");
        assert_eq!(t[1].2, 11);
        assert_eq!(t[2], ("Num(5.0)".into(), "5".into(), 11));
    }

    #[test]
    fn fields_indices_default_to_zero() {
        let t = toks("Fields[a b][2][3] ");
        assert_eq!(t[0].0, r#"Field { name: "a b", fi: 2, ai: 3 }"#);
        assert_eq!(t[0].1, "Fields");
        assert_eq!(t[0].2, 18);
        let t = toks("Fields[x][1]");
        assert_eq!(t[0].0, r#"Field { name: "x", fi: 1, ai: 0 }"#);
    }

    #[test]
    fn fourth_index_is_left_for_the_parser() {
        let t = toks("Fields[a][0][0][1]");
        assert_eq!(t[1].0, "Char('[')");
    }

    #[test]
    fn bad_fields_forms() {
        for src in [
            "Fields[]",
            "Fields[a][]",
            "Fields[a][x]",
            "Fields[a",
            "Fields",
            "Fieldsx",
        ] {
            let t = toks(src);
            assert!(t[0].0.starts_with("Bad("), "{src}: {t:?}");
        }
    }

    #[test]
    fn string_escapes_only_the_quote() {
        let t = toks(r#"'a\'b\nc' "x\"y\'z""#);
        assert_eq!(t[0].0, r#"Str("a'b\\nc")"#);
        assert_eq!(t[1].0, r#"Str("x\"y\\'z")"#);
    }

    #[test]
    fn newline_ends_input() {
        let t = toks("TRUE\n&& FALSE");
        assert_eq!(t[1], ("Eof".into(), "TRUE".into(), 5));
        let mut lx = Lexer::new("TRUE\n||");
        lx.next_token();
        lx.next_token();
        assert!(matches!(lx.next_token().tok, Tok::Eof));
        assert_eq!(lx.pos(), 5);
    }

    #[test]
    fn lone_operator_yields_next_character() {
        assert_eq!(toks("= 'a'")[0].0, "Char(' ')");
        assert_eq!(toks("&(")[0].0, "LParen");
        assert!(toks("|")[0].0.starts_with("Bad("));
    }

    #[test]
    fn numbers_and_negatives() {
        assert_eq!(toks(".5e+1")[0].0, "Num(5.0)");
        assert_eq!(toks("-1")[0].0, "Char('-')");
        assert!(toks("1.2.3")[0].0.starts_with("Bad("));
        assert!(toks("1e999")[0].0.starts_with("Bad("));
    }

    #[test]
    fn regex_slash_escape_and_fast_paths() {
        assert_eq!(toks(r"/a\/b/")[0].0, r#"Regex(contains "a/b")"#);
        assert_eq!(toks(r"/^app/")[0].0, r#"Regex(starts-with "app")"#);
        assert_eq!(toks(r"/\.php$/")[0].0, r#"Regex(ends-with ".php")"#);
        assert!(toks(r"/\ytest/")[0].0.starts_with("Bad("));
        assert_eq!(toks(r"/\ytest/")[0].1, r"\ytest");
    }

    #[test]
    fn unknown_variable_is_bad() {
        let t = toks("Invalid == 'x'");
        assert!(t[0].0.starts_with("Bad("));
        assert_eq!((t[0].1.as_str(), t[0].2), ("Invalid", 8));
    }
}
