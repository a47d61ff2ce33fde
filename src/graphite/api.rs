//! graphite-web's read API over a [`Store`]: `/metrics/find`, `/metrics/expand` and
//! `/render`, from already-decoded query parameters to a response body. The HTTP server
//! (`console`) only routes and decodes; everything Graphite-specific is here.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use super::functions::{evaluate, Context};
use super::series::Series;
use super::store::Store;
use super::{attime, grammar, svg, GraphiteError};
use crate::pyfmt::repr;

/// A response body and its content type.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// MIME type.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    fn json(v: &Json) -> Body {
        Body {
            content_type: "application/json",
            bytes: v.to_string().into_bytes(),
        }
    }
}

/// Query parameters, in order (repeated keys allowed).
pub type Params = [(String, String)];

fn get<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn all<'a>(params: &'a Params, key: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn flag(params: &Params, key: &str) -> bool {
    get(params, key).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn bad_param(param: &str, why: impl Into<String>) -> GraphiteError {
    GraphiteError::BadParam {
        param: param.to_string(),
        why: why.into(),
    }
}

/// `/metrics/find`: `query`, `format` (`treejson`, the default; `completer`; `json`),
/// `wildcards`, `leavesOnly`.
pub fn find(store: &Store, params: &Params) -> Result<Body, GraphiteError> {
    let raw =
        get(params, "query").ok_or_else(|| bad_param("query", "missing required parameter"))?;
    if raw.is_empty() {
        return Err(bad_param("query", "required parameter is empty"));
    }
    let format = get(params, "format").unwrap_or("treejson");
    let mut query = raw.to_string();
    if format == "completer" {
        query = query.replace("..", "*.");
        if !query.ends_with('*') {
            query.push('*');
        }
    }
    let base = raw
        .rsplit_once('.')
        .map_or(String::new(), |(b, _)| format!("{b}."));
    let mut nodes = store.find(&query)?;
    if flag(params, "leavesOnly") {
        nodes.retain(|n| n.is_leaf());
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    let wildcards = flag(params, "wildcards");
    let body = match format {
        "treejson" => tree_json(&nodes, &base, wildcards),
        "completer" => {
            let mut metrics: Vec<Json> = nodes
                .iter()
                .map(|n| {
                    let path = if n.is_leaf() { n.path.clone() } else { format!("{}.", n.path) };
                    json!({"path": path, "name": n.name, "is_leaf": if n.is_leaf() { "1" } else { "0" }})
                })
                .collect();
            if metrics.len() > 1 && wildcards {
                metrics.push(json!({"name": "*"}));
            }
            json!({ "metrics": metrics })
        }
        "json" => Json::Array(
            nodes
                .iter()
                .map(|n| json!({"path": n.path, "is_leaf": n.is_leaf()}))
                .collect(),
        ),
        other => return Err(bad_param("format", format!("invalid value {other:?}"))),
    };
    Ok(Body::json(&body))
}

fn tree_json(nodes: &[super::store::Node], base: &str, wildcards: bool) -> Json {
    let node = |text: &str, id: String, leaf: bool| {
        let l = u8::from(leaf);
        json!({"text": text, "id": id, "allowChildren": 1 - l, "expandable": 1 - l, "leaf": l})
    };
    let mut out = Vec::new();
    if nodes.len() > 1 && wildcards {
        let any_branch = nodes.iter().any(|n| !n.is_leaf());
        out.push(node("*", format!("{base}*"), !any_branch));
    }
    let mut seen = BTreeSet::new();
    let (mut branches, mut leaves) = (Vec::new(), Vec::new());
    for n in nodes {
        if !seen.insert(n.name.as_str()) {
            continue;
        }
        let j = node(&n.name, format!("{base}{}", n.name), n.is_leaf());
        if n.is_leaf() {
            leaves.push(j);
        } else {
            branches.push(j);
        }
    }
    out.extend(branches);
    out.extend(leaves);
    Json::Array(out)
}

/// `/metrics/expand`: every `query`, `leavesOnly`, `groupByExpr`.
pub fn expand(store: &Store, params: &Params) -> Result<Body, GraphiteError> {
    let queries = all(params, "query");
    if queries.is_empty() {
        return Err(bad_param("query", "missing required parameter"));
    }
    let leaves_only = flag(params, "leavesOnly");
    let mut grouped = serde_json::Map::new();
    let mut union = BTreeSet::new();
    for q in queries {
        let paths: BTreeSet<String> = store
            .find(q)?
            .into_iter()
            .filter(|n| n.is_leaf() || !leaves_only)
            .map(|n| n.path)
            .collect();
        union.extend(paths.iter().cloned());
        grouped.insert(q.to_string(), json!(paths));
    }
    let results = if flag(params, "groupByExpr") {
        Json::Object(grouped)
    } else {
        json!(union)
    };
    Ok(Body::json(&json!({ "results": results })))
}

/// Output formats of `/render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[{"target":..,"tags":..,"datapoints":[[v,t],..]}]`.
    Json,
    /// `name,YYYY-MM-DD HH:MM:SS,value` rows.
    Csv,
    /// `name,start,end,step|v1,v2,..` lines.
    Raw,
    /// A line chart drawn by hekate.
    Svg,
}

/// A parsed `/render` request.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    /// Parsed targets with their source text.
    pub targets: Vec<(String, grammar::Expr)>,
    /// Range start.
    pub from: i64,
    /// Range end.
    pub until: i64,
    /// "Now".
    pub now: i64,
    /// Output format.
    pub format: Format,
    /// `maxDataPoints`.
    pub max_data_points: Option<usize>,
    /// `noNullPoints`.
    pub no_null_points: bool,
    /// `xFilesFactor`.
    pub xff: f64,
    /// SVG size.
    pub width: u32,
    /// SVG size.
    pub height: u32,
}

