//! `ifconfig [-f inet:cidr] IFACE` (reference/bastille.md §7.3).

/// The IPv4 addresses of an interface in CIDR form. Reads both `inet A/N` (`-f inet:cidr`) and the default
/// `inet A netmask 0xffffff00` form, so a host whose ifconfig ignores `-f` is still read correctly.
pub fn inet_addrs(stdout: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        // Continuation lines start with a TAB (§7.3); accept any indentation.
        let mut words = line.split_whitespace();
        if words.next() != Some("inet") || !line.starts_with(char::is_whitespace) {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        if addr.contains('/') {
            out.push(addr.to_string());
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let mask = rest.windows(2).find(|w| w[0] == "netmask").map(|w| w[1]);
        match mask.and_then(prefix_len) {
            Some(len) => out.push(format!("{addr}/{len}")),
            None => out.push(format!("{addr}/32")),
        }
    }
    out
}

/// Bridge members (`member: e0a_web flags=…`).
pub fn members(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("member: "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The name `ifconfig epair create` printed (`epair0a`).
pub fn created_name(stdout: &str) -> Option<String> {
    let name = stdout.split_whitespace().next()?;
    (name.len() <= 15 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_string())
}

/// A netmask as hex (`0xffffff00`) or dotted (`255.255.255.0`) → prefix length, if contiguous.
fn prefix_len(mask: &str) -> Option<u32> {
    let bits = if let Some(hex) = mask.strip_prefix("0x") {
        u32::from_str_radix(hex, 16).ok()?
    } else {
        u32::from(mask.parse::<std::net::Ipv4Addr>().ok()?)
    };
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reference/bastille.md §7.3, the bridge with an address (default format).
    const BRIDGE_DEFAULT: &str =
        "warden0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500
\toptions=0
\tether 58:9c:fc:10:d5:1a
\tinet 10.77.0.1 netmask 0xffffff00 broadcast 10.77.0.255
\tid 00:00:00:00:00:00 priority 32768 hellotime 2 fwddelay 15
\tmaxage 20 holdcnt 6 proto rstp maxaddr 2000 timeout 1200
\troot id 00:00:00:00:00:00 priority 32768 ifcost 0 port 0
\tmember: e0a_web flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>
\t        ifmaxaddr 0 port 5 priority 128 path cost 2000
\tgroups: bridge
\tnd6 options=9<PERFORMNUD,IFDISABLED>
";

    #[test]
    fn cidr_format() {
        // §7.3: `ifconfig -f inet:cidr warden0` prints `inet 10.77.0.1/24 broadcast 10.77.0.255`.
        let out = "warden0: flags=1008843<UP> metric 0 mtu 1500\n\tinet 10.77.0.1/24 broadcast 10.77.0.255\n\tinet 10.77.0.9/32\n";
        assert_eq!(
            inet_addrs(out),
            vec!["10.77.0.1/24".to_string(), "10.77.0.9/32".into()]
        );
    }

    #[test]
    fn default_and_dotted_formats() {
        assert_eq!(inet_addrs(BRIDGE_DEFAULT), vec!["10.77.0.1/24".to_string()]);
        let dotted = "x: flags=0\n\tinet 10.0.1.1 netmask 255.255.0.0 broadcast 10.0.255.255\n";
        assert_eq!(inet_addrs(dotted), vec!["10.0.1.1/16".to_string()]);
        assert!(
            inet_addrs("inet 1.2.3.4/24\n").is_empty(),
            "the header line is not an address line"
        );
        assert!(inet_addrs("").is_empty());
    }

    #[test]
    fn bridge_members() {
        assert_eq!(members(BRIDGE_DEFAULT), vec!["e0a_web".to_string()]);
        // Newer kernels append ` untagged N` (§7.3).
        assert_eq!(
            members("\tmember: e0a_db flags=143<LEARNING> untagged 1\n"),
            vec!["e0a_db".to_string()]
        );
    }

    #[test]
    fn epair_create() {
        assert_eq!(created_name("epair0a\n"), Some("epair0a".into()));
        assert_eq!(created_name(""), None);
        assert_eq!(
            created_name("ifconfig: SIOCIFCREATE2: Invalid argument\n"),
            None
        );
    }
}
