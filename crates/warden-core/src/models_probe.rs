//! `GET <base_url>/models` over plain HTTP with std only: the one probe of an OpenAI-compatible server, used
//! by the Linux observer (is the ai jail's server up?), `warden doctor` (`ai.models`, `pi-config`).

use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::http_get::{self, HttpError, Response, Want};

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
    let response = http_get::get(addr, &format!("{host}:{port}"), &path, Want::Body, timeout)
        .map_err(|e| match e {
            HttpError::Connect { .. } | HttpError::Send { .. } => e.to_string(),
            e => format!("no answer from {addr}{path}: {e}"),
        })?;
    parse(&response).map_err(|e| format!("GET {path} on {addr}: {e}"))
}

/// The model ids of a response whose body is `{"data":[{"id":…},…]}`.
pub fn parse(response: &Response) -> Result<Vec<String>, String> {
    let body = String::from_utf8_lossy(&response.body);
    if response.status != 200 {
        return Err(format!(
            "HTTP {}: {}",
            response.status,
            body.chars().take(200).collect::<String>()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("body is not JSON: {e}"))?;
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
        let answer = |status, body: &str| Response {
            status,
            status_line: format!("HTTP/1.1 {status} x"),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        let ok = answer(200, "{\"object\":\"list\",\"data\":[{\"id\":\"smollm2\"}]}");
        assert_eq!(parse(&ok).unwrap(), vec!["smollm2".to_string()]);
        let e = parse(&answer(500, "oops")).unwrap_err();
        assert!(e.contains("500") && e.contains("oops"), "{e}");
        let e = parse(&answer(200, "garbage")).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = parse(&answer(200, "{}")).unwrap_err();
        assert!(e.contains("no data array"), "{e}");
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
