//! `HostMetricsInput`: this host's metrics from Linux `/proc`, each group on its own
//! interval (the [`crate::hostmetrics`] kit reads the files):
//!
//! | Group (interval key) | Type | Fields |
//! |---|---|---|
//! | `loadavg_interval` | `stats.loadavg` | `1MinAvg`, `5MinAvg`, `15MinAvg`, `NumProcesses` (Heka's `linux_loadavg` names), `FilePath` |
//! | `memory_interval` | `stats.memstats` | every `/proc/meminfo` line (Heka's `linux_memstats` names, `kB`), `FilePath` |
//! | `cpu_interval` | `stats.cpu` | `user`, `system`, `iowait`, `steal`, `idle` (% since the last sample) |
//! | `network_interval` | `stats.network` | one message per interface: `Interface`, `rx_bytes_per_s`, `tx_bytes_per_s`, `rx_packets_per_s`, `tx_packets_per_s` |
//! | `diskio_interval` | `stats.diskio` | one message per whole block device: `Device`, `reads_per_s`, `writes_per_s`, `read_bytes_per_s`, `write_bytes_per_s`, `util_percent` |
//! | `disk_interval` | `stats.diskusage` | one message per mounted disk file system: `Mount`, `Device`, `FsType`, `TotalBytes`, `UsedBytes`, `AvailableBytes`, `UsedPercent` (as `df`) |
//! | `system_interval` | `stats.system` | `Uptime` (s), `Processes` |
//!
//! With `stat_accum_name` set, every numeric field is also a statsd gauge in that
//! `StatAccumInput` (so it reaches Graphite or Carbon with the other stats), named
//! `<stat_prefix>.<hostname>.<group>[.<entity>].<field>` (dots in the hostname become `_`),
//! e.g.
//! `host.web-1.loadavg.1MinAvg` or `host.web-1.diskusage.var_log.UsedPercent` (the mount,
//! device or interface as the entity; `/` is `root`).
//!
//! An interval of 0 turns a group off. A file that cannot be read is counted in
//! `failures` and logged once per burst; the other groups carry on. Rate groups (CPU,
//! network) send nothing on their first tick, which only takes the first sample.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::hostmetrics as hm;
use crate::message::{Field, Message, ValueRef};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};
use crate::statsd::parse::sanitize;
use crate::statsd::{Metric, StatBus, Value};

/// `[name]` keys of a `HostMetricsInput` section (seconds; 0 = off).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HostMetricsInputConfig {
    /// Load averages. Default 10.
    pub loadavg_interval: u64,
    /// Memory and swap. Default 10.
    pub memory_interval: u64,
    /// CPU percentages. Default 10.
    pub cpu_interval: u64,
    /// Network rates per interface. Default 10.
    pub network_interval: u64,
    /// Disk I/O rates per block device. Default 10.
    pub diskio_interval: u64,
    /// Disk usage per mount. Default 60.
    pub disk_interval: u64,
    /// Uptime and process count. Default 60.
    pub system_interval: u64,
    /// Where procfs is mounted. Default `/proc`.
    pub proc_dir: String,
    /// Name of a `StatAccumInput` to feed every value to as a gauge. Default none.
    pub stat_accum_name: String,
    /// First part of those gauge names. Default `host`.
    pub stat_prefix: String,
}

impl Default for HostMetricsInputConfig {
    fn default() -> Self {
        HostMetricsInputConfig {
            loadavg_interval: 10,
            memory_interval: 10,
            cpu_interval: 10,
            network_interval: 10,
            diskio_interval: 10,
            disk_interval: 60,
            system_interval: 60,
            proc_dir: "/proc".into(),
            stat_accum_name: String::new(),
            stat_prefix: "host".into(),
        }
    }
}

/// The registration of `HostMetricsInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "HostMetricsInput",
    description: "This host's load, memory, CPU, network, disk usage and uptime from /proc.",
    build,
    defaults: Defaults {
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[crate::plugin::Reference {
        default: "",
        ..crate::statsd::STAT_ACCUM_NAME
    }],
};

/// A metric group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Loadavg,
    Memory,
    Cpu,
    Network,
    DiskIo,
    Disk,
    System,
}

