//! A strict-enough pf.conf parser: macros, tables, options, scrub, translation, anchors and filter rules
//! (reference/bastille.md §7.5, §3 setup's pf.conf block, seeds' PF baseline).
//!
//! It accepts the pf.conf Warden and Bastille write and rejects misspelt keywords, undefined macros, a
//! translation rule without `->`, and rules out of order, each as `FILE:LINE: syntax error`. The normalised
//! forms printed by `pfctl -sn`/`-sr` are close to pfctl's but **(unverified)** token for token.

use std::collections::BTreeMap;

/// A parsed ruleset.
#[derive(Debug, Default, Clone)]
pub struct Ruleset {
    /// Translation rules (nat, rdr, binat, *-anchor), normalised.
    pub nat: Vec<String>,
    /// Filter rules (pass, block, match, anchor, antispoof), normalised.
    pub filter: Vec<String>,
    /// Tables defined with their initial addresses.
    pub tables: BTreeMap<String, Vec<String>>,
}

const FILTER_WORDS: &[&str] = &[
    "pass",
    "block",
    "match",
    "in",
    "out",
    "log",
    "quick",
    "on",
    "inet",
    "inet6",
    "proto",
    "from",
    "to",
    "any",
    "all",
    "port",
    "keep",
    "modulate",
    "synproxy",
    "state",
    "no",
    "flags",
    "label",
    "tag",
    "tagged",
    "user",
    "group",
    "icmp-type",
    "icmp6-type",
    "route-to",
    "reply-to",
    "dup-to",
    "self",
    "urpf-failed",
    "drop",
    "return",
    "return-rst",
    "return-icmp",
    "return-icmp6",
    "fragment",
    "allow-opts",
    "max",
    "max-src-nodes",
    "max-src-states",
    "max-src-conn",
    "max-src-conn-rate",
    "overload",
    "flush",
    "global",
    "source-track",
    "rule",
    "sloppy",
    "pflow",
    "probability",
    "prio",
    "set",
    "queue",
    "os",
    "received-on",
    "rtable",
    "divert-to",
    "divert-reply",
    "once",
    "ridentifier",
    "for",
    "no-route",
    "unicast",
    "!",
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    ":",
    "><",
    "<>",
    "->",
    ",",
    "{",
    "}",
    "(",
    ")",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "network",
    "broadcast",
    "peer",
    "static-port",
    "round-robin",
    "random",
    "source-hash",
    "bitmask",
    "sticky-address",
    "pass",
    "adaptive.start",
    "adaptive.end",
    "tos",
    "scrub",
    "reassemble",
    "random-id",
    "no-df",
    "min-ttl",
    "max-mss",
    "floating",
    "if-bound",
    "bridge-to",
    "af-to",
];

/// Keywords whose next token is a free-form argument (name, number, list).
const TAKES_ARG: &[&str] = &[
    "on",
    "proto",
    "port",
    "label",
    "tag",
    "tagged",
    "user",
    "group",
    "icmp-type",
    "icmp6-type",
    "flags",
    "for",
    "max",
    "max-src-nodes",
    "max-src-states",
    "max-src-conn",
    "max-src-conn-rate",
    "rtable",
    "probability",
    "prio",
    "queue",
    "os",
    "received-on",
    "route-to",
    "reply-to",
    "dup-to",
    "ridentifier",
    "overload",
    "divert-to",
    "tos",
    "min-ttl",
    "max-mss",
    "source-hash",
];

const OPTIONS: &[&str] = &[
    "skip",
    "block-policy",
    "optimization",
    "limit",
    "timeout",
    "loginterface",
    "state-policy",
    "debug",
    "ruleset-optimization",
    "hostid",
    "require-order",
    "fingerprints",
    "state-defaults",
    "keepcounters",
    "syncookies",
    "reassemble",
];

#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Section {
    Options,
    Normalization,
    Queueing,
    Translation,
    Filtering,
}

