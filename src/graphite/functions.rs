//! Graphite's render functions, evaluated as graphite-web 1.1 evaluates them: the same
//! names for the resulting series, the same normalisation of steps (least common
//! multiple), the same handling of gaps and `xFilesFactor`.
//!
//! Supported: `sumSeries`, `averageSeries`, `minSeries`, `maxSeries`, `aggregate`,
//! `scale`, `offset`, `absolute`, `alias`, `aliasByNode`, `aliasByMetric`, `summarize`,
//! `derivative`, `nonNegativeDerivative`, `perSecond`, `integral`, `movingAverage`,
//! `keepLastValue`, `transformNull`, `asPercent` (without nodes), `highestCurrent`,
//! `highestMax`, `lowestCurrent`, `highest`, `lowest`, `limit`, `sortByName`,
//! `groupByNode`, `timeShift`.

use super::grammar::{first_path_expression, Call, Expr};
use super::series::Series;
use super::store::Store;
use super::{attime, GraphiteError};
use crate::pyfmt::percent_g;

/// What a target is evaluated against.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Where metrics are read.
    pub store: &'a Store,
    /// Start of the requested range (epoch seconds).
    pub start: i64,
    /// End of the requested range.
    pub end: i64,
    /// "Now" for whisper's archive selection.
    pub now: i64,
    /// The request's `xFilesFactor` (default 0).
    pub xff: f64,
}

/// The value of an expression.
#[derive(Debug, Clone)]
pub enum Value {
    /// A list of series.
    Series(Vec<Series>),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// `None`.
    None,
}

type Result<T> = std::result::Result<T, GraphiteError>;

/// Evaluates a target to its series.
pub fn evaluate(cx: &Context<'_>, e: &Expr) -> Result<Vec<Series>> {
    match value(cx, e)? {
        Value::Series(s) => Ok(s),
        _ => Err(GraphiteError::Parse {
            target: format!("{e:?}"),
            why: "a target must be a metric path or a function call".into(),
        }),
    }
}

fn value(cx: &Context<'_>, e: &Expr) -> Result<Value> {
    Ok(match e {
        Expr::Path(p) => Value::Series(fetch(cx, p)?),
        Expr::Call(c) => Value::Series(call(cx, c)?),
        Expr::Int(i) => Value::Num(*i as f64),
        Expr::Float(f) => Value::Num(*f),
        Expr::Inf => Value::Num(f64::INFINITY),
        Expr::Str(s) => Value::Str(s.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::None => Value::None,
    })
}

/// Reads every metric matching `pattern` over the context's range, sorted by name.
pub fn fetch(cx: &Context<'_>, pattern: &str) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for node in cx.store.find_leaves(pattern)? {
        let Some(file) = &node.file else { continue };
        match crate::whisper::fetch(file, cx.start, cx.end, cx.now) {
            Ok(Some(f)) => {
                let mut s = Series::new(&node.path, f.start, f.end, f.step, f.values, cx.xff);
                s.path_expr = pattern.to_string();
                out.push(s);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(file = %file.display(), error = %e, "Skipping an unreadable whisper file.")
            }
        }
    }
    Ok(out)
}

/// The arguments of one call, evaluated on demand.
struct Args<'c, 'a> {
    cx: &'c Context<'a>,
    call: &'c Call,
}

impl Args<'_, '_> {
    fn bad(&self, why: impl Into<String>) -> GraphiteError {
        GraphiteError::BadArgument {
            function: self.call.name.clone(),
            why: why.into(),
        }
    }

    fn expr(&self, i: usize, key: &str) -> Option<&Expr> {
        self.call.args.get(i).or_else(|| {
            self.call
                .kwargs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        })
    }

    fn value(&self, i: usize, key: &str) -> Result<Option<Value>> {
        self.expr(i, key).map(|e| value(self.cx, e)).transpose()
    }

    fn series(&self, i: usize, key: &str) -> Result<Vec<Series>> {
        match self.value(i, key)? {
            Some(Value::Series(s)) => Ok(s),
            Some(_) => Err(self.bad(format!("argument {key} must be a series list"))),
            None => Err(self.bad(format!("missing argument {key}"))),
        }
    }

