//! Running a command chain on a schedule: what `ProcessInput` does, and each process of
//! `ProcessDirectoryInput`. A [`ProcessJob`] runs its commands — each one's stdout fed
//! to the next one's stdin — every tick, with a timeout, on its own task, so a slow
//! command never blocks the pipeline. The last command's stdout and stderr become
//! messages (`Type = "ProcessInput"`, `Fields[ProcessInputName] = "<name>.stdout"` /
//! `".stderr"`, `Fields[ExitStatus]`), and the exit code is also mapped to a Nagios
//! state (`Fields[nagios_state]`: OK, WARNING, CRITICAL, UNKNOWN) with a matching
//! Severity, so check scripts plug straight into alerting.
//!
//! A kit. May import: `plugin` (the input context it delivers through), `nagios` and
//! the foundation; never `pipeline` or a plugin folder.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::config::common::de_duration;
use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::{Field, Message};
use crate::plugin::InputContext;
use crate::stats::PluginStats;

/// One command of the chain: `[name.command.N]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program to run (absolute path, or looked up in `PATH`).
    pub bin: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory. Default: hekate's.
    #[serde(default)]
    pub directory: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Configuration of `ProcessInput`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ProcessInputConfig {
    /// The chain, keyed `0`, `1`, ... and run in that order.
    pub command: BTreeMap<String, CommandConfig>,
    /// Kill the chain after this long ("0" = no limit). Default "0".
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Run once at start instead of waiting for the first tick. Default false.
    pub immediate_start: bool,
    /// Emit a message for stdout. Default true.
    #[serde(default = "yes")]
    pub stdout: bool,
    /// Emit a message for stderr. Default true.
    #[serde(default = "yes")]
    pub stderr: bool,
    /// Trim trailing whitespace from the output. Default true.
    #[serde(default = "yes")]
    pub trim: bool,
    /// hekate: read stdout as Nagios plugin output: the status text goes in
    /// `Fields[nagios_output]` and each performance-data item after `|` becomes a field
    /// named by its label (a double, its unit as the representation), with
    /// `<label>.warn`, `<label>.crit` (as written) and `<label>.min`, `<label>.max` when
    /// given. Items that do not parse are counted in `bad_perfdata` and skipped.
    /// Default false.
    pub perfdata: bool,
}

fn yes() -> bool {
    true
}

/// What one run of the chain produced.
struct RunResult {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    timed_out: bool,
}

/// A compiled `ProcessInput` section: the command chain and how its output is read.
#[derive(Debug, Clone)]
pub struct ProcessJob {
    chain: Vec<CommandConfig>,
    config: ProcessInputConfig,
    /// `ProcessInputName` prefix; also the Logger when it is not the input's name.
    name: String,
}

impl ProcessJob {
    /// Parses and checks a `ProcessInput` section; `name` names its messages.
    pub fn from_config(p: &PluginConfig, name: &str) -> Result<ProcessJob, Vec<ConfigError>> {
        let c: ProcessInputConfig = p.parse()?;
        let mut keyed = Vec::new();
        for (k, cmd) in &c.command {
            let n: u32 = k.parse().map_err(|_| {
                vec![p.error(&format!("command.{k}"), "commands are keyed 0, 1, 2, ...")]
            })?;
            keyed.push((n, cmd.clone()));
        }
        keyed.sort_by_key(|(n, _)| *n);
        if keyed.is_empty() {
            return Err(vec![p.error(
                "command",
                "at least one [name.command.0] table with `bin` is required",
            )]);
        }
        Ok(ProcessJob {
            chain: keyed.into_iter().map(|(_, c)| c).collect(),
            config: c,
            name: name.to_string(),
        })
    }

    /// `immediate_start`: run at once instead of after the first period.
    pub fn immediate_start(&self) -> bool {
        self.config.immediate_start
    }

