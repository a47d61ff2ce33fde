//! Stage two of configuration: turn a [`LoadedConfig`] into a [`Pipeline`] plan.
//!
//! Every section's type is looked up in the registry and built; references (`decoder`,
//! `splitter`, `encoder`, `stat_accum_name`) are resolved; matchers are compiled. Every
//! problem is collected so `hekate check` and startup report them all at once. Nothing
//! runs here: `Pipeline::start` does that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::load::SectionCommon;
use crate::config::{
    Category, CommonFo, CommonInput, CommonSplitter, Globals, LoadedConfig, PluginConfig, Section,
};
use crate::error::ConfigError;
use crate::matcher::Matcher;
use crate::pipeline::supervise::RestartPolicy;
use crate::plugin::{
    BuildContext, BuildFilter, BuildInput, BuildOutput, DecoderFactory, Defaults, EncoderFactory,
    Filter, Input, Output, SplitterFactory,
};
use crate::registry::{find, unknown_type_message};
use crate::stats::{PluginStats, Report};
use crate::{decoders, encoders, filters, inputs, outputs, splitters};

/// Recipes Heka registers even when no section names them.
/// hekate adds `PayloadEncoder` and `JsonEncoder` so outputs can name them without a section.
const DEFAULT_RECIPES: &[&str] = &[
    "ProtobufDecoder",
    "ProtobufEncoder",
    "PayloadEncoder",
    "JsonEncoder",
    "NullSplitter",
    "TokenSplitter",
    "HekaFramingSplitter",
    "PatternGroupingSplitter",
];

/// A built, not yet running, pipeline.
pub struct Pipeline {
    pub(crate) globals: Arc<Globals>,
    pub(crate) report: Report,
    pub(crate) bcx: BuildContext,
    pub(crate) inputs: Vec<InputPlan>,
    pub(crate) filters: Vec<FilterPlan>,
    pub(crate) outputs: Vec<OutputPlan>,
    pub(crate) router_stats: Arc<PluginStats>,
    wiring: Vec<Wiring>,
    /// The sections this pipeline was built from (a reload compares against them).
    pub(crate) sections: Vec<Section>,
    /// The config path, when known: a reload reads it again.
    pub(crate) source: Option<std::path::PathBuf>,
}

/// One line of `hekate check`: a plugin and where its messages come from or go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The plugin's category.
    pub category: Category,
    /// Instance name.
    pub name: String,
    /// Registered type.
    pub type_name: String,
    /// Human-readable wiring: splitter/decoder for inputs, matcher/encoder/queue otherwise.
    pub detail: String,
}

pub(crate) struct InputPlan {
    pub config: PluginConfig,
    pub build: BuildInput,
    pub input: Box<dyn Input>,
    pub common: CommonInput,
    pub splitter: SplitterFactory,
    pub splitter_common: CommonSplitter,
    pub decoder: Option<DecoderFactory>,
    pub ticker_interval: Option<u64>,
    pub can_exit: bool,
    pub stop_after_filters: bool,
    pub stats: Arc<PluginStats>,
}

/// What filters and outputs share.
/// A plugin's disk buffer (`use_buffering`): where and how, and what to do when full.
#[derive(Debug, Clone)]
pub(crate) struct DiskPlan {
    pub config: crate::buffer::disk::DiskConfig,
    pub full_action: crate::config::FullAction,
}