    /// Every positional argument from `from` on, as series lists joined.
    fn series_rest(&self, from: usize) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        for i in from..self.call.args.len() {
            out.extend(self.series(i, "seriesList")?);
        }
        Ok(out)
    }

    fn num(&self, i: usize, key: &str, default: Option<f64>) -> Result<f64> {
        match self.value(i, key)? {
            Some(Value::Num(n)) => Ok(n),
            Some(Value::None) | None => {
                default.ok_or_else(|| self.bad(format!("missing argument {key}")))
            }
            Some(_) => Err(self.bad(format!("argument {key} must be a number"))),
        }
    }

    fn opt_num(&self, i: usize, key: &str) -> Result<Option<f64>> {
        match self.value(i, key)? {
            Some(Value::Num(n)) => Ok(Some(n)),
            Some(Value::None) | None => Ok(None),
            Some(_) => Err(self.bad(format!("argument {key} must be a number"))),
        }
    }

    fn string(&self, i: usize, key: &str, default: Option<&str>) -> Result<String> {
        match self.value(i, key)? {
            Some(Value::Str(s)) => Ok(s),
            None => default
                .map(str::to_string)
                .ok_or_else(|| self.bad(format!("missing argument {key}"))),
            Some(_) => Err(self.bad(format!("argument {key} must be a string"))),
        }
    }

    fn boolean(&self, i: usize, key: &str, default: bool) -> Result<bool> {
        match self.value(i, key)? {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::Num(n)) => Ok(n != 0.0),
            None => Ok(default),
            Some(_) => Err(self.bad(format!("argument {key} must be true or false"))),
        }
    }

    fn count(&self, i: usize, key: &str) -> Result<usize> {
        let n = self.num(i, key, None)?;
        if n < 0.0 {
            return Err(self.bad(format!("argument {key} must not be negative")));
        }
        Ok(n as usize)
    }
}

/// Evaluates one function call.
fn call(cx: &Context<'_>, c: &Call) -> Result<Vec<Series>> {
    let a = Args { cx, call: c };
    let agg = |f: &str| aggregate(&a, a.series_rest(0)?, f, None);
    match c.name.as_str() {
        "sumSeries" | "sum" => agg("sum"),
        "averageSeries" | "avg" => agg("average"),
        "minSeries" => agg("min"),
        "maxSeries" => agg("max"),
        "aggregate" => {
            let f = a.string(1, "func", None)?;
            let xff = a.opt_num(2, "xFilesFactor")?;
            aggregate(
                &a,
                a.series(0, "seriesList")?,
                f.trim_end_matches("Series"),
                xff,
            )
        }
        "scale" => scale(&a),
        "offset" => offset(&a),
        "absolute" => map_named(&a, "absolute", |v| v.map(f64::abs)),
        "alias" => {
            let name = a.string(1, "newName", None)?;
            Ok(rename(a.series(0, "seriesList")?, |_| name.clone()))
        }
        "aliasByNode" => alias_by_node(&a),
        "aliasByMetric" => Ok(rename(a.series(0, "seriesList")?, |s| {
            alias_by_metric(&s.name)
        })),
        "summarize" => summarize(&a),
        "derivative" => derivative(&a),
        "nonNegativeDerivative" => non_negative_derivative(&a, false),
        "perSecond" => non_negative_derivative(&a, true),
        "integral" => integral(&a),
        "movingAverage" => moving_average(&a),
        "keepLastValue" => keep_last_value(&a),
        "transformNull" => transform_null(&a),
        "asPercent" => as_percent(&a),
        "highestCurrent" => pick(&a, "current", true),
        "highestMax" => pick(&a, "max", true),
        "lowestCurrent" => pick(&a, "current", false),
        "highest" | "lowest" => {
            let func = a.string(2, "func", Some("average"))?;
            pick(&a, &func, c.name == "highest")
        }
        "limit" => {
            let mut s = a.series(0, "seriesList")?;
            s.truncate(a.count(1, "n")?);
            Ok(s)
        }
        "sortByName" => sort_by_name(&a),
        "groupByNode" => group_by_node(&a),
        "timeShift" => time_shift(&a),
        other => Err(GraphiteError::UnknownFunction(other.to_string())),
    }
}

