//! `sysctl -n OID` (reference/bastille.md §7.4).

/// Whether a boolean sysctl printed with `-n` is on (`1`). Also accepts the `name: value` form without `-n`.
pub fn is_on(stdout: &str) -> bool {
    let value = stdout.trim();
    let value = value.rsplit_once(": ").map(|(_, v)| v).unwrap_or(value);
    value.trim() == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding() {
        assert!(is_on("1\n"));
        assert!(!is_on("0\n"));
        assert!(is_on("net.inet.ip.forwarding: 1\n"));
        assert!(!is_on(""));
    }
}
