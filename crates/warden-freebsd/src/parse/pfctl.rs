//! `pfctl -si` / `pfctl -sn` (reference/bastille.md §7.5).

/// Whether `pfctl -si` reports `Status: Enabled` (`^Status: (Enabled|Disabled)`, from `print_status`).
pub fn enabled(stdout: &str) -> bool {
    stdout.lines().any(|l| l.starts_with("Status: Enabled"))
}

/// The NAT rules of `pfctl -sn`, without the ALTQ notices some kernels print (§7.5).
pub fn nat_rules(stdout: &str) -> String {
    let mut out = String::new();
    for line in stdout.lines().filter(|l| !l.contains("ALTQ")) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let on = "Status: Enabled for 0 days 01:02:03           Debug: Urgent\n\nState Table                          Total             Rate\n";
        assert!(enabled(on));
        assert!(!enabled(
            "Status: Disabled                             Debug: Urgent\n"
        ));
        assert!(!enabled(""));
    }

    #[test]
    fn nat_without_altq_noise() {
        let out = "No ALTQ support in kernel\nALTQ related functions disabled\nnat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0:0) round-robin\nrdr-anchor \"rdr/*\" all\n";
        assert_eq!(nat_rules(out), "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0:0) round-robin\nrdr-anchor \"rdr/*\" all\n");
    }
}
