//! Finding and ordering a `LogstreamerInput`'s files: the recursive walk of
//! `log_directory`, the `file_match` regex, `priority` sorting (with `translation`,
//! `MonthName` and `DayName`) and the `differentiator` that splits matches into logical
//! streams. Used by the input's tailers and by `hekate logstreamer`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use regex::Regex;

/// Sort value of a group that did not match or has no numeric meaning (as Heka).
const NO_SCORE: i64 = -1;

const MONTHS: &[(&str, i64)] = &[
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("mar", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
];

const DAYS: &[(&str, i64)] = &[
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];

/// One priority key: a capture group name, ascending or (`^` prefix) descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityKey {
    /// The capture group.
    pub group: String,
    /// True for a `^`-prefixed key: larger values are older.
    pub descending: bool,
}

/// The compiled matching and ordering rules of one `LogstreamerInput`.
#[derive(Debug, Clone)]
pub struct StreamPattern {
    /// `log_directory`.
    pub root: PathBuf,
    /// `^(?:file_match)$`, matched against paths relative to `root`.
    pub regex: Regex,
    /// Sort keys, oldest → newest.
    pub priority: Vec<PriorityKey>,
    /// Group names or literals whose concatenation names the stream.
    pub differentiator: Vec<String>,
    /// Lower-cased value → sort value, per group.
    pub translation: HashMap<String, HashMap<String, i64>>,
    /// Files not modified for this long are ignored (zero: no limit).
    pub oldest: Duration,
}

/// A matched file with its group values.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// Full path.
    pub path: PathBuf,
    strings: HashMap<String, String>,
    scores: HashMap<String, i64>,
}

/// The files of every stream, oldest → newest, plus problems found on the way.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Stream name → files, oldest first.
    pub streams: BTreeMap<String, Vec<PathBuf>>,
    /// Human-readable problems (untranslatable values, unsortable streams).
    pub errors: Vec<String>,
}

impl StreamPattern {
    /// Compiles `file_match` (anchored at both ends) and the `priority` keys.
    pub fn new(
        root: PathBuf,
        file_match: &str,
        priority: &[String],
        differentiator: Vec<String>,
        translation: &HashMap<String, HashMap<String, i64>>,
        oldest: Duration,
    ) -> Result<Self, regex::Error> {
        let body = file_match.strip_suffix('$').unwrap_or(file_match);
        let body = body.strip_prefix('^').unwrap_or(body);
        let regex = Regex::new(&format!("^(?:{body})$"))?;
        let priority = priority
            .iter()
            .map(|p| match p.strip_prefix('^') {
                Some(g) => PriorityKey {
                    group: g.to_string(),
                    descending: true,
                },
                None => PriorityKey {
                    group: p.clone(),
                    descending: false,
                },
            })
            .collect();
        let translation = translation
            .iter()
            .map(|(g, m)| {
                let lower = m.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect();
                (g.clone(), lower)
            })
            .collect();
        Ok(StreamPattern {
            root,
            regex,
            priority,
            differentiator,
            translation,
            oldest,
        })
    }

    /// Walks `root` and groups the matching files into ordered streams.
    pub fn scan(&self) -> ScanResult {
        let mut found = Vec::new();
        walk(&self.root, &mut found);
        let cutoff = (!self.oldest.is_zero())
            .then(|| SystemTime::now().checked_sub(self.oldest))
            .flatten();
        let mut result = ScanResult::default();
        let mut groups: BTreeMap<String, Vec<LogFile>> = BTreeMap::new();
        for path in found {
            if cutoff.is_some_and(|c| modified(&path).is_some_and(|m| m < c)) {
                continue;
            }
            match self.classify(&path) {
                Some(Ok(f)) => groups.entry(self.stream_name(&f)).or_default().push(f),
                Some(Err(e)) => result.errors.push(e),
                None => {}
            }
        }
        for (name, mut files) in groups {
            if files.len() > 1 && self.priority.is_empty() {
                result.errors.push(format!(
                    "stream {name:?} has {} files but no priority to order them; skipped",
                    files.len()
                ));
                continue;
            }
            files.sort_by(|a, b| self.compare(a, b).then_with(|| a.path.cmp(&b.path)));
            result
                .streams
                .insert(name, files.into_iter().map(|f| f.path).collect());
        }
        result
    }

    /// Matches one path; `None` when it does not match `file_match`.
    pub fn classify(&self, path: &Path) -> Option<Result<LogFile, String>> {
        let rel = path.strip_prefix(&self.root).ok()?.to_str()?;
        let caps = self.regex.captures(rel)?;
        let mut f = LogFile {
            path: path.to_path_buf(),
            strings: HashMap::new(),
            scores: HashMap::new(),
        };
        for name in self.regex.capture_names().flatten() {
            let value = caps.name(name).map_or("", |m| m.as_str());
            match self.score(name, value) {
                Ok(s) => f.scores.insert(name.to_string(), s),
                Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
            };
            f.strings.insert(name.to_string(), value.to_string());
        }
        Some(Ok(f))
    }

