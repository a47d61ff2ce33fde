//! `ProcessInput` (Heka's): runs a command — or a chain of commands — every
//! `ticker_interval` seconds (default 15), with Heka's keys; a thin adapter over the
//! [`crate::process_job`] kit, which describes the messages it makes.

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::process_job::ProcessJob;

/// The running input.
pub struct ProcessInput {
    job: ProcessJob,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "ProcessInput",
    description:
        "Run a command (chain) every ticker_interval; its output and exit status become messages.",
    build,
    defaults: Defaults {
        ticker_interval: Some(15),
        ..Defaults::HEKA
    },
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let job = ProcessJob::from_config(p, &p.name)?;
    Ok(Box::new(ProcessInput { job }))
}

impl Input for ProcessInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let (_, ticker) = cx.ticker(15, self.job.immediate_start())?;
            self.job.run(&cx, Some(ticker)).await
        })
    }
}
