//! `zfs list -Hp …` (reference/bastille.md §7.2).

use super::ParseError;

/// One ZFS snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Full name, `POOL/…/jails/NAME@TAG`.
    pub name: String,
    /// The dataset part.
    pub dataset: String,
    /// The tag part.
    pub tag: String,
    /// Bytes used.
    pub used: u64,
    /// Creation time, seconds since the epoch.
    pub creation: u64,
}

/// Parses `zfs list -Hp -t snapshot -o name,used,creation`: one snapshot per line, single TABs, exact numbers.
pub fn snapshots(stdout: &str) -> Result<Vec<Snapshot>, ParseError> {
    let mut out = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, used, creation] = fields[..] else {
            return Err(ParseError::new(format!(
                "expected name<TAB>used<TAB>creation, got {line:?}"
            )));
        };
        let Some((dataset, tag)) = name.split_once('@') else {
            return Err(ParseError::new(format!("not a snapshot name: {name:?}")));
        };
        let number = |what: &str, v: &str| {
            v.parse::<u64>().map_err(|_| {
                ParseError::new(format!(
                    "{what} {v:?} of {name} is not a byte/second count (use -p)"
                ))
            })
        };
        out.push(Snapshot {
            name: name.to_string(),
            dataset: dataset.to_string(),
            tag: tag.to_string(),
            used: number("used", used)?,
            creation: number("creation", creation)?,
        });
    }
    Ok(out)
}

/// Parses `zfs list -H -o name`: one dataset or snapshot name per line.
pub fn names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_list() {
        let out = "zroot/clawdie-runtime/jails/web@warden-20261101-120000\t0\t1793534400\n\
                   zroot/clawdie-runtime/jails/web/root@warden-20261101-120000\t1234567\t1793534400\n";
        let snaps = snapshots(out).unwrap();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[1].dataset, "zroot/clawdie-runtime/jails/web/root");
        assert_eq!(snaps[1].tag, "warden-20261101-120000");
        assert_eq!(snaps[1].used, 1234567);
        assert!(snapshots("").unwrap().is_empty());
    }

    #[test]
    fn human_sizes_and_bad_lines_are_errors() {
        // §7.2: without -p, `used` is human-readable.
        assert!(snapshots("zroot/a@t\t1.23M\t1793534400\n").is_err());
        assert!(snapshots("zroot/a\t0\t1\n").is_err());
        assert!(snapshots("zroot/a@t 0 1\n").is_err());
    }

    #[test]
    fn name_list() {
        assert_eq!(
            names("zroot/a\nzroot/a/b\t12\n\n"),
            vec!["zroot/a".to_string(), "zroot/a/b".into()]
        );
    }
}
