//! Finds metrics in whisper trees the way graphite-web's standard finder does: the query
//! is split on `.`, each part is brace-expanded (`{a,b}`) and matched against directory
//! entries with `fnmatch` rules (`*`, `?`, `[abc]`, `[!abc]`); leaves are `.wsp` files.
//!
//! Queries are metric names, never file paths: a part holding `/`, `\`, NUL or equal to
//! `..` is refused, so no query reaches outside the configured roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::GraphiteError;

/// A metric or a branch found by a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Full metric path, e.g. `stats.counters.deploys.count`.
    pub path: String,
    /// The last part of the path.
    pub name: String,
    /// The whisper file, for leaves; `None` for branches.
    pub file: Option<PathBuf>,
}

impl Node {
    /// True for a metric (a whisper file).
    pub fn is_leaf(&self) -> bool {
        self.file.is_some()
    }
}

/// The whisper trees metrics are read from; the first root holding a metric wins.
#[derive(Debug, Clone, Default)]
pub struct Store {
    roots: Vec<PathBuf>,
}

impl Store {
    /// A store over `roots` (each the `base_path` of a whisper tree).
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Store { roots }
    }

    /// The roots searched.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Every node matching `query`, sorted by path.
    pub fn find(&self, query: &str) -> Result<Vec<Node>, GraphiteError> {
        check_query(query)?;
        let parts: Vec<&str> = query.split('.').collect();
        let mut found: BTreeMap<String, Node> = BTreeMap::new();
        for root in &self.roots {
            let mut out = Vec::new();
            walk(root, &parts, &mut Vec::new(), &mut out);
            for node in out {
                found.entry(node.path.clone()).or_insert(node);
            }
        }
        Ok(found.into_values().collect())
    }

    /// Leaves only (what `/render` fetches).
    pub fn find_leaves(&self, query: &str) -> Result<Vec<Node>, GraphiteError> {
        Ok(self
            .find(query)?
            .into_iter()
            .filter(Node::is_leaf)
            .collect())
    }
}

/// Refuses queries that could name a file outside the roots.
pub fn check_query(query: &str) -> Result<(), GraphiteError> {
    let refuse = |why: &str| {
        Err(GraphiteError::PathRefused {
            query: query.escape_default().to_string(),
            why: why.to_string(),
        })
    };
    if query.is_empty() {
        return refuse("empty query");
    }
    if query.contains(['/', '\\', '\0']) {
        return refuse("metric names may not hold '/', '\\' or NUL");
    }
    if query.split('.').any(|p| p.is_empty()) {
        return refuse("empty path part ('..' or a leading or trailing '.')");
    }
    Ok(())
}

fn walk(dir: &Path, parts: &[&str], prefix: &mut Vec<String>, out: &mut Vec<Node>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => dirs.push(name),
            Ok(t) if t.is_file() => files.push(name),
            // Follow symlinks as graphite-web does.
            Ok(_) => match std::fs::metadata(e.path()) {
                Ok(m) if m.is_dir() => dirs.push(name),
                Ok(m) if m.is_file() => files.push(name),
                _ => {}
            },
            Err(_) => {}
        }
    }
    let patterns = expand_braces(first);
    let matching = |names: &[String], suffix: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| patterns.iter().any(|p| fnmatch(&format!("{p}{suffix}"), n)))
            .cloned()
            .collect()
    };
    for d in matching(&dirs, "") {
        prefix.push(d.clone());
        if rest.is_empty() {
            out.push(Node {
                path: prefix.join("."),
                name: d.clone(),
                file: None,
            });
        } else {
            walk(&dir.join(&d), rest, prefix, out);
        }
        prefix.pop();
    }
    if rest.is_empty() {
        for f in matching(&files, ".wsp") {
            let name = f.trim_end_matches(".wsp").to_string();
            if name.contains('.') {
                continue;
            }
            prefix.push(name.clone());
            out.push(Node {
                path: prefix.join("."),
                name,
                file: Some(dir.join(&f)),
            });
            prefix.pop();
        }
    }
}

/// Expands the first innermost `{a,b}` recursively, as graphite-web's `expand_braces`.
pub fn expand_braces(s: &str) -> Vec<String> {
    let Some(close) = s.find('}') else {
        return vec![s.to_string()];
    };
    let Some(open) = s[..close].rfind('{') else {
        return vec![s.to_string()];
    };
    let mut out: Vec<String> = s[open + 1..close]
        .split(',')
        .flat_map(|alt| expand_braces(&format!("{}{alt}{}", &s[..open], &s[close + 1..])))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`; everything else literal.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_at(&p, &n)
}

fn matches_at(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class(&p[pi..], n[ni]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unclosed '[' is a literal.
                None => (n[ni] == '[').then_some(1),
            },
            Some(c) => (*c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class at the start of `p` (`[...]`): whether it matched and
/// the class's length, or `None` if the class is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < p.len() {
        if p[i] == ']' && i > start {
            return Some((hit != negate, i + 1));
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_rules() {
        assert!(fnmatch("c*", "count.wsp"));
        assert!(fnmatch("h?st", "host"));
        assert!(fnmatch("web[0-9]", "web7"));
        assert!(!fnmatch("web[!0-9]", "web7"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("a[", "a["));
        assert!(!fnmatch("a*b", "acd"));
        assert!(fnmatch("*", ""));
    }

    #[test]
    fn braces_expand_innermost_first() {
        assert_eq!(expand_braces("a{b,c}d"), vec!["abd", "acd"]);
        assert_eq!(expand_braces("{x,y{1,2}}"), vec!["x", "y1", "y2"]);
    }

    #[test]
    fn escapes_are_refused() {
        for q in ["..", "a..b", "a/../b", "/etc/passwd", "a\0b", ".a", "a."] {
            assert!(check_query(q).is_err(), "{q:?}");
        }
    }

    #[test]
    fn finds_leaves_and_branches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/c.wsp"), b"").unwrap();
        std::fs::write(dir.path().join("a/x.wsp"), b"").unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), b"").unwrap();
        let s = Store::new(vec![dir.path().to_path_buf()]);
        let got: Vec<(String, bool)> = s
            .find("a.*")
            .unwrap()
            .into_iter()
            .map(|n| (n.path.clone(), n.is_leaf()))
            .collect();
        assert_eq!(got, vec![("a.b".into(), false), ("a.x".into(), true)]);
        assert_eq!(s.find_leaves("a.{b,z}.c").unwrap().len(), 1);
    }
}