impl RenderRequest {
    /// Parses the parameters; `now` is the server's clock unless `now=` is given.
    pub fn parse(params: &Params, clock: i64) -> Result<Self, GraphiteError> {
        let mut targets = Vec::new();
        let mut raw_targets = all(params, "target");
        if raw_targets.is_empty() {
            raw_targets = all(params, "target[]");
        }
        for t in raw_targets.into_iter().filter(|t| !t.trim().is_empty()) {
            targets.push((t.to_string(), grammar::parse(t)?));
        }
        let time = |key: &str, v: &str, now: i64| {
            attime::parse_at_time(v, now).map_err(|e| bad_param(key, e.to_string()))
        };
        let now = match get(params, "now") {
            Some(v) => time("now", v, clock)?,
            None => clock,
        };
        let until = match get(params, "until") {
            Some(v) => time("until", v, now)?,
            None => now,
        };
        let from = match get(params, "from") {
            Some(v) => time("from", v, now)?,
            None => now - 86_400,
        };
        let (from, until) = (from.min(until), from.max(until));
        if from == until {
            return Err(bad_param("from", "invalid empty time range"));
        }
        let format = match get(params, "format") {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some("raw") => Format::Raw,
            Some("svg") => Format::Svg,
            Some(other) => {
                return Err(bad_param(
                    "format",
                    format!("unsupported format {other:?} (json, csv, raw or svg)"),
                ))
            }
        };
        let number = |key: &str| -> Result<Option<f64>, GraphiteError> {
            get(params, key)
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| bad_param(key, format!("not a number: {v:?}")))
                })
                .transpose()
        };
        let max_data_points = get(params, "maxDataPoints")
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok());
        Ok(RenderRequest {
            targets,
            from,
            until,
            now,
            format,
            max_data_points,
            no_null_points: get(params, "noNullPoints").is_some(),
            xff: number("xFilesFactor")?.unwrap_or(0.0),
            width: number("width")?.map_or(800, |w| w.clamp(100.0, 4000.0) as u32),
            height: number("height")?.map_or(400, |h| h.clamp(100.0, 4000.0) as u32),
        })
    }
}

