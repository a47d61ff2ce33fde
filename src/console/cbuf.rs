//! Reads the text forms of Heka's circular buffer (`cbuf` and `cbufd` payloads): a JSON
//! header line, then one tab-separated row per `seconds_per_row` (`cbuf`, oldest first)
//! or only the changed rows, each led by its time (`cbufd`). The console graphs them.

use serde::Serialize;
use serde_json::Value;

/// One column's description from the header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Unit, e.g. `count`.
    pub unit: String,
    /// Aggregation, e.g. `sum`.
    pub aggregation: String,
}

/// A parsed circular buffer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cbuf {
    /// Start time of the first row (Unix seconds).
    pub time: i64,
    /// Seconds per row.
    pub seconds_per_row: i64,
    /// Columns.
    pub columns: Vec<Column>,
    /// Row times.
    pub times: Vec<i64>,
    /// One vector per column, aligned with `times` (`None` for `nan`).
    pub values: Vec<Vec<Option<f64>>>,
    /// True for a `cbufd` (delta) payload.
    pub delta: bool,
}

/// Parses a `cbuf` (`delta = false`) or `cbufd` payload.
pub fn parse(payload: &str, delta: bool) -> Result<Cbuf, String> {
    let mut lines = payload.lines();
    let header: Value = serde_json::from_str(lines.next().ok_or("empty payload")?)
        .map_err(|e| format!("bad cbuf header: {e}"))?;
    let int = |k: &str| {
        header
            .get(k)
            .and_then(Value::as_i64)
            .ok_or(format!("header lacks {k}"))
    };
    let (time, spr) = (int("time")?, int("seconds_per_row")?.max(1));
    let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let columns: Vec<Column> = header
        .get("column_info")
        .and_then(Value::as_array)
        .ok_or("header lacks column_info")?
        .iter()
        .map(|c| Column {
            name: text(c, "name"),
            unit: text(c, "unit"),
            aggregation: text(c, "aggregation"),
        })
        .collect();
    let mut cb = Cbuf {
        time,
        seconds_per_row: spr,
        values: vec![Vec::new(); columns.len()],
        columns,
        times: Vec::new(),
        delta,
    };
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let mut cells = line.split('\t');
        let t = if delta {
            let first = cells.next().unwrap_or("");
            first
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("bad row time {first:?}"))? as i64
        } else {
            time + i as i64 * spr
        };
        cb.times.push(t);
        for col in cb.values.iter_mut() {
            let v = cells
                .next()
                .and_then(|c| c.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite());
            col.push(v);
        }
    }
    Ok(cb)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"time":600,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"200","unit":"count","aggregation":"sum"},{"name":"404","unit":"count","aggregation":"sum"}]}"#;

    #[test]
    fn full_buffer_rows_follow_the_header_time() {
        let cb = parse(&format!("{HEADER}\n1\t2\nnan\t3\n4\t5\n"), false).unwrap();
        assert_eq!(cb.times, vec![600, 660, 720]);
        assert_eq!(cb.values[0], vec![Some(1.0), None, Some(4.0)]);
        assert_eq!(cb.columns[1].name, "404");
    }

    #[test]
    fn delta_rows_carry_their_time() {
        let cb = parse(&format!("{HEADER}\n660\t7\t8\n"), true).unwrap();
        assert_eq!(cb.times, vec![660]);
        assert_eq!(cb.values[1], vec![Some(8.0)]);
        assert!(parse("not json\n", false).is_err());
    }
}
