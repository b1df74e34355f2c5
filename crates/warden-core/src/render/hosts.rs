//! The managed block of `/etc/hosts`, between begin/end markers, and splicing it into an existing file.

use std::net::Ipv4Addr;

use crate::layout::Layout;

/// First line of the managed block.
pub const BEGIN: &str = "# BEGIN warden managed block: `warden setup --step hosts` rewrites it; edit warden.toml instead";
/// Last line of the managed block.
pub const END: &str = "# END warden managed block";

/// Renders the managed block: one line per address, its names after it.
pub fn render(layout: &Layout) -> String {
    let mut by_addr: Vec<(Ipv4Addr, Vec<&str>)> = Vec::new();
    for r in &layout.records {
        match by_addr.iter_mut().find(|(a, _)| *a == r.addr) {
            Some((_, names)) => names.push(&r.name),
            None => by_addr.push((r.addr, vec![&r.name])),
        }
    }
    by_addr.sort_by_key(|(a, _)| *a);
    let mut out = format!("{BEGIN}\n");
    for (addr, names) in by_addr {
        out.push_str(&format!("{addr}\t{}\n", names.join(" ")));
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Replaces the managed block in `existing` with `block`, or appends it; every other line is kept as it was.
pub fn splice(existing: &str, block: &str) -> String {
    let lines: Vec<&str> = existing.lines().collect();
    let begin = lines
        .iter()
        .position(|l| l.trim_end() == BEGIN || l.starts_with("# BEGIN warden managed block"));
    let end = begin.and_then(|b| {
        lines[b..]
            .iter()
            .position(|l| l.trim_end() == END)
            .map(|e| b + e)
    });
    let mut out = String::new();
    match (begin, end) {
        (Some(b), Some(e)) => {
            for l in &lines[..b] {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(block);
            for l in &lines[e + 1..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        _ => {
            // No (complete) block yet: keep the file, drop a dangling BEGIN so the block is never doubled.
            for (i, l) in lines.iter().enumerate() {
                if Some(i) != begin {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(block);
        }
    }
    out
}

/// The managed block found in `existing`, if any.
pub fn extract(existing: &str) -> Option<String> {
    let start = existing.find(BEGIN)?;
    let end_rel = existing[start..].find(END)?;
    Some(format!(
        "{}\n",
        &existing[start..start + end_rel + END.len()]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BLOCK: &str = "# BEGIN warden managed block: `warden setup --step hosts` rewrites it; edit warden.toml instead\n10.0.1.1\tai.home.arpa\n# END warden managed block\n";

    #[test]
    fn splice_appends_then_replaces() {
        let base = "127.0.0.1 localhost\n";
        let once = splice(base, BLOCK);
        assert!(once.starts_with(base));
        assert_eq!(splice(&once, BLOCK), once);
        let other = BLOCK.replace("10.0.1.1", "10.0.2.1");
        let replaced = splice(&once, &other);
        assert!(replaced.contains("10.0.2.1") && !replaced.contains("10.0.1.1"));
        assert_eq!(extract(&replaced).unwrap(), other);
    }

    proptest! {
        #[test]
        fn splice_is_idempotent_and_keeps_other_lines(lines in proptest::collection::vec("[a-z0-9 .#\t]{0,30}", 0..10)) {
            let existing: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let once = splice(&existing, BLOCK);
            prop_assert_eq!(splice(&once, BLOCK), once.clone());
            prop_assert_eq!(extract(&once).unwrap(), BLOCK);
            for l in &lines {
                prop_assert!(once.contains(l.as_str()));
            }
        }
    }
}
