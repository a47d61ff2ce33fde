//! `FilePollingInput` (Heka's): every `ticker_interval` seconds, reads the whole file at
//! `file_path` and sends it through the input's splitter (default `NullSplitter`: the
//! file is one record) and decoder, stamped `Type = "heka.file.polling"` with
//! `Fields[TickerInterval]` and `Fields[FilePath]`, as Heka did. Made for `/proc` files
//! (`/proc/loadavg`, `/proc/meminfo`, `/proc/diskstats`) read by Heka's `linux_*`
//! decoders. A file that cannot be read is counted in `failures`, logged once per
//! burst, and tried again on the next tick.

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::Field;
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// Largest file read (a polled file is a status file, not a log).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Configuration of `FilePollingInput` (`ticker_interval` is the common key, default 5).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct FilePollingInputConfig {
    /// The file to read on every tick. Required.
    pub file_path: String,
}

/// The running input.
pub struct FilePollingInput {
    path: String,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "FilePollingInput",
    description: "Read a whole file every ticker_interval (e.g. /proc/loadavg) through the splitter and decoder.",
    build,
    defaults: Defaults {
        ticker_interval: Some(5),
        ..Defaults::HEKA
    },
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: FilePollingInputConfig = p.parse()?;
    if c.file_path.is_empty() {
        return Err(vec![p.error("file_path", "is required")]);
    }
    Ok(Box::new(FilePollingInput { path: c.file_path }))
}

impl Input for FilePollingInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let (secs, mut ticker) = cx.ticker(5, false)?;
            let mut shutdown = cx.shutdown();
            let mut log = LogLimiter::default();
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = ticker.tick() => {}
                }
                match read_capped(&self.path).await {
                    Ok(data) => {
                        if self.send(&cx, secs, &data).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        PluginStats::add(&cx.stats().failures, 1);
                        if let Some(suppressed) = log.check() {
                            tracing::warn!(path = %self.path, error = %e, suppressed, "Cannot read the polled file.");
                        }
                    }
                }
            }
        })
    }
}

impl FilePollingInput {
    /// One read of the file as a stream of its own.
    async fn send(
        &self,
        cx: &InputContext,
        secs: u64,
        data: &[u8],
    ) -> Result<(), crate::plugin::Closed> {
        let mut stream = cx.stream();
        stream.set_type("heka.file.polling");
        let base = stream.base_mut();
        base.add_field(Field::integer("TickerInterval", secs as i64));
        base.add_field(Field::string("FilePath", self.path.clone()));
        stream.feed(data).await?;
        stream.finish().await
    }
}

/// Reads the whole file, refusing one larger than [`MAX_FILE`].
async fn read_capped(path: &str) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let f = tokio::fs::File::open(path).await?;
    let mut data = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut data).await?;
    if data.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE} bytes"
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn file_path_is_required_and_keys_are_hekas() {
        let p = plugin_config("FilePollingInput", "");
        let err = build(&p, &build_context()).err().expect("error");
        assert!(err[0].to_string().contains("file_path"), "{}", err[0]);
        let p = plugin_config("FilePollingInput", "file_path = \"/proc/loadavg\"");
        assert!(build(&p, &build_context()).is_ok());
        let p = plugin_config("FilePollingInput", "file_path = \"/x\"\nfilepath = 1");
        assert!(
            build(&p, &build_context()).is_err(),
            "unknown keys are errors"
        );
    }
}
