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

/// The message for an unknown type: what was asked for and what exists in that category.
pub fn unknown_type_message(category: Category, name: &str) -> String {
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
