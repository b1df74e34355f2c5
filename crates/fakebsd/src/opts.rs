//! The one option parser of the simulated tools, getopt(3)/getopt_long(3) as FreeBSD has them: single-letter
//! flags that may be combined (`-fr`), options whose value is attached (`-Pfile`) or the next word (`-P file`),
//! long options (`--name`, `--name=value`, `--name value`), `--` ending the options, and operands. A tool either
//! stops at its first operand (getopt without permutation, as most FreeBSD tools) or takes operands between
//! options (getopt_long's permutation, as pkg(8)). A bad option is a [`Usage`] error naming the tool and the
//! option, printed with the tool's usage text and exiting with the tool's own status.

use std::fmt;

use crate::io::Io;

/// Why an option could not be parsed; `Display` is getopt's message without the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptError {
    /// A letter neither in the flags nor in the value options.
    Unknown(char),
    /// A value option at the end of the arguments.
    Missing(char),
    /// A long option the tool does not have.
    UnknownLong(String),
    /// A long option taking a value at the end of the arguments.
    MissingLong(String),
    /// A long flag given a value (`--yes=1`).
    NoValue(String),
}

impl fmt::Display for OptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptError::Unknown(c) => write!(f, "illegal option -- {c}"),
            OptError::Missing(c) => write!(f, "option requires an argument -- {c}"),
            OptError::UnknownLong(n) => write!(f, "unrecognized option `--{n}'"),
            OptError::MissingLong(n) => write!(f, "option requires an argument -- {n}"),
            OptError::NoValue(n) => write!(f, "option doesn't take an argument -- {n}"),
        }
    }
}

/// How a tool words a bad option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// FreeBSD's getopt(3)/getopt_long(3): `tool: illegal option -- x`.
    Getopt,
    /// zfs(8): `invalid option 'x'`, `missing argument for 'x' option` (no program name).
    Zfs,
    /// glibc-style tools (PostgreSQL's): `tool: error: invalid option -- 'x'`.
    Gnu,
}

/// One tool's options: what it tells getopt, and how it reports a bad option.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The program name getopt prefixes its messages with (`pkg`, also for `pkg install`).
    pub tool: &'static str,
    /// Letters taking no value.
    pub flags: &'static str,
    /// Letters taking a value.
    pub valued: &'static str,
    /// Long options: `name` (a flag) or `name=` (takes a value), either followed by `:X` when it is another
    /// spelling of the letter `X` (which then decides whether it takes a value: `yes:y`, `rootdir:r`).
    pub long: &'static [&'static str],
    /// Operands may stand between options (getopt_long's permutation); else the first operand ends the options.
    pub permute: bool,
    /// The usage text printed after the error (empty: none).
    pub usage: &'static str,
    /// The exit status of a usage error.
    pub status: i32,
    /// How the bad option is worded.
    pub style: Style,
}

/// Options of a [`Spec`] with their defaults filled in: no long options, no permutation, status 1.
pub const GETOPT: Spec = Spec {
    tool: "",
    flags: "",
    valued: "",
    long: &[],
    permute: false,
    usage: "",
    status: 1,
    style: Style::Getopt,
};

/// A bad command line: the tool's getopt message (if any) and its usage text, with the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The program name of the message.
    pub tool: &'static str,
    /// The bad option (`None`: wrong operands, only the usage text is printed).
    pub problem: Option<OptError>,
    /// The usage text.
    pub usage: &'static str,
    /// The exit status.
    pub status: i32,
    /// How the problem is worded.
    pub style: Style,
    /// The argument word where the problem is (`-Vz`; empty for wrong operands), for tools that quote it.
    pub word: String,
}

impl Usage {
    /// The line naming the bad option, in the tool's words (`None`: wrong operands).
    pub fn problem_line(&self) -> Option<String> {
        let p = self.problem.as_ref()?;
        Some(match (self.style, p) {
            (Style::Getopt, p) => format!("{}: {p}", self.tool),
            (Style::Zfs, OptError::Unknown(c)) => format!("invalid option '{c}'"),
            (Style::Zfs, OptError::Missing(c)) => format!("missing argument for '{c}' option"),
            (Style::Zfs, p) => p.to_string(),
            (Style::Gnu, OptError::Unknown(c)) => {
                format!("{}: error: invalid option -- '{c}'", self.tool)
            }
            (Style::Gnu, OptError::Missing(c)) => {
                format!("{}: error: option requires an argument -- '{c}'", self.tool)
            }
            (Style::Gnu, p) => format!("{}: error: {p}", self.tool),
        })
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.problem_line(), self.usage.is_empty()) {
            (Some(p), true) => f.write_str(&p),
            (Some(p), false) => write!(f, "{p}\n{}", self.usage),
            (None, _) => f.write_str(self.usage),
        }
    }
}

