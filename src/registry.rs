//! Lookup over the static registration slices of every plugin kind.
//!
//! Called by `pipeline::build` to turn a section's `type` into a build function, and by
//! `hekate plugins` to list what exists. A failed lookup names the valid types.

use crate::config::Category;
use crate::plugin::{Reference, Registration};
use crate::{decoders, encoders, filters, inputs, outputs, splitters};

pub use decoders::DECODERS;
pub use encoders::ENCODERS;
pub use filters::FILTERS;
pub use inputs::INPUTS;
pub use outputs::OUTPUTS;
pub use splitters::SPLITTERS;

/// The name and description of one registered type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    /// Category of the type.
    pub category: Category,
    /// Type name, e.g. `UdpInput`.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
}

/// Finds `name` in a registration slice.
pub fn find<B>(slice: &'static [Registration<B>], name: &str) -> Option<&'static Registration<B>> {
    slice.iter().find(|r| r.name == name)
}

/// Heka 0.10 types that wrap Go-only integrations (Elasticsearch, Kafka, Docker, GeoIP,
/// IRC), with the service each needs; hekate does not have them yet.
const GO_ONLY: &[(&str, &str)] = &[
    ("ElasticSearchOutput", "Elasticsearch"),
    ("ESJsonEncoder", "Elasticsearch"),
    ("ESLogstashV0Encoder", "Elasticsearch"),
    ("KafkaInput", "Kafka"),
    ("KafkaOutput", "Kafka"),
    ("DockerLogInput", "Docker"),
    ("DockerEventInput", "Docker"),
    ("DockerStatsInput", "Docker"),
    ("GeoIpDecoder", "GeoIP"),
    ("IrcOutput", "IRC"),
];

/// The message for an unknown type: what was asked for and what exists in that category,
/// or, for one of Heka's Go-only integrations, that hekate does not support it yet.
pub fn unknown_type_message(category: Category, name: &str) -> String {
    if let Some((_, service)) = GO_ONLY.iter().find(|(n, _)| *n == name) {
        return format!(
            "{name} is Heka's {service} integration, which hekate does not support yet \
             (Heka's Go-only plugins: Elasticsearch, Kafka, Docker, GeoIP, IRC)"
        );
    }
    let valid: Vec<&str> = all()
        .into_iter()
        .filter(|t| t.category == category)
        .map(|t| t.name)
        .collect();
    format!(
        "unknown {} type {name:?}; available: {}",
        category.as_str().to_lowercase(),
        valid.join(", ")
    )
}

/// The references (keys naming other sections) a type declares; none for unknown types.
pub fn references(category: Category, name: &str) -> &'static [Reference] {
    let found = match category {
        Category::Input => find(INPUTS, name).map(|r| r.references),
        Category::Splitter => find(SPLITTERS, name).map(|r| r.references),
        Category::Decoder => find(DECODERS, name).map(|r| r.references),
        Category::Filter => find(FILTERS, name).map(|r| r.references),
        Category::Encoder => find(ENCODERS, name).map(|r| r.references),
        Category::Output => find(OUTPUTS, name).map(|r| r.references),
    };
    found.unwrap_or(&[])
}

/// Every registered type, by category then name.
pub fn all() -> Vec<TypeInfo> {
    fn rows<B>(
        category: Category,
        slice: &'static [Registration<B>],
    ) -> impl Iterator<Item = TypeInfo> {
        slice.iter().map(move |r| TypeInfo {
            category,
            name: r.name,
            description: r.description,
        })
    }
    let mut v: Vec<TypeInfo> = rows(Category::Input, inputs::INPUTS)
        .chain(rows(Category::Splitter, splitters::SPLITTERS))
        .chain(rows(Category::Decoder, decoders::DECODERS))
        .chain(rows(Category::Filter, filters::FILTERS))
        .chain(rows(Category::Encoder, encoders::ENCODERS))
        .chain(rows(Category::Output, outputs::OUTPUTS))
        .collect();
    v.sort_by(|a, b| (a.category, a.name).cmp(&(b.category, b.name)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_only_types_are_named_as_such() {
        let m = unknown_type_message(Category::Output, "ElasticSearchOutput");
        assert!(
            m.contains("Elasticsearch integration") && m.contains("not support yet"),
            "{m}"
        );
        assert!(!m.contains("unknown"), "{m}");
        let m = unknown_type_message(Category::Output, "NoSuchOutput");
        assert!(
            m.starts_with("unknown output type") && m.contains("FileOutput"),
            "{m}"
        );
        for (name, _) in GO_ONLY {
            assert!(all().iter().all(|t| t.name != *name), "{name} exists now");
        }
    }

    #[test]
    fn names_are_unique_and_carry_their_category_suffix() {
        let all = all();
        for (i, t) in all.iter().enumerate() {
            assert_eq!(
                Category::from_type_name(t.name),
                Some(t.category),
                "{}",
                t.name
            );
            assert!(!t.description.is_empty(), "{} has no description", t.name);
            assert!(
                all[i + 1..].iter().all(|o| o.name != t.name),
                "duplicate {}",
                t.name
            );
        }
    }
}
