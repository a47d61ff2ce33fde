//! Error types of the library. Each one says what its receiver does next.
//!
//! * [`ConfigError`]: startup refuses to run; all of them are collected and printed at once.
//! * [`ProcessError`]: returned by filters, outputs and encoders; the runner drops, retries
//!   or stops the plugin accordingly.
//! * [`DecodeError`]: a record could not be decoded; the input runner counts it, logs it
//!   once (when `log_decode_failures`) and drops it or forwards it flagged
//!   (`send_decode_failures`).

use std::fmt;
use std::path::{Path, PathBuf};

/// The error type at plugin boundaries where the cause is opaque.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A configuration mistake, naming the file, the section and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The TOML file the section came from (empty when not tied to a file).
    pub file: PathBuf,
    /// The section (plugin instance name, or `hekad`).
    pub section: String,
    /// The offending key (empty when the whole section is at fault).
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// A new error about `key` of `[section]` in `file`.
    pub fn new(
        file: &Path,
        section: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            section: section.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.as_os_str().is_empty() {
            write!(f, "{}: ", self.file.display())?;
        }
        if !self.section.is_empty() {
            write!(f, "[{}]", self.section)?;
            if !self.key.is_empty() {
                write!(f, " {}", self.key)?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// The outcome of a failed `process_message`/`timer_event`/`encode` call, telling the
/// runner what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Skip this message: count it as a failure, log at most once per burst, go on.
    #[error("message dropped: {0}")]
    Drop(String),
    /// Back off and retry the same message (e.g. the remote end is down).
    #[error("retrying: {0}")]
    Retry(#[source] BoxError),
    /// Stop this plugin; the supervisor restarts it under its `[name.retries]` policy.
    #[error("fatal: {0}")]
    Fatal(#[source] BoxError),
}

impl ProcessError {
    /// A `Retry` caused by `e`: an error (kept whole, with its sources) or a message.
    pub fn retry(e: impl Into<BoxError>) -> Self {
        ProcessError::Retry(e.into())
    }

    /// A `Fatal` caused by `e`: an error (kept whole, with its sources) or a message.
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        ProcessError::Fatal(e.into())
    }
}

/// Displays an error with its whole chain of sources, `outer: inner: root`, for logs. A
/// source whose text the chain already shows (an error that prints its source itself, as
/// lapin's and io's wrappers do) is not repeated.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(s) = source {
            let part = s.to_string();
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            source = s.source();
        }
        f.write_str(&text)
    }
}

/// A record that a decoder could not turn into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    /// A decode error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError(reason.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Echoes(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect")]
    struct Wraps(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}; retried")]
    struct Inside(#[source] std::io::Error);

    #[test]
    fn chain_names_every_cause_once() {
        let io = || std::io::Error::other("connection reset");
        assert_eq!(
            Chain(&Wraps(io())).to_string(),
            "cannot connect: connection reset"
        );
        assert_eq!(
            Chain(&Echoes(io())).to_string(),
            "cannot connect: connection reset"
        );
        assert_eq!(
            Chain(&Inside(io())).to_string(),
            "connection reset; retried"
        );
    }

    #[test]
    fn chain_shows_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect to 127.0.0.1:5672")]
        struct Connect(#[source] std::io::Error);
        let e = ProcessError::retry(Connect(std::io::Error::other("connection refused")));
        let ProcessError::Retry(cause) = e else {
            panic!("retry")
        };
        assert!(
            cause.downcast_ref::<Connect>().is_some(),
            "the cause is kept whole"
        );
        assert_eq!(
            Chain(&*cause).to_string(),
            "cannot connect to 127.0.0.1:5672: connection refused"
        );
    }

    #[test]
    fn config_error_names_file_section_and_key() {
        let e = ConfigError::new(Path::new("c.d/10.toml"), "udp", "adress", "unknown key");
        assert_eq!(e.to_string(), "c.d/10.toml: [udp] adress: unknown key");
    }
}
