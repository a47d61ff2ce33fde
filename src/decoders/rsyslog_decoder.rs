//! `RsyslogDecoder`: decodes lines that rsyslog wrote with a known template (a file
//! written by `omfile`, or what `omfwd` forwards), Heka's `rsyslog.lua` decoder as a
//! native plugin. The registry builds it; each input stream gets its own instance and
//! calls `decode` once per record. The template is compiled at build time by
//! `rsyslog_template.rs`.
//!
//! Mapping (Heka's, aligned with `SyslogDecoder`): `TIMESTAMP`/`timereported` →
//! Timestamp (`timegenerated` too when the template has neither, else
//! `Fields[timegenerated]` in ns); `HOSTNAME`/`source` → Hostname (unless
//! `hostname_keep`); `syslogtag` → `Fields[programname]` and Pid; `programname` and
//! `APP-NAME` → `Fields[programname]`; `PRI`/`pri-text` → Severity plus
//! `Fields[syslogfacility]` and `Fields[facility]`; without a PRI, `syslogseverity(-text)`
//! or `syslogpriority(-text)` → Severity and `syslogfacility(-text)` → the facility fields;
//! `PROCID` → Pid when numeric, else `Fields[procid]`; `MSGID` → `Fields[msgid]`;
//! `STRUCTURED-DATA` → `Fields["sd.<SD-ID>.<PARAM>"]`; `msg` → Payload; any other
//! property → a field named after it. A `-` (nil) value adds nothing.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::{Field, Message};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};
use crate::syslog::rsyslog_template::{Kind, Template, Value};
use crate::syslog::{parse_tz, Zone};

/// Registration of `RsyslogDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "RsyslogDecoder",
    description: "Decodes lines written by rsyslog with a given template (file or forward format).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `RsyslogDecoder` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RsyslogDecoderConfig {
    /// The rsyslog template the lines were written with: a template string from
    /// rsyslog.conf (`'%TIMESTAMP% %HOSTNAME% %syslogtag%%msg%\n'`) or a built-in name
    /// (`RSYSLOG_TraditionalFileFormat`, `RSYSLOG_FileFormat`, `RSYSLOG_ForwardFormat`,
    /// `RSYSLOG_TraditionalForwardFormat`, `RSYSLOG_SyslogProtocol23Format`). Required.
    pub template: String,
    /// The Type of decoded messages. Default `"syslog"`; `""` keeps the input's Type.
    #[serde(rename = "type")]
    pub msg_type: String,
    /// Keep the Hostname the input stamped instead of the one in the line. Default false.
    pub hostname_keep: bool,
    /// Zone of timestamps that carry none (`RSYSLOG_TraditionalFileFormat`): `"UTC"`
    /// (default), `"Local"` or a fixed offset such as `"+02:00"`.
    pub tz: String,
}

impl Default for RsyslogDecoderConfig {
    fn default() -> Self {
        RsyslogDecoderConfig {
            template: String::new(),
            msg_type: "syslog".into(),
            hostname_keep: false,
            tz: "UTC".into(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: RsyslogDecoderConfig = cfg.parse()?;
    let mut errs = Vec::new();
    let tz = parse_tz(&c.tz);
    if tz.is_none() {
        errs.push(cfg.error(
            "tz",
            "must be \"UTC\", \"Local\" or an offset such as \"+02:00\"",
        ));
    }
    let template = if c.template.is_empty() {
        errs.push(cfg.error("template", "`template` setting is required"));
        None
    } else {
        Template::compile(&c.template)
            .map_err(|e| errs.push(cfg.error("template", e.to_string())))
            .ok()
    };
    let (Some(tz), Some(template)) = (tz, template) else {
        return Err(errs);
    };
    let has_reported = template.properties().any(|p| p.name == "timestamp");
    let decoder = RsyslogDecoder {
        template: Arc::new(template),
        msg_type: c.msg_type,
        hostname_keep: c.hostname_keep,
        tz,
        generated_is_timestamp: !has_reported,
    };
    Ok(Arc::new(move || Box::new(decoder.clone())))
}

/// Decodes records written with one rsyslog template.
#[derive(Debug, Clone)]
pub struct RsyslogDecoder {
    template: Arc<Template>,
    msg_type: String,
    hostname_keep: bool,
    tz: Zone,
    /// `timegenerated` sets the Timestamp (the template has no `timereported`).
    generated_is_timestamp: bool,
}

impl Decoder for RsyslogDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let text = match simdutf8::basic::from_utf8(record) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(record),
        };
        let line = text.trim_end_matches(['\n', '\r', '\0']);
        if line.trim().is_empty() {
            return Ok(());
        }
        let captures = self.template.matches(line, self.tz).map_err(|e| {
            DecodeError::new(format!("rsyslog: line does not fit the template: {e}"))
        })?;
        let m = out.start();
        if !self.msg_type.is_empty() {
            m.msg_type = self.msg_type.as_str().into();
        }
        let mut severity_from_pri = false;
        for (prop, value) in captures {
            self.apply(m, &prop.name, &prop.kind, value, &mut severity_from_pri);
        }
        Ok(())
    }
}

