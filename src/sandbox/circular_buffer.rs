//! The `circular_buffer` module, native in Rust (heka.md §3.7): a ring of time rows by
//! numeric columns used for time-series aggregation, graphed by Heka's dashboard when
//! output with `inject_payload("cbuf", title, cb)`. `require "circular_buffer"` builds
//! the module table; `sandbox::output` renders buffers in the cbuf/cbufd text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlua::{Lua, Table, UserData, UserDataMethods};

use super::output::push_number;

/// Which text form `add_to_payload` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cbuf,
    Cbufd,
}

/// How a column aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Min,
    Max,
    None,
}

impl Agg {
    fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "none" => Agg::None,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
struct Header {
    name: String,
    unit: String,
    agg: Agg,
}

/// A circular buffer of `rows` time slots by `columns` values.
#[derive(Debug, Clone)]
pub struct CircularBuffer {
    rows: usize,
    columns: usize,
    spr: i64,
    /// Start (seconds) of the newest row.
    current_time: i64,
    current_row: usize,
    values: Vec<f64>,
    headers: Vec<Header>,
    format: Format,
    /// Rows changed since the last cbufd output, by row time (when deltas are enabled).
    delta: Option<BTreeMap<i64, Vec<f64>>>,
    /// `annotate` notes by (row time in seconds, column index).
    annotations: BTreeMap<(i64, usize), Annotation>,
}

/// One `annotate` note (lua_sandbox_extensions' cbuf annotations).
#[derive(Debug, Clone)]
struct Annotation {
    /// `info` or `alert`.
    alert: bool,
    text: String,
    /// Part of the next cbufd output (`delta = true`) and not yet sent there.
    pending_delta: bool,
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

impl CircularBuffer {
    /// `circular_buffer.new(rows, columns, seconds_per_row[, enable_delta])`.
    pub fn new(rows: i64, columns: i64, spr: i64, delta: bool) -> Result<Self, String> {
        if rows <= 1 {
            return Err("rows must be > 1".into());
        }
        if !(1..=256).contains(&columns) {
            return Err("columns must be > 0 and <= 256".into());
        }
        if spr <= 0 {
            return Err("seconds_per_row is out of range".into());
        }
        let (rows, columns) = (rows as usize, columns as usize);
        let headers = (1..=columns)
            .map(|c| Header {
                name: format!("Column_{c}"),
                unit: "count".into(),
                agg: Agg::Sum,
            })
            .collect();
        Ok(CircularBuffer {
            rows,
            columns,
            spr,
            current_time: spr * (rows as i64 - 1),
            current_row: rows - 1,
            values: vec![f64::NAN; rows * columns],
            headers,
            format: Format::Cbuf,
            delta: delta.then(BTreeMap::new),
            annotations: BTreeMap::new(),
        })
    }

    fn row_time(&self, ns: i64) -> i64 {
        let t = ns.div_euclid(1_000_000_000);
        t - t.rem_euclid(self.spr)
    }

    /// The row index for `ns`, advancing the buffer when `advance` and `ns` is newer.
    fn row(&mut self, ns: i64, advance: bool) -> Option<usize> {
        let t = self.row_time(ns);
        if t > self.current_time {
            if !advance {
                return None;
            }
            let steps = ((t - self.current_time) / self.spr) as usize;
            for i in 1..=steps.min(self.rows) {
                let r = (self.current_row + i) % self.rows;
                self.values[r * self.columns..(r + 1) * self.columns].fill(f64::NAN);
            }
            self.current_row = (self.current_row + steps) % self.rows;
            self.current_time = t;
        }
        let back = ((self.current_time - t) / self.spr) as usize;
        if back >= self.rows {
            return None;
        }
        Some((self.current_row + self.rows - back) % self.rows)
    }

    fn col(&self, col: i64) -> mlua::Result<usize> {
        if col < 1 || col as usize > self.columns {
            return Err(err("column out of range"));
        }
        Ok(col as usize - 1)
    }

