//! The keys of `WhisperOutput` and their compilation (regexes, retentions) at build time.
//! Used by `super::WhisperOutput::new`.

use regex::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::whisper::{self, AggregationMethod, Retention};

/// `[name.schemas]`: retentions for metrics matching `pattern` (carbon's storage-schemas).
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaConfig {
    /// Regex searched in the metric name; the first matching rule wins.
    pub pattern: String,
    /// Carbon retentions, e.g. `"10s:6h,1m:7d"` (units s, m/min, h, d, w, y; `60:1440` =
    /// seconds per point : points).
    pub retentions: String,
}

/// `[name.aggregations]`: aggregation for metrics matching `pattern` (carbon's
/// storage-aggregation).
#[derive(Debug, Clone, Deserialize)]
pub struct AggregationConfig {
    /// Regex searched in the metric name; the first matching rule wins.
    pub pattern: String,
    /// `average`, `sum`, `last`, `max`, `min`, `avg_zero`, `absmax` or `absmin`. Default:
    /// `default_agg_method`.
    pub method: Option<String>,
    /// Fraction of known points needed to propagate. Default: `default_xfiles_factor`.
    pub xfiles_factor: Option<f32>,
}

/// The keys of a `WhisperOutput` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WhisperOutputConfig {
    /// Folder of the whisper tree; relative paths are under `base_dir`. Default `"whisper"`.
    pub base_path: String,
    /// Heka's aggregation code for new files: 1 average, 2 sum, 3 last, 4 max, 5 min
    /// (6 avg_zero, 7 absmax, 8 absmin also accepted). Default 1.
    pub default_agg_method: u32,
    /// Heka's archives for new files, `[[offset, seconds_per_point, points], ...]` (offset
    /// is ignored). Default `[[0,60,1440],[0,900,8],[0,3600,168],[0,43200,1456]]`.
    pub default_archive_info: Vec<Vec<u32>>,
    /// xFilesFactor of new files when no aggregation rule sets one. Default 0.5.
    pub default_xfiles_factor: f32,
    /// Octal mode of created folders. Default `"700"`.
    pub folder_perm: String,
    /// New files per minute (carbon's `MAX_CREATES_PER_MINUTE`); 0 = unlimited. Default 50.
    pub max_creates_per_minute: u32,
    /// Points buffered across all files; beyond it points are dropped and counted in
    /// `dropped`. Default 500000.
    pub max_pending_points: usize,
    /// Per-metric retentions; first match wins, else `default_archive_info`.
    pub schemas: Vec<SchemaConfig>,
    /// Per-metric aggregation; first match wins, else the built-in rules.
    pub aggregations: Vec<AggregationConfig>,
}

impl Default for WhisperOutputConfig {
    fn default() -> Self {
        WhisperOutputConfig {
            base_path: "whisper".into(),
            default_agg_method: 1,
            default_archive_info: vec![
                vec![0, 60, 1440],
                vec![0, 900, 8],
                vec![0, 3600, 168],
                vec![0, 43200, 1456],
            ],
            default_xfiles_factor: 0.5,
            folder_perm: "700".into(),
            max_creates_per_minute: 50,
            max_pending_points: 500_000,
            schemas: Vec::new(),
            aggregations: Vec::new(),
        }
    }
}

/// A compiled `[name.aggregations]` rule.
pub(super) struct AggregationRule {
    pub(super) pattern: Regex,
    pub(super) method: Option<AggregationMethod>,
    pub(super) xff: Option<f32>,
}

/// Compiles `pattern` or reports it against `key`.
fn regex(cfg: &PluginConfig, key: &str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| cfg.error(key, e.to_string()))
}

pub(super) fn compile_schemas(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> (Vec<(Regex, Vec<Retention>)>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, s) in c.schemas.iter().enumerate() {
        let key = format!("schemas[{i}]");
        let re = regex(cfg, &format!("{key}.pattern"), &s.pattern);
        let ret = whisper::parse_retentions(&s.retentions).and_then(|mut r| {
            whisper::validate_archive_list(&mut r)?;
            Ok(r)
        });
        match (re, ret) {
            (Ok(re), Ok(r)) => out.push((re, r)),
            (re, ret) => {
                errors.extend(re.err());
                errors.extend(
                    ret.err()
                        .map(|e| cfg.error(&format!("{key}.retentions"), e.to_string())),
                );
            }
        }
    }
    (out, errors)
}

pub(super) fn compile_aggregations(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> (Vec<AggregationRule>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, a) in c.aggregations.iter().enumerate() {
        let key = format!("aggregations[{i}]");
        let method = match a.method.as_deref().map(AggregationMethod::from_name) {
            Some(None) => {
                errors.push(cfg.error(&format!("{key}.method"), "unknown aggregation method"));
                None
            }
            other => other.flatten(),
        };
        if a.xfiles_factor.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
            errors.push(cfg.error(&format!("{key}.xfiles_factor"), "must be between 0 and 1"));
        }
        match regex(cfg, &format!("{key}.pattern"), &a.pattern) {
            Ok(pattern) => out.push(AggregationRule {
                pattern,
                method,
                xff: a.xfiles_factor,
            }),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

pub(super) fn default_archives(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> Result<Vec<Retention>, ConfigError> {
    let key = "default_archive_info";
    let mut archives = c
        .default_archive_info
        .iter()
        .map(|a| match a.as_slice() {
            [_, spp, points] => Ok(Retention {
                seconds_per_point: *spp,
                points: *points,
            }),
            _ => Err(cfg.error(key, "each archive is [offset, seconds_per_point, points]")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    whisper::validate_archive_list_lenient(&mut archives)
        .map_err(|e| cfg.error(key, e.to_string()))?;
    Ok(archives)
}
