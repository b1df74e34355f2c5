//! Pure parsers for the outputs of Bastille and the FreeBSD tools, each tested on the documented output of every
//! Bastille version range (reference/bastille.md §0, §2, §7).

pub mod ifconfig;
pub mod jls;
pub mod pfctl;
pub mod releases;
pub mod service;
pub mod sysctl;
pub mod version;
pub mod zfs;

/// A tool printed something a parser does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// What was wrong, with the offending text.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(reason: impl Into<String>) -> ParseError {
        ParseError {
            reason: reason.into(),
        }
    }
}
