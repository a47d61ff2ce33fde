//! Compiled `/regex/` operands of `=~` and `!~`, built by the lexer at parse time and
//! tested by the evaluator.
//!
//! Heka uses Go's RE2 `regexp`; we use the `regex` crate, whose syntax is nearly the same.
//! Two differences are bridged here so a pattern means what it meant in Heka:
//! * Perl classes are ASCII in RE2 (`\d` = `[0-9]`, `\w` = `[0-9A-Za-z_]`,
//!   `\s` = `[\t\n\f\r ]`, `\b` is an ASCII word boundary) but Unicode-aware in `regex`;
//!   they are rewritten to their ASCII forms.
//! * RE2 supports `\Q...\E` literal quoting; it is rewritten to escaped literal text.
//!
//! Fast paths (heka#1140): a pattern that is `^` + a plain literal becomes a prefix test,
//! a plain literal + `$` a suffix test, and a plain literal (no anchor) a substring test.
//! "Plain literal" means no metacharacter except escaped ASCII punctuation, so the fast
//! path always gives the same answer as the regex would.

use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};
use std::fmt;

/// A compiled regex operand.
#[derive(Clone)]
pub(crate) enum Pattern {
    /// `/^literal/`.
    Prefix(Box<[u8]>),
    /// `/literal$/`.
    Suffix(Box<[u8]>),
    /// `/literal/`.
    Contains(Box<memmem::Finder<'static>>),
    /// Anything else.
    Regex(Regex),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Compiles the body of a `/.../` token (after `\/` unescaping).
pub(crate) fn compile(src: &str) -> Result<Pattern, regex::Error> {
    if let Some(lit) = src.strip_prefix('^').and_then(plain_literal) {
        return Ok(Pattern::Prefix(lit.into_bytes().into()));
    }
    if let Some(lit) = src.strip_suffix('$').and_then(plain_literal) {
        return Ok(Pattern::Suffix(lit.into_bytes().into()));
    }
    if let Some(lit) = plain_literal(src) {
        return Ok(Pattern::Contains(Box::new(
            memmem::Finder::new(lit.as_bytes()).into_owned(),
        )));
    }
    RegexBuilder::new(&to_rust_syntax(src))
        .octal(true)
        .build()
        .map(Pattern::Regex)
}

impl Pattern {
    /// True when the pattern matches somewhere in `hay`.
    #[inline]
    pub(crate) fn is_match(&self, hay: &[u8]) -> bool {
        match self {
            Pattern::Prefix(p) => hay.starts_with(p),
            Pattern::Suffix(s) => hay.ends_with(s),
            Pattern::Contains(f) => f.find(hay).is_some(),
            Pattern::Regex(re) => re.is_match(hay),
        }
    }

    /// A readable form naming the strategy, e.g. `starts-with "app"` or `regex /a.c/`.
    pub(crate) fn describe(&self) -> String {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Pattern::Prefix(p) => format!("starts-with {:?}", lossy(p)),
            Pattern::Suffix(s) => format!("ends-with {:?}", lossy(s)),
            Pattern::Contains(f) => format!("contains {:?}", lossy(f.needle())),
            Pattern::Regex(re) => format!("regex /{}/", re.as_str()),
        }
    }
}

/// The literal text of `src` when it has no regex metacharacter (escaped ASCII
/// punctuation such as `\.` counts as literal), else `None`.
fn plain_literal(src: &str) -> Option<String> {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => out.push(e),
                _ => return None,
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                return None
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

/// Rewrites RE2-only or RE2-different syntax into `regex` crate syntax (module docs).
fn to_rust_syntax(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        i = match c {
            '\\' => rewrite_escape(src, i, &mut out),
            '{' => match repeat_len(&src[i..]) {
                Some(n) => {
                    out.push_str(&src[i..i + n]);
                    i + n
                }
                None => {
                    out.push_str("\\{");
                    i + 1
                }
            },
            _ => {
                out.push(c);
                i + c.len_utf8()
            }
        };
    }
    out
}

/// Rewrites the escape starting at `src[i]` (a backslash); returns the index after it.
fn rewrite_escape(src: &str, i: usize, out: &mut String) -> usize {
    let Some(e) = src[i + 1..].chars().next() else {
        out.push('\\');
        return src.len();
    };
    let after = i + 1 + e.len_utf8();
    let ascii_class = match e {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'b' => r"(?-u:\b)",
        'B' => r"(?-u:\B)",
        _ => "",
    };
    if !ascii_class.is_empty() {
        out.push_str(ascii_class);
        return after;
    }
    let end = match e {
        'Q' => {
            let text_end = src[after..].find(r"\E").map_or(src.len(), |j| after + j);
            out.push_str(&regex::escape(&src[after..text_end]));
            return (text_end + 2).min(src.len());
        }
        // `\p{Greek}`, `\x{263a}`: copy through the closing brace.
        'p' | 'P' | 'x' if src[after..].starts_with('{') => {
            src[after..].find('}').map_or(src.len(), |j| after + j + 1)
        }
        _ => after,
    };
    out.push_str(&src[i..end]);
    end
}

/// Length of a Go repeat operator (`{n}`, `{n,}`, `{n,m}`) at the start of `s`, if
/// there is one. RE2 reads any other `{` as a literal brace.
fn repeat_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let min = digits(1);
    if min == 0 {
        return None;
    }
    let mut j = 1 + min;
    if b.get(j) == Some(&b',') {
        j += 1 + digits(j + 1);
    }
    (b.get(j) == Some(&b'}')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, hay: &str) -> bool {
        compile(re)
            .expect("test pattern compiles")
            .is_match(hay.as_bytes())
    }

