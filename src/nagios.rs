//! Nagios plugin output: the status text and the performance data after `|`
//! (`'label'=value[UOM];[warn];[crit];[min];[max]`, space-separated; a label with spaces
//! is single-quoted, `''` is a quote), as the Nagios plugin guidelines define it. Used by
//! `ProcessInput` to turn a check's perfdata into message fields. And the other way:
//! [`PassiveCheck`], a check result `NagiosOutput` hands to Nagios (command file line,
//! `send_nsca` line).

/// One performance-data item.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    /// The label.
    pub label: String,
    /// The value.
    pub value: f64,
    /// Unit of measure (`s`, `ms`, `us`, `%`, `B`, `KB`, `MB`, `TB`, `c`), or empty.
    pub uom: String,
    /// Warning threshold as written (a range, e.g. `10`, `@5:10`, `~:3`).
    pub warn: String,
    /// Critical threshold as written.
    pub crit: String,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// Splits plugin output into its status text and perfdata: the text before the first
/// `|` of the first line, and the items after every `|` (first line and long output).
/// Items that do not parse are returned as errors, the rest still count.
pub fn parse(output: &str) -> (String, Vec<Result<Perf, String>>) {
    let mut lines = output.lines();
    let first = lines.next().unwrap_or("");
    let (text, perf) = first.split_once('|').unwrap_or((first, ""));
    let mut items = Vec::new();
    let mut all = perf.to_string();
    for l in lines {
        if let Some((_, p)) = l.split_once('|') {
            all.push(' ');
            all.push_str(p);
        }
    }
    for token in tokens(&all) {
        items.push(item(&token));
    }
    (text.trim().to_string(), items)
}

/// Space-separated items; a quoted label may hold spaces.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push_str("''");
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn item(token: &str) -> Result<Perf, String> {
    let (label, rest) = token
        .rsplit_once('=')
        .ok_or_else(|| format!("{token:?}: no '='"))?;
    let label = match label.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        Some(q) => q.replace("''", "'"),
        None => label.to_string(),
    };
    if label.is_empty() {
        return Err(format!("{token:?}: empty label"));
    }
    let mut parts = rest.split(';');
    let v = parts.next().unwrap_or("");
    let num_end = v
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(v.len());
    let value: f64 = v[..num_end]
        .parse()
        .map_err(|_| format!("{token:?}: bad value {v:?}"))?;
    let uom = v[num_end..].to_string();
    let text = |p: Option<&str>| p.unwrap_or("").trim().to_string();
    let (warn, crit) = (text(parts.next()), text(parts.next()));
    let num = |p: Option<&str>| -> Result<Option<f64>, String> {
        match p.map(str::trim).filter(|p| !p.is_empty()) {
            None => Ok(None),
            Some(p) => p
                .parse()
                .map(Some)
                .map_err(|_| format!("{token:?}: bad number {p:?}")),
        }
    };
    let (min, max) = (num(parts.next())?, num(parts.next())?);
    Ok(Perf {
        label,
        value,
        uom,
        warn,
        crit,
        min,
        max,
    })
}

/// A passive service check result, as Heka's `NagiosOutput` delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveCheck {
    /// The Nagios host name.
    pub host: String,
    /// The Nagios `service_description`.
    pub service: String,
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub state: u8,
    /// The plugin output.
    pub output: String,
}

/// Why a check result cannot be written as an external command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} cannot hold ';' or a line break in a Nagios external command")]
pub struct BadName {
    /// `host` or `service`.
    pub what: &'static str,
    /// The offending value.
    pub value: String,
}

impl PassiveCheck {
    /// Reads Heka's payload form `STATE:output`: `OK` 0, `WARNING` 1, `CRITICAL` 2, any
    /// other prefix 3 (UNKNOWN); without a colon the state is UNKNOWN and the whole
    /// payload is the output. Trailing line breaks (a line-split record's) are dropped.
    pub fn from_payload(payload: &str, host: &str, service: &str) -> PassiveCheck {
        let (state, output) = match payload.split_once(':') {
            Some(("OK", rest)) => (0, rest),
            Some(("WARNING", rest)) => (1, rest),
            Some(("CRITICAL", rest)) => (2, rest),
            Some((_, rest)) => (3, rest),
            None => (3, payload),
        };
        PassiveCheck {
            host: host.to_string(),
            service: service.to_string(),
            state,
            output: output.trim_end_matches(['\n', '\r']).to_string(),
        }
    }

    /// The output on one line: line breaks become the two characters `\n`, which Nagios
    /// turns back into long output.
    fn one_line_output(&self) -> String {
        self.output
            .replace("\r\n", "\\n")
            .replace(['\n', '\r'], "\\n")
    }

