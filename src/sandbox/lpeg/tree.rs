//! Pattern trees: what `lpeg.P`, the operators and the capture constructors build, plus
//! the static checks LPeg 1.0.2 makes on them (nullable, no-fail, fixed length, left
//! recursion, empty loops). Trees are immutable and share subtrees through `Arc`, so a
//! constructor costs O(1) whatever the size of its operands.
//!
//! Sequences and choices are binary, as in LPeg, but however a chain of them associates
//! (a script's `p = p * x` loop builds a left-leaning one) every walk takes the chain's
//! operands in order from an explicit list ([`operands`]), so only real nesting of
//! different constructs costs stack. Each node records that nesting depth, and a tree
//! too deep for a thread's stack is refused when it is built ([`MAX_DEPTH`]).

use std::cell::Cell;
use std::sync::Arc;

use mlua::{Function, Table, Value};

/// A shared pattern tree.
pub(crate) type P = Arc<Node>;

/// Deepest nesting a pattern may have (sequences and choices chained on their right
/// count once). LPeg has no such limit; its recursive C walkers rely on a large C stack.
pub(crate) const MAX_DEPTH: u32 = 1000;

/// Largest pattern, in tree nodes as if shared subtrees were copied (as LPeg copies
/// them). Sharing lets a script build a huge tree in a few operations (`p = p * p`);
/// this keeps every walk over a tree, and the compiled program, bounded.
pub(crate) const MAX_SIZE: u64 = 1 << 22;

/// LPeg's limit on rules passed without consuming input (`MAXRULES`).
const MAX_RULES: usize = 250;

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Charset(pub [u64; 4]);

impl Charset {
    /// Every byte.
    pub fn full() -> Charset {
        Charset([u64::MAX; 4])
    }

    /// One byte.
    pub fn single(c: u8) -> Charset {
        let mut s = Charset::default();
        s.add(c);
        s
    }

    /// Adds `c`.
    pub fn add(&mut self, c: u8) {
        self.0[(c >> 6) as usize] |= 1 << (c & 63);
    }

    /// True when `c` is in the set.
    #[inline(always)]
    pub fn has(&self, c: u8) -> bool {
        self.0[(c >> 6) as usize & 3] & (1 << (c & 63)) != 0
    }

    /// `self ∪ o`.
    pub fn union(&self, o: &Charset) -> Charset {
        Charset(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    /// `self − o`.
    pub fn minus(&self, o: &Charset) -> Charset {
        Charset(std::array::from_fn(|i| self.0[i] & !o.0[i]))
    }

    /// The only member, when there is exactly one.
    pub fn only(&self) -> Option<u8> {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        if n != 1 {
            return None;
        }
        (0..=255u8).find(|&c| self.has(c))
    }
}

/// A grammar rule name (a Lua table key).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Key {
    /// An integer key (floats with an integral value are normalized to this, as Lua does).
    Int(i64),
    /// A float key.
    Num(f64),
    /// A string key.
    Str(Vec<u8>),
    /// A boolean key.
    Bool(bool),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Num(n) => write!(f, "{n:?}"),
            Key::Str(s) => write!(f, "{}", String::from_utf8_lossy(s)),
            Key::Bool(_) => write!(f, "(a boolean)"),
        }
    }
}

/// What a capture node produces; the Lua values it carries are LPeg's "ktable" entries.
#[derive(Clone, Debug)]
pub(crate) enum CapKind {
    /// `C(p)`: the match, then the nested values.
    Simple,
    /// `Cc(v)`: one constant.
    Const(Value),
    /// `Cp()`.
    Position,
    /// `Carg(n)`.
    Arg(u32),
    /// `Cb(name)`.
    Backref(Value),
    /// `Cg(p [, name])`.
    Group(Option<Value>),
    /// `Ct(p)`.
    Table,
    /// `Cf(p, f)`.
    Fold(Function),
    /// `Cs(p)`.
    Subst,
    /// `p / "fmt"`.
    Str(Vec<u8>),
    /// `p / n`.
    Num(u32),
    /// `p / table`.
    Query(Table),
    /// `p / function`.
    Func(Function),
    /// `p / tonumber` with Lua's own `tonumber` (set by the compiler): a decimal
    /// string is converted natively, anything else goes to the function.
    ToNumber(Function),
}

