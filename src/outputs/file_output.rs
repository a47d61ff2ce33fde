//! `FileOutput`: appends encoded messages to a file (Heka's FileOutput). Default encoder
//! `PayloadEncoder`; with `ProtobufEncoder`, records are Heka-framed. Run by the output
//! runner, which calls `flush` whenever its queue runs empty, so data reaches the OS
//! within one idle moment (and at least every `flush_interval`). SIGHUP reopens the file,
//! for logrotate.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};

/// `flush_operator`: how `flush_count` and `flush_interval` combine.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlushOperator {
    /// Flush when both limits are reached.
    #[default]
    And,
    /// Flush when either limit is reached.
    Or,
}

/// Configuration of `FileOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FileOutputConfig {
    /// File to append to (required). Relative paths are relative to the working directory.
    pub path: String,
    /// File permissions, octal string. Default "644".
    pub perm: String,
    /// Permissions of folders created for the file, octal string. Default "700".
    pub folder_perm: String,
    /// Most milliseconds data may wait in memory before being written. Default 1000.
    pub flush_interval: u64,
    /// Messages that may wait in memory before being written. Default 1.
    pub flush_count: u64,
    /// How `flush_interval` and `flush_count` combine: "AND" or "OR". Default "AND".
    pub flush_operator: FlushOperator,
    /// Hours between file rotations; only 0 (no rotation) is supported.
    pub rotation_interval: u32,
}

impl Default for FileOutputConfig {
    fn default() -> Self {
        FileOutputConfig {
            path: String::new(),
            perm: "644".into(),
            folder_perm: "700".into(),
            flush_interval: 1000,
            flush_count: 1,
            flush_operator: FlushOperator::And,
            rotation_interval: 0,
        }
    }
}

/// Messages between clock reads in [`FileOutput::due`].
const CLOCK_EVERY: u64 = 64;
/// Bytes buffered before a write, however the flush settings read.
const WRITE_BUFFER: usize = 64 * 1024;

/// The running output.
pub struct FileOutput {
    path: PathBuf,
    perm: u32,
    folder_perm: u32,
    /// Opened on first write, so `hekate check` has no side effects.
    file: Option<File>,
    /// Encoded messages not yet written; messages are encoded straight into it.
    buf: Vec<u8>,
    flush_interval: Duration,
    flush_count: u64,
    flush_and: bool,
    pending: u64,
    last_flush: Instant,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "FileOutput",
    description: "Append encoded messages to a file; reopens it on SIGHUP.",
    build,
    defaults: Defaults::encoder("PayloadEncoder"),
    references: &[],
};

fn octal(p: &PluginConfig, key: &str, v: &str) -> Result<u32, ConfigError> {
    u32::from_str_radix(v, 8).map_err(|_| p.error(key, format!("not an octal permission: {v:?}")))
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let (c, mut errs) = p.parse_all::<FileOutputConfig>();
    let Some(c) = c else {
        return Err(errs);
    };
    if c.path.is_empty() {
        errs.push(p.error("path", "required"));
    }
    if c.rotation_interval != 0 {
        errs.push(p.error(
            "rotation_interval",
            "rotation is not supported yet; use 0 and logrotate with SIGHUP",
        ));
    }
    let flush_and = c.flush_operator == FlushOperator::And;
    let perm = octal(p, "perm", &c.perm)
        .map_err(|e| errs.push(e))
        .unwrap_or(0o644);
    let folder_perm = octal(p, "folder_perm", &c.folder_perm)
        .map_err(|e| errs.push(e))
        .unwrap_or(0o700);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Box::new(FileOutput {
        path: PathBuf::from(&c.path),
        perm,
        folder_perm,
        file: None,
        buf: Vec::new(),
        flush_interval: Duration::from_millis(c.flush_interval),
        flush_count: c.flush_count.max(1),
        flush_and,
        pending: 0,
        last_flush: Instant::now(),
    }))
}

fn open(path: &std::path::Path, perm: u32, folder_perm: u32) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(folder_perm)
            .create(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(perm)
        .open(path)
}

impl FileOutput {
    /// Heka's flush rule. The clock is read at most once per `CLOCK_EVERY` messages:
    /// under load the 64 KiB buffer and the runner's idle flush bound latency anyway.
    fn due(&self) -> bool {
        let by_count = self.pending >= self.flush_count;
        let by_time = || {
            self.pending.is_multiple_of(CLOCK_EVERY)
                && self.last_flush.elapsed() >= self.flush_interval
        };
        if self.flush_and {
            by_count && by_time()
        } else {
            by_count || by_time()
        }
    }

