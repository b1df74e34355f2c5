//! getopt(3)-style option parsing shared by the simulated tools: single-letter flags that may be combined
//! (`-fr`), options whose value is attached (`-Pfile`) or the next word (`-P file`), `--` ending the options,
//! and parsing stopping at the first operand (as FreeBSD's getopt does without `+`/permutation).

use std::fmt;

/// Why an option could not be parsed; `Display` is getopt's message without the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptError {
    /// A letter neither in the flags nor in the value options.
    Unknown(char),
    /// A value option at the end of the arguments.
    Missing(char),
}

impl fmt::Display for OptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptError::Unknown(c) => write!(f, "illegal option -- {c}"),
            OptError::Missing(c) => write!(f, "option requires an argument -- {c}"),
        }
    }
}

/// A parser over one tool's arguments.
pub struct Parser<'a> {
    args: &'a [String],
    flags: &'static str,
    valued: &'static str,
    /// Index of the next word.
    next: usize,
    /// Position inside a word of combined letters (0: start a new word).
    pos: usize,
}

impl<'a> Parser<'a> {
    /// A parser for `args` where the letters of `flags` take no value and those of `valued` take one.
    pub fn new(args: &'a [String], flags: &'static str, valued: &'static str) -> Parser<'a> {
        Parser {
            args,
            flags,
            valued,
            next: 0,
            pos: 0,
        }
    }

    /// The next option as (letter, value), `None` at the first operand or after `--`.
    pub fn next_opt(&mut self) -> Result<Option<(char, Option<String>)>, OptError> {
        if self.pos == 0 {
            let Some(word) = self.args.get(self.next) else {
                return Ok(None);
            };
            if word == "--" {
                self.next += 1;
                return Ok(None);
            }
            if !word.starts_with('-') || word == "-" {
                return Ok(None);
            }
            self.pos = 1;
        }
        let word = &self.args[self.next];
        let c = word[self.pos..].chars().next().unwrap_or('-');
        self.pos += c.len_utf8();
        let at_end = self.pos >= word.len();
        if self.valued.contains(c) {
            let value = if !at_end {
                word[self.pos..].to_string()
            } else {
                self.next += 1;
                match self.args.get(self.next) {
                    Some(v) => v.clone(),
                    None => {
                        self.pos = 0;
                        return Err(OptError::Missing(c));
                    }
                }
            };
            self.next += 1;
            self.pos = 0;
            return Ok(Some((c, Some(value))));
        }
        if at_end {
            self.next += 1;
            self.pos = 0;
        }
        if self.flags.contains(c) {
            Ok(Some((c, None)))
        } else {
            Err(OptError::Unknown(c))
        }
    }

    /// The operands after the options.
    pub fn rest(&self) -> &'a [String] {
        &self.args[self.next.min(self.args.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn all(s: &str) -> (Vec<(char, Option<String>)>, Vec<String>) {
        let a = words(s);
        let mut p = Parser::new(&a, "fr", "Pp");
        let mut got = vec![];
        while let Some(o) = p.next_opt().unwrap() {
            got.push(o);
        }
        (got, p.rest().to_vec())
    }

    #[test]
    fn combined_flags_attached_and_separate_values_then_operands() {
        let (opts, rest) = all("-fr -P/var/run/x.pid -p y prog -f arg");
        assert_eq!(
            opts,
            vec![
                ('f', None),
                ('r', None),
                ('P', Some("/var/run/x.pid".into())),
                ('p', Some("y".into())),
            ]
        );
        assert_eq!(rest, words("prog -f arg"));
        let (opts, rest) = all("-f -- -r");
        assert_eq!(opts, vec![('f', None)]);
        assert_eq!(rest, words("-r"));
    }

    #[test]
    fn unknown_and_missing_values_are_getopt_errors() {
        let a = words("-fx");
        let mut p = Parser::new(&a, "fr", "Pp");
        assert_eq!(p.next_opt(), Ok(Some(('f', None))));
        assert_eq!(p.next_opt(), Err(OptError::Unknown('x')));
        let a = words("-P");
        let mut p = Parser::new(&a, "fr", "Pp");
        let e = p.next_opt().unwrap_err();
        assert_eq!(e.to_string(), "option requires an argument -- P");
    }
}