/// Evaluates every target of `req`.
pub fn evaluate_all(store: &Store, req: &RenderRequest) -> Result<Vec<Series>, GraphiteError> {
    let cx = Context {
        store,
        start: req.from,
        end: req.until,
        now: req.now,
        xff: req.xff,
    };
    let mut out = Vec::new();
    for (_, e) in &req.targets {
        out.extend(evaluate(&cx, e)?);
    }
    Ok(out)
}

/// `/render`: evaluates the targets and formats them.
pub fn render(store: &Store, params: &Params, clock: i64) -> Result<Body, GraphiteError> {
    let req = RenderRequest::parse(params, clock)?;
    let mut data = evaluate_all(store, &req)?;
    Ok(match req.format {
        Format::Json => {
            apply_max_data_points(&mut data, req.max_data_points);
            Body {
                content_type: "application/json",
                bytes: render_json(&data, req.no_null_points).into_bytes(),
            }
        }
        Format::Csv => Body {
            content_type: "text/csv",
            bytes: render_csv(&data).into_bytes(),
        },
        Format::Raw => Body {
            content_type: "text/plain",
            bytes: render_raw(&data).into_bytes(),
        },
        Format::Svg => {
            apply_max_data_points(
                &mut data,
                Some(req.max_data_points.unwrap_or(req.width as usize)),
            );
            Body {
                content_type: "image/svg+xml",
                bytes: svg::chart(&data, req.width, req.height).into_bytes(),
            }
        }
    })
}

/// graphite-web's `maxDataPoints` consolidation for JSON, step for step.
pub fn apply_max_data_points(data: &mut [Series], max: Option<usize>) {
    let Some(max) = max else { return };
    let (Some(start), Some(end)) = (
        data.iter().map(|s| s.start).min(),
        data.iter().map(|s| s.end).max(),
    ) else {
        return;
    };
    let range = (end - start) as f64;
    for s in data.iter_mut() {
        if max == 1 {
            let n = s.values.len();
            s.consolidate(n);
            continue;
        }
        let points = range / s.step as f64;
        if (max as f64) < points {
            let vpp = (points / max as f64).ceil() as i64;
            let spp = vpp * s.step;
            let nudge = spp + s.start % s.step - s.start % spp;
            s.start += nudge;
            let lose = (nudge / s.step) as usize;
            let drop = lose.saturating_sub(1).min(s.values.len());
            s.values.drain(..drop);
            s.consolidate(vpp as usize);
        }
    }
}

/// Appends a value as graphite-web writes it: Python's `repr` of the float, `null` for
/// a gap or NaN, `1e9999` for infinity. The common cases skip the general formatter:
/// integral values and values whose shortest digits Python shows positionally.
fn push_number(out: &mut String, v: Option<f64>) {
    use std::fmt::Write;
    let Some(x) = v.filter(|x| !x.is_nan()) else {
        out.push_str("null");
        return;
    };
    let a = x.abs();
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "1e9999" } else { "-1e9999" });
    } else if x.fract() == 0.0 && a < 1e16 && x != 0.0 {
        let _ = write!(out, "{}.0", x as i64);
    } else if (1e-4..1e16).contains(&a) {
        // Rust's Display is the shortest round-trip form, positional: Python's repr in
        // this range (integral values were handled above).
        let _ = write!(out, "{x}");
    } else {
        out.push_str(&repr(x));
    }
}