    #[test]
    fn fast_paths_are_chosen_for_plain_literals() {
        assert!(matches!(compile("^app"), Ok(Pattern::Prefix(_))));
        assert!(matches!(compile(r"\.php$"), Ok(Pattern::Suffix(_))));
        assert!(matches!(compile("a/b"), Ok(Pattern::Contains(_))));
        assert!(matches!(compile("^abc$"), Ok(Pattern::Regex(_))));
        assert!(matches!(compile("^a.c"), Ok(Pattern::Regex(_))));
        assert!(matches!(compile(r"^\d"), Ok(Pattern::Regex(_))));
    }

    #[test]
    fn fast_paths_agree_with_the_regex() {
        assert!(m("^app", "application"));
        assert!(!m("^app", "webapp"));
        assert!(m(r"\.php$", "/index.php"));
        assert!(!m(r"\.php$", "/index.php5"));
        assert!(m("^abc$", "abc"));
        assert!(!m("^abc$", "xabc"));
        assert!(m("", "anything"));
        assert!(m("^", ""));
    }

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert!(!m(r"^\d$", "٣"));
        assert!(m(r"^\d$", "3"));
        assert!(!m(r"^\w$", "é"));
        assert!(m(r"^[\w.]+$", "a.b_c"));
        assert!(!m(r"^\s$", "\u{0B}"));
        assert!(m(r"a\b", "a é"));
        assert!(m(r"^\\d$", r"\d"));
    }

    #[test]
    fn quoted_literals() {
        assert!(m(r"^\Qa.b\E$", "a.b"));
        assert!(!m(r"^\Qa.b\E$", "axb"));
        assert!(m(r"\Q*", "x*"));
    }

    #[test]
    fn braces_that_are_not_repeats_are_literal_as_in_re2() {
        assert!(m(r#"^{"k"#, r#"{"k":1}"#));
        assert!(m("a{", "a{"));
        assert!(m("^a{,3}$", "a{,3}"));
        assert!(m("^a{ 2}$", "a{ 2}"));
        assert!(m("^a{1,2$", "a{1,2"));
        assert!(m("^a{2}$", "aa"));
        assert!(m("^a{1,}$", "aaa"));
        assert!(m(r"^\p{Greek}\x{41}$", "αA"));
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert!(compile(r"\ytest").is_err());
        assert!(compile("(").is_err());
        assert!(compile("[a").is_err());
    }
}
