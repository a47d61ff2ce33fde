//! The parsing machine: a pattern tree compiles to a flat program for a backtracking
//! VM in the style of LPeg's (Medeiros and Ierusalimschy, "A Parsing Machine for
//! PEGs"). The VM keeps its backtrack stack and capture list on the heap, so neither a
//! deep grammar nor a long subject touches the thread's stack; it charges every
//! instruction to the sandbox's budget and checks its memory against the sandbox's
//! headroom as the two lists grow.

use mlua::{Function, Value};

use super::capture::{Entry, EntryKind};
use super::tree::{first_open_call, operands, CapKind, Charset, Node, TreeError, P};

/// One VM instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Any byte.
    Any,
    /// A given byte.
    Char(u8),
    /// A byte of set `n`.
    Set(u32),
    /// Literal `n`.
    Str(u32),
    /// As many bytes of set `n` as there are.
    Span(u32),
    /// Moves back `n` bytes (fails when there are not that many).
    Behind(u32),
    /// Pushes a backtrack entry resuming at the target.
    Choice(u32),
    /// Pops the backtrack entry and jumps.
    Commit(u32),
    /// Updates the top backtrack entry to the current state and jumps (loops).
    PartialCommit(u32),
    /// Pops the backtrack entry, restores its position and captures, and jumps.
    BackCommit(u32),
    /// Pops the backtrack entry, then fails.
    FailTwice,
    /// Fails.
    Fail,
    /// Jumps.
    Jmp(u32),
    /// Calls a rule.
    Call(u32),
    /// Returns from a rule.
    Ret,
    /// Match succeeded.
    End,
    /// Opens capture `n` of the program's capture table.
    OpenCap(u32),
    /// Closes the innermost open capture.
    CloseCap,
    /// An empty capture (`Cp`, `Cc`, `Carg`, `Cb`, ...).
    FullCap(u32),
    /// Closes a match-time capture and calls its function.
    CloseRunTime,
}

/// A compiled pattern.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub code: Vec<Op>,
    pub sets: Vec<Charset>,
    pub strs: Vec<Box<[u8]>>,
    /// Capture kinds with their Lua values (LPeg's ktable).
    pub caps: Vec<CapKind>,
    /// Lua's builtin `tonumber`, to recognize `p / tonumber`.
    tonumber: Option<Function>,
    /// The Lua values of `caps` (see `capture::ktable`), set once compiled.
    pub ktable: Option<mlua::Table>,
}

impl Program {
    /// Bytes the program holds outside Lua: code, sets, strings and capture kinds.
    pub fn bytes(&self) -> u64 {
        let strs: usize = self
            .strs
            .iter()
            .map(|s| s.len() + size_of::<Box<[u8]>>())
            .sum();
        (self.code.capacity() * size_of::<Op>()
            + self.sets.capacity() * size_of::<Charset>()
            + self.caps.capacity() * size_of::<CapKind>()
            + strs) as u64
    }
}

/// Compiles a tree; an open `V` outside any grammar is LPeg's error.
pub(crate) fn compile(p: &P, tonumber: Option<&Function>) -> Result<Program, TreeError> {
    if let Some(k) = first_open_call(p) {
        return Err(TreeError(format!("rule '{k}' used outside a grammar")));
    }
    let mut c = Program {
        tonumber: tonumber.cloned(),
        ..Program::default()
    };
    let mut fixups = Vec::new();
    gen(&mut c, p, &mut fixups);
    c.code.push(Op::End);
    Ok(c)
}

fn here(c: &Program) -> u32 {
    c.code.len() as u32
}

fn patch(c: &mut Program, at: usize, target: u32) {
    c.code[at] = match c.code[at] {
        Op::Choice(_) => Op::Choice(target),
        Op::Commit(_) => Op::Commit(target),
        Op::PartialCommit(_) => Op::PartialCommit(target),
        Op::BackCommit(_) => Op::BackCommit(target),
        Op::Jmp(_) => Op::Jmp(target),
        Op::Call(_) => Op::Call(target),
        op => op,
    };
}

fn add_set(c: &mut Program, s: Charset) -> u32 {
    if let Some(i) = c.sets.iter().position(|x| *x == s) {
        return i as u32;
    }
    c.sets.push(s);
    (c.sets.len() - 1) as u32
}

fn emit(c: &mut Program, op: Op) -> usize {
    c.code.push(op);
    c.code.len() - 1
}