/// The JSON format graphite-web returns.
pub fn render_json(data: &[Series], no_null_points: bool) -> String {
    let total: usize = data.iter().map(|s| s.values.len()).sum();
    let mut out = String::with_capacity(64 + total * 24);
    out.push('[');
    let mut first = true;
    for s in data {
        let step = (s.step * s.values_per_point as i64).max(1);
        let points = s.points();
        let times = (s.start..=s.end).step_by(step as usize);
        let keep = |v: &Option<f64>| !no_null_points || v.is_some_and(|x| !x.is_nan());
        if no_null_points && !points.iter().zip(times.clone()).any(|(v, _)| keep(v)) {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str("{\"target\": ");
        out.push_str(&Json::String(s.name.clone()).to_string());
        out.push_str(", \"tags\": ");
        out.push_str(&json!(s.tags).to_string());
        out.push_str(", \"datapoints\": [");
        let mut first_point = true;
        for (v, t) in points.iter().zip(times) {
            if !keep(v) {
                continue;
            }
            if !first_point {
                out.push_str(", ");
            }
            first_point = false;
            out.push('[');
            push_number(&mut out, *v);
            out.push_str(", ");
            out.push_str(itoa::Buffer::new().format(t));
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

fn render_csv(data: &[Series]) -> String {
    let mut out = String::new();
    for s in data {
        for (i, v) in s.points().iter().enumerate() {
            let t = s.start + i as i64 * s.step * s.values_per_point as i64;
            let when = chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let value = v.map(repr).unwrap_or_default();
            let name = if s.name.contains([',', '"']) {
                format!("\"{}\"", s.name.replace('"', "\"\""))
            } else {
                s.name.clone()
            };
            out.push_str(&format!("{name},{when},{value}\r\n"));
        }
    }
    out
}

fn render_raw(data: &[Series]) -> String {
    let mut out = String::new();
    for s in data {
        let values: Vec<String> = s
            .points()
            .iter()
            .map(|v| v.map_or_else(|| "None".to_string(), repr))
            .collect();
        out.push_str(&format!(
            "{},{},{},{}|{}\n",
            s.name,
            s.start,
            s.end,
            s.step,
            values.join(",")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn max_data_points_consolidates_like_graphite() {
        let mut s = vec![Series::new(
            "a",
            100,
            160,
            10,
            (0..6).map(|i| Some(i as f64)).collect(),
            0.0,
        )];
        apply_max_data_points(&mut s, Some(3));
        assert_eq!(s[0].values_per_point, 2);
        assert_eq!(s[0].start, 120);
        assert_eq!(
            s[0].datapoints(),
            vec![(Some(1.5), 120), (Some(3.5), 140), (Some(5.0), 160)]
        );
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let store = Store::default();
        let e = render(&store, &params(&[("target", "nope(a.b)")]), 1000).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = render(&store, &params(&[("target", "a.b"), ("from", "-1x")]), 1000).unwrap_err();
        assert!(e.to_string().contains("from"), "{e}");
        let e = find(&store, &params(&[("query", "../../etc")])).unwrap_err();
        assert!(matches!(e, GraphiteError::PathRefused { .. }), "{e}");
    }

    #[test]
    fn fast_numbers_equal_python_repr() {
        let mut x = 1.234_567_890_123e-12_f64;
        let mut samples = vec![
            0.0,
            -0.0,
            3.0,
            -7.0,
            1e15,
            1e16,
            123456789012345.0,
            0.1,
            1e-4,
            9.99e-5,
            2.5e20,
            0.116667,
        ];
        while x < 1e22 {
            samples.push(x);
            samples.push(-x * 1.7);
            x *= 3.3;
        }
        for v in samples {
            let mut s = String::new();
            push_number(&mut s, Some(v));
            assert_eq!(s, repr(v), "{v:e}");
        }
    }

    #[test]
    fn json_matches_graphite_layout() {
        let s = vec![Series::new("a.b", 10, 30, 10, vec![Some(1.0), None], 0.0)];
        assert_eq!(
            render_json(&s, false),
            r#"[{"target": "a.b", "tags": {"name":"a.b"}, "datapoints": [[1.0, 10], [null, 20]]}]"#
        );
    }
}
