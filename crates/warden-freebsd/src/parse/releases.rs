//! `bastille list releases` (reference/bastille.md §2.1).

use std::collections::BTreeSet;

use super::version::VersionRange;

/// Parses `bastille list releases`: one release per line on stdout. Master (after 1.4.4) appends ` (pkgbase)`,
/// which is stripped; `-p` adds a patch level (`14.3-RELEASE-p2`), which is cut back to the release name.
/// Up to 1.3.x status lines also go to stdout (§0), so only lines shaped like a release name are kept.
pub fn parse(stdout: &str, range: VersionRange) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in stdout.lines() {
        let mut name = line.trim();
        // Only master prints the suffix, but stripping it always is harmless and keeps an odd build readable.
        if let Some(stripped) = name.strip_suffix("(pkgbase)") {
            name = stripped.trim_end();
        }
        if range == VersionRange::UpTo13 && (name.starts_with('[') || name.ends_with(':')) {
            continue;
        }
        if let Some(release) = release_name(name) {
            out.insert(release);
        }
    }
    out
}

/// `15.0-RELEASE`, `14.3-RELEASE-p2` → `14.3-RELEASE`, `15.0-STABLE`; anything else → `None`.
fn release_name(word: &str) -> Option<String> {
    if word.is_empty() || word.contains(char::is_whitespace) {
        return None;
    }
    let (version, rest) = word.split_once('-')?;
    let (major, minor) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    let kind = rest.split('-').next().unwrap_or("").to_ascii_uppercase();
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(format!("{version}-{kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn master_pkgbase_suffix() {
        // §2.1: master (bf84e80c) suffixes pkgbase releases.
        assert_eq!(
            parse(
                "14.3-RELEASE\n15.0-RELEASE (pkgbase)\n",
                VersionRange::Master
            ),
            set(&["14.3-RELEASE", "15.0-RELEASE"])
        );
    }

    #[test]
    fn v14_plain_and_patch_levels() {
        assert_eq!(
            parse("15.0-RELEASE\n", VersionRange::V14),
            set(&["15.0-RELEASE"])
        );
        assert_eq!(
            parse("14.3-RELEASE-p2\n", VersionRange::V14),
            set(&["14.3-RELEASE"])
        );
    }

    #[test]
    fn up_to_13_status_lines_on_stdout() {
        // §0: ≤1.3.x prints info lines on stdout.
        let out = "[WARNING]: something\n[bastille]:\n15.0-RELEASE\n";
        assert_eq!(parse(out, VersionRange::UpTo13), set(&["15.0-RELEASE"]));
        assert!(parse("", VersionRange::UpTo13).is_empty());
        assert!(parse("Bootstrap appears complete!\n", VersionRange::UpTo13).is_empty());
    }
}
