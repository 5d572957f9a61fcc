//! Identifiers people type (a SKU, a medical record number): letters and digits of any
//! script, so `CAFÉ-005` is as valid as `CAFE-005`, plus a few punctuation marks.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// `raw`, trimmed and in Unicode normal form C (an `É` typed as `E` and a combining accent
/// is the same `É`), when it is 1 to `max` characters, each a letter or digit of any script
/// (with its accents) or one of `punctuation`.
///
/// # Errors
/// What is wrong, in words that never repeat the value.
pub fn identifier(raw: &str, max: usize, punctuation: &[char]) -> Result<String, String> {
    let s: String = raw.trim().nfc().collect();
    let length = s.chars().count();
    if length == 0 || length > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || is_combining_mark(c) || punctuation.contains(&c))
    {
        let marks: Vec<String> = punctuation.iter().map(|c| format!("'{c}'")).collect();
        let (last, rest) = marks
            .split_last()
            .map_or(("", &[][..]), |(l, r)| (l.as_str(), r));
        return Err(format!(
            "may only contain letters, digits, {} and {last}",
            rest.join(", ")
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKU: &[char] = &['-', '_', '.'];

    #[test]
    fn letters_of_any_script_are_letters() {
        assert_eq!(identifier(" CAFÉ-005 ", 64, SKU).unwrap(), "CAFÉ-005");
        // The decomposed form is the same identifier.
        assert_eq!(identifier("CAFE\u{301}-005", 64, SKU).unwrap(), "CAFÉ-005");
        assert!(identifier("ТОВАР_1.2", 64, SKU).is_ok());
        assert!(identifier("茶-٣", 64, SKU).is_ok());
    }

    #[test]
    fn other_characters_and_lengths_are_refused_in_words() {
        assert_eq!(
            identifier("no spaces", 64, SKU).unwrap_err(),
            "may only contain letters, digits, '-', '_' and '.'"
        );
        assert!(identifier("a/b", 64, SKU).is_err());
        assert!(identifier("€5", 64, SKU).is_err());
        assert_eq!(
            identifier("", 64, SKU).unwrap_err(),
            "must be 1 to 64 characters"
        );
        assert!(identifier(&"É".repeat(64), 64, SKU).is_ok());
        assert!(identifier(&"É".repeat(65), 64, SKU).is_err());
    }
}