/// `<base_dir>/buffers/<name>` with every non-word character of the name as `_` (Heka).
fn disk_plan(globals: &Globals, p: &PluginConfig, c: &CommonFo) -> DiskPlan {
    use crate::buffer::disk::{DiskConfig, Fsync};
    use crate::config::common::FsyncPolicy;
    let b = &c.buffering;
    let folder: String = p
        .name
        .chars()
        .map(|ch| {
            if ch.is_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let interval = std::time::Duration::from_millis(b.fsync_interval.unwrap_or(1000));
    DiskPlan {
        config: DiskConfig {
            dir: globals.base_dir.join("buffers").join(folder),
            max_file_size: b.max_file_size.filter(|s| *s > 0).unwrap_or(512 << 20),
            max_buffer_size: b.max_buffer_size.unwrap_or(0),
            cursor_update_count: b.cursor_update_count.unwrap_or(1).max(1),
            fsync: match b.fsync.unwrap_or_default() {
                FsyncPolicy::Interval => Fsync::Interval(interval),
                FsyncPolicy::Always => Fsync::Always,
                FsyncPolicy::Never => Fsync::Never,
            },
            max_record_size: globals.max_message_size as usize + 4096,
        },
        full_action: b.action(true),
    }
}

pub(crate) struct FoPlan {
    pub config: PluginConfig,
    pub common: CommonFo,
    pub matcher: Option<Matcher>,
    pub ticker: Option<Duration>,
    pub capacity: usize,
    pub can_exit: bool,
    pub stats: Arc<PluginStats>,
    /// The disk buffer, with `use_buffering`.
    pub disk: Option<DiskPlan>,
}

impl FoPlan {
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy::new(self.common.retries.clone())
    }
}

pub(crate) struct FilterPlan {
    pub fo: FoPlan,
    pub build: BuildFilter,
    pub filter: Box<dyn Filter>,
}

/// An output's `[name.signer]`: it signs Heka frames, so the output must frame, and the
/// signer's name must fit a frame header.
fn check_signer(
    p: &PluginConfig,
    s: &crate::message::framing::SignerConfig,
    use_framing: bool,
) -> Result<(), Vec<ConfigError>> {
    if !use_framing {
        return Err(vec![p.error(
            "signer",
            "signs Heka frames: use the ProtobufEncoder or set use_framing = true",
        )]);
    }
    if s.name.is_empty() || s.name.len() > 128 {
        return Err(vec![p.error("signer.name", "1 to 128 bytes")]);
    }
    Ok(())
}

pub(crate) struct OutputPlan {
    pub fo: FoPlan,
    pub build: BuildOutput,
    pub output: Box<dyn Output>,
    pub encoder: Option<EncoderFactory>,
    pub use_framing: bool,
}

/// Recipes (splitters, decoders, encoders) by section name, with their type names.
#[derive(Default)]
struct Recipes {
    splitters: HashMap<String, (SplitterFactory, CommonSplitter)>,
    decoders: HashMap<String, DecoderFactory>,
    encoders: HashMap<String, (EncoderFactory, String)>,
}

/// Builds every plugin of `cfg`, or returns every error found.
pub fn build(cfg: LoadedConfig) -> Result<Pipeline, Vec<ConfigError>> {
    build_as(cfg, false)
}

/// Builds every plugin of `cfg` to check it (`hekate check`): plugins skip side effects
/// such as listening (`BuildContext::check_only`), so checking the config of a running
/// hekate does not collide with it.
pub fn build_check(cfg: LoadedConfig) -> Result<Pipeline, Vec<ConfigError>> {
    build_as(cfg, true)
}

fn build_as(mut cfg: LoadedConfig, check_only: bool) -> Result<Pipeline, Vec<ConfigError>> {
    if !check_only && !cfg.globals.host_id_field.is_empty() {
        match cfg.globals.load_host_id() {
            Ok(id) => cfg.globals.host_id = id,
            Err(e) => cfg.errors.push(ConfigError::new(
                &cfg.config_dir,
                "hekad",
                "host_id_field",
                format!("cannot keep the host id under base_dir: {e}"),
            )),
        }
    }
    let globals = Arc::new(cfg.globals.clone());
    let report = Report::default();
    let mut bcx = BuildContext::new(globals, cfg.config_dir.clone(), report.clone());
    bcx.check_only = check_only;
    build_with(cfg, bcx, report)
}

/// Builds `cfg` for a reload of a running pipeline: with its build context (so shared
/// objects such as a `StatAccumInput`'s bus are the running ones) and its report (the
/// caller removes the entries of plugins it does not start).
pub(crate) fn build_reload(
    cfg: LoadedConfig,
    bcx: &BuildContext,
    report: &Report,
) -> Result<Pipeline, Vec<ConfigError>> {
    build_with(cfg, bcx.clone(), report.clone())
}

fn build_with(
    cfg: LoadedConfig,
    bcx: BuildContext,
    report: Report,
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errors = cfg.errors;
    let globals = bcx.globals.clone();
    let recipes = build_recipes(&cfg.sections, &bcx, &mut errors);
    check_references(&cfg.sections, &mut errors);
    let mut p = Pipeline {
        globals,
        report: report.clone(),
        bcx: bcx.clone(),
        inputs: Vec::new(),
        filters: Vec::new(),
        outputs: Vec::new(),
        router_stats: report.register("Router", "Router", "Router"),
        wiring: Vec::new(),
        sections: cfg.sections.clone(),
        source: None,
    };
    for s in &cfg.sections {
        let result = match (&s.common, s.plugin.category) {
            (SectionCommon::Input(c), _) => p.add_input(&s.plugin, c, &recipes),
            (SectionCommon::Fo(c), Category::Filter) => p.add_filter(&s.plugin, c),
            (SectionCommon::Fo(c), _) => p.add_output(&s.plugin, c, &recipes),
            _ => Ok(()),
        };
        if let Err(errs) = result {
            errors.extend(errs);
        }
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(errors)
    }
}

fn build_recipes(
    sections: &[Section],
    bcx: &BuildContext,
    errors: &mut Vec<ConfigError>,
) -> Recipes {
    let mut r = Recipes::default();
    let configured: Vec<&str> = sections.iter().map(|s| s.plugin.name.as_str()).collect();
    let defaults = DEFAULT_RECIPES
        .iter()
        .filter(|n| !configured.contains(n))
        .map(|n| default_section(n));
    // Decoders built on other decoders (MultiDecoder) come after everything else, so
    // their subs are published when they are built.
    let (composite, plain): (Vec<Section>, Vec<Section>) = sections
        .iter()
        .cloned()
        .chain(defaults.flatten())
        .partition(|s| s.plugin.type_name == "MultiDecoder");
    let recipe_sections = plain.into_iter().chain(composite);
    for s in recipe_sections {
        let name = s.plugin.name.clone();
        let res = match (s.plugin.category, &s.common) {
            (Category::Splitter, SectionCommon::Splitter(c)) => {
                lookup(splitters::SPLITTERS, &s.plugin)
                    .and_then(|reg| (reg.build)(&s.plugin, bcx))
                    .map(|f| {
                        r.splitters.insert(name, (f, c.clone()));
                    })
            }
            (Category::Decoder, _) => lookup(decoders::DECODERS, &s.plugin)
                .and_then(|reg| (reg.build)(&s.plugin, bcx))
                .map(|f| {
                    bcx.publish_decoder(&name, f.clone());
                    r.decoders.insert(name, f);
                }),
            (Category::Encoder, _) => lookup(encoders::ENCODERS, &s.plugin)
                .and_then(|reg| (reg.build)(&s.plugin, bcx))
                .map(|f| {
                    r.encoders.insert(name, (f, s.plugin.type_name.clone()));
                }),
            _ => Ok(()),
        };
        if let Err(e) = res {
            errors.extend(e);
        }
    }
    r
}

/// A section for a default recipe, if that type is registered.
fn default_section(name: &str) -> Option<Section> {
    let category = Category::from_type_name(name)?;
    let registered = crate::registry::all().iter().any(|t| t.name == name);
    let common = match category {
        Category::Splitter => SectionCommon::Splitter(CommonSplitter::default()),
        _ => SectionCommon::None,
    };
    let plugin = PluginConfig {
        name: name.into(),
        type_name: name.into(),
        category,
        file: Default::default(),
        table: Default::default(),
    };
    registered.then_some(Section { plugin, common })
}

fn lookup<B>(
    slice: &'static [crate::plugin::Registration<B>],
    p: &PluginConfig,
) -> Result<&'static crate::plugin::Registration<B>, Vec<ConfigError>> {
    find(slice, &p.type_name)
        .ok_or_else(|| vec![p.error("type", unknown_type_message(p.category, &p.type_name))])
}

