//! The in-jail `sh` (`jexec JAIL sh -c '…'`, `/bin/sh -c`, a script file, or a script on stdin).
//!
//! Runs this machine's bash (as `sh`, POSIX mode) with cwd at the jail's root, an empty environment but
//! the jail's, and PATH holding only `$FAKEBSD_STATE/jailbin` (fakebsd's in-jail tools plus a few
//! read-only utilities). Before it runs, the script is checked and rewritten so it cannot reach this
//! machine's files or programs:
//! - a command named by absolute path runs the in-jail tool of that name, or the script is refused;
//! - `>`/`<` targets that are absolute paths are rewritten to the jail's file (symlinks followed inside
//!   the jail; read-only nullfs refused); computed targets (`> "$f"`) are refused;
//! - `eval`, `trap`, `alias`, `command -p` are refused; `test`/`[`/`hash`/`builtin`/`enable` are
//!   disabled as shell built-ins (so `test`/`[` are the jail's); `cd` maps absolute paths into the jail
//!   and never leaves its root; PATH is read-only.
//!
//! - a command word computed at run time (`exec "$@"`, `$CMD`) runs through the in-jail dispatcher
//!   ([`RUN_COMPUTED`]), which applies the same rule to the path it expands to.
//!
//! Gaps: `pwd` and `$PWD` show the real directory.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::io::Io;
use crate::jailfs::{
    self, JailEnv, JailFs, Outcome, BIN_DIRS, HOST_UTILS, JAIL_TOOLS, RUN_COMPUTED,
};
use crate::state::{Ctx, ENV_JAIL, ENV_STATE};

