//! The target grammar of Graphite's render API: path expressions with `*`, `?`, `[..]`
//! and `{a,b}`, function calls with positional and keyword arguments, numbers, quoted
//! strings, `true`/`false`, `None`, `inf`, and pipes (`a.b|scale(2)`).

use super::GraphiteError;

/// One parsed target or argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A metric path expression, e.g. `stats.*.count`.
    Path(String),
    /// A function call.
    Call(Call),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A quoted string (quotes removed).
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `None`.
    None,
    /// `inf`.
    Inf,
}

/// A function call: `name(args..., key=value...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function name.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Expr>,
    /// Keyword arguments, in order.
    pub kwargs: Vec<(String, Expr)>,
}

/// Characters that end a path element (Graphite's `symbols`, less `{`, `}`, `.` and the
/// escape, which the path reader handles).
fn ends_path(c: char) -> bool {
    matches!(c, '(' | ')' | ',' | '\'' | '"' | '|') || c.is_whitespace()
}

/// Parses one `target`.
pub fn parse(target: &str) -> Result<Expr, GraphiteError> {
    let mut p = Parser { s: target, pos: 0 };
    let e = p.expression()?;
    p.space();
    if p.pos != p.s.len() {
        return Err(p.error("unexpected text after the expression"));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn space(&mut self) {
        let n = self.rest().len() - self.rest().trim_start().len();
        self.pos += n;
    }

    fn error(&self, why: &str) -> GraphiteError {
        GraphiteError::Parse {
            target: self.s.to_string(),
            why: format!("{why} at character {}", self.pos + 1),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`) at the cursor, not consumed.
    fn ident_len(&self) -> usize {
        let r = self.rest().as_bytes();
        match r.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                1 + r[1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count()
            }
            _ => 0,
        }
    }

    fn expression(&mut self) -> Result<Expr, GraphiteError> {
        self.space();
        let mut e = self.primary()?;
        loop {
            self.space();
            if !self.eat('|') {
                return Ok(e);
            }
            self.space();
            let Expr::Call(mut call) = self.primary()? else {
                return Err(self.error("a pipe must be followed by a function call"));
            };
            call.args.insert(0, e);
            e = Expr::Call(call);
        }
    }

    fn primary(&mut self) -> Result<Expr, GraphiteError> {
        let n = self.ident_len();
        if n > 0 && self.s[self.pos + n..].starts_with('(') {
            let name = self.s[self.pos..self.pos + n].to_string();
            self.pos += n + 1;
            return self.call(name);
        }
        self.path()
    }

    fn call(&mut self, name: String) -> Result<Expr, GraphiteError> {
        let mut call = Call {
            name,
            args: Vec::new(),
            kwargs: Vec::new(),
        };
        if self.eat(')') {
            return Ok(Expr::Call(call));
        }
        loop {
            self.space();
            let n = self.ident_len();
            let after = self.s[self.pos + n..].trim_start();
            if n > 0 && after.starts_with('=') && !after.starts_with("==") {
                let key = self.s[self.pos..self.pos + n].to_string();
                self.pos = self.s.len() - after.len() + 1;
                call.kwargs.push((key, self.arg()?));
            } else if !call.kwargs.is_empty() {
                return Err(self.error("positional argument after a keyword argument"));
            } else {
                call.args.push(self.arg()?);
            }
            if self.eat(')') {
                return Ok(Expr::Call(call));
            }
            if !self.eat(',') {
                return Err(self.error(&format!("expected ',' or ')' in {}(...)", call.name)));
            }
        }
    }

    fn arg(&mut self) -> Result<Expr, GraphiteError> {
        self.space();
        if let Some(q @ ('\'' | '"')) = self.peek() {
            let body = &self.rest()[1..];
            let end = body
                .find(q)
                .ok_or_else(|| self.error("unterminated string"))?;
            let s = body[..end].to_string();
            self.pos += end + 2;
            return Ok(Expr::Str(s));
        }
        if let Some(e) = self.number() {
            return Ok(e);
        }
        let n = self.ident_len();
        let word = self.s[self.pos..self.pos + n].to_ascii_lowercase();
        let next = self.s[self.pos + n..].trim_start().chars().next();
        if matches!(next, Some(',' | ')') | None) {
            let literal = match word.as_str() {
                "true" => Some(Expr::Bool(true)),
                "false" => Some(Expr::Bool(false)),
                "none" => Some(Expr::None),
                "inf" => Some(Expr::Inf),
                _ => None,
            };
            if let Some(l) = literal {
                self.pos += n;
                return Ok(l);
            }
        }
        self.expression()
    }

    /// A number followed by `,`, `)` or the end (otherwise it is a path like `1.foo`).
    fn number(&mut self) -> Option<Expr> {
        let r = self.rest();
        let b = r.as_bytes();
        let mut i = usize::from(b.first() == Some(&b'-'));
        let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int_digits = digits(i);
        if int_digits == 0 {
            return None;
        }
        i += int_digits;
        let mut float = false;
        if b.get(i) == Some(&b'.') && digits(i + 1) > 0 {
            i += 1 + digits(i + 1);
            float = true;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let j = i + 1 + usize::from(b.get(i + 1) == Some(&b'-'));
            if digits(j) > 0 {
                i = j + digits(j);
                float = true;
            }
        }
        let next = r[i..].trim_start().chars().next();
        if !matches!(next, Some(',' | ')') | None) {
            return None;
        }
        let text = &r[..i];
        let e = if float {
            Expr::Float(text.parse().ok()?)
        } else {
            match text.parse() {
                Ok(n) => Expr::Int(n),
                Err(_) => Expr::Float(text.parse().ok()?),
            }
        };
        self.pos += i;
        Some(e)
    }

    /// A path expression; `{...}` may hold commas and `\x` escapes a symbol.
    fn path(&mut self) -> Result<Expr, GraphiteError> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices().peekable();
        let mut depth = 0usize;
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => return Err(self.error("dangling '\\'")),
                },
                '{' => {
                    depth += 1;
                    out.push(c);
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    out.push(c);
                }
                ',' if depth > 0 => out.push(c),
                c if ends_path(c) || c == '}' => {
                    end = i;
                    break;
                }
                c => out.push(c),
            }
        }
        if depth > 0 {
            return Err(self.error("unclosed '{'"));
        }
        if out.is_empty() || out.starts_with('.') || out.ends_with('.') {
            return Err(self.error("expected a metric path or a function call"));
        }
        self.pos += end;
        Ok(Expr::Path(out))
    }
}

/// The first path expression inside an expression: Graphite's `_getFirstPathExpression`,
/// which `aliasByNode` and `groupByNode` apply to names such as `scale(a.b.c,2)`.
pub fn first_path_expression(name: &str) -> Option<String> {
    let mut e = parse(name).ok()?;
    loop {
        match e {
            Expr::Path(p) => return Some(p),
            Expr::Call(c) => e = c.args.into_iter().next()?,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call(Call {
            name: name.into(),
            args,
            kwargs: vec![],
        })
    }

    #[test]
    fn parses_calls_paths_and_literals() {
        let e = parse("sumSeries(a.{b,c}.*, scale(x.y, -2.5), 'n', true, None, 3)").unwrap();
        assert_eq!(
            e,
            call(
                "sumSeries",
                vec![
                    Expr::Path("a.{b,c}.*".into()),
                    call("scale", vec![Expr::Path("x.y".into()), Expr::Float(-2.5)]),
                    Expr::Str("n".into()),
                    Expr::Bool(true),
                    Expr::None,
                    Expr::Int(3),
                ]
            )
        );
    }

    #[test]
    fn keywords_pipes_and_numeric_paths() {
        let e = parse("a.b|movingAverage(windowSize=5)").unwrap();
        let Expr::Call(c) = e else { panic!() };
        assert_eq!(c.args, vec![Expr::Path("a.b".into())]);
        assert_eq!(c.kwargs, vec![("windowSize".into(), Expr::Int(5))]);
        assert_eq!(parse("1.foo").unwrap(), Expr::Path("1.foo".into()));
        assert_eq!(
            parse("host-[0-9].cpu?").unwrap(),
            Expr::Path("host-[0-9].cpu?".into())
        );
    }

    #[test]
    fn malformed_targets_are_errors() {
        for bad in [
            "sumSeries(a.b",
            "a.b)",
            "scale(a.b,'x)",
            "a.{b,c",
            "",
            "f(x=1, y)",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn first_path_of_a_call() {
        assert_eq!(
            first_path_expression("scale(a.b.c,2)").as_deref(),
            Some("a.b.c")
        );
        assert_eq!(first_path_expression("a.b").as_deref(), Some("a.b"));
    }
}