    /// The sort value of `group` = `value` (Heka's rules).
    fn score(&self, group: &str, value: &str) -> Result<i64, String> {
        let lower = if value.is_empty() {
            "missing".to_string()
        } else {
            value.to_lowercase()
        };
        let lookup = |table: &[(&str, i64)], what: &str| {
            table
                .iter()
                .find(|(k, _)| *k == lower)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("unknown {what} {value:?}"))
        };
        match (group, self.translation.get(group)) {
            ("MonthName", _) => lookup(MONTHS, "month name"),
            ("DayName", _) => lookup(DAYS, "day name"),
            (_, Some(map)) if map.len() > 1 => map
                .get(&lower)
                .copied()
                .ok_or_else(|| format!("value {value:?} not found in translation map {group:?}")),
            (_, Some(map)) if lower == "missing" => Ok(map.get("missing").copied().unwrap_or(-1)),
            _ => Ok(value.parse::<i64>().unwrap_or(NO_SCORE)),
        }
    }

    /// Concatenates differentiator parts: group values, or the literal text.
    pub fn stream_name(&self, f: &LogFile) -> String {
        self.differentiator
            .iter()
            .map(|d| f.strings.get(d).map_or(d.as_str(), String::as_str))
            .collect()
    }

    /// Orders two files oldest first by the priority keys.
    fn compare(&self, a: &LogFile, b: &LogFile) -> Ordering {
        for key in &self.priority {
            let x = a.scores.get(&key.group).copied().unwrap_or(NO_SCORE);
            let y = b.scores.get(&key.group).copied().unwrap_or(NO_SCORE);
            let ord = if key.descending { y.cmp(&x) } else { x.cmp(&y) };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// Collects regular files under `dir` recursively; symlinked folders are not followed.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(root: &Path, m: &str, prio: &[&str], diff: &[&str]) -> StreamPattern {
        let prio: Vec<String> = prio.iter().map(|s| s.to_string()).collect();
        let diff = diff.iter().map(|s| s.to_string()).collect();
        StreamPattern::new(
            root.to_path_buf(),
            m,
            &prio,
            diff,
            &HashMap::new(),
            Duration::ZERO,
        )
        .expect("regex")
    }

    fn touch(root: &Path, names: &[&str]) {
        for n in names {
            let p = root.join(n);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, "x\n").expect("write");
        }
    }

    fn names(root: &Path, files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn descending_priority_orders_numbered_rotations_oldest_first() {
        let d = tempfile::tempdir().expect("tmp");
        touch(
            d.path(),
            &["app.log", "app.log.1", "app.log.10", "app.log.2", "other"],
        );
        let p = pattern(d.path(), r"app\.log(\.(?P<Seq>\d+))?", &["^Seq"], &[]);
        let r = p.scan();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let files = &r.streams[""];
        assert_eq!(
            names(d.path(), files),
            ["app.log.10", "app.log.2", "app.log.1", "app.log"]
        );
    }

    #[test]
    fn ascending_priority_with_month_names_and_tie_breaks() {
        let d = tempfile::tempdir().expect("tmp");
        touch(
            d.path(),
            &["2025/Feb/1.log", "2024/Dec/3.log", "2025/Jan/2.log"],
        );
        let p = pattern(
            d.path(),
            r"(?P<Year>\d+)/(?P<MonthName>\w+)/(?P<N>\d+)\.log",
            &["Year", "MonthName"],
            &["all"],
        );
        let r = p.scan();
        assert_eq!(
            names(d.path(), &r.streams["all"]),
            ["2024/Dec/3.log", "2025/Jan/2.log", "2025/Feb/1.log"]
        );
    }

    #[test]
    fn differentiator_splits_streams_and_names_them() {
        let d = tempfile::tempdir().expect("tmp");
        touch(
            d.path(),
            &["web/a.access.log", "web/b.access.log", "web/a.access.log.1"],
        );
        let p = pattern(
            d.path(),
            r"web/(?P<Site>\w+)\.access\.log(\.(?P<Seq>\d+))?",
            &["^Seq"],
            &["nginx-", "Site"],
        );
        let r = p.scan();
        let keys: Vec<_> = r.streams.keys().cloned().collect();
        assert_eq!(keys, ["nginx-a", "nginx-b"]);
        assert_eq!(
            names(d.path(), &r.streams["nginx-a"]),
            ["web/a.access.log.1", "web/a.access.log"]
        );
    }

    #[test]
    fn several_files_without_priority_are_reported() {
        let d = tempfile::tempdir().expect("tmp");
        touch(d.path(), &["a.log", "b.log"]);
        let p = pattern(d.path(), r"\w\.log", &[], &["x"]);
        let r = p.scan();
        assert!(r.streams.is_empty());
        assert!(r.errors[0].contains("no priority"), "{:?}", r.errors);
    }

    #[test]
    fn translation_maps_values_and_missing() {
        let d = tempfile::tempdir().expect("tmp");
        let mut tr = HashMap::new();
        tr.insert(
            "Level".to_string(),
            HashMap::from([("Old".to_string(), 1), ("NEW".to_string(), 2)]),
        );
        let p = StreamPattern::new(
            d.path().to_path_buf(),
            r"(?P<Level>\w+)\.log",
            &["Level".to_string()],
            vec![],
            &tr,
            Duration::ZERO,
        )
        .expect("regex");
        assert_eq!(p.score("Level", "old"), Ok(1));
        assert_eq!(p.score("Level", "New"), Ok(2));
        assert!(p.score("Level", "other").is_err());
        assert_eq!(p.score("Seq", ""), Ok(-1));
        assert_eq!(p.score("Seq", "42"), Ok(42));
        assert_eq!(p.score("DayName", "Tue"), Ok(1));
    }

    #[test]
    fn match_is_anchored_and_relative() {
        let d = tempfile::tempdir().expect("tmp");
        let p = pattern(d.path(), r"app\.log$", &[], &[]);
        assert!(p.classify(&d.path().join("app.log")).is_some());
        assert!(p.classify(&d.path().join("app.log.1")).is_none());
        assert!(p.classify(&d.path().join("xapp.log")).is_none());
    }
}
