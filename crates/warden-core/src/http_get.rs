//! One HTTP/1.x `GET` over plain TCP with std only, and one reader of the answer: the probes of `ai.models`,
//! the cms vhosts and the control plane's `/healthz` all go through it, so a read interrupted by a signal, a
//! deadline and a short or garbled answer are handled in one place.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The largest response head read (status line and headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest body read.
pub const MAX_BODY: usize = 1 << 20;

/// How much of the answer the caller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The status line and headers only: the reader stops at the end of the head.
    Head,
    /// The whole body too (`Content-Length`, chunked, or until the server closes).
    Body,
}

/// A parsed HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (`200`).
    pub status: u16,
    /// The whole status line as sent (`HTTP/1.1 200 OK`), for messages.
    pub status_line: String,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for [`Want::Head`]), chunked encoding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a `GET` got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connection was not made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The request could not be written.
    #[error("cannot send to {addr}: {source}")]
    Send {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The deadline passed before the answer was whole.
    #[error("no whole answer within {ms} ms ({got} bytes read)")]
    TimedOut { ms: u128, got: usize },
    /// A read failed (not a signal, not a timeout).
    #[error("read failed after {got} bytes: {source}")]
    Read { got: usize, source: std::io::Error },
    /// The server closed the connection before the end of the head.
    #[error(
        "the server closed the connection after {got} bytes, before the end of the response head"
    )]
    ShortHead { got: usize },
    /// The server closed the connection before the end of the body.
    #[error(
        "the server closed the connection after {got} of the {expected} body bytes it announced"
    )]
    ShortBody { got: usize, expected: String },
    /// What came back is not an HTTP/1.x response.
    #[error("not an HTTP/1.x response: {0}")]
    Garbled(String),
    /// The head or body is over this reader's limit.
    #[error("the response {what} is over {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
}

impl HttpError {
    /// True when nothing listens at the address (connection refused).
    pub fn refused(&self) -> bool {
        matches!(self, HttpError::Connect { source, .. } if source.kind() == ErrorKind::ConnectionRefused)
    }
}

/// A byte source whose blocking reads can be bounded (a `TcpStream`; a scripted reader in tests).
pub trait Source: Read {
    /// Bounds the next reads to `limit` (never zero).
    fn set_read_limit(&mut self, limit: Duration) -> std::io::Result<()>;
}

impl Source for TcpStream {
    fn set_read_limit(&mut self, limit: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

/// `GET path` at `addr` with Host `host` (HTTP/1.0, `Connection: close`), the whole exchange within `timeout`.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    want: Want,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| HttpError::Connect { addr, source })?;
    let send = |source| HttpError::Send { addr, source };
    s.set_write_timeout(Some(timeout)).map_err(send)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .map_err(send)?;
    read_response(&mut s, want, deadline, timeout)
}

/// Reads one response from `s` until `want` is met, the server closes, or `deadline` (`timeout` names it in
/// the error). A read interrupted by a signal is read again.
pub fn read_response<S: Source>(
    s: &mut S,
    want: Want,
    deadline: Instant,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(garbled(&buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge {
                what: "head",
                limit: MAX_HEAD,
            });
        }
        if fill(s, &mut buf, deadline, timeout)? == 0 {
            return Err(if buf.is_empty() || buf.starts_with(b"HTTP/") {
                HttpError::ShortHead { got: buf.len() }
            } else {
                garbled(&buf)
            });
        }
    };
    let mut response = parse_head(&buf[..head_end])?;
    if want == Want::Head {
        return Ok(response);
    }
    let mut body = buf.split_off(head_end + 4);
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = match response.header("content-length") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| HttpError::Garbled(format!("Content-Length {v:?} is not a number")))?,
        ),
        None => None,
    };
    response.body = loop {
        if chunked {
            if let Some(decoded) = decode_chunked(&body)? {
                break decoded;
            }
        } else if let Some(len) = length.filter(|len| body.len() >= *len) {
            body.truncate(len);
            break body;
        }
        if body.len() > MAX_BODY {
            return Err(HttpError::TooLarge {
                what: "body",
                limit: MAX_BODY,
            });
        }
        if fill(s, &mut body, deadline, timeout)? == 0 {
            if chunked || length.is_some() {
                let expected = length.map_or("chunked".to_string(), |l| l.to_string());
                return Err(HttpError::ShortBody {
                    got: body.len(),
                    expected,
                });
            }
            break body;
        }
    };
    Ok(response)
}

