//! Errors of the pure core: every config problem names the key, the value, the rule and an accepted example.

use std::fmt;

/// Where a config value came from; shown by `warden config show` and in error messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file, with its path.
    File(String),
    /// An environment variable, with its name.
    Env(String),
    /// A command-line flag, with its name.
    Flag(String),
    /// Computed from other keys (nobody set it), with the rule.
    Derived(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(path) => write!(f, "file {path}"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(name) => write!(f, "flag {name}"),
            Source::Derived(rule) => write!(f, "derived: {rule}"),
        }
    }
}

/// One rejected config value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} = {value:?} (from {origin}): {rule}\n  fix: {fix}")]
pub struct Invalid {
    /// The config key, e.g. `network.subnet`.
    pub key: String,
    /// The rejected value as given.
    pub value: String,
    /// Where it came from.
    pub origin: Source,
    /// The rule it breaks.
    pub rule: String,
    /// What to do instead, with an accepted example.
    pub fix: String,
}

/// Everything that can go wrong turning config sources into a validated layout.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("failed to read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("failed to parse config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key the config does not know.
    #[error("unknown key {key:?} in {origin}\n  fix: remove it; known keys are listed by `warden init --stdout`{hint}")]
    UnknownKey {
        /// The key path.
        key: String,
        /// Where it was found.
        origin: Source,
        /// A "did you mean" hint, possibly empty.
        hint: String,
    },
    /// One or more values break a rule.
    #[error("{}", render_invalid(.0))]
    Invalid(Vec<Invalid>),
}

fn render_invalid(all: &[Invalid]) -> String {
    let mut out = String::new();
    for (i, problem) in all.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&problem.to_string());
    }
    out
}