    fn note_delta(&mut self, ns: i64, col: usize, v: f64) {
        let t = self.row_time(ns);
        let columns = self.columns;
        if let Some(d) = self.delta.as_mut() {
            let row = d.entry(t).or_insert_with(|| vec![f64::NAN; columns]);
            row[col] = v;
        }
    }

    fn add(&mut self, ns: i64, col: i64, v: f64) -> mlua::Result<Option<f64>> {
        let c = self.col(col)?;
        let Some(r) = self.row(ns, true) else {
            return Ok(None);
        };
        let cell = &mut self.values[r * self.columns + c];
        *cell = if cell.is_nan() { v } else { *cell + v };
        let new = *cell;
        self.note_delta(ns, c, new);
        Ok(Some(new))
    }

    fn set(&mut self, ns: i64, col: i64, v: f64) -> mlua::Result<Option<f64>> {
        let c = self.col(col)?;
        let agg = self.headers[c].agg;
        let Some(r) = self.row(ns, true) else {
            return Ok(None);
        };
        let cell = &mut self.values[r * self.columns + c];
        let replace = match agg {
            Agg::Min => cell.is_nan() || v < *cell,
            Agg::Max => cell.is_nan() || v > *cell,
            Agg::Sum | Agg::None => true,
        };
        if replace {
            *cell = v;
        }
        let new = *cell;
        self.note_delta(ns, c, new);
        Ok(Some(new))
    }

    fn get(&mut self, ns: i64, col: i64) -> mlua::Result<Option<f64>> {
        let c = self.col(col)?;
        Ok(self
            .row(ns, false)
            .map(|r| self.values[r * self.columns + c]))
    }

    fn oldest_time(&self) -> i64 {
        self.current_time - self.spr * (self.rows as i64 - 1)
    }

    /// `compute(fn, col[, start_ns[, end_ns]])` → (result, active rows).
    fn compute(
        &mut self,
        f: &str,
        col: i64,
        start: Option<i64>,
        end: Option<i64>,
    ) -> mlua::Result<Option<(f64, usize)>> {
        let c = self.col(col)?;
        let s = start.map_or(self.oldest_time(), |n| self.row_time(n));
        let e = end.map_or(self.current_time, |n| self.row_time(n));
        if s > e || s < self.oldest_time() || e > self.current_time {
            return Ok(None);
        }
        let mut vals = Vec::new();
        let mut t = s;
        while t <= e {
            if let Some(r) = self.row(t * 1_000_000_000, false) {
                let v = self.values[r * self.columns + c];
                if !v.is_nan() {
                    vals.push(v);
                }
            }
            t += self.spr;
        }
        let n = vals.len();
        let sum: f64 = vals.iter().sum();
        let avg = if n == 0 { f64::NAN } else { sum / n as f64 };
        let variance = if n == 0 {
            f64::NAN
        } else {
            vals.iter().map(|v| (v - avg) * (v - avg)).sum::<f64>() / n as f64
        };
        let result = match f {
            "sum" => sum,
            "avg" => avg,
            "variance" => variance,
            "sd" => variance.sqrt(),
            "min" => vals.iter().copied().fold(f64::NAN, f64::min),
            "max" => vals.iter().copied().fold(f64::NAN, f64::max),
            other => return Err(err(format!("invalid compute function '{other}'"))),
        };
        Ok(Some((result, n)))
    }

    /// The (start, end) row times of an optional ns range; `None` outside the window.
    fn range(&self, start: Option<i64>, end: Option<i64>) -> Option<(i64, i64)> {
        let s = start.map_or(self.oldest_time(), |n| self.row_time(n));
        let e = end.map_or(self.current_time, |n| self.row_time(n));
        (s <= e && s >= self.oldest_time() && e <= self.current_time).then_some((s, e))
    }

    /// Column `c`'s values for the rows from `s` to `e` (seconds), oldest first.
    fn values_in(&mut self, c: usize, (s, e): (i64, i64)) -> Vec<f64> {
        let mut out = Vec::with_capacity(((e - s) / self.spr + 1) as usize);
        let mut t = s;
        while t <= e {
            if let Some(r) = self.row(t * 1_000_000_000, false) {
                out.push(self.values[r * self.columns + c]);
            }
            t += self.spr;
        }
        out
    }

