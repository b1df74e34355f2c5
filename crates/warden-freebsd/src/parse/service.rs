//! `service NAME onestatus` (reference/bastille.md §7.6).

/// Whether `service NAME onestatus` says the service runs: exit 0 **and** a positive line, because older
/// rc.subr print `Cannot 'status' …` with exit 0 for `status` (§7.6). rc.subr says `is running as pid`; the
/// PostgreSQL port's script hands `status` to pg_ctl, which says `pg_ctl: server is running (PID: N)`
/// (unverified on FreeBSD; fakebsd simulates it so).
pub fn running(status: i32, stdout: &str) -> bool {
    status == 0
        && stdout.lines().any(|l| {
            l.contains(" is running as pid ") || l.starts_with("pg_ctl: server is running")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc_subr_outputs() {
        assert!(running(0, "dnsmasq is running as pid 1234.\n"));
        assert!(!running(1, "dnsmasq is not running.\n"));
        assert!(!running(0, "Cannot 'status' dnsmasq. Set dnsmasq_enable to YES in /etc/rc.conf or use 'onestatus' instead of 'status'.\n"));
        assert!(!running(1, ""));
        assert!(running(0, "pg_ctl: server is running (PID: 77)\n/usr/local/bin/postgres \"-D\" \"/var/db/postgres/data18\"\n"));
        assert!(!running(3, "pg_ctl: no server running\n"));
    }
}