/// Nesting depth and expanded size of a sequence or choice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub depth: u32,
    pub size: u64,
}

/// A rule set built by `lpeg.P(table)`, with its calls resolved to rule indices.
#[derive(Debug)]
pub(crate) struct Grammar {
    /// Rule bodies, the initial rule first.
    pub rules: Vec<P>,
}

/// A pattern tree node.
#[derive(Debug)]
pub(crate) enum Node {
    /// Always matches, consuming nothing.
    True,
    /// Never matches.
    False,
    /// One byte.
    Any,
    /// One given byte.
    Char(u8),
    /// One byte of a set.
    Set(Box<Charset>),
    /// A literal of two or more bytes.
    Str(Box<[u8]>),
    /// `p1 * p2`.
    Seq(P, P, Meta),
    /// `p1 + p2`.
    Choice(P, P, Meta),
    /// `p^0`.
    Rep(P),
    /// `p^-n`: at most `n` times.
    AtMost(P, u32),
    /// `-p`.
    Not(P),
    /// `#p`.
    And(P),
    /// `B(p)` with `p`'s fixed length.
    Behind(P, u32),
    /// `V(key)` not yet inside a grammar.
    OpenCall(Key),
    /// A call of rule `n` of the enclosing grammar.
    Call(u32),
    /// A grammar.
    Grammar(Arc<Grammar>),
    /// A capture around a body.
    Capture(CapKind, P),
    /// `Cmt(p, f)` (and `P(function)`, with `p` = true).
    RunTime(Function, P),
}

