//! The console's pages, script and style, compiled into the binary (`static_directory`
//! may replace them file by file). Plain HTML and one small script of hekate's own; no
//! CDN, no third-party code, no build step.

/// The built-in asset called `name` and its MIME type.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    const HTML: &str = "text/html; charset=utf-8";
    Some(match name {
        "pipeline.html" => (include_str!("assets/pipeline.html"), HTML),
        "outputs.html" => (include_str!("assets/outputs.html"), HTML),
        "alerts.html" => (include_str!("assets/alerts.html"), HTML),
        "graphs.html" => (include_str!("assets/graphs.html"), HTML),
        "services.html" => (include_str!("assets/services.html"), HTML),
        "hosts.html" => (include_str!("assets/hosts.html"), HTML),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        _ => return None,
    })
}