/// The running input.
pub struct HostMetricsInput {
    groups: Vec<(Group, Duration)>,
    proc_dir: PathBuf,
    gauges: Option<Gauges>,
}

/// Feeds values to a `StatAccumInput` as gauges.
struct Gauges {
    bus: Arc<StatBus>,
    prefix: String,
}

impl Gauges {
    /// Adds every numeric field of `msgs` as a gauge; returns how many.
    fn add(&self, host: &str, msgs: &[Message]) -> u64 {
        let mut agg = self.bus.lock();
        let mut n = 0;
        let mut key = Vec::new();
        let host = host.replace('.', "_");
        for m in msgs {
            let group = m.msg_type.strip_prefix("stats.").unwrap_or(&m.msg_type);
            let entity = ["Mount", "Device", "Interface"].iter().find_map(|f| {
                match m.field_value(f, 0, 0) {
                    Some(ValueRef::Str(s)) => Some(entity_name(s)),
                    _ => None,
                }
            });
            for f in m.fields.iter() {
                let v = match f.value.get(0) {
                    Some(ValueRef::Int(i)) => i as f64,
                    Some(ValueRef::Double(d)) => d,
                    _ => continue,
                };
                let name = match &entity {
                    Some(e) => format!("{}.{host}.{group}.{e}.{}", self.prefix, f.name),
                    None => format!("{}.{host}.{group}.{}", self.prefix, f.name),
                };
                key.clear();
                sanitize(name.as_bytes(), &mut key);
                agg.add(&Metric {
                    key: std::str::from_utf8(&key).unwrap_or_default(),
                    value: Value::Gauge {
                        value: v,
                        delta: false,
                    },
                    sample_rate: 1.0,
                });
                n += 1;
            }
        }
        n
    }
}

/// A mount, device or interface as one metric-name part: `/` is `root`, `/var/log` is
/// `var_log`.
fn entity_name(s: &str) -> String {
    match s.trim_matches('/') {
        "" => "root".into(),
        t => t.replace(['/', '.'], "_"),
    }
}

fn build(p: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: HostMetricsInputConfig = p.parse()?;
    let gauges = match c.stat_accum_name.as_str() {
        "" => None,
        name => Some(Gauges {
            bus: StatBus::get(cx, name).ok_or_else(|| {
                vec![p.error(
                    "stat_accum_name",
                    format!("{name:?} is not a StatAccumInput"),
                )]
            })?,
            prefix: c.stat_prefix.clone(),
        }),
    };
    let groups: Vec<(Group, Duration)> = [
        (Group::Loadavg, c.loadavg_interval),
        (Group::Memory, c.memory_interval),
        (Group::Cpu, c.cpu_interval),
        (Group::Network, c.network_interval),
        (Group::DiskIo, c.diskio_interval),
        (Group::Disk, c.disk_interval),
        (Group::System, c.system_interval),
    ]
    .into_iter()
    .filter(|(_, s)| *s > 0)
    .map(|(g, s)| (g, Duration::from_secs(s)))
    .collect();
    if groups.is_empty() {
        return Err(vec![p.error(
            "loadavg_interval",
            "every group is off (all intervals are 0)",
        )]);
    }
    Ok(Box::new(HostMetricsInput {
        groups,
        proc_dir: PathBuf::from(c.proc_dir),
        gauges,
    }))
}

/// Samples the rate groups keep between ticks.
#[derive(Default)]
struct Previous {
    cpu: Option<hm::CpuTimes>,
    net: Option<(Instant, HashMap<String, [u64; 4]>)>,
    disk: Option<(Instant, HashMap<String, [u64; 5]>)>,
}

impl Input for HostMetricsInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let mut next: Vec<tokio::time::Instant> = self.groups.iter().map(|_| start).collect();
            let mut prev = Previous::default();
            let mut shutdown = cx.shutdown();
            let mut log = LogLimiter::default();
            let gauges_sent = cx.stats().counter("gauges");
            let _feeder = self.gauges.as_ref().map(|g| g.bus.feeder());
            loop {
                let (i, due) = next
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by_key(|(_, t)| *t)
                    .unwrap_or((0, start));
                tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep_until(due) => {}
                }
                let (group, every) = self.groups[i];
                next[i] = due + every;
                match self.collect(group, &mut prev) {
                    Ok(msgs) if msgs.is_empty() => {}
                    Ok(msgs) => {
                        if let Some(g) = &self.gauges {
                            PluginStats::add(&gauges_sent, g.add(&cx.globals().hostname, &msgs));
                        }
                        if cx.deliver_batch(msgs).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        PluginStats::add(&cx.stats().failures, 1);
                        if let Some(suppressed) = log.check() {
                            tracing::warn!(group = ?group, error = %e, suppressed, "Host metrics not read.");
                        }
                    }
                }
            }
        })
    }
}

