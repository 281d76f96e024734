//! Text from outside (a sink endpoint's error answer, a database's error) made fit for logs
//! and the store: cut to a bounded length on one line, with what looks like an email
//! address, a phone number or a token replaced by a placeholder.
//!
//! Receivers echo what they were sent ("user ann@example.com already exists"); the error text
//! is logged and kept in `dead_letters.error`, where the user's data does not belong. The
//! rules are deliberately broad: a hint is lost now and then (a long date reads as a phone
//! number), never an address.

/// At most `max_chars` characters of `text` on one line, scrubbed, with `…` when cut.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let scrubbed = scrub_words(&scrub_phones(text));
    let folded = scrubbed
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if folded.chars().count() <= max_chars {
        return folded;
    }
    let mut cut: String = folded.chars().take(max_chars).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// Characters a phone number is written with.
fn is_phone_char(character: char) -> bool {
    character.is_ascii_digit() || matches!(character, '+' | '-' | '(' | ')' | '.' | ' ')
}

/// Replaces every run of phone characters holding seven digits or more with `[phone]`.
fn scrub_phones(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 7 {
            // Keep the spaces around the number.
            let leading = run.len() - run.trim_start().len();
            let trailing = run.len() - run.trim_end().len();
            out.push_str(&run[..leading]);
            out.push_str("[phone]");
            out.push_str(&run[run.len() - trailing..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for character in text.chars() {
        if is_phone_char(character) {
            run.push(character);
        } else {
            flush(&mut run, &mut out);
            out.push(character);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Characters of a word: an address, a token, an identifier.
fn is_word_char(character: char) -> bool {
    character.is_alphanumeric()
        || matches!(
            character,
            '@' | '.' | '_' | '%' | '+' | '-' | '/' | '=' | '~'
        )
}

/// Replaces words with an `@` by `[email]` and long words mixing letters and digits (API
/// keys, bearer tokens, JWTs) by `[token]`.
fn scrub_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let letters = word.chars().any(char::is_alphabetic);
        let digits = word.chars().any(|c| c.is_ascii_digit());
        if word.contains('@') {
            out.push_str("[email]");
        } else if word.chars().count() >= 20 && letters && digits {
            out.push_str("[token]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for character in text.chars() {
        if is_word_char(character) {
            word.push(character);
        } else {
            flush(&mut word, &mut out);
            out.push(character);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_phones_and_tokens_are_replaced() {
        let text = "{\"error\": \"user ann.lee+x@example.com exists\", \"phone\": \"+1 (555) 123-4567\",\n\
                    \"auth\": \"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123\", \"code\": 409}";
        let out = snippet(text, 500);
        assert!(!out.contains("ann.lee"), "{out}");
        assert!(!out.contains("555"), "{out}");
        assert!(!out.contains("eyJ"), "{out}");
        assert!(out.contains("[email]") && out.contains("[phone]") && out.contains("[token]"));
        assert!(out.contains("409"), "short numbers stay: {out}");
        assert!(!out.contains('\n'));
    }

    #[test]
    fn the_snippet_is_bounded() {
        let out = snippet(&"word ".repeat(1000), 50);
        assert!(out.chars().count() <= 51);
        assert!(out.ends_with('…'));
        assert_eq!(snippet("  plain   text  ", 50), "plain text");
    }
}