fn rename(mut list: Vec<Series>, f: impl Fn(&Series) -> String) -> Vec<Series> {
    for s in &mut list {
        s.name = f(s);
    }
    list
}

fn fmt_g(x: f64) -> String {
    percent_g(x, 6)
}

/// An aggregation over a row of values that may hold gaps.
pub type AggFn = fn(&[Option<f64>]) -> Option<f64>;

/// Graphite's aggregation functions (`getAggFunc`), over a row that may hold gaps.
pub fn agg_func(name: &str) -> Option<AggFn> {
    fn nn(row: &[Option<f64>]) -> Vec<f64> {
        row.iter().flatten().copied().collect()
    }
    fn sum(r: &[Option<f64>]) -> Option<f64> {
        let v = nn(r);
        (!v.is_empty()).then(|| v.iter().sum())
    }
    fn avg(r: &[Option<f64>]) -> Option<f64> {
        let v = nn(r);
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
    fn avg_zero(r: &[Option<f64>]) -> Option<f64> {
        (!r.is_empty()).then(|| r.iter().map(|v| v.unwrap_or(0.0)).sum::<f64>() / r.len() as f64)
    }
    fn median(r: &[Option<f64>]) -> Option<f64> {
        let mut v = nn(r);
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        match v.len() {
            0 => None,
            n if n % 2 == 0 => Some((v[mid - 1] + v[mid]) / 2.0),
            _ => Some(v[mid]),
        }
    }
    fn min(r: &[Option<f64>]) -> Option<f64> {
        nn(r).into_iter().reduce(f64::min)
    }
    fn max(r: &[Option<f64>]) -> Option<f64> {
        nn(r).into_iter().reduce(f64::max)
    }
    fn diff(r: &[Option<f64>]) -> Option<f64> {
        let v = nn(r);
        let (first, rest) = v.split_first()?;
        Some(first - rest.iter().sum::<f64>())
    }
    fn stddev(r: &[Option<f64>]) -> Option<f64> {
        let v = nn(r);
        let mean = avg(r)?;
        Some((v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64).sqrt())
    }
    fn count(r: &[Option<f64>]) -> Option<f64> {
        Some(nn(r).len() as f64)
    }
    fn range(r: &[Option<f64>]) -> Option<f64> {
        Some(max(r)? - min(r)?)
    }
    fn multiply(r: &[Option<f64>]) -> Option<f64> {
        r.iter().try_fold(1.0, |acc, v| v.map(|v| acc * v))
    }
    fn last(r: &[Option<f64>]) -> Option<f64> {
        r.iter().rev().flatten().next().copied()
    }
    Some(match name {
        "average" | "avg" => avg,
        "avg_zero" => avg_zero,
        "median" => median,
        "sum" | "total" => sum,
        "min" => min,
        "max" => max,
        "diff" => diff,
        "stddev" => stddev,
        "count" => count,
        "range" | "rangeOf" => range,
        "multiply" => multiply,
        "last" | "current" => last,
        _ => return None,
    })
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Brings series to a common step (Graphite's `normalize`): returns start, end, step.
fn normalize(list: &mut [Series]) -> Option<(i64, i64, i64)> {
    let step = list.iter().map(|s| s.step).reduce(|a, b| {
        if a == b {
            a
        } else {
            a / gcd(a.max(b), a.min(b)) * b
        }
    })?;
    for s in list.iter_mut() {
        s.consolidate((step / s.step.max(1)) as usize);
    }
    let start = list.iter().map(|s| s.start).min()?;
    let mut end = list.iter().map(|s| s.end).max()?;
    end -= (end - start) % step.max(1);
    Some((start, end, step))
}

/// Rows across series (`izip_longest`), gaps where a series is shorter.
fn rows(list: &[Series]) -> Vec<Vec<Option<f64>>> {
    let points: Vec<Vec<Option<f64>>> = list.iter().map(Series::points).collect();
    let n = points.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| points.iter().map(|p| p.get(i).copied().flatten()).collect())
        .collect()
}

fn format_path_exprs(list: &[Series]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in list {
        if !seen.contains(&s.path_expr.as_str()) {
            seen.push(&s.path_expr);
        }
    }
    seen.join(",")
}

fn xff_ok(non_null: usize, total: f64, xff: f64) -> bool {
    non_null > 0 && total > 0.0 && non_null as f64 / total >= xff
}

fn aggregate(
    a: &Args<'_, '_>,
    mut list: Vec<Series>,
    func: &str,
    xff: Option<f64>,
) -> Result<Vec<Series>> {
    let f =
        agg_func(func).ok_or_else(|| a.bad(format!("unsupported aggregation function: {func}")))?;
    let Some((start, end, step)) = normalize(&mut list) else {
        return Ok(Vec::new());
    };
    let xff = xff.unwrap_or(a.cx.xff);
    let name = format!("{func}Series({})", format_path_exprs(&list));
    let values = rows(&list)
        .iter()
        .map(|row| {
            let nn = row.iter().flatten().count();
            if xff_ok(nn, row.len() as f64, xff) {
                f(row)
            } else {
                None
            }
        })
        .collect();
    let mut s = Series::new(&name, start, end, step, values, xff);
    let mut tags = list[0].tags.clone();
    tags.retain(|k, v| list.iter().all(|o| o.tags.get(k) == Some(v)));
    tags.entry("name".into()).or_insert(name);
    tags.insert("aggregatedBy".into(), func.into());
    s.tags = tags;
    Ok(vec![s])
}

fn scale(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let factor = a.num(1, "factor", None)?;
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.tags.insert("scale".into(), fmt_g(factor));
        s.name = format!("scale({},{})", s.name, fmt_g(factor));
        s.path_expr = s.name.clone();
        s.values.iter_mut().for_each(|v| *v = v.map(|x| x * factor));
    }
    Ok(list)
}

fn offset(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let factor = a.num(1, "factor", None)?;
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.tags.insert("offset".into(), fmt_g(factor));
        s.name = format!("offset({},{})", s.name, fmt_g(factor));
        s.path_expr = s.name.clone();
        s.values.iter_mut().for_each(|v| *v = v.map(|x| x + factor));
    }
    Ok(list)
}