thread_local! {
    /// Inner nodes built on this thread since the last [`take_built`].
    static BUILT: Cell<u64> = const { Cell::new(0) };
    /// Nodes the static checks visited since the last [`start_walk`].
    static WALKED: Cell<u64> = const { Cell::new(0) };
    /// Most nodes they may visit in the current library call (see [`start_walk`]).
    static WALK_CAP: Cell<u64> = const { Cell::new(MAX_WALK) };
    /// Most inner nodes the current library call may build (see [`start_build`]).
    static ALLOW: Cell<u64> = const { Cell::new(u64::MAX) };
    /// The nodes a construction of this call asked for past [`ALLOW`] (0: none).
    static DENIED: Cell<u64> = const { Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// The most nodes one call built (or instructions it compiled) and walked since
    /// the last [`take_peaks`].
    static PEAKS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The most nodes one library call built and walked on this thread since the last
/// call of this, for tests of the allowances.
#[cfg(test)]
pub(crate) fn take_peaks() -> (u64, u64) {
    PEAKS.with(|p| p.replace((0, 0)))
}

#[cfg(test)]
pub(crate) fn note_peaks(built: u64, walked: u64) {
    PEAKS.with(|p| {
        let (b, w) = p.get();
        p.set((b.max(built), w.max(walked)));
    });
}

/// Starts a library call's build allowance: it may build at most `nodes` inner nodes
/// between two [`take_built`]s. The sandbox's precise `memory_limit` check runs once a
/// pattern is built; this bound stops a construction that could never pass it (the
/// grammar fix-up of `S <- 'a' S+++++++++++++++++++++` copies a million nodes) before
/// it holds more native memory than the whole limit.
pub(crate) fn start_build(nodes: u64) {
    ALLOW.with(|a| a.set(nodes));
    DENIED.with(|d| d.set(0));
}

/// The nodes a construction of this call asked for when it stopped at its build
/// allowance, if one did.
pub(crate) fn build_denied() -> Option<u64> {
    Some(DENIED.with(Cell::get)).filter(|n| *n > 0)
}

/// True when `nodes` fit the call's build allowance; else records the refusal (see
/// [`build_denied`]). The compiler asks for a tree's size before it emits code.
pub(crate) fn allow(nodes: u64) -> bool {
    if nodes <= ALLOW.with(Cell::get) {
        return true;
    }
    DENIED.with(|d| d.set(nodes));
    false
}

/// Most nodes the static checks (nullable, no-fail, empty loops, left recursion) may
/// visit in one library call. They follow every call into its rule, as LPeg's do, so a
/// grammar of nullable calls nested in long sequences costs exponential time; past the
/// limit their answers are void and the call fails with [`walk_error`]. Steps past a
/// call's free allowance are charged to the sandbox as instructions ([`take_walked`]).
const MAX_WALK: u64 = MAX_SIZE;

/// Starts a library call's walk budget: at most `cap` steps, and never more than
/// [`MAX_WALK`]. The caller passes what the sandbox's instruction budget has left, so
/// a call does not walk far past a limit it would be charged against afterwards.
pub(crate) fn start_walk(cap: u64) {
    WALKED.with(|w| w.set(0));
    WALK_CAP.with(|c| c.set(cap.min(MAX_WALK)));
}

/// The nodes the static checks visited since the last [`start_walk`], resetting it.
pub(crate) fn take_walked() -> u64 {
    WALKED.with(|w| w.replace(0))
}

/// The error for a call whose checks went past their budget, if they did (naming
/// [`MAX_WALK`]: a smaller budget is the instruction budget, whose charge fails first).
pub(crate) fn walk_error() -> Option<TreeError> {
    (WALKED.with(Cell::get) > WALK_CAP.with(Cell::get)).then(|| {
        TreeError(format!(
            "pattern too complex to check (hekate's limit is {MAX_WALK} steps)"
        ))
    })
}

/// Counts `n` nodes visited; true once the budget is spent.
fn walked(n: usize) -> bool {
    WALKED.with(|w| {
        let v = w.get().saturating_add(n as u64);
        w.set(v);
        #[cfg(test)]
        note_peaks(0, v);
        v > WALK_CAP.with(Cell::get)
    })
}

/// Bytes one tree node holds: the node and its `Arc` counts.
pub(crate) const NODE_BYTES: u64 = (size_of::<Node>() + 2 * size_of::<usize>()) as u64;

/// The inner nodes built on this thread since the last call: what a constructor cost,
/// for the caller to charge to the sandbox (leaves are a constant per call).
pub(crate) fn take_built() -> u64 {
    BUILT.with(|b| b.replace(0))
}

/// A new inner node, counted in [`take_built`], or an error past the call's allowance
/// ([`start_build`]).
fn counted(n: Node) -> Result<P, TreeError> {
    let built = BUILT.with(|b| {
        let v = b.get() + 1;
        b.set(v);
        v
    });
    #[cfg(test)]
    note_peaks(built, 0);
    if !allow(built) {
        return Err(TreeError(
            "pattern needs more memory than the sandbox's memory_limit".to_string(),
        ));
    }
    Ok(Arc::new(n))
}

/// Tears a sequence or choice chain down with an explicit stack. A chain is not bounded
/// by [`MAX_DEPTH`] (it counts once), and the derived drop would recurse once per link:
/// `re.compile"'a'^2000000"` is a chain of two million links.
impl Drop for Node {
    fn drop(&mut self) {
        let Some((a, b)) = chain_operands(self) else {
            return;
        };
        // The leaf the operands are swapped for (not a thread-local: a tree may be
        // dropped while its thread's locals are being destroyed).
        let leaf = Arc::new(Node::True);
        let mut stack = vec![
            std::mem::replace(a, leaf.clone()),
            std::mem::replace(b, leaf.clone()),
        ];
        while let Some(p) = stack.pop() {
            // The last owner of a link takes its operands; the link then drops flat.
            if let Ok(mut n) = Arc::try_unwrap(p) {
                if let Some((a, b)) = chain_operands(&mut n) {
                    stack.push(std::mem::replace(a, leaf.clone()));
                    stack.push(std::mem::replace(b, leaf.clone()));
                }
            }
        }
    }
}

/// The operands of a sequence or choice not yet torn down, marking it torn down (size 0:
/// a real chain has at least two nodes).
fn chain_operands(n: &mut Node) -> Option<(&mut P, &mut P)> {
    match n {
        Node::Seq(a, b, m) | Node::Choice(a, b, m) if m.size != 0 => {
            m.size = 0;
            Some((a, b))
        }
        _ => None,
    }
}

/// An error building or checking a pattern, with LPeg's message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeError(pub String);

impl Node {
    /// Nesting depth (a right-chained sequence or choice counts once).
    pub fn depth(&self) -> u32 {
        match self {
            Node::Seq(_, _, m) | Node::Choice(_, _, m) => m.depth,
            Node::Rep(p)
            | Node::AtMost(p, _)
            | Node::Not(p)
            | Node::And(p)
            | Node::Behind(p, _)
            | Node::Capture(_, p)
            | Node::RunTime(_, p) => p.depth() + 1,
            Node::Grammar(g) => 1 + g.rules.iter().map(|r| r.depth()).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Size in nodes, counting shared subtrees as often as they are used.
    pub fn size(&self) -> u64 {
        match self {
            Node::Seq(_, _, m) | Node::Choice(_, _, m) => m.size,
            // `p^-n` compiles to `n` copies of `p`, so nesting multiplies.
            Node::AtMost(p, n) => p.size().saturating_mul(u64::from(*n)).saturating_add(1),
            Node::Rep(p)
            | Node::Not(p)
            | Node::And(p)
            | Node::Behind(p, _)
            | Node::Capture(_, p)
            | Node::RunTime(_, p) => p.size().saturating_add(1),
            Node::Grammar(g) => g.rules.iter().fold(1u64, |a, r| a.saturating_add(r.size())),
            _ => 1,
        }
    }

    /// The byte set a single-byte pattern matches.
    pub fn charset(&self) -> Option<Charset> {
        match self {
            Node::Any => Some(Charset::full()),
            Node::Char(c) => Some(Charset::single(*c)),
            Node::Set(s) => Some(**s),
            _ => None,
        }
    }
}

fn checked(n: Node) -> Result<P, TreeError> {
    if n.depth() > MAX_DEPTH {
        return Err(TreeError(format!(
            "pattern nests too deeply (hekate's limit is {MAX_DEPTH} levels)"
        )));
    }
    if n.size() > MAX_SIZE {
        return Err(too_large());
    }
    counted(n)
}

fn too_large() -> TreeError {
    TreeError(format!(
        "pattern too large (hekate's limit is {MAX_SIZE} nodes)"
    ))
}

/// A sequence (`seq`) or choice node of `a` and `b`, checked for depth and size.
fn chain(a: P, b: P, seq: bool) -> Result<P, TreeError> {
    let m = Meta {
        depth: chain_depth(&a, &b, seq),
        size: a.size().saturating_add(b.size()).saturating_add(1),
    };
    checked(if seq {
        Node::Seq(a, b, m)
    } else {
        Node::Choice(a, b, m)
    })
}

/// A wrapper node around `p`, checked for depth.
pub(crate) fn wrap(n: Node) -> Result<P, TreeError> {
    checked(n)
}

/// A set node, simplified to `Char` or `Any` where it is one.
pub(crate) fn set(s: Charset) -> P {
    if s == Charset::full() {
        Arc::new(Node::Any)
    } else if let Some(c) = s.only() {
        Arc::new(Node::Char(c))
    } else {
        Arc::new(Node::Set(Box::new(s)))
    }
}

/// A literal.
pub(crate) fn literal(s: &[u8]) -> P {
    match s.len() {
        0 => Arc::new(Node::True),
        1 => Arc::new(Node::Char(s[0])),
        _ => Arc::new(Node::Str(s.into())),
    }
}

/// `P(n)`: `n` bytes, or for a negative `n`, fewer than `-n` bytes left.
pub(crate) fn number(n: i64) -> Result<P, TreeError> {
    if n.unsigned_abs() > MAX_SIZE / 2 {
        return Err(too_large());
    }
    Ok(match n {
        0 => Arc::new(Node::True),
        n if n > 0 => {
            let mut p = Arc::new(Node::Any);
            for _ in 1..n {
                p = chain(Arc::new(Node::Any), p, true)?;
            }
            p
        }
        n => Arc::new(Node::Not(number(-n)?)),
    })
}

/// `p1 * p2`, with LPeg's simplifications.
pub(crate) fn seq(a: &P, b: &P) -> Result<P, TreeError> {
    if matches!(**a, Node::False) || matches!(**b, Node::True) {
        return Ok(a.clone());
    }
    if matches!(**a, Node::True) {
        return Ok(b.clone());
    }
    chain(a.clone(), b.clone(), true)
}

/// The depth of a sequence (`seq`) or choice of `a` and `b`: operands of the same
/// kind are part of the chain and do not nest.
fn chain_depth(a: &P, b: &P, seq: bool) -> u32 {
    let own = |x: &P| match (&**x, seq) {
        (Node::Seq(..), true) | (Node::Choice(..), false) => x.depth(),
        _ => x.depth() + 1,
    };
    own(a).max(own(b))
}

/// The operands of the chain of sequences (or of choices) rooted at `p`, left to right,
/// however it associates; gathered without recursion. Any other node is its own only
/// operand.
pub(crate) fn operands(p: &P) -> Vec<&P> {
    let seq = matches!(**p, Node::Seq(..));
    let mut out = Vec::new();
    let mut todo = vec![p];
    while let Some(n) = todo.pop() {
        match (&**n, seq) {
            (Node::Seq(a, b, _), true) | (Node::Choice(a, b, _), false) => {
                todo.push(b);
                todo.push(a);
            }
            _ => out.push(n),
        }
    }
    out
}

/// `p1 + p2`, with LPeg's simplifications.
pub(crate) fn choice(a: &P, b: &P) -> Result<P, TreeError> {
    if let (Some(x), Some(y)) = (a.charset(), b.charset()) {
        return Ok(set(x.union(&y)));
    }
    if nofail(a, &[]) || matches!(**b, Node::False) {
        return Ok(a.clone());
    }
    if matches!(**a, Node::False) {
        return Ok(b.clone());
    }
    chain(a.clone(), b.clone(), false)
}

/// `p1 - p2`.
pub(crate) fn minus(a: &P, b: &P) -> Result<P, TreeError> {
    if let (Some(x), Some(y)) = (a.charset(), b.charset()) {
        return Ok(set(x.minus(&y)));
    }
    let not = checked(Node::Not(b.clone()))?;
    chain(not, a.clone(), true)
}

/// `p^n`.
pub(crate) fn power(p: &P, n: i64) -> Result<P, TreeError> {
    if n >= 0 {
        if nullable(p, &[]) {
            return Err(TreeError("loop body may accept empty string".into()));
        }
        if (n as u64).saturating_mul(p.size()) > MAX_SIZE {
            return Err(too_large());
        }
        let mut r = checked(Node::Rep(p.clone()))?;
        for _ in 0..n {
            r = chain(p.clone(), r, true)?;
        }
        Ok(r)
    } else {
        if n.unsigned_abs().saturating_mul(p.size()) > MAX_SIZE {
            return Err(too_large());
        }
        checked(Node::AtMost(p.clone(), n.unsigned_abs() as u32))
    }
}

/// `B(p)`.
pub(crate) fn behind(p: &P) -> Result<P, String> {
    let n = fixedlen(p, &[], &mut 0);
    if n < 0 {
        return Err("pattern may not have fixed length".into());
    }
    if has_captures(p, &[], &mut 0) {
        return Err("pattern have captures".into());
    }
    if n > 255 {
        return Err("pattern too long to look behind".into());
    }
    checked(Node::Behind(p.clone(), n as u32)).map_err(|e| e.0)
}

/// The rule a call refers to, in the rule list `g` of the enclosing grammar.
fn rule(g: &[P], n: u32) -> &P {
    &g[n as usize]
}

/// True when `p` can match without consuming input (conservatively, as LPeg's
/// `nullable`). `g` is the enclosing grammar's rules.
pub(crate) fn nullable(p: &P, g: &[P]) -> bool {
    check(p, g, false)
}

/// True when `p` cannot fail (conservatively, as LPeg's `nofail`).
pub(crate) fn nofail(p: &P, g: &[P]) -> bool {
    check(p, g, true)
}

fn check<'a>(mut p: &'a P, mut g: &'a [P], nofail: bool) -> bool {
    loop {
        if walked(1) {
            return false;
        }
        match &**p {
            Node::Char(_) | Node::Set(_) | Node::Any | Node::Str(_) | Node::False => return false,
            Node::OpenCall(_) => return false,
            Node::Rep(_) | Node::True | Node::AtMost(..) => return true,
            Node::Not(_) | Node::Behind(..) => return !nofail,
            Node::And(b) => {
                if !nofail {
                    return true;
                }
                p = b;
            }
            Node::RunTime(_, b) => {
                if nofail {
                    return false;
                }
                p = b;
            }
            Node::Seq(..) | Node::Choice(..) => {
                let ops = operands(p);
                if walked(ops.len()) {
                    return false;
                }
                return if matches!(**p, Node::Seq(..)) {
                    ops.iter().all(|x| check(x, g, nofail))
                } else {
                    ops.iter().any(|x| check(x, g, nofail))
                };
            }
            Node::Capture(_, b) => p = b,
            Node::Grammar(gr) => {
                g = &gr.rules;
                p = &gr.rules[0];
            }
            Node::Call(n) => p = rule(g, *n),
        }
    }
}

/// The number of bytes `p` always matches, or -1 when it varies.
pub(crate) fn fixedlen<'a>(p: &'a P, g: &'a [P], calls: &mut usize) -> i64 {
    let mut len = 0;
    let mut p = p;
    let mut g = g;
    loop {
        match &**p {
            Node::Char(_) | Node::Set(_) | Node::Any => return len + 1,
            Node::Str(s) => return len + s.len() as i64,
            Node::False | Node::True | Node::Not(_) | Node::And(_) | Node::Behind(..) => {
                return len
            }
            Node::Rep(_) | Node::RunTime(..) | Node::OpenCall(_) => return -1,
            Node::AtMost(b, _) => {
                return if fixedlen(b, g, calls) == 0 { len } else { -1 };
            }
            Node::Capture(_, b) => p = b,
            Node::Grammar(gr) => {
                g = &gr.rules;
                p = &gr.rules[0];
            }
            Node::Call(n) => {
                *calls += 1;
                if *calls > MAX_RULES {
                    return -1;
                }
                p = rule(g, *n);
            }
            Node::Seq(..) => {
                for x in operands(p) {
                    let n = fixedlen(x, g, calls);
                    if n < 0 {
                        return -1;
                    }
                    len += n;
                }
                return len;
            }
            Node::Choice(..) => {
                let lens: Vec<i64> = operands(p).iter().map(|x| fixedlen(x, g, calls)).collect();
                return if lens[0] < 0 || lens.iter().any(|n| *n != lens[0]) {
                    -1
                } else {
                    len + lens[0]
                };
            }
        }
    }
}

/// True when `p` produces captures.
pub(crate) fn has_captures<'a>(p: &'a P, g: &'a [P], calls: &mut usize) -> bool {
    let mut p = p;
    loop {
        match &**p {
            Node::Capture(..) | Node::RunTime(..) => return true,
            Node::Call(n) => {
                *calls += 1;
                if *calls > MAX_RULES {
                    return false;
                }
                p = rule(g, *n);
            }
            Node::Grammar(gr) => return has_captures(&gr.rules[0], &gr.rules, calls),
            Node::Seq(..) | Node::Choice(..) => {
                return operands(p).iter().any(|x| has_captures(x, g, calls))
            }
            Node::Rep(b)
            | Node::AtMost(b, _)
            | Node::Not(b)
            | Node::And(b)
            | Node::Behind(b, _) => p = b,
            _ => return false,
        }
    }
}

/// Builds a grammar from `(name, body)` pairs, the initial rule first: resolves `V`
/// calls, then runs LPeg's left-recursion and empty-loop checks on the rules in use.
pub(crate) fn grammar(names: Vec<Key>, bodies: Vec<P>) -> Result<P, TreeError> {
    let mut used = vec![false; names.len()];
    used[0] = true;
    let mut rules = Vec::with_capacity(bodies.len());
    for b in &bodies {
        rules.push(fix(b, &names, &mut used)?);
    }
    verify(&names, &rules, &used)?;
    if let Some(e) = walk_error() {
        return Err(e);
    }
    checked(Node::Grammar(Arc::new(Grammar { rules })))
}

/// Replaces `OpenCall`s by calls of rule indices (not inside nested grammars, which are
/// already fixed). Subtrees without open calls are shared, not copied.
fn fix(p: &P, names: &[Key], used: &mut [bool]) -> Result<P, TreeError> {
    if !has_open_calls(p) {
        return Ok(p.clone());
    }
    let f = |b: &P, used: &mut [bool]| fix(b, names, used);
    let n = match &**p {
        Node::OpenCall(k) => {
            let Some(i) = names.iter().position(|n| n == k) else {
                return Err(TreeError(format!("rule '{k}' undefined in given grammar")));
            };
            used[i] = true;
            Node::Call(i as u32)
        }
        Node::Seq(..) | Node::Choice(..) => {
            let seq = matches!(**p, Node::Seq(..));
            let mut items = Vec::new();
            for x in operands(p) {
                items.push(f(x, used)?);
            }
            return rechain(items, seq);
        }
        Node::Rep(b) => Node::Rep(f(b, used)?),
        Node::AtMost(b, n) => Node::AtMost(f(b, used)?, *n),
        Node::Not(b) => Node::Not(f(b, used)?),
        Node::And(b) => Node::And(f(b, used)?),
        Node::Behind(b, n) => Node::Behind(f(b, used)?, *n),
        Node::Capture(k, b) => Node::Capture(k.clone(), f(b, used)?),
        Node::RunTime(fun, b) => Node::RunTime(fun.clone(), f(b, used)?),
        _ => return Ok(p.clone()),
    };
    counted(n)
}

/// A right-leaning chain of sequences (`seq`) or choices over `items`.
fn rechain(items: Vec<P>, seq: bool) -> Result<P, TreeError> {
    let mut it = items.into_iter().rev();
    let mut acc = it.next().unwrap_or_else(|| Arc::new(Node::True));
    for x in it {
        acc = chain(x, acc, seq)?;
    }
    Ok(acc)
}

/// `a * b` without LPeg's simplifications (for constructors that build captures).
pub(crate) fn raw_seq(a: P, b: P) -> Result<P, TreeError> {
    chain(a, b, true)
}

/// True when `p` has a `V` outside any nested grammar.
pub(crate) fn has_open_calls(p: &P) -> bool {
    let mut p = p;
    loop {
        // Out of steps, the answer that stops nothing (the call fails afterwards).
        if walked(1) {
            return true;
        }
        match &**p {
            Node::OpenCall(_) => return true,
            Node::Seq(..) | Node::Choice(..) => {
                let ops = operands(p);
                return walked(ops.len()) || ops.into_iter().any(has_open_calls);
            }
            Node::Rep(b)
            | Node::AtMost(b, _)
            | Node::Not(b)
            | Node::And(b)
            | Node::Behind(b, _)
            | Node::Capture(_, b)
            | Node::RunTime(_, b) => p = b,
            _ => return false,
        }
    }
}

/// The first open call's key, for "rule 'x' used outside a grammar".
pub(crate) fn first_open_call(p: &P) -> Option<Key> {
    let mut p = p;
    loop {
        match &**p {
            Node::OpenCall(k) => return Some(k.clone()),
            Node::Seq(..) | Node::Choice(..) => {
                return operands(p).into_iter().find_map(first_open_call)
            }
            Node::Rep(b)
            | Node::AtMost(b, _)
            | Node::Not(b)
            | Node::And(b)
            | Node::Behind(b, _)
            | Node::Capture(_, b)
            | Node::RunTime(_, b) => p = b,
            _ => return None,
        }
    }
}

fn verify(names: &[Key], rules: &[P], used: &[bool]) -> Result<(), TreeError> {
    let mut v = Verify {
        g: rules,
        names,
        passed: Vec::new(),
    };
    for (i, r) in rules.iter().enumerate() {
        if used[i] {
            v.rule(r, false)?;
        }
    }
    for (i, r) in rules.iter().enumerate() {
        if used[i] && has_empty_loop(r, rules) {
            return Err(TreeError(format!("empty loop in rule '{}'", names[i])));
        }
    }
    Ok(())
}

/// The walk of LPeg's `verifyrule` over one grammar.
struct Verify<'a> {
    g: &'a [P],
    names: &'a [Key],
    /// The rules called on the current path without consuming input.
    passed: Vec<u32>,
}