    /// `get_range(col[, start_ns[, end_ns]])`: the column's values (NaN for empty rows),
    /// oldest first, or `None` when the range is outside the window.
    fn get_range(
        &mut self,
        col: i64,
        start: Option<i64>,
        end: Option<i64>,
    ) -> mlua::Result<Option<Vec<f64>>> {
        let c = self.col(col)?;
        Ok(self.range(start, end).map(|r| self.values_in(c, r)))
    }

    /// `mannwhitneyu(col, s1, e1, s2, e2[, use_continuity = true])` → (U1, two-sided p):
    /// the Mann-Whitney U test of the column's non-empty values in two ranges that must
    /// not overlap. `None` when a range is outside the window, the ranges overlap, or a
    /// sample is empty.
    fn mannwhitneyu(
        &mut self,
        col: i64,
        r1: (i64, i64),
        r2: (i64, i64),
        use_continuity: bool,
    ) -> mlua::Result<Option<(f64, f64)>> {
        let c = self.col(col)?;
        let (Some(a), Some(b)) = (
            self.range(Some(r1.0), Some(r1.1)),
            self.range(Some(r2.0), Some(r2.1)),
        ) else {
            return Ok(None);
        };
        if a.0 <= b.1 && b.0 <= a.1 {
            return Ok(None);
        }
        let x: Vec<f64> = self
            .values_in(c, a)
            .into_iter()
            .filter(|v| !v.is_nan())
            .collect();
        let y: Vec<f64> = self
            .values_in(c, b)
            .into_iter()
            .filter(|v| !v.is_nan())
            .collect();
        Ok(mann_whitney_u(&x, &y, use_continuity))
    }

    /// `annotate(ns, col, "info"|"alert", text[, delta = true])`: attaches a note to a
    /// row and column; shown in the cbuf header while the row is in the window.
    fn annotate(
        &mut self,
        ns: i64,
        col: i64,
        kind: &str,
        text: &str,
        delta: bool,
    ) -> mlua::Result<()> {
        let c = self.col(col)?;
        let alert = match kind {
            "info" => false,
            "alert" => true,
            other => return Err(err(format!("invalid annotation type '{other}'"))),
        };
        let t = self.row_time(ns);
        if t < self.oldest_time() || t > self.current_time {
            return Ok(());
        }
        let note = Annotation {
            alert,
            text: text.to_string(),
            pending_delta: delta && self.delta.is_some(),
        };
        self.annotations.insert((t, c), note);
        Ok(())
    }

    /// Appends `,"annotations":[...]` for the notes in the window (all for cbuf; the
    /// unsent delta ones for cbufd, which marks them sent). Nothing when there are none,
    /// so buffers without notes render exactly as Heka's.
    fn annotations_json(&mut self, out: &mut String) {
        let oldest = self.oldest_time();
        self.annotations.retain(|(t, _), _| *t >= oldest);
        let cbufd = self.format == Format::Cbufd;
        let notes: Vec<String> = self
            .annotations
            .iter_mut()
            .filter(|(_, a)| !cbufd || a.pending_delta)
            .map(|((t, c), a)| {
                if cbufd {
                    a.pending_delta = false;
                }
                format!(
                    "{{\"x\":{},\"col\":{},\"shortText\":\"{}\",\"text\":{}}}",
                    t * 1000,
                    c + 1,
                    if a.alert { "A" } else { "I" },
                    serde_json::Value::from(a.text.as_str())
                )
            })
            .collect();
        if !notes.is_empty() {
            let _ = write!(out, ",\"annotations\":[{}]", notes.join(","));
        }
    }

