//! `TemplateEncoder` (hekate): renders each message through a `%{Name}` template from
//! the [`crate::interpolate`] kit, with values escaped for JSON, a form body or nothing.
//! It is how HttpOutput meets a service's documented request body without a Lua
//! script: a Slack or Mattermost incoming webhook (`{"text":"%{Payload}"}`), a Matrix
//! `m.room.message`, a Pushover form. A reference the message lacks renders as nothing,
//! so one template serves alerts with and without a given field.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::interpolate::{Escape, Template};
use crate::message::Message;
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};

/// Registration of `TemplateEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "TemplateEncoder",
    description: "Renders a %{Name} template per message (JSON, form or plain escaping).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `TemplateEncoder` keys.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateEncoderConfig {
    /// The template: `%{Type}`, `%{Hostname}`, `%{Payload}`, ... name headers, any other
    /// `%{name}` (or `%{Fields[name]}`) a field, `%{%Y-%m-%d}` formats the Timestamp.
    /// Required.
    pub template: String,
    /// How interpolated values are escaped: `"none"`, `"json"` (inside a JSON string),
    /// `"form"` (an `application/x-www-form-urlencoded` value) or `"path"`. Default `"none"`.
    pub escape: Escape,
    /// Append a newline after each rendering. Default false.
    pub append_newlines: bool,
}

impl Default for TemplateEncoderConfig {
    fn default() -> Self {
        TemplateEncoderConfig {
            template: String::new(),
            escape: Escape::None,
            append_newlines: false,
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let c: TemplateEncoderConfig = cfg.parse()?;
    if c.template.is_empty() {
        return Err(vec![cfg.error("template", "required")]);
    }
    let template =
        Arc::new(Template::compile(&c.template).map_err(|e| vec![cfg.error("template", e)])?);
    let (escape, newline) = (c.escape, c.append_newlines);
    Ok(Arc::new(move || {
        Box::new(TemplateEncoder {
            template: template.clone(),
            escape,
            newline,
            buf: String::new(),
        })
    }))
}

/// Renders templates.
pub struct TemplateEncoder {
    template: Arc<Template>,
    escape: Escape,
    newline: bool,
    buf: String,
}

impl Encoder for TemplateEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        self.buf.clear();
        self.template.render(msg, self.escape, &mut self.buf);
        out.extend_from_slice(self.buf.as_bytes());
        if self.newline {
            out.push(b'\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;
    use crate::plugin::testing::{build_context, plugin_config};

    fn encode(toml: &str, m: &Message) -> Result<String, Vec<ConfigError>> {
        let cfg = plugin_config("TemplateEncoder", toml);
        let factory = build(&cfg, &build_context())?;
        let mut out = Vec::new();
        factory().encode(m, &mut out).expect("encodes");
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn slack_body_and_form_body() {
        let mut m = Message::new();
        m.payload = "db-1 is \"DOWN\"".into();
        m.add_field(Field::string("subject", "db-1 down"));
        let slack = encode(
            "escape = \"json\"\ntemplate = '{\"text\":\"%{Payload}\"}'\n",
            &m,
        )
        .expect("builds");
        let v: serde_json::Value = serde_json::from_str(&slack).expect("valid JSON");
        assert_eq!(v["text"], "db-1 is \"DOWN\"");
        let form = encode(
            "escape = \"form\"\nappend_newlines = true\ntemplate = 'token=T&title=%{subject}'\n",
            &m,
        )
        .expect("builds");
        assert_eq!(form, "token=T&title=db-1+down\n");
    }

    #[test]
    fn bad_keys_are_config_errors() {
        let m = Message::new();
        let errs = encode("", &m).expect_err("no template");
        assert!(errs[0].to_string().contains("template"), "{}", errs[0]);
        let errs = encode("template = '%{x'\n", &m).expect_err("unclosed");
        assert!(errs[0].to_string().contains("unclosed"), "{}", errs[0]);
        let errs = encode("template = 'x'\nescape = \"xml\"\n", &m).expect_err("bad escape");
        assert!(errs[0].to_string().contains("escape"), "{}", errs[0]);
    }
}