    fn check_names(&self) -> Result<(), BadName> {
        for (what, value) in [("host", &self.host), ("service", &self.service)] {
            if value.contains([';', '\n', '\r']) {
                return Err(BadName {
                    what,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }

    /// The external command for the Nagios command file:
    /// `[<unix time>] PROCESS_SERVICE_CHECK_RESULT;<host>;<service>;<state>;<output>\n`,
    /// at most `max` bytes (the output is cut at a character boundary to fit; the flag
    /// says so).
    pub fn command_line(&self, unix_secs: i64, max: usize) -> Result<(String, bool), BadName> {
        self.check_names()?;
        let head = format!(
            "[{unix_secs}] PROCESS_SERVICE_CHECK_RESULT;{};{};{};",
            self.host, self.service, self.state
        );
        let output = self.one_line_output();
        let room = max.saturating_sub(head.len() + 1);
        let mut cut = output.len().min(room);
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        Ok((format!("{head}{}\n", &output[..cut]), cut < output.len()))
    }

    /// The line `send_nsca` reads on stdin: `host\tservice\tstate\toutput\n`.
    pub fn nsca_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\n",
            self.host,
            self.service,
            self.state,
            self.one_line_output()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_disk_and_check_load_output() {
        let (text, items) =
            parse("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968");
        assert_eq!(text, "DISK OK - free space: / 3326 MB (56%);");
        let p = items[0].clone().expect("parsed");
        assert_eq!(
            (p.label.as_str(), p.value, p.uom.as_str()),
            ("/", 2643.0, "MB")
        );
        assert_eq!(
            (p.warn.as_str(), p.crit.as_str(), p.min, p.max),
            ("5948", "5958", Some(0.0), Some(5968.0))
        );
        let (_, items) = parse("OK - load average: 0.1, 0.2, 0.3|load1=0.100;15.000;30.000;0; load5=0.2;@5:10;~:3;0; 'free space'=45%");
        let got: Vec<Perf> = items.into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[1].warn.as_str(), got[1].crit.as_str()),
            ("@5:10", "~:3")
        );
        assert_eq!(
            (got[2].label.as_str(), got[2].uom.as_str()),
            ("free space", "%")
        );
    }

    #[test]
    fn long_output_and_bad_items() {
        let (text, items) = parse("OK: fine | a=1\nline two | b=2c\nline three");
        assert_eq!(text, "OK: fine");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().map(|p| p.uom.as_str()), Ok("c"));
        let (_, items) = parse("X | nolabel =x=; ok=1");
        assert!(items.iter().any(Result::is_err));
        assert!(items
            .iter()
            .any(|r| r.as_ref().is_ok_and(|p| p.label == "ok")));
        assert_eq!(parse("no perfdata").1.len(), 0);
        assert_eq!(parse("'it''s'=3").1.len(), 0, "perfdata only after |");
        let (_, q) = parse("x | 'it''s'=3");
        assert_eq!(q[0].as_ref().map(|p| p.label.as_str()), Ok("it's"));
    }

    #[test]
    fn payload_states_follow_heka() {
        let c = |p: &str| PassiveCheck::from_payload(p, "h", "s");
        assert_eq!(
            (c("OK:fine").state, c("OK:fine").output.as_str()),
            (0, "fine")
        );
        assert_eq!(c("WARNING:a:b").output, "a:b");
        assert_eq!(c("WARNING:x").state, 1);
        assert_eq!(c("CRITICAL:x").state, 2);
        assert_eq!((c("BAD:x").state, c("BAD:x").output.as_str()), (3, "x"));
        assert_eq!(
            (c("no colon").state, c("no colon").output.as_str()),
            (3, "no colon")
        );
        assert_eq!(c("OK:line\r\n").output, "line");
    }

    #[test]
    fn command_lines_are_one_line_bounded_and_refuse_bad_names() {
        let c = PassiveCheck::from_payload("CRITICAL:disk full\nsda1 99%", "web1", "disk");
        let (line, cut) = c.command_line(1700000000, 4096).expect("ok");
        assert_eq!(
            line,
            "[1700000000] PROCESS_SERVICE_CHECK_RESULT;web1;disk;2;disk full\\nsda1 99%\n"
        );
        assert!(!cut);
        let long = PassiveCheck {
            output: "é".repeat(3000),
            ..c.clone()
        };
        let (line, cut) = long.command_line(1, 4096).expect("ok");
        assert!(cut && line.len() <= 4096 && line.ends_with("é\n"));
        let bad = PassiveCheck {
            host: "a;b".into(),
            ..c.clone()
        };
        assert!(bad.command_line(1, 4096).is_err());
        assert_eq!(c.nsca_line(), "web1\tdisk\t2\tdisk full\\nsda1 99%\n");
    }
}