impl RsyslogDecoder {
    /// Puts one property's value where Heka's rsyslog decoder put it.
    fn apply(
        &self,
        m: &mut Message,
        name: &str,
        kind: &Kind,
        value: Value<'_>,
        severity_from_pri: &mut bool,
    ) {
        match (name, value) {
            (_, Value::Nothing) => {}
            ("timestamp", Value::Time(ns)) => m.timestamp = ns,
            ("timegenerated", Value::Time(ns)) if self.generated_is_timestamp => m.timestamp = ns,
            (_, Value::Time(ns)) => m.add_field(Field::integer(name, ns)),
            ("hostname" | "source", Value::Text(h)) => {
                if !self.hostname_keep {
                    m.hostname = h.into();
                }
            }
            ("msg", Value::Text(t)) => t.clone_into(&mut m.payload),
            (_, Value::Tag { program, pid }) => {
                add_program(m, program);
                if pid.is_some() {
                    m.pid = pid;
                }
            }
            ("programname" | "app-name", Value::Text(p)) => add_program(m, p),
            ("procid", Value::Text(p)) => match p.parse() {
                Ok(pid) => m.pid = Some(pid),
                Err(_) => m.add_field(Field::string("procid", p)),
            },
            (_, Value::Pri { facility, severity }) => {
                m.severity = severity;
                *severity_from_pri = true;
                add_facility(m, facility);
            }
            ("syslogfacility" | "syslogfacility-text", Value::Number(f)) => add_facility(m, f),
            (
                "syslogseverity" | "syslogseverity-text" | "syslogpriority" | "syslogpriority-text",
                Value::Number(s),
            ) => {
                if !*severity_from_pri {
                    m.severity = s as i32;
                }
            }
            (_, Value::Number(n)) => m.add_field(Field::integer(name, n)),
            (_, Value::Sd(params)) => {
                for (id, k, v) in params {
                    m.add_field(Field::string(format!("sd.{id}.{k}"), v));
                }
            }
            (_, Value::Text(t)) if *kind != Kind::Bom => m.add_field(Field::string(name, t)),
            (_, Value::Text(_)) => {}
        }
    }
}

fn add_program(m: &mut Message, program: &str) {
    if !program.is_empty() && m.field("programname", 0).is_none() {
        m.add_field(Field::string("programname", program));
    }
}