fn msg(ty: &str, fields: Vec<Field>) -> Message {
    let mut m = Message::new();
    m.msg_type = ty.into();
    for f in fields {
        m.add_field(f);
    }
    m
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}: unexpected format"),
    )
}

impl HostMetricsInput {
    fn read(&self, name: &str) -> std::io::Result<(String, String)> {
        let path = self.proc_dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        Ok((path.display().to_string(), text))
    }

    /// One group's messages (none on a rate group's first sample).
    fn collect(&self, group: Group, prev: &mut Previous) -> std::io::Result<Vec<Message>> {
        Ok(match group {
            Group::Loadavg => {
                let (path, text) = self.read("loadavg")?;
                let mut f = hm::loadavg(&text).ok_or_else(|| bad(&path))?;
                f.push(Field::string("FilePath", path));
                vec![msg("stats.loadavg", f)]
            }
            Group::Memory => {
                let (path, text) = self.read("meminfo")?;
                let mut f = hm::meminfo(&text);
                f.push(Field::string("FilePath", path));
                vec![msg("stats.memstats", f)]
            }
            Group::Cpu => {
                let (path, text) = self.read("stat")?;
                let now = hm::cpu_times(&text).ok_or_else(|| bad(&path))?;
                let out = prev
                    .cpu
                    .map(|before| vec![msg("stats.cpu", hm::cpu_percent(&before, &now))]);
                prev.cpu = Some(now);
                out.unwrap_or_default()
            }
            Group::Network => {
                let (_, text) = self.read("net/dev")?;
                let now: HashMap<String, [u64; 4]> = hm::netdev(&text).into_iter().collect();
                let t = Instant::now();
                let mut out = Vec::new();
                if let Some((t0, before)) = &prev.net {
                    let secs = t.duration_since(*t0).as_secs_f64();
                    for (name, after) in &now {
                        if let Some(b) = before.get(name) {
                            let mut f = vec![Field::string("Interface", name.clone())];
                            f.extend(hm::net_rates(b, after, secs));
                            out.push(msg("stats.network", f));
                        }
                    }
                }
                prev.net = Some((t, now));
                out
            }
            Group::DiskIo => {
                let (_, text) = self.read("diskstats")?;
                let is_device = |n: &str| std::path::Path::new("/sys/block").join(n).exists();
                let now: HashMap<String, [u64; 5]> =
                    hm::diskstats(&text, is_device).into_iter().collect();
                let t = Instant::now();
                let mut out = Vec::new();
                if let Some((t0, before)) = &prev.disk {
                    let secs = t.duration_since(*t0).as_secs_f64();
                    for (name, after) in &now {
                        if let Some(b) = before.get(name) {
                            let mut f = vec![Field::string("Device", name.clone())];
                            f.extend(hm::disk_io_rates(b, after, secs));
                            out.push(msg("stats.diskio", f));
                        }
                    }
                }
                prev.disk = Some((t, now));
                out
            }
            Group::Disk => {
                let (_, text) = self.read("self/mounts")?;
                let mut out = Vec::new();
                for (dev, mnt, fs) in hm::disk_mounts(&text) {
                    if let Ok(usage) = hm::statvfs(&mnt) {
                        out.push(msg(
                            "stats.diskusage",
                            hm::disk_fields(&dev, &mnt, &fs, usage),
                        ));
                    }
                }
                out
            }
            Group::System => {
                let (path, text) = self.read("uptime")?;
                let up = hm::uptime(&text).ok_or_else(|| bad(&path))?;
                let procs = hm::process_count(&self.proc_dir)?;
                vec![msg(
                    "stats.system",
                    vec![
                        Field::double("Uptime", up).with_representation("s"),
                        Field::double("Processes", procs as f64),
                    ],
                )]
            }
        })
    }
}