impl Usage {
    /// Prints the error on stderr and returns the exit status.
    pub fn report(&self, io: &mut Io) -> i32 {
        io.err(&self.to_string());
        self.status
    }
}

/// A parsed command line: the options in the order given (the key of a letter is the letter, of a long option
/// its letter or, without one, its name) and the operands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Options as (key, value).
    pub opts: Vec<(&'static str, Option<String>)>,
    /// Operands in order.
    pub operands: Vec<String>,
}

impl Parsed {
    /// Whether the option `key` was given.
    pub fn has(&self, key: &str) -> bool {
        self.opts.iter().any(|(k, _)| *k == key)
    }

    /// The value of the last `key` given.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

impl Spec {
    /// Parses `args` (without the program name).
    pub fn parse(&self, args: &[String]) -> Result<Parsed, Usage> {
        let mut out = Parsed::default();
        let mut i = 0;
        while i < args.len() {
            let word = args[i].as_str();
            i += 1;
            if word == "--" {
                break;
            }
            if let Some(long) = word.strip_prefix("--") {
                i = self.long_opt(long, args, i, &mut out)?;
            } else if word.len() > 1 && word.starts_with('-') {
                i = self.short_opts(word, args, i, &mut out)?;
            } else if self.permute {
                out.operands.push(word.to_string());
            } else {
                i -= 1;
                break;
            }
        }
        out.operands.extend(args[i..].iter().cloned());
        Ok(out)
    }

    /// A usage error without a bad option (wrong operands): just the usage text and the status.
    pub fn usage(&self) -> Usage {
        Usage {
            tool: self.tool,
            problem: None,
            usage: self.usage,
            status: self.status,
            style: self.style,
            word: String::new(),
        }
    }

    fn error(&self, problem: OptError, word: &str) -> Usage {
        Usage {
            problem: Some(problem),
            word: word.to_string(),
            ..self.usage()
        }
    }

    /// The letters of one word (`-fr`, `-Pfile`); returns the index of the next word.
    fn short_opts(
        &self,
        word: &str,
        args: &[String],
        mut next: usize,
        out: &mut Parsed,
    ) -> Result<usize, Usage> {
        for (pos, c) in word.char_indices().skip(1) {
            if let Some(key) = letter(self.valued, c) {
                let attached = &word[pos + c.len_utf8()..];
                let value = if !attached.is_empty() {
                    attached.to_string()
                } else {
                    let v = args
                        .get(next)
                        .ok_or_else(|| self.error(OptError::Missing(c), word))?;
                    next += 1;
                    v.clone()
                };
                out.opts.push((key, Some(value)));
                return Ok(next);
            }
            let key =
                letter(self.flags, c).ok_or_else(|| self.error(OptError::Unknown(c), word))?;
            out.opts.push((key, None));
        }
        Ok(next)
    }

    /// One `--name[=value]`; returns the index of the next word.
    fn long_opt(
        &self,
        word: &str,
        args: &[String],
        mut next: usize,
        out: &mut Parsed,
    ) -> Result<usize, Usage> {
        let (name, attached) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        let (key, takes) = self
            .long
            .iter()
            .find_map(|l| self.long_entry(l, name))
            .ok_or_else(|| {
                self.error(
                    OptError::UnknownLong(name.to_string()),
                    &format!("--{word}"),
                )
            })?;
        let value = match (takes, attached) {
            (false, Some(_)) => {
                return Err(self.error(OptError::NoValue(name.to_string()), &format!("--{word}")))
            }
            (false, None) => None,
            (true, Some(v)) => Some(v),
            (true, None) => {
                let v = args.get(next).ok_or_else(|| {
                    self.error(
                        OptError::MissingLong(name.to_string()),
                        &format!("--{word}"),
                    )
                })?;
                next += 1;
                Some(v.clone())
            }
        };
        out.opts.push((key, value));
        Ok(next)
    }