/// Every key a registration declares as a [`Reference`](crate::plugin::Reference) must
/// name a configured section of the declared type.
fn check_references(sections: &[Section], errors: &mut Vec<ConfigError>) {
    for s in sections {
        let p = &s.plugin;
        for r in crate::registry::references(p.category, &p.type_name) {
            let target = p
                .table
                .get(r.key)
                .and_then(|v| v.as_str())
                .unwrap_or(r.default);
            if target.is_empty() {
                continue; // an optional reference left unset
            }
            let found = sections
                .iter()
                .any(|t| t.plugin.name == target && t.plugin.type_name == r.type_name);
            if !found {
                let msg = format!("no {} section named {target:?}", r.type_name);
                errors.push(p.error(r.key, msg));
            }
        }
    }
}

impl Pipeline {
    /// Heka's docs put `[name.signer.<signer>_<version>]` on TcpInput and UdpInput: such
    /// an input gets its own `HekaFramingSplitter` with those keys (reported as
    /// `<name>.splitter`).
    fn signing_splitter(
        &self,
        p: &PluginConfig,
        splitter_name: &str,
        keys: &toml::Table,
    ) -> Result<(SplitterFactory, CommonSplitter), Vec<ConfigError>> {
        if splitter_name != "HekaFramingSplitter" {
            return Err(vec![p.error(
                "signer",
                format!(
                    "signer keys on an input are for its HekaFramingSplitter, and this one \
                     uses {splitter_name:?}: put them on that splitter's section"
                ),
            )]);
        }
        let mut table = toml::Table::new();
        table.insert("signer".into(), toml::Value::Table(keys.clone()));
        let section = PluginConfig {
            name: format!("{}.splitter", p.name),
            type_name: "HekaFramingSplitter".into(),
            category: Category::Splitter,
            file: p.file.clone(),
            table,
        };
        let reg = lookup(splitters::SPLITTERS, &section)?;
        let factory = (reg.build)(&section, &self.bcx).map_err(|errs| {
            errs.into_iter()
                .map(|e| p.error(&e.key, e.message))
                .collect::<Vec<_>>()
        })?;
        Ok((factory, CommonSplitter::default()))
    }

