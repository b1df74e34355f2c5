//! `jls --libxo json -v` (reference/bastille.md §7.1).

use serde_json::Value;

use super::ParseError;

/// One jail as `jls` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JlsJail {
    /// The jail's name (from `name`; without `-v`, the directory above `root` in `path`).
    pub name: String,
    /// Its JID, if printed.
    pub jid: Option<u64>,
    /// Its root path.
    pub path: String,
    /// `true` unless `state` is `DYING`.
    pub active: bool,
}

/// Parses `jls --libxo json [-v]`. Numbers may come as JSON numbers or as strings (explicit parameters print
/// every value as a string, §7.1).
pub fn parse(stdout: &str) -> Result<Vec<JlsJail>, ParseError> {
    let doc: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| ParseError::new(format!("not JSON: {e}")))?;
    let list = doc
        .get("jail-information")
        .and_then(|j| j.get("jail"))
        .ok_or_else(|| ParseError::new("no jail-information.jail list"))?;
    let Some(list) = list.as_array() else {
        return Err(ParseError::new("jail-information.jail is not a list"));
    };
    let mut out = Vec::new();
    for entry in list {
        let text = |key: &str| {
            entry.get(key).and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
        };
        let path = text("path").unwrap_or_default();
        let name = text("name")
            .or_else(|| name_from_path(&path))
            .or_else(|| text("hostname"));
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(ParseError::new(format!(
                "a jail without name or path: {entry}"
            )));
        };
        let jid = text("jid").and_then(|j| j.parse().ok());
        let active = text("state").map(|s| s != "DYING").unwrap_or(true);
        out.push(JlsJail {
            name,
            jid,
            path,
            active,
        });
    }
    Ok(out)
}

/// Bastille's paths end in `jails/NAME/root` (§1.4).
fn name_from_path(path: &str) -> Option<String> {
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let last = parts.next()?;
    if last == "root" {
        parts.next().map(str::to_string)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_form() {
        // §7.1: `jls -v --libxo json` keys.
        let out = r#"{"__version": "2", "jail-information": {"jail": [{"jid":1,"hostname":"clawdiegit","path":"/usr/local/bastille/jails/clawdiegit/root","name":"clawdiegit","state":"ACTIVE","cpusetid":2,"ipv4_addrs":[],"ipv6_addrs":[]},{"jid":2,"hostname":"old","path":"/x/jails/old/root","name":"old","state":"DYING","cpusetid":3,"ipv4_addrs":[],"ipv6_addrs":[]}]}}"#;
        let jails = parse(out).unwrap();
        assert_eq!(jails.len(), 2);
        assert_eq!(
            jails[0],
            JlsJail {
                name: "clawdiegit".into(),
                jid: Some(1),
                path: "/usr/local/bastille/jails/clawdiegit/root".into(),
                active: true
            }
        );
        assert!(!jails[1].active);
    }

    #[test]
    fn plain_form_and_string_values() {
        // §7.1: without -v there is no name; with explicit parameters values are strings.
        let out = r#"{"__version": "2", "jail-information": {"jail": [{"jid":1,"ipv4":"10.17.89.10","hostname":"web","path":"/usr/local/bastille/jails/web/root"}]}}"#;
        assert_eq!(parse(out).unwrap()[0].name, "web");
        let out = r#"{"__version": "2", "jail-information": {"jail": [{"name":"web","jid":"7","path":"/p"}]}}"#;
        assert_eq!(parse(out).unwrap()[0].jid, Some(7));
    }

    #[test]
    fn empty_and_bad() {
        assert!(
            parse(r#"{"__version": "2", "jail-information": {"jail": []}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse("").is_err());
        assert!(parse("   JID  IP Address      Hostname                      Path\n").is_err());
        assert!(parse(r#"{"jail-information": {"jail": [{"jid":1}]}}"#).is_err());
    }
}
