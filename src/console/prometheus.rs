//! `/metrics`: Prometheus text exposition (format 0.0.4) of every plugin's counters and
//! gauges, the router, the process (RSS, CPU, threads, open files) and build info.
//! Names follow Prometheus conventions: `hekate_plugin_processed_total{plugin,type,kind}`;
//! plugin-specific counters are `hekate_plugin_extra_total{...,name="bad_lines_seen"}`
//! and gauges `hekate_plugin_extra_level{...,name="memory"}`.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::stats::{PluginState, Report};

/// One exported standard counter: metric suffix, help text, reader.
type Standard = (
    &'static str,
    &'static str,
    fn(&crate::stats::PluginStats) -> u64,
);

const COUNTERS: [Standard; 6] = [
    (
        "processed",
        "Messages or records the plugin handled.",
        |s| s.processed.load(Relaxed),
    ),
    (
        "injected",
        "Messages the plugin injected into the router.",
        |s| s.injected.load(Relaxed),
    ),
    (
        "dropped",
        "Messages dropped on the way to or inside the plugin.",
        |s| s.dropped.load(Relaxed),
    ),
    (
        "decode_failures",
        "Records the plugin's decoder could not decode.",
        |s| s.decode_failures.load(Relaxed),
    ),
    (
        "failures",
        "Calls that failed without stopping the plugin.",
        |s| s.failures.load(Relaxed),
    ),
    ("restarts", "Restarts under the retry policy.", |s| {
        s.restarts.load(Relaxed)
    }),
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(e: &crate::stats::ReportEntry) -> String {
    format!(
        "plugin=\"{}\",type=\"{}\",kind=\"{}\"",
        escape(&e.name),
        escape(&e.type_name),
        e.kind
    )
}

/// Renders the exposition.
pub fn render(report: &Report) -> String {
    let entries = report.entries();
    let mut out = String::with_capacity(256 * entries.len().max(8));
    for (name, help, read) in COUNTERS {
        let _ = writeln!(out, "# HELP hekate_plugin_{name}_total {help}");
        let _ = writeln!(out, "# TYPE hekate_plugin_{name}_total counter");
        for e in &entries {
            let _ = writeln!(
                out,
                "hekate_plugin_{name}_total{{{}}} {}",
                labels(e),
                read(&e.stats)
            );
        }
    }
    gauge_family(
        &mut out,
        "hekate_plugin_queue_length",
        "Messages waiting in the plugin's input queue.",
        &entries,
        |e| Some(e.stats.queue_len.load(Relaxed)),
    );
    gauge_family(
        &mut out,
        "hekate_plugin_queue_capacity",
        "Capacity of the plugin's input queue.",
        &entries,
        |e| {
            let c = e.stats.info().queue_capacity;
            (c > 0).then_some(c)
        },
    );
    let _ = writeln!(
        out,
        "# HELP hekate_plugin_state Where each plugin is in its life (1 for its current state)."
    );
    let _ = writeln!(out, "# TYPE hekate_plugin_state gauge");
    for e in &entries {
        let current = e.stats.state();
        for st in [
            PluginState::Running,
            PluginState::Restarting,
            PluginState::Retired,
        ] {
            let _ = writeln!(
                out,
                "hekate_plugin_state{{{},state=\"{}\"}} {}",
                labels(e),
                st.as_str(),
                u8::from(current == st)
            );
        }
    }
    custom(&mut out, &entries);
    router(&mut out, &entries);
    let _ = writeln!(
        out,
        "# HELP hekate_draining 1 while hekate is shutting down."
    );
    let _ = writeln!(out, "# TYPE hekate_draining gauge");
    let _ = writeln!(out, "hekate_draining {}", u8::from(report.is_draining()));
    let _ = writeln!(out, "# HELP hekate_build_info Build information.");
    let _ = writeln!(out, "# TYPE hekate_build_info gauge");
    let _ = writeln!(
        out,
        "hekate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    super::process::render(&mut out);
    out
}

fn gauge_family(
    out: &mut String,
    name: &str,
    help: &str,
    entries: &[crate::stats::ReportEntry],
    read: impl Fn(&crate::stats::ReportEntry) -> Option<u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for e in entries {
        if let Some(v) = read(e) {
            let _ = writeln!(out, "{name}{{{}}} {v}", labels(e));
        }
    }
}

/// Plugin-specific counters (`hekate_plugin_counter_total{counter=".."}`) and gauges.
fn custom(out: &mut String, entries: &[crate::stats::ReportEntry]) {
    let all: Vec<_> = entries.iter().map(|e| (e, e.stats.custom())).collect();
    let _ = writeln!(
        out,
        "# HELP hekate_plugin_extra_total Plugin-specific counters, by name."
    );
    let _ = writeln!(out, "# TYPE hekate_plugin_extra_total counter");
    for (e, (counters, _)) in &all {
        for (k, v) in counters {
            let _ = writeln!(
                out,
                "hekate_plugin_extra_total{{{},name=\"{k}\"}} {v}",
                labels(e)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP hekate_plugin_extra_level Plugin-specific gauges, by name."
    );
    let _ = writeln!(out, "# TYPE hekate_plugin_extra_level gauge");
    for (e, (_, gauges)) in &all {
        for (k, v) in gauges {
            let _ = writeln!(
                out,
                "hekate_plugin_extra_level{{{},name=\"{k}\"}} {v}",
                labels(e)
            );
        }
    }
}

fn router(out: &mut String, entries: &[crate::stats::ReportEntry]) {
    let Some(r) = entries.iter().find(|e| e.kind == "Router") else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP hekate_router_messages_total Messages the router matched against subscribers."
    );
    let _ = writeln!(out, "# TYPE hekate_router_messages_total counter");
    let _ = writeln!(
        out,
        "hekate_router_messages_total {}",
        r.stats.processed.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP hekate_router_dropped_total Messages the router dropped (full queues, loops)."
    );
    let _ = writeln!(out, "# TYPE hekate_router_dropped_total counter");
    let _ = writeln!(
        out,
        "hekate_router_dropped_total {}",
        r.stats.dropped.load(Relaxed)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PluginStats;

    #[test]
    fn every_plugin_gets_labelled_counters() {
        let r = Report::default();
        let s = r.register("udp \"in\"", "Input", "UdpInput");
        PluginStats::add(&s.processed, 7);
        PluginStats::add(&s.counter("bad_lines_seen"), 2);
        let text = render(&r);
        assert!(text.contains(r#"hekate_plugin_processed_total{plugin="udp \"in\"",type="UdpInput",kind="Input"} 7"#), "{text}");
        assert!(text.contains(r#"name="bad_lines_seen"} 2"#));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("hekate_build_info{version="));
    }
}