/// Generates code for `p`; `fixups` collects calls of the current grammar's rules.
fn gen(c: &mut Program, p: &P, fixups: &mut Vec<(usize, u32)>) {
    match &**p {
        Node::Seq(..) => {
            for x in operands(p) {
                gen(c, x, fixups);
            }
        }
        Node::True => {}
        Node::False => {
            emit(c, Op::Fail);
        }
        Node::Any => {
            emit(c, Op::Any);
        }
        Node::Char(ch) => {
            emit(c, Op::Char(*ch));
        }
        Node::Set(s) => {
            let i = add_set(c, **s);
            emit(c, Op::Set(i));
        }
        Node::Str(s) => {
            c.strs.push(s.clone());
            emit(c, Op::Str((c.strs.len() - 1) as u32));
        }
        Node::Choice(..) => {
            // Choice L1; p1; Commit END; L1: Choice L2; p2; Commit END; ... pn; END:
            let ops = operands(p);
            let mut commits = Vec::with_capacity(ops.len());
            for (i, x) in ops.iter().enumerate() {
                if i + 1 == ops.len() {
                    gen(c, x, fixups);
                    break;
                }
                let ch = emit(c, Op::Choice(0));
                gen(c, x, fixups);
                commits.push(emit(c, Op::Commit(0)));
                let alt = here(c);
                patch(c, ch, alt);
            }
            let end = here(c);
            for cm in commits {
                patch(c, cm, end);
            }
        }
        Node::Rep(b) => gen_rep(c, b, fixups),
        Node::AtMost(b, n) => gen_at_most(c, b, *n, fixups),
        Node::Not(b) => {
            let ch = emit(c, Op::Choice(0));
            gen(c, b, fixups);
            emit(c, Op::FailTwice);
            let end = here(c);
            patch(c, ch, end);
        }
        Node::And(b) => {
            let ch = emit(c, Op::Choice(0));
            gen(c, b, fixups);
            let bc = emit(c, Op::BackCommit(0));
            let fail = emit(c, Op::Fail);
            patch(c, ch, fail as u32);
            let end = here(c);
            patch(c, bc, end);
        }
        Node::Behind(b, n) => {
            if *n > 0 {
                emit(c, Op::Behind(*n));
            }
            gen(c, b, fixups);
        }
        Node::Capture(kind, b) => {
            let kind = match kind {
                CapKind::Func(f) if c.tonumber.as_ref() == Some(f) => CapKind::ToNumber(f.clone()),
                k => k.clone(),
            };
            c.caps.push(kind);
            let k = (c.caps.len() - 1) as u32;
            if matches!(**b, Node::True) {
                emit(c, Op::FullCap(k));
            } else {
                emit(c, Op::OpenCap(k));
                gen(c, b, fixups);
                emit(c, Op::CloseCap);
            }
        }
        Node::RunTime(f, b) => {
            c.caps.push(CapKind::Func(f.clone()));
            emit(c, Op::OpenCap((c.caps.len() - 1) as u32));
            gen(c, b, fixups);
            emit(c, Op::CloseRunTime);
        }
        Node::Call(n) => {
            let at = emit(c, Op::Call(0));
            fixups.push((at, *n));
        }
        Node::OpenCall(_) => {
            emit(c, Op::Fail);
        }
        Node::Grammar(g) => {
            let mut own = Vec::new();
            let call = emit(c, Op::Call(0));
            own.push((call, 0));
            let jmp = emit(c, Op::Jmp(0));
            let mut addr = Vec::with_capacity(g.rules.len());
            for r in &g.rules {
                addr.push(here(c));
                gen(c, r, &mut own);
                emit(c, Op::Ret);
            }
            for (at, n) in own {
                patch(c, at, addr[n as usize]);
            }
            let end = here(c);
            patch(c, jmp, end);
        }
    }
}

fn gen_rep(c: &mut Program, b: &P, fixups: &mut Vec<(usize, u32)>) {
    if let Some(s) = b.charset() {
        let i = add_set(c, s);
        emit(c, Op::Span(i));
        return;
    }
    let ch = emit(c, Op::Choice(0));
    let body = here(c);
    gen(c, b, fixups);
    emit(c, Op::PartialCommit(body));
    let end = here(c);
    patch(c, ch, end);
}

/// `(b (b (b ...)?)?)?`: `n` nested optional copies.
fn gen_at_most(c: &mut Program, b: &P, n: u32, fixups: &mut Vec<(usize, u32)>) {
    let mut choices = Vec::with_capacity(n as usize);
    for _ in 0..n {
        choices.push(emit(c, Op::Choice(0)));
        gen(c, b, fixups);
    }
    for ch in choices.into_iter().rev() {
        let cm = emit(c, Op::Commit(0));
        let after = here(c);
        patch(c, cm, after);
        patch(c, ch, after);
    }
}

/// Position marker of a call frame on the backtrack stack.
const CALL: usize = usize::MAX;