    /// Runs the chain at every tick of `ticker` (once, at once, without one) until
    /// shutdown, delivering through `cx`.
    pub async fn run(
        &self,
        cx: &InputContext,
        mut ticker: Option<tokio::time::Interval>,
    ) -> Result<(), BoxError> {
        let mut shutdown = cx.shutdown();
        let timeouts = cx.stats().counter("timeouts");
        let mut first = true;
        loop {
            match ticker.as_mut() {
                Some(t) => tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = t.tick() => {}
                },
                None if first => {}
                None => {
                    shutdown.wait().await;
                    return Ok(());
                }
            }
            first = false;
            let result = tokio::select! {
                r = self.run_chain() => r,
                _ = shutdown.wait() => return Ok(()),
            };
            match result {
                Ok(r) => {
                    if r.timed_out {
                        PluginStats::add(&timeouts, 1);
                    }
                    let sent = if cx.has_record_path() {
                        self.feed_records(cx, r).await
                    } else {
                        cx.deliver_batch(self.messages(cx, r)).await
                    };
                    if sent.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    PluginStats::add(&cx.stats().failures, 1);
                    tracing::warn!(process = %self.name, error = %e, "Command could not run.");
                }
            }
        }
    }
    /// Runs the chain once, stdout of each command feeding the next one's stdin.
    async fn run_chain(&self) -> std::io::Result<RunResult> {
        let mut input: Option<Vec<u8>> = None;
        let mut last = None;
        for cmd in &self.chain {
            let r = self.run_one(cmd, input.take()).await?;
            if r.timed_out || r.exit != Some(0) {
                return Ok(r);
            }
            input = Some(r.stdout.clone());
            last = Some(r);
        }
        last.ok_or_else(|| std::io::Error::other("empty command chain"))
    }

    async fn run_one(
        &self,
        cmd: &CommandConfig,
        stdin: Option<Vec<u8>>,
    ) -> std::io::Result<RunResult> {
        let mut c = Command::new(&cmd.bin);
        c.args(&cmd.args).envs(&cmd.environment).kill_on_drop(true);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(dir) = &cmd.directory {
            c.current_dir(dir);
        }
        let mut child = c.spawn()?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that does not read its stdin closes the pipe; that is not an error.
            let _ = pipe.write_all(&data).await;
        }
        let wait = child.wait_with_output();
        let out = if self.config.timeout.is_zero() {
            wait.await?
        } else {
            match tokio::time::timeout(self.config.timeout, wait).await {
                Ok(out) => out?,
                Err(_) => {
                    // Dropping the future dropped the child, which kill_on_drop kills.
                    return Ok(RunResult {
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        exit: None,
                        timed_out: true,
                    });
                }
            }
        };
        Ok(RunResult {
            stdout: out.stdout,
            stderr: out.stderr,
            exit: out.status.code(),
            timed_out: false,
        })
    }

    fn messages(&self, cx: &InputContext, r: RunResult) -> Vec<Message> {
        let status = if r.timed_out {
            -1
        } else {
            r.exit.unwrap_or(-1)
        };
        let mut out = Vec::new();
        let streams = [
            ("stdout", self.config.stdout, &r.stdout),
            ("stderr", self.config.stderr, &r.stderr),
        ];
        for (which, wanted, bytes) in streams {
            if !wanted || (bytes.is_empty() && which == "stderr") {
                continue;
            }
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            if self.config.trim {
                text.truncate(text.trim_end().len());
            }
            let mut m = self.message(cx.name(), which, text, status, r.timed_out);
            if self.config.perfdata && which == "stdout" {
                let bad = add_perfdata(&mut m);
                PluginStats::add(&cx.stats().counter("bad_perfdata"), bad);
            }
            out.push(m);
        }
        out
    }

    /// With a `splitter` or `decoder` (Heka's ProcessInput keys): each stream's output
    /// goes through them, every record stamped with the run's `ProcessInputName`,
    /// `ExitStatus`, `nagios_state` and Severity.
    async fn feed_records(
        &self,
        cx: &InputContext,
        r: RunResult,
    ) -> Result<(), crate::plugin::Closed> {
        let status = if r.timed_out {
            -1
        } else {
            r.exit.unwrap_or(-1)
        };
        let (state, severity) = nagios_state(status, r.timed_out);
        let streams = [
            ("stdout", self.config.stdout, &r.stdout),
            ("stderr", self.config.stderr, &r.stderr),
        ];
        for (which, wanted, bytes) in streams {
            if !wanted || bytes.is_empty() {
                continue;
            }
            let mut st = cx.stream();
            st.set_type("ProcessInput");
            if self.name != cx.name() {
                st.set_logger(self.name.as_str());
            }
            let base = st.base_mut();
            base.severity = severity;
            base.add_field(Field::string(
                "ProcessInputName",
                format!("{}.{which}", self.name),
            ));
            base.add_field(Field::integer("ExitStatus", i64::from(status)));
            base.add_field(Field::string("nagios_state", state));
            st.feed_datagram(bytes).await?;
        }
        Ok(())
    }

    fn message(
        &self,
        input: &str,
        which: &str,
        payload: String,
        status: i32,
        timed_out: bool,
    ) -> Message {
        let (state, severity) = nagios_state(status, timed_out);
        let mut m = Message {
            msg_type: "ProcessInput".into(),
            payload,
            severity,
            ..Message::default()
        };
        if self.name != input {
            m.logger = self.name.as_str().into();
        }
        let name = &self.name;
        m.add_field(Field::string("ProcessInputName", format!("{name}.{which}")));
        m.add_field(Field::integer("ExitStatus", i64::from(status)));
        m.add_field(Field::string("nagios_state", state));
        if timed_out {
            m.add_field(Field::boolean("timed_out", true));
        }
        m
    }
}