fn map_named(
    a: &Args<'_, '_>,
    fname: &str,
    f: impl Fn(Option<f64>) -> Option<f64>,
) -> Result<Vec<Series>> {
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.tags.insert(fname.into(), "1".into());
        s.name = format!("{fname}({})", s.name);
        s.path_expr = s.name.clone();
        s.values.iter_mut().for_each(|v| *v = f(*v));
    }
    Ok(list)
}

/// Graphite's `aggKey`: the nodes (or tags) of a series' name joined by `.`.
fn agg_key(s: &Series, nodes: &[Value]) -> String {
    let path = if s.name.ends_with(')') {
        first_path_expression(&s.name).unwrap_or_else(|| s.name.clone())
    } else {
        s.name.clone()
    };
    let bare = path.split(';').next().unwrap_or("");
    let parts: Vec<&str> = bare.split('.').collect();
    nodes
        .iter()
        .map(|n| match n {
            Value::Num(x) => {
                let i = *x as i64;
                let idx = if i < 0 { parts.len() as i64 + i } else { i };
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .map_or_else(String::new, |p| p.to_string())
            }
            Value::Str(tag) => s.tags.get(tag).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn alias_by_node(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let list = a.series(0, "seriesList")?;
    let nodes: Vec<Value> = (1..a.call.args.len())
        .map(|i| a.value(i, "nodes").map(|v| v.unwrap_or(Value::None)))
        .collect::<Result<_>>()?;
    Ok(rename(list, |s| agg_key(s, &nodes)))
}

/// Graphite's `aliasByMetric` (`substr(-1)`): the last node of the innermost path.
fn alias_by_metric(name: &str) -> String {
    let left = name.rfind('(').map_or(0, |i| i + 1);
    let right = name.find(')').unwrap_or(name.len() + 1);
    let clean = name
        .get(left..right.min(name.len()).max(left))
        .unwrap_or("");
    let last = clean.rsplit('.').next().unwrap_or("");
    last.split(',').next().unwrap_or("").to_string()
}

fn summarize(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let spec = a.string(1, "intervalString", None)?;
    let func = a.string(2, "func", Some("sum"))?;
    let align = a.boolean(3, "alignToFrom", false)?;
    let interval = attime::parse_time_offset(&spec)
        .map_err(|e| a.bad(e))?
        .abs();
    if interval == 0 {
        return Err(a.bad("interval must be positive"));
    }
    let f = agg_func(&func)
        .ok_or_else(|| a.bad(format!("unsupported aggregation function: {func}")))?;
    let mut out = Vec::new();
    for s in a.series(0, "seriesList")? {
        let (new_start, new_end) = if align {
            (s.start, s.end)
        } else {
            (
                s.start - s.start % interval,
                s.end - s.end % interval + interval,
            )
        };
        let (values, aligned_end) = summarize_values(&s, f, interval, new_start, new_end);
        let suffix = if align { ", true" } else { "" };
        let name = format!("summarize({}, \"{spec}\", \"{func}\"{suffix})", s.name);
        let mut n = s.derive(name, values);
        n.tags.insert("summarize".into(), spec.clone());
        n.tags.insert("summarizeFunction".into(), func.clone());
        n.start = new_start;
        n.end = if align { aligned_end } else { new_end };
        n.step = interval;
        n.values_per_point = 1;
        out.push(n);
    }
    Ok(out)
}

/// Graphite's `_summarizeValues`, step for step.
fn summarize_values(
    s: &Series,
    f: AggFn,
    interval: i64,
    new_start: i64,
    new_end: i64,
) -> (Vec<Option<f64>>, i64) {
    let timestamps: Vec<i64> = (s.start..s.end).step_by(s.step.max(1) as usize).collect();
    let points = s.points();
    let interval_points = interval as f64 / s.step as f64;
    let n = timestamps.len().min(points.len());
    let (mut i, mut t) = (0usize, new_start);
    let mut values = Vec::new();
    while t < new_end {
        let (mut first, mut non_null) = (i, 0usize);
        while i < n && timestamps[i] < t + interval {
            if timestamps[i] <= t {
                first = i;
            }
            if timestamps[i] >= t && points[i].is_some() {
                non_null += 1;
            }
            i += 1;
        }
        values.push(if xff_ok(non_null, interval_points, s.xff) {
            f(&points[first..i])
        } else {
            None
        });
        t += interval;
    }
    (values, t)
}

fn derivative(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for s in a.series(0, "seriesList")? {
        let mut prev: Option<f64> = None;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                let d = match (prev, v) {
                    (Some(p), Some(v)) => Some(v - p),
                    _ => None,
                };
                prev = v;
                d
            })
            .collect();
        let mut n = s.derive(format!("derivative({})", s.name), values);
        n.values_per_point = 1;
        n.tags.insert("derivative".into(), "1".into());
        out.push(n);
    }
    Ok(out)
}

/// Graphite's `_nonNegativeDelta`: the delta and the new previous value.
fn non_negative_delta(
    val: Option<f64>,
    prev: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    if let (Some(v), Some(m)) = (val, max) {
        if v > m {
            return (None, None);
        }
    }
    if let (Some(v), Some(m)) = (val, min) {
        if v < m {
            return (None, None);
        }
    }
    let (Some(v), Some(p)) = (val, prev) else {
        return (None, val);
    };
    if v >= p {
        return (Some(v - p), val);
    }
    if let Some(m) = max {
        return (Some(m + 1.0 + v - p - min.unwrap_or(0.0)), val);
    }
    if let Some(m) = min {
        return (Some(v - m), val);
    }
    (None, val)
}

/// Python's `round(x, 6)`: Rust's fixed formatting rounds the exact binary value
/// correctly, as Python does.
fn round6(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

fn non_negative_derivative(a: &Args<'_, '_>, per_second: bool) -> Result<Vec<Series>> {
    let max = a.opt_num(1, "maxValue")?;
    let min = a.opt_num(2, "minValue")?;
    let fname = if per_second {
        "perSecond"
    } else {
        "nonNegativeDerivative"
    };
    let mut out = Vec::new();
    for s in a.series(0, "seriesList")? {
        let mut prev = None;
        let step = s.step as f64;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                let (d, p) = non_negative_delta(v, prev, max, min);
                prev = p;
                if per_second {
                    d.map(|d| round6(d / step))
                } else {
                    d
                }
            })
            .collect();
        let mut n = s.derive(format!("{fname}({})", s.name), values);
        n.values_per_point = 1;
        n.tags.insert(fname.into(), "1".into());
        out.push(n);
    }
    Ok(out)
}