    fn header_json(&mut self, out: &mut String) {
        let _ = write!(
            out,
            "{{\"time\":{},\"rows\":{},\"columns\":{},\"seconds_per_row\":{},\"column_info\":[",
            self.oldest_time(),
            self.rows,
            self.columns,
            self.spr
        );
        for (i, h) in self.headers.iter().enumerate() {
            let q = |s: &str| serde_json::Value::from(s).to_string();
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{sep}{{\"name\":{},\"unit\":{},\"aggregation\":{}}}",
                q(&h.name),
                q(&h.unit),
                q(h.agg.name())
            );
        }
        out.push(']');
        self.annotations_json(out);
        out.push_str("}\n");
    }

    fn push_row(out: &mut String, row: &[f64]) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            push_number(out, *v);
        }
        out.push('\n');
    }

    /// Appends the buffer in its selected format (cbufd output resets the deltas).
    pub fn render(&mut self, out: &mut String) {
        self.header_json(out);
        match self.format {
            Format::Cbuf => {
                for i in 1..=self.rows {
                    let r = (self.current_row + i) % self.rows;
                    Self::push_row(out, &self.values[r * self.columns..(r + 1) * self.columns]);
                }
            }
            Format::Cbufd => {
                for (t, row) in std::mem::take(self.delta.get_or_insert_with(BTreeMap::new)) {
                    let _ = write!(out, "{t}\t");
                    Self::push_row(out, &row);
                }
            }
        }
    }
}

impl CircularBuffer {
    /// Writes Lua that rebuilds this buffer at `path` (for `preserve_data`); the
    /// caller has written `path = `. Pending cbufd deltas are not kept.
    pub(crate) fn write_restore(&self, path: &str, out: &mut String) {
        let _ = writeln!(
            out,
            "circular_buffer.new({}, {}, {}, {})",
            self.rows,
            self.columns,
            self.spr,
            self.delta.is_some()
        );
        for (i, h) in self.headers.iter().enumerate() {
            let _ = writeln!(
                out,
                "{path}:set_header({}, {}, {}, {})",
                i + 1,
                super::preserve::quote(h.name.as_bytes()),
                super::preserve::quote(h.unit.as_bytes()),
                super::preserve::quote(h.agg.name().as_bytes())
            );
        }
        let mut data = format!("{} {}", self.current_time, self.current_row);
        for v in &self.values {
            let _ = write!(data, " {v:?}");
        }
        let _ = writeln!(out, "{path}:fromstring(\"{data}\")");
    }