/// Adds the Nagios status text and perfdata of `m`'s Payload as fields; returns how
/// many items did not parse.
fn add_perfdata(m: &mut Message) -> u64 {
    let (text, items) = crate::nagios::parse(&m.payload);
    m.add_field(Field::string("nagios_output", text));
    let mut bad = 0;
    for item in items {
        let Ok(p) = item else {
            bad += 1;
            continue;
        };
        let mut value = Field::double(p.label.as_str(), p.value);
        if !p.uom.is_empty() {
            value = value.with_representation(p.uom.as_str());
        }
        m.add_field(value);
        for (suffix, v) in [("warn", &p.warn), ("crit", &p.crit)] {
            if !v.is_empty() {
                m.add_field(Field::string(format!("{}.{suffix}", p.label), v.as_str()));
            }
        }
        for (suffix, v) in [("min", p.min), ("max", p.max)] {
            if let Some(v) = v {
                m.add_field(Field::double(format!("{}.{suffix}", p.label), v));
            }
        }
    }
    bad
}

/// Nagios plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, anything else (or a timeout)
/// UNKNOWN; with the syslog severity hekate stamps for each.
pub fn nagios_state(status: i32, timed_out: bool) -> (&'static str, i32) {
    match (timed_out, status) {
        (false, 0) => ("OK", 6),
        (false, 1) => ("WARNING", 4),
        (false, 2) => ("CRITICAL", 2),
        _ => ("UNKNOWN", 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::plugin_config;

    #[test]
    fn config_needs_a_numbered_command() {
        let build = |p: &PluginConfig, _: &()| ProcessJob::from_config(p, "p");
        let cx = ();
        let ok = "timeout = '2s'\n[command.0]\nbin = '/bin/echo'\nargs = ['hi']";
        assert!(build(&plugin_config("ProcessInput", ok), &cx).is_ok());
        let e = build(&plugin_config("ProcessInput", ""), &cx).expect_err("no command");
        assert_eq!(e[0].key, "command");
        let e = build(
            &plugin_config("ProcessInput", "[command.first]\nbin = 'x'"),
            &cx,
        )
        .expect_err("bad key");
        assert_eq!(e[0].key, "command.first");
        let e = build(
            &plugin_config("ProcessInput", "[command.0]\nbin = 'x'\nargz = []"),
            &cx,
        )
        .expect_err("unknown");
        assert!(e[0].key.contains("argz"), "{e:?}");
    }

    #[test]
    fn nagios_codes_map_to_states() {
        assert_eq!(nagios_state(0, false), ("OK", 6));
        assert_eq!(nagios_state(1, false), ("WARNING", 4));
        assert_eq!(nagios_state(2, false), ("CRITICAL", 2));
        assert_eq!(nagios_state(3, false), ("UNKNOWN", 3));
        assert_eq!(nagios_state(0, true), ("UNKNOWN", 3));
    }
}