fn integral(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for s in a.series(0, "seriesList")? {
        let mut total = 0.0;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                v.map(|v| {
                    total += v;
                    total
                })
            })
            .collect();
        let mut n = s.derive(format!("integral({})", s.name), values);
        n.values_per_point = 1;
        n.tags.insert("integral".into(), "1".into());
        out.push(n);
    }
    Ok(out)
}

fn moving_average(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let list = a.series(0, "seriesList")?;
    if list.is_empty() {
        return Ok(list);
    }
    let window = a
        .value(1, "windowSize")?
        .ok_or_else(|| a.bad("missing argument windowSize"))?;
    let xff = a.opt_num(2, "xFilesFactor")?;
    let (preview, label, fixed_points) = match &window {
        Value::Str(spec) => {
            let secs = attime::parse_time_offset(spec).map_err(|e| a.bad(e))?.abs();
            (secs, format!("\"{spec}\""), None)
        }
        Value::Num(n) if *n >= 0.0 => {
            let points = *n as i64;
            let max_step = list.iter().map(|s| s.step).max().unwrap_or(1);
            (max_step * points, points.to_string(), Some(points as usize))
        }
        _ => return Err(a.bad("windowSize must be a number of points or an interval string")),
    };
    let cx = Context {
        start: a.cx.start - preview,
        ..a.cx.clone()
    };
    let first = a
        .call
        .args
        .first()
        .ok_or_else(|| a.bad("missing argument seriesList"))?;
    let mut out = Vec::new();
    for s in evaluate(&cx, first)? {
        let points = fixed_points.unwrap_or((preview / s.step.max(1)) as usize);
        let eff_xff = xff.unwrap_or(s.xff);
        let mut values = Vec::new();
        for i in (points + 1)..=s.values.len() {
            let window: Vec<f64> = s.values[i - points..i].iter().flatten().copied().collect();
            values.push(if xff_ok(window.len(), points as f64, eff_xff) {
                Some(window.iter().sum::<f64>() / window.len() as f64)
            } else {
                None
            });
        }
        let mut n = s.derive(format!("movingAverage({},{label})", s.name), values);
        n.start = s.start + preview;
        n.values_per_point = 1;
        n.tags
            .insert("movingAverage".into(), label.trim_matches('"').to_string());
        out.push(n);
    }
    Ok(out)
}

