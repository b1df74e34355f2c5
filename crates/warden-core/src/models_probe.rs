//! `GET <base_url>/models` over plain HTTP with std only: the one probe of an OpenAI-compatible server, used
//! by the Linux observer (is the ai jail's server up?), `warden doctor` (`ai.models`, `pi-config`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The model ids a server at `base_url` (e.g. `http://10.0.1.4:8080/v1`) lists, or why it could not be asked.
pub fn list_models(base_url: &str, timeout: Duration) -> Result<Vec<String>, String> {
    let (scheme, rest) = base_url
        .split_once("://")
        .ok_or_else(|| format!("{base_url:?} has no scheme"))?;
    if scheme != "http" {
        return Err(format!(
            "{base_url:?}: only http:// is probed (a TLS provider is reached by the gateway)"
        ));
    }
    let (host, port) = crate::layout::url_host_port(base_url)?;
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let path = format!("/{}/models", path.trim_end_matches('/')).replace("//", "/");
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let buf = read_response(&mut s).map_err(|e| format!("no answer from {addr}{path}: {e}"))?;
    parse(&String::from_utf8_lossy(&buf)).map_err(|e| format!("GET {path} on {addr}: {e}"))
}

/// Reads until the end of the body: `Content-Length` bytes after the head, else until the server closes
/// (a server that keeps the connection open despite `Connection: close` is not waited on).
fn read_response(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // A signal landing during the read is not the server's answer: read again.
        let n = match s.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return Ok(buf);
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end].lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            });
            if length.is_some_and(|len| buf.len() >= end + 4 + len) {
                return Ok(buf);
            }
        }
    }
}

/// Parses an HTTP/1.x response whose body is `{"data":[{"id":…},…]}`.
pub fn parse(response: &str) -> Result<Vec<String>, String> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let ids = v["data"]
        .as_array()
        .ok_or("no data array in the answer")?
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_refuses_errors() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"object\":\"list\",\"data\":[{\"id\":\"smollm2\"}]}";
        assert_eq!(parse(ok).unwrap(), vec!["smollm2".to_string()]);
        assert!(parse("HTTP/1.1 500 x\r\n\r\noops")
            .unwrap_err()
            .contains("500"));
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn a_closed_port_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = list_models(
            &format!("http://127.0.0.1:{port}/v1"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(list_models("https://x/v1", Duration::from_secs(1)).is_err());
    }
}