    /// The key of long entry `entry` and whether it takes a value, if it is the option `name`.
    fn long_entry(&self, entry: &'static str, name: &str) -> Option<(&'static str, bool)> {
        let (spelled, alias) = match entry.split_once(':') {
            Some((s, a)) => (s, Some(a)),
            None => (entry, None),
        };
        let (bare, takes) = match spelled.strip_suffix('=') {
            Some(b) => (b, true),
            None => (spelled, false),
        };
        if bare != name {
            return None;
        }
        match alias.and_then(|a| a.chars().next()) {
            Some(c) => match (letter(self.valued, c), letter(self.flags, c)) {
                (Some(k), _) => Some((k, true)),
                (None, Some(k)) => Some((k, false)),
                (None, None) => None,
            },
            None => Some((bare, takes)),
        }
    }
}

/// The letter `c` of `set` as a key borrowed from the spec.
fn letter(set: &'static str, c: char) -> Option<&'static str> {
    set.find(c).map(|i| &set[i..i + c.len_utf8()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const DAEMON: Spec = Spec {
        tool: "daemon",
        flags: "fr",
        valued: "Pp",
        usage: "usage: daemon [-fr] [-P file] [-p file] command",
        ..GETOPT
    };

    const PKG: Spec = Spec {
        tool: "pkg",
        flags: "yq",
        valued: "r",
        long: &["yes:y", "quiet:q", "rootdir:r", "no-scripts", "tags="],
        permute: true,
        usage: "Usage: pkg install [-qy] <pkg-name> ...",
        status: 64,
        style: Style::Getopt,
    };

    fn opts(p: &Parsed) -> Vec<(&str, Option<&str>)> {
        p.opts.iter().map(|(k, v)| (*k, v.as_deref())).collect()
    }

    #[test]
    fn combined_flags_attached_and_separate_values_then_operands() {
        let p = DAEMON
            .parse(&words("-fr -P/var/run/x.pid -p y prog -f arg"))
            .unwrap();
        assert_eq!(
            opts(&p),
            vec![
                ("f", None),
                ("r", None),
                ("P", Some("/var/run/x.pid")),
                ("p", Some("y"))
            ]
        );
        assert_eq!(p.operands, words("prog -f arg"));
        let p = DAEMON.parse(&words("-f -- -r")).unwrap();
        assert_eq!(opts(&p), vec![("f", None)]);
        assert_eq!(p.operands, words("-r"));
        // A lone `-` is an operand (stdin), and a value may start with `-`.
        let p = DAEMON.parse(&words("-p -r - x")).unwrap();
        assert_eq!(opts(&p), vec![("p", Some("-r"))]);
        assert_eq!(p.operands, words("- x"));
    }

    #[test]
    fn unknown_and_missing_values_are_usage_errors_naming_tool_and_option() {
        let e = DAEMON.parse(&words("-fx prog")).unwrap_err();
        assert_eq!(e.problem, Some(OptError::Unknown('x')));
        assert_eq!(
            e.to_string(),
            "daemon: illegal option -- x\nusage: daemon [-fr] [-P file] [-p file] command"
        );
        assert_eq!(e.status, 1);
        let e = DAEMON.parse(&words("-P")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("daemon: option requires an argument -- P\n"));
        let mut io = Io::default();
        assert_eq!(PKG.parse(&words("-z")).unwrap_err().report(&mut io), 64);
        assert_eq!(
            io.err,
            "pkg: illegal option -- z\nUsage: pkg install [-qy] <pkg-name> ...\n"
        );
    }

    #[test]
    fn long_options_alias_letters_take_values_and_permute() {
        let p = PKG
            .parse(&words(
                "a --yes b --rootdir=/r --tags x,y -q --no-scripts c",
            ))
            .unwrap();
        assert_eq!(
            opts(&p),
            vec![
                ("y", None),
                ("r", Some("/r")),
                ("tags", Some("x,y")),
                ("q", None),
                ("no-scripts", None)
            ]
        );
        assert_eq!(p.operands, words("a b c"));
        assert!(p.has("y") && !p.has("yes"));
        assert_eq!(p.value("tags"), Some("x,y"));
        let p = PKG.parse(&words("a -- -y")).unwrap();
        assert_eq!(p.operands, words("a -y"));
        let err = |s: &str| PKG.parse(&words(s)).unwrap_err().problem.unwrap();
        assert_eq!(err("--nope"), OptError::UnknownLong("nope".into()));
        assert_eq!(err("--yes=1"), OptError::NoValue("yes".into()));
        assert_eq!(err("x --tags"), OptError::MissingLong("tags".into()));
        assert_eq!(
            err("--nope").to_string(),
            "unrecognized option `--nope'",
            "FreeBSD getopt_long's wording"
        );
    }

    #[test]
    fn repeats_are_kept_in_order_and_value_is_the_last() {
        let p = DAEMON.parse(&words("-p a -pb -p c x")).unwrap();
        assert_eq!(
            opts(&p),
            vec![("p", Some("a")), ("p", Some("b")), ("p", Some("c"))]
        );
        assert_eq!(p.value("p"), Some("c"));
        assert_eq!(p.value("P"), None);
    }

    #[test]
    fn each_style_words_the_problem_as_its_tool_does_and_keeps_the_word() {
        let zfs = Spec {
            tool: "zfs",
            flags: "p",
            valued: "o",
            style: Style::Zfs,
            status: 2,
            ..GETOPT
        };
        let e = zfs.parse(&words("-pq x")).unwrap_err();
        assert_eq!(e.problem_line().unwrap(), "invalid option 'q'");
        assert_eq!((e.word.as_str(), e.status), ("-pq", 2));
        let e = zfs.parse(&words("-p -o")).unwrap_err();
        assert_eq!(e.to_string(), "missing argument for 'o' option");
        let psql = Spec {
            tool: "psql",
            flags: "A",
            long: &["no-align:A"],
            usage: "psql: hint: Try \"psql --help\" for more information.",
            style: Style::Gnu,
            ..GETOPT
        };
        let e = psql.parse(&words("-Az")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "psql: error: invalid option -- 'z'\npsql: hint: Try \"psql --help\" for more information."
        );
        let e = psql.parse(&words("--nope=1")).unwrap_err();
        assert_eq!(e.word, "--nope=1");
        assert_eq!(DAEMON.usage().to_string(), DAEMON.usage);
    }

    /// One option or operand word of a generated command line, and what the parser must make of it.
    #[derive(Debug, Clone)]
    enum Item {
        Flags(String),
        Valued(char, String, bool),
        Operand(String),
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            "[fr]{1,3}".prop_map(Item::Flags),
            (
                prop_oneof![Just('P'), Just('p')],
                "[a-z/-]{1,6}",
                any::<bool>()
            )
                .prop_map(|(c, v, attached)| Item::Valued(c, v, attached)),
            "[a-z][a-z0-9-]{0,5}".prop_map(Item::Operand),
        ]
    }

    proptest! {
        /// Options before the first operand are exactly the generated ones; everything from the first operand on
        /// is operands, untouched (getopt without permutation).
        #[test]
        fn getopt_stops_at_the_first_operand(items in proptest::collection::vec(item(), 0..8)) {
            let mut args = vec![];
            let mut want = vec![];
            let mut rest: Option<usize> = None;
            for it in &items {
                if let Item::Operand(w) = it {
                    rest.get_or_insert(args.len());
                    args.push(w.clone());
                    continue;
                }
                match it {
                    Item::Flags(f) => {
                        args.push(format!("-{f}"));
                        if rest.is_none() {
                            want.extend(f.chars().map(|c| (c.to_string(), None)));
                        }
                    }
                    Item::Valued(c, v, attached) => {
                        if *attached {
                            args.push(format!("-{c}{v}"));
                        } else {
                            args.push(format!("-{c}"));
                            args.push(v.clone());
                        }
                        if rest.is_none() {
                            want.push((c.to_string(), Some(v.clone())));
                        }
                    }
                    Item::Operand(_) => unreachable!(),
                }
            }
            let p = DAEMON.parse(&args).unwrap();
            let got: Vec<(String, Option<String>)> =
                p.opts.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(&p.operands[..], &args[rest.unwrap_or(args.len())..]);
        }

        /// Any word made of letters outside the spec is refused, naming the first bad letter.
        #[test]
        fn an_unknown_letter_is_named(bad in "[a-eg-oqs-z]", before in "[fr]{0,2}") {
            let e = DAEMON.parse(&[format!("-{before}{bad}")]).unwrap_err();
            prop_assert_eq!(e.problem, Some(OptError::Unknown(bad.chars().next().unwrap())));
        }
    }
}
