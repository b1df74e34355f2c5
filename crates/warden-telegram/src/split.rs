//! Splitting a reply into messages Telegram accepts: at most 4096 UTF-16 code units each
//! (Telegram counts text length in UTF-16), cut at a paragraph break, else a line break, else a
//! space, else wherever the limit falls (never inside a character). No part is empty or blank:
//! Telegram refuses those.

/// Telegram's limit on a message's text, in UTF-16 code units.
pub const MAX_MESSAGE_UTF16: usize = 4096;

/// Length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// The largest byte index `i` such that `text[..i]` has at most `max` UTF-16 units.
fn byte_index_at_units(text: &str, max: usize) -> usize {
    let mut units = 0;
    for (i, c) in text.char_indices() {
        units += c.len_utf16();
        if units > max {
            return i;
        }
    }
    text.len()
}

/// The cut point of a window: a late paragraph or line break first (so parts are not tiny), then
/// any paragraph or line break, then whitespace, then the window's end.
fn cut_point(window: &str) -> usize {
    let half = window.len() / 2;
    let late = |i: &usize| *i >= half;
    let some = |i: &usize| *i > 0;
    window
        .rfind("\n\n")
        .filter(late)
        .or_else(|| window.rfind('\n').filter(late))
        .or_else(|| window.rfind("\n\n").filter(some))
        .or_else(|| window.rfind('\n').filter(some))
        .or_else(|| window.rfind(char::is_whitespace).filter(some))
        .unwrap_or(window.len())
}

/// Splits `text` into parts of at most `max` UTF-16 units (`max` ≥ 2, so a surrogate pair fits).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(['\n', '\r']);
        if rest.trim().is_empty() {
            return parts;
        }
        if utf16_len(rest) <= max {
            parts.push(rest.trim_end().to_string());
            return parts;
        }
        let limit = byte_index_at_units(rest, max);
        let cut = cut_point(&rest[..limit]);
        let part = rest[..cut].trim_end();
        if !part.trim().is_empty() {
            parts.push(part.to_string());
        }
        rest = &rest[cut..];
        // A cut at a space drops that one space (it would start the next message).
        if let Some(c) = rest.chars().next().filter(|c| *c == ' ' || *c == '\t') {
            rest = &rest[c.len_utf8()..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn squeeze(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn short_text_is_one_part_and_blank_is_none() {
        assert_eq!(split("hello", 4096), vec!["hello"]);
        assert!(split(" \n\n ", 4096).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_lines() {
        let text = format!(
            "{}\n\n{}\n{}",
            "a".repeat(30),
            "b".repeat(10),
            "c".repeat(15)
        );
        assert_eq!(
            split(&text, 45),
            vec![
                "a".repeat(30),
                format!("{}\n{}", "b".repeat(10), "c".repeat(15))
            ]
        );
        let lines = format!("{}\n{}\n{}", "a".repeat(20), "b".repeat(20), "c".repeat(20));
        assert_eq!(
            split(&lines, 45),
            vec![
                format!("{}\n{}", "a".repeat(20), "b".repeat(20)),
                "c".repeat(20)
            ]
        );
    }

    #[test]
    fn counts_utf16_units_and_keeps_surrogate_pairs_whole() {
        // 😀 is two UTF-16 units: 2049 of them is 4098 units.
        let text = "😀".repeat(2049);
        let parts = split(&text, MAX_MESSAGE_UTF16);
        assert_eq!(parts.len(), 2);
        assert_eq!(utf16_len(&parts[0]), 4096);
        assert_eq!(parts[1], "😀");
    }

    fn line() -> impl Strategy<Value = String> {
        // Lines of ASCII, accented letters and astral emoji (two UTF-16 units each), some blank.
        proptest::collection::vec(
            prop_oneof![Just('a'), Just('é'), Just('😀'), Just(' '), Just('z')],
            0..20,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        /// Every part fits, none is blank, and nothing but whitespace is lost or reordered.
        #[test]
        fn parts_fit_and_keep_the_text(text in "\\PC{0,600}", max in 2usize..80) {
            let parts = split(&text, max);
            for p in &parts {
                prop_assert!(utf16_len(p) <= max, "{:?} is {} units > {}", p, utf16_len(p), max);
                prop_assert!(!p.trim().is_empty());
            }
            prop_assert_eq!(squeeze(&parts.concat()), squeeze(&text));
        }

        /// Lines shorter than half the limit (at most 40 units here) are never cut: parts are whole lines.
        #[test]
        fn short_lines_stay_whole(lines in proptest::collection::vec(line(), 1..60)) {
            let max = 96;
            let text = lines.join("\n");
            for part in split(&text, max) {
                for l in part.lines() {
                    let l = l.trim_end();
                    prop_assert!(
                        lines.iter().any(|orig| orig.trim_end() == l || orig.trim_end().trim_start() == l),
                        "{:?} is not one of the lines", l
                    );
                }
            }
        }
    }
}