fn keep_last_value(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let limit = a.num(1, "limit", Some(f64::INFINITY))?;
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.name = format!("keepLastValue({})", s.name);
        s.path_expr = s.name.clone();
        let (mut gap, mut last) = (0usize, None::<f64>);
        let n = s.values.len();
        for i in 0..=n {
            match s.values.get(i).copied() {
                Some(None) => gap += 1,
                v => {
                    if gap > 0 && gap as f64 <= limit {
                        if let Some(l) = last {
                            s.values[i - gap..i].iter_mut().for_each(|x| *x = Some(l));
                        }
                    }
                    gap = 0;
                    if let Some(Some(v)) = v {
                        last = Some(v);
                    }
                }
            }
        }
    }
    Ok(list)
}

fn transform_null(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let default = a.num(1, "default", Some(0.0))?;
    let reference = match a.value(2, "referenceSeries")? {
        Some(Value::Series(r)) => Some(r),
        Some(Value::None) | None => None,
        Some(_) => return Err(a.bad("referenceSeries must be a series list")),
    };
    let defaults: Option<Vec<Option<f64>>> = reference.as_ref().map(|r| {
        rows(r)
            .into_iter()
            .map(|row| row.iter().any(Option::is_some).then_some(default))
            .collect()
    });
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.tags.insert("transformNull".into(), fmt_g(default));
        s.name = match reference {
            Some(_) => format!(
                "transformNull({},{},referenceSeries)",
                s.name,
                fmt_g(default)
            ),
            None => format!("transformNull({},{})", s.name, fmt_g(default)),
        };
        s.path_expr = s.name.clone();
        let points = s.points();
        s.values = match &defaults {
            Some(d) if !d.is_empty() => {
                let n = points.len().max(d.len());
                (0..n)
                    .map(|i| {
                        points
                            .get(i)
                            .copied()
                            .flatten()
                            .or(d.get(i).copied().flatten())
                    })
                    .collect()
            }
            _ => points.into_iter().map(|v| v.or(Some(default))).collect(),
        };
        s.values_per_point = 1;
    }
    Ok(list)
}

