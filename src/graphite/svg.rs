//! A plain SVG line chart of series (`/render?format=svg` and the console's graphs):
//! one polyline per run of non-null points, a y axis with the range, time labels, and
//! a legend. Drawn by hekate; no third-party code.

use std::fmt::Write;

use super::series::Series;

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn label(v: f64) -> String {
    crate::pyfmt::percent_g(v, 4)
}

fn time_label(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Draws `data` as a `width`×`height` SVG document.
pub fn chart(data: &[Series], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let (left, right, top, bottom) = (60.0, 10.0, 10.0, 30.0 + 16.0 * data.len().min(8) as f64);
    let points: Vec<Vec<(i64, Option<f64>)>> = data
        .iter()
        .map(|s| {
            s.datapoints()
                .into_iter()
                .map(|(v, t)| (t, v.filter(|x| x.is_finite())))
                .collect()
        })
        .collect();
    let values = points.iter().flatten().filter_map(|p| p.1);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo.min(0.0), if hi > lo { hi } else { lo + 1.0 })
    } else {
        (0.0, 1.0)
    };
    let t0 = data.iter().map(|s| s.start).min().unwrap_or(0);
    let t1 = data
        .iter()
        .map(|s| s.end)
        .max()
        .unwrap_or(t0 + 1)
        .max(t0 + 1);
    let plot_w = (w - left - right).max(1.0);
    let plot_h = (h - top - bottom).max(1.0);
    let x = |t: i64| left + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |v: f64| top + plot_h - (v - lo) / (hi - lo) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#fff"/>"##
    );
    let _ = write!(
        svg,
        r##"<g stroke="#999" fill="none"><line x1="{left}" y1="{top}" x2="{left}" y2="{yb}"/><line x1="{left}" y1="{yb}" x2="{xr}" y2="{yb}"/></g>"##,
        yb = top + plot_h,
        xr = left + plot_w
    );
    for (v, anchor_y) in [(hi, top + 4.0), (lo, top + plot_h)] {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{anchor_y}" text-anchor="end">{}</text>"#,
            left - 4.0,
            label(v)
        );
    }
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
            x(t),
            top + plot_h + 14.0,
            time_label(t)
        );
    }
    for (i, (s, pts)) in data.iter().zip(&points).enumerate() {
        let color = COLORS[i % COLORS.len()];
        for run in pts.split(|p| p.1.is_none()).filter(|r| !r.is_empty()) {
            let coords: Vec<String> = run
                .iter()
                .filter_map(|(t, v)| v.map(|v| format!("{:.1},{:.1}", x(*t), y(v))))
                .collect();
            if coords.len() == 1 {
                let (cx, cy) = coords[0].split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    svg,
                    r#"<circle class="point" cx="{cx}" cy="{cy}" r="2" fill="{color}"/>"#
                );
            } else {
                let _ = write!(
                    svg,
                    r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                    coords.join(" ")
                );
            }
        }
        if i < 8 {
            let ly = top + plot_h + 30.0 + 16.0 * i as f64;
            let _ = write!(
                svg,
                r#"<rect x="{left}" y="{}" width="10" height="10" fill="{color}"/><text class="legend" x="{}" y="{ly}">{}</text>"#,
                ly - 9.0,
                left + 14.0,
                escape(&s.name)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_runs_and_escapes_names() {
        let s = Series::new(
            "a<b",
            0,
            40,
            10,
            vec![Some(1.0), Some(2.0), None, Some(3.0)],
            0.0,
        );
        let out = chart(&[s], 300, 200);
        assert!(out.contains("<polyline"));
        assert!(out.contains("<circle"));
        assert!(out.contains("a&lt;b"));
    }
}
