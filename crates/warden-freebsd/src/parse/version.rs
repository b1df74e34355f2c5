//! `bastille -v`, and the version ranges whose output differs (reference/bastille.md §0).

/// The Bastille generations whose output formats differ (reference/bastille.md §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum VersionRange {
    /// 0.x up to 1.3.x: status lines on stdout, `NAME_console.log`.
    UpTo13,
    /// 1.4.0 to 1.4.4: info on stderr, data on stdout, `NAME_console.log`.
    V14,
    /// master after 1.4.4 (or any newer release): `-q/-j` global flags, ` (pkgbase)` release suffix,
    /// `NAME/console.log`.
    Master,
}

/// A parsed `bastille -v`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BastilleVersion {
    /// The version string as printed (`1.4.4`, `1.3.2.251225`, `master-040f8061`).
    pub raw: String,
    /// Which output generation it belongs to.
    pub range: VersionRange,
}

impl BastilleVersion {
    /// Where this Bastille writes a jail's console log (reference/bastille.md §1.3 step 2).
    pub fn log_style(&self) -> warden_core::render::jail_conf::LogStyle {
        match self.range {
            VersionRange::Master => warden_core::render::jail_conf::LogStyle::PerJail,
            _ => warden_core::render::jail_conf::LogStyle::Flat,
        }
    }
}

/// Parses `bastille -v`. Releases print dotted numbers (`1.0.20250714`, `1.4.0.260219`); `make install` from git
/// stamps `branch-shorthash` (§5, `Makefile`), which is read as master. Returns `None` when nothing looks like a
/// version (the caller then treats Bastille as unusable and says so).
pub fn parse(stdout: &str, stderr: &str) -> Option<BastilleVersion> {
    // ≤1.3 prints on stdout; be tolerant of a build that prints it on stderr instead.
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    let token = line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()))?;
    let token = token
        .strip_prefix('v')
        .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(token);
    Some(BastilleVersion {
        raw: token.to_string(),
        range: classify(token)?,
    })
}

fn classify(token: &str) -> Option<VersionRange> {
    if !token.starts_with(|c: char| c.is_ascii_digit()) {
        // A git stamp `branch-shorthash` such as `master-040f8061`: anything built from a branch is master-like.
        let (_, hash) = token.rsplit_once('-')?;
        return (hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then_some(VersionRange::Master);
    }
    let numeric: String = token
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    // Snapshot releases append a date as a third or fourth part (`1.0.20250714`): a patch above 99 is a date.
    let patch = parts.next().flatten().filter(|p| *p < 100).unwrap_or(0);
    Some(match (major, minor, patch) {
        (0, _, _) | (1, 0..=3, _) => VersionRange::UpTo13,
        (1, 4, 0..=4) => VersionRange::V14,
        _ => VersionRange::Master,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Option<VersionRange> {
        parse(s, "").map(|v| v.range)
    }

    #[test]
    fn tags_of_reference_section_0() {
        // The tags compared in reference/bastille.md's header and §0.
        assert_eq!(range("0.14.20230705\n"), Some(VersionRange::UpTo13));
        assert_eq!(range("1.0.20250714\n"), Some(VersionRange::UpTo13));
        assert_eq!(range("1.1.2.251119\n"), Some(VersionRange::UpTo13));
        assert_eq!(range("1.2.2\n"), Some(VersionRange::UpTo13));
        assert_eq!(range("1.3.2.251225\n"), Some(VersionRange::UpTo13));
        assert_eq!(range("1.4.0.260219\n"), Some(VersionRange::V14));
        assert_eq!(range("1.4.3\n"), Some(VersionRange::V14));
        assert_eq!(range("1.4.4\n"), Some(VersionRange::V14));
        assert_eq!(range("1.5.0\n"), Some(VersionRange::Master));
        assert_eq!(range("master-040f8061\n"), Some(VersionRange::Master));
    }

    #[test]
    fn stream_and_noise_tolerated() {
        assert_eq!(
            parse("", "1.4.4\n").map(|v| v.raw),
            Some("1.4.4".to_string())
        );
        assert_eq!(
            parse("\n  v1.4.2\n", "").map(|v| v.range),
            Some(VersionRange::V14)
        );
        assert_eq!(parse("", ""), None);
        assert_eq!(parse("usage: bastille\n", ""), None);
        assert_eq!(parse("[ERROR]: x\n", ""), None);
        assert_eq!(parse("Use a non-default config\n", ""), None);
    }

    #[test]
    fn log_style_follows_range() {
        use warden_core::render::jail_conf::LogStyle;
        assert_eq!(parse("1.4.4", "").unwrap().log_style(), LogStyle::Flat);
        assert_eq!(
            parse("master-040f8061", "").unwrap().log_style(),
            LogStyle::PerJail
        );
    }
}
