//! TEMPORARY minimal matcher used only until the matcher branch merges (TRUE, FALSE,
//! `Type == '...'`). Replaced wholesale by the real implementation.

use crate::message::Message;

/// A compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    src: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    All,
    Nothing,
    Type(String),
}

/// A parse error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("syntax error: last token: {last_token} pos: {pos}")]
pub struct MatcherError {
    /// Position.
    pub pos: usize,
    /// Last token.
    pub last_token: String,
}

impl Matcher {
    /// Parses.
    pub fn parse(src: &str) -> Result<Matcher, MatcherError> {
        let t = src.trim();
        let kind = if t == "TRUE" {
            Kind::All
        } else if t == "FALSE" {
            Kind::Nothing
        } else if let Some(rest) = t.strip_prefix("Type == ") {
            Kind::Type(rest.trim_matches(|c| c == '\'' || c == '"').to_string())
        } else {
            return Err(MatcherError {
                pos: 0,
                last_token: t.to_string(),
            });
        };
        Ok(Matcher {
            src: src.to_string(),
            kind,
        })
    }

    /// Evaluates.
    pub fn matches(&self, msg: &Message) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Nothing => false,
            Kind::Type(t) => &msg.msg_type == t,
        }
    }

    /// Source text.
    pub fn source(&self) -> &str {
        &self.src
    }
}
