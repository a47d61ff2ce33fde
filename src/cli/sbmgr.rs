//! `hekate sbmgr`: loads or unloads a filter through a SandboxManagerFilter, as Heka's
//! `heka-sbmgr` (the control messages are built by `hekate::sandbox::control`), signed
//! with `--signer FILE` (heka-sbmgr's `[signer]` table).

use std::process::ExitCode;

use super::SbmgrAction;

/// `hekate sbmgr`: builds and sends one control message.
pub(super) fn sbmgr(
    address: &str,
    signer: Option<&std::path::Path>,
    action: SbmgrAction,
) -> anyhow::Result<ExitCode> {
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
    let signer = signer.map(read_signer).transpose()?;
    sbmgr::send(address, &msg, signer.as_ref()).with_context(|| format!("sending to {address}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The `[signer]` table of a heka-sbmgr style TOML file (other keys are ignored).
fn read_signer(path: &std::path::Path) -> anyhow::Result<hekate::message::framing::SignerConfig> {
    use anyhow::Context;
    #[derive(serde::Deserialize)]
    struct File {
        signer: hekate::message::framing::SignerConfig,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: File = toml::from_str(&text).with_context(|| format!("{}: [signer]", path.display()))?;
    Ok(f.signer)
}