/// One read into `buf` within the deadline: the bytes read (0 when the server closed).
fn fill<S: Source>(
    s: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    timeout: Duration,
) -> Result<usize, HttpError> {
    let timed_out = |got| HttpError::TimedOut {
        ms: timeout.as_millis(),
        got,
    };
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(buf.len()));
        }
        s.set_read_limit(left.max(Duration::from_millis(1)))
            .map_err(|source| HttpError::Read {
                got: buf.len(),
                source,
            })?;
        match s.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            // A signal landing during the read is not the server's answer: read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out(buf.len()))
            }
            Err(source) => {
                return Err(HttpError::Read {
                    got: buf.len(),
                    source,
                })
            }
        }
    }
}

/// The status line and headers of a head (without its closing blank line).
fn parse_head(head: &[u8]) -> Result<Response, HttpError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or("");
    let code = words.next().unwrap_or("");
    let status = match code.parse::<u16>() {
        Ok(n) if version.starts_with("HTTP/1.") && (100..1000).contains(&n) => n,
        _ => return Err(HttpError::Garbled(format!("status line {status_line:?}"))),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Garbled(format!("header line {line:?} has no ':'")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Response {
        status,
        status_line,
        headers,
        body: Vec::new(),
    })
}

/// The body of a chunked encoding once it is whole (`None` while more is to come).
fn decode_chunked(mut raw: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(raw, b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Garbled(format!("chunk size {size_line:?}")))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            // Trailers (if any) end with a blank line; none is "\r\n" right away.
            return Ok(
                (raw.starts_with(b"\r\n") || find(raw, b"\r\n\r\n").is_some()).then_some(out),
            );
        }
        if out.len() + size > MAX_BODY {
            return Err(HttpError::TooLarge {
                what: "body",
                limit: MAX_BODY,
            });
        }
        if raw.len() < size + 2 {
            return Ok(None);
        }
        if &raw[size..size + 2] != b"\r\n" {
            return Err(HttpError::Garbled(format!(
                "chunk of {size} bytes not followed by CRLF"
            )));
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn garbled(buf: &[u8]) -> HttpError {
    let start: String = String::from_utf8_lossy(&buf[..buf.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    HttpError::Garbled(format!("it starts {start:?}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Hands out scripted reads: bytes, an error kind, or (when empty) the server's close.
    struct Script {
        steps: VecDeque<Result<Vec<u8>, ErrorKind>>,
        limits: Vec<Duration>,
    }

    impl Script {
        fn new(steps: Vec<Result<&[u8], ErrorKind>>) -> Self {
            let steps = steps.into_iter().map(|s| s.map(<[u8]>::to_vec)).collect();
            Script {
                steps,
                limits: Vec::new(),
            }
        }
    }

    impl Read for Script {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match self.steps.pop_front() {
                None => Ok(0),
                Some(Err(kind)) => Err(kind.into()),
                Some(Ok(mut bytes)) => {
                    let n = bytes.len().min(out.len());
                    out[..n].copy_from_slice(&bytes[..n]);
                    if n < bytes.len() {
                        self.steps.push_front(Ok(bytes.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    impl Source for Script {
        fn set_read_limit(&mut self, limit: Duration) -> std::io::Result<()> {
            self.limits.push(limit);
            Ok(())
        }
    }

    fn read(steps: Vec<Result<&[u8], ErrorKind>>, want: Want) -> Result<Response, HttpError> {
        let t = Duration::from_secs(5);
        read_response(&mut Script::new(steps), want, Instant::now() + t, t)
    }

    #[test]
    fn reads_status_line_headers_and_a_content_length_body_in_pieces() {
        let r = read(
            vec![
                Ok(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nconTent-Length: 5"),
                Ok(b"\r\nX-Warden-Vhost:  a.home.arpa \r\n\r\nhel"),
                Ok(b"lo"),
                // Past Content-Length: not read, not waited on.
                Err(ErrorKind::ConnectionReset),
            ],
            Want::Body,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert_eq!(r.header("x-warden-vhost"), Some("a.home.arpa"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("missing"), None);
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn a_head_is_enough_when_only_the_head_is_wanted() {
        let r = read(
            vec![
                Ok(b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\npartial"),
                Err(ErrorKind::ConnectionReset),
            ],
            Want::Head,
        )
        .unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn without_a_length_the_body_ends_when_the_server_closes() {
        let r = read(
            vec![Ok(b"HTTP/1.0 200 OK\r\n\r\n{\"data\":"), Ok(b"[]}")],
            Want::Body,
        )
        .unwrap();
        assert_eq!(r.body, b"{\"data\":[]}");
    }

    #[test]
    fn decodes_a_chunked_body() {
        let r = read(
            vec![
                Ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n"),
                Ok(b"7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\n"),
                Ok(b"\r\n"),
                Err(ErrorKind::ConnectionReset),
            ],
            Want::Body,
        )
        .unwrap();
        assert_eq!(r.body, b"Wikipedia in \r\nchunks.");
        let e = read(
            vec![Ok(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n",
            )],
            Want::Body,
        )
        .unwrap_err();
        assert!(e.to_string().contains("chunk size \"zz\""), "{e}");
    }

    #[test]
    fn a_signal_during_a_read_is_read_again() {
        let r = read(
            vec![
                Err(ErrorKind::Interrupted),
                Ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
                Err(ErrorKind::Interrupted),
                Ok(b"ok"),
            ],
            Want::Body,
        )
        .unwrap();
        assert_eq!(r.body, b"ok");
    }

    #[test]
    fn the_deadline_bounds_each_read_and_ends_the_wait() {
        // The socket's timeout firing reads as the deadline passing.
        let e = read(
            vec![Ok(b"HTTP/1.1 200 OK\r\n"), Err(ErrorKind::WouldBlock)],
            Want::Head,
        )
        .unwrap_err();
        assert!(
            matches!(e, HttpError::TimedOut { ms: 5000, got: 17 }),
            "{e}"
        );
        assert!(e.to_string().contains("within 5000 ms"), "{e}");
        // A deadline already past reads nothing; each read is bounded by what is left.
        let mut s = Script::new(vec![Ok(b"HTTP/1.1 200 OK\r\n\r\n")]);
        let past = Instant::now() - Duration::from_millis(1);
        let e = read_response(&mut s, Want::Head, past, Duration::from_millis(7)).unwrap_err();
        assert!(matches!(e, HttpError::TimedOut { ms: 7, got: 0 }), "{e}");
        let mut s = Script::new(vec![Ok(b"HTTP/1.1 200 OK\r\n\r\n")]);
        let t = Duration::from_secs(3);
        read_response(&mut s, Want::Head, Instant::now() + t, t).unwrap();
        assert!(
            s.limits.iter().all(|l| *l <= t && !l.is_zero()),
            "{:?}",
            s.limits
        );
    }

    #[test]
    fn short_and_garbled_answers_say_what_they_are() {
        let e = read(vec![], Want::Head).unwrap_err();
        assert!(matches!(e, HttpError::ShortHead { got: 0 }), "{e}");
        let e = read(vec![Ok(b"HTTP/1.1 200 OK\r\nServer")], Want::Head).unwrap_err();
        assert!(
            e.to_string()
                .contains("closed the connection after 23 bytes"),
            "{e}"
        );
        let e = read(vec![Ok(b"SSH-2.0-OpenSSH_9.2\r\n")], Want::Head).unwrap_err();
        assert!(e.to_string().contains("not an HTTP/1.x response"), "{e}");
        assert!(e.to_string().contains("SSH-2.0"), "{e}");
        let e = read(vec![Ok(b"HTTP/1.1 abc\r\n\r\n")], Want::Head).unwrap_err();
        assert!(
            e.to_string().contains("status line \"HTTP/1.1 abc\""),
            "{e}"
        );
        let e = read(vec![Ok(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n")], Want::Head).unwrap_err();
        assert!(e.to_string().contains("\"no colon\" has no ':'"), "{e}");
        let e = read(
            vec![Ok(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")],
            Want::Body,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("after 3 of the 10 body bytes"),
            "{e}"
        );
        let e = read(
            vec![Ok(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n")],
            Want::Body,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"ten\" is not a number"), "{e}");
        let e = read(vec![Err(ErrorKind::ConnectionReset)], Want::Head).unwrap_err();
        assert!(matches!(e, HttpError::Read { got: 0, .. }), "{e}");
    }

    #[test]
    fn an_endless_head_is_cut_at_the_limit() {
        let junk = vec![b'x'; MAX_HEAD + 10];
        let mut first = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        first.extend_from_slice(&junk);
        let e = read(vec![Ok(&first)], Want::Head).unwrap_err();
        assert!(matches!(e, HttpError::TooLarge { what: "head", .. }), "{e}");
    }

    #[test]
    fn get_talks_to_a_real_socket_and_names_a_refused_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 512];
            while find(&req, b"\r\n\r\n").is_none() {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0, "client closed before its request was whole");
                req.extend_from_slice(&b[..n]);
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let r = get(
            addr,
            "x.home.arpa",
            "/v1/models",
            Want::Body,
            Duration::from_secs(5),
        )
        .unwrap();
        let req = server.join().unwrap();
        assert!(
            req.starts_with("GET /v1/models HTTP/1.0\r\nHost: x.home.arpa\r\n"),
            "{req}"
        );
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        // The listener went with the server thread: nothing listens there now.
        let e = get(addr, "x", "/", Want::Head, Duration::from_secs(1)).unwrap_err();
        assert!(e.refused(), "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