    /// Restores `current_time current_row v v ...` written by `write_restore`.
    fn fromstring(&mut self, s: &str) -> mlua::Result<()> {
        let bad = || err("fromstring() invalid data");
        let mut it = s.split_ascii_whitespace();
        let time: i64 = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let row: usize = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let values: Vec<f64> = it
            .map(|t| t.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if row >= self.rows || values.len() != self.values.len() {
            return Err(bad());
        }
        self.current_time = time;
        self.current_row = row;
        self.values = values;
        Ok(())
    }
}

/// The Mann-Whitney U test of `x` against `y` with the normal approximation (average
/// ranks for ties, tie-corrected variance): (U1, two-sided p), U1 counting the pairs where
/// the `x` value is larger. `None` when a sample is empty.
fn mann_whitney_u(x: &[f64], y: &[f64], use_continuity: bool) -> Option<(f64, f64)> {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let (mut r1, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let rank = (i + j + 1) as f64 / 2.0; // average of the 1-based ranks i+1..=j
        r1 += rank * all[i..j].iter().filter(|(_, first)| *first).count() as f64;
        ties += t * t * t - t;
        i = j;
    }
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let nn = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((nn + 1.0) - ties / (nn * (nn - 1.0)));
    if variance <= 0.0 {
        return Some((u1, 1.0));
    }
    let cc = if use_continuity { 0.5 } else { 0.0 };
    let z = (((u1 - n1 * n2 / 2.0).abs() - cc) / variance.sqrt()).max(0.0);
    Some((u1, erfc(z / std::f64::consts::SQRT_2).min(1.0)))
}

/// The complementary error function from the C math library.
#[allow(unsafe_code)] // libm's erfc.
fn erfc(x: f64) -> f64 {
    extern "C" {
        fn erfc(x: f64) -> f64;
    }
    // SAFETY: `erfc` from libm is a pure function of its argument.
    unsafe { erfc(x) }
}

/// Keeps `max` chars, replacing those `keep` rejects with `_`.
fn sanitize(s: &str, max: usize, keep: impl Fn(char) -> bool) -> String {
    s.chars()
        .take(max)
        .map(|c| if keep(c) { c } else { '_' })
        .collect()
}

/// An integer argument as lua_sandbox's Lua 5.1 `luaL_checkint` read it: a float is
/// truncated toward zero (Heka's `http_status.lua` passes `status / 100` as the
/// column), a numeric string converted.
#[derive(Clone, Copy)]
struct Int(i64);

impl mlua::FromLua for Int {
    fn from_lua(v: mlua::Value, _: &mlua::Lua) -> mlua::Result<Int> {
        let n = match &v {
            mlua::Value::Integer(i) => return Ok(Int(*i)),
            mlua::Value::Number(n) => Some(*n),
            mlua::Value::String(s) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() => Ok(Int(n.trunc() as i64)),
            _ => Err(err(format!("number expected, got {}", v.type_name()))),
        }
    }
}

fn opt(i: Option<Int>) -> Option<i64> {
    i.map(|x| x.0)
}

impl UserData for CircularBuffer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("add", |_, cb, (ns, col, v): (Int, Int, f64)| {
            cb.add(ns.0, col.0, v)
        });
        m.add_method_mut("set", |_, cb, (ns, col, v): (Int, Int, f64)| {
            cb.set(ns.0, col.0, v)
        });
        m.add_method_mut("get", |_, cb, (ns, col): (Int, Int)| cb.get(ns.0, col.0));
        m.add_method_mut(
            "compute",
            |_, cb, (f, col, s, e): (String, Int, Option<Int>, Option<Int>)| {
                Ok(match cb.compute(&f, col.0, opt(s), opt(e))? {
                    Some((r, n)) => (Some(r), Some(n)),
                    None => (None, None),
                })
            },
        );
        m.add_method_mut(
            "get_range",
            |lua, cb, (col, s, e): (Int, Option<Int>, Option<Int>)| match cb.get_range(
                col.0,
                opt(s),
                opt(e),
            )? {
                Some(v) => Ok(mlua::Value::Table(lua.create_sequence_from(v)?)),
                None => Ok(mlua::Value::Nil),
            },
        );
        m.add_method_mut(
            "mannwhitneyu",
            |_, cb, (col, s1, e1, s2, e2, cc): (Int, Int, Int, Int, Int, Option<bool>)| {
                Ok(
                    match cb.mannwhitneyu(col.0, (s1.0, e1.0), (s2.0, e2.0), cc.unwrap_or(true))? {
                        Some((u, p)) => (Some(u), Some(p)),
                        None => (None, None),
                    },
                )
            },
        );
        m.add_method_mut(
            "annotate",
            |_, cb, (ns, col, kind, text, delta): (Int, Int, String, String, Option<bool>)| {
                cb.annotate(ns.0, col.0, &kind, &text, delta.unwrap_or(true))
            },
        );
        m.add_method_mut("fromstring", |_, cb, s: String| cb.fromstring(&s));
        m.add_method("current_time", |_, cb, ()| {
            Ok(cb.current_time * 1_000_000_000)
        });
        m.add_method("get_configuration", |_, cb, ()| {
            Ok((cb.rows, cb.columns, cb.spr))
        });
        m.add_method_mut(
            "set_header",
            |_, cb, (col, name, unit, agg): (Int, String, Option<String>, Option<String>)| {
                let col = col.0;
                let c = cb.col(col)?;
                let agg = agg.as_deref().unwrap_or("sum");
                let agg =
                    Agg::parse(agg).ok_or_else(|| err(format!("invalid aggregation '{agg}'")))?;
                cb.headers[c] = Header {
                    name: sanitize(&name, 15, |c| c.is_ascii_alphanumeric()),
                    unit: sanitize(unit.as_deref().unwrap_or("count"), 7, |c| {
                        c.is_ascii_alphanumeric() || c == '/' || c == '*'
                    }),
                    agg,
                };
                Ok(col)
            },
        );
        m.add_method("get_header", |_, cb, col: Int| {
            let h = &cb.headers[cb.col(col.0)?];
            Ok((h.name.clone(), h.unit.clone(), h.agg.name()))
        });
        m.add_function("format", |_, (ud, f): (mlua::AnyUserData, String)| {
            {
                let mut cb = ud.borrow_mut::<CircularBuffer>()?;
                cb.format = match f.as_str() {
                    "cbuf" => Format::Cbuf,
                    "cbufd" if cb.delta.is_some() => Format::Cbufd,
                    "cbufd" => return Err(err("cbufd output requires enable_delta")),
                    other => return Err(err(format!("invalid format '{other}'"))),
                };
            }
            Ok(ud)
        });
    }
}

