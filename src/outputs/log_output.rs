//! `LogOutput`: writes each encoded message to stdout, one per line (Heka's LogOutput).
//! Default encoder: `PayloadEncoder`. Run by the output runner.

use std::io::Write;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};

/// Configuration of `LogOutput`: it has no keys of its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogOutputConfig {}

/// The running output.
pub struct LogOutput {
    out: std::io::BufWriter<std::io::Stdout>,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "LogOutput",
    description: "Write encoded messages to stdout, one per line.",
    build,
    defaults: Defaults::encoder("PayloadEncoder"),
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let _: LogOutputConfig = p.parse()?;
    Ok(Box::new(LogOutput {
        out: std::io::BufWriter::new(std::io::stdout()),
    }))
}

impl Output for LogOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let bytes = cx.encode(&pack.msg)?;
        self.out.write_all(bytes).map_err(ProcessError::retry)?;
        if !bytes.ends_with(b"\n") {
            self.out.write_all(b"\n").map_err(ProcessError::retry)?;
        }
        Ok(())
    }

    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.out.flush().map_err(ProcessError::retry)
    }
}