/// Both facility fields, as `SyslogDecoder` writes them.
fn add_facility(m: &mut Message, facility: i64) {
    if m.field("syslogfacility", 0).is_none() {
        m.add_field(Field::integer("syslogfacility", facility));
        m.add_field(Field::integer("facility", facility));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ValueRef;
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};
    use chrono::{Datelike, TimeZone, Utc};

    fn decoder(toml: &str) -> Box<dyn Decoder> {
        build(&plugin_config("RsyslogDecoder", toml), &build_context()).expect("valid")()
    }

    fn base() -> Message {
        Message {
            hostname: "receiver".into(),
            logger: "in".into(),
            msg_type: "logfile".into(),
            timestamp: 42,
            severity: 7,
            ..Message::default()
        }
    }

    fn decode(toml: &str, line: &str) -> Message {
        let mut out = Vec::new();
        decode_into(&mut *decoder(toml), line.as_bytes(), &base(), &mut out)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn f<'a>(m: &'a Message, name: &str) -> Option<ValueRef<'a>> {
        m.field_value(name, 0, 0)
    }

    fn ns(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .and_then(|t| t.timestamp_nanos_opt())
            .expect("valid")
    }

    #[test]
    fn traditional_file_format_line_from_var_log_syslog() {
        let m = decode(
            "template = 'RSYSLOG_TraditionalFileFormat'",
            "Feb  9 14:17:01 trink-x230 CRON[20758]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)\n",
        );
        assert_eq!(
            m.payload,
            "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)"
        );
        assert_eq!((m.hostname.as_str(), m.pid), ("trink-x230", Some(20758)));
        assert_eq!(f(&m, "programname"), Some(ValueRef::Str("CRON")));
        assert_eq!(
            (m.msg_type.as_str(), m.severity),
            ("syslog", 7),
            "no PRI: severity kept"
        );
        let t = chrono::DateTime::from_timestamp_nanos(m.timestamp);
        assert_eq!((t.month(), t.day(), t.timestamp() % 86_400), (2, 9, 51_421));
    }

    #[test]
    fn same_template_written_out_and_tz() {
        let tmpl = r"template = '%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\n'";
        let line = "Nov 22 23:59:01 host kernel: [ 0.000000] Linux version 6.1\n";
        let utc = decode(tmpl, line);
        assert_eq!(utc.payload, "[ 0.000000] Linux version 6.1");
        assert_eq!(utc.pid, None);
        assert_eq!(f(&utc, "programname"), Some(ValueRef::Str("kernel")));
        let plus2 = decode(&format!("{tmpl}\ntz = '+02:00'"), line);
        assert_eq!(utc.timestamp - plus2.timestamp, 2 * 3600 * 1_000_000_000);
    }

    #[test]
    fn file_format_has_a_high_precision_timestamp() {
        let m = decode(
            "template = 'RSYSLOG_FileFormat'",
            "2026-11-23T01:02:03.123456+01:00 web1 sshd[811]: Accepted publickey for root\n",
        );
        assert_eq!(m.timestamp, ns(2026, 11, 23, 0, 2, 3) + 123_456_000);
        assert_eq!((m.hostname.as_str(), m.pid), ("web1", Some(811)));
        assert_eq!(m.payload, "Accepted publickey for root");
    }

    #[test]
    fn forward_format_sets_severity_and_facility_from_pri() {
        let m = decode(
            "template = 'RSYSLOG_ForwardFormat'",
            "<86>2026-11-23T01:02:03.5Z web1 sudo:   alice : TTY=pts/0 ; COMMAND=/bin/ls",
        );
        assert_eq!(m.severity, 6);
        assert_eq!(f(&m, "syslogfacility"), Some(ValueRef::Int(10)));
        assert_eq!(f(&m, "facility"), Some(ValueRef::Int(10)));
        assert_eq!(f(&m, "programname"), Some(ValueRef::Str("sudo")));
        assert_eq!(m.payload, "alice : TTY=pts/0 ; COMMAND=/bin/ls");
        assert_eq!(m.timestamp, ns(2026, 11, 23, 1, 2, 3) + 500_000_000);
    }

    #[test]
    fn syslog_protocol_23_format_with_structured_data() {
        let m = decode(
            "template = 'RSYSLOG_SyslogProtocol23Format'",
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 7 ID47 \
[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event\n",
        );
        assert_eq!((m.severity, m.pid), (5, Some(7)));
        assert_eq!(m.timestamp, ns(2003, 10, 11, 22, 14, 15) + 3_000_000);
        assert_eq!(m.hostname, "mymachine.example.com");
        assert_eq!(m.payload, "An application event");
        assert_eq!(f(&m, "programname"), Some(ValueRef::Str("evntslog")));
        assert_eq!(f(&m, "syslogfacility"), Some(ValueRef::Int(20)));
        assert_eq!(f(&m, "msgid"), Some(ValueRef::Str("ID47")));
        assert_eq!(f(&m, "sd.exampleSDID@32473.iut"), Some(ValueRef::Str("3")));
        let nil = decode(
            "template = 'RSYSLOG_SyslogProtocol23Format'",
            "<14>1 2003-10-11T22:14:15Z h app - - - hello",
        );
        assert_eq!(
            (nil.pid, f(&nil, "msgid"), f(&nil, "procid")),
            (None, None, None)
        );
        assert_eq!(nil.payload, "hello");
    }

    #[test]
    fn text_properties_and_hostname_keep() {
        let m = decode(
            "template = '%timegenerated:::date-rfc3339% %fromhost-ip% %syslogfacility-text%.%syslogseverity-text% %HOSTNAME% %programname%: %msg%'\nhostname_keep = true\ntype = ''",
            "2026-11-23T00:00:00Z 10.0.0.7 local3.warning web9 app: disk 91% full",
        );
        assert_eq!(
            m.timestamp,
            ns(2026, 11, 23, 0, 0, 0),
            "timegenerated alone is the Timestamp"
        );
        assert_eq!(
            (m.hostname.as_str(), m.msg_type.as_str()),
            ("receiver", "logfile")
        );
        assert_eq!(m.severity, 4);
        assert_eq!(f(&m, "syslogfacility"), Some(ValueRef::Int(19)));
        assert_eq!(f(&m, "fromhost-ip"), Some(ValueRef::Str("10.0.0.7")));
        assert_eq!(f(&m, "programname"), Some(ValueRef::Str("app")));
        assert_eq!(m.payload, "disk 91% full");
    }

    #[test]
    fn timegenerated_beside_timestamp_is_a_field() {
        let m = decode(
            "template = '%TIMESTAMP:::date-unixtimestamp% %timegenerated:::date-unixtimestamp% %msg%'",
            "1700000000 1700000005 x",
        );
        assert_eq!(m.timestamp, 1_700_000_000_000_000_000);
        assert_eq!(
            f(&m, "timegenerated"),
            Some(ValueRef::Int(1_700_000_005_000_000_000))
        );
    }

    #[test]
    fn config_errors_name_the_key_and_property() {
        let cx = build_context();
        for (toml, key, needle) in [
            ("", "template", "required"),
            (
                "template = '%TIMESTAMP% %HOSTNAMEX% %msg%'",
                "template",
                "HOSTNAMEX",
            ),
            (
                "template = '%msg:::date-rfc3339%'",
                "template",
                "date-rfc3339",
            ),
            (
                "template = 'RSYSLOG_FileFormat'\ntz = 'Mars/Olympus'",
                "tz",
                "UTC",
            ),
            (
                "template = 'RSYSLOG_FileFormat'\ntempate = 'x'",
                "tempate",
                "",
            ),
        ] {
            let errs = build(&plugin_config("RsyslogDecoder", toml), &cx)
                .err()
                .unwrap_or_else(|| panic!("{toml} accepted"));
            assert_eq!(errs[0].key, key, "{toml}");
            assert!(errs[0].to_string().contains(needle), "{}", errs[0]);
        }
    }

    #[test]
    fn lines_that_do_not_fit_are_decode_errors_and_blank_lines_nothing() {
        let mut d = decoder("template = 'RSYSLOG_FileFormat'");
        let mut out = Vec::new();
        for bad in [
            "Feb  9 14:17:01 host app: traditional timestamp",
            "2026-13-45T00:00:00Z host app: bad date",
            "<13>1 2026-11-23T00:00:00Z h a - - - rfc5424",
        ] {
            let e = decode_into(&mut *d, bad.as_bytes(), &base(), &mut out).expect_err(bad);
            assert!(e.0.contains("template"), "{e:?}");
        }
        decode_into(&mut *d, b"\n", &base(), &mut out).expect("blank");
        assert!(out.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in "(Feb  9 14:1|<13>2026-11-2|<13>1 2026-)?\\PC{0,80}", which in 0usize..3) {
            let t = ["RSYSLOG_TraditionalFileFormat", "RSYSLOG_SyslogProtocol23Format", "RSYSLOG_ForwardFormat"][which];
            let mut out = Vec::new();
            let _ = decode_into(&mut *decoder(&format!("template = '{t}'")), line.as_bytes(), &base(), &mut out);
        }
    }
}