fn tokenize(line: &str) -> Result<Vec<String>, ()> {
    let mut toks = vec![];
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            if i >= chars.len() {
                return Err(());
            }
            i += 1;
            toks.push(chars[start..i].iter().collect());
            continue;
        }
        if c == '<'
            && i + 1 < chars.len()
            && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '_')
        {
            let start = i;
            while i < chars.len() && chars[i] != '>' {
                i += 1;
            }
            if i >= chars.len() {
                return Err(());
            }
            i += 1;
            toks.push(chars[start..i].iter().collect());
            continue;
        }
        if c == '(' {
            let start = i;
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            if i >= chars.len() {
                return Err(());
            }
            i += 1;
            let inner: String = chars[start + 1..i - 1]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            toks.push(format!("({inner})"));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if ["->", "!=", "<=", ">=", "><", "<>"].contains(&two.as_str()) {
            toks.push(two);
            i += 2;
            continue;
        }
        if "{}=,!<>:".contains(c) {
            toks.push(c.to_string());
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !"{}=,\"()!<>".contains(chars[i]) {
            i += 1;
        }
        toks.push(chars[start..i].iter().collect());
    }
    Ok(toks)
}

fn strip_comment(line: &str) -> &str {
    let mut in_q = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_q = !in_q,
            '#' if !in_q => return &line[..i],
            _ => {}
        }
    }
    line
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Expands `$macro` outside double quotes; an undefined macro is an error naming it.
fn expand(line: &str, macros: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut in_q = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            in_q = !in_q;
        }
        if c != '$' || in_q {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        while let Some(&x) = chars.peek() {
            if x.is_ascii_alphanumeric() || x == '_' {
                name.push(x);
                chars.next();
            } else {
                break;
            }
        }
        match macros.get(&name) {
            Some(v) => out.push_str(v),
            None => return Err(name),
        }
    }
    Ok(out)
}

fn looks_like_addr(t: &str) -> bool {
    let t = t.trim_start_matches('!');
    t.starts_with('<')
        || t.starts_with('(')
        || t.contains(':')
        || t.chars().next().is_some_and(|c| c.is_ascii_digit())
        || ["any", "all", "self", "no-route", "urpf-failed"].contains(&t)
}

/// Checks a pass/block/match/nat/rdr/antispoof rule token by token.
fn check_rule(toks: &[String]) -> bool {
    let mut i = 1;
    let mut depth = 0;
    let mut arg_next = false;
    let mut addr_next = false;
    while i < toks.len() {
        let t = toks[i].as_str();
        i += 1;
        if t == "{" {
            depth += 1;
            continue;
        }
        if t == "}" {
            if depth == 0 {
                return false;
            }
            depth -= 1;
            if depth == 0 {
                arg_next = false;
                addr_next = false;
            }
            continue;
        }
        if depth > 0 || t == "," {
            continue;
        }
        if t.starts_with('"') {
            arg_next = false;
            continue;
        }
        if arg_next {
            arg_next = t == "!" || ["=", "!=", "<", ">", "<=", ">=", ":"].contains(&t);
            continue;
        }
        if addr_next && (looks_like_addr(t) || is_ident(t) || t == "!") {
            addr_next = t == "!";
            continue;
        }
        addr_next = false;
        if ["from", "to", "->", "for"].contains(&t) {
            addr_next = true;
            continue;
        }
        if TAKES_ARG.contains(&t) {
            arg_next = true;
            continue;
        }
        if t.chars()
            .all(|c| c.is_ascii_digit() || c == '/' || c == '.')
            || t.starts_with('<')
        {
            continue;
        }
        if !FILTER_WORDS.contains(&t) {
            return false;
        }
    }
    depth == 0 && !arg_next
}

fn join(toks: &[String]) -> String {
    let mut s = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 && t != "," && toks[i - 1] != "!" {
            s.push(' ');
        }
        s.push_str(t);
    }
    s
}