    fn add_input(
        &mut self,
        p: &PluginConfig,
        c: &CommonInput,
        r: &Recipes,
    ) -> Result<(), Vec<ConfigError>> {
        let reg = lookup(inputs::INPUTS, p)?;
        let d = reg.defaults;
        let splitter_name = c.splitter.as_deref().unwrap_or(d.splitter);
        let decoder_name = c.decoder.as_deref().or(d.decoder).filter(|n| !n.is_empty());
        let mut errs = Vec::new();
        if !d.uses_records {
            for (key, set) in [
                ("splitter", c.splitter.is_some()),
                ("decoder", c.decoder.is_some()),
            ] {
                if set {
                    errs.push(p.error(
                        key,
                        "this input builds its own messages; it takes no splitter or decoder",
                    ));
                }
            }
        }
        let own_splitter = c
            .signer
            .as_ref()
            .map(|keys| self.signing_splitter(p, splitter_name, keys));
        let splitter = match own_splitter {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                errs.extend(e);
                None
            }
            None => r.splitters.get(splitter_name).cloned(),
        };
        if splitter.is_none() && c.signer.is_none() {
            errs.push(p.error(
                "splitter",
                format!("no splitter section named {splitter_name:?}"),
            ));
        }
        let decoder = decoder_name.map(|n| r.decoders.get(n).cloned().ok_or(n));
        if let Some(Err(n)) = decoder {
            errs.push(p.error("decoder", format!("no decoder section named {n:?}")));
        }
        let input = (reg.build)(p, &self.bcx);
        let (Some((split, split_common)), Ok(input)) =
            (splitter, input.map_err(|e| errs.extend(e)))
        else {
            return Err(errs);
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let detail = if d.uses_records {
            let decoder = decoder_name.unwrap_or("(none: record becomes Payload)");
            format!("splitter {splitter_name}, decoder {decoder}")
        } else {
            "builds its own messages".to_string()
        };
        self.wire(p, detail);
        self.inputs.push(InputPlan {
            config: p.clone(),
            build: reg.build,
            input,
            common: c.clone(),
            splitter: split.clone(),
            splitter_common: split_common.clone(),
            decoder: decoder.and_then(Result::ok),
            ticker_interval: c.ticker_interval.or(d.ticker_interval),
            can_exit: c.can_exit,
            stop_after_filters: d.stop_after_filters,
            stats: self.report.register(&p.name, "Input", &p.type_name),
        });
        Ok(())
    }

