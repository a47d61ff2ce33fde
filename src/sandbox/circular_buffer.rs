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

    fn header_json(&self, out: &mut String) {
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
        out.push_str("]}\n");
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

/// Keeps `max` chars, replacing those `keep` rejects with `_`.
fn sanitize(s: &str, max: usize, keep: impl Fn(char) -> bool) -> String {
    s.chars()
        .take(max)
        .map(|c| if keep(c) { c } else { '_' })
        .collect()
}

impl UserData for CircularBuffer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("add", |_, cb, (ns, col, v): (i64, i64, f64)| {
            cb.add(ns, col, v)
        });
        m.add_method_mut("set", |_, cb, (ns, col, v): (i64, i64, f64)| {
            cb.set(ns, col, v)
        });
        m.add_method_mut("get", |_, cb, (ns, col): (i64, i64)| cb.get(ns, col));
        m.add_method_mut(
            "compute",
            |_, cb, (f, col, s, e): (String, i64, Option<i64>, Option<i64>)| {
                Ok(match cb.compute(&f, col, s, e)? {
                    Some((r, n)) => (Some(r), Some(n)),
                    None => (None, None),
                })
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
            |_, cb, (col, name, unit, agg): (i64, String, Option<String>, Option<String>)| {
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
        m.add_method("get_header", |_, cb, col: i64| {
            let h = &cb.headers[cb.col(col)?];
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
}