impl Verify<'_> {
    /// LPeg's `verifyrule`: errors on a path back to a rule that consumes nothing;
    /// otherwise returns whether `p` is nullable (or `nb`).
    fn rule(&mut self, p: &P, nb: bool) -> Result<bool, TreeError> {
        let (mut p, mut nb) = (p, nb);
        let base = self.passed.len();
        let res = loop {
            self.step(1)?;
            match &**p {
                Node::Char(_) | Node::Set(_) | Node::Any | Node::Str(_) | Node::False => break nb,
                Node::True | Node::Behind(..) => break true,
                Node::Not(b) | Node::And(b) | Node::Rep(b) | Node::AtMost(b, _) => {
                    p = b;
                    nb = true;
                }
                Node::Capture(_, b) | Node::RunTime(_, b) => p = b,
                Node::Seq(..) => {
                    let ops = operands(p);
                    self.step(ops.len())?;
                    let Some((last, init)) = ops.split_last() else {
                        break nb;
                    };
                    let mut all = true;
                    for x in init {
                        if !self.rule(x, false)? {
                            all = false;
                            break;
                        }
                    }
                    if !all {
                        break nb;
                    }
                    p = last;
                }
                Node::Choice(..) => {
                    let ops = operands(p);
                    self.step(ops.len())?;
                    let Some((last, init)) = ops.split_last() else {
                        break nb;
                    };
                    for x in init {
                        nb = self.rule(x, nb)?;
                    }
                    p = last;
                }
                Node::Call(n) => {
                    if self.passed.len() >= MAX_RULES {
                        return Err(verify_error(&self.passed, self.names));
                    }
                    self.passed.push(*n);
                    p = rule(self.g, *n);
                }
                Node::Grammar(_) => break nullable(p, self.g),
                Node::OpenCall(_) => break nb,
            }
        };
        self.passed.truncate(base);
        Ok(res)
    }

    /// Counts `n` nodes visited, failing past the walk budget.
    fn step(&mut self, n: usize) -> Result<(), TreeError> {
        match walked(n).then(walk_error).flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn verify_error(passed: &[u32], names: &[Key]) -> TreeError {
    for i in (0..passed.len()).rev() {
        for j in (0..i).rev() {
            if passed[i] == passed[j] {
                return TreeError(format!(
                    "rule '{}' may be left recursive",
                    names[passed[i] as usize]
                ));
            }
        }
    }
    TreeError("too many left calls in grammar".into())
}

/// LPeg's `checkloops`: a `p^0` whose body can match empty (not looking into calls or
/// nested grammars).
fn has_empty_loop(p: &P, g: &[P]) -> bool {
    let mut p = p;
    loop {
        if walked(1) {
            return false;
        }
        match &**p {
            Node::Rep(b) => {
                if nullable(b, g) {
                    return true;
                }
                p = b;
            }
            Node::Seq(..) | Node::Choice(..) => {
                let ops = operands(p);
                return !walked(ops.len()) && ops.iter().any(|x| has_empty_loop(x, g));
            }
            Node::AtMost(b, _)
            | Node::Not(b)
            | Node::And(b)
            | Node::Behind(b, _)
            | Node::Capture(_, b)
            | Node::RunTime(_, b) => p = b,
            _ => return false,
        }
    }
}