    fn fo_plan(
        &self,
        p: &PluginConfig,
        c: &CommonFo,
        d: &Defaults,
    ) -> Result<FoPlan, Vec<ConfigError>> {
        fo_plan(&self.globals, &self.report, p, c, d)
    }

    fn add_filter(&mut self, p: &PluginConfig, c: &CommonFo) -> Result<(), Vec<ConfigError>> {
        let reg = lookup(filters::FILTERS, p)?;
        if c.signer.is_some() {
            return Err(vec![p.error(
                "signer",
                "only outputs sign (the frames they write); a filter's messages are not framed",
            )]);
        }
        if p.type_name == "SandboxManagerFilter"
            && c.message_signer.as_deref().is_none_or(str::is_empty)
        {
            tracing::warn!(file = %p.file.display(), section = %p.name,
                "SandboxManagerFilter without message_signer: any input that can produce a heka.control.sandbox message can load Lua; set message_signer and signer keys on the control input's HekaFramingSplitter.");
        }
        let fo = self.fo_plan(p, c, &reg.defaults);
        let filter = (reg.build)(p, &self.bcx);
        let (fo, filter) = join_errors(fo, filter)?;
        self.wire(p, fo_detail(&fo, None));
        self.filters.push(FilterPlan {
            fo,
            build: reg.build,
            filter,
        });
        Ok(())
    }

    fn add_output(
        &mut self,
        p: &PluginConfig,
        c: &CommonFo,
        r: &Recipes,
    ) -> Result<(), Vec<ConfigError>> {
        let reg = lookup(outputs::OUTPUTS, p)?;
        let enc_name = c
            .encoder
            .as_deref()
            .or(reg.defaults.encoder)
            .filter(|n| !n.is_empty());
        let encoder =
            match enc_name {
                None => Ok(None),
                Some(n) => r.encoders.get(n).cloned().map(Some).ok_or_else(|| {
                    vec![p.error("encoder", format!("no encoder section named {n:?}"))]
                }),
            };
        let fo = self.fo_plan(p, c, &reg.defaults);
        let output = (reg.build)(p, &self.bcx);
        let (fo, output) = join_errors(fo, output)?;
        let encoder = encoder?;
        let use_framing = c.use_framing.unwrap_or(
            encoder
                .as_ref()
                .is_some_and(|(_, t)| t == "ProtobufEncoder"),
        );
        if let Some(s) = &c.signer {
            check_signer(p, s, use_framing)?;
        }
        self.wire(p, fo_detail(&fo, enc_name.map(|n| (n, use_framing))));
        self.outputs.push(OutputPlan {
            fo,
            build: reg.build,
            output,
            encoder: encoder.map(|(f, _)| f),
            use_framing,
        });
        Ok(())
    }

    fn wire(&mut self, p: &PluginConfig, detail: String) {
        self.wiring.push(Wiring {
            category: p.category,
            name: p.name.clone(),
            type_name: p.type_name.clone(),
            detail,
        });
    }

    /// Remembers the config path this pipeline came from, so SIGHUP, a change in that
    /// folder or `hekate reload` can reload it while it runs.
    pub fn with_source(mut self, path: &std::path::Path) -> Self {
        self.source = Some(path.to_path_buf());
        self
    }

    /// What `hekate check` prints: every input, filter and output with its wiring.
    pub fn wiring(&self) -> &[Wiring] {
        &self.wiring
    }

    /// The counters registry (live once the pipeline runs).
    pub fn report(&self) -> Report {
        self.report.clone()
    }

