//! Named XPath captures from XML text, for `PayloadXmlDecoder`. Each expression is
//! evaluated by `xee-xpath` (XPath 3.1, which covers everything Heka's `xmlpath`
//! library accepted: every axis, the abbreviated forms, `[N]`, `[path]` and
//! `[path='literal']` predicates) as `string((expr)[1])`: the string value of the first
//! node it selects, or `""` when it selects nothing (Heka's rule).
//!
//! `xee-xpath` queries cannot move between threads, so each thread compiles a map's
//! expressions once, on first use, and keeps them (keyed by the map's id); the build
//! step compiles them once too, so a bad expression is a config error naming its key.
//!
//! A kit. May import the foundation only.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use xee_xpath::query::OptionQuery;
use xee_xpath::{Documents, Item, Queries, Query};

/// A compiled expression's result conversion.
type ToString = fn(&mut Documents, &Item) -> xee_xpath::error::Result<String>;
/// One compiled expression.
type Compiled = OptionQuery<String, ToString>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's compiled expressions, per map.
    static COMPILED: RefCell<HashMap<u64, Vec<Compiled>>> = RefCell::new(HashMap::new());
}

fn item_string(_: &mut Documents, item: &Item) -> xee_xpath::error::Result<String> {
    Ok(item.try_into_value::<String>()?)
}

/// An `xpath_map`: capture names and their expressions.
#[derive(Debug, Clone)]
pub struct XPathMap {
    id: u64,
    entries: Arc<Vec<(String, String)>>,
}

/// A map entry that does not compile: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct BadXPath {
    /// The capture name.
    pub name: String,
    /// The compiler's message.
    pub message: String,
}

fn wrap(expr: &str) -> String {
    format!("string(({expr})[1])")
}

fn compile_all(entries: &[(String, String)]) -> Result<Vec<Compiled>, Vec<BadXPath>> {
    let queries = Queries::default();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, expr) in entries {
        match queries.option(&wrap(expr), item_string as ToString) {
            Ok(q) => out.push(q),
            Err(e) => errors.push(BadXPath {
                name: name.clone(),
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl XPathMap {
    /// Checks that every expression compiles; all the bad ones are returned.
    pub fn new(map: &BTreeMap<String, String>) -> Result<XPathMap, Vec<BadXPath>> {
        let entries: Vec<(String, String)> =
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        compile_all(&entries)?;
        Ok(XPathMap {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            entries: Arc::new(entries),
        })
    }

    /// Parses `xml` and evaluates every expression: `(name, value)` in name order.
    pub fn eval(&self, xml: &str) -> Result<Vec<(String, String)>, String> {
        let mut documents = Documents::new();
        let uri = "urn:hekate:payload"
            .try_into()
            .map_err(|e| format!("document uri: {e:?}"))?;
        let doc = documents
            .add_string(uri, xml)
            .map_err(|e| format!("invalid XML: {e}"))?;
        COMPILED.with(|cell| {
            let mut cache = cell.borrow_mut();
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(self.id) {
                let compiled = compile_all(&self.entries).map_err(|e| {
                    e.iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                slot.insert(compiled);
            }
            let queries = cache.get(&self.id).ok_or("xpath cache")?;
            let mut out = Vec::with_capacity(queries.len());
            for ((name, _), q) in self.entries.iter().zip(queries) {
                let value = q
                    .execute(&mut documents, doc)
                    .map_err(|e| format!("xpath {name}: {e}"))?;
                out.push((name.clone(), value.unwrap_or_default()));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Result<XPathMap, Vec<BadXPath>> {
        XPathMap::new(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn hekas_documented_forms_select_the_first_node() {
        let m = map(&[
            ("Count", "/some/path/count"),
            ("Name", "/some/path/name"),
            ("Pid", "//pid"),
            ("Second", "/some/path/item[2]"),
            ("Pred", "/some/path[count='3']/name"),
            ("Attr", "//pid/@unit"),
            ("Up", "//count/../name"),
            ("Sibling", "//count/following-sibling::name"),
            ("Missing", "/some/none"),
        ])
        .expect("compiles");
        let got = m
            .eval("<some><path><count>3</count><name>x</name><item>a</item><item>b</item></path><pid unit='n'>42</pid></some>")
            .expect("evaluates");
        let got: HashMap<String, String> = got.into_iter().collect();
        for (k, v) in [
            ("Count", "3"),
            ("Name", "x"),
            ("Pid", "42"),
            ("Second", "b"),
            ("Pred", "x"),
            ("Attr", "n"),
            ("Up", "x"),
            ("Sibling", "x"),
            ("Missing", ""),
        ] {
            assert_eq!(got.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn bad_expressions_and_bad_xml_are_reported() {
        let e = map(&[("Ok", "/a"), ("Bad", "/a[")]).expect_err("bad xpath");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "Bad");
        let m = map(&[("A", "/a")]).expect("compiles");
        assert!(m.eval("<a>unclosed").is_err());
        // Another thread compiles its own copy.
        let m2 = m.clone();
        let v = std::thread::spawn(move || m2.eval("<a>t</a>").expect("ok"))
            .join()
            .expect("thread");
        assert_eq!(v, vec![("A".to_string(), "t".to_string())]);
    }
}