/// Builds the module table (`circular_buffer.new`).
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "new",
        lua.create_function(
            |_, (rows, cols, spr, delta): (i64, i64, i64, Option<bool>)| {
                CircularBuffer::new(rows, cols, spr, delta.unwrap_or(false)).map_err(err)
            },
        )?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn add_advances_and_clears_skipped_rows() {
        let mut cb = CircularBuffer::new(3, 1, 1, false).expect("valid");
        assert_eq!(cb.current_time, 2);
        assert_eq!(cb.add(2 * S, 1, 1.0).expect("ok"), Some(1.0));
        assert_eq!(cb.add(2 * S, 1, 2.0).expect("ok"), Some(3.0));
        assert_eq!(cb.add(4 * S, 1, 5.0).expect("ok"), Some(5.0));
        assert_eq!(cb.get(2 * S, 1).expect("ok"), Some(3.0));
        assert!(cb.get(3 * S, 1).expect("ok").expect("in window").is_nan());
        assert_eq!(cb.add(S, 1, 1.0).expect("ok"), None, "too old");
        assert_eq!(cb.add(10 * S, 1, 7.0).expect("ok"), Some(7.0));
        assert_eq!(cb.get(4 * S, 1).expect("ok"), None);
    }

    #[test]
    fn compute_skips_empty_rows() {
        let mut cb = CircularBuffer::new(4, 1, 60, false).expect("valid");
        let t0 = cb.current_time * S;
        cb.add(t0, 1, 4.0).expect("ok");
        cb.add(t0 - 60 * S, 1, 2.0).expect("ok");
        assert_eq!(
            cb.compute("sum", 1, None, None).expect("ok"),
            Some((6.0, 2))
        );
        assert_eq!(
            cb.compute("avg", 1, None, None).expect("ok"),
            Some((3.0, 2))
        );
        assert_eq!(
            cb.compute("variance", 1, None, None).expect("ok"),
            Some((1.0, 2))
        );
        assert_eq!(cb.compute("sd", 1, None, None).expect("ok"), Some((1.0, 2)));
        assert_eq!(
            cb.compute("min", 1, None, None).expect("ok"),
            Some((2.0, 2))
        );
        assert_eq!(
            cb.compute("max", 1, None, None).expect("ok"),
            Some((4.0, 2))
        );
        assert_eq!(
            cb.compute("sum", 1, Some(t0 + 60 * S), None).expect("ok"),
            None
        );
    }

    #[test]
    fn cbuf_text_matches_heka_layout() {
        let mut cb = CircularBuffer::new(2, 2, 10, true).expect("valid");
        cb.headers[0].name = "Requests".into();
        cb.add(10 * S, 1, 3.0).expect("ok");
        let mut out = String::new();
        cb.render(&mut out);
        assert_eq!(
            out,
            "{\"time\":0,\"rows\":2,\"columns\":2,\"seconds_per_row\":10,\"column_info\":[\
             {\"name\":\"Requests\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
             {\"name\":\"Column_2\",\"unit\":\"count\",\"aggregation\":\"sum\"}]}\n\
             nan\tnan\n3\tnan\n"
        );
        cb.format = Format::Cbufd;
        let mut d = String::new();
        cb.render(&mut d);
        assert!(d.ends_with("}\n10\t3\tnan\n"), "{d}");
        let mut again = String::new();
        cb.render(&mut again);
        assert!(again.ends_with("}\n"), "deltas reset: {again}");
    }

    #[test]
    fn mann_whitney_matches_the_normal_approximation() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [6.0, 7.0, 8.0, 9.0, 10.0];
        let (u, p) = mann_whitney_u(&x, &y, true).expect("samples");
        assert_eq!(u, 0.0);
        assert!((p - 0.012185780355344818).abs() < 1e-12, "{p}");
        let (u2, p2) = mann_whitney_u(&y, &x, true).expect("samples");
        assert_eq!(u2, 25.0, "U1 + U2 = n1 * n2");
        assert!((p - p2).abs() < 1e-15);
        // Ties get average ranks and the tie-corrected variance.
        let (u, p) =
            mann_whitney_u(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0, 5.0], true).expect("samples");
        assert_eq!(u, 2.5);
        assert!((p - 0.13665824773814753).abs() < 1e-9, "{p}");
        assert_eq!(
            mann_whitney_u(&[1.0, 1.0], &[1.0, 1.0], true),
            Some((2.0, 1.0))
        );
        assert_eq!(mann_whitney_u(&[], &[1.0], true), None);
    }

    #[test]
    fn mannwhitneyu_and_get_range_read_rows_of_the_window() {
        let mut cb = CircularBuffer::new(10, 1, 1, false).expect("valid");
        for t in 0..10 {
            let v = if t < 5 { t as f64 } else { 10.0 + t as f64 };
            cb.set(t * S, 1, v).expect("ok");
        }
        assert_eq!(
            cb.get_range(1, Some(2 * S), Some(4 * S)).expect("ok"),
            Some(vec![2.0, 3.0, 4.0])
        );
        assert_eq!(
            cb.get_range(1, None, None).expect("ok").map(|v| v.len()),
            Some(10)
        );
        assert_eq!(cb.get_range(1, Some(20 * S), None).expect("ok"), None);
        assert!(cb.get_range(2, None, None).is_err(), "bad column");
        let (u, p) = cb
            .mannwhitneyu(1, (0, 4 * S), (5 * S, 9 * S), true)
            .expect("ok")
            .expect("valid ranges");
        assert_eq!(u, 0.0);
        assert!((p - 0.012185780355344818).abs() < 1e-12);
        assert_eq!(
            cb.mannwhitneyu(1, (0, 5 * S), (5 * S, 9 * S), true)
                .expect("ok"),
            None,
            "overlapping ranges"
        );
        cb.add(20 * S, 1, 1.0).expect("advance");
        assert_eq!(
            cb.mannwhitneyu(1, (0, 4 * S), (5 * S, 9 * S), true)
                .expect("ok"),
            None,
            "outside the window"
        );
    }

    #[test]
    fn annotations_appear_in_the_header_while_their_row_is_in_the_window() {
        let mut cb = CircularBuffer::new(2, 1, 10, true).expect("valid");
        cb.add(10 * S, 1, 1.0).expect("ok");
        cb.annotate(10 * S, 1, "alert", "spike \"x\"", true)
            .expect("ok");
        assert!(cb.annotate(10 * S, 1, "bogus", "", true).is_err());
        let mut out = String::new();
        cb.render(&mut out);
        assert!(
            out.contains(
                r#"}],"annotations":[{"x":10000,"col":1,"shortText":"A","text":"spike \"x\""}]}"#
            ),
            "{out}"
        );
        cb.format = Format::Cbufd;
        let mut d = String::new();
        cb.render(&mut d);
        assert!(d.contains("\"annotations\""), "first cbufd carries it: {d}");
        let mut d2 = String::new();
        cb.render(&mut d2);
        assert!(!d2.contains("annotations"), "sent once in cbufd: {d2}");
        cb.format = Format::Cbuf;
        cb.add(40 * S, 1, 1.0).expect("advance past the row");
        let mut gone = String::new();
        cb.render(&mut gone);
        assert!(!gone.contains("annotations"), "{gone}");
    }
}
