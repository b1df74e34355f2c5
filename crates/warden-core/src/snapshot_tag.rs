//! Snapshot tags, shared by both backends' `warden snapshot`: the rule a tag follows (ZFS's snapshot-name
//! characters, which also make a safe directory name on Linux), the default tag taken from the clock, and the
//! UTC time text the CLI prints (snapshots, releases).

/// Checks a snapshot tag: letters, digits, `-`, `_`, `.`, `:`, 1–200 characters, not starting with `-` or `.`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 200
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        && !tag.starts_with('-')
        && !tag.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err("use letters, digits, '-', '_', '.', ':' (not starting with '-' or '.')".into())
    }
}

/// The default tag `warden-YYYYmmdd-HHMMSS` (UTC) for `unix_secs`.
pub fn default_tag(unix_secs: u64) -> String {
    let (date, time) = civil(unix_secs);
    format!("warden-{}-{}", date.replace('-', ""), time.replace(':', ""))
}

/// Seconds since the epoch as `YYYY-mm-dd HH:MM:SS` (UTC), as `warden snapshots` prints a snapshot's time.
pub fn utc_text(unix_secs: u64) -> String {
    let (date, time) = civil(unix_secs);
    format!("{date} {time}")
}

/// (`YYYY-mm-dd`, `HH:MM:SS`) in UTC: the one calendar conversion (snapshot tags, cms release ids).
pub(crate) fn civil(unix_secs: u64) -> (String, String) {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tag_format() {
        assert_eq!(default_tag(0), "warden-19700101-000000");
        // 2026-11-23 17:34:05 UTC
        assert_eq!(default_tag(1_795_455_245), "warden-20261123-173405");
        assert_eq!(default_tag(951_782_400), "warden-20000229-000000");
        assert_eq!(utc_text(1_795_455_245), "2026-11-23 17:34:05");
        assert_eq!(utc_text(0), "1970-01-01 00:00:00");
        assert_eq!(utc_text(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn tags_are_checked() {
        assert!(check_tag("warden-20261123-173405").is_ok() && check_tag("before").is_ok());
        for bad in ["a b", "", "-x", ".hidden", "..", "a@b", "a/b"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }
}