/// A backtrack or call frame.
#[derive(Clone, Copy)]
struct Frame {
    /// Subject position to resume at, or [`CALL`].
    s: usize,
    /// Resume (or return) address.
    pc: u32,
    /// Capture list length to restore.
    cap: u32,
    /// Match-time values length to restore.
    dynv: u32,
}

/// How often the VM charges the budget, in instructions.
const CHARGE_EVERY: u64 = 4096;

/// What the VM needs from its caller.
pub(crate) trait Host {
    /// Charges `n` instructions; an error ends the match.
    fn charge(&mut self, n: u64) -> Result<(), MatchError>;
    /// Checks that `bytes` more of match state fit in the memory budget.
    fn reserve(&mut self, bytes: usize) -> Result<(), MatchError>;
    /// Runs a match-time capture whose open entry is at `open`; the capture list ends
    /// with its close. Returns the function's results.
    fn runtime(
        &mut self,
        prog: &Program,
        k: usize,
        caps: &[Entry],
        open: usize,
        dynv: &[Value],
        subject_pos: usize,
    ) -> Result<Vec<Value>, MatchError>;
}

/// Why a match stopped with an error.
#[derive(Debug)]
pub(crate) enum MatchError {
    /// An LPeg error message (the script may catch it).
    Lpeg(String),
    /// A Lua error from a capture function or a limit, passed on as is.
    Lua(mlua::Error),
}

/// The state a successful match leaves for capture evaluation.
pub(crate) struct Outcome {
    pub end: usize,
    pub caps: Vec<Entry>,
    pub dynv: Vec<Value>,
}

/// Runs `prog` on `subject` from `init`. `max_stack` is `lpeg.setmaxstack`'s value.
pub(crate) fn run(
    prog: &Program,
    subject: &[u8],
    init: usize,
    max_stack: usize,
    host: &mut dyn Host,
) -> Result<Option<Outcome>, MatchError> {
    let code = &prog.code[..];
    let len = subject.len();
    let stack_cap = max_stack.max(400);
    let mut stack: Vec<Frame> = Vec::with_capacity(32);
    let mut caps: Vec<Entry> = Vec::with_capacity(16);
    let mut dynv: Vec<Value> = Vec::new();
    let (mut pc, mut s) = (0usize, init);
    let mut steps: u64 = 0;
    loop {
        steps += 1;
        if steps == CHARGE_EVERY {
            host.charge(steps)?;
            steps = 0;
        }
        let ok = match code[pc] {
            Op::End => {
                host.charge(steps)?;
                return Ok(Some(Outcome { end: s, caps, dynv }));
            }
            Op::Any => {
                let ok = s < len;
                s += ok as usize;
                ok
            }
            Op::Char(c) => {
                let ok = s < len && subject[s] == c;
                s += ok as usize;
                ok
            }
            Op::Set(i) => {
                let ok = s < len && prog.sets[i as usize].has(subject[s]);
                s += ok as usize;
                ok
            }
            Op::Str(i) => {
                let lit = &prog.strs[i as usize];
                let ok = subject[s..].starts_with(lit);
                if ok {
                    s += lit.len();
                }
                ok
            }
            Op::Span(i) => {
                let set = &prog.sets[i as usize];
                while s < len && set.has(subject[s]) {
                    s += 1;
                }
                true
            }
            Op::Behind(n) => {
                let ok = n as usize <= s;
                if ok {
                    s -= n as usize;
                }
                ok
            }
            Op::Choice(t) => {
                push(
                    &mut stack,
                    stack_cap,
                    host,
                    Frame {
                        s,
                        pc: t,
                        cap: caps.len() as u32,
                        dynv: dynv.len() as u32,
                    },
                )?;
                true
            }
            Op::Commit(t) => {
                stack.pop();
                pc = t as usize;
                continue;
            }
            Op::PartialCommit(t) => {
                if let Some(f) = stack.last_mut() {
                    f.s = s;
                    f.cap = caps.len() as u32;
                    f.dynv = dynv.len() as u32;
                }
                pc = t as usize;
                continue;
            }
            Op::BackCommit(t) => {
                if let Some(f) = stack.pop() {
                    s = f.s;
                    caps.truncate(f.cap as usize);
                    dynv.truncate(f.dynv as usize);
                }
                pc = t as usize;
                continue;
            }
            Op::FailTwice => {
                stack.pop();
                false
            }
            Op::Fail => false,
            Op::Jmp(t) => {
                pc = t as usize;
                continue;
            }
            Op::Call(t) => {
                push(
                    &mut stack,
                    stack_cap,
                    host,
                    Frame {
                        s: CALL,
                        pc: pc as u32 + 1,
                        cap: 0,
                        dynv: 0,
                    },
                )?;
                pc = t as usize;
                continue;
            }
            Op::Ret => {
                pc = stack.pop().map_or(0, |f| f.pc as usize);
                continue;
            }
            Op::OpenCap(k) => {
                add_cap(&mut caps, host, Entry::open(s, EntryKind::Prog(k)))?;
                true
            }
            Op::FullCap(k) => {
                add_cap(&mut caps, host, Entry::full(s, s, EntryKind::Prog(k)))?;
                true
            }
            Op::CloseCap => {
                add_cap(&mut caps, host, Entry::close(s))?;
                true
            }
            Op::CloseRunTime => {
                match close_runtime(prog, subject, s, &mut caps, &mut dynv, host)? {
                    Some(ns) => {
                        s = ns;
                        true
                    }
                    None => false,
                }
            }
        };
        if ok {
            pc += 1;
            continue;
        }
        // Backtrack: unwind call frames to the latest choice.
        loop {
            match stack.pop() {
                None => {
                    host.charge(steps)?;
                    return Ok(None);
                }
                Some(f) if f.s == CALL => continue,
                Some(f) => {
                    s = f.s;
                    pc = f.pc as usize;
                    caps.truncate(f.cap as usize);
                    dynv.truncate(f.dynv as usize);
                    break;
                }
            }
        }
    }
}