/// A port as pf takes it: a number 1..65535, or a service name (`http`).
fn is_port(t: &str) -> bool {
    t.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
        || (t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// What pfctl refuses in an `rdr` beyond the common checks: no redirect address after `->`, a port that is
/// not one (or a range `N:M` with a bad end), a port without `proto tcp` or `udp`.
fn check_rdr(toks: &[String]) -> bool {
    let Some(arrow) = toks.iter().position(|t| t == "->") else {
        return false;
    };
    let target_ok = toks
        .get(arrow + 1)
        .is_some_and(|t| looks_like_addr(t) && !["any", "all", "self"].contains(&t.as_str()));
    let mut ports_ok = true;
    for (i, _) in toks.iter().enumerate().filter(|(_, t)| *t == "port") {
        let mut at = i + 1;
        if toks.get(at).is_some_and(|t| t == "=") {
            at += 1;
        }
        // The tokenizer keeps a range `8000:8080` as one word.
        let word = toks.get(at).map_or("", String::as_str);
        ports_ok &= match word.split_once(':') {
            Some((first, last)) => is_port(first) && is_port(last),
            None => is_port(word),
        };
    }
    let has_port = toks.iter().any(|t| t == "port");
    let proto_ok = toks
        .iter()
        .position(|t| t == "proto")
        .and_then(|i| toks.get(i + 1))
        .is_some_and(|p| p == "tcp" || p == "udp" || p == "{");
    target_ok && ports_ok && (!has_port || proto_ok)
}

/// Normalises a translation rule the way `pfctl -sn` shows it (approximately; unverified).
fn norm_nat(toks: &[String]) -> String {
    let mut t: Vec<String> = toks.to_vec();
    let has_af = t.iter().any(|x| x == "inet" || x == "inet6");
    if !has_af {
        if let Some(pos) = t.iter().position(|x| x == "from" || x == "proto") {
            t.insert(pos, "inet".into());
        }
    }
    if !t.iter().any(|x| x == "from") {
        if let Some(pos) = t.iter().position(|x| x == "->") {
            t.insert(pos, "all".into());
        }
    }
    // A single match port shows with its operator (`port = 80`), as pfctl -P prints it; the redirect port not.
    let mut i = 0;
    while i + 1 < t.iter().position(|x| x == "->").unwrap_or(t.len()) {
        let next = t[i + 1].as_str();
        if t[i] == "port"
            && !next.contains(':')
            && !["=", "!=", "<", ">", "<=", ">="].contains(&next)
        {
            t.insert(i + 1, "=".into());
        }
        i += 1;
    }
    if t[0] == "nat" && t.last().is_some_and(|x| x.starts_with('(')) {
        t.push("round-robin".into());
    }
    join(&t)
}

/// Normalises a filter rule the way `pfctl -sr` shows it (approximately; unverified).
fn norm_filter(toks: &[String]) -> String {
    let mut t: Vec<String> = toks.to_vec();
    if t[0] == "anchor" {
        if t.len() == 2 {
            t.push("all".into());
        }
        return join(&t);
    }
    if !t.iter().any(|x| x == "from" || x == "to" || x == "all") {
        let pos = t
            .iter()
            .position(|x| {
                ["keep", "modulate", "synproxy", "no", "flags", "label"].contains(&x.as_str())
            })
            .unwrap_or(t.len());
        t.insert(pos, "all".into());
    }
    if t[0] == "pass"
        && !t.iter().any(|x| x == "flags")
        && !t.iter().any(|x| x == "udp" || x == "icmp")
    {
        let pos = t
            .iter()
            .position(|x| ["keep", "modulate", "synproxy", "label"].contains(&x.as_str()))
            .unwrap_or(t.len());
        t.insert(pos, "flags S/SA".into());
    }
    if t[0] == "pass" && !t.iter().any(|x| x == "state") {
        t.push("keep state".into());
    }
    join(&t)
}

/// Parses pf.conf text. Errors are the lines pfctl prints (`FILE:LINE: ...`).
pub fn parse(text: &str, file: &str) -> Result<Ruleset, Vec<String>> {
    let mut rs = Ruleset::default();
    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    let mut section = Section::Options;
    let mut errors = vec![];
    for (lineno, line) in logical_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: &str| format!("{file}:{lineno}: {msg}");
        match line_kind(&line, &macros) {
            Err(msgs) => errors.extend(msgs.iter().map(|m| err(m))),
            Ok(Line::Macro(name, value)) => {
                macros.insert(name, value);
            }
            Ok(Line::Rule(toks)) => {
                let want = section_of(&toks[0], section);
                if want < section {
                    errors.push(err(
                        "Rules must be in order: options, normalization, queueing, translation, filtering",
                    ));
                    continue;
                }
                section = want;
                if !rule(&toks, &mut rs) {
                    errors.push(err("syntax error"));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(rs)
    } else {
        Err(errors)
    }
}

/// The file's logical lines (comments stripped, `\`-continued lines joined) with their first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut logical: Vec<(usize, String)> = vec![];
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        if let Some(body) = line.trim_end().strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        logical.push((start, acc));
    }
    if let Some(p) = pending {
        logical.push(p);
    }
    logical
}

/// A logical line: a macro definition or a rule's tokens (macros expanded).
enum Line {
    Macro(String, String),
    Rule(Vec<String>),
}

/// Reads one logical line; `Err` holds pfctl's messages (without the `FILE:LINE:` prefix).
fn line_kind(line: &str, macros: &BTreeMap<String, String>) -> Result<Line, Vec<String>> {
    const SYNTAX: &str = "syntax error";
    let undefined = |m: String| vec![format!("macro '{m}' not defined"), SYNTAX.to_string()];
    let pre = tokenize(line).map_err(|()| vec![SYNTAX.to_string()])?;
    // Macro definition: NAME = value (value is expanded now, as pf does).
    if pre.len() >= 3
        && pre[1] == "="
        && is_ident(&pre[0])
        && !FILTER_WORDS.contains(&pre[0].as_str())
    {
        let value_text = line.split_once('=').map(|x| x.1).unwrap_or("").trim();
        let expanded = expand(value_text, macros).map_err(undefined)?;
        let v = expanded.trim();
        let value = if let Some(q) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            q.to_string()
        } else if v.split_whitespace().count() == 1 {
            v.to_string()
        } else {
            return Err(vec![SYNTAX.to_string()]);
        };
        return Ok(Line::Macro(pre[0].clone(), value));
    }
    let expanded = expand(line, macros).map_err(undefined)?;
    match tokenize(&expanded) {
        Ok(t) if !t.is_empty() => Ok(Line::Rule(t)),
        _ => Err(vec![SYNTAX.to_string()]),
    }
}

/// The section a rule starting with `head` belongs to (`table`/`load` stay in the current one).
fn section_of(head: &str, current: Section) -> Section {
    match head {
        "set" => Section::Options,
        "scrub" => Section::Normalization,
        "altq" | "queue" => Section::Queueing,
        "nat" | "rdr" | "binat" | "nat-anchor" | "rdr-anchor" | "binat-anchor" | "no" => {
            Section::Translation
        }
        "table" | "load" => current,
        _ => Section::Filtering,
    }
}

/// Checks one rule and adds it to `rs`; false is a syntax error.
fn rule(toks: &[String], rs: &mut Ruleset) -> bool {
    let head = toks[0].as_str();
    let (ok, target) = match head {
        "set" => (
            toks.get(1).is_some_and(|o| OPTIONS.contains(&o.as_str())) && toks.len() >= 3,
            None,
        ),
        "table" => return table(toks, rs),
        "scrub" => (check_rule(toks), None),
        "altq" | "queue" | "load" => (true, None),
        "anchor" => {
            let ok = toks.get(1).is_some_and(|t| t.starts_with('"')) && check_rule(&toks[1..]);
            (ok, Some((&mut rs.filter, norm_filter(toks))))
        }
        "nat-anchor" | "rdr-anchor" | "binat-anchor" => {
            let ok = toks.get(1).is_some_and(|t| t.starts_with('"')) && check_rule(&toks[1..]);
            let mut t = toks.to_vec();
            if t.len() == 2 {
                t.push("all".into());
            }
            (ok, Some((&mut rs.nat, join(&t))))
        }
        "nat" | "rdr" | "binat" => {
            let ok = toks.iter().any(|t| t == "->")
                && check_rule(toks)
                && (head != "rdr" || check_rdr(toks));
            (ok, Some((&mut rs.nat, norm_nat(toks))))
        }
        "no" => {
            let ok =
                toks.get(1).is_some_and(|t| t == "nat" || t == "rdr") && check_rule(&toks[1..]);
            (ok, Some((&mut rs.nat, join(toks))))
        }
        "pass" | "block" | "match" => (check_rule(toks), Some((&mut rs.filter, norm_filter(toks)))),
        "antispoof" => {
            let ok = toks.iter().any(|t| t == "for") && check_rule(toks);
            (ok, Some((&mut rs.filter, join(toks))))
        }
        _ => (false, None),
    };
    if let (true, Some((list, shown))) = (ok, target) {
        list.push(shown);
    }
    ok
}

/// `table <NAME> [persist|const|counters] [{ ADDR, ... }]`: adds the table and its addresses.
fn table(toks: &[String], rs: &mut Ruleset) -> bool {
    let mut ok = toks
        .get(1)
        .is_some_and(|t| t.starts_with('<') && t.ends_with('>'));
    let mut addrs = vec![];
    let mut in_list = false;
    for t in toks.iter().skip(2) {
        match t.as_str() {
            "persist" | "const" | "counters" if !in_list => {}
            "{" => in_list = true,
            "}" => in_list = false,
            "," => {}
            "file" => {}
            x if x.starts_with('"') => {}
            x if in_list => addrs.push(x.to_string()),
            _ => ok = false,
        }
    }
    if ok {
        let name = toks[1].trim_matches(|c| c == '<' || c == '>').to_string();
        rs.tables.insert(name, addrs);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARDEN: &str = r#"ext_if = "vtnet0"
warden_net = "10.0.1.0/24"
set skip on lo
scrub in on $ext_if all fragment reassemble
table <clawdie_jails> persist
nat on $ext_if from $warden_net to any -> ($ext_if)
nat on $ext_if from <clawdie_jails> to any -> ($ext_if:0)
rdr-anchor "rdr/*"
pass out quick keep state
pass quick on warden0 inet from $warden_net to any keep state
anchor "bastille/*"
antispoof for $ext_if
pass in inet proto tcp from any to any port ssh flags S/SA keep state
"#;

    #[test]
    fn parses_warden_baseline() {
        let rs = parse(WARDEN, "/etc/pf.conf").expect("parses");
        assert_eq!(
            rs.nat[0],
            "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin"
        );
        assert_eq!(rs.nat[2], "rdr-anchor \"rdr/*\" all");
        assert!(rs.filter.iter().any(|r| r == "anchor \"bastille/*\" all"));
        assert!(rs.tables.contains_key("clawdie_jails"));
    }

    #[test]
    fn rejects_typos_undefined_macros_and_order() {
        let e = parse("pss in all\n", "/etc/pf.conf").unwrap_err();
        assert_eq!(e, vec!["/etc/pf.conf:1: syntax error"]);
        let e = parse("nat on $nope from any to any -> (em0)\n", "f").unwrap_err();
        assert_eq!(e[0], "f:1: macro 'nope' not defined");
        let e = parse("pass all\nnat on em0 from any to any -> (em0)\n", "f").unwrap_err();
        assert!(e[0].starts_with("f:2: Rules must be in order"));
        assert!(parse("nat on em0 from any to any\n", "f").is_err());
        assert!(parse("pass in quick on em0 inte from any to any\n", "f").is_err());
    }

    #[test]
    fn rdr_rules_load_and_malformed_ones_are_refused() {
        let good = "ext_if = \"vtnet0\"\n\
            rdr on $ext_if inet proto tcp from any to ($ext_if) port 80 -> 10.0.1.3 port 80\n\
            rdr on $ext_if inet proto udp from any to any port = 5353 -> 10.0.1.2 port 53\n\
            rdr on $ext_if proto tcp from any to any port 8000:8080 -> 10.0.1.3 port 8000\n";
        let rs = parse(good, "f").expect("parses");
        assert_eq!(
            rs.nat[0],
            "rdr on vtnet0 inet proto tcp from any to (vtnet0) port = 80 -> 10.0.1.3 port 80"
        );
        for bad in [
            "rdr on em0 inet proto tcp from any to any port 80 ->\n",
            "rdr on em0 inet proto tcp from any to any port 80 -> port 80\n",
            "rdr on em0 inet proto tcp from any to any port 70000 -> 10.0.1.3 port 80\n",
            "rdr on em0 inet proto tcp from any to any port 80 -> 10.0.1.3 port 0\n",
            "rdr on em0 inet from any to any port 80 -> 10.0.1.3 port 80\n",
            "rdr on em0 inet proto icmp from any to any port 80 -> 10.0.1.3\n",
            "rdr on em0 inet proto tcp from any to any port 80 -> 10.0.1.3 port\n",
        ] {
            assert_eq!(
                parse(bad, "f").unwrap_err(),
                vec!["f:1: syntax error"],
                "{bad}"
            );
        }
    }
}
