//! The `re` module: LPeg's regex-like syntax (`re.compile`, `match`, `find`, `gsub`,
//! `updatelocale`), parsed by a recursive-descent parser that follows the PEG in LPeg's
//! `re` documentation rule for rule, including where a syntax error is reported
//! ("pattern error near '...'": the first sequence not followed by `/`, a closing
//! bracket, a rule definition or the end).
//!
//! As in `re.lua`, syntax errors stop the parse at once, while errors about meaning
//! (an undefined `%name`, a rule outside a grammar, a left-recursive grammar) are found
//! while the pattern is built; the first one in the text is reported.

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};

use super::tree::{self, CapKind, Charset, Key, Node, P};
use super::{class_set, classes, new_pattern, tree_of};

/// Registry key of the module table.
const RE: &str = "hekate.lpeg.re";

/// A `re` failure: a syntax error (stops parsing) or a meaning error.
enum ReErr {
    Syntax(String),
}

type R<T> = Result<T, ReErr>;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    lua: &'a Lua,
    defs: Option<Table>,
    /// Inside a grammar (LPeg's `G` group).
    in_grammar: bool,
    /// The first error about meaning, reported if the syntax is good.
    meaning: Option<String>,
}

fn space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, lit: &str) -> bool {
        self.s[self.i..].starts_with(lit.as_bytes())
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.at(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    /// Spaces and `--` comments.
    fn skip(&mut self) {
        loop {
            if self.peek().is_some_and(space) {
                self.i += 1;
            } else if self.at("--") {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else {
                return;
            }
        }
    }

    fn name_at(&self, i: usize) -> Option<usize> {
        if !self.s.get(i).copied().is_some_and(name_start) {
            return None;
        }
        let mut j = i + 1;
        while self.s.get(j).copied().is_some_and(name_char) {
            j += 1;
        }
        Some(j)
    }

    fn name(&mut self) -> Option<String> {
        let j = self.name_at(self.i)?;
        let n = String::from_utf8_lossy(&self.s[self.i..j]).into_owned();
        self.i = j;
        Some(n)
    }

    /// True when `S '<-'` follows position `i`.
    fn arrow_at(&self, i: usize) -> bool {
        let mut p = Parser {
            s: self.s,
            i,
            lua: self.lua,
            defs: None,
            in_grammar: false,
            meaning: None,
        };
        p.skip();
        p.at("<-")
    }

    fn error_here(&self) -> ReErr {
        let rest = &self.s[self.i..];
        let msg = if rest.len() < 21 {
            String::from_utf8_lossy(rest).into_owned()
        } else {
            format!("{}...", String::from_utf8_lossy(&rest[..21]))
        };
        ReErr::Syntax(format!("pattern error near '{msg}'"))
    }

    fn meaning(&mut self, msg: impl Into<String>) -> P {
        if self.meaning.is_none() {
            self.meaning = Some(msg.into());
        }
        Arc::new(Node::True)
    }

    fn build(&mut self, r: Result<P, tree::TreeError>) -> P {
        match r {
            Ok(p) => p,
            Err(e) => self.meaning(e.0),
        }
    }

    /// `exp <- S (grammar / alternative)`.
    fn exp(&mut self) -> R<Option<P>> {
        self.skip();
        if let Some(j) = self.name_at(self.i) {
            if self.arrow_at(j) {
                return self.grammar().map(Some);
            }
        }
        self.alternative()
    }

    fn alternative(&mut self) -> R<Option<P>> {
        let Some(mut p) = self.seq()? else {
            return Ok(None);
        };
        loop {
            let save = self.i;
            if !self.eat("/") {
                return Ok(Some(p));
            }
            self.skip();
            match self.seq()? {
                Some(q) => {
                    let r = tree::choice(&p, &q);
                    p = self.build(r);
                }
                None => {
                    self.i = save;
                    return Ok(Some(p));
                }
            }
        }
    }

    /// `seq <- prefix*`, which must be followed by what may follow a sequence.
    fn seq(&mut self) -> R<Option<P>> {
        let mut p: P = Arc::new(Node::True);
        while let Some(q) = self.prefix()? {
            let r = tree::seq(&p, &q);
            p = self.build(r);
        }
        if !self.seq_follows() {
            return Err(self.error_here());
        }
        Ok(Some(p))
    }

    fn seq_follows(&self) -> bool {
        if self.i >= self.s.len() {
            return true;
        }
        if ["/", ")", "}", ":}", "~}", "|}"].iter().any(|l| self.at(l)) {
            return true;
        }
        self.name_at(self.i).is_some_and(|j| self.arrow_at(j))
    }

    fn prefix(&mut self) -> R<Option<P>> {
        let save = self.i;
        for (op, not) in [("&", false), ("!", true)] {
            if self.eat(op) {
                self.skip();
                if let Some(p) = self.prefix()? {
                    let n = if not { Node::Not(p) } else { Node::And(p) };
                    let r = tree::wrap(n);
                    return Ok(Some(self.build(r)));
                }
                self.i = save;
                return Ok(None);
            }
        }
        self.suffix()
    }

    fn suffix(&mut self) -> R<Option<P>> {
        let Some(mut p) = self.primary()? else {
            return Ok(None);
        };
        self.skip();
        loop {
            let save = self.i;
            match self.suffix_op(&p)? {
                Some(q) => {
                    p = q;
                    self.skip();
                }
                None => {
                    self.i = save;
                    return Ok(Some(p));
                }
            }
        }
    }

    fn number(&mut self) -> Option<i64> {
        let st = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if st == self.i {
            return None;
        }
        let n = std::str::from_utf8(&self.s[st..self.i])
            .ok()?
            .parse::<i64>()
            .ok();
        self.skip();
        n
    }

    fn suffix_op(&mut self, p: &P) -> R<Option<P>> {
        if self.eat("+") {
            let r = tree::power(p, 1);
            return Ok(Some(self.build(r)));
        }
        if self.eat("*") {
            let r = tree::power(p, 0);
            return Ok(Some(self.build(r)));
        }
        if self.eat("?") {
            let r = tree::power(p, -1);
            return Ok(Some(self.build(r)));
        }
        if self.eat("^") {
            if let Some(n) = self.number() {
                return Ok(Some(self.repeat(p, n)));
            }
            let sign = self.peek();
            if matches!(sign, Some(b'+' | b'-'))
                && self.s.get(self.i + 1).is_some_and(|c| c.is_ascii_digit())
            {
                self.i += 1;
                let st = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                let n: i64 = std::str::from_utf8(&self.s[st..self.i])
                    .ok()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                let n = if sign == Some(b'-') { -n } else { n };
                let r = tree::power(p, n);
                return Ok(Some(self.build(r)));
            }
            return Ok(None);
        }
        if self.eat("->") {
            self.skip();
            return Ok(self.arrow_target(p));
        }
        for (op, fname) in [("=>", "Cmt"), ("~>", "Cf")] {
            if self.eat(op) {
                self.skip();
                let Some(n) = self.name() else {
                    return Ok(None);
                };
                return Ok(Some(self.with_function(p, &n, fname)));
            }
        }
        Ok(None)
    }

    /// `p => name` (`Cmt`) or `p ~> name` (`Cf`) with the function `defs[name]`.
    fn with_function(&mut self, p: &P, name: &str, fname: &str) -> P {
        match self.def(name) {
            Some(Value::Function(f)) => {
                let node = if fname == "Cmt" {
                    Node::RunTime(f, p.clone())
                } else {
                    Node::Capture(CapKind::Fold(f), p.clone())
                };
                let r = tree::wrap(node);
                self.build(r)
            }
            Some(v) => self.meaning(format!(
                "bad argument #2 to '{fname}' (function expected, got {})",
                super::capture::type_name(&v)
            )),
            None => Arc::new(Node::True),
        }
    }

    /// `p ^ n`: exactly `n` copies.
    fn repeat(&mut self, p: &P, n: i64) -> P {
        let mut r: P = Arc::new(Node::True);
        for _ in 0..n.min(10_000) {
            let x = tree::seq(&r, p);
            r = self.build(x);
        }
        r
    }

    fn arrow_target(&mut self, p: &P) -> Option<P> {
        if let Some(s) = self.string() {
            let r = tree::wrap(Node::Capture(CapKind::Str(s), p.clone()));
            return Some(self.build(r));
        }
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            let n = self.number()?;
            if !(0..=i16::MAX as i64).contains(&n) {
                return Some(self.meaning("bad argument #1 to 'div' (invalid number)"));
            }
            let r = tree::wrap(Node::Capture(CapKind::Num(n as u32), p.clone()));
            return Some(self.build(r));
        }
        if self.eat("{}") {
            let r = tree::wrap(Node::Capture(CapKind::Table, p.clone()));
            return Some(self.build(r));
        }
        let n = self.name()?;
        let Some(def) = self.def(&n) else {
            return Some(p.clone());
        };
        let kind = match def {
            Value::Function(f) => CapKind::Func(f),
            Value::Table(t) => CapKind::Query(t),
            Value::String(s) => CapKind::Str(s.as_bytes().to_vec()),
            Value::Integer(n) if (0..=i16::MAX as i64).contains(&n) => CapKind::Num(n as u32),
            _ => return Some(self.meaning("bad argument #2 to 'div' (invalid replacement value)")),
        };
        let r = tree::wrap(Node::Capture(kind, p.clone()));
        Some(self.build(r))
    }

    /// `defs[name]`, or a meaning error "undefined name: x".
    fn def(&mut self, n: &str) -> Option<Value> {
        let v = self
            .defs
            .as_ref()
            .and_then(|d| d.get::<Value>(n).ok())
            .unwrap_or(Value::Nil);
        if v.is_nil() || matches!(v, Value::Boolean(false)) {
            self.meaning(format!("undefined name: {n}"));
            return None;
        }
        Some(v)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let q = self.peek().filter(|c| *c == b'\'' || *c == b'"')?;
        let st = self.i + 1;
        let end = self.s[st..].iter().position(|c| *c == q)? + st;
        self.i = end + 1;
        Some(self.s[st..end].to_vec())
    }

    fn primary(&mut self) -> R<Option<P>> {
        let save = self.i;
        if self.eat("(") {
            if let Some(p) = self.exp()? {
                if self.eat(")") {
                    return Ok(Some(p));
                }
            }
            self.i = save;
            return Ok(None);
        }
        if let Some(s) = self.string() {
            return Ok(Some(tree::literal(&s)));
        }
        if self.at("[") {
            if let Some(p) = self.class()? {
                return Ok(Some(p));
            }
            self.i = save;
        }
        if self.at("%") {
            if let Some(p) = self.defined() {
                return Ok(Some(p));
            }
            self.i = save;
        }
        if self.eat("{:") {
            let named = {
                let st = self.i;
                match self.name() {
                    Some(n) if self.eat(":") => Some(n),
                    _ => {
                        self.i = st;
                        None
                    }
                }
            };
            if let Some(p) = self.exp()? {
                if self.eat(":}") {
                    let name = match named {
                        Some(n) => Some(Value::String(
                            self.lua
                                .create_string(n)
                                .map_err(|e| ReErr::Syntax(e.to_string()))?,
                        )),
                        None => None,
                    };
                    let r = tree::wrap(Node::Capture(CapKind::Group(name), p));
                    return Ok(Some(self.build(r)));
                }
            }
            self.i = save;
            return Ok(None);
        }
        if self.eat("=") {
            if let Some(n) = self.name() {
                return Ok(Some(self.back_equal(&n)?));
            }
            self.i = save;
            return Ok(None);
        }
        if self.eat("{}") {
            return Ok(Some(Arc::new(Node::Capture(
                CapKind::Position,
                Arc::new(Node::True),
            ))));
        }
        for (open, close, kind) in [
            ("{~", "~}", CapKind::Subst),
            ("{|", "|}", CapKind::Table),
            ("{", "}", CapKind::Simple),
        ] {
            if self.eat(open) {
                if let Some(p) = self.exp()? {
                    if self.eat(close) {
                        let r = tree::wrap(Node::Capture(kind, p));
                        return Ok(Some(self.build(r)));
                    }
                }
                self.i = save;
                return Ok(None);
            }
        }
        if self.eat(".") {
            return Ok(Some(Arc::new(Node::Any)));
        }
        if let Some(j) = self.name_at(self.i) {
            if !self.arrow_at(j) {
                let n = self.name().unwrap_or_default();
                return Ok(Some(self.nonterminal(n)));
            }
        }
        if self.eat("<") {
            if let Some(n) = self.name() {
                if self.eat(">") {
                    return Ok(Some(self.nonterminal(n)));
                }
            }
            self.i = save;
        }
        Ok(None)
    }

    fn nonterminal(&mut self, n: String) -> P {
        if !self.in_grammar {
            return self.meaning(format!("rule '{n}' used outside a grammar"));
        }
        Arc::new(Node::OpenCall(Key::Str(n.into_bytes())))
    }

    /// `=name`: matches what the last group `name` captured.
    fn back_equal(&mut self, n: &str) -> R<P> {
        let f = self
            .lua
            .create_function(|_, (s, i, c): (mlua::LuaString, i64, Value)| {
                let Value::String(c) = c else {
                    return Ok(Value::Nil);
                };
                let (s, c) = (s.as_bytes(), c.as_bytes());
                let st = (i - 1) as usize;
                if s.len() >= st + c.len() && s[st..st + c.len()] == c[..] {
                    Ok(Value::Integer(i + c.len() as i64))
                } else {
                    Ok(Value::Nil)
                }
            })
            .map_err(|e| ReErr::Syntax(e.to_string()))?;
        let name = Value::String(
            self.lua
                .create_string(n)
                .map_err(|e| ReErr::Syntax(e.to_string()))?,
        );
        let cb = Arc::new(Node::Capture(CapKind::Backref(name), Arc::new(Node::True)));
        Ok(Arc::new(Node::RunTime(f, cb)))
    }

    /// `%name`: a definition or a predefined class.
    fn defined(&mut self) -> Option<P> {
        self.i += 1;
        let n = self.name()?;
        let from_defs = self
            .defs
            .as_ref()
            .and_then(|d| d.get::<Value>(n.as_str()).ok())
            .filter(|v| !v.is_nil() && !matches!(v, Value::Boolean(false)));
        if let Some(v) = from_defs {
            return Some(self.value_pattern(&v));
        }
        match predefined(&n) {
            Some(p) => Some(p),
            None => Some(self.meaning(format!("name '{n}' undefined"))),
        }
    }

    /// A definition used as a pattern (`lpeg.P` of it).
    fn value_pattern(&mut self, v: &Value) -> P {
        if let Some(t) = tree_of(v) {
            return t;
        }
        match v {
            Value::String(s) => tree::literal(&s.as_bytes()),
            Value::Integer(n) => {
                let r = tree::number(*n);
                self.build(r)
            }
            Value::Boolean(true) => Arc::new(Node::True),
            Value::Function(f) => Arc::new(Node::RunTime(f.clone(), Arc::new(Node::True))),
            other => self.meaning(format!(
                "bad argument #2 to 'mul' (lpeg-pattern expected, got {})",
                super::capture::type_name(other)
            )),
        }
    }

    /// `'[' '^'? item (!']' item)* ']'`.
    fn class(&mut self) -> R<Option<P>> {
        self.i += 1;
        let neg = self.eat("^");
        let Some(mut p) = self.item() else {
            return Ok(None);
        };
        loop {
            if self.eat("]") {
                break;
            }
            match self.item() {
                Some(q) => {
                    let r = tree::choice(&p, &q);
                    p = self.build(r);
                }
                None => return Ok(None),
            }
        }
        if neg {
            let r = tree::minus(&Arc::new(Node::Any), &p);
            p = self.build(r);
        }
        Ok(Some(p))
    }

    /// `item <- defined / range / .`.
    fn item(&mut self) -> Option<P> {
        let save = self.i;
        if self.at("%") {
            if let Some(p) = self.defined() {
                return Some(p);
            }
            self.i = save;
        }
        let c = self.peek()?;
        if self.s.get(self.i + 1) == Some(&b'-') {
            if let Some(&d) = self.s.get(self.i + 2) {
                if d != b']' {
                    self.i += 3;
                    let mut cs = Charset::default();
                    for x in c..=d {
                        cs.add(x);
                    }
                    return Some(if c > d {
                        Arc::new(Node::False)
                    } else {
                        tree::set(cs)
                    });
                }
            }
        }
        self.i += 1;
        Some(Arc::new(Node::Char(c)))
    }

    /// `grammar <- (name S '<-' exp)+`; the first rule is the initial one.
    fn grammar(&mut self) -> R<P> {
        let outer = self.in_grammar;
        self.in_grammar = true;
        let mut names: Vec<Key> = Vec::new();
        let mut bodies = Vec::new();
        loop {
            let save = self.i;
            let Some(j) = self.name_at(self.i) else { break };
            if !self.arrow_at(j) {
                break;
            }
            let n = self.name().unwrap_or_default();
            self.skip();
            self.eat("<-");
            let Some(body) = self.exp()? else {
                self.i = save;
                break;
            };
            let key = Key::Str(n.clone().into_bytes());
            if names.contains(&key) {
                self.meaning(format!("'{n}' already defined as a rule"));
            } else {
                names.push(key);
                bodies.push(body);
            }
        }
        self.in_grammar = outer;
        if names.is_empty() {
            return Err(self.error_here());
        }
        let r = tree::grammar(names, bodies);
        Ok(self.build(r))
    }
}

/// `re`'s predefined names (`%nl`, the classes, their one-letter forms and their
/// upper-case complements).
fn predefined(n: &str) -> Option<P> {
    if n == "nl" {
        return Some(Arc::new(Node::Char(b'\n')));
    }
    let all = classes();
    if let Some((_, f)) = all.iter().find(|(name, _)| *name == n) {
        return Some(tree::set(class_set(*f)));
    }
    let short = [
        ("a", "alpha"),
        ("c", "cntrl"),
        ("d", "digit"),
        ("g", "graph"),
        ("l", "lower"),
        ("p", "punct"),
        ("s", "space"),
        ("u", "upper"),
        ("w", "alnum"),
        ("x", "xdigit"),
    ];
    for (s, long) in short {
        let (_, f) = all.iter().find(|(name, _)| *name == long)?;
        if n == s {
            return Some(tree::set(class_set(*f)));
        }
        if n == s.to_ascii_uppercase() {
            return Some(tree::set(Charset::full().minus(&class_set(*f))));
        }
    }
    None
}

/// `re.compile(s, defs)` as a tree.
fn compile(lua: &Lua, src: &[u8], defs: Option<Table>) -> Result<P, String> {
    let mut p = Parser {
        s: src,
        i: 0,
        lua,
        defs,
        in_grammar: false,
        meaning: None,
    };
    p.skip();
    let r = match p.exp() {
        Ok(Some(t)) => t,
        Ok(None) => return Err("incorrect pattern".into()),
        Err(ReErr::Syntax(m)) => return Err(m),
    };
    if p.i < src.len() {
        return Err(p.error_here().msg());
    }
    if let Some(m) = p.meaning {
        return Err(m);
    }
    Ok(r)
}

impl ReErr {
    fn msg(self) -> String {
        match self {
            ReErr::Syntax(m) => m,
        }
    }
}

/// The `re` module table (created once per state).
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    if let Ok(t) = lua.named_registry_value::<Table>(RE) {
        return Ok(t);
    }
    let raw = lua.create_table()?;
    raw.set(
        "compile",
        super::wrap(lua, "compile", |lua, a| {
            let v = super::arg(&a, 0);
            if super::is_pattern(&v) {
                return Ok(MultiValue::from_vec(vec![v]));
            }
            let defs = match super::arg(&a, 1) {
                Value::Table(t) => Some(t),
                _ => None,
            };
            let p = compile_arg(lua, &a, defs)?;
            super::one(lua, p)
        })?,
    )?;
    raw.set(
        "match",
        super::wrap(lua, "match", |lua, a| {
            let p = pattern_arg(lua, &a, 1)?;
            let ud = new_pattern(lua, p).map_err(super::lua_fail)?;
            let mut args = vec![Value::UserData(ud), super::arg(&a, 0)];
            args.push(match super::arg(&a, 2) {
                Value::Nil => Value::Integer(1),
                v => v,
            });
            super::lp_match(lua, MultiValue::from_vec(args))
        })?,
    )?;
    raw.set(
        "find",
        super::wrap(lua, "find", |lua, a| {
            let p = pattern_arg(lua, &a, 1)?;
            let quiet = tree::wrap(Node::Capture(CapKind::Num(0), p))?;
            let cp = || Arc::new(Node::Capture(CapKind::Position, Arc::new(Node::True)));
            let hit = tree::seq(&tree::seq(&cp(), &quiet)?, &cp())?;
            let skip = tree::seq(&Arc::new(Node::Any), &Arc::new(Node::OpenCall(Key::Int(1))))?;
            let g = tree::grammar(vec![Key::Int(1)], vec![tree::choice(&hit, &skip)?])?;
            let ud = new_pattern(lua, g).map_err(super::lua_fail)?;
            let init = match super::arg(&a, 2) {
                Value::Nil => Value::Integer(1),
                v => v,
            };
            let r = super::lp_match(
                lua,
                MultiValue::from_vec(vec![Value::UserData(ud), super::arg(&a, 0), init]),
            )?;
            let v = r.into_vec();
            match (v.first(), v.get(1)) {
                (Some(Value::Integer(s)), Some(Value::Integer(e))) => {
                    Ok(MultiValue::from_vec(vec![
                        Value::Integer(*s),
                        Value::Integer(e - 1),
                    ]))
                }
                _ => Ok(MultiValue::from_vec(vec![Value::Nil])),
            }
        })?,
    )?;
    raw.set(
        "gsub",
        super::wrap(lua, "gsub", |lua, a| {
            let p = pattern_arg(lua, &a, 1)?;
            let kind = match super::arg(&a, 2) {
                Value::Function(f) => CapKind::Func(f),
                Value::Table(t) => CapKind::Query(t),
                Value::String(s) => CapKind::Str(s.as_bytes().to_vec()),
                Value::Integer(n) => super::num_cap(n)?,
                _ => return Err(super::bad(1, "div", "invalid replacement value")),
            };
            let rep = tree::wrap(Node::Capture(kind, p))?;
            let body = tree::choice(&rep, &Arc::new(Node::Any))?;
            let all = tree::wrap(Node::Capture(CapKind::Subst, tree::power(&body, 0)?))?;
            let ud = new_pattern(lua, all).map_err(super::lua_fail)?;
            super::lp_match(
                lua,
                MultiValue::from_vec(vec![Value::UserData(ud), super::arg(&a, 0)]),
            )
        })?,
    )?;
    raw.set(
        "updatelocale",
        super::wrap(lua, "updatelocale", |_, _| Ok(MultiValue::new()))?,
    )?;
    let shim: mlua::Function = lua
        .load("local mark, raw = ... local error = error\nlocal function chk(a, ...) if a == mark then error((...), 0) end return a, ... end\nlocal m = {} for k, f in pairs(raw) do m[k] = function(...) return chk(f(...)) end end return m")
        .set_name("=re")
        .into_function()?;
    let mark: Table = lua.named_registry_value(super::MARK)?;
    let m: Table = shim.call((mark, raw))?;
    lua.set_named_registry_value(RE, &m)?;
    Ok(m)
}

fn compile_arg(lua: &Lua, a: &MultiValue, defs: Option<Table>) -> super::Res<P> {
    match super::coerce_str(lua, a, 0)? {
        Value::String(s) => compile(lua, &s.as_bytes(), defs).map_err(super::Fail::Raise),
        _ => Err(super::bad(
            1,
            "match",
            &format!("string expected, got {}", super::got(a, 0)),
        )),
    }
}

/// Argument `i` of `re.match`/`find`/`gsub`: a pattern, or `re` source to compile.
fn pattern_arg(lua: &Lua, a: &MultiValue, i: usize) -> super::Res<P> {
    let v = super::arg(a, i);
    if let Some(t) = tree_of(&v) {
        return Ok(t);
    }
    match super::coerce_str(lua, a, i)? {
        Value::String(s) => compile(lua, &s.as_bytes(), None).map_err(super::Fail::Raise),
        _ => Err(super::bad(
            1,
            "match",
            &format!("string expected, got {}", super::got(a, i)),
        )),
    }
}
