//! A tiny DNS client: one A query over UDP, with a timeout. Enough to ask a resolver "what is git.home.arpa?"
//! without a DNS library (RFC 1035 §4: header, question, answers; name compression in answers).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Why a query got no usable answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// Nothing came back in time.
    #[error("no answer from {server} within {ms} ms")]
    Timeout {
        /// The resolver asked.
        server: SocketAddr,
        /// The timeout.
        ms: u128,
    },
    /// The socket failed (e.g. `Network is unreachable`, `Connection refused`).
    #[error("query to {server} failed: {message}")]
    Io {
        /// The resolver asked.
        server: SocketAddr,
        /// The OS error.
        message: String,
    },
    /// The server answered with an error code (3: NXDOMAIN, 2: SERVFAIL, 5: REFUSED).
    #[error("{server} answered {}", rcode_name(*.rcode))]
    Rcode {
        /// The resolver asked.
        server: SocketAddr,
        /// The response code.
        rcode: u8,
    },
    /// The reply could not be read.
    #[error("malformed reply from {server}: {reason}")]
    Malformed {
        /// The resolver asked.
        server: SocketAddr,
        /// What was wrong.
        reason: &'static str,
    },
    /// The name cannot be encoded.
    #[error("cannot query {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

/// Encodes an A query for `name` with transaction `id` (recursion desired).
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let bad = |reason| DnsError::BadName {
        name: name.to_string(),
        reason,
    };
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad("a name has 1 to 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("a label has 1 to 63 characters"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    Ok(out)
}

/// Skips a (possibly compressed) name starting at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        if len & 0xc0 == 0xc0 {
            msg.get(pos + 1)?;
            return Some(pos + 2);
        }
        if len == 0 {
            return Some(pos + 1);
        }
        pos += 1 + usize::from(len);
    }
}

/// Reads the A records of a reply to query `id`. An empty list means "no A record" (NOERROR/NODATA).
pub fn decode_reply(id: u16, msg: &[u8], server: SocketAddr) -> Result<Vec<Ipv4Addr>, DnsError> {
    let bad = |reason| DnsError::Malformed { server, reason };
    if msg.len() < 12 {
        return Err(bad("shorter than a header"));
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != id {
        return Err(bad("transaction id does not match"));
    }
    if msg[2] & 0x80 == 0 {
        return Err(bad("not a response"));
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(DnsError::Rcode { server, rcode });
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or_else(|| bad("truncated question"))? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos).ok_or_else(|| bad("truncated answer name"))?;
        let fixed = msg
            .get(pos..pos + 10)
            .ok_or_else(|| bad("truncated answer"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10;
        let rdata = msg
            .get(pos..pos + rdlen)
            .ok_or_else(|| bad("truncated rdata"))?;
        if rtype == 1 && rdlen == 4 {
            addrs.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += rdlen;
    }
    Ok(addrs)
}

/// Asks `server` for the A records of `name`, waiting at most `timeout`.
pub fn query_a(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        message: e.to_string(),
    };
    let id = transaction_id();
    let query = encode_query(id, name)?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.send(&query).map_err(io)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => match decode_reply(id, &buf[..n], server) {
                // A stray datagram (another id) is ignored; keep waiting for ours.
                Err(DnsError::Malformed {
                    reason: "transaction id does not match",
                    ..
                }) if std::time::Instant::now() < deadline => continue,
                other => return other,
            },
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(DnsError::Timeout {
                    server,
                    ms: timeout.as_millis(),
                })
            }
            Err(e) => return Err(io(e)),
        }
    }
}

fn transaction_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        "127.0.0.1:53".parse().unwrap()
    }

    /// A reply to `query` with the given A answers (compressed owner names) and rcode.
    fn reply(query: &[u8], answers: &[Ipv4Addr], rcode: u8) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] |= 0x80;
        out[3] = 0x80 | rcode;
        out[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for a in answers {
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            out.extend_from_slice(&a.octets());
        }
        out
    }

    #[test]
    fn encodes_the_question() {
        let q = encode_query(0x1234, "git.home.arpa").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03git\x04home\x04arpa\x00\x00\x01\x00\x01");
        assert!(encode_query(1, "").is_err());
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &"x".repeat(64)).is_err());
    }

    #[test]
    fn decodes_answers_and_errors() {
        let q = encode_query(7, "git.home.arpa").unwrap();
        let a = Ipv4Addr::new(10, 0, 1, 2);
        assert_eq!(decode_reply(7, &reply(&q, &[a], 0), server()), Ok(vec![a]));
        assert_eq!(decode_reply(7, &reply(&q, &[], 0), server()), Ok(vec![]));
        assert_eq!(
            decode_reply(7, &reply(&q, &[], 3), server()),
            Err(DnsError::Rcode {
                server: server(),
                rcode: 3
            })
        );
        assert!(decode_reply(8, &reply(&q, &[a], 0), server()).is_err());
        assert!(
            decode_reply(7, &q, server()).is_err(),
            "a query is not a reply"
        );
        // Truncated anywhere: an error, never a panic.
        let full = reply(&q, &[a], 0);
        for n in 0..full.len() {
            let _ = decode_reply(7, &full[..n], server());
        }
        assert!(decode_reply(7, &full[..full.len() - 1], server()).is_err());
    }

    #[test]
    fn queries_a_udp_server_and_times_out_on_silence() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            sock.send_to(&reply(&buf[..n], &[Ipv4Addr::new(10, 0, 1, 3)], 0), from)
                .unwrap();
            // The second query gets no answer.
            let _ = sock.recv_from(&mut buf);
        });
        let got = query_a(addr, "cms.home.arpa", Duration::from_millis(500)).unwrap();
        assert_eq!(got, vec![Ipv4Addr::new(10, 0, 1, 3)]);
        let err = query_a(addr, "cms.home.arpa", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, DnsError::Timeout { .. }), "{err}");
        t.join().unwrap();
    }
}