#[inline(always)]
fn push(
    stack: &mut Vec<Frame>,
    cap: usize,
    host: &mut dyn Host,
    f: Frame,
) -> Result<(), MatchError> {
    if stack.len() + 1 >= cap {
        return Err(MatchError::Lpeg(format!(
            "backtrack stack overflow (current limit is {})",
            cap.min(i32::MAX as usize)
        )));
    }
    if stack.len() == stack.capacity() {
        host.reserve(stack.capacity() * std::mem::size_of::<Frame>())?;
    }
    stack.push(f);
    Ok(())
}

#[inline(always)]
fn add_cap(caps: &mut Vec<Entry>, host: &mut dyn Host, e: Entry) -> Result<(), MatchError> {
    if caps.len() == caps.capacity() {
        host.reserve(caps.capacity().max(16) * std::mem::size_of::<Entry>())?;
    }
    caps.push(e);
    Ok(())
}

/// LPeg's `ICloseRunTime`: evaluates the nested captures, calls the function, and
/// replaces the nested captures by its extra results. `None` means the match fails here.
fn close_runtime(
    prog: &Program,
    subject: &[u8],
    s: usize,
    caps: &mut Vec<Entry>,
    dynv: &mut Vec<Value>,
    host: &mut dyn Host,
) -> Result<Option<usize>, MatchError> {
    add_cap(caps, host, Entry::close(s))?;
    let open = super::capture::find_open(caps, caps.len() - 1);
    let EntryKind::Prog(k) = caps[open].kind else {
        return Err(MatchError::Lpeg("corrupt match-time capture".into()));
    };
    let res = host.runtime(prog, k as usize, caps, open, dynv, s)?;
    // Drop the nested captures and the match-time values they held.
    let first_dyn = caps[open..].iter().find_map(|e| match e.kind {
        EntryKind::DynVal(i) => Some(i as usize),
        _ => None,
    });
    caps.truncate(open + 1);
    if let Some(i) = first_dyn {
        dynv.truncate(i);
    }
    let mut it = res.into_iter();
    let first = it.next().unwrap_or(Value::Nil);
    let ns = match first {
        Value::Nil | Value::Boolean(false) => {
            caps.truncate(open);
            return Ok(None);
        }
        Value::Boolean(true) => s,
        v => {
            let n = match v {
                Value::Integer(i) => Some(i),
                Value::Number(n) if n.fract() == 0.0 => Some(n as i64),
                Value::String(ref st) => {
                    st.to_str().ok().and_then(|x| x.trim().parse::<i64>().ok())
                }
                _ => None,
            }
            .unwrap_or(0);
            let pos = n - 1;
            if pos < s as i64 || pos > subject.len() as i64 {
                return Err(MatchError::Lpeg(
                    "invalid position returned by match-time capture".into(),
                ));
            }
            pos as usize
        }
    };
    let rest: Vec<Value> = it.collect();
    if rest.is_empty() {
        caps.truncate(open);
    } else {
        // LPeg keeps the open entry (where the match-time capture started) as an
        // anonymous group around the results.
        caps[open].kind = EntryKind::DynGroup;
        for v in rest {
            add_cap(
                caps,
                host,
                Entry::full(ns, ns, EntryKind::DynVal(dynv.len() as u32)),
            )?;
            dynv.push(v);
        }
        add_cap(caps, host, Entry::close(ns))?;
    }
    Ok(Some(ns))
}
