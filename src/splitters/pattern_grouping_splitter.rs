//! `PatternGroupingSplitter` (Heka 0.11): cuts the stream into lines at each match of
//! `delimiter`, like `RegexSplitter`, then joins contiguous lines that match `grouping`
//! into one record: a Java stack trace becomes one record while the log lines around it
//! stay one record each. The delimiter always stays at the end of each line, and of the
//! record.
//!
//! A group ends at the first line that does not match `grouping`, after `max_lines`
//! lines (default 99), or where the data read so far ends: like Heka, the splitter does
//! not wait for a line that has not been written yet, so a trace written in several
//! pieces with pauses between them may come out as several records. Heka's default
//! instance (`delimiter = "\n"`, `grouping = ""`, which every line matches) is available
//! under the type's own name.

use std::sync::Arc;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::{BuildContext, Defaults, Registration, Split, SplitterFactory};

/// Registration of `PatternGroupingSplitter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildSplitter> = Registration {
    name: "PatternGroupingSplitter",
    description:
        "Splits at a delimiter regex, then joins contiguous lines matching a grouping regex.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `PatternGroupingSplitter` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct PatternGroupingSplitterConfig {
    /// The line delimiter regex. Default `"\n"`.
    pub delimiter: String,
    /// Lines matching this regex (tested one by one, without their delimiter) are joined
    /// with the matching lines next to them. Default `""` (every line matches).
    pub grouping: String,
    /// Most lines in one record. Default 99.
    pub max_lines: usize,
}

impl Default for PatternGroupingSplitterConfig {
    fn default() -> Self {
        PatternGroupingSplitterConfig {
            delimiter: "\n".into(),
            grouping: String::new(),
            max_lines: 99,
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>> {
    let c: PatternGroupingSplitterConfig = cfg.parse()?;
    let mut errors = Vec::new();
    let delimiter = Regex::new(&c.delimiter)
        .map_err(|e| errors.push(cfg.error("delimiter", e.to_string())))
        .ok();
    let grouping = Regex::new(&c.grouping)
        .map_err(|e| errors.push(cfg.error("grouping", e.to_string())))
        .ok();
    if c.max_lines == 0 {
        errors.push(cfg.error("max_lines", "must be at least 1"));
    }
    let (Some(delimiter), Some(grouping), true) = (delimiter, grouping, errors.is_empty()) else {
        return Err(errors);
    };
    let max_lines = c.max_lines;
    Ok(Arc::new(move || {
        Box::new(PatternGroupingSplitter {
            delimiter: delimiter.clone(),
            grouping: grouping.clone(),
            max_lines,
        })
    }))
}

/// Splits into lines and regroups them.
#[derive(Debug)]
pub struct PatternGroupingSplitter {
    delimiter: Regex,
    grouping: Regex,
    max_lines: usize,
}

impl PatternGroupingSplitter {
    /// The next complete line at or after `at`: (end of its text, end of its delimiter).
    fn next_line(&self, buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let mut from = at;
        loop {
            let m = self.delimiter.find_at(buf, from)?;
            if m.end() > m.start() {
                return Some((m.start(), m.end()));
            }
            from = m.end() + 1;
            if from > buf.len() {
                return None;
            }
        }
    }
}

impl crate::plugin::Splitter for PatternGroupingSplitter {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        let Some((text_end, mut end)) = self.next_line(buf, 0) else {
            return Split::NeedMore;
        };
        if self.grouping.is_match(&buf[..text_end]) {
            let mut lines = 1;
            while lines < self.max_lines {
                match self.next_line(buf, end) {
                    Some((t, e)) if self.grouping.is_match(&buf[end..t]) => {
                        end = e;
                        lines += 1;
                    }
                    _ => break,
                }
            }
        }
        Split::Record {
            consumed: end,
            start: 0,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config, split_all};

    /// Heka's documented stack-trace grouping.
    const STACKTRACE: &str = r"grouping = '(\] FATAL )|(\A\s*.+Exception: .)|(at \S+\(\S+\))|(\A\s+... \d+ more)|(\A\s*Caused by:.)|(\A\s*Grave:)'";

    fn records(cfg: &str, data: &str) -> Vec<String> {
        let f = build(
            &plugin_config("PatternGroupingSplitter", cfg),
            &build_context(),
        )
        .expect("valid");
        split_all(f().as_mut(), data.as_bytes())
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    #[test]
    fn a_stack_trace_is_one_record_between_single_lines() {
        let log = "[10:00] INFO start\n\
                   [10:01] FATAL boom\n\
                   java.lang.IllegalStateException: bad\n\
                   \tat com.example.Foo.run(Foo.java:10)\n\
                   \tat com.example.Main.main(Main.java:3)\n\
                   Caused by: java.io.IOException: disk\n\
                   \t... 2 more\n\
                   [10:02] INFO next\n";
        let got = records(STACKTRACE, log);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "[10:00] INFO start\n");
        assert!(got[1].starts_with("[10:01] FATAL boom\n") && got[1].ends_with("\t... 2 more\n"));
        assert_eq!(got[1].lines().count(), 6);
        assert_eq!(got[2], "[10:02] INFO next\n");
    }

    #[test]
    fn max_lines_caps_a_group_and_the_default_groups_everything() {
        let got = records(
            &format!("{STACKTRACE}\nmax_lines = 2"),
            "a] FATAL 1\nat x(y)\nat x(y)\n",
        );
        assert_eq!(got, ["a] FATAL 1\nat x(y)\n", "at x(y)\n"]);
        let got = records("", "one\ntwo\nthree\n");
        assert_eq!(got, ["one\ntwo\nthree\n"]);
    }

    #[test]
    fn bad_regexes_and_zero_max_lines_are_named() {
        let e = build(
            &plugin_config("PatternGroupingSplitter", "grouping = '('\nmax_lines = 0"),
            &build_context(),
        )
        .err()
        .expect("rejected");
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|t| t.contains("grouping")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("max_lines")), "{text:?}");
    }
}