fn safe_percent(v: Option<f64>, total: Option<f64>) -> Option<f64> {
    match (v, total) {
        (Some(v), Some(t)) if t != 0.0 => Some(v / t * 100.0),
        _ => None,
    }
}

fn zip_longest(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<(Option<f64>, Option<f64>)> {
    (0..a.len().max(b.len()))
        .map(|i| (a.get(i).copied().flatten(), b.get(i).copied().flatten()))
        .collect()
}

fn as_percent(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    if a.call.args.len() > 2 {
        return Err(a.bad("asPercent with nodes is not supported"));
    }
    let mut list = a.series(0, "seriesList")?;
    if list.is_empty() {
        return Ok(list);
    }
    normalize(&mut list);
    let xff = a.cx.xff;
    let (total_values, total_text): (Vec<Option<f64>>, String) = match a.value(1, "total")? {
        None | Some(Value::None) => {
            let t = rows(&list)
                .iter()
                .map(|r| agg_func("sum").and_then(|f| f(r)))
                .collect();
            (t, format!("sumSeries({})", format_path_exprs(&list)))
        }
        Some(Value::Num(n)) => {
            let text = if n.fract() == 0.0 && matches!(a.expr(1, "total"), Some(Expr::Int(_))) {
                format!("{}", n as i64)
            } else {
                crate::pyfmt::repr(n)
            };
            (vec![Some(n); list[0].points().len()], text)
        }
        Some(Value::Series(mut total)) => {
            if total.len() == list.len() {
                return Ok(pairwise_percent(list, total, xff));
            }
            if total.len() != 1 {
                return Err(a.bad("total must reference exactly one series or as many series as the first argument"));
            }
            let mut both: Vec<Series> = list.iter().cloned().chain(total.iter().cloned()).collect();
            normalize(&mut both);
            total[0].values_per_point = both[both.len() - 1].values_per_point;
            (total[0].points(), total[0].name.clone())
        }
        Some(_) => return Err(a.bad("total must be a number or a series list")),
    };
    Ok(list
        .into_iter()
        .map(|s| {
            let values = zip_longest(&s.points(), &total_values)
                .into_iter()
                .map(|(v, t)| safe_percent(v, t))
                .collect();
            let name = format!("asPercent({},{})", s.name, total_text);
            Series::new(&name, s.start, s.end, s.step, values, xff)
        })
        .collect())
}

fn pairwise_percent(mut list: Vec<Series>, mut total: Vec<Series>, xff: f64) -> Vec<Series> {
    list.sort_by(|x, y| x.name.cmp(&y.name));
    total.sort_by(|x, y| x.name.cmp(&y.name));
    list.into_iter()
        .zip(total)
        .map(|(s1, s2)| {
            let name = format!("asPercent({},{})", s1.name, s2.name);
            let mut pair = [s1, s2];
            let (start, end, step) = normalize(&mut pair).unwrap_or((0, 0, 1));
            let values = zip_longest(&pair[0].points(), &pair[1].points())
                .into_iter()
                .map(|(v, t)| safe_percent(v, t))
                .collect();
            Series::new(&name, start, end, step, values, xff)
        })
        .collect()
}

fn pick(a: &Args<'_, '_>, func: &str, highest: bool) -> Result<Vec<Series>> {
    let f =
        agg_func(func).ok_or_else(|| a.bad(format!("unsupported aggregation function: {func}")))?;
    let n = match a.opt_num(1, "n")? {
        Some(n) if n >= 0.0 => n as usize,
        Some(_) => return Err(a.bad("n must not be negative")),
        None => 1,
    };
    let mut list: Vec<(f64, Series)> = a
        .series(0, "seriesList")?
        .into_iter()
        .map(|s| (f(&s.points()).unwrap_or(f64::NEG_INFINITY), s))
        .collect();
    if highest {
        list.sort_by(|x, y| y.0.total_cmp(&x.0));
    } else {
        list.sort_by(|x, y| x.0.total_cmp(&y.0));
    }
    Ok(list.into_iter().take(n).map(|(_, s)| s).collect())
}

fn natural_key(name: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in name.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            out.push_str(&format!(
                "{:0>10}",
                if trimmed.is_empty() { "0" } else { trimmed }
            ));
            digits.clear();
        }
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn sort_by_name(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let natural = a.boolean(1, "natural", false)?;
    let reverse = a.boolean(2, "reverse", false)?;
    let mut list = a.series(0, "seriesList")?;
    let key = |s: &Series| {
        if natural {
            natural_key(&s.name)
        } else {
            s.name.clone()
        }
    };
    if reverse {
        list.sort_by_key(|s| std::cmp::Reverse(key(s)));
    } else {
        list.sort_by_key(key);
    }
    Ok(list)
}

fn group_by_node(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let list = a.series(0, "seriesList")?;
    let node = a
        .value(1, "nodeNum")?
        .ok_or_else(|| a.bad("missing argument nodeNum"))?;
    let callback = a.string(2, "callback", Some("average"))?;
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<Series>> = Vec::new();
    for s in list {
        let key = agg_key(&s, std::slice::from_ref(&node));
        match keys.iter().position(|k| *k == key) {
            Some(i) => groups[i].push(s),
            None => {
                keys.push(key);
                groups.push(vec![s]);
            }
        }
    }
    let func = match callback.as_str() {
        "sumSeries" | "sum" => "sum",
        "averageSeries" | "avg" => "average",
        "minSeries" => "min",
        "maxSeries" => "max",
        other => other,
    };
    let mut out = Vec::new();
    for (key, group) in keys.into_iter().zip(groups) {
        if let Some(mut s) = aggregate(a, group, func, None)?.into_iter().next() {
            s.name = key;
            out.push(s);
        }
    }
    Ok(out)
}

fn time_shift(a: &Args<'_, '_>) -> Result<Vec<Series>> {
    let mut shift = a.string(1, "timeShift", None)?;
    let reset_end = a.boolean(2, "resetEnd", true)?;
    if shift.starts_with(|c: char| c.is_ascii_digit()) {
        shift.insert(0, '-');
    }
    let delta = attime::parse_time_offset(&shift).map_err(|e| a.bad(e))?;
    let list = a.series(0, "seriesList")?;
    let Some(first) = list.first() else {
        return Ok(list);
    };
    let cx = Context {
        start: a.cx.start + delta,
        end: a.cx.end + delta,
        ..a.cx.clone()
    };
    let expr = a
        .call
        .args
        .first()
        .ok_or_else(|| a.bad("missing argument seriesList"))?;
    let mut out = evaluate(&cx, expr)?;
    for s in &mut out {
        s.tags.insert("timeShift".into(), shift.clone());
        s.name = format!("timeShift({}, \"{shift}\")", s.name);
        s.end = if reset_end {
            first.end
        } else {
            s.end - s.start + first.start
        };
        s.start = first.start;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_by_metric_takes_the_innermost_last_node() {
        assert_eq!(alias_by_metric("scale(a.b.c,2)"), "c");
        assert_eq!(alias_by_metric("a.b.count"), "count");
    }

    #[test]
    fn natural_sort_pads_numbers() {
        assert!(natural_key("web2") < natural_key("web10"));
    }

    #[test]
    fn deltas_follow_graphite() {
        assert_eq!(
            non_negative_delta(Some(5.0), Some(3.0), None, None),
            (Some(2.0), Some(5.0))
        );
        assert_eq!(
            non_negative_delta(Some(1.0), Some(3.0), None, None),
            (None, Some(1.0))
        );
        assert_eq!(
            non_negative_delta(Some(1.0), Some(3.0), Some(10.0), None),
            (Some(9.0), Some(1.0))
        );
        assert_eq!(round6(1.0 / 3.0), 0.333333);
    }
}
