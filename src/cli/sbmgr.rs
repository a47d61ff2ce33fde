//! `hekate sbmgr`: loads or unloads a filter through a SandboxManagerFilter, as Heka's
//! `heka-sbmgr` (the control messages are built by `hekate::sandbox::control`).

use std::process::ExitCode;

use super::SbmgrAction;

/// `hekate sbmgr`: builds and sends one control message.
pub(super) fn sbmgr(address: &str, action: SbmgrAction) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use hekate::sandbox::control as sbmgr;
    let msg = match action {
        SbmgrAction::Load { script, config } => {
            let code = std::fs::read_to_string(&script)
                .with_context(|| format!("reading {}", script.display()))?;
            let conf = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            sbmgr::load_message(&conf, &code)
        }
        SbmgrAction::Unload { name } => sbmgr::unload_message(&name),
    };
    sbmgr::send(address, &msg).with_context(|| format!("sending to {address}"))?;
    Ok(ExitCode::SUCCESS)
}