const PRELUDE: &str = r#"enable -n test '[' hash builtin enable 2>/dev/null
cd() {
  case "$1" in
    /*) command cd "$FAKEBSD_JAIL_ROOT$1" ;;
    "") command cd "$FAKEBSD_JAIL_ROOT${HOME:-/}" ;;
    *) command cd "$@" ;;
  esac || return
  case "$PWD/" in "$FAKEBSD_JAIL_ROOT"/*) ;; *) command cd "$FAKEBSD_JAIL_ROOT" ;; esac
}
readonly PATH FAKEBSD_JAIL_ROOT
"#;

/// Makes sure `$FAKEBSD_STATE/jailbin` links every in-jail tool to this binary and the allowed utilities
/// to this machine's.
pub fn ensure_jailbin(cx: &Ctx) -> Result<PathBuf, String> {
    let dir = cx.dir.join("jailbin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("fakebsd: {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("fakebsd: {e}"))?;
    let mut want: Vec<(String, PathBuf)> = JAIL_TOOLS
        .iter()
        .map(|t| (t.to_string(), exe.clone()))
        .collect();
    for u in HOST_UTILS {
        if let Some(p) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(u))
            .find(|p| p.is_file())
        {
            want.push((u.to_string(), p));
        }
    }
    for (name, target) in want {
        let link = dir.join(&name);
        if std::fs::read_link(&link).ok().as_ref() == Some(&target) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(format!("fakebsd: {}: {e}", link.display()));
            }
        }
    }
    Ok(dir)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[derive(Debug)]
enum Kind {
    Word,
    Op,
    Redir(String),
}

#[derive(Debug)]
struct Tok {
    start: usize,
    end: usize,
    kind: Kind,
    /// The word's literal value (None when it has expansions).
    lit: Option<String>,
    /// Replacement text (command substitutions rewritten).
    raw: Option<String>,
}

struct Checker<'a> {
    cx: &'a Ctx,
    fs: &'a JailFs,
    cwd: &'a str,
}

impl Checker<'_> {
    /// Lexes `s`, checking command substitutions recursively.
    fn lex(&self, s: &str) -> Result<Vec<Tok>, String> {
        let b: Vec<char> = s.chars().collect();
        // Byte offsets of each char, for spans.
        let offs: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let mut toks = vec![];
        let mut i = 0;
        let mut heredocs: Vec<(String, bool)> = vec![];
        while i < b.len() {
            let c = b[i];
            if c == '\\' && b.get(i + 1) == Some(&'\n') {
                i += 2;
                continue;
            }
            if c == ' ' || c == '\t' {
                i += 1;
                continue;
            }
            if c == '#' {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            if c == '\n' {
                toks.push(Tok {
                    start: offs[i],
                    end: offs[i + 1],
                    kind: Kind::Op,
                    lit: None,
                    raw: None,
                });
                i += 1;
                // Skip here-document bodies.
                for (delim, strip) in std::mem::take(&mut heredocs) {
                    loop {
                        let st = i;
                        while i < b.len() && b[i] != '\n' {
                            i += 1;
                        }
                        let line: String = b[st..i].iter().collect();
                        i = (i + 1).min(b.len());
                        let l = if strip {
                            line.trim_start_matches('\t')
                        } else {
                            &line
                        };
                        if l == delim || i >= b.len() {
                            break;
                        }
                    }
                }
                continue;
            }
            // Operators and redirections (with an optional fd number before them).
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let at = |k: usize, t: &str| -> bool {
                t.chars().enumerate().all(|(n, x)| b.get(k + n) == Some(&x))
            };
            let redirs = [
                "<<-", "&>>", ">>", ">|", ">&", "<<", "<&", "<>", "&>", ">", "<",
            ];
            if let Some(r) = redirs
                .iter()
                .find(|r| at(j, r))
                .filter(|r| j == i || !r.starts_with('&'))
            {
                let end = j + r.chars().count();
                toks.push(Tok {
                    start: offs[i],
                    end: offs[end],
                    kind: Kind::Redir(r.to_string()),
                    lit: None,
                    raw: None,
                });
                i = end;
                if r.starts_with("<<") {
                    // The delimiter is the next word.
                    let (w, ni) = self.word(&b, &offs, s, skip_blank(&b, i))?;
                    let delim = w
                        .lit
                        .clone()
                        .unwrap_or_else(|| s[w.start..w.end].replace(['\'', '"', '\\'], ""));
                    heredocs.push((delim, *r == "<<-"));
                    toks.push(w);
                    i = ni;
                }
                continue;
            }
            if let Some(op) = ["&&", "||", ";;", ";", "|", "&", "(", ")"]
                .iter()
                .find(|o| at(i, o))
            {
                let end = i + op.len();
                toks.push(Tok {
                    start: offs[i],
                    end: offs[end],
                    kind: Kind::Op,
                    lit: None,
                    raw: None,
                });
                i = end;
                continue;
            }
            let (w, ni) = self.word(&b, &offs, s, i)?;
            toks.push(w);
            i = ni;
        }
        Ok(toks)
    }

    /// Reads one word starting at `i`.
    fn word(
        &self,
        b: &[char],
        offs: &[usize],
        s: &str,
        mut i: usize,
    ) -> Result<(Tok, usize), String> {
        let start = i;
        let mut lit = String::new();
        let mut dynamic = false;
        let mut raw = String::new();
        let mut changed = false;
        while i < b.len() {
            let c = b[i];
            if " \t\n;&|()<>".contains(c) {
                break;
            }
            match c {
                '\\' => {
                    if let Some(&n) = b.get(i + 1) {
                        lit.push(n);
                        raw.push('\\');
                        raw.push(n);
                    }
                    i += 2;
                }
                '\'' => {
                    raw.push('\'');
                    i += 1;
                    while i < b.len() && b[i] != '\'' {
                        lit.push(b[i]);
                        raw.push(b[i]);
                        i += 1;
                    }
                    raw.push('\'');
                    i += 1;
                }
                '"' => {
                    raw.push('"');
                    i += 1;
                    while i < b.len() && b[i] != '"' {
                        if b[i] == '\\' && i + 1 < b.len() {
                            lit.push(b[i + 1]);
                            raw.push(b[i]);
                            raw.push(b[i + 1]);
                            i += 2;
                            continue;
                        }
                        if b[i] == '$' || b[i] == '`' {
                            dynamic = true;
                            let (r, ni, ch) = self.subst(b, i)?;
                            changed |= ch;
                            raw.push_str(&r);
                            i = ni;
                            continue;
                        }
                        lit.push(b[i]);
                        raw.push(b[i]);
                        i += 1;
                    }
                    raw.push('"');
                    i += 1;
                }
                '$' | '`' => {
                    dynamic = true;
                    let (r, ni, ch) = self.subst(b, i)?;
                    changed |= ch;
                    raw.push_str(&r);
                    i = ni;
                }
                '*' | '?' | '[' if i > start || c != '[' => {
                    dynamic = true;
                    raw.push(c);
                    i += 1;
                }
                _ => {
                    lit.push(c);
                    raw.push(c);
                    i += 1;
                }
            }
        }
        let end = i.min(b.len());
        let tok = Tok {
            start: offs[start],
            end: offs[end],
            kind: Kind::Word,
            lit: (!dynamic).then_some(lit),
            raw: changed.then_some(raw),
        };
        let _ = s;
        Ok((tok, end))
    }

    /// A `$…` or backquote expansion at `i`: returns its (rewritten) text, the next index, and
    /// whether it changed.
    fn subst(&self, b: &[char], i: usize) -> Result<(String, usize, bool), String> {
        let (open, close, skip) = if b[i] == '`' {
            ('`', '`', 1)
        } else if b.get(i + 1) == Some(&'(') {
            ('(', ')', 2)
        } else if b.get(i + 1) == Some(&'{') {
            ('{', '}', 2)
        } else {
            // $name, $1, $@ …
            let mut j = i + 1;
            if j < b.len() && "@*#?-$!0123456789".contains(b[j]) {
                j += 1;
            } else {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                    j += 1;
                }
            }
            return Ok((b[i..j].iter().collect(), j, false));
        };
        let mut depth = 1;
        let mut j = i + skip;
        let mut q: Option<char> = None;
        while j < b.len() {
            let c = b[j];
            match q {
                Some(qc) => {
                    if c == '\\' && qc == '"' {
                        j += 1;
                    } else if c == qc {
                        q = None;
                    }
                }
                None => {
                    if c == '\\' {
                        j += 1;
                    } else if c == '\'' || c == '"' {
                        q = Some(c);
                    } else if open == '`' && c == '`' {
                        depth = 0;
                    } else if c == open && open != '`' {
                        depth += 1;
                    } else if c == close {
                        depth -= 1;
                    }
                }
            }
            if depth == 0 {
                break;
            }
            j += 1;
        }
        if j >= b.len() {
            return Err("sh: syntax error: unterminated substitution".into());
        }
        let inner: String = b[i + skip..j].iter().collect();
        let text: String = b[i..=j].iter().collect();
        if open == '{' {
            return Ok((text, j + 1, false));
        }
        let checked = self.check(&inner)?;
        if checked == inner {
            return Ok((text, j + 1, false));
        }
        let prefix: String = b[i..i + skip].iter().collect();
        Ok((format!("{prefix}{checked}{close}"), j + 1, true))
    }

    /// Checks and rewrites a script: every token in turn, then the replacements spliced in.
    fn check(&self, s: &str) -> Result<String, String> {
        let toks = self.lex(s)?;
        let mut st = Scan {
            cmd_pos: true,
            ..Scan::default()
        };
        for t in &toks {
            if let Some(r) = &t.raw {
                st.repl.push((t.start, t.end, r.clone()));
            }
            match &t.kind {
                Kind::Op => {
                    st = Scan {
                        cmd_pos: true,
                        skip_until_do: st.skip_until_do,
                        repl: std::mem::take(&mut st.repl),
                        ..Scan::default()
                    };
                }
                Kind::Redir(r) => st.target = Some(r.clone()),
                Kind::Word => self.check_word(s, t, &mut st)?,
            }
        }
        Ok(splice(s, st.repl))
    }

    /// One word: a redirection's target, a sourced file, a loop or case head, or a command word.
    fn check_word(&self, s: &str, t: &Tok, st: &mut Scan) -> Result<(), String> {
        if let Some(op) = st.target.take() {
            return self.redirect_target(s, t, &op, st);
        }
        let lit = t.lit.clone();
        if st.source_next {
            st.source_next = false;
            if let Some(r) = lit
                .as_deref()
                .map(|l| self.map_path(l))
                .transpose()?
                .flatten()
            {
                st.repl.push((t.start, t.end, r));
            }
            return Ok(());
        }
        if st.skip_until_do {
            if lit.as_deref() == Some("do") {
                st.skip_until_do = false;
                st.cmd_pos = true;
            }
            return Ok(());
        }
        if st.case_head {
            if lit.as_deref() == Some("in") {
                st.case_head = false;
                st.cmd_pos = true;
            }
            return Ok(());
        }
        if !st.cmd_pos {
            return Ok(());
        }
        let Some(w) = lit else {
            let text = t
                .raw
                .clone()
                .unwrap_or_else(|| s[t.start..t.end].to_string());
            if is_assignment(&text) {
                // `NAME=$x cmd`: still in command position.
                return Ok(());
            }
            // A computed command word: run through the in-jail dispatcher, which refuses an
            // absolute path outside the jail's commands as this check does for a literal one.
            st.cmd_pos = false;
            st.repl.retain(|x| x.0 != t.start);
            st.repl
                .push((t.start, t.end, format!("{RUN_COMPUTED} {text}")));
            return Ok(());
        };
        command_word(t, &w, st)
    }

    /// The target of a redirection: a literal path, mapped to the jail's file when absolute.
    fn redirect_target(&self, s: &str, t: &Tok, op: &str, st: &mut Scan) -> Result<(), String> {
        if op.starts_with("<<") {
            return Ok(());
        }
        let dup = (op == ">&" || op == "<&")
            && t.lit
                .as_deref()
                .is_some_and(|l| l == "-" || l.chars().all(|c| c.is_ascii_digit()));
        if dup {
            return Ok(());
        }
        let Some(lit) = &t.lit else {
            return Err(format!(
                "refusing a redirection to a computed path ({})",
                &s[t.start..t.end]
            ));
        };
        if let Some(r) = self.map_path(lit)? {
            st.repl.retain(|x| x.0 != t.start);
            st.repl.push((t.start, t.end, r));
        }
        Ok(())
    }

    /// An absolute path in a redirection or `.`: the real path of the jail's file, quoted.
    fn map_path(&self, p: &str) -> Result<Option<String>, String> {
        if !p.starts_with('/') {
            return Ok(None);
        }
        if matches!(
            p,
            "/dev/null" | "/dev/stdin" | "/dev/stdout" | "/dev/stderr" | "/dev/tty"
        ) || p.starts_with("/dev/fd/")
        {
            return Ok(None);
        }
        let (h, ro) = self.fs.resolve(self.cx, p, self.cwd)?;
        if ro {
            return Err(format!("{p}: Read-only file system"));
        }
        Ok(Some(quote(&h.to_string_lossy())))
    }
}

fn skip_blank(b: &[char], mut i: usize) -> usize {
    while i < b.len() && (b[i] == ' ' || b[i] == '\t') {
        i += 1;
    }
    i
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((n, _)) => {
            let mut c = n.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        }
        None => false,
    }
}

/// Where the checker is in a script: what the next word is, and the replacements so far
/// (start, end, text).
#[derive(Default)]
struct Scan {
    cmd_pos: bool,
    target: Option<String>,
    skip_until_do: bool,
    case_head: bool,
    after_command: bool,
    source_next: bool,
    repl: Vec<(usize, usize, String)>,
}

/// A literal word in command position: a keyword, a builtin that changes what follows, or the command
/// (a path only to the jail's commands).
fn command_word(t: &Tok, w: &str, st: &mut Scan) -> Result<(), String> {
    if st.after_command && w == "-p" {
        return Err("refusing 'command -p' (it searches this machine's PATH)".into());
    }
    match w {
        "if" | "then" | "else" | "elif" | "fi" | "do" | "done" | "while" | "until" | "{" | "}"
        | "!" | "esac" | "time" | "exec" | "nohup" => return Ok(()),
        "for" | "select" => {
            st.skip_until_do = true;
            return Ok(());
        }
        "case" => {
            st.case_head = true;
            return Ok(());
        }
        "eval" | "trap" | "alias" => {
            return Err(format!(
                "refusing '{w}' (fakebsd cannot check what it would run)"
            ));
        }
        "command" => {
            st.after_command = true;
            return Ok(());
        }
        "." | "source" => {
            st.source_next = true;
            st.cmd_pos = false;
            return Ok(());
        }
        _ => {}
    }
    if st.after_command && w.starts_with('-') {
        return Ok(());
    }
    st.after_command = false;
    if is_assignment(w) {
        return Ok(());
    }
    st.cmd_pos = false;
    if !w.contains('/') {
        return Ok(());
    }
    let name = w.rsplit('/').next().unwrap_or(w);
    let dir = w.rsplit_once('/').map(|x| x.0).unwrap_or("");
    // `/NAME` (its dir is "") or a path in one of the command directories.
    let ok_dir = dir.is_empty() || BIN_DIRS.contains(&dir);
    if ok_dir && (JAIL_TOOLS.contains(&name) || HOST_UTILS.contains(&name)) {
        st.repl.retain(|x| x.0 != t.start);
        st.repl.push((t.start, t.end, quote(name)));
        return Ok(());
    }
    Err(format!(
        "refusing to run {w}: only fakebsd's in-jail commands run inside jails"
    ))
}

/// `s` with the replacements (start, end, text) spliced in; an overlapped one is dropped.
fn splice(s: &str, mut repl: Vec<(usize, usize, String)>) -> String {
    repl.sort_by_key(|x| x.0);
    let mut out = String::new();
    let mut pos = 0;
    for (st, en, r) in repl {
        if st < pos {
            continue;
        }
        out.push_str(&s[pos..st]);
        out.push_str(&r);
        pos = en;
    }
    out.push_str(&s[pos..]);
    out
}

/// Checks and rewrites `script` for jail `fs` (exposed for tests of the checker).
pub fn check_script(cx: &Ctx, fs: &JailFs, cwd: &str, script: &str) -> Result<String, String> {
    Checker { cx, fs, cwd }.check(script)
}

/// The in-jail `sh`.
pub fn sh(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> Outcome {
    let mut opts: Vec<String> = vec![];
    let mut cmd_mode = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            let flags: String = a[1..].chars().filter(|c| *c != 'c').collect();
            if a[1..].contains('c') {
                cmd_mode = true;
            }
            if a[1..].contains('o') {
                // -o OPTION takes the next word.
                opts.push(a.clone());
                i += 1;
                if let Some(v) = args.get(i) {
                    opts.push(v.clone());
                }
                i += 1;
                continue;
            }
            if !flags.is_empty() {
                opts.push(format!("{}{flags}", &a[..1]));
            }
            i += 1;
            continue;
        }
        break;
    }
    let rest = &args[i.min(args.len())..];
    let (script, zero, params): (String, String, Vec<String>) = if cmd_mode {
        let Some(s) = rest.first() else {
            io.err("sh: -c: option requires an argument");
            return Outcome::Done(2);
        };
        let zero = rest.get(1).cloned().unwrap_or("sh".into());
        (s.clone(), zero, rest.iter().skip(2).cloned().collect())
    } else if let Some(file) = rest.first() {
        match fs.resolve(cx, file, &je.cwd) {
            Ok((h, _)) if h.is_file() => (
                std::fs::read_to_string(&h).unwrap_or_default(),
                file.clone(),
                rest[1..].to_vec(),
            ),
            _ => {
                io.err(&format!(
                    "sh: cannot open {file}: No such file or directory"
                ));
                return Outcome::Done(2);
            }
        }
    } else {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
        (s, "sh".into(), vec![])
    };
    let checked = match check_script(cx, fs, &je.cwd, &script) {
        Ok(s) => s,
        Err(e) => {
            io.err(&format!("fakebsd: sh: {e}"));
            return Outcome::Done(126);
        }
    };
    let Some(bash) = ["/bin/bash", "/usr/bin/bash"]
        .iter()
        .find(|b| Path::new(b).is_file())
    else {
        io.err("fakebsd: sh: running in-jail scripts needs bash on this machine");
        return Outcome::Done(127);
    };
    let jailbin = match ensure_jailbin(cx) {
        Ok(d) => d,
        Err(e) => {
            io.err(&e);
            return Outcome::Done(127);
        }
    };
    let root = match fs.resolve(cx, "/", "/") {
        Ok((r, _)) => r,
        Err(e) => {
            io.err(&format!("fakebsd: sh: {e}"));
            return Outcome::Done(127);
        }
    };
    let cwd = fs
        .resolve(cx, &je.cwd, "/")
        .ok()
        .map(|x| x.0)
        .filter(|p| p.is_dir())
        .unwrap_or(root.clone());
    let mut c = Command::new(bash);
    c.arg0("sh");
    c.args(&opts);
    c.arg("-c")
        .arg(format!("{PRELUDE}{checked}"))
        .arg(zero)
        .args(params);
    c.env_clear();
    c.envs(&je.env);
    c.env("PATH", &jailbin)
        .env(ENV_STATE, &cx.dir)
        .env(ENV_JAIL, &je.name)
        .env(jailfs::ENV_JAIL_USER, &je.user)
        .env(jailfs::ENV_JAIL_ROOT, &root);
    if je.lock_held {
        c.env("FAKEBSD_LOCK_HELD", &cx.dir);
    }
    c.current_dir(cwd);
    Outcome::Spawn(Box::new(c))
}