    /// The globals in force.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }
}

/// Compiles a filter's or output's matcher, ticker and queue size and registers its
/// counters (also used for filters started at runtime).
pub(crate) fn fo_plan(
    globals: &Globals,
    report: &Report,
    p: &PluginConfig,
    c: &CommonFo,
    d: &Defaults,
) -> Result<FoPlan, Vec<ConfigError>> {
    let src = c
        .message_matcher
        .as_deref()
        .or(d.message_matcher)
        .unwrap_or("");
    let matcher = if src.trim().is_empty() {
        None
    } else {
        Some(
            Matcher::parse(src)
                .map_err(|e| vec![p.error("message_matcher", format!("{e} in {src:?}"))])?,
        )
    };
    let ticker = c
        .ticker_interval
        .or(d.ticker_interval)
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let capacity = match c.buffering.queue_size {
        0 => globals
            .plugin_chansize
            .saturating_mul(crate::config::MESSAGES_PER_SLOT),
        n => n,
    };
    let disk = c.use_buffering.then(|| disk_plan(globals, p, c));
    let stats = report.register(&p.name, p.category.as_str(), &p.type_name);
    stats.describe(crate::stats::PluginInfo {
        matcher: matcher.as_ref().map(|m| m.source().to_string()),
        queue_capacity: capacity as u64,
    });
    Ok(FoPlan {
        config: p.clone(),
        common: c.clone(),
        matcher,
        ticker,
        capacity,
        can_exit: c.can_exit.unwrap_or(d.can_exit),
        stats,
        disk,
    })
}

fn fo_detail(fo: &FoPlan, encoder: Option<(&str, bool)>) -> String {
    let m = fo
        .matcher
        .as_ref()
        .map_or("(matches nothing)".to_string(), |m| {
            format!("matcher {:?}", m.source())
        });
    let q = match &fo.disk {
        Some(d) => format!(
            "disk buffer {} ({} bytes max, {:?} when full)",
            d.config.dir.display(),
            d.config.max_buffer_size,
            d.full_action
        ),
        None => format!(
            "queue {} ({:?} when full)",
            fo.capacity,
            fo.common.buffering.action(false)
        )
        .to_lowercase(),
    };
    let t = fo
        .ticker
        .map(|t| format!(", ticker {}s", t.as_secs()))
        .unwrap_or_default();
    let e = encoder
        .map(|(n, f)| format!(", encoder {n}{}", if f { " + framing" } else { "" }))
        .unwrap_or_default();
    format!("{m}, {q}{t}{e}")
}

fn join_errors<A, B>(
    a: Result<A, Vec<ConfigError>>,
    b: Result<B, Vec<ConfigError>>,
) -> Result<(A, B), Vec<ConfigError>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(a.err().into_iter().chain(b.err()).flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(toml: &str) -> Vec<ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hekate.toml");
        std::fs::write(&file, toml).expect("write config");
        let loaded = crate::config::load::load(&file).expect("loads");
        match build(loaded) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    #[test]
    fn declared_references_must_name_a_section_of_their_type() {
        let errors = errors_of(
            "[hekad]\nbase_dir = '.'\n\
             [StatsdInput]\naddress = '127.0.0.1:0'\nstat_accum_name = 'Nope'\n\
             [Stats]\ntype = 'StatFilter'\nmessage_matcher = 'TRUE'\n\
             [Stats.Metric.m]\ntype = 'Counter'\nname = 'n'\nvalue = '1'\n\
             [Nope]\ntype = 'UdpInput'\naddress = '127.0.0.1:0'\n",
        );
        let refs: Vec<(&str, &str, &str)> = errors
            .iter()
            .filter(|e| e.key == "stat_accum_name")
            .map(|e| (e.section.as_str(), e.key.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            refs,
            [
                (
                    "StatsdInput",
                    "stat_accum_name",
                    "no StatAccumInput section named \"Nope\""
                ),
                (
                    "Stats",
                    "stat_accum_name",
                    "no StatAccumInput section named \"StatAccumInput\""
                ),
            ],
            "{errors:?}"
        );
    }
}