    fn writer(&mut self) -> Result<&mut File, ProcessError> {
        if self.file.is_none() {
            let f = open(&self.path, self.perm, self.folder_perm).map_err(|e| {
                ProcessError::retry(format!("cannot open {}: {e}", self.path.display()))
            })?;
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| ProcessError::retry("file not open"))
    }

    /// Writes the buffer to the file. On error the buffer is kept for the next try.
    fn write_out(&mut self) -> Result<(), ProcessError> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let written = self
                .writer()
                .and_then(|f| f.write_all(&buf).map_err(ProcessError::retry));
            self.buf = buf;
            written?;
            self.buf.clear();
        }
        self.pending = 0;
        self.last_flush = Instant::now();
        Ok(())
    }
}

impl Output for FileOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        // Write out what earlier messages left before taking this one, so an error (and the
        // runner's retry of this message) never writes a message twice.
        if self.buf.len() >= WRITE_BUFFER || (self.pending > 0 && self.due()) {
            self.write_out()?;
        }
        if self.file.is_none() {
            self.writer()?;
        }
        cx.encode_into(&pack.msg, &mut self.buf)?;
        self.pending += 1;
        Ok(())
    }

    /// Called when the queue is idle, on ticks and at shutdown: nothing waits longer.
    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.write_out()
    }

    fn reopen(&mut self) -> Result<(), ProcessError> {
        self.write_out()?;
        self.file = None;
        self.writer().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::PayloadOnly;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_errors_are_all_reported() {
        let cx = build_context();
        let errs = build(
            &plugin_config(
                "FileOutput",
                "perm = '9z'\nflush_operator = 'XOR'\nrotation_interval = 4",
            ),
            &cx,
        )
        .err()
        .expect("errors");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["flush_operator", "path", "rotation_interval", "perm"]
        );
    }

    fn pack(payload: &str) -> Pack {
        Pack::new(crate::message::Message {
            payload: payload.into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_failed_write_keeps_the_buffer_and_never_writes_a_message_twice() {
        let d = tempfile::tempdir().expect("tempdir");
        let good = d.path().join("out.log");
        let mut out = FileOutput {
            path: "/dev/full".into(), // every write fails with ENOSPC
            perm: 0o644,
            folder_perm: 0o700,
            file: None,
            buf: Vec::new(),
            flush_interval: Duration::from_secs(3600),
            flush_count: 1,
            flush_and: true,
            pending: 0,
            last_flush: Instant::now(),
        };
        let (globals, stats) = (Default::default(), Default::default());
        let (mut b1, mut b2) = (Vec::new(), Vec::new());
        let mut enc = PayloadOnly { newline: true };
        let mut cx = OutputContext::new(
            "f",
            &globals,
            &stats,
            Some(&mut enc),
            false,
            &mut b1,
            &mut b2,
        );
        let mut n = 0;
        while out.buf.len() < WRITE_BUFFER {
            out.process_message(&pack(&format!("m{n}")), &mut cx)
                .expect("buffered");
            n += 1;
        }
        // The buffer is full: the next message first needs a write, which fails. Nothing
        // of it is taken, so the runner's retry of the same message cannot duplicate it.
        let held = out.buf.len();
        let r = out.process_message(&pack("next"), &mut cx);
        assert!(matches!(r, Err(ProcessError::Retry(_))), "{r:?}");
        assert!(matches!(out.flush(&mut cx), Err(ProcessError::Retry(_))));
        assert_eq!(out.buf.len(), held, "the unwritten buffer is kept");
        // The disk is back (here: the file is reopened elsewhere) and the runner retries.
        out.path = good.clone();
        out.file = None;
        out.process_message(&pack("next"), &mut cx).expect("taken");
        out.flush(&mut cx).expect("written");
        let text = std::fs::read_to_string(&good).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n + 1);
        assert_eq!((lines[0], lines[n]), ("m0", "next"));
        assert_eq!(lines.iter().filter(|l| **l == "next").count(), 1);
    }

    #[test]
    fn creates_folders_and_reopens() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("sub/out.log");
        let cx = build_context();
        let mut out = build(
            &plugin_config("FileOutput", &format!("path = '{}'", path.display())),
            &cx,
        )
        .expect("build");
        out.reopen().expect("reopen");
        assert!(path.exists());
    }
}
